//! End-to-end tests of the edge: the real wasm components of `spin.toml`, run by the real
//! `tessera-edge` host in separate processes, in front of a real ledger on PostgreSQL, with
//! invalidations over real Redis.

#[path = "../ledger/tests/support/mod.rs"]
mod ledger;
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use wasmtime::component::types::ComponentItem;

use ledger::own_redis::OwnRedis;
use ledger::{spawn_app_with, TestApp};
use support::{ledger_requests, serial, EdgeNode, EdgeOptions, EDGE_KEY};

const AVAILABILITY: &str = "/v1/shows/{show_id}/availability";
const HOLDS: &str = "/v1/holds";

async fn ledger_for_edges(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await
}

fn hold_body(fixture: &ledger::Fixture, quantity: i64) -> Value {
    json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": "alice"})
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[sqlx::test(migrations = "../../migrations")]
async fn cached_reads_do_not_reach_the_ledger(pool: PgPool) {
    let _turn = serial().await;
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(50).await;
    // Created before the node starts, so their catalog messages are not in the way.
    let other = ledger.event_with_zone(70).await;
    let edge = EdgeNode::start(&ledger).await;
    let path = format!("/v1/shows/{}/availability", fixture.show_id);
    let before = ledger_requests(&ledger, "GET", AVAILABILITY, "edge").await;

    // One read fills the cache; 999 more, 20 at a time, are answered from it.
    let first = edge.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers().get("tessera-cache").map(|v| v.as_bytes()),
        Some(&b"miss"[..])
    );
    let mut etag = first.headers().get("etag").cloned();
    let mut served = 1;
    while served < 1000 {
        let batch = (1000 - served).min(20);
        let requests = (0..batch).map(|_| edge.get(&path));
        for response in futures::future::join_all(requests).await {
            assert_eq!(response.status(), 200, "read {served}");
            assert_eq!(
                response
                    .headers()
                    .get("tessera-cache")
                    .map(|v| v.as_bytes()),
                Some(&b"hit"[..])
            );
            etag = response.headers().get("etag").cloned();
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["zones"][0]["available"], 50);
        }
        served += batch;
    }
    let after = ledger_requests(&ledger, "GET", AVAILABILITY, "edge").await;
    assert!(
        after - before <= 1.0,
        "1,000 edge reads cost {} ledger reads",
        after - before
    );
    let hits = edge.metric("edge_cache_total", &[("result", "hit")]).await;
    assert!(hits >= 999.0, "cache hits: {hits}");

    // Conditional GET: same version → 304 without a body.
    let etag = etag.expect("availability carries an ETag");
    let revalidated = edge
        .client
        .get(edge.url(&path))
        .header("If-None-Match", etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(revalidated.status(), 304);
    assert!(revalidated.bytes().await.expect("body").is_empty());

    // A cold cache hit by many readers at once (a node that just started or resubscribed,
    // mid-sale): one fetches, the others wait for its entry instead of all asking the
    // ledger. (The store has no compare-and-set, so a few may still fetch.)
    let path = format!("/v1/shows/{}/availability", other.show_id);
    let before = ledger_requests(&ledger, "GET", AVAILABILITY, "edge").await;
    let requests = (0..50).map(|_| edge.get(&path));
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["zones"][0]["available"], 70);
    }
    let fetched = ledger_requests(&ledger, "GET", AVAILABILITY, "edge").await - before;
    println!("50 concurrent cold reads cost {fetched} ledger reads");
    assert!(
        (1.0..=10.0).contains(&fetched),
        "50 concurrent cold reads cost {fetched} ledger reads"
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_hold_through_the_edge_is_pushed_back_to_its_cache(pool: PgPool) {
    let _turn = serial().await;
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(40).await;
    let mut options = EdgeOptions::for_ledger(&ledger);
    // Long TTL: only the pushed message can make the new count visible.
    options.env = vec![("SPIN_VARIABLE_AVAILABILITY_TTL_MS", "3600000".into())];
    let edge = EdgeNode::start_with(&ledger, options).await;
    assert_eq!(
        edge.available(&fixture.show_id, &fixture.zone_ids[0]).await,
        40
    );
    // The first message a node sees tells it where the sequence stands; until then it
    // cannot rule out a missed message and drops its cache once (see the invalidator).
    // Measure the steady state: one change first.
    let (status, body) = ledger.hold(&fixture, 1, "bob", &key()).await;
    assert_eq!(status, 201, "{body}");
    edge.wait_available(
        &fixture.show_id,
        &fixture.zone_ids[0],
        39,
        Duration::from_secs(5),
    )
    .await;
    let reads_before = ledger_requests(&ledger, "GET", AVAILABILITY, "edge").await;
    let holds_before = ledger_requests(&ledger, "POST", HOLDS, "edge").await;

    let (status, body, headers) = edge.post_hold(&hold_body(&fixture, 3), Some(&key())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["quantity"], 3);
    assert_eq!(
        headers
            .get("tessera-served-by")
            .and_then(|v| v.to_str().ok()),
        Some("ledger")
    );
    let took = edge
        .wait_available(
            &fixture.show_id,
            &fixture.zone_ids[0],
            36,
            Duration::from_secs(5),
        )
        .await;
    println!("hold visible at the edge after {took:?}");
    assert_eq!(
        ledger_requests(&ledger, "GET", AVAILABILITY, "edge").await,
        reads_before,
        "the new count came from the pushed message, not a refetch"
    );
    assert_eq!(
        ledger_requests(&ledger, "POST", HOLDS, "edge").await,
        holds_before + 1.0,
        "the hold reached the ledger once, marked as edge traffic"
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn two_edge_processes_converge_after_a_change(pool: PgPool) {
    let _turn = serial().await;
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(30).await;
    // Node b reuses instances (EDGE_INSTANCE_REUSE_MAX); a creates one per request, as Spin.
    let mut reusing = EdgeOptions::for_ledger(&ledger);
    reusing.env = vec![("EDGE_INSTANCE_REUSE_MAX", "50".into())];
    let (a, b) = tokio::join!(
        EdgeNode::start(&ledger),
        EdgeNode::start_with(&ledger, reusing)
    );
    let zone = &fixture.zone_ids[0];
    assert_eq!(a.available(&fixture.show_id, zone).await, 30);
    assert_eq!(b.available(&fixture.show_id, zone).await, 30);

    // Changes made directly at the ledger and through either edge reach both.
    let (status, body) = ledger.hold(&fixture, 4, "bob", &key()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = a.post_hold(&hold_body(&fixture, 2), Some(&key())).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = b.post_hold(&hold_body(&fixture, 1), Some(&key())).await;
    assert_eq!(status, 201, "{body}");
    for node in [&a, &b] {
        node.wait_available(&fixture.show_id, zone, 23, Duration::from_secs(5))
            .await;
    }
    assert!(b.metric("edge_instance_reuses_total", &[]).await > 0.0);
    assert_eq!(a.metric("edge_instance_reuses_total", &[]).await, 0.0);
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn invalid_holds_are_answered_by_the_edge(pool: PgPool) {
    let _turn = serial().await;
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(20).await;
    let edge = EdgeNode::start(&ledger).await;
    let before = ledger_requests(&ledger, "POST", HOLDS, "edge").await
        + ledger_requests(&ledger, "POST", HOLDS, "direct").await;

    let raw = |body: &'static str| {
        edge.client
            .post(edge.url("/v1/holds"))
            .header("Idempotency-Key", key())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = raw("{\"show_id\": ").await.expect("request");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "malformed_json");
    assert_eq!(problem["served_by"], "edge");

    let unknown_zone = json!({"show_id": fixture.show_id, "zone_id": uuid::Uuid::new_v4(), "quantity": 1, "customer_id": "alice"});
    let cases = [
        (
            hold_body(&fixture, 0),
            Some(key()),
            422,
            "validation_failed",
        ),
        (
            hold_body(&fixture, 11),
            Some(key()),
            422,
            "quantity_out_of_range",
        ),
        (
            hold_body(&fixture, 2),
            None,
            400,
            "idempotency_key_required",
        ),
        (
            hold_body(&fixture, 2),
            Some("not a key!".to_owned()),
            422,
            "validation_failed",
        ),
        (
            json!({"show_id": "nope", "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": "alice"}),
            Some(key()),
            422,
            "validation_failed",
        ),
        (
            json!({"show_id": fixture.show_id, "quantity": 1, "customer_id": "alice"}),
            Some(key()),
            422,
            "validation_failed",
        ),
        (unknown_zone, Some(key()), 404, "not_found"),
    ];
    for (body, key, status, code) in cases {
        let (got, problem, headers) = edge.post_hold(&body, key.as_deref()).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{body} → {problem}"
        );
        assert_eq!(problem["served_by"], "edge", "{problem}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
    }
    let response = edge
        .client
        .post(edge.url("/v1/holds"))
        .header("Idempotency-Key", key())
        .header("content-type", "application/json")
        .body(vec![b' '; 70_000])
        .send()
        .await
        .expect("oversized");
    assert_eq!(response.status(), 413);
    let (status, problem) = edge.get_json("/v1/nowhere").await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let (status, problem) = edge.get_json("/v1/events/not-a-uuid").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("validation_failed"))
    );

    let after = ledger_requests(&ledger, "POST", HOLDS, "edge").await
        + ledger_requests(&ledger, "POST", HOLDS, "direct").await;
    assert_eq!(after, before, "no invalid hold reached the ledger");
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_sold_out_zone_is_shed_at_the_edge(pool: PgPool) {
    let _turn = serial().await;
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(5).await;
    // A wide shed window: this test is about shedding, not about the window (unit-tested),
    // and a loaded machine may take more than the default second between two requests.
    let mut options = EdgeOptions::for_ledger(&ledger);
    options.env = vec![("SPIN_VARIABLE_SOLD_OUT_SHED_WINDOW_MS", "60000".into())];
    let edge = EdgeNode::start_with(&ledger, options).await;
    let zone = &fixture.zone_ids[0];
    assert_eq!(edge.available(&fixture.show_id, zone).await, 5);
    let last_key = key();
    let (status, body, _) = edge
        .post_hold(&hold_body(&fixture, 5), Some(&last_key))
        .await;
    assert_eq!(status, 201, "{body}");
    let hold_id = body["hold_id"].clone();
    edge.wait_available(&fixture.show_id, zone, 0, Duration::from_secs(5))
        .await;

    let before = ledger_requests(&ledger, "POST", HOLDS, "edge").await;
    let (status, problem, headers) = edge.post_hold(&hold_body(&fixture, 1), Some(&key())).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("sold_out")),
        "{problem}"
    );
    assert_eq!(problem["served_by"], "edge");
    assert_eq!(
        headers
            .get("tessera-served-by")
            .and_then(|v| v.to_str().ok()),
        Some("edge")
    );
    assert_eq!(
        ledger_requests(&ledger, "POST", HOLDS, "edge").await,
        before,
        "the shed hold never reached the ledger"
    );
    // A retry of the hold that took the last tickets is not shed: the ledger replays it.
    let (status, body, headers) = edge
        .post_hold(&hold_body(&fixture, 5), Some(&last_key))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hold_id"], hold_id);
    assert_eq!(
        headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_edge_keeps_serving_while_redis_is_down_and_then_catches_up(pool: PgPool) {
    let _turn = serial().await;
    let mut redis = OwnRedis::start().await;
    let ledger = spawn_app_with(
        pool,
        &[
            ("EDGE_KEY", EDGE_KEY.to_owned()),
            ("REDIS_URL", redis.url()),
        ],
    )
    .await;
    let fixture = ledger.event_with_zone(60).await;
    let zone = &fixture.zone_ids[0];
    let mut options = EdgeOptions::for_ledger(&ledger);
    options.redis_url = redis.url();
    options.env = vec![("SPIN_VARIABLE_AVAILABILITY_TTL_MS", "3600000".into())];
    let edge = EdgeNode::start_with(&ledger, options).await;
    assert_eq!(edge.available(&fixture.show_id, zone).await, 60);

    redis.stop();
    let (status, body) = ledger.hold(&fixture, 6, "carol", &key()).await;
    assert_eq!(status, 201, "{body}");
    // Redis is down: the node still answers, from its cache.
    for _ in 0..20 {
        let (status, body) = edge
            .get_json(&format!("/v1/shows/{}/availability", fixture.show_id))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    redis.restart_locked().await;
    redis.unlock().await;
    edge.wait_subscribed(Duration::from_secs(20)).await;
    // The message published while the node was away may be lost; the node dropped its
    // cache on resubscribing, so it serves the new count either way.
    edge.wait_available(&fixture.show_id, zone, 54, Duration::from_secs(10))
        .await;
    let resubscribed = edge.metric("edge_redis_resubscriptions_total", &[]).await;
    assert!(resubscribed >= 2.0, "resubscriptions: {resubscribed}");
    // And pushes work again after the reconnect.
    let (status, body) = ledger.hold(&fixture, 4, "carol", &key()).await;
    assert_eq!(status, 201, "{body}");
    edge.wait_available(&fixture.show_id, zone, 50, Duration::from_secs(5))
        .await;
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_spike_past_the_instance_slots_waits_for_one_then_is_shed(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let node = |wait_ms: &str, deadline_ms: &str| {
        let mut options = EdgeOptions::for_ledger(&ledger);
        options.manifest = support::repo_root().join("tests/fixtures/runaway.toml");
        options.redis_url = String::new();
        options.env = vec![
            ("EDGE_INSTANCES_MAX", "2".into()),
            ("EDGE_REQUEST_TIMEOUT_MS", deadline_ms.into()),
            ("EDGE_INSTANCE_WAIT_MS", wait_ms.into()),
        ];
        EdgeNode::start_with(&ledger, options)
    };
    // Four guests that each hold a slot for 300 ms, on two slots: with a long enough wait
    // the last two queue and run; none is refused.
    let patient = node("5000", "300").await;
    let loops = (0..4).map(|_| patient.get("/spin-loop"));
    let statuses: Vec<u16> = futures::future::join_all(loops)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses, [500; 4], "all ran to their deadline");
    assert_eq!(
        patient
            .metric("edge_guest_failures_total", &[("reason", "instance_wait")])
            .await,
        0.0
    );
    // With a short wait, the two that find no slot are shed with 503 + Retry-After. The
    // guests hold their slots for 3 s, so all four arrive while both are taken even on a
    // loaded machine (with 300 ms, a late arrival under parallel tests found a free slot).
    let hasty = node("50", "3000").await;
    let loops = (0..4).map(|_| hasty.get("/spin-loop"));
    let mut shed = 0;
    for response in futures::future::join_all(loops).await {
        match response.status().as_u16() {
            500 => {}
            503 => {
                shed += 1;
                assert_eq!(response.headers()["retry-after"], "1");
                let problem: Value = response.json().await.expect("problem");
                assert_eq!(problem["code"], "overloaded", "{problem}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(shed, 2);
    // Slots come back: the node serves normally afterwards.
    let (status, body) = hasty.get_json("/v1/categories").await;
    assert_eq!(status, 200, "{body}");
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_runaway_guest_is_stopped_and_the_host_keeps_serving(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _turn = serial().await;
    let ledger = ledger_for_edges(pool).await;
    let mut options = EdgeOptions::for_ledger(&ledger);
    options.manifest = support::repo_root().join("tests/fixtures/runaway.toml");
    options.redis_url = String::new();
    options.env = vec![("EDGE_REQUEST_TIMEOUT_MS", "300".into())];
    let edge = EdgeNode::start_with(&ledger, options).await;

    let started = std::time::Instant::now();
    let (status, problem) = edge.get_json("/spin-loop").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (500, Some("internal")),
        "{problem}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
    // Runaways on every thread at once do not take the node down either.
    let loops = (0..4).map(|_| edge.get("/spin-loop"));
    for response in futures::future::join_all(loops).await {
        assert_eq!(response.status(), 500);
    }
    let (status, body) = edge.get_json("/v1/categories").await;
    assert_eq!(status, 200, "{body}");
    // A guest waiting for a body the client never finishes is stopped by the wall clock.
    let mut slow = tokio::net::TcpStream::connect(edge.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    slow.write_all(
        b"POST /v1/holds HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n\
          Idempotency-Key: slow-body-1\r\nContent-Length: 100\r\n\r\n{\"show_id\"",
    )
    .await
    .expect("partial request");
    let mut head = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut head))
        .await
        .expect("answered before the client finished")
        .expect("read");
    assert!(
        head[..read].starts_with(b"HTTP/1.1 500"),
        "{}",
        String::from_utf8_lossy(&head[..read])
    );
    let stopped = edge
        .metric("edge_guest_failures_total", &[("reason", "deadline")])
        .await;
    assert!(stopped >= 6.0, "deadline stops: {stopped}");

    // A component calling a host its manifest entry does not list is refused by the host.
    let mut options = EdgeOptions::for_ledger(&ledger);
    options.manifest = support::repo_root().join("tests/fixtures/denied.toml");
    options.redis_url = String::new();
    let denied = EdgeNode::start_with(&ledger, options).await;
    let before = ledger_requests(&ledger, "GET", "/v1/categories", "edge").await;
    let (status, problem) = denied.get_json("/v1/categories").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("unavailable")),
        "{problem}"
    );
    assert!(denied.metric("edge_outbound_denied_total", &[]).await >= 1.0);
    assert_eq!(
        ledger_requests(&ledger, "GET", "/v1/categories", "edge").await,
        before
    );
    ledger.stop().await;
}

/// Every component the manifests name imports only what the host links: WASI 0.2 and the
/// Spin interfaces in `wit/`.
#[test]
fn components_import_only_what_the_host_provides() {
    use tessera_edge::manifest::Manifest;
    use tessera_edge::runtime::Compiled;

    let root = support::repo_root();
    for manifest in [
        "spin.toml",
        "tests/fixtures/runaway.toml",
        "tests/fixtures/denied.toml",
    ] {
        let manifest = Manifest::load(&root.join(manifest)).expect("manifest");
        let compiled =
            Compiled::compile(&manifest, Default::default()).expect("components compile");
        for (id, component) in compiled.components() {
            let ty = component.component_type();
            for (name, item) in ty.imports(&compiled.engine) {
                let allowed = name.starts_with("wasi:")
                    || name == "fermyon:spin/key-value@2.0.0"
                    || name == "fermyon:spin/variables@2.0.0"
                    || name == "fermyon:spin/redis-types";
                assert!(allowed, "component `{id}` imports {name}");
                assert!(
                    matches!(item.ty, ComponentItem::ComponentInstance(_)),
                    "{id}: {name}"
                );
            }
        }
        let variables = tessera_edge::variables::AppVariables::resolve(&manifest, |k| {
            (k == "SPIN_VARIABLE_EDGE_KEY").then(|| EDGE_KEY.to_owned())
        })
        .expect("variables");
        compiled
            .link(&manifest, variables, tessera_edge::kv::KvStore::new(16))
            .expect("every import is satisfied by the host's linker");
    }
}
