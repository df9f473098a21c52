//! Health, readiness, metrics (on the operations listener), the edge key, the generated
//! OpenAPI document (every status and bound the server has), and a database connection
//! lost mid-request (a retryable 503).

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::buyer::EMAIL_PATTERN;
use tessera_domain::fields::{MULTI_LINE_PATTERN, NO_CONTROLS_PATTERN, SINGLE_LINE_PATTERN};
use tessera_testkit::ledger::{
    lock_waiters, lock_zone, spawn_app, spawn_app_with, zone_counters, TestApp,
};
use tessera_testkit::metrics::sum_metric;
use tessera_testkit::services::own_redis::OwnRedis;
use tessera_testkit::{wait_until, wait_until_every};

/// How often the shutdown test looks at the counters: often, so it stops mid-flight.
const SHUTDOWN_POLL: Duration = Duration::from_millis(2);

/// `GET path` on the public port, with an edge key if given.
async fn get(app: &TestApp, path: &str, edge_key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(key) = edge_key {
        request = request.header(tessera_domain::EDGE_KEY_HEADER, key);
    }
    request.send().await.expect("request")
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn health_and_readiness(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    assert_eq!(app.get_json("/health").await.0, 200);
    let (status, ready) = app.get_json("/health/ready").await;
    assert_eq!((status, ready["redis"].as_str()), (200, Some("up")));
    app.stop().await;

    // Nothing listens on port 1: Redis is reported down, and holds still work.
    let app = spawn_app_with(pool, &[("REDIS_URL", "redis://127.0.0.1:1".to_owned())]).await;
    let (status, problem) = app.get_json("/health/ready").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("unavailable"))
    );
    assert!(problem["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("redis"));
    let fixture = app.event_with_zone(2).await;
    assert_eq!(app.hold(&fixture, 1, "a", "k").await.0, 201);
    app.stop().await;
}

/// A field of `INFO` (e.g. `total_connections_received`).
async fn redis_info(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").query_async(conn).await.expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|value| value.trim().parse().expect("a number"))
        .unwrap_or_else(|| panic!("{field} missing from INFO"))
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn readiness_reuses_one_redis_connection(pool: PgPool) {
    // A Redis of our own: on the shared one, other tests open connections all the time.
    let redis = OwnRedis::start().await;
    let app = spawn_app_with(pool, &[("REDIS_URL", redis.url())]).await;
    let mut counter = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    assert_eq!(app.get_json("/health/ready").await.0, 200, "first probe");
    let accepted = redis_info(&mut counter, "total_connections_received").await;
    let clients = redis_info(&mut counter, "connected_clients").await;
    for _ in 0..20 {
        assert_eq!(app.get_json("/health/ready").await.0, 200);
    }
    // A margin of one for the relay connecting on its own; a connection per probe is 20.
    let opened = redis_info(&mut counter, "total_connections_received").await - accepted;
    assert!(opened <= 1, "20 probes opened {opened} Redis connections");
    let now_connected = redis_info(&mut counter, "connected_clients").await;
    assert!(
        now_connected <= clients + 1,
        "clients grew from {clients} to {now_connected}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn metrics_are_served_on_the_operations_listener_only(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(5).await;
    assert_eq!(app.hold(&fixture, 1, "a", "k").await.0, 201);
    let text = app.metrics_text().await;
    for needle in [
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/holds\",status=\"201\"",
        "holds_created_total",
        "hold_batch_size_bucket",
        "outbox_backlog",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }

    let public = get(&app, "/metrics", None).await;
    assert_eq!(public.status(), 404, "no metrics on the public port");
    assert_eq!(public.headers()["content-type"], "application/problem+json");
    let problem: Value = public.json().await.expect("problem");
    assert_eq!(problem["code"], "not_found");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_edge_key_and_its_predecessor_mark_edge_traffic(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("EDGE_KEY", "key-2".to_owned()),
            ("EDGE_KEY_PREVIOUS", "key-1".to_owned()),
        ],
    )
    .await;
    // Only this test sends edge keys in this binary, so the edge series counts only ours.
    let requests = |text: &str, origin: &str| {
        sum_metric(
            text,
            "http_requests_total",
            &[("route", "/v1/categories"), ("origin", origin)],
        )
    };

    let wrong = get(&app, "/v1/categories", Some("key-0")).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    let problem: Value = wrong.json().await.expect("problem");
    assert_eq!(problem["code"], "unauthorized");

    let before = app.metrics_text().await;
    for key in ["key-1", "key-2"] {
        let response = get(&app, "/v1/categories", Some(key)).await;
        assert_eq!(response.status(), 200, "{key} is accepted");
    }
    let after = app.metrics_text().await;
    assert_eq!(
        requests(&after, "edge") - requests(&before, "edge"),
        2.0,
        "the previous and the current key count as edge traffic"
    );

    assert_eq!(get(&app, "/v1/categories", None).await.status(), 200);
    let last = app.metrics_text().await;
    assert_eq!(
        requests(&last, "edge"),
        requests(&after, "edge"),
        "no key is not edge traffic"
    );
    assert!(
        requests(&last, "direct") > requests(&after, "direct"),
        "no key is direct traffic"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn openapi_documents_every_route(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/v1/events",
        "/v1/events/{event_id}",
        "/v1/categories",
        "/v1/shows/{show_id}/availability",
        "/v1/holds",
        "/v1/holds/{hold_id}",
        "/v1/holds/{hold_id}/confirm",
        "/v1/holds/{hold_id}/release",
        "/admin/v1/events",
        "/admin/v1/events/{event_id}/publish",
        "/admin/v1/events/{event_id}/cancel",
        "/admin/v1/events/{event_id}/shows/{show_id}",
        "/admin/v1/events/{event_id}/zones/{zone_id}",
        "/health/ready",
    ] {
        assert!(paths.contains_key(path), "{path} missing from openapi.json");
    }
    // The public document describes the public port: /metrics lives on the operations listener.
    assert!(
        !paths.contains_key("/metrics"),
        "/metrics is not a public route"
    );
    let schemas: &Value = &doc["components"]["schemas"];
    assert!(schemas["HoldRequest"].is_object() && schemas["Problem"].is_object());
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn shutdown_finishes_in_flight_holds(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = std::sync::Arc::new(app.event_with_zone(1000).await);
    let (base, show_id, zone_id) = (
        app.base.clone(),
        fixture.show_id.clone(),
        fixture.zone_ids[0].clone(),
    );
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..300)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            let body = json!({"show_id": show_id, "zone_id": zone_id, "quantity": 1, "customer_id": format!("c{i}")});
            tokio::spawn(async move {
                let response = client.post(format!("{base}/v1/holds")).header("Idempotency-Key", format!("s{i}")).json(&body).send().await;
                response.map(|r| r.status().as_u16()).ok()
            })
        })
        .collect();
    // Stop while requests are being committed.
    wait_until_every(
        SHUTDOWN_POLL,
        "holds are committing",
        Duration::from_secs(10),
        || async { zone_counters(&pool, &fixture.zone_ids[0]).await.1 >= 10 },
    )
    .await;
    app.stop().await; // asserts the ledger stopped cleanly within its grace period
    let mut answered = 0;
    for request in requests {
        match request.await.expect("task") {
            Some(201) => answered += 1,
            Some(other) => panic!("unexpected status {other} during shutdown"),
            None => {} // not accepted: the listener had closed
        }
    }
    let (_, held, _, _) = zone_counters(&pool, &fixture.zone_ids[0]).await;
    assert_eq!(
        held, answered,
        "every committed hold was answered, every answered hold committed"
    );
    assert!(
        answered >= 10,
        "requests in flight when shutdown began were answered ({answered})"
    );
}

/// The text rule each free-text body field is documented with (schema, property, pattern).
const TEXT_PATTERNS: [(&str, &str, &str); 13] = [
    ("NewEvent", "title", SINGLE_LINE_PATTERN),
    ("NewEvent", "category", SINGLE_LINE_PATTERN),
    ("NewEvent", "description", MULTI_LINE_PATTERN),
    ("NewVenue", "name", SINGLE_LINE_PATTERN),
    ("NewVenue", "city", SINGLE_LINE_PATTERN),
    ("NewZone", "name", SINGLE_LINE_PATTERN),
    ("EventPatch", "title", SINGLE_LINE_PATTERN),
    ("EventPatch", "category", SINGLE_LINE_PATTERN),
    ("EventPatch", "description", MULTI_LINE_PATTERN),
    ("ZonePatch", "name", SINGLE_LINE_PATTERN),
    ("ConfirmRequest", "payment_ref", SINGLE_LINE_PATTERN),
    ("BuyerRequest", "name", SINGLE_LINE_PATTERN),
    ("BuyerRequest", "email", EMAIL_PATTERN),
];

/// Every status each operation returns (`method path` → statuses, sorted), as
/// `/openapi.json` must list them.
const DOCUMENTED_STATUSES: [(&str, &str, &[u16]); 18] = [
    ("/v1/events", "get", &[200, 422, 503]),
    ("/v1/events/{event_id}", "get", &[200, 404, 422, 503]),
    ("/v1/categories", "get", &[200, 503]),
    (
        "/v1/shows/{show_id}/availability",
        "get",
        &[200, 404, 422, 503],
    ),
    (
        "/v1/holds",
        "post",
        &[201, 400, 403, 404, 408, 409, 413, 415, 422, 503],
    ),
    (
        "/v1/events/{event_id}/queue",
        "post",
        &[200, 201, 403, 404, 409, 422, 503],
    ),
    (
        "/v1/events/{event_id}/queue",
        "get",
        &[200, 403, 404, 409, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}/queue",
        "put",
        &[200, 400, 401, 403, 404, 408, 409, 413, 415, 422, 503],
    ),
    ("/v1/holds/{hold_id}", "get", &[200, 404, 422, 503]),
    (
        "/v1/holds/{hold_id}/confirm",
        "post",
        &[200, 400, 404, 408, 409, 413, 415, 422, 503],
    ),
    (
        "/v1/holds/{hold_id}/release",
        "post",
        &[200, 404, 409, 422, 503],
    ),
    (
        "/admin/v1/events",
        "post",
        &[201, 400, 401, 408, 409, 413, 415, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}",
        "get",
        &[200, 401, 403, 404, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}",
        "patch",
        &[200, 400, 401, 403, 404, 408, 413, 415, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}/publish",
        "post",
        &[200, 401, 403, 404, 409, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}/cancel",
        "post",
        &[200, 401, 403, 404, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}/shows/{show_id}",
        "patch",
        &[200, 400, 401, 403, 404, 408, 413, 415, 422, 503],
    ),
    (
        "/admin/v1/events/{event_id}/zones/{zone_id}",
        "patch",
        &[200, 400, 401, 403, 404, 408, 409, 413, 415, 422, 503],
    ),
];

/// What `/openapi.json` says `method path` answers: its statuses, sorted.
fn documented_statuses(doc: &Value, path: &str, method: &str) -> Vec<u16> {
    let responses = doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not documented"));
    let mut statuses: Vec<u16> = responses
        .keys()
        .map(|s| s.parse().expect("numeric status"))
        .collect();
    statuses.sort_unstable();
    statuses
}

/// The schema of parameter `name` of `method path`.
fn parameter<'d>(doc: &'d Value, path: &str, method: &str, name: &str) -> &'d Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn openapi_lists_every_status_each_operation_returns(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (_, doc) = app.get_json("/openapi.json").await;
    for (path, method, statuses) in DOCUMENTED_STATUSES {
        assert_eq!(
            documented_statuses(&doc, path, method),
            statuses,
            "{method} {path}"
        );
    }
    // Every operation that parses a body, a query or a path id documents 422; every admin
    // route documents 401, and 403 where an event, order or refund is owned.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let statuses = documented_statuses(&doc, path, method);
            let parses = operation.get("requestBody").is_some()
                || operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] != "header"));
            assert!(
                !parses || statuses.contains(&422),
                "{method} {path}: no 422"
            );
            if path.starts_with("/admin/") {
                assert!(statuses.contains(&401), "{method} {path}: no 401");
                // Owned through an event (the event itself, an order, a refund) or a webhook.
                let owned = ["{event_id}", "{hold_id}", "{refund_id}", "{webhook_id}"]
                    .iter()
                    .any(|id| path.contains(id));
                assert_eq!(statuses.contains(&403), owned, "{method} {path}: 403");
            }
        }
    }
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn openapi_states_the_bounds_the_server_enforces(pool: PgPool) {
    use tessera_domain::buyer::{BUYER_NAME_CHARS_MAX, EMAIL_CHARS_MAX};
    use tessera_domain::holds::{PAYMENT_REF_LEN_MAX, QUANTITY_PER_ORDER_MAX};
    use tessera_domain::ids::{CUSTOMER_ID_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX};
    use tessera_domain::money::PRICE_MINOR_MAX;
    use tessera_ledger::catalog::public::{PAGE_SIZE_MAX, QUERY_LEN_MAX};

    let app = spawn_app(pool).await;
    let (_, doc) = app.get_json("/openapi.json").await;
    let limit = parameter(&doc, "/v1/events", "get", "limit");
    assert_eq!(
        (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
        (Some(1), Some(PAGE_SIZE_MAX))
    );
    let q = parameter(&doc, "/v1/events", "get", "q");
    assert_eq!(q["maxLength"].as_u64(), Some(QUERY_LEN_MAX as u64));
    for path in ["/v1/holds", "/v1/holds/{hold_id}/confirm"] {
        let key = parameter(&doc, path, "post", "Idempotency-Key");
        assert_eq!(
            (key["minLength"].as_u64(), key["maxLength"].as_u64()),
            (Some(1), Some(IDEMPOTENCY_KEY_LEN_MAX as u64)),
            "{path}"
        );
        assert!(key["pattern"].is_string(), "{path}: the key's alphabet");
    }
    let schemas = &doc["components"]["schemas"];
    let payment_ref = &schemas["ConfirmRequest"]["properties"]["payment_ref"];
    assert_eq!(
        (
            payment_ref["minLength"].as_u64(),
            payment_ref["maxLength"].as_u64()
        ),
        (Some(1), Some(PAYMENT_REF_LEN_MAX as u64))
    );
    let buyer = &schemas["BuyerRequest"];
    assert_eq!(
        (
            buyer["properties"]["name"]["maxLength"].as_u64(),
            buyer["properties"]["email"]["maxLength"].as_u64(),
            buyer["additionalProperties"].as_bool(),
        ),
        (
            Some(BUYER_NAME_CHARS_MAX as u64),
            Some(EMAIL_CHARS_MAX as u64),
            Some(false)
        )
    );
    let hold = &schemas["HoldRequest"]["properties"];
    assert_eq!(
        (
            hold["quantity"]["minimum"].as_i64(),
            hold["quantity"]["maximum"].as_i64()
        ),
        (Some(1), Some(i64::from(QUANTITY_PER_ORDER_MAX)))
    );
    let zone = &schemas["NewZone"]["properties"];
    assert_eq!(
        zone["price_minor"]["maximum"].as_i64(),
        Some(PRICE_MINOR_MAX)
    );
    let per_order = zone["max_per_order"]["maximum"].as_i64();
    assert_eq!(per_order, Some(i64::from(QUANTITY_PER_ORDER_MAX)));
    assert_eq!(
        hold["customer_id"]["maxLength"].as_u64(),
        Some(CUSTOMER_ID_LEN_MAX as u64)
    );
    // The text rules (`tessera_domain::fields`) as patterns, on every field they guard.
    for name in ["q", "category", "city"] {
        let filter = parameter(&doc, "/v1/events", "get", name);
        assert_eq!(filter["pattern"], NO_CONTROLS_PATTERN, "{name}");
    }
    for (schema, property, pattern) in TEXT_PATTERNS {
        let field = &schemas[schema]["properties"][property];
        assert_eq!(field["pattern"], pattern, "{schema}.{property}: {field}");
    }
    let retry_after =
        &doc["paths"]["/v1/holds"]["post"]["responses"]["503"]["headers"]["Retry-After"];
    assert!(retry_after.is_object(), "503 documents Retry-After");
    app.stop().await;
}

/// Ends every backend of the test's database but the caller's own (the ledger's pool,
/// mid-query ones included): what a PostgreSQL restart or failover does to the ledger.
async fn terminate_other_backends(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()) ended",
    )
    .fetch_one(conn)
    .await
    .expect("terminate backends")
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_terminated_database_connection_is_a_retryable_503(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let mut lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 2, "customer_id": "c1"});
    let hold = app
        .client
        .post(app.url("/v1/holds"))
        .header("Idempotency-Key", "terminated-1")
        .json(&body)
        .send();
    let hold = tokio::spawn(hold);
    wait_until(
        "the hold waits on the zone lock",
        Duration::from_secs(10),
        || async { lock_waiters(&pool).await >= 1 },
    )
    .await;
    // 57P01 "terminating connection due to administrator command" reaches the hold batch.
    assert!(terminate_other_backends(&mut lock).await >= 1);
    let response = hold.await.expect("task").expect("response");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "unavailable", "{problem}");
    lock.rollback().await.expect("release the lock");

    // Nothing was written: the retry with the same key holds.
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (10, 0, 0, 10)
    );
    let (status, view) = app.hold(&fixture, 2, "c1", "terminated-1").await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (8, 2, 0, 10)
    );
    app.stop().await;
}

/// A setting set to bytes that are not UTF-8 stops the ledger with an error naming it,
/// without its bytes (a key may be a secret), instead of being read as unset and quietly
/// taking its default.
#[tokio::test]
async fn a_setting_that_is_not_utf8_stops_the_ledger_naming_it() {
    let names = ["REQUEST_TIMEOUT_MS", "EDGE_KEY"];
    tessera_testkit::settings_not_utf8_are_refused(&names, || {
        let mut migrate = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-ledger"));
        // Nothing listens on port 9: a ledger that got past its settings fails later, and
        // differently.
        migrate
            .arg("migrate")
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none");
        migrate
    })
    .await;
}
