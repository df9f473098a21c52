//! End-to-end tests of the edge: the real wasm components of `spin.toml`, run by the real
//! `tessera-edge` host in separate processes, in front of a real ledger on PostgreSQL, with
//! invalidations over real Redis.
//!
//! The tests run in parallel: each has its own database, Redis channel, ledger and nodes.
//! What a node caused at the ledger is read from the node's own counter
//! (`edge_outbound_requests_total`), never from the ledger's process-wide metrics.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use wasmtime::component::types::ComponentItem;

use tessera_testkit::edge::{fixture_manifest, EdgeNode, EdgeOptions, EDGE_KEY};
use tessera_testkit::ledger::{spawn_app_with, Fixture, TestApp};
use tessera_testkit::metrics::sum_metric;
use tessera_testkit::raw_http::{get_request, misanswered, post_json_request, Outcome};
use tessera_testkit::services::own_redis::OwnRedis;
use tessera_testkit::wait_until;

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// A cache lifetime no test outlives: only a pushed message can change what is cached.
const LONG_TTL_MS: &str = "3600000";
/// How long a change may take to reach a node by its pushed message.
const PUSH_DEADLINE: Duration = Duration::from_secs(5);
/// How long a node may take to see a change after Redis came back (it refetches).
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a node may take to subscribe again after Redis came back.
const RESUBSCRIBE_DEADLINE: Duration = Duration::from_secs(20);

async fn ledger_for_edges(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await
}

/// A ledger publishing on a Redis of the test's own, which the test may stop and restart
/// (the nodes started with [`options`] follow the ledger's Redis).
async fn ledger_on_own_redis(pool: PgPool, redis: &OwnRedis) -> TestApp {
    spawn_app_with(
        pool,
        &[
            ("EDGE_KEY", EDGE_KEY.to_owned()),
            ("REDIS_URL", redis.url()),
        ],
    )
    .await
}

fn options(ledger: &TestApp) -> EdgeOptions {
    EdgeOptions::for_app(EDGE_BIN, ledger)
}

async fn start(options: EdgeOptions) -> EdgeNode {
    EdgeNode::start_for_test(options).await
}

fn hold_body(fixture: &Fixture, quantity: i64) -> Value {
    json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": "alice"})
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Holds the ledger has stored, in this test's own database.
async fn holds_stored(ledger: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from holds")
        .fetch_one(&ledger.pool)
        .await
        .expect("count holds")
}

/// `POST /v1/holds` the ledger counted as edge traffic: process-wide (parallel tests add
/// to it), so only its growth says anything.
async fn ledger_edge_holds(ledger: &TestApp) -> f64 {
    sum_metric(
        &ledger.metrics_text().await,
        "http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/v1/holds"),
            ("origin", "edge"),
        ],
    )
}

