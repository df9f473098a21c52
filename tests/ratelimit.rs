//! Rate limits at the edge, end to end: real `tessera-edge` processes running spin.toml's
//! components in front of a real ledger (PostgreSQL, Redis), with the limits turned on
//! (the test kit turns them off). Each client binds its own loopback address (all of
//! 127/8 is loopback), so each is a different client address to the node.
//!
//! Limits here are per 30-second window, so a test's burst fits in one window: each test
//! starts its burst early in a window ([`fresh_window`]) rather than hoping not to cross
//! a boundary.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::PgPool;

use tessera_testkit::edge::{EdgeNode, EdgeOptions, EDGE_KEY};
use tessera_testkit::ledger::{spawn_app_with, TestApp};

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// The window the nodes here count in.
const WINDOW_S: u64 = 30;
/// Reads per second: 60 per window.
const READS_PER_S: u64 = 2;
/// Holds and scans per second: 30 per window.
const WRITES_PER_S: u64 = 1;
/// Longest one test's burst may take; it starts at least this long before its window ends.
const BURST_S: u64 = 12;
/// Longest any request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn allowance(per_s: u64) -> u64 {
    per_s * WINDOW_S
}

/// A node with the limits on (`extra` on top).
async fn limited_node(ledger: &TestApp, extra: &[(&str, &str)]) -> EdgeNode {
    let reads = READS_PER_S.to_string();
    let writes = WRITES_PER_S.to_string();
    let window = WINDOW_S.to_string();
    let options = EdgeOptions::for_app(EDGE_BIN, ledger)
        .env("SPIN_VARIABLE_RATE_LIMIT_READS_PER_S", &reads)
        .env("SPIN_VARIABLE_RATE_LIMIT_HOLDS_PER_S", &writes)
        .env("SPIN_VARIABLE_RATE_LIMIT_CHECKIN_PER_S", &writes)
        .env("SPIN_VARIABLE_RATE_LIMIT_WINDOW_S", &window);
    let options = extra
        .iter()
        .fold(options, |options, (name, value)| options.env(name, value));
    EdgeNode::start_for_test(options).await
}

/// An HTTP client whose connections come from `127.0.0.{last}`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

/// Returns once at least [`BURST_S`] of the current window are left: waits for the next
/// window to begin if not. The wait is on the wall clock the node counts by, bounded by
/// `BURST_S`.
async fn fresh_window() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let into_window = Duration::from_millis(
        u64::try_from(now.as_millis() % u128::from(WINDOW_S * 1000)).expect("small"),
    );
    let left = Duration::from_secs(WINDOW_S) - into_window;
    if left < Duration::from_secs(BURST_S) {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

/// `GET path` from `client`: status, `Retry-After`, `Tessera-Served-By`, body.
async fn get(client: &reqwest::Client, node: &EdgeNode, path: &str) -> Answer {
    answer(client.get(node.url(path)).send().await.expect("request")).await
}

/// `POST path` with a JSON body (refused by the edge's own checks when invalid).
async fn post(client: &reqwest::Client, node: &EdgeNode, path: &str, body: &str) -> Answer {
    let request = client
        .post(node.url(path))
        .header("content-type", "application/json")
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .body(body.to_owned());
    answer(request.send().await.expect("request")).await
}

#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    served_by: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Answer {
        status: response.status().as_u16(),
        retry_after: header("retry-after"),
        served_by: header("tessera-served-by"),
        content_type: header("content-type"),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// A refusal by the rate limit: 429 problem+json `rate_limited` from the edge, with a
/// `Retry-After` of 1 s up to the window's length.
fn assert_rate_limited(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 429, "{what}: {answer:?}");
    assert_eq!(answer.body["code"], "rate_limited", "{what}: {answer:?}");
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json"),
        "{what}"
    );
    assert_eq!(answer.served_by.as_deref(), Some("edge"), "{what}");
    let retry_after: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: Retry-After in {answer:?}"));
    assert!(
        (1..=WINDOW_S).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
}

/// A path the holds component forwards to the ledger every time (a read: an unknown hold,
/// 404 from the ledger), so each request the limit lets through costs one ledger request.
fn unknown_hold() -> String {
    format!("/v1/holds/{}", uuid::Uuid::new_v4())
}

async fn ledger_for_edges(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await
}

