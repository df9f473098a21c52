//! Tenants and admin tokens without SQL (issue 14): the token API (create, list, revoke),
//! expiry and revocation refused at the door, tenant isolation, the last-use record, the
//! live-token bound, tokens in no listing and no log line, the migration that gave
//! existing tokens their ids, and the `tenant` / `token` commands of the real binary.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::process::Output;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::fields::SINGLE_LINE_PATTERN;
use tessera_domain::tokens::{
    TOKEN_EXPIRES_IN_SECONDS_MAX, TOKEN_EXPIRES_IN_SECONDS_MIN, TOKEN_LABEL_CHARS_MAX,
    TOKEN_RANDOM_CHARS, TOKEN_SHOWN_CHARS,
};
use tessera_ledger::auth::token_sha256;
use tessera_ledger::organizers::tokens::LIVE_TOKENS_PER_TENANT_MAX;
use tessera_testkit::ledger::{spawn_app, TestApp};
use uuid::Uuid;

const LEDGER_BIN: &str = env!("CARGO_BIN_EXE_tessera-ledger");

/// `method path` with `token` as the bearer and `body` if any: status and JSON body.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    call(
        app,
        reqwest::Method::POST,
        "/admin/v1/tokens",
        token,
        Some(body),
    )
    .await
}

async fn list(app: &TestApp, token: &str) -> (u16, Value) {
    call(app, reqwest::Method::GET, "/admin/v1/tokens", token, None).await
}

async fn revoke(app: &TestApp, token: &str, token_id: &str) -> (u16, Value) {
    let path = format!("/admin/v1/tokens/{token_id}/revoke");
    call(app, reqwest::Method::POST, &path, token, None).await
}

/// A new token of the app's tenant: the token and its id.
async fn new_token(app: &TestApp, body: &Value) -> (String, String) {
    let (status, issued) = create(app, &app.token, body).await;
    assert_eq!(status, 201, "{issued}");
    (
        issued["token"].as_str().expect("token").to_owned(),
        issued["token_id"].as_str().expect("token_id").to_owned(),
    )
}

/// The token ids of a listing.
fn ids(listing: &Value) -> Vec<String> {
    listing["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["token_id"].as_str().expect("token_id").to_owned())
        .collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}

async fn last_used_at(pool: &PgPool, token_id: &str) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("select last_used_at from api_tokens where id = $1")
        .bind(token_id.parse::<Uuid>().expect("uuid"))
        .fetch_one(pool)
        .await
        .expect("token row")
}

