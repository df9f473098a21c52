//! The edge host's outbound connection pool, end to end: a real `tessera-edge` process
//! forwarding holds to a real ledger (PostgreSQL, Redis). Connections are reused across
//! requests, a ledger restart does not leave the pool broken, and a slow ledger (behind the
//! kit's delaying proxy) cannot make the pool grow past its bound.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::delay_proxy::DelayProxy;
use tessera_testkit::edge::{EdgeNode, EdgeOptions, EDGE_KEY};
use tessera_testkit::ledger::{spawn_app_with, Fixture, TestApp};

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// Holds forwarded in the reuse test, and how many are in flight at once.
const REUSE_HOLDS: usize = 1_000;
const REUSE_CONCURRENCY: usize = 16;
/// The pool's bound in the slow-ledger test, and the holds sent at once against it.
const SLOW_BOUND: usize = 4;
const SLOW_CONCURRENCY: usize = 16;
/// One-way delay of the slow ledger: every forwarded hold takes at least twice this, so
/// the 16 holds overlap and all want a connection at once.
const SLOW_ONE_WAY: Duration = Duration::from_millis(150);
/// Holds sent right after the ledger restarted: each must find a working connection.
const AFTER_RESTART_HOLDS: usize = 50;

async fn ledger_with(pool: PgPool, extra: &[(&str, String)]) -> TestApp {
    let mut settings = vec![("EDGE_KEY", EDGE_KEY.to_owned())];
    settings.extend(extra.iter().cloned());
    spawn_app_with(pool, &settings).await
}

/// A hold of one ticket for a customer of its own (the per-customer limit stays out of it).
fn hold_body(fixture: &Fixture, customer: usize) -> Value {
    json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1,
           "customer_id": format!("pool-{customer}")})
}

/// Sends holds `range` through `edge`, `concurrency` at a time; every answer's status.
async fn holds_through(
    edge: &EdgeNode,
    fixture: &Fixture,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(range.len());
    let customers: Vec<usize> = range.collect();
    for wave in customers.chunks(concurrency) {
        let answers = join_all(wave.iter().map(|&customer| {
            let key = uuid::Uuid::new_v4().to_string();
            async move {
                let (status, body, _) = edge
                    .post_hold(&hold_body(fixture, customer), Some(&key))
                    .await;
                assert!(status == 201, "hold {customer}: {status} {body}");
                status
            }
        }))
        .await;
        statuses.extend(answers);
    }
    statuses
}

/// `scheme://host:port` the pool labels the ledger's connections with.
fn pool_host(ledger_url: &str) -> String {
    ledger_url.trim_end_matches('/').to_owned()
}

async fn opened(edge: &EdgeNode, host: &str) -> f64 {
    edge.metric("edge_outbound_connections_opened_total", &[("host", host)])
        .await
}

