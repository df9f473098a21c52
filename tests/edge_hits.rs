//! What a cache hit at the edge costs in calls into the host, read off the node's own
//! counters (`edge_host_calls_per_request`, `edge_host_calls_total`): a bounded number in
//! all, the key-value store opened once and read only for what the hit checks, and no
//! variable the hit does not use; and neither a hit nor a forwarded hold grows its
//! instance's memory (`edge_memory_grows_total`). The real components of `spin.toml` in
//! a `tessera-edge` process, in front of a real ledger on PostgreSQL with invalidations
//! over Redis, as in `edge.rs`.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use sqlx::PgPool;

use tessera_testkit::edge::{EdgeNode, EdgeOptions, EDGE_KEY};
use tessera_testkit::ledger::spawn_app_with;
use tessera_testkit::metrics::sum_metric;

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// A cache lifetime no test outlives: the entries stay hits throughout.
const LONG_TTL_MS: &str = "3600000";
/// Hits measured per path: every hit makes the same calls, so a few catch a call made
/// only sometimes.
const HITS: u32 = 20;
/// The most calls into the host one hit may make on average (imports, the component
/// model's built-ins, libcalls such as memory growth and the odd epoch check): 24 for
/// availability and 22 for an event when this bound was set; 37 and 35 before the hit
/// path was reworked (issue 11); 25 and 23 with the rate limit's variable read (issue 15).
const HIT_HOST_CALLS_MAX: f64 = 26.0;
/// The most calls into the host one forwarded hold may make on average (reading the
/// request, the rate limit and settings, the cached show and event, the forwarded-key
/// memory, the exchange with the ledger, the answer): 88 when this bound was set; 107
/// before the ledger client wrote a small body before handing the request over and read
/// answers in blocking reads, and the request's headers were read at once (issue 11); 92
/// since the forwarded-key memory is written by compare-and-swap (a `wasi:keyvalue`
/// bucket opened and dropped, `cas.new`, `current` and `swap`, instead of one `set`).
const FORWARDED_HOLD_HOST_CALLS_MAX: f64 = 96.0;
/// Forwarded holds measured.
const FORWARDED_HOLDS: u32 = 20;
/// Another build's manifest (its components), to count its hits the same way: the counts
/// are printed and not held to this build's bounds.
const MANIFEST_ENV: &str = "EDGE_HITS_MANIFEST";
/// How long the first read's entry may take to become a hit (it is stored before the
/// first answer leaves, so at once in practice).
const HIT_DEADLINE: Duration = Duration::from_secs(5);

/// One path's hit and what it may cost in Spin calls.
struct HitPath {
    path: String,
    /// Open the store, read the entry, drop the store; availability also reads the
    /// invalidation stream's lease.
    key_value_calls: f64,
    /// Every read reads its rate limit (`rate_limit_reads_per_s`, off in the kit's nodes: no
    /// key-value call follows); availability also reads `stream_freshness_ms`.
    variable_reads: f64,
}

/// One component's host-call counters in one scrape.
#[derive(Debug, Clone, Copy)]
struct Calls {
    requests: f64,
    all: f64,
    key_value: f64,
    variables: f64,
    memory_grows: f64,
}

/// `component`'s host-call counters in one scrape.
async fn component_calls(edge: &EdgeNode, component: &str) -> Calls {
    let text = edge.scrape().await.expect("edge metrics");
    let component = ("component", component);
    let total = |interface: &str| {
        sum_metric(
            &text,
            "edge_host_calls_total",
            &[component, ("interface", interface)],
        )
    };
    Calls {
        requests: sum_metric(&text, "edge_host_calls_per_request_count", &[component]),
        all: sum_metric(&text, "edge_host_calls_per_request_sum", &[component]),
        key_value: total("fermyon:spin/key-value"),
        variables: total("fermyon:spin/variables"),
        memory_grows: sum_metric(&text, "edge_memory_grows_total", &[component]),
    }
}

/// `component`'s counters once they count `requests` in all: a request's counts are
/// recorded when its guest finishes, which may be just after its answer left.
async fn settled_calls(edge: &EdgeNode, component: &str, requests: f64) -> Calls {
    tessera_testkit::wait_until("the host calls are counted", HIT_DEADLINE, || async {
        component_calls(edge, component).await.requests >= requests
    })
    .await;
    component_calls(edge, component).await
}

