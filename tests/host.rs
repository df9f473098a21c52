//! The edge host's own limits and lifecycle, end to end: a real `tessera-edge` process
//! serving the test-only fixture components of `tests/fixtures/host.toml` (no ledger, no
//! Redis): the body limit on chunked bodies, the per-instance memory cap, the operations
//! listener, the outbound metrics, graceful shutdown on SIGTERM, what slow and idle
//! clients may hold (a connection, bounded and timed out; never an instance), and what
//! hostile heads get (pipelining, oversized heads, raw bytes in URLs), and the key-value
//! interfaces `wasi:keyvalue` (store, atomics, batch) over the node's store, on the
//! `kv-probe` fixture.
//!
//! The fixtures are built with
//! `cargo build --manifest-path tests/fixtures/components/Cargo.toml --workspace --release --target wasm32-wasip2`.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::edge::{fixture_manifest, EdgeNode, EdgeOptions};
use tessera_testkit::services::unique_channel;

use tessera_testkit::raw_http::{
    get_request, misanswered, post_json_request, slow_heads_closed_within, Outcome, RawConnection,
    RawResponse,
};

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// The fixture's one allowed outbound host (port 9, discard: nothing listens there).
const NO_LEDGER: &str = "http://127.0.0.1:9";
/// Longest any single request in these tests may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(20);
/// The host's default body limit (EDGE_REQUEST_BODY_MAX_BYTES).
const BODY_MAX_BYTES: usize = 1 << 20;
/// What the fixture's slow answer writes before and after its pause.
const SLOW_FIRST: &str = "started\n";
const SLOW_LAST: &str = "finished\n";

/// A `tessera-edge` process on the host fixture manifest (no ledger, no Redis), with `env`
/// on top of the kit's settings.
async fn start_node(env: &[(&str, &str)]) -> EdgeNode {
    let options = env.iter().fold(
        EdgeOptions::new(EDGE_BIN, NO_LEDGER, &unique_channel())
            .manifest(fixture_manifest("host.toml"))
            .without_redis(),
        |options, (name, value)| options.env(name, value),
    );
    EdgeNode::start_for_test(options).await
}