#[sqlx::test(migrations = "../../migrations")]
async fn forwarded_holds_reuse_pooled_connections(pool: PgPool) {
    let ledger = ledger_with(pool, &[]).await;
    let fixture = ledger.event_with_zone(REUSE_HOLDS as i32 * 2).await;
    let edge = EdgeNode::start_for_test(EdgeOptions::for_app(EDGE_BIN, &ledger)).await;
    let host = pool_host(&ledger.base);

    let statuses = holds_through(&edge, &fixture, 0..REUSE_HOLDS, REUSE_CONCURRENCY).await;
    assert_eq!(statuses.len(), REUSE_HOLDS);
    assert_eq!(
        edge.outbound(Some("holds"), "POST").await,
        REUSE_HOLDS as f64,
        "every hold was forwarded"
    );
    let opened = opened(&edge, &host).await;
    // The holds component may also read the show through the same pool; either way, a
    // connection per request would be over a thousand.
    assert!(
        (1.0..=(REUSE_CONCURRENCY as f64 + 2.0)).contains(&opened),
        "{opened} connections opened for {REUSE_HOLDS} forwarded holds"
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_ledger_restart_does_not_leave_the_pool_broken(pool: PgPool) {
    let ledger = ledger_with(pool.clone(), &[]).await;
    let fixture = ledger.event_with_zone(1_000).await;
    let edge = EdgeNode::start_for_test(EdgeOptions::for_app(EDGE_BIN, &ledger)).await;
    let host = pool_host(&ledger.base);
    holds_through(&edge, &fixture, 0..REUSE_CONCURRENCY, REUSE_CONCURRENCY).await;
    let opened_before = opened(&edge, &host).await;
    assert!(
        opened_before >= 1.0,
        "the pool holds connections to the ledger"
    );

    // The same address again: the edge's pooled connections were closed by the old one.
    let addr = ledger.addr.to_string();
    ledger.stop().await;
    let ledger = ledger_with(pool, &[("LEDGER_ADDR", addr)]).await;

    let statuses = holds_through(
        &edge,
        &fixture,
        REUSE_CONCURRENCY..REUSE_CONCURRENCY + AFTER_RESTART_HOLDS,
        REUSE_CONCURRENCY,
    )
    .await;
    assert_eq!(
        statuses.len(),
        AFTER_RESTART_HOLDS,
        "every hold after the restart granted"
    );
    assert!(
        opened(&edge, &host).await > opened_before,
        "the pool connected again to the restarted ledger"
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_slow_ledger_cannot_grow_the_pool_past_its_bound(pool: PgPool) {
    let ledger = ledger_with(pool, &[]).await;
    let fixture = ledger.event_with_zone(100).await;
    let proxy = DelayProxy::start(ledger.addr, SLOW_ONE_WAY)
        .await
        .expect("delay proxy");
    let slow_url = format!("http://{}", proxy.addr());
    let options = EdgeOptions::new(EDGE_BIN, &slow_url, &ledger.channel)
        .redis(&ledger.redis_url)
        .env("EDGE_OUTBOUND_CONNECTIONS_MAX", &SLOW_BOUND.to_string());
    let edge = EdgeNode::start_for_test(options).await;
    let host = pool_host(&slow_url);

    let statuses = holds_through(&edge, &fixture, 0..SLOW_CONCURRENCY, SLOW_CONCURRENCY).await;
    assert_eq!(
        statuses.len(),
        SLOW_CONCURRENCY,
        "every hold granted, in turn"
    );
    assert!(
        proxy.accepted() <= SLOW_BOUND as u64,
        "{} connections reached the ledger; the bound is {SLOW_BOUND}",
        proxy.accepted()
    );
    assert!(
        opened(&edge, &host).await <= SLOW_BOUND as f64,
        "the pool opened more than its bound"
    );
    assert!(
        edge.metric("edge_outbound_pool_waits_total", &[("host", host.as_str())])
            .await
            >= 1.0,
        "16 holds at once against 4 connections: some waited for one"
    );
    drop(proxy);
    ledger.stop().await;
}

/// The edge writes a small request body whole before it hands the request to the host (so
/// head and body leave in one write); a body past one write (4 KiB) goes the other way
/// round, in several writes. Both must reach the ledger byte for byte: a hold padded with
/// whitespace past 16 KiB (valid JSON, under the 64 KiB limit) is granted and replayed like
/// a small one.
#[sqlx::test(migrations = "../../migrations")]
async fn a_hold_body_larger_than_one_write_reaches_the_ledger_whole(pool: PgPool) {
    const PADDING_BYTES: usize = 16 << 10;
    let ledger = ledger_with(pool, &[]).await;
    let fixture = ledger.event_with_zone(10).await;
    let edge = EdgeNode::start_for_test(EdgeOptions::for_app(EDGE_BIN, &ledger)).await;
    let small = serde_json::to_vec(&hold_body(&fixture, 1)).expect("JSON");
    let mut large = serde_json::to_vec(&hold_body(&fixture, 2)).expect("JSON");
    large.extend(std::iter::repeat_n(b' ', PADDING_BYTES));
    for (body, customer) in [(small, "pool-1"), (large, "pool-2")] {
        let key = uuid::Uuid::new_v4().to_string();
        let mut hold_ids = Vec::new();
        for attempt in ["first", "replay"] {
            let response = edge
                .client
                .post(edge.url("/v1/holds"))
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .body(body.clone())
                .send()
                .await
                .expect("hold through the edge");
            let status = response.status().as_u16();
            let replayed = response.headers().contains_key("idempotent-replayed");
            let answer: Value = response.json().await.expect("a JSON answer");
            assert_eq!(status, 201, "{customer} {attempt}: {answer}");
            assert_eq!(replayed, attempt == "replay", "{customer} {attempt}");
            assert_eq!(answer["customer_id"], customer);
            hold_ids.push(answer["hold_id"].clone());
        }
        assert_eq!(hold_ids[0], hold_ids[1], "the replay names the same hold");
        let hold_id = hold_ids[0].as_str().expect("a hold id");
        let (status, stored) = ledger.get_json(&format!("/v1/holds/{hold_id}")).await;
        assert_eq!(status, 200, "{stored}");
        assert_eq!(stored["customer_id"], customer);
    }
    edge.stop().await;
    ledger.stop().await;
}
