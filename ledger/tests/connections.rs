//! What slow and idle clients may hold at the ledger: a connection (at most
//! `CONNECTIONS_MAX`, closed after `IDLE_TIMEOUT_MS` without a request head), never a
//! request slot (a body is read whole first, `408` past `BODY_READ_TIMEOUT_MS`); liveness
//! answers on the operations listener while the public bound is full.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use sqlx::PgPool;
use tessera_testkit::ledger::{spawn_app_with, TestApp};
use tessera_testkit::metrics::sum_metric;
use tessera_testkit::wait_until;

use tessera_testkit::raw_http::{slow_heads_closed_within, RawConnection};

/// Longest the tests wait for anything that should happen at once.
const LIMIT: Duration = Duration::from_secs(20);
const HEALTH_REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: ledger\r\n\r\n";

fn authority(app: &TestApp) -> String {
    app.addr.to_string()
}

/// A connection that was served once (so the ledger certainly admitted it), kept open.
async fn served_connection(app: &TestApp) -> RawConnection {
    let mut conn = RawConnection::open(&authority(app)).await;
    conn.send(HEALTH_REQUEST).await.expect("request sent");
    let answer = conn.response().await.expect("answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    conn
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_stalled_body_holds_no_request_slot_and_is_answered_408(pool: PgPool) {
    const IN_FLIGHT_MAX: usize = 4;
    const STALLED: usize = 4 * IN_FLIGHT_MAX;
    let app = spawn_app_with(
        pool,
        &[
            ("REQUESTS_IN_FLIGHT_MAX", IN_FLIGHT_MAX.to_string()),
            ("BODY_READ_TIMEOUT_MS", "2000".to_owned()),
        ],
    )
    .await;
    let fixture = app.event_with_zone(10).await;
    // Each announces 1000 bytes and sends 500. `100 Continue` comes when the ledger starts
    // reading the body: all of them are being read at once, four times the request slots.
    let head = "POST /v1/holds HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\n\
                Idempotency-Key: stalled\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n";
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut conn = RawConnection::open(&authority(&app)).await;
        conn.send(head.as_bytes()).await.expect("head sent");
        let interim = conn.response().await.expect("an interim answer");
        assert_eq!(interim.status, 100, "{interim:?}");
        conn.send(&[b' '; 500]).await.expect("half the body sent");
        stalled.push(conn);
    }

    // Meanwhile whole requests are served: no slot is held by the stalled ones.
    assert_eq!(app.get_json("/health").await.0, 200);
    assert_eq!(app.hold(&fixture, 1, "a", "whole").await.0, 201);

    for conn in &mut stalled {
        conn.expect_request_timeout(LIMIT).await;
    }
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn past_the_connection_bound_new_connections_are_closed_and_health_answers_apart(
    pool: PgPool,
) {
    const BOUND: usize = 50;
    const PAST: usize = 10;
    // The idle timeout is long enough that no connection goes idle during the test.
    let app = spawn_app_with(
        pool,
        &[
            ("CONNECTIONS_MAX", BOUND.to_string()),
            ("IDLE_TIMEOUT_MS", "60000".to_owned()),
        ],
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..BOUND {
        open.push(served_connection(&app).await);
    }
    for _ in 0..PAST {
        let mut conn = RawConnection::open(&authority(&app)).await;
        // The write may already fail: the ledger closed the connection on accepting it.
        let _ = conn.send(HEALTH_REQUEST).await;
        let received = conn.closed_within(LIMIT).await;
        assert_eq!(received, "", "past the bound nothing is answered");
    }
    let ops = |path: &str| format!("{}{path}", app.metrics_base);
    let health = app.client.get(ops("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200, "liveness on the operations listener");
    let metrics = app
        .client
        .get(ops("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("metrics text");
    // At least: the recorder is shared by every ledger this test binary starts.
    let refused = [("listener", "public")];
    let refused_total = sum_metric(&text, "http_connections_refused_total", &refused);
    assert!(refused_total >= PAST as f64, "{refused_total}");

    // One closes: a new connection is served again.
    drop(open.pop());
    wait_until("a connection is admitted again", LIMIT, || async {
        let mut conn = RawConnection::open(&authority(&app)).await;
        let _ = conn.send(HEALTH_REQUEST).await;
        conn.response()
            .await
            .is_some_and(|answer| answer.status == 200)
    })
    .await;
    drop(open);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn silent_idle_and_slowloris_connections_are_closed_after_the_idle_timeout(pool: PgPool) {
    const IDLE_TIMEOUT_MS: u64 = 500;
    /// Ten times the timeout: a connection still open then was never going to close.
    const CLOSE_LIMIT: Duration = Duration::from_millis(10 * IDLE_TIMEOUT_MS);
    let app = spawn_app_with(pool, &[("IDLE_TIMEOUT_MS", IDLE_TIMEOUT_MS.to_string())]).await;
    let mut conns = Vec::new();
    // Silent from the start.
    for _ in 0..20 {
        conns.push(RawConnection::open(&authority(&app)).await);
    }
    // Kept alive after one request, then silent.
    for _ in 0..5 {
        conns.push(served_connection(&app).await);
    }
    // Heads that never end, and one trickled; all closed like the idle ones.
    slow_heads_closed_within(&authority(&app), conns, CLOSE_LIMIT).await;
    assert_eq!(app.get_json("/health").await.0, 200);
    app.stop().await;
}