/// Status and body text of `GET path`.
async fn get_text(node: &EdgeNode, path: &str) -> (u16, String) {
    let response = node.get(path).await;
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// `GET path` answered with a problem: its status and document.
async fn get_problem(node: &EdgeNode, path: &str) -> (u16, Value) {
    let response = node.get(path).await;
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    (status, response.json().await.expect("problem json"))
}

/// `POST path` with a chunked body of `len` bytes over a raw connection (no client library
/// that might add a Content-Length), written while the answer is read; returns the status
/// code and the body of the answer.
async fn post_chunked(authority: &str, path: &str, len: usize) -> (u16, String) {
    const CHUNK_BYTES: usize = 64 << 10;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    let stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(REQUEST_LIMIT))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    // The host may answer and close before the whole body is written: errors writing are
    // expected then, and only the answer counts.
    std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(head.as_bytes())?;
        let chunk = vec![b'x'; CHUNK_BYTES];
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK_BYTES);
            write!(writer, "{n:x}\r\n")?;
            writer.write_all(&chunk[..n])?;
            writer.write_all(b"\r\n")?;
            left -= n;
        }
        writer.write_all(b"0\r\n\r\n")
    });
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = Vec::new();
        let mut reader = stream;
        // Until the host closes (or resets) the connection: whatever arrived is the answer.
        let _ = reader.read_to_end(&mut answer);
        answer
    })
    .await
    .expect("reader");
    // The host sends a small body whole (Content-Length) when the guest finishes it at
    // once, and streams it chunked when it does not (a loaded machine): the same answer.
    let response = RawResponse::parse(&answer)
        .await
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)));
    (response.status, response.body)
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused_and_the_node_keeps_serving() {
    let node = start_node(&[]).await;
    // Under the limit the fixture reads a chunked body to the end (the limit is not a
    // refusal of chunked bodies).
    let half = BODY_MAX_BYTES / 2;
    let (status, body) = post_chunked(&node.authority, "/runaway/count-body", half).await;
    assert_eq!((status, body.trim()), (200, half.to_string().as_str()));

    // 2 MB with no Content-Length: the fixture would read it all; the host cuts it.
    let (status, body) = post_chunked(&node.authority, "/runaway/count-body", 2_000_000).await;
    assert_eq!(status, 413, "{body}");
    let problem: Value = serde_json::from_str(&body).expect("problem json");
    assert_eq!(problem["code"], "payload_too_large", "{problem}");

    let (status, body) = get_text(&node, "/runaway/after?sleep_ms=0").await;
    assert_eq!((status, body.as_str()), (200, "started\nfinished\n"));
    assert_eq!(
        node.metric("edge_requests_total", &[("status", "413")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_guest_past_its_memory_cap_fails_alone() {
    let node = start_node(&[("EDGE_MEMORY_MAX_MIB", "16")]).await;
    // The hog and a normal request run at the same time: the normal one is in flight (its
    // head sent) before the hog starts, and finishes after the hog failed.
    let normal = node.get("/runaway/normal?sleep_ms=500").await;
    assert_eq!(normal.status(), 200);
    let (status, problem) = get_problem(&node, "/hog").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (500, Some("internal")),
        "{problem}"
    );
    assert_eq!(
        normal.text().await.expect("normal body"),
        format!("{SLOW_FIRST}{SLOW_LAST}")
    );
    assert_eq!(
        node.metric(
            "edge_guest_failures_total",
            &[("component", "memory-hog"), ("reason", "trap")]
        )
        .await,
        1.0
    );
    assert_eq!(
        node.metric("edge_guest_failures_total", &[("component", "runaway")])
            .await,
        0.0
    );
    // And the node goes on serving normal requests.
    let (status, body) = get_text(&node, "/runaway/following?sleep_ms=0").await;
    assert_eq!((status, body.as_str()), (200, "started\nfinished\n"));
}

#[tokio::test]
async fn metrics_are_served_on_the_operations_listener_only() {
    let node = start_node(&[]).await;
    let (status, _) = get_text(&node, "/runaway/warm?sleep_ms=0").await;
    assert_eq!(status, 200);

    let (status, problem) = get_problem(&node, "/metrics").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("not_found")),
        "{problem}"
    );
    assert_eq!(
        node.metric("edge_requests_total", &[("component", "runaway")])
            .await,
        1.0,
        "the operations listener serves the metrics"
    );
    assert_ne!(node.metrics_base, node.base);
    // Health answers on both.
    for base in [&node.base, &node.metrics_base] {
        let health: Value = node
            .client
            .get(format!("{base}/health"))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("health json");
        assert_eq!(health["status"], "ok", "{base}: {health}");
    }
}

#[tokio::test]
async fn outbound_requests_are_counted_by_component_and_method_and_refusals_apart() {
    let node = start_node(&[]).await;
    let requests = [("component", "runaway"), ("method", "GET")];
    assert_eq!(
        node.metric("edge_outbound_requests_total", &requests).await,
        0.0
    );

    // Allowed by the manifest, so sent (nothing listens there: the fixture answers 502).
    let (status, body) = get_text(&node, "/runaway/fetch?url=http://127.0.0.1:9/probe").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        node.metric("edge_outbound_requests_total", &requests).await,
        1.0
    );
    assert_eq!(node.metric("edge_outbound_denied_total", &[]).await, 0.0);

    // Not in allowed_outbound_hosts: refused by the host, counted as denied only.
    let (status, body) = get_text(&node, "/runaway/fetch?url=http://127.0.0.1:10/probe").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        node.metric("edge_outbound_requests_total", &requests).await,
        1.0
    );
    assert_eq!(node.metric("edge_outbound_denied_total", &[]).await, 1.0);
}