/// Reads `path` until the node answers it from its cache; how many reads that took.
async fn wait_hit(edge: &EdgeNode, path: &str) -> u32 {
    let started = Instant::now();
    let mut reads = 0;
    loop {
        let response = edge.get(path).await;
        reads += 1;
        assert_eq!(response.status(), 200, "{path}");
        if response
            .headers()
            .get("tessera-cache")
            .map(|v| v.as_bytes())
            == Some(b"hit")
        {
            return reads;
        }
        assert!(
            started.elapsed() < HIT_DEADLINE,
            "{path} never became a hit"
        );
        tokio::time::sleep(tessera_testkit::POLL_INTERVAL).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_cache_hit_makes_few_host_calls(pool: PgPool) {
    let ledger = spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await;
    let fixture = ledger.event_with_zone(50).await;
    let other_build = std::env::var_os(MANIFEST_ENV);
    let mut options = EdgeOptions::for_app(EDGE_BIN, &ledger)
        .env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS)
        .env("SPIN_VARIABLE_CATALOG_TTL_MS", LONG_TTL_MS);
    if let Some(manifest) = &other_build {
        options = options.manifest(manifest);
    }
    let edge = EdgeNode::start_for_test(options).await;
    let paths = [
        HitPath {
            path: format!("/v1/shows/{}/availability", fixture.show_id),
            key_value_calls: 4.0,
            variable_reads: 2.0,
        },
        HitPath {
            path: format!("/v1/events/{}", fixture.event_id),
            key_value_calls: 3.0,
            variable_reads: 1.0,
        },
    ];
    let mut sent = 0.0;
    for hit in &paths {
        sent += f64::from(wait_hit(&edge, &hit.path).await);
        let before = settled_calls(&edge, "catalog", sent).await;
        for _ in 0..HITS {
            let response = edge.get(&hit.path).await;
            assert_eq!(response.status(), 200);
            let cache = response.headers().get("tessera-cache").cloned();
            assert_eq!(cache.as_ref().map(|v| v.as_bytes()), Some(&b"hit"[..]));
            assert!(response.headers().contains_key("etag"));
            let body: serde_json::Value = response.json().await.expect("a JSON document");
            assert!(body.is_object(), "{body}");
        }
        sent += f64::from(HITS);
        let after = settled_calls(&edge, "catalog", sent).await;
        let requests = after.requests - before.requests;
        assert_eq!(requests, f64::from(HITS), "only the hits ran: {after:?}");
        let per_hit = |after: f64, before: f64| (after - before) / requests;
        let all = per_hit(after.all, before.all);
        let key_value = per_hit(after.key_value, before.key_value);
        let variables = per_hit(after.variables, before.variables);
        println!(
            "{}: per hit {all} host calls, {key_value} key-value, {variables} variables",
            hit.path
        );
        if other_build.is_some() {
            continue;
        }
        assert!(
            all <= HIT_HOST_CALLS_MAX,
            "{}: {all} host calls per hit (at most {HIT_HOST_CALLS_MAX})",
            hit.path
        );
        assert_eq!(
            key_value, hit.key_value_calls,
            "{}: key-value calls per hit",
            hit.path
        );
        assert_eq!(
            variables, hit.variable_reads,
            "{}: variable reads per hit",
            hit.path
        );
        assert_eq!(
            after.memory_grows, before.memory_grows,
            "{}: a hit grew its instance's memory",
            hit.path
        );
    }
    edge.stop().await;
    ledger.stop().await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_forwarded_hold_makes_few_host_calls(pool: PgPool) {
    let ledger = spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await;
    let fixture = ledger.event_with_zone(100).await;
    let edge = EdgeNode::start_for_test(EdgeOptions::for_app(EDGE_BIN, &ledger)).await;
    let hold = |customer: u32| {
        serde_json::json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                           "quantity": 1, "customer_id": format!("hits-{customer}")})
    };
    // The first hold fetches the show and the event into the cache; the rest read them.
    let (status, body, _) = edge.post_hold(&hold(0), Some("hits-warm")).await;
    assert_eq!(status, 201, "{body}");
    let before = settled_calls(&edge, "holds", 1.0).await;
    for customer in 1..=FORWARDED_HOLDS {
        let key = format!("hits-{customer}");
        let (status, body, _) = edge.post_hold(&hold(customer), Some(&key)).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["customer_id"], format!("hits-{customer}"));
    }
    let after = settled_calls(&edge, "holds", f64::from(1 + FORWARDED_HOLDS)).await;
    let requests = after.requests - before.requests;
    assert_eq!(
        requests,
        f64::from(FORWARDED_HOLDS),
        "only the holds ran: {after:?}"
    );
    let all = (after.all - before.all) / requests;
    let key_value = (after.key_value - before.key_value) / requests;
    println!("per forwarded hold: {all} host calls, {key_value} key-value");
    assert!(
        all <= FORWARDED_HOLD_HOST_CALLS_MAX,
        "{all} host calls per forwarded hold (at most {FORWARDED_HOLD_HOST_CALLS_MAX})"
    );
    // Open the store; read the stream's lease, the show and the event; drop the store.
    // (The key's bucket is read and written by compare-and-swap, through `wasi:keyvalue`.)
    assert_eq!(key_value, 5.0, "key-value calls per forwarded hold");
    // The components start with the memory a request needs (.cargo/config.toml): a growth
    // costs two page-protection changes and a TLB shootdown on every core. (Each hold grew
    // its memory once when they started with only their stack and data.)
    let text = edge.scrape().await.expect("edge metrics");
    assert!(
        text.contains("edge_memory_grows_total{component=\"holds\"}"),
        "the node counts memory growth"
    );
    assert_eq!(
        after.memory_grows, 0.0,
        "no forwarded hold grows its instance's memory"
    );
    edge.stop().await;
    ledger.stop().await;
}