/// A 401 whose detail says `why`.
fn assert_refused(answer: &(u16, Value), why: &str) {
    assert_eq!(answer.0, 401, "{}", answer.1);
    assert_eq!(answer.1["code"], "unauthorized");
    let detail = answer.1["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(why), "{detail:?} should say {why:?}");
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_tenant_creates_lists_and_revokes_its_tokens(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (status, issued) = create(
        &app,
        &app.token,
        &json!({"label": "box office", "expires_in_seconds": 3600}),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("tsk_") && token.len() == 4 + TOKEN_RANDOM_CHARS);
    assert_eq!(issued["prefix"], token[..TOKEN_SHOWN_CHARS]);
    assert_eq!(issued["label"], "box office");
    let lifetime = time(&issued["expires_at"]) - time(&issued["created_at"]);
    assert_eq!(lifetime.num_seconds(), 3600);
    assert!(issued["revoked_at"].is_null() && issued["last_used_at"].is_null());
    // Only its hash is stored.
    let stored: i64 = sqlx::query_scalar("select count(*) from api_tokens where token_sha256 = $1")
        .bind(token_sha256(&token))
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);

    // The new token works, and both tokens are listed: metadata only.
    let (status, listing) = list(&app, &token).await;
    assert_eq!(status, 200, "{listing}");
    let token_id = issued["token_id"].as_str().expect("id").to_owned();
    assert_eq!(ids(&listing).len(), 2);
    assert!(ids(&listing).contains(&token_id));
    let text = listing.to_string();
    for secret in [&token, &app.token] {
        assert!(!text.contains(secret.as_str()), "a token in the listing");
    }
    assert!(listing["tokens"][0].get("token").is_none());

    // Revoked: refused at once; revoking again answers the same; the other token works.
    let (status, revoked) = revoke(&app, &app.token, &token_id).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        revoke(&app, &app.token, &token_id).await,
        (200, revoked.clone())
    );
    assert_refused(&list(&app, &token).await, "revoked");
    assert_eq!(list(&app, &app.token).await.0, 200);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn bad_token_requests_are_422_with_the_field_named(pool: PgPool) {
    let app = spawn_app(pool).await;
    let long = "x".repeat(TOKEN_LABEL_CHARS_MAX + 1);
    for (body, field) in [
        (json!({"label": ""}), "label"),
        (json!({"label": long}), "label"),
        (json!({"label": "a\u{7}b"}), "label"),
        (json!({"expires_in_seconds": 3600}), "label"),
        (
            json!({"label": "x", "expires_in_seconds": TOKEN_EXPIRES_IN_SECONDS_MIN - 1}),
            "expires_in_seconds",
        ),
        (
            json!({"label": "x", "expires_in_seconds": TOKEN_EXPIRES_IN_SECONDS_MAX + 1}),
            "expires_in_seconds",
        ),
        (
            json!({"label": "x", "expires_in_seconds": "1h"}),
            "expires_in_seconds",
        ),
        (json!({"label": "x", "tenant_id": Uuid::nil()}), "tenant_id"),
    ] {
        let (status, problem) = create(&app, &app.token, &body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("validation_failed")),
            "{body}"
        );
        // The field's name, or (for a missing or unknown one) the shape error naming it.
        let named = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| {
                e["field"] == field || e["message"].as_str().is_some_and(|m| m.contains(field))
            });
        assert!(named, "{body}: {problem}");
    }
    let (status, problem) = revoke(&app, &app.token, "not-a-uuid").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, problem) = revoke(&app, &app.token, &Uuid::now_v7().to_string()).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let (live,): (i64,) = sqlx::query_as("select count(*) from api_tokens")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(live, 1, "nothing was issued");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn missing_unknown_expired_and_revoked_tokens_are_each_told_apart(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (token, token_id) =
        new_token(&app, &json!({"label": "short", "expires_in_seconds": 60})).await;
    assert_eq!(list(&app, &token).await.0, 200, "works before it expires");
    sqlx::query(
        "update api_tokens set created_at = now() - interval '2 hours',
                last_used_at = null, expires_at = now() - interval '1 second' where id = $1",
    )
    .bind(token_id.parse::<Uuid>().expect("uuid"))
    .execute(&pool)
    .await
    .expect("expire it");
    let expired = list(&app, &token).await;
    assert_refused(&expired, "expired");
    assert_eq!(create(&app, &token, &json!({"label": "x"})).await.0, 401);

    let (revoked, revoked_id) = new_token(&app, &json!({"label": "gone"})).await;
    assert_eq!(revoke(&app, &app.token, &revoked_id).await.0, 200);
    let refused = list(&app, &revoked).await;
    assert_refused(&refused, "revoked");
    assert_ne!(expired.1["detail"], refused.1["detail"], "distinct details");
    assert_refused(
        &list(&app, &format!("tsk_{}", "A".repeat(43))).await,
        "unknown",
    );

    let response = app
        .client
        .get(app.url("/admin/v1/tokens"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    // The expired token is listed as such, with its expiry in the past.
    let (_, listing) = list(&app, &app.token).await;
    let entry = listing["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["token_id"] == token_id.as_str())
        .expect("the expired token is listed")
        .clone();
    assert!(time(&entry["expires_at"]) < Utc::now());
    assert!(entry["revoked_at"].is_null());
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_tenant_cannot_see_or_revoke_another_tenant_s_tokens(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (a_token, a_id) = new_token(&app, &json!({"label": "a's laptop"})).await;
    let mut conn = pool.acquire().await.expect("connection");
    let (_, b_token) = tessera_ledger::auth::create_tenant(&mut conn, "Rival")
        .await
        .expect("tenant B");
    let (status, b_listing) = list(&app, &b_token).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&b_listing).len(), 1, "only B's own token: {b_listing}");
    assert!(!ids(&b_listing).contains(&a_id));

    // A's token id is answered as if it did not exist, and stays working.
    let (status, problem) = revoke(&app, &b_token, &a_id).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("not_found")),
        "{problem}"
    );
    let revoked_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("select revoked_at from api_tokens where id = $1")
            .bind(a_id.parse::<Uuid>().expect("uuid"))
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(revoked_at, None);
    assert_eq!(list(&app, &a_token).await.0, 200);
    // B's own token, revoked by B, is B's business only.
    let b_id = ids(&b_listing)[0].clone();
    assert_eq!(revoke(&app, &app.token, &b_id).await.0, 404);
    assert_eq!(revoke(&app, &b_token, &b_id).await.0, 200);
    assert_eq!(list(&app, &a_token).await.0, 200);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn last_use_is_recorded_at_most_once_a_minute(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (token, token_id) = new_token(&app, &json!({"label": "integration"})).await;
    assert_eq!(last_used_at(&pool, &token_id).await, None, "never used");
    assert_eq!(list(&app, &token).await.0, 200);
    let first = last_used_at(&pool, &token_id)
        .await
        .expect("recorded on use");
    assert!(Utc::now() - first < Duration::seconds(30));
    assert_eq!(list(&app, &token).await.0, 200);
    assert_eq!(
        last_used_at(&pool, &token_id).await,
        Some(first),
        "not again within a minute"
    );

    sqlx::query(
        "update api_tokens set created_at = now() - interval '1 hour',
                last_used_at = now() - interval '2 minutes' where id = $1",
    )
    .bind(token_id.parse::<Uuid>().expect("uuid"))
    .execute(&pool)
    .await
    .expect("age the record");
    assert_eq!(list(&app, &token).await.0, 200);
    let later = last_used_at(&pool, &token_id).await.expect("recorded");
    assert!(
        Utc::now() - later < Duration::seconds(30),
        "a minute old: recorded again"
    );
    // The listing shows it.
    let (_, listing) = list(&app, &app.token).await;
    let entry = listing["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["token_id"] == token_id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(time(&entry["last_used_at"]), later);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_last_use_that_cannot_be_recorded_does_not_hold_up_the_request(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (token, token_id) = new_token(&app, &json!({"label": "busy"})).await;
    // Another transaction holds the token's row: recording the use skips it, not waits.
    let mut lock = pool.begin().await.expect("transaction");
    sqlx::query("select 1 from api_tokens where id = $1 for update")
        .bind(token_id.parse::<Uuid>().expect("uuid"))
        .execute(&mut *lock)
        .await
        .expect("lock the row");
    let started = std::time::Instant::now();
    assert_eq!(list(&app, &token).await.0, 200, "the request goes on");
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(3),
        "held up {waited:?}"
    );
    lock.rollback().await.expect("unlock");
    assert_eq!(
        last_used_at(&pool, &token_id).await,
        None,
        "skipped, not queued"
    );
    // The next request records it.
    assert_eq!(list(&app, &token).await.0, 200);
    assert!(last_used_at(&pool, &token_id).await.is_some());
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_tenant_has_at_most_the_bound_of_live_tokens(pool: PgPool) {
    let app = spawn_app(pool).await;
    // The app's tenant starts with one.
    let mut last_id = String::new();
    for i in 1..LIVE_TOKENS_PER_TENANT_MAX {
        last_id = new_token(&app, &json!({"label": format!("device {i}")}))
            .await
            .1;
    }
    let (status, problem) = create(&app, &app.token, &json!({"label": "one too many"})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("conflict")),
        "{problem}"
    );
    assert_eq!(revoke(&app, &app.token, &last_id).await.0, 200);
    new_token(&app, &json!({"label": "in its place"})).await;
    // Every live token is listed, the revoked one after them.
    let (_, listing) = list(&app, &app.token).await;
    let tokens = listing["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len() as i64, LIVE_TOKENS_PER_TENANT_MAX + 1);
    assert_eq!(tokens.last().expect("one")["token_id"], last_id.as_str());
    app.stop().await;
}

/// What the ledger logs while a test runs (as `tests/tickets.rs` captures it).
/// How a token could appear in a log: itself, its random part, its hash in hex.
fn spellings(token: &str) -> Vec<String> {
    let hash: String = token_sha256(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![token.to_owned(), token["tsk_".len()..].to_owned(), hash]
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn tokens_are_in_no_log_line_at_any_level(pool: PgPool) {
    let captured = tessera_testkit::logs::LogCapture::start();
    let app = spawn_app(pool).await;
    let (token, token_id) = new_token(
        &app,
        &json!({"label": "logged?", "expires_in_seconds": 600}),
    )
    .await;
    assert_eq!(list(&app, &token).await.0, 200);
    assert_eq!(revoke(&app, &token, &token_id).await.0, 200);
    assert_eq!(list(&app, &token).await.0, 401);
    let first = app.token.clone();
    app.stop().await;
    let log = captured.text();
    let lower = log.to_lowercase();
    for statement in [
        "insert into api_tokens",
        "update api_tokens",
        "admin token revoked",
    ] {
        assert!(lower.contains(statement), "the capture holds {statement:?}");
    }
    for secret in spellings(&token).iter().chain(&spellings(&first)) {
        assert!(!log.contains(secret.as_str()), "a token is in the log");
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_token_api_is_documented_with_its_bounds_and_statuses(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (_, doc) = app.get_json("/openapi.json").await;
    for (path, method, statuses) in [
        (
            "/admin/v1/tokens",
            "post",
            vec![201, 400, 401, 408, 409, 413, 415, 422, 503],
        ),
        ("/admin/v1/tokens", "get", vec![200, 401, 503]),
        (
            "/admin/v1/tokens/{token_id}/revoke",
            "post",
            vec![200, 401, 404, 422, 503],
        ),
    ] {
        let responses = doc["paths"][path][method]["responses"]
            .as_object()
            .expect(path);
        let mut documented: Vec<u16> = responses
            .keys()
            .map(|s| s.parse().expect("status"))
            .collect();
        documented.sort_unstable();
        assert_eq!(documented, statuses, "{method} {path}");
    }
    let new_token = &doc["components"]["schemas"]["NewToken"]["properties"];
    let label = &new_token["label"];
    assert_eq!(
        label["maxLength"].as_u64(),
        Some(TOKEN_LABEL_CHARS_MAX as u64)
    );
    assert_eq!(label["minLength"].as_u64(), Some(1));
    assert_eq!(label["pattern"], SINGLE_LINE_PATTERN);
    let expires = &new_token["expires_in_seconds"];
    assert_eq!(
        (expires["minimum"].as_i64(), expires["maximum"].as_i64()),
        (
            Some(TOKEN_EXPIRES_IN_SECONDS_MIN),
            Some(TOKEN_EXPIRES_IN_SECONDS_MAX)
        )
    );
    app.stop().await;
}

/// Tokens made before `20261129000002_tokens.sql` get ids (and no prefix) from it.
#[sqlx::test(migrations = false)]
async fn the_migration_gives_existing_tokens_ids(pool: PgPool) {
    const TOKENS_MIGRATION: i64 = 20261129000002;
    let migrations: Vec<_> = tessera_ledger::MIGRATOR.iter().collect();
    for m in migrations.iter().filter(|m| m.version < TOKENS_MIGRATION) {
        sqlx::raw_sql(&m.sql)
            .execute(&pool)
            .await
            .expect("earlier migration");
    }
    sqlx::raw_sql(
        "insert into tenants (id, name) values ('0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01', 'Old');
         insert into api_tokens (token_sha256, tenant_id, label)
         select sha256(('old' || n)::bytea), '0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01', 'seed'
         from generate_series(1, 3) n;",
    )
    .execute(&pool)
    .await
    .expect("tokens of the old shape");
    let tokens = migrations
        .iter()
        .find(|m| m.version == TOKENS_MIGRATION)
        .expect("the migration");
    sqlx::raw_sql(&tokens.sql)
        .execute(&pool)
        .await
        .expect("the tokens migration");
    let (rows, ids, prefixes): (i64, i64, i64) =
        sqlx::query_as("select count(*), count(distinct id), count(prefix) from api_tokens")
            .fetch_one(&pool)
            .await
            .expect("counts");
    assert_eq!((rows, ids, prefixes), (3, 3, 0));
}

/// The test's own database, for the binary: `DATABASE_URL`'s server, this database.
async fn database_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(pool)
        .await
        .expect("database name");
    let server = tessera_testkit::services::database_url();
    let (base, _) = server.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// `tessera-ledger args…` against `url`, logging everything (to stderr).
async fn ledger_cli(url: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(LEDGER_BIN);
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "trace");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("task")
        .expect("the binary runs")
}

/// Its stdout, asserting it succeeded.
fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value after `name:` on a line of `stdout`.
fn field(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name:?} in {stdout}"))
        .to_owned()
}

/// Seconds between a token's creation and its expiry.
async fn lifetime_seconds(pool: &PgPool, token_id: &str) -> f64 {
    sqlx::query_scalar(
        "select extract(epoch from expires_at - created_at)::float8 from api_tokens where id = $1",
    )
    .bind(token_id.parse::<Uuid>().expect("uuid"))
    .fetch_one(pool)
    .await
    .expect("expiry")
}

/// No spelling of `tokens` in any command's log (stderr), nor in its stdout but for the
/// token it made (`printed`), printed once.
fn assert_tokens_unlogged(outputs: &[(&Output, Option<&str>)], tokens: &[&str]) {
    for (output, printed) in outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let log = String::from_utf8_lossy(&output.stderr);
        if let Some(token) = printed {
            assert_eq!(stdout.matches(token).count(), 1, "{stdout}");
        }
        for token in tokens {
            for secret in spellings(token) {
                assert!(!log.contains(&secret), "a token in the CLI's log");
                // The token it made, and so its random part; never its hash.
                let allowed = *printed == Some(*token) && token.contains(&secret);
                assert!(
                    allowed || !stdout.contains(&secret),
                    "a token printed: {stdout}"
                );
            }
        }
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_cli_onboards_a_tenant_whose_tokens_work_until_revoked(pool: PgPool) {
    let url = database_url(&pool).await;
    let created = ledger_cli(&url, &["tenant", "create", "--name", "Acme Live"]).await;
    let stdout = succeeded(&created);
    let (tenant, first) = (field(&stdout, "tenant"), field(&stdout, "admin token"));
    let create = [
        "token",
        "create",
        "--tenant",
        &tenant,
        "--expires-in",
        "1h",
        "--label",
        "laptop",
    ];
    let issued = ledger_cli(&url, &create).await;
    let second = field(&succeeded(&issued), "admin token");
    let second_id = field(&succeeded(&issued), "token id");
    assert_eq!(lifetime_seconds(&pool, &second_id).await, 3600.0);

    let listed = ledger_cli(&url, &["token", "list", "--tenant", &tenant]).await;
    let table = succeeded(&listed);
    assert!(
        table.contains(&second[..TOKEN_SHOWN_CHARS]) && table.contains("laptop"),
        "{table}"
    );
    let tenants = succeeded(&ledger_cli(&url, &["tenant", "list"]).await);
    assert!(
        tenants.contains(&tenant) && tenants.contains("Acme Live"),
        "{tenants}"
    );

    // The printed tokens are the tenant's, at a running ledger; revoked, they stop working.
    let app = spawn_app(pool.clone()).await;
    let (status, listing) = list(&app, &second).await;
    assert_eq!((status, ids(&listing).len()), (200, 2), "{listing}");
    let tokens = listing["tokens"].as_array().expect("tokens");
    assert!(tokens.iter().all(|t| t["tenant_id"] == tenant.as_str()));
    let revoked = ledger_cli(&url, &["token", "revoke", &second[..TOKEN_SHOWN_CHARS]]).await;
    assert!(succeeded(&revoked).contains(&second_id));
    assert_refused(&list(&app, &second).await, "revoked");
    assert_eq!(
        list(&app, &first).await.0,
        200,
        "the first token still works"
    );
    let first_id = ids(&listing)
        .into_iter()
        .find(|id| *id != second_id)
        .expect("first");
    let revoked_by_id = ledger_cli(&url, &["token", "revoke", &first_id]).await;
    succeeded(&revoked_by_id);
    assert_refused(&list(&app, &first).await, "revoked");
    app.stop().await;
    let outputs = [
        (&created, Some(first.as_str())),
        (&issued, Some(second.as_str())),
        (&listed, None),
        (&revoked, None),
        (&revoked_by_id, None),
    ];
    assert_tokens_unlogged(&outputs, &[&first, &second]);
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn bad_cli_arguments_exit_non_zero_with_a_message(pool: PgPool) {
    let url = database_url(&pool).await;
    let tenant = Uuid::now_v7().to_string();
    for (args, says, code) in [
        (
            vec!["token", "create", "--tenant", &tenant, "--expires-in", "3w"],
            "--expires-in",
            2,
        ),
        (
            vec!["token", "create", "--tenant", &tenant, "--expires-in", "0d"],
            "--expires-in",
            2,
        ),
        (
            vec!["token", "create", "--tenant", &tenant, "--expires-in"],
            "--expires-in",
            2,
        ),
        (vec!["token", "create", "--tenant", "acme"], "--tenant", 2),
        (vec!["tenant", "create"], "--name", 2),
        (vec!["token", "frobnicate"], "frobnicate", 2),
        (vec!["token", "revoke", "tsk_short"], "tsk_short", 2),
        // Well formed but not there: the command runs and fails.
        (vec!["token", "create", "--tenant", &tenant], "no tenant", 1),
        (vec!["token", "revoke", "tsk_AAAAAAAA"], "no token", 1),
    ] {
        let output = ledger_cli(&url, &args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let tokens: i64 = sqlx::query_scalar("select count(*) from api_tokens")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(tokens, 0, "nothing was issued");
}