#[tokio::test]
async fn a_request_in_flight_at_sigterm_finishes_and_the_host_exits_cleanly() {
    const GRACE_SECONDS: u64 = 10;
    let grace = GRACE_SECONDS.to_string();
    let mut node = start_node(&[("EDGE_SHUTDOWN_GRACE_SECONDS", grace.as_str())]).await;
    // In flight for certain: its head and first line arrived, its last line is 1.5 s away.
    let mut response = node.get("/runaway/slow?sleep_ms=1500").await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    while received.len() < SLOW_FIRST.len() {
        let chunk = response.chunk().await.expect("first chunk");
        received.extend_from_slice(&chunk.expect("the answer is not over yet"));
    }
    assert_eq!(received, SLOW_FIRST.as_bytes());

    let terminated = Instant::now();
    node.terminate().expect("SIGTERM sent");
    while let Some(chunk) = response.chunk().await.expect("the rest of the answer") {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&received),
        format!("{SLOW_FIRST}{SLOW_LAST}"),
        "the in-flight answer arrived whole"
    );
    let status = node
        .exited_within(Duration::from_secs(GRACE_SECONDS))
        .await
        .expect("exited within its grace");
    assert!(status.success(), "exit status {status}");
    assert!(
        terminated.elapsed() < Duration::from_secs(GRACE_SECONDS),
        "stopped within its grace: {:?}",
        terminated.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_body_holds_no_instance_and_is_answered_408() {
    const INSTANCES: usize = 8;
    const STALLED: usize = 4 * INSTANCES;
    const BODY_READ_TIMEOUT_MS: u64 = 2000;
    let timeout = BODY_READ_TIMEOUT_MS.to_string();
    let instances = INSTANCES.to_string();
    let node = start_node(&[
        ("EDGE_INSTANCES_MAX", instances.as_str()),
        ("EDGE_BODY_READ_TIMEOUT_MS", timeout.as_str()),
    ])
    .await;
    // Each announces 1000 bytes and sends 500. `100 Continue` comes when the node starts
    // reading the body: all of them are being read at once, four times the instance slots.
    let head = "POST /runaway/count-body HTTP/1.1\r\nHost: edge\r\nContent-Length: 1000\r\n\
                Expect: 100-continue\r\n\r\n";
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut conn = RawConnection::open(&node.authority).await;
        conn.send(head.as_bytes()).await.expect("head sent");
        let interim = conn.response().await.expect("an interim answer");
        assert_eq!(interim.status, 100, "{interim:?}");
        conn.send(&[b'x'; 500]).await.expect("half the body sent");
        stalled.push(conn);
    }

    // Meanwhile a read and a whole body are served: no slot is held by the stalled ones.
    let (status, body) = get_text(&node, "/runaway/meanwhile?sleep_ms=0").await;
    assert_eq!((status, body.as_str()), (200, "started\nfinished\n"));
    let (status, body) = post_chunked(&node.authority, "/runaway/count-body", 100).await;
    assert_eq!((status, body.trim()), (200, "100"));

    for conn in &mut stalled {
        conn.expect_request_timeout(REQUEST_LIMIT).await;
    }
    assert_eq!(
        node.metric("edge_requests_total", &[("status", "408")])
            .await,
        STALLED as f64
    );
    assert_eq!(node.metric("edge_guest_failures_total", &[]).await, 0.0);
}

#[tokio::test]
async fn past_the_connection_bound_new_connections_are_closed_and_health_answers_apart() {
    const BOUND: usize = 50;
    const PAST: usize = 10;
    let bound = BOUND.to_string();
    // Long enough that no connection goes idle during the test.
    let node = start_node(&[
        ("EDGE_CONNECTIONS_MAX", bound.as_str()),
        ("EDGE_IDLE_TIMEOUT_MS", "60000"),
    ])
    .await;
    let request = b"GET /health HTTP/1.1\r\nHost: edge\r\n\r\n";
    // Each of these is served once (so the node has certainly admitted it), then kept open.
    let mut open = Vec::new();
    for _ in 0..BOUND {
        let mut conn = RawConnection::open(&node.authority).await;
        conn.send(request).await.expect("request sent");
        assert_eq!(conn.response().await.expect("answered").status, 200);
        open.push(conn);
    }
    for _ in 0..PAST {
        let mut conn = RawConnection::open(&node.authority).await;
        // The write may already fail: the node closed the connection on accepting it.
        let _ = conn.send(request).await;
        let received = conn.closed_within(REQUEST_LIMIT).await;
        assert_eq!(received, "", "past the bound nothing is answered");
    }
    assert_eq!(
        node.metric("edge_connections_refused_total", &[]).await,
        PAST as f64
    );
    assert_eq!(
        node.metric("edge_connections_open", &[]).await,
        BOUND as f64
    );
    let health = node
        .health()
        .await
        .expect("health on the operations listener");
    assert_eq!(health["status"], "ok", "{health}");

    // One closes: a new connection is served again.
    drop(open.pop());
    tessera_testkit::wait_until("a connection is admitted again", REQUEST_LIMIT, || async {
        let mut conn = RawConnection::open(&node.authority).await;
        let _ = conn.send(request).await;
        conn.response()
            .await
            .is_some_and(|answer| answer.status == 200)
    })
    .await;
}