/// The first message a node sees tells it where the sequence stands; until then it cannot
/// rule out a missed message and drops its cache once (see the invalidator), so its next
/// read refetches. Tests that measure pushes make one change first and wait for it.
async fn reach_steady_state(ledger: &TestApp, fixture: &Fixture, nodes: &[&EdgeNode]) {
    let zone = &fixture.zone_ids[0];
    let before = nodes[0].available(&fixture.show_id, zone).await;
    let (status, body) = ledger.hold(fixture, 1, "steady", &key()).await;
    assert_eq!(status, 201, "{body}");
    for node in nodes {
        node.wait_available(&fixture.show_id, zone, before - 1, PUSH_DEADLINE)
            .await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn cached_reads_do_not_reach_the_ledger(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(50).await;
    // Created before the node starts, so their catalog messages are not in the way.
    let other = ledger.event_with_zone(70).await;
    let edge = start(options(&ledger)).await;
    let path = format!("/v1/shows/{}/availability", fixture.show_id);
    let before = edge.outbound(None, "GET").await;

    // One read fills the cache; 999 more, 20 at a time, are answered from it.
    let first = edge.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(first.headers(), "tessera-cache"), Some("miss"));
    let mut etag = first.headers().get("etag").cloned();
    let mut served = 1;
    while served < 1000 {
        let batch = (1000 - served).min(20);
        let requests = (0..batch).map(|_| edge.get(&path));
        for response in futures::future::join_all(requests).await {
            assert_eq!(response.status(), 200, "read {served}");
            assert_eq!(header(response.headers(), "tessera-cache"), Some("hit"));
            etag = response.headers().get("etag").cloned();
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["zones"][0]["available"], 50);
        }
        served += batch;
    }
    let fetched = edge.outbound(None, "GET").await - before;
    assert!(
        fetched <= 1.0,
        "1,000 edge reads cost {fetched} ledger reads"
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
    // ledger. (A claim is not a compare-and-swap, see the components' README, so a few may
    // still fetch.)
    let path = format!("/v1/shows/{}/availability", other.show_id);
    let before = edge.outbound(None, "GET").await;
    let requests = (0..50).map(|_| edge.get(&path));
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["zones"][0]["available"], 70);
    }
    let fetched = edge.outbound(None, "GET").await - before;
    println!("50 concurrent cold reads cost {fetched} ledger reads");
    assert!(
        (1.0..=10.0).contains(&fetched),
        "50 concurrent cold reads cost {fetched} ledger reads"
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_hold_through_the_edge_is_pushed_back_to_its_cache(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(40).await;
    let edge = start(options(&ledger).env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS)).await;
    reach_steady_state(&ledger, &fixture, &[&edge]).await;
    // The event detail cached too: the hold's checks need nothing from the ledger.
    let (status, body) = edge
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await;
    assert_eq!(status, 200, "{body}");
    let reads_before = edge.outbound(None, "GET").await;
    let holds_before = edge.outbound(None, "POST").await;
    let ledger_edge_holds_before = ledger_edge_holds(&ledger).await;

    let (status, body, headers) = edge.post_hold(&hold_body(&fixture, 3), Some(&key())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["quantity"], 3);
    assert_eq!(header(&headers, "tessera-served-by"), Some("ledger"));
    let took = edge
        .wait_available(&fixture.show_id, &fixture.zone_ids[0], 36, PUSH_DEADLINE)
        .await;
    println!("hold visible at the edge after {took:?}");
    assert_eq!(
        edge.outbound(None, "GET").await,
        reads_before,
        "the new count came from the pushed message, not a refetch"
    );
    assert_eq!(
        edge.outbound(None, "POST").await,
        holds_before + 1.0,
        "the hold reached the ledger once"
    );
    assert_eq!(
        holds_stored(&ledger).await,
        2,
        "the steady-state hold and this one"
    );
    assert!(
        ledger_edge_holds(&ledger).await > ledger_edge_holds_before,
        "the ledger counted the hold as edge traffic"
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn two_edge_processes_converge_after_a_change(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(30).await;
    // Node b reuses instances (EDGE_INSTANCE_REUSE_MAX); a creates one per request, as Spin.
    let long_ttl =
        |options: EdgeOptions| options.env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS);
    let (a, b) = tokio::join!(
        start(long_ttl(options(&ledger))),
        start(long_ttl(options(&ledger)).env("EDGE_INSTANCE_REUSE_MAX", "50"))
    );
    let zone = &fixture.zone_ids[0];
    assert_eq!(a.available(&fixture.show_id, zone).await, 30);
    assert_eq!(b.available(&fixture.show_id, zone).await, 30);
    reach_steady_state(&ledger, &fixture, &[&a, &b]).await;
    // The holds component checks a hold against the cached event detail: cache it first,
    // so the holds below need no read of their own.
    for node in [&a, &b] {
        let (status, body) = node
            .get_json(&format!("/v1/events/{}", fixture.event_id))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Every GET the node makes (catalog or holds component): a refetch by either would be
    // convergence by reading, not by the push.
    let reads_before = [a.outbound(None, "GET").await, b.outbound(None, "GET").await];

    // Changes made directly at the ledger and through either edge reach both, pushed.
    let (status, body) = ledger.hold(&fixture, 4, "bob", &key()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = a.post_hold(&hold_body(&fixture, 2), Some(&key())).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = b.post_hold(&hold_body(&fixture, 1), Some(&key())).await;
    assert_eq!(status, 201, "{body}");
    for (node, before) in [&a, &b].into_iter().zip(reads_before) {
        node.wait_available(&fixture.show_id, zone, 22, PUSH_DEADLINE)
            .await;
        assert_eq!(
            node.outbound(None, "GET").await,
            before,
            "{} converged by refetching, not by the pushed messages",
            node.base
        );
    }
    assert!(b.metric("edge_instance_reuses_total", &[]).await > 0.0);
    assert_eq!(a.metric("edge_instance_reuses_total", &[]).await, 0.0);
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn invalid_holds_are_answered_by_the_edge(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(20).await;
    let edge = start(options(&ledger)).await;
    let before = edge.outbound(None, "POST").await;

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
            header(&headers, "content-type"),
            Some("application/problem+json")
        );
    }
    // A confirm naming its buyer is judged by the same rules: a bad e-mail never leaves.
    let bad_buyer =
        json!({"payment_ref": "pay-1", "buyer": {"name": "Ada", "email": "ada@localhost"}});
    let response = edge
        .client
        .post(edge.url(&format!("/v1/holds/{}/confirm", uuid::Uuid::new_v4())))
        .header("Idempotency-Key", key())
        .json(&bad_buyer)
        .send()
        .await
        .expect("confirm");
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(
        (
            problem["errors"][0]["field"].as_str(),
            problem["served_by"].as_str()
        ),
        (Some("buyer.email"), Some("edge")),
        "{problem}"
    );
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

    assert_eq!(
        edge.outbound(None, "POST").await,
        before,
        "no invalid hold was sent to the ledger"
    );
    assert_eq!(holds_stored(&ledger).await, 0, "no hold reached the ledger");
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_sold_out_zone_is_shed_at_the_edge(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(5).await;
    // A wide shed window: this test is about shedding, not about the window (unit-tested),
    // and a loaded machine may take more than the default second between two requests.
    let edge = start(options(&ledger).env("SPIN_VARIABLE_SOLD_OUT_SHED_WINDOW_MS", "60000")).await;
    let zone = &fixture.zone_ids[0];
    assert_eq!(edge.available(&fixture.show_id, zone).await, 5);
    let last_key = key();
    let (status, body, _) = edge
        .post_hold(&hold_body(&fixture, 5), Some(&last_key))
        .await;
    assert_eq!(status, 201, "{body}");
    let hold_id = body["hold_id"].clone();
    edge.wait_available(&fixture.show_id, zone, 0, PUSH_DEADLINE)
        .await;

    let before = edge.outbound(None, "POST").await;
    let (status, problem, headers) = edge.post_hold(&hold_body(&fixture, 1), Some(&key())).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("sold_out")),
        "{problem}"
    );
    assert_eq!(problem["served_by"], "edge");
    assert_eq!(header(&headers, "tessera-served-by"), Some("edge"));
    assert_eq!(
        edge.outbound(None, "POST").await,
        before,
        "the shed hold never reached the ledger"
    );
    // A retry of the hold that took the last tickets is not shed: the ledger replays it.
    let (status, body, headers) = edge
        .post_hold(&hold_body(&fixture, 5), Some(&last_key))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hold_id"], hold_id);
    assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));
    ledger.stop().await;
}

