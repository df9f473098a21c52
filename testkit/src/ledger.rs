//! A real ledger in the test's process: on the test's own database (from `sqlx::test`), its
//! own Redis channel and its own ports (public and operations, both port 0), talked to over
//! HTTP. Plus the fixtures tests build on (a published event with zones) and the
//! conservation check on the rows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_ledger::{Config, Ledger};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::services::{redis_url, unique_channel};

/// How long a stopping ledger gets (its own grace is `SHUTDOWN_GRACE_SECONDS`, 5 here).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Idle connections kept per host: the tests' bursts reuse them instead of reconnecting.
const CLIENT_IDLE_PER_HOST: usize = 64;

pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://` + the public listener.
    pub base: String,
    /// `http://` + the operations listener (`/metrics`).
    pub metrics_base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    /// A tenant admin's bearer token.
    pub token: String,
    /// The Redis channel this ledger publishes invalidations on.
    pub channel: String,
    pub redis_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A published event with one show whose zones are described by `zones`.
pub struct Fixture {
    pub event_id: String,
    pub show_id: String,
    pub zone_ids: Vec<String>,
}

/// Test defaults: port 0 for both listeners, a fresh channel, short relay and sweep
/// periods so tests see their effects quickly.
fn test_env(overrides: &[(&str, String)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::from([
        ("LEDGER_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("REDIS_URL".to_owned(), redis_url()),
        ("OUTBOX_CHANNEL".to_owned(), unique_channel()),
        ("OUTBOX_POLL_INTERVAL_MS".to_owned(), "50".to_owned()),
        ("QUEUE_KEY".to_owned(), crate::edge::QUEUE_KEY.to_owned()),
        ("QUEUE_TICK_MS".to_owned(), "100".to_owned()),
        ("SWEEP_INTERVAL_MS".to_owned(), "100".to_owned()),
        ("SHUTDOWN_GRACE_SECONDS".to_owned(), "5".to_owned()),
    ]);
    for (k, v) in overrides {
        env.insert((*k).to_owned(), v.clone());
    }
    env
}

/// Starts a ledger on `pool` with `overrides` on top of test defaults, and a tenant token.
pub async fn spawn_app_with(pool: PgPool, overrides: &[(&str, String)]) -> TestApp {
    let env = test_env(overrides);
    let config = Config::from_lookup(|name| env.get(name).cloned()).expect("test config");
    let channel = config.outbox.channel.clone();
    let redis_url = config.redis_url.clone();
    let ledger = Ledger::build_with_pool(config, pool.clone())
        .await
        .expect("ledger builds");
    let addr = ledger.local_addr().expect("bound");
    let metrics_addr = ledger.metrics_addr().expect("operations listener bound");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ledger.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let mut conn = pool.acquire().await.expect("connection");
    let (_, token) = tessera_ledger::auth::create_tenant(&mut conn, "Test Tenant")
        .await
        .expect("tenant");
    TestApp {
        addr,
        base: format!("http://{addr}"),
        metrics_base: format!("http://{metrics_addr}"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENT_IDLE_PER_HOST)
            .build()
            .expect("client"),
        pool,
        token,
        channel,
        redis_url,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[]).await
}

pub fn zone(capacity: i32) -> Value {
    json!({"name": format!("Zone {capacity}"), "price_minor": 4500, "currency": "EUR", "capacity": capacity})
}

/// A valid `POST /admin/v1/events` body with one show on sale now.
pub fn event_body(slug: &str, zones: Vec<Value>) -> Value {
    json!({
        "slug": slug, "title": format!("Event {slug}"), "category": "concerts",
        "venue": {"name": "Hall", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
        "shows": [{"starts_at": "2030-06-01T19:00:00Z", "sale_starts_at": "2020-01-01T00:00:00Z", "zones": zones}]
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The operations listener's `/metrics` text. The recorder is process-wide: tests
    /// running in parallel in one binary add to the same counters.
    pub async fn metrics_text(&self) -> String {
        crate::metrics::scrape(&self.client, &self.metrics_base)
            .await
            .expect("ledger metrics")
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.admin(reqwest::Method::POST, path, body).await
    }

    pub async fn admin_patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.admin(reqwest::Method::PATCH, path, body).await
    }

    /// `GET path` as the tenant's admin: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A gate credential for `gate` of the event (`POST /admin/v1/events/{id}/gates`).
    pub async fn gate_token(&self, event_id: &str, gate: &str) -> String {
        let response = self
            .admin_post(
                &format!("/admin/v1/events/{event_id}/gates"),
                &json!({"gate": gate}),
            )
            .await;
        assert_eq!(response.status(), 201, "a gate credential");
        let issued: Value = response.json().await.expect("json");
        issued["token"].as_str().expect("token").to_owned()
    }

    /// `POST /v1/checkin` of `code` at `gate` with the credential `token` and a fresh
    /// nonce: status and verdict.
    pub async fn scan(&self, token: &str, code: &str, gate: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/v1/checkin"))
            .bearer_auth(token)
            .json(&json!({"code": code, "gate": gate, "nonce": uuid::Uuid::new_v4().to_string()}))
            .send()
            .await
            .expect("scan");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Cancels the order (asserting 200) and marks its refund paid back with `reference`
    /// (asserting 200): the cancel's answer.
    pub async fn cancel_and_refund(&self, hold_id: &str, reference: &str) -> Value {
        let response = self
            .admin_post(&format!("/admin/v1/orders/{hold_id}/cancel"), &Value::Null)
            .await;
        assert_eq!(response.status(), 200, "cancel");
        let cancelled: Value = response.json().await.expect("json");
        let refund_id = cancelled["refund"]["refund_id"].as_str().expect("refund");
        let completed = self
            .admin_post(
                &format!("/admin/v1/refunds/{refund_id}/complete"),
                &json!({"reference": reference}),
            )
            .await;
        assert_eq!(completed.status(), 200, "refund completed");
        cancelled
    }

    /// `method path` with a JSON `body`, as the tenant's admin.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates and publishes an event from `body`.
    pub async fn publish_event(&self, body: Value) -> Fixture {
        let created = self.admin_post("/admin/v1/events", &body).await;
        assert_eq!(
            created.status(),
            201,
            "create event: {}",
            created.text().await.unwrap_or_default()
        );
        let detail: Value = created.json().await.expect("json");
        let event_id = detail["event_id"].as_str().expect("event_id").to_owned();
        let published = self
            .admin_post(&format!("/admin/v1/events/{event_id}/publish"), &json!({}))
            .await;
        assert_eq!(published.status(), 200);
        let show = &detail["shows"][0];
        Fixture {
            event_id,
            show_id: show["show_id"].as_str().expect("show_id").to_owned(),
            zone_ids: show["zones"]
                .as_array()
                .expect("zones")
                .iter()
                .map(|z| z["zone_id"].as_str().expect("zone_id").to_owned())
                .collect(),
        }
    }

    /// A published event with a general-admission zone of 10 (`zone_ids[0]`, "Zone 10") and
    /// an assigned zone of one row of 6 seats (`zone_ids[1]`; zones list by name).
    pub async fn event_with_ga_and_seats(&self) -> Fixture {
        let seated = json!({"name": "Zz Stalls", "price_minor": 5000, "currency": "EUR", "seating": "assigned",
                            "seats": {"rows": [{"row": "A", "seats": 6}]}});
        let slug = format!("e-{}", uuid::Uuid::new_v4().simple());
        self.publish_event(event_body(&slug, vec![zone(10), seated]))
            .await
    }

    pub async fn event_with_zone(&self, capacity: i32) -> Fixture {
        let slug = format!("e-{}", uuid::Uuid::new_v4().simple());
        self.publish_event(event_body(&slug, vec![zone(capacity)]))
            .await
    }

    /// `POST /v1/holds` with the given key; returns status and body.
    pub async fn hold(
        &self,
        fixture: &Fixture,
        quantity: i64,
        customer: &str,
        key: &str,
    ) -> (u16, Value) {
        let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": customer});
        self.post_json("/v1/holds", &body, Some(key)).await
    }

    /// Holds `body` (`POST /v1/holds`) and confirms it, each with a fresh key, asserting
    /// both succeed: the hold id and the confirm answer (tickets with their codes).
    pub async fn buy(&self, body: &Value) -> (String, Value) {
        let (status, hold) = self
            .post_json("/v1/holds", body, Some(&uuid::Uuid::new_v4().to_string()))
            .await;
        assert_eq!(status, 201, "{hold}");
        let hold_id = hold["hold_id"].as_str().unwrap_or_default().to_owned();
        let (status, confirm) = self
            .post_json(
                &format!("/v1/holds/{hold_id}/confirm"),
                &json!({"payment_ref": "pay-1"}),
                Some(&uuid::Uuid::new_v4().to_string()),
            )
            .await;
        assert_eq!(status, 200, "{confirm}");
        (hold_id, confirm)
    }

    /// A published event with one zone of 20 and `quantity` of it bought by `ann`: the
    /// event and the confirm answer.
    pub async fn sold(&self, quantity: i64) -> (Fixture, Value) {
        let fixture = self.event_with_zone(20).await;
        let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": "ann"});
        let (_, confirm) = self.buy(&body).await;
        (fixture, confirm)
    }

    pub async fn post_json(&self, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stops the ledger gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(STOP_TIMEOUT, task).await;
            assert!(
                matches!(result, Ok(Ok(Ok(())))),
                "ledger did not stop cleanly"
            );
        }
    }
}

/// Counters of a zone as stored: (available, held, sold, capacity).
pub async fn zone_counters(pool: &PgPool, zone_id: &str) -> (i32, i32, i32, i32) {
    let zone: uuid::Uuid = zone_id.parse().expect("uuid");
    sqlx::query_as("select available, held, sold, capacity from zones where id = $1")
        .bind(zone)
        .fetch_one(pool)
        .await
        .expect("zone")
}

#[derive(sqlx::FromRow)]
struct ConservationRow {
    id: uuid::Uuid,
    available: i32,
    held: i32,
    sold: i32,
    capacity: i32,
    live_held: i64,
    confirmed: i64,
    tickets: i64,
}

/// Invariant 1 and 2 checked against the rows: the counters equal what the holds and
/// tickets say, for every zone in the database.
pub async fn assert_conservation(pool: &PgPool) {
    let rows: Vec<ConservationRow> = sqlx::query_as(
        "select z.id, z.available, z.held, z.sold, z.capacity,
                coalesce((select sum(quantity) from holds h where h.zone_id = z.id and h.status = 'held'), 0)::bigint
                    as live_held,
                coalesce((select sum(quantity) from holds h where h.zone_id = z.id and h.status = 'confirmed'), 0)::bigint
                    as confirmed,
                (select count(*) from tickets t where t.zone_id = z.id and t.status <> 'void') as tickets
         from zones z",
    )
    .fetch_all(pool)
    .await
    .expect("conservation query");
    rows.iter().for_each(assert_zone_conserved);
}

fn assert_zone_conserved(row: &ConservationRow) {
    let zone = row.id;
    assert!(
        row.available >= 0 && row.held >= 0 && row.sold >= 0,
        "zone {zone}: negative counter"
    );
    assert_eq!(
        row.available + row.held + row.sold,
        row.capacity,
        "zone {zone}: available + held + sold != capacity"
    );
    assert_eq!(
        i64::from(row.held),
        row.live_held,
        "zone {zone}: held counter != live holds"
    );
    assert_eq!(
        i64::from(row.sold),
        row.confirmed,
        "zone {zone}: sold counter != confirmed holds"
    );
    assert_eq!(
        i64::from(row.sold),
        row.tickets,
        "zone {zone}: sold counter != tickets issued and not void"
    );
}

/// Locks zone `zone_id`'s row until the returned transaction ends: the engine's writer (or a
/// naive commit) for that zone cannot finish meanwhile, so a test can fill queues and
/// in-flight slots deterministically.
pub async fn lock_zone(pool: &PgPool, zone_id: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let zone: uuid::Uuid = zone_id.parse().expect("zone id is a uuid");
    let mut lock = pool.begin().await.expect("begin");
    sqlx::query("select 1 from zones where id = $1 for update")
        .bind(zone)
        .execute(&mut *lock)
        .await
        .expect("lock the zone");
    lock
}

/// Backends of this test's database waiting for a lock (the `sqlx::test` database is the
/// test's own, so nothing else counts here).
pub async fn lock_waiters(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}

/// `(transaction id, holds)` for each transaction that wrote holds of `zone_id`: holds
/// inserted by one transaction share its `xmin`, so this shows how holds were batched.
pub async fn holds_per_transaction(pool: &PgPool, zone_id: &str) -> Vec<(i64, i64)> {
    let zone: uuid::Uuid = zone_id.parse().expect("zone id is a uuid");
    sqlx::query_as(
        "select xmin::text::bigint, count(*) from holds where zone_id = $1 group by 1 order by 1",
    )
    .bind(zone)
    .fetch_all(pool)
    .await
    .expect("holds by transaction")
}

/// What PostgreSQL did to run `sql` as the ledger runs it (a prepared statement with
/// parameters of `param_types`, executed with `args`, SQL literals): `EXPLAIN ANALYZE`'s
/// lines, without costs or timings.
pub async fn executed_plan(pool: &PgPool, sql: &str, param_types: &str, args: &str) -> String {
    let mut conn = pool.acquire().await.expect("a connection");
    sqlx::raw_sql(&format!("prepare probe({param_types}) as {sql}"))
        .execute(&mut *conn)
        .await
        .expect("prepare the statement");
    let lines: Vec<String> = sqlx::query_scalar(&format!(
        "explain (analyze, costs off, timing off, summary off) execute probe({args})"
    ))
    .fetch_all(&mut *conn)
    .await
    .expect("explain");
    sqlx::raw_sql("deallocate probe")
        .execute(&mut *conn)
        .await
        .expect("deallocate");
    lines.join("\n")
}

/// Whether `plan` finds rows by `column` through an index (an `Index Cond` on it) and
/// never reads rows only to drop them for `column` (a `Filter` on it): a probe per value,
/// whatever the table's size.
pub fn probes_by(plan: &str, column: &str) -> bool {
    let on = |kind: &str| {
        plan.lines()
            .any(|line| line.trim_start().starts_with(kind) && line.contains(column))
    };
    on("Index Cond:") && !on("Filter:")
}