#[tokio::test]
async fn silent_idle_and_slowloris_connections_are_closed_after_the_idle_timeout() {
    const IDLE_TIMEOUT_MS: u64 = 500;
    /// Ten times the timeout: a connection still open then was never going to close.
    const CLOSE_LIMIT: Duration = Duration::from_millis(10 * IDLE_TIMEOUT_MS);
    let timeout = IDLE_TIMEOUT_MS.to_string();
    let node = start_node(&[("EDGE_IDLE_TIMEOUT_MS", timeout.as_str())]).await;
    let mut conns = Vec::new();
    // Silent from the start.
    for _ in 0..20 {
        conns.push(RawConnection::open(&node.authority).await);
    }
    // Kept alive after one request, then silent.
    for _ in 0..5 {
        let mut conn = RawConnection::open(&node.authority).await;
        conn.send(b"GET /health HTTP/1.1\r\nHost: edge\r\n\r\n")
            .await
            .expect("request sent");
        assert_eq!(conn.response().await.expect("answered").status, 200);
        conns.push(conn);
    }
    // Heads that never end, and one trickled; all closed like the idle ones.
    slow_heads_closed_within(&node.authority, conns, CLOSE_LIMIT).await;
    tessera_testkit::wait_until("every connection is given back", REQUEST_LIMIT, || async {
        node.metric("edge_connections_open", &[]).await == 0.0
    })
    .await;
    let (status, _) = get_text(&node, "/runaway/after?sleep_ms=0").await;
    assert_eq!(status, 200);
}

/// Requests written back to back on one connection, before any answer is read, are each
/// answered, in order: host answers, a guest reading a body, and a guest's chunked answer.
#[tokio::test]
async fn pipelined_requests_are_each_answered_in_order() {
    let node = start_node(&[]).await;
    let requests = [
        get_request(b"/health", b""),
        post_json_request("/runaway/count-body", "pipelined", b"12345"),
        get_request(b"/nowhere", b""),
        get_request(b"/runaway/after?sleep_ms=0", b""),
    ];
    let mut conn = RawConnection::open(&node.authority).await;
    conn.send(&requests.concat())
        .await
        .expect("all written before any read");
    let mut answers = Vec::new();
    for _ in &requests {
        answers.push(conn.response().await.expect("an answer per request"));
    }
    let outcomes: Vec<Outcome> = answers.iter().map(|answer| answer.outcome()).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Plain(200),
            Outcome::Plain(200),
            Outcome::Problem(404),
            Outcome::Plain(200)
        ],
        "{answers:?}"
    );
    assert!(answers[1].body.contains('5'), "{:?}", answers[1]);
    assert_eq!(answers[3].body, format!("{SLOW_FIRST}{SLOW_LAST}"));
}

/// The size of each oversized URL and header.
const LONG_BYTES: usize = 100 << 10;

fn long(prefix: &str) -> Vec<u8> {
    [prefix.as_bytes(), &vec![b'a'; LONG_BYTES]].concat()
}