/// Waits until the node has subscribed again after losing Redis: its subscription count
/// reached `count` and every subscription is live.
async fn wait_resubscribed(edge: &EdgeNode, count: f64) {
    wait_until(
        "the node subscribed again",
        RESUBSCRIBE_DEADLINE,
        || async {
            let subscriptions = edge.metric("edge_redis_resubscriptions_total", &[]).await;
            let health = edge.health().await.unwrap_or(Value::Null);
            subscriptions >= count && EdgeNode::all_subscribed(&health)
        },
    )
    .await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_edge_keeps_serving_while_redis_is_down_and_then_catches_up(pool: PgPool) {
    let mut redis = OwnRedis::start().await;
    let ledger = ledger_on_own_redis(pool, &redis).await;
    let fixture = ledger.event_with_zone(60).await;
    let zone = &fixture.zone_ids[0];
    // A freshness lease no test outlives: this is about serving from the cache while the
    // lease holds (after it, reads go to the ledger: see the freshness-lease test).
    let edge = start(
        options(&ledger)
            .env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS)
            .env("SPIN_VARIABLE_STREAM_FRESHNESS_MS", LONG_TTL_MS),
    )
    .await;
    assert_eq!(edge.available(&fixture.show_id, zone).await, 60);

    redis.stop();
    let (status, body) = ledger.hold(&fixture, 6, "carol", &key()).await;
    assert_eq!(status, 201, "{body}");
    // Redis is down: the node still answers, from its cache, without asking the ledger.
    let reads_before = edge.outbound(None, "GET").await;
    for _ in 0..20 {
        let response = edge
            .get(&format!("/v1/shows/{}/availability", fixture.show_id))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(response.headers(), "tessera-cache"), Some("hit"));
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["zones"][0]["available"], 60, "the cached count");
    }
    assert_eq!(
        edge.outbound(None, "GET").await,
        reads_before,
        "no ledger read while Redis was down"
    );

    redis.restart_locked().await;
    redis.unlock().await;
    wait_resubscribed(&edge, 2.0).await;
    // The message published while the node was away may be lost; the node dropped its
    // cache on resubscribing, so it serves the new count either way.
    edge.wait_available(&fixture.show_id, zone, 54, CATCH_UP_DEADLINE)
        .await;
    // And pushes work again after the reconnect.
    let (status, body) = ledger.hold(&fixture, 4, "carol", &key()).await;
    assert_eq!(status, 201, "{body}");
    edge.wait_available(&fixture.show_id, zone, 50, PUSH_DEADLINE)
        .await;
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_hold_retried_after_a_redis_restart_is_replayed_not_shed(pool: PgPool) {
    let mut redis = OwnRedis::start().await;
    let ledger = ledger_on_own_redis(pool, &redis).await;
    let fixture = ledger.event_with_zone(5).await;
    let zone = &fixture.zone_ids[0];
    // A wide shed window, as in the shedding test: the zone must still be shed when the
    // retry comes.
    let edge = start(options(&ledger).env("SPIN_VARIABLE_SOLD_OUT_SHED_WINDOW_MS", "60000")).await;
    assert_eq!(edge.available(&fixture.show_id, zone).await, 5);
    let granted_key = key();
    let (status, granted, _) = edge
        .post_hold(&hold_body(&fixture, 2), Some(&granted_key))
        .await;
    assert_eq!(status, 201, "{granted}");

    // A Redis blip: the node loses its subscription and makes it again.
    redis.restart().await;
    wait_resubscribed(&edge, 2.0).await;
    // Meanwhile the zone sells out to others, and the node knows it: a new hold is shed.
    let (status, body) = ledger.hold(&fixture, 3, "bob", &key()).await;
    assert_eq!(status, 201, "{body}");
    edge.wait_available(&fixture.show_id, zone, 0, CATCH_UP_DEADLINE)
        .await;
    let (status, problem, _) = edge.post_hold(&hold_body(&fixture, 2), Some(&key())).await;
    assert_eq!(
        (
            status,
            problem["code"].as_str(),
            problem["served_by"].as_str()
        ),
        (409, Some("sold_out"), Some("edge")),
        "{problem}"
    );

    // The customer's retry of the granted hold: the node still knows it forwarded that key
    // (the resubscription dropped only cache entries), so the ledger replays its 201.
    let (status, body, headers) = edge
        .post_hold(&hold_body(&fixture, 2), Some(&granted_key))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hold_id"], granted["hold_id"]);
    assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));
    ledger.stop().await;
}

/// The edge's seat map: status, `Tessera-Cache`, ETag and body.
async fn edge_seat_map(edge: &EdgeNode, show_id: &str) -> (u16, String, String, Value) {
    let response = edge.get(&format!("/v1/shows/{show_id}/seats")).await;
    let status = response.status().as_u16();
    let cache = header(response.headers(), "tessera-cache")
        .unwrap_or_default()
        .to_owned();
    let etag = header(response.headers(), "etag")
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, cache, etag, body)
}

/// Seat `index`'s state in a seat map's first zone.
fn seat_state(map: &Value, index: usize) -> Option<tessera_domain::seats::SeatStatus> {
    let zone = &map["zones"][0];
    let count = usize::try_from(zone["seat_count"].as_i64()?).ok()?;
    tessera_domain::seats::decode_status_map(zone["status"].as_str()?, count)?
        .get(index)
        .copied()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_edges_seat_map_follows_seat_holds_by_push_and_sheds_taken_seats(pool: PgPool) {
    use tessera_domain::seats::SeatStatus;
    let ledger = ledger_for_edges(pool).await;
    let zone = json!({"name": "Stalls", "price_minor": 6000, "currency": "EUR",
        "seating": "assigned", "seats": {"rows": [{"row": "A", "seats": 6}]}});
    let slug = format!("e-{}", uuid::Uuid::new_v4().simple());
    let fixture = ledger
        .publish_event(tessera_testkit::ledger::event_body(&slug, vec![zone]))
        .await;
    // Long TTL: only pushed messages can change what is cached. A wide shed window, as in
    // the sold-out test: this test is about shedding, not the window (unit-tested).
    let edge = start(
        options(&ledger)
            .env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS)
            .env("SPIN_VARIABLE_SOLD_OUT_SHED_WINDOW_MS", "60000"),
    )
    .await;
    let zone_id = &fixture.zone_ids[0];
    let show_id = &fixture.show_id;
    let seats = |seats: &[i32], customer: &str| json!({"show_id": show_id, "zone_id": zone_id, "seats": seats, "customer_id": customer});
    // Steady state (as `reach_steady_state`, with a seat hold at the ledger).
    assert_eq!(edge.available(show_id, zone_id).await, 6);
    let (status, body) = ledger
        .post_json("/v1/holds", &seats(&[5], "steady"), Some(&key()))
        .await;
    assert_eq!(status, 201, "{body}");
    edge.wait_available(show_id, zone_id, 5, PUSH_DEADLINE)
        .await;

    // The seat map: fetched once, then served from the cache, the ledger's document.
    let (status, cache, _, _) = edge_seat_map(&edge, show_id).await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    let (status, cache, etag, map) = edge_seat_map(&edge, show_id).await;
    assert_eq!((status, cache.as_str()), (200, "hit"), "{map}");
    let (_, at_ledger) = ledger.get_json(&format!("/v1/shows/{show_id}/seats")).await;
    assert_eq!(map, at_ledger);
    assert_eq!(seat_state(&map, 5), Some(SeatStatus::Held));
    let not_modified = reqwest::Client::new()
        .get(edge.url(&format!("/v1/shows/{show_id}/seats")))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(not_modified.status(), 304);

    // The event detail cached too: the hold's checks need nothing from the ledger.
    let (status, body) = edge
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await;
    assert_eq!(status, 200, "{body}");
    let reads_before = edge.outbound(None, "GET").await;
    let ann_key = key();
    let (status, hold, _) = edge.post_hold(&seats(&[2, 3], "ann"), Some(&ann_key)).await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["seats"], json!([2, 3]));
    // The ledger announces the seats (`kind: "seats"`): the edge takes the zone's counters
    // and patches its seat map from the message, without fetching either again.
    edge.wait_available(show_id, zone_id, 3, PUSH_DEADLINE)
        .await;
    wait_until(
        "the edge's seat map shows the new hold",
        PUSH_DEADLINE,
        || async {
            let (_, _, _, map) = edge_seat_map(&edge, show_id).await;
            seat_state(&map, 2) == Some(SeatStatus::Held)
        },
    )
    .await;
    let (_, cache, new_etag, map) = edge_seat_map(&edge, show_id).await;
    assert_eq!(cache, "hit");
    assert_ne!(new_etag, etag);
    let at_ledger = reqwest::get(ledger.url(&format!("/v1/shows/{show_id}/seats")))
        .await
        .expect("request");
    assert_eq!(
        header(at_ledger.headers(), "etag"),
        Some(new_etag.as_str()),
        "the ledger's tag"
    );
    assert_eq!(map, at_ledger.json::<Value>().await.expect("json"));
    assert_eq!(
        edge.outbound(None, "GET").await,
        reads_before,
        "the new states came from the pushed message, not a refetch"
    );

    // A hold naming a seat the map shows taken is refused by the edge, naming the seat.
    let posts_before = edge.outbound(None, "POST").await;
    let (status, problem, _) = edge.post_hold(&seats(&[3, 4], "bob"), Some(&key())).await;
    assert_eq!(
        (
            status,
            problem["code"].as_str(),
            problem["served_by"].as_str()
        ),
        (409, Some("seat_unavailable"), Some("edge")),
        "{problem}"
    );
    assert_eq!(problem["seats"], json!([3]));
    assert_eq!(
        edge.outbound(None, "POST").await,
        posts_before,
        "the shed hold never reached the ledger"
    );
    // A retry of the hold this node forwarded reaches the ledger, which replays it.
    let (status, body, headers) = edge.post_hold(&seats(&[2, 3], "ann"), Some(&ann_key)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hold_id"], hold["hold_id"]);
    assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));
    // A quantity on an assigned zone is refused at the edge by the shared rules.
    let (status, problem, _) = edge.post_hold(&hold_body(&fixture, 2), Some(&key())).await;
    assert_eq!(
        (status, problem["served_by"].as_str()),
        (422, Some("edge")),
        "{problem}"
    );
    ledger.stop().await;
}

