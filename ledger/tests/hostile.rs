//! Hostile clients at the ledger, over raw HTTP/1.1 (what a client library never sends):
//! pipelined requests are answered in order; a 100 KB URL, 10,000 headers and a 100 KB
//! header are past the head bound (64 KiB), refused with a bare `431` before the router;
//! invalid UTF-8 and NUL in paths, queries and JSON bodies are a 4xx problem, never a 5xx;
//! after each the ledger keeps serving. Slow and idle clients are in `connections.rs`.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::json;
use sqlx::PgPool;
use tessera_testkit::ledger::{spawn_app, TestApp};
use tessera_testkit::raw_http::{
    get_request, hold_body, misanswered, post_json_request, Outcome, RawConnection,
};

/// The size of each oversized URL and header.
const LONG_BYTES: usize = 100 << 10;
/// Far past any server's header count bound.
const MANY_HEADERS: usize = 10_000;

/// Sends each case on its own connection; panics listing every case answered otherwise,
/// then checks the ledger still serves.
async fn assert_answers(app: &TestApp, cases: Vec<(&str, Vec<u8>, Outcome)>) {
    let wrong = misanswered(&app.addr.to_string(), cases).await;
    assert!(
        wrong.is_empty(),
        "answered otherwise:\n{}",
        wrong.join("\n")
    );
    assert_eq!(app.get_json("/health").await.0, 200, "still serving");
}

fn long(prefix: &str) -> Vec<u8> {
    [prefix.as_bytes(), &vec![b'a'; LONG_BYTES]].concat()
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn pipelined_requests_are_each_answered_in_order(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let hold = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                      "quantity": 1, "customer_id": "pipelined"});
    let requests = [
        get_request(b"/health", b""),
        post_json_request("/v1/holds", "pipelined", hold.to_string().as_bytes()),
        get_request(format!("/v1/events/{}", fixture.event_id).as_bytes(), b""),
        get_request(b"/v1/nowhere", b""),
    ];
    let mut conn = RawConnection::open(&app.addr.to_string()).await;
    conn.send(&requests.concat())
        .await
        .expect("all written before any read");
    let mut statuses = Vec::new();
    for _ in &requests {
        statuses.push(conn.response().await.expect("an answer per request"));
    }
    let codes: Vec<u16> = statuses.iter().map(|answer| answer.status).collect();
    assert_eq!(codes, [200, 201, 200, 404], "{statuses:?}");
    assert!(
        statuses[1].body.contains("\"hold_id\""),
        "{:?}",
        statuses[1]
    );
    assert!(
        statuses[2].body.contains(&fixture.event_id),
        "{:?}",
        statuses[2]
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn oversized_urls_and_heads_are_refused_cleanly(pool: PgPool) {
    let app = spawn_app(pool).await;
    let many: Vec<u8> = (0..MANY_HEADERS)
        .flat_map(|i| format!("X-Hostile-{i}: v\r\n").into_bytes())
        .collect();
    let big_header = [long("X-Hostile: ").as_slice(), b"\r\n"].concat();
    let cases = vec![
        (
            "100 KB path",
            get_request(&long("/v1/events/"), b""),
            Outcome::Refused(431),
        ),
        (
            "100 KB query",
            get_request(&long("/v1/events?q="), b""),
            Outcome::Refused(431),
        ),
        (
            "10,000 headers",
            get_request(b"/health", &many),
            Outcome::Refused(431),
        ),
        (
            "100 KB header",
            get_request(b"/health", &big_header),
            Outcome::Refused(431),
        ),
    ];
    assert_answers(&app, cases).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn invalid_utf8_and_nul_are_a_4xx_problem_never_a_5xx(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let post = |key: &str, customer: &[u8]| {
        post_json_request("/v1/holds", key, &hold_body(&fixture, customer))
    };
    let cases = vec![
        (
            "%FF in a path",
            get_request(b"/v1/events/%FF", b""),
            Outcome::Problem(422),
        ),
        (
            "raw 0xFF in a path",
            get_request(b"/v1/events/\xFF", b""),
            Outcome::Refused(400),
        ),
        (
            "%00 in a path",
            get_request(b"/v1/events/a%00b", b""),
            Outcome::Problem(422),
        ),
        (
            "raw NUL in a path",
            get_request(b"/v1/events/a\0b", b""),
            Outcome::Refused(400),
        ),
        (
            "%00 in a query",
            get_request(b"/v1/events?q=a%00b", b""),
            Outcome::Problem(422),
        ),
        (
            "%FF in a query (not UTF-8)",
            get_request(b"/v1/events?q=%FF", b""),
            Outcome::Problem(422),
        ),
        (
            "%FF in a filter (not UTF-8)",
            get_request(b"/v1/events?city=%FF", b""),
            Outcome::Problem(422),
        ),
        (
            "raw NUL in a query",
            get_request(b"/v1/events?q=a\0b", b""),
            Outcome::Refused(400),
        ),
        (
            "raw 0xFF in a body",
            post("utf8", b"a\xFFb"),
            Outcome::Problem(400),
        ),
        (
            "escaped NUL in a body",
            post("nul", b"a\\u0000b"),
            Outcome::Problem(422),
        ),
        (
            "raw NUL in a body",
            post("raw-nul", b"a\0b"),
            Outcome::Problem(400),
        ),
    ];
    assert_answers(&app, cases).await;
    app.stop().await;
}

/// Body limit for [`bodies_past_the_limit_are_413_chunked_or_declared`]: small, so the
/// bodies that pass it are small too.
const BODY_MAX_BYTES: usize = 1024;

/// A body past `REQUEST_BODY_MAX_BYTES` is 413 whether it streams chunked or declares its
/// length up front; a declared length is refused before any of the body is sent (the body
/// timeout is far longer than the raw client waits, so waiting for the body would fail).
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn bodies_past_the_limit_are_413_chunked_or_declared(pool: PgPool) {
    let app = tessera_testkit::ledger::spawn_app_with(
        pool,
        &[
            ("REQUEST_BODY_MAX_BYTES", BODY_MAX_BYTES.to_string()),
            ("BODY_READ_TIMEOUT_MS", "60000".to_owned()),
        ],
    )
    .await;
    let chunk = vec![b'a'; 2 * BODY_MAX_BYTES];
    let chunked = [
        b"POST /v1/holds HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\n\
          Idempotency-Key: chunked-big\r\nTransfer-Encoding: chunked\r\n\r\n"
            .as_slice(),
        format!("{:x}\r\n", chunk.len()).as_bytes(),
        &chunk,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    let declared = format!(
        "POST /v1/holds HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\n\
         Idempotency-Key: declared-big\r\nContent-Length: {}\r\n\r\n",
        10 * BODY_MAX_BYTES
    )
    .into_bytes();
    assert_answers(
        &app,
        vec![
            ("chunked past the limit", chunked, Outcome::Problem(413)),
            ("declared past the limit", declared, Outcome::Problem(413)),
        ],
    )
    .await;
}