/// Heads past the host's bound (64 KiB) and bytes no URL may hold are refused by the
/// HTTP layer, before routing: a bare 4xx, never a 5xx or a hang, and the node keeps
/// serving. Escaped bytes are only text to the router: an unknown path is a 404 problem.
#[tokio::test]
async fn oversized_heads_and_raw_bytes_in_urls_are_refused_cleanly() {
    const MANY_HEADERS: usize = 10_000;
    let node = start_node(&[]).await;
    let many: Vec<u8> = (0..MANY_HEADERS)
        .flat_map(|i| format!("X-Hostile-{i}: v\r\n").into_bytes())
        .collect();
    let big_header = [long("X-Hostile: ").as_slice(), b"\r\n"].concat();
    let refused = |target: &[u8], extra: &[u8], status| (get_request(target, extra), status);
    let cases = vec![
        (
            "100 KB path",
            refused(&long("/runaway/"), b"", Outcome::Refused(431)),
        ),
        (
            "100 KB query",
            refused(&long("/health?q="), b"", Outcome::Refused(431)),
        ),
        (
            "10,000 headers",
            refused(b"/health", &many, Outcome::Refused(431)),
        ),
        (
            "100 KB header",
            refused(b"/health", &big_header, Outcome::Refused(431)),
        ),
        (
            "raw NUL in a path",
            refused(b"/health\0", b"", Outcome::Refused(400)),
        ),
        (
            "raw 0xFF in a path",
            refused(b"/health\xFF", b"", Outcome::Refused(400)),
        ),
        (
            "raw NUL in a query",
            refused(b"/health?q=\0", b"", Outcome::Refused(400)),
        ),
        (
            "%00 in a path",
            refused(b"/nowhere%00", b"", Outcome::Problem(404)),
        ),
        (
            "%FF in a path",
            refused(b"/nowhere%FF", b"", Outcome::Problem(404)),
        ),
    ]
    .into_iter()
    .map(|(name, (request, outcome))| (name, request, outcome))
    .collect();
    let wrong = misanswered(&node.authority, cases).await;
    assert!(
        wrong.is_empty(),
        "answered otherwise:\n{}",
        wrong.join("\n")
    );
    let (status, _) = get_text(&node, "/runaway/after?sleep_ms=0").await;
    assert_eq!(status, 200, "still serving");
}

/// `GET /kv/{op}?{query}` on the kv-probe fixture: status and body text.
async fn kv(node: &EdgeNode, op: &str, query: &str) -> (u16, String) {
    get_text(node, &format!("/kv/{op}?{query}")).await
}

#[tokio::test]
async fn wasi_keyvalue_buckets_are_the_spin_store_with_every_bucket_function() {
    let node = start_node(&[]).await;
    assert_eq!(kv(&node, "get", "key=a").await, (404, "absent".into()));
    assert_eq!(kv(&node, "exists", "key=a").await, (200, "false".into()));
    assert_eq!(kv(&node, "set", "key=a&value=one").await.0, 200);
    assert_eq!(kv(&node, "set", "key=b&value=two").await.0, 200);
    assert_eq!(kv(&node, "get", "key=a").await, (200, "one".into()));
    assert_eq!(kv(&node, "exists", "key=a").await, (200, "true".into()));
    // The Spin interface's store `default` is the same store.
    assert_eq!(kv(&node, "spin-get", "key=b").await, (200, "two".into()));
    assert_eq!(kv(&node, "keys", "").await, (200, "a\nb".into()));
    assert_eq!(kv(&node, "delete", "key=a").await.0, 200);
    assert_eq!(kv(&node, "exists", "key=a").await, (200, "false".into()));
    assert_eq!(kv(&node, "spin-get", "key=a").await.0, 404);
    // Batch: each key as on its own.
    assert_eq!(kv(&node, "batch-set", "pairs=c:3,d:4").await.0, 200);
    assert_eq!(
        kv(&node, "batch-get", "keys=b,c,x").await,
        (200, "b=two\nc=3\nx absent".into())
    );
    assert_eq!(kv(&node, "batch-delete", "keys=b,c").await.0, 200);
    assert_eq!(kv(&node, "keys", "").await, (200, "d".into()));
    for interface in ["wasi:keyvalue/store", "wasi:keyvalue/batch"] {
        let calls = node
            .metric(
                "edge_host_calls_total",
                &[("component", "kv-probe"), ("interface", interface)],
            )
            .await;
        assert!(calls >= 3.0, "{interface}: {calls} calls counted");
    }
}

#[tokio::test]
async fn increments_are_atomic_under_concurrent_requests_and_stored_as_spin_stores_them() {
    const REQUESTS: i64 = 64;
    let node = start_node(&[]).await;
    let answers = futures::future::join_all(
        (0..REQUESTS).map(|_| kv(&node, "increment", "key=hits&delta=1")),
    )
    .await;
    let mut values: Vec<i64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body.parse().expect("the new value")
        })
        .collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=REQUESTS).collect::<Vec<_>>(),
        "each increment saw its own value"
    );
    // 8 bytes, little-endian i64: what Spin's stores write, so `get` reads the same.
    let expected_hex: String = REQUESTS
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(kv(&node, "get-hex", "key=hits").await, (200, expected_hex));
    assert_eq!(
        kv(&node, "increment", "key=hits&delta=-4").await,
        (200, (REQUESTS - 4).to_string())
    );
    // A value that is not a counter is refused, not overwritten.
    assert_eq!(kv(&node, "set", "key=text&value=7").await.0, 200);
    assert_eq!(kv(&node, "increment", "key=text&delta=1").await.0, 500);
    assert_eq!(kv(&node, "get", "key=text").await, (200, "7".into()));
    let calls = node
        .metric(
            "edge_host_calls_total",
            &[
                ("component", "kv-probe"),
                ("interface", "wasi:keyvalue/atomics"),
            ],
        )
        .await;
    assert!(
        calls >= (REQUESTS + 2) as f64,
        "{calls} atomics calls counted"
    );
}