/// `count` fresh keys that share `key`'s bucket in the node's memory of forwarded holds.
fn keys_in_bucket_of(key: &str, count: usize) -> Vec<String> {
    let bucket = tessera_edge_cache::keys::forwarded(key);
    std::iter::repeat_with(self::key)
        .filter(|k| tessera_edge_cache::keys::forwarded(k) == bucket)
        .take(count)
        .collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_forwarded_key_outlives_newer_keys_in_its_bucket(pool: PgPool) {
    use tessera_edge_cache::forwarded::BUCKET_KEYS_MAX;
    let newer = BUCKET_KEYS_MAX - 1;
    let ledger = ledger_for_edges(pool).await;
    let capacity = i32::try_from(BUCKET_KEYS_MAX).expect("small") + 2;
    let fixture = ledger.event_with_zone(capacity).await;
    let zone = &fixture.zone_ids[0];
    let edge = start(options(&ledger).env("SPIN_VARIABLE_SOLD_OUT_SHED_WINDOW_MS", "60000")).await;
    let hold_of = |customer: &str| json!({"show_id": fixture.show_id, "zone_id": zone, "quantity": 1, "customer_id": customer});
    let granted_key = key();
    let (status, granted, _) = edge.post_hold(&hold_of("first"), Some(&granted_key)).await;
    assert_eq!(status, 201, "{granted}");
    // As many newer holds as the bucket keeps besides the first, all landing in its bucket
    // (one key per bucket forgot the first here).
    for (i, newer_key) in keys_in_bucket_of(&granted_key, newer).iter().enumerate() {
        let (status, body, _) = edge
            .post_hold(&hold_of(&format!("newer-{i}")), Some(newer_key))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The rest sells out; the edge knows and sheds new holds.
    let (status, body) = ledger.hold(&fixture, 2, "last", &key()).await;
    assert_eq!(status, 201, "{body}");
    edge.wait_available(&fixture.show_id, zone, 0, PUSH_DEADLINE)
        .await;
    let (status, problem, _) = edge.post_hold(&hold_of("late"), Some(&key())).await;
    assert_eq!(
        (status, problem["served_by"].as_str()),
        (409, Some("edge")),
        "{problem}"
    );
    // The first buyer's retry still reaches the ledger, which replays its 201.
    let (status, body, headers) = edge.post_hold(&hold_of("first"), Some(&granted_key)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hold_id"], granted["hold_id"]);
    assert_eq!(header(&headers, "idempotent-replayed"), Some("true"));
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_event_edit_evicts_the_edges_copy(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(10).await;
    // Long TTL: only the pushed eviction can make the new title visible.
    let edge = start(options(&ledger).env("SPIN_VARIABLE_CATALOG_TTL_MS", LONG_TTL_MS)).await;
    reach_steady_state(&ledger, &fixture, &[&edge]).await;
    let path = format!("/v1/events/{}", fixture.event_id);
    let (status, body) = edge.get_json(&path).await;
    assert_eq!(status, 200, "{body}");
    let old_title = body["title"].as_str().expect("title").to_owned();
    let cached = edge.get(&path).await;
    assert_eq!(header(cached.headers(), "tessera-cache"), Some("hit"));

    let new_title = format!("Renamed {}", key());
    let edited = ledger
        .admin_patch(
            &format!("/admin/v1/events/{}", fixture.event_id),
            &json!({"title": new_title}),
        )
        .await;
    assert_eq!(
        edited.status(),
        200,
        "{}",
        edited.text().await.unwrap_or_default()
    );
    wait_until("the edge serves the new title", PUSH_DEADLINE, || async {
        let (status, body) = edge.get_json(&path).await;
        assert_eq!(status, 200, "{body}");
        if body["title"] == new_title.as_str() {
            return true;
        }
        assert_eq!(body["title"], old_title.as_str(), "{body}");
        false
    })
    .await;
    ledger.stop().await;
}

/// Paths no route matches answer problem+json 404 `not_found`, whatever the method (the
/// catch-all component), as under Spin. `/` and the app's client-side routes are the
/// storefront's pages (tests/storefront_serving.rs); API, admin and file-like paths are not.
#[tokio::test]
async fn every_unknown_path_is_a_problem_json_404() {
    // No ledger needed: nothing here is forwarded.
    let channel = tessera_testkit::services::unique_channel();
    let edge = start(EdgeOptions::new(EDGE_BIN, "http://127.0.0.1:9", &channel)).await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/nothing"),
        (reqwest::Method::GET, "/v1/nope/deeper"),
        (reqwest::Method::POST, "/v1/nope/deeper"),
        (reqwest::Method::DELETE, "/admin/nope"),
        (reqwest::Method::GET, "/robots.txt"),
    ] {
        let response = edge
            .client
            .request(method.clone(), edge.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(
            header(response.headers(), "content-type"),
            Some("application/problem+json"),
            "{method} {path}"
        );
        let problem: Value = response.json().await.expect("problem json");
        assert_eq!(problem["code"], "not_found", "{method} {path}: {problem}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_spike_past_the_instance_slots_waits_for_one_then_is_shed(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let node = |wait_ms: &str, deadline_ms: &str| {
        start(
            options(&ledger)
                .manifest(fixture_manifest("runaway.toml"))
                .without_redis()
                .env("EDGE_INSTANCES_MAX", "2")
                .env("EDGE_REQUEST_TIMEOUT_MS", deadline_ms)
                .env("EDGE_INSTANCE_WAIT_MS", wait_ms),
        )
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
    let ledger = ledger_for_edges(pool).await;
    let edge = start(
        options(&ledger)
            .manifest(fixture_manifest("runaway.toml"))
            .without_redis()
            .env("EDGE_REQUEST_TIMEOUT_MS", "300")
            .env("EDGE_BODY_READ_TIMEOUT_MS", "300"),
    )
    .await;

    let started = Instant::now();
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
    // A body the client never finishes is the client's fault: the host answers 408 after
    // its body-read timeout, and no guest (nor instance slot) is spent on it.
    let deadline_stops = edge
        .metric("edge_guest_failures_total", &[("reason", "deadline")])
        .await;
    let mut slow = tokio::net::TcpStream::connect(&edge.authority)
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
        head[..read].starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&head[..read])
    );
    assert!(deadline_stops >= 5.0, "deadline stops: {deadline_stops}");
    assert_eq!(
        edge.metric("edge_guest_failures_total", &[("reason", "deadline")])
            .await,
        deadline_stops,
        "no guest ran for the stalled body"
    );

    // A component calling a host its manifest entry does not list is refused by the host.
    let denied = start(
        options(&ledger)
            .manifest(fixture_manifest("denied.toml"))
            .without_redis(),
    )
    .await;
    let (status, problem) = denied.get_json("/v1/categories").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("unavailable")),
        "{problem}"
    );
    assert!(denied.metric("edge_outbound_denied_total", &[]).await >= 1.0);
    assert_eq!(
        denied.metric("edge_outbound_requests_total", &[]).await,
        0.0,
        "nothing from the denied node reached the ledger"
    );
    ledger.stop().await;
}

/// Every component the manifests name imports only what the host links: WASI 0.2 and the
/// Spin interfaces in `wit/`.
#[test]
fn components_import_only_what_the_host_provides() {
    use tessera_edge::manifest::Manifest;
    use tessera_edge::runtime::Compiled;

    for manifest in [
        tessera_testkit::repo_root().join("spin.toml"),
        fixture_manifest("runaway.toml"),
        fixture_manifest("denied.toml"),
    ] {
        let manifest = Manifest::load(&manifest).expect("manifest");
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
        let variables = tessera_edge::variables::AppVariables::resolve(&manifest, |k| match k {
            "SPIN_VARIABLE_EDGE_KEY" => Some(EDGE_KEY.to_owned()),
            "SPIN_VARIABLE_QUEUE_KEY" => Some(tessera_testkit::edge::QUEUE_KEY.to_owned()),
            _ => None,
        })
        .expect("variables");
        compiled
            .link(&manifest, variables, tessera_edge::kv::KvStore::new(16))
            .expect("every import is satisfied by the host's linker");
    }
}

/// Finding 3 of issue 10: a NUL (or another control character) in a listing filter is a
/// 422 naming the filter through an edge node too, never a 500. The catalog component
/// forwards listing queries to the ledger as given and relays a refusal uncached, so
/// the shared rule (`tessera_domain::fields`, applied by the ledger) answers for both.
#[sqlx::test(migrations = "../../migrations")]
async fn a_control_character_in_a_listing_filter_is_a_422_at_the_edge(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    ledger.event_with_zone(10).await;
    let edge = start(options(&ledger)).await;
    for (query, field) in [
        ("q=%00", "q"),
        ("city=%00", "city"),
        ("category=%00", "category"),
        ("q=a%1Bb", "q"),
    ] {
        // Twice: a refusal is not cached as a listing.
        for _ in 0..2 {
            let response = edge.get(&format!("/v1/events?{query}")).await;
            assert_eq!(response.status(), 422, "{query}");
            assert_eq!(
                header(response.headers(), "content-type"),
                Some("application/problem+json"),
                "{query}"
            );
            let problem: Value = response.json().await.expect("problem json");
            assert_eq!(problem["code"], "validation_failed", "{query}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
        }
    }
    let (status, page) = edge.get_json("/v1/events?q=Event").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    ledger.stop().await;
}

/// One availability read through `edge`: its `Tessera-Cache` and the zone's `available`.
async fn read_availability(edge: &EdgeNode, fixture: &Fixture) -> (String, i64) {
    let response = edge
        .get(&format!("/v1/shows/{}/availability", fixture.show_id))
        .await;
    assert_eq!(response.status(), 200);
    let cache = header(response.headers(), "tessera-cache")
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.expect("json");
    (
        cache,
        body["zones"][0]["available"].as_i64().expect("available"),
    )
}

/// A node's writers of one availability entry — the invalidator applying a message, a
/// fetch storing what the ledger answered — run at once when every read fetches (a 1 ms
/// TTL) while holds stream messages. Both write by compare-and-swap (counted per component
/// in `edge_kv_swaps_total`), nothing fails, and afterwards the node agrees with the
/// ledger. Whether two of them collide in a run is chance — windows of microseconds on two
/// busy cores; under CI's parallel tests a minute once went by without one — so what a
/// collision does is proven where it can be made on purpose: the host refuses a swap over
/// a write it did not read (`a_write_between_a_swaps_read_and_its_swap_refuses_the_swap`,
/// tests/host.rs), and the writers' loop redoes its change over the newer entry instead of
/// putting the older copy back (`cache::cas`'s tests). The collisions a run meets are
/// printed.
#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_writers_of_one_entry_all_write_by_swap(pool: PgPool) {
    const HOLDERS: usize = 4;
    const HOLDS_PER_HOLDER: usize = 100;
    const READERS: usize = 4;
    /// Tickets left over when every hold is in (the steady state's own hold among them),
    /// so no hold meets a sell-out.
    const SPARE: usize = 10;
    let ledger = ledger_for_edges(pool).await;
    let capacity = i32::try_from(HOLDERS * HOLDS_PER_HOLDER + SPARE).expect("small");
    let fixture = ledger.event_with_zone(capacity).await;
    let edge = start(options(&ledger).env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", "1")).await;
    reach_steady_state(&ledger, &fixture, &[&edge]).await;
    let swaps = |component: &'static str, result: &'static str| {
        let edge = &edge;
        async move {
            edge.metric(
                "edge_kv_swaps_total",
                &[("component", component), ("result", result)],
            )
            .await
        }
    };
    let held_before = holds_stored(&ledger).await;
    let written_before = [
        swaps("invalidator", "written").await,
        swaps("catalog", "written").await,
    ];
    let holds_done = AtomicBool::new(false);
    let holder = |n: usize| {
        let (ledger, fixture) = (&ledger, &fixture);
        async move {
            let customer = format!("holder-{n}");
            for _ in 0..HOLDS_PER_HOLDER {
                let (status, body) = ledger.hold(fixture, 1, &customer, &key()).await;
                assert_eq!(status, 201, "{body}");
            }
        }
    };
    let reader = || async {
        let mut reads = 0_usize;
        while !holds_done.load(Ordering::Relaxed) {
            read_availability(&edge, &fixture).await;
            reads += 1;
        }
        reads
    };
    let holders = async {
        futures::future::join_all((0..HOLDERS).map(holder)).await;
        holds_done.store(true, Ordering::Relaxed);
    };
    let ((), reads) = tokio::join!(
        holders,
        futures::future::join_all((0..READERS).map(|_| reader()))
    );
    println!(
        "{} reads during the holds; swaps redone: invalidator {} / catalog {}",
        reads.iter().sum::<usize>(),
        swaps("invalidator", "changed").await,
        swaps("catalog", "changed").await
    );
    // The holds' messages reach the node on their own time: wait for one applied.
    wait_until("a message applied by swap", PUSH_DEADLINE, || async {
        swaps("invalidator", "written").await > written_before[0]
    })
    .await;
    assert!(
        swaps("catalog", "written").await > written_before[1],
        "fetches stored by swap"
    );
    let held = holds_stored(&ledger).await;
    assert_eq!(
        held - held_before,
        i64::try_from(HOLDERS * HOLDS_PER_HOLDER).expect("small")
    );
    let (_, available) = read_availability(&edge, &fixture).await;
    assert_eq!(
        available,
        i64::from(capacity) - held,
        "the node agrees with the ledger"
    );
    ledger.stop().await;
}

/// The freshness lease (DESIGN.md): with the invalidation stream down, a node serves its
/// cached availability only until `stream_freshness_ms` has passed without a message,
/// then reads through to the ledger (`Tessera-Cache: bypass`, coalesced) until the stream
/// returns; `/health` says `degraded` while the subscription is down.
#[sqlx::test(migrations = "../../migrations")]
async fn a_node_that_cannot_hear_the_stream_reads_availability_through(pool: PgPool) {
    const READS: usize = 20;
    let mut redis = OwnRedis::start().await;
    // Heartbeats every 200 ms keep a 1 s lease alive while Redis is up.
    let ledger = spawn_app_with(
        pool,
        &[
            ("EDGE_KEY", EDGE_KEY.to_owned()),
            ("REDIS_URL", redis.url()),
            ("OUTBOX_HEARTBEAT_INTERVAL_MS", "200".to_owned()),
        ],
    )
    .await;
    let fixture = ledger.event_with_zone(5).await;
    let edge = start(
        options(&ledger)
            .env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS)
            .env("SPIN_VARIABLE_STREAM_FRESHNESS_MS", "1000"),
    )
    .await;
    assert_eq!(read_availability(&edge, &fixture).await.1, 5);
    assert_eq!(
        read_availability(&edge, &fixture).await,
        ("hit".to_owned(), 5)
    );
    let health = edge.health().await.expect("health");
    assert_eq!(health["status"], "ok", "{health}");

    redis.stop();
    // The zone sells out at the ledger; the node cannot hear of it.
    let (status, body) = ledger.hold(&fixture, 5, "dora", &key()).await;
    assert_eq!(status, 201, "{body}");
    wait_until(
        "the node reports degraded",
        RESUBSCRIBE_DEADLINE,
        || async { edge.health().await.is_ok_and(|h| h["status"] == "degraded") },
    )
    .await;
    // Once the lease lapses: the ledger's counters, not the cached ones.
    wait_until("the node reads through", CATCH_UP_DEADLINE, || async {
        read_availability(&edge, &fixture).await == ("bypass".to_owned(), 0)
    })
    .await;
    let before = edge.outbound(Some("catalog"), "GET").await;
    let reads = (0..READS).map(|_| read_availability(&edge, &fixture));
    for read in futures::future::join_all(reads).await {
        assert_eq!(read, ("bypass".to_owned(), 0), "while the stream is down");
    }
    let fetched = edge.outbound(Some("catalog"), "GET").await - before;
    println!("{READS} concurrent reads with the stream down cost {fetched} ledger reads");
    assert!(
        (1.0..=READS as f64 / 2.0).contains(&fetched),
        "{READS} concurrent reads cost {fetched} ledger reads: each read goes through, coalesced"
    );

    redis.restart().await;
    wait_resubscribed(&edge, 2.0).await;
    let health = edge.health().await.expect("health");
    assert_eq!(health["status"], "ok", "{health}");
    wait_until("cached reads are hits again", CATCH_UP_DEADLINE, || async {
        read_availability(&edge, &fixture).await == ("hit".to_owned(), 0)
    })
    .await;
    ledger.stop().await;
}

/// Invalid UTF-8 and NUL, escaped or raw, in the components' paths, queries and JSON
/// bodies: a 4xx problem (or the HTTP layer's bare 400 for a raw byte no URL may hold),
/// never a 5xx; the node keeps serving.
#[sqlx::test(migrations = "../../migrations")]
async fn invalid_utf8_and_nul_through_the_components_are_a_4xx_never_a_5xx(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(10).await;
    let edge = start(options(&ledger)).await;
    let get = |target: &[u8], outcome| (get_request(target, b""), outcome);
    let post = |customer: &[u8], outcome| {
        let body = tessera_testkit::raw_http::hold_body(&fixture, customer);
        (post_json_request("/v1/holds", &key(), &body), outcome)
    };
    let cases = vec![
        (
            "%FF in an event id",
            get(b"/v1/events/%FF", Outcome::Problem(422)),
        ),
        (
            "%00 in an event id",
            get(b"/v1/events/a%00b", Outcome::Problem(422)),
        ),
        (
            "raw 0xFF in an event id",
            get(b"/v1/events/\xFF", Outcome::Refused(400)),
        ),
        (
            "raw NUL in an event id",
            get(b"/v1/events/a\0b", Outcome::Refused(400)),
        ),
        (
            "%FF in a show id",
            get(b"/v1/shows/%FF/availability", Outcome::Problem(422)),
        ),
        (
            "%00 in a query",
            get(b"/v1/events?q=a%00b", Outcome::Problem(422)),
        ),
        (
            "%FF in a query (not UTF-8)",
            get(b"/v1/events?q=%FF", Outcome::Problem(422)),
        ),
        (
            "raw NUL in a query",
            get(b"/v1/events?q=a\0b", Outcome::Refused(400)),
        ),
        ("raw 0xFF in a body", post(b"a\xFFb", Outcome::Problem(400))),
        (
            "escaped NUL in a body",
            post(b"a\\u0000b", Outcome::Problem(422)),
        ),
        ("raw NUL in a body", post(b"a\0b", Outcome::Problem(400))),
    ]
    .into_iter()
    .map(|(name, (request, outcome))| (name, request, outcome))
    .collect();
    let wrong = misanswered(&edge.authority, cases).await;
    assert!(
        wrong.is_empty(),
        "answered otherwise:\n{}",
        wrong.join("\n")
    );
    let (status, _) = edge.get_json("/v1/events?q=Event").await;
    assert_eq!(status, 200, "still serving");
    ledger.stop().await;
}

/// `POST /v1/checkin` through the edge with `token`: status, body, `Tessera-Served-By`.
async fn edge_scan(edge: &EdgeNode, token: Option<&str>, body: &Value) -> (u16, Value, String) {
    let mut request = reqwest::Client::new()
        .post(edge.url("/v1/checkin"))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let served_by = header(response.headers(), "tessera-served-by")
        .unwrap_or_default()
        .to_owned();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        served_by,
    )
}

/// One ticket sold at `ledger`: the event and the ticket's code.
async fn sold_ticket(ledger: &TestApp) -> (Fixture, String) {
    let (fixture, confirm) = ledger.sold(1).await;
    let code = confirm["tickets"][0]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    (fixture, code)
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_edge_checks_credentials_and_codes_and_the_ledger_redeems_once(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let (fixture, code) = sold_ticket(&ledger).await;
    let (_, other_code) = sold_ticket(&ledger).await;
    let token = ledger.gate_token(&fixture.event_id, "North").await;
    let edge = start(options(&ledger)).await;
    let scan = |code: &str, nonce: &str| json!({"code": code, "gate": "North", "nonce": nonce});
    // The event's public keys, cached at the edge for scanners, with the ledger's ETag.
    let keys_path = format!("/v1/events/{}/checkin-keys", fixture.event_id);
    let at_ledger = reqwest::get(ledger.url(&keys_path)).await.expect("request");
    let ledger_etag = header(at_ledger.headers(), "etag")
        .unwrap_or_default()
        .to_owned();
    let ledger_keys: Value = at_ledger.json().await.expect("json");
    for expected in ["miss", "hit"] {
        let response = edge.get(&keys_path).await;
        assert_eq!(header(response.headers(), "tessera-cache"), Some(expected));
        assert_eq!(
            header(response.headers(), "etag"),
            Some(ledger_etag.as_str())
        );
        assert_eq!(response.json::<Value>().await.expect("json"), ledger_keys);
    }

    let (status, verdict, served_by) = edge_scan(&edge, Some(&token), &scan(&code, "s-1")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (201, Some("ok")),
        "{verdict}"
    );
    assert_eq!(served_by, "ledger");
    let posts = edge.outbound(None, "POST").await;
    // Judged at the edge, none of these reaches the ledger.
    let mut bent = code.clone().into_bytes();
    bent[90] = if bent[90] == b'A' { b'B' } else { b'A' };
    let bent = String::from_utf8(bent).expect("ascii");
    let (status, verdict, served_by) = edge_scan(&edge, Some(&token), &scan(&bent, "s-2")).await;
    assert_eq!(
        (status, verdict["result"].as_str(), served_by.as_str()),
        (409, Some("invalid"), "edge")
    );
    let (status, verdict, _) = edge_scan(&edge, Some(&token), &scan(&other_code, "s-3")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (409, Some("wrong_event")),
        "{verdict}"
    );
    let (status, problem, served_by) = edge_scan(&edge, None, &scan(&code, "s-4")).await;
    assert_eq!(
        (status, problem["code"].as_str(), served_by.as_str()),
        (401, Some("unauthorized"), "edge")
    );
    let mut bent_token = token.clone().into_bytes();
    let last = bent_token.len() - 2;
    bent_token[last] = if bent_token[last] == b'A' { b'B' } else { b'A' };
    let bent_token = String::from_utf8(bent_token).expect("ascii");
    let (status, _, served_by) = edge_scan(&edge, Some(&bent_token), &scan(&code, "s-5")).await;
    assert_eq!((status, served_by.as_str()), (401, "edge"));
    let (status, _, served_by) = edge_scan(
        &edge,
        Some(&token),
        &json!({"code": code, "gate": "South", "nonce": "s-6"}),
    )
    .await;
    assert_eq!((status, served_by.as_str()), (403, "edge"));
    let other_show =
        json!({"code": code, "gate": "North", "nonce": "s-8", "show_id": uuid::Uuid::new_v4()});
    let (status, verdict, served_by) = edge_scan(&edge, Some(&token), &other_show).await;
    assert_eq!(
        (status, verdict["result"].as_str(), served_by.as_str()),
        (409, Some("wrong_show"), "edge")
    );
    assert_eq!(
        edge.outbound(None, "POST").await,
        posts,
        "refused at the edge: no scan reached the ledger"
    );
    // The ticket's state is the ledger's: a second scan is forwarded and refused there.
    let (status, verdict, served_by) = edge_scan(&edge, Some(&token), &scan(&code, "s-7")).await;
    assert_eq!(
        (status, verdict["result"].as_str(), served_by.as_str()),
        (409, Some("already_redeemed"), "ledger")
    );
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_voided_ticket_is_refused_at_every_door_by_push(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(10).await;
    let order = |quantity: i64| json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": "ann"});
    let (voided_order, voided) = ledger.buy(&order(2)).await;
    let (_, kept) = ledger.buy(&order(1)).await;
    let code_of = |confirm: &Value| {
        confirm["tickets"][0]["code"]
            .as_str()
            .expect("code")
            .to_owned()
    };
    let token = ledger.gate_token(&fixture.event_id, "North").await;
    let (a, b) = tokio::join!(start(options(&ledger)), start(options(&ledger)));
    let keys_path = format!("/v1/events/{}/checkin-keys", fixture.event_id);
    for edge in [&a, &b] {
        assert_eq!(
            header(edge.get(&keys_path).await.headers(), "tessera-cache"),
            Some("miss")
        );
    }
    let gets = [a.outbound(None, "GET").await, b.outbound(None, "GET").await];
    let cancelled = ledger
        .admin_post(
            &format!("/admin/v1/orders/{voided_order}/cancel"),
            &Value::Null,
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    // Each node's cached set takes the voided tickets from the message, in place.
    let revoked = json!(2);
    for edge in [&a, &b] {
        wait_until("the revocation reaches the node", PUSH_DEADLINE, || async {
            let response = edge.get(&keys_path).await;
            response.json::<Value>().await.expect("json")["revocation_version"] == revoked
        })
        .await;
    }
    assert_eq!(
        [a.outbound(None, "GET").await, b.outbound(None, "GET").await],
        gets,
        "patched by the message, not refetched"
    );
    let posts = [
        a.outbound(None, "POST").await,
        b.outbound(None, "POST").await,
    ];
    let scan = |code: &str, nonce: &str| json!({"code": code, "gate": "North", "nonce": nonce});
    for (n, edge) in [&a, &b].into_iter().enumerate() {
        let (status, verdict, served_by) = edge_scan(
            edge,
            Some(&token),
            &scan(&code_of(&voided), &format!("v-{n}")),
        )
        .await;
        assert_eq!(
            (status, verdict["result"].as_str(), served_by.as_str()),
            (409, Some("revoked"), "edge"),
            "{verdict}"
        );
        assert_eq!(verdict["ticket_id"], voided["tickets"][0]["ticket_id"]);
    }
    assert_eq!(
        [
            a.outbound(None, "POST").await,
            b.outbound(None, "POST").await
        ],
        posts,
        "refused at the doors without the ledger"
    );
    // The buyer's order page, through the edge: the ledger's answer, never cached.
    let order_path = format!("/v1/orders/{voided_order}");
    let through_edge = a.get(&order_path).await;
    assert_eq!(through_edge.status(), 200);
    assert_eq!(
        header(through_edge.headers(), "cache-control"),
        Some("no-store")
    );
    let (_, at_ledger) = ledger.get_json(&order_path).await;
    assert_eq!(through_edge.json::<Value>().await.expect("json"), at_ledger);
    assert_eq!(at_ledger["tickets"][0]["status"], "void");
    // The event cancelled: every code of it is refused at the door, the kept one too.
    let cancelled = ledger
        .admin_post(
            &format!("/admin/v1/events/{}/cancel", fixture.event_id),
            &Value::Null,
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    for (n, edge) in [&a, &b].into_iter().enumerate() {
        wait_until(
            "the cancellation reaches the node",
            PUSH_DEADLINE,
            || async {
                let (_, verdict, served_by) = edge_scan(
                    edge,
                    Some(&token),
                    &scan(&code_of(&kept), &format!("k-{n}")),
                )
                .await;
                verdict["result"] == "revoked" && served_by == "edge"
            },
        )
        .await;
    }
    ledger.stop().await;
}

/// A stand-in for a ledger gone wrong (the one thing a real ledger cannot be made to do):
/// it answers every `GET /v1/holds/{id}` 200 with `{}`, but `big_hold`'s with a body of
/// `big_bytes`. Serves until the test ends.
async fn oversized_ledger(big_hold: uuid::Uuid, big_bytes: usize) -> String {
    use axum::extract::Path;
    let answer = move |Path(hold): Path<uuid::Uuid>| async move {
        let body = if hold == big_hold {
            vec![b' '; big_bytes]
        } else {
            b"{}".to_vec()
        };
        ([("content-type", "application/json")], body)
    };
    let app = axum::Router::new().route("/v1/holds/{hold}", axum::routing::get(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn an_oversized_ledger_answer_is_refused_not_buffered() {
    let big_hold = uuid::Uuid::new_v4();
    // Past the components' bound (8 MiB), within the instance's memory (64 MiB), so only
    // the bound refuses it.
    let ledger_url = oversized_ledger(big_hold, 9 * 1024 * 1024).await;
    let channel = format!("oversized-{}", uuid::Uuid::new_v4().simple());
    let edge = start(EdgeOptions::new(EDGE_BIN, &ledger_url, &channel).without_redis()).await;

    let small = edge
        .get(&format!("/v1/holds/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(small.status(), 200, "the stand-in answers through the edge");
    let big = edge.get(&format!("/v1/holds/{big_hold}")).await;
    assert_eq!(big.status(), 503);
    let problem: Value = big.json().await.expect("problem");
    assert_eq!(
        (problem["code"].as_str(), problem["served_by"].as_str()),
        (Some("unavailable"), Some("edge")),
        "{problem}"
    );
}