#[sqlx::test(migrations = "../../migrations")]
async fn past_the_limit_reads_are_refused_429_at_the_edge_and_never_reach_the_ledger(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(10).await;
    let node = limited_node(&ledger, &[]).await;
    let (hammer, neighbour) = (client_from(2), client_from(3));
    fresh_window().await;
    let before = node.outbound(None, "GET").await;
    // Under the limit: every read answered (by the ledger: an unknown hold is a 404).
    for n in 0..allowance(READS_PER_S) {
        let answer = get(&hammer, &node, &unknown_hold()).await;
        assert_eq!(answer.status, 404, "read {n}: {answer:?}");
    }
    let forwarded = node.outbound(None, "GET").await - before;
    assert_eq!(forwarded, allowance(READS_PER_S) as f64);

    // Past it: refused at the edge, whichever component serves the read.
    for n in 0..10 {
        assert_rate_limited(&get(&hammer, &node, &unknown_hold()).await, "hold read");
        let event = get(&hammer, &node, &format!("/v1/events/{}", fixture.event_id)).await;
        assert_rate_limited(&event, &format!("catalog read {n}"));
    }
    assert_eq!(
        node.outbound(None, "GET").await - before,
        forwarded,
        "no refused read reached the ledger"
    );
    // Another address on the same node is not limited by this one.
    let answer = get(
        &neighbour,
        &node,
        &format!("/v1/events/{}", fixture.event_id),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    node.stop().await;
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn holds_and_checkin_are_limited_apart_from_reads(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let node = limited_node(&ledger, &[]).await;
    let client = client_from(4);
    fresh_window().await;
    let before = node.outbound(None, "POST").await;
    // Invalid holds: refused by the edge's own checks (422) until the limit, then 429.
    for n in 0..allowance(WRITES_PER_S) {
        let answer = post(&client, &node, "/v1/holds", "{}").await;
        assert_eq!(answer.status, 422, "hold {n}: {answer:?}");
    }
    assert_rate_limited(&post(&client, &node, "/v1/holds", "{}").await, "hold");
    // Scans without a credential (401 at the edge), counted on their own.
    for n in 0..allowance(WRITES_PER_S) {
        let answer = post(&client, &node, "/v1/checkin", "{}").await;
        assert_eq!(answer.status, 401, "scan {n}: {answer:?}");
    }
    assert_rate_limited(&post(&client, &node, "/v1/checkin", "{}").await, "scan");
    assert_eq!(
        node.outbound(None, "POST").await,
        before,
        "nothing was forwarded"
    );
    // A read of a hold is a read, not a hold: still answered.
    let answer = get(&client, &node, &unknown_hold()).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    node.stop().await;
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn counters_are_per_node(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(10).await;
    let first = limited_node(&ledger, &[]).await;
    let second = limited_node(&ledger, &[]).await;
    let client = client_from(5);
    let path = format!("/v1/events/{}", fixture.event_id);
    fresh_window().await;
    for n in 0..allowance(READS_PER_S) {
        assert_eq!(get(&client, &first, &path).await.status, 200, "read {n}");
    }
    assert_rate_limited(&get(&client, &first, &path).await, "first node");
    let answer = get(&client, &second, &path).await;
    assert_eq!(
        answer.status, 200,
        "the second node counts apart: {answer:?}"
    );
    first.stop().await;
    second.stop().await;
    ledger.stop().await;
}

/// `GET path` from `client` with `X-Forwarded-For: {forwarded}`.
async fn get_forwarded(
    client: &reqwest::Client,
    node: &EdgeNode,
    path: &str,
    forwarded: &str,
) -> Answer {
    let request = client
        .get(node.url(path))
        .header("x-forwarded-for", forwarded);
    answer(request.send().await.expect("request")).await
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_forwarding_header_counts_only_when_the_node_trusts_it(pool: PgPool) {
    let ledger = ledger_for_edges(pool).await;
    let fixture = ledger.event_with_zone(10).await;
    let path = format!("/v1/events/{}", fixture.event_id);
    let untrusting = limited_node(&ledger, &[]).await;
    let trusting = limited_node(
        &ledger,
        &[("SPIN_VARIABLE_CLIENT_ADDR_HEADER", "X-Forwarded-For")],
    )
    .await;
    let client = client_from(6);
    fresh_window().await;
    // Untrusted: a made-up address per request changes nothing, the connection counts.
    for n in 0..allowance(READS_PER_S) {
        let spoofed = format!("198.51.100.{}", n % 250);
        let answer = get_forwarded(&client, &untrusting, &path, &spoofed).await;
        assert_eq!(answer.status, 200, "read {n}: {answer:?}");
    }
    let answer = get_forwarded(&client, &untrusting, &path, "198.51.100.251").await;
    assert_rate_limited(&answer, "spoofed forwarding header");

    // Trusted: the rightmost entry is the client, whatever the connection.
    for n in 0..allowance(READS_PER_S) {
        let answer = get_forwarded(&client, &trusting, &path, "6.6.6.6, 203.0.113.1").await;
        assert_eq!(answer.status, 200, "read {n}: {answer:?}");
    }
    let answer = get_forwarded(&client, &trusting, &path, "203.0.113.1").await;
    assert_rate_limited(&answer, "forwarded client");
    let answer = get_forwarded(&client, &trusting, &path, "203.0.113.1, 203.0.113.2").await;
    assert_eq!(answer.status, 200, "another forwarded client: {answer:?}");
    // Without the header the connection's address counts.
    assert_eq!(get(&client, &trusting, &path).await.status, 200);
    untrusting.stop().await;
    trusting.stop().await;
    ledger.stop().await;
}