#[tokio::test]
async fn compare_and_swap_loses_no_update_under_concurrent_requests() {
    const REQUESTS: usize = 32;
    let node = start_node(&[]).await;
    let answers = futures::future::join_all(
        (0..REQUESTS).map(|_| kv(&node, "cas-add", "key=text-counter&delta=1")),
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(
        kv(&node, "get", "key=text-counter").await,
        (200, REQUESTS.to_string())
    );
}

/// The collision that concurrent writers of one cache entry meet only by chance, made on
/// purpose: a write between a swap's read and its swap refuses the swap (counted as
/// `changed`), hands back a retry that reads the newer value, and the retry lands. Both for
/// a key present when the swap began and for one absent then: a swap over an absent key is
/// conditional here too, so an evicted entry is not brought back by a writer that read it
/// absent.
#[tokio::test]
async fn a_write_between_a_swaps_read_and_its_swap_refuses_the_swap() {
    let node = start_node(&[]).await;
    let swaps = |result: &'static str| {
        let node = &node;
        async move {
            node.metric(
                "edge_kv_swaps_total",
                &[("component", "kv-probe"), ("result", result)],
            )
            .await
        }
    };
    assert_eq!(kv(&node, "set", "key=present&value=old").await.0, 200);
    for key in ["present", "absent"] {
        assert_eq!(
            kv(
                &node,
                "cas-over-a-write",
                &format!("key={key}&value=theirs")
            )
            .await,
            (200, "refused; retry read theirs; swapped".into()),
            "{key}"
        );
        assert_eq!(
            kv(&node, "get", &format!("key={key}")).await,
            (200, "mine".into())
        );
    }
    assert_eq!(swaps("changed").await, 2.0);
    assert_eq!(swaps("written").await, 2.0);
}

#[tokio::test]
async fn a_bucket_is_refused_without_key_value_stores_or_by_another_name() {
    let node = start_node(&[]).await;
    assert_eq!(
        get_text(&node, "/kv-undeclared/open").await,
        (403, "access-denied".into())
    );
    assert_eq!(
        get_text(&node, "/kv-undeclared/increment?key=n&delta=1").await,
        (403, "access-denied".into())
    );
    assert_eq!(
        kv(&node, "open", "store=elsewhere").await,
        (404, "no-such-store".into())
    );
    assert_eq!(kv(&node, "open", "").await, (200, "opened".into()));
    assert_eq!(kv(&node, "exists", "key=n").await, (200, "false".into()));
}

/// A host setting or an application variable set to bytes that are not UTF-8 stops the
/// node with an error naming it, without its bytes (variables may be secrets), instead of
/// being read as unset: a default taken, or a required variable reported missing.
#[tokio::test]
async fn a_setting_that_is_not_utf8_stops_the_node_naming_it() {
    let manifest = tessera_testkit::repo_root().join("spin.toml");
    let names = ["EDGE_INSTANCES_MAX", "SPIN_VARIABLE_EDGE_KEY"];
    tessera_testkit::settings_not_utf8_are_refused(&names, || {
        let mut node = tokio::process::Command::new(EDGE_BIN);
        node.env("EDGE_ADDR", "127.0.0.1:0")
            .env("EDGE_METRICS_ADDR", "127.0.0.1:0")
            .env("EDGE_MANIFEST", &manifest)
            .env("SPIN_VARIABLE_EDGE_KEY", tessera_testkit::edge::EDGE_KEY)
            .env("SPIN_VARIABLE_QUEUE_KEY", tessera_testkit::edge::QUEUE_KEY);
        node
    })
    .await;
}
