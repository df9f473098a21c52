//! Health, readiness, metrics and the generated OpenAPI document.

mod support;

use serde_json::Value;
use sqlx::PgPool;
use support::{spawn_app, spawn_app_with};

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

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn metrics_expose_routes_and_holds(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(5).await;
    assert_eq!(app.hold(&fixture, 1, "a", "k").await.0, 201);
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/holds\",status=\"201\"",
        "holds_created_total",
        "hold_batch_size_bucket",
        "outbox_backlog",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
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
            let body = serde_json::json!({"show_id": show_id, "zone_id": zone_id, "quantity": 1, "customer_id": format!("c{i}")});
            tokio::spawn(async move {
                let response = client.post(format!("{base}/v1/holds")).header("Idempotency-Key", format!("s{i}")).json(&body).send().await;
                response.map(|r| r.status().as_u16()).ok()
            })
        })
        .collect();
    // Stop while requests are being committed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while support::zone_counters(&pool, &fixture.zone_ids[0]).await.1 < 10 {
        assert!(std::time::Instant::now() < deadline, "no hold committed");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    app.stop().await; // asserts the ledger stopped cleanly within its grace period
    let mut answered = 0;
    for request in requests {
        match request.await.expect("task") {
            Some(201) => answered += 1,
            Some(other) => panic!("unexpected status {other} during shutdown"),
            None => {} // not accepted: the listener had closed
        }
    }
    let (_, held, _, _) = support::zone_counters(&pool, &fixture.zone_ids[0]).await;
    assert_eq!(
        held, answered,
        "every committed hold was answered, every answered hold committed"
    );
    assert!(
        answered >= 10,
        "requests in flight when shutdown began were answered ({answered})"
    );
}
