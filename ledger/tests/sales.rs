//! `GET /admin/v1/events/{id}/sales`: figures counted from the rows agree with the zones'
//! counters and with what was sold, entered, voided and refunded; only the owner reads them.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::{spawn_app, zone_counters};
use uuid::Uuid;

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn sales_count_what_was_sold_entered_voided_and_refunded(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_ga_and_seats().await;
    let (ga_zone, seat_zone) = (fixture.zone_ids[0].clone(), fixture.zone_ids[1].clone());
    let ga = |quantity: i64, who: &str| json!({"show_id": fixture.show_id, "zone_id": ga_zone, "quantity": quantity, "customer_id": who});
    let (_, ann) = app.buy(&ga(3, "ann")).await;
    let (bob, _) = app.buy(&ga(2, "bob")).await;
    app.buy(&json!({"show_id": fixture.show_id, "zone_id": seat_zone, "seats": [2, 3], "customer_id": "cy"}))
        .await;
    assert_eq!(app.hold(&fixture, 1, "dan", "live-hold").await.0, 201);
    // One of ann's tickets enters; bob's order is cancelled and refunded.
    let gate = app.gate_token(&fixture.event_id, "A").await;
    let code = ann["tickets"][0]["code"].as_str().expect("code");
    assert_eq!(app.scan(&gate, code, "A").await.0, 201);
    app.cancel_and_refund(&bob, "re_1").await;

    let (status, report) = app
        .admin_get(&format!("/admin/v1/events/{}/sales", fixture.event_id))
        .await;
    assert_eq!(status, 200, "{report}");
    let zones = report["shows"][0]["zones"].as_array().expect("zones");
    let figures = |z: &Value| {
        [
            "capacity",
            "held",
            "sold",
            "checked_in",
            "void",
            "gross_minor",
            "refund_due_minor",
            "refunded_minor",
        ]
        .map(|f| z[f].as_i64().expect("figure"))
    };
    assert_eq!(zones[0]["zone_id"], json!(ga_zone));
    assert_eq!(figures(&zones[0]), [10, 1, 3, 1, 2, 5 * 4500, 0, 2 * 4500]);
    assert_eq!(figures(&zones[1]), [6, 0, 2, 0, 0, 2 * 5000, 0, 0]);
    assert_eq!(report["totals"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["totals"][0]["currency"], "EUR");
    assert_eq!(
        figures(&report["totals"][0]),
        [16, 1, 5, 1, 2, 32_500, 0, 9_000]
    );
    // From the rows, and the same as the zones' counters.
    for zone in zones {
        let (available, held, sold, capacity) =
            zone_counters(&pool, zone["zone_id"].as_str().expect("id")).await;
        let [report_capacity, report_held, report_sold, ..] = figures(zone);
        assert_eq!(
            (report_capacity, report_held, report_sold),
            (i64::from(capacity), i64::from(held), i64::from(sold))
        );
        assert_eq!(
            i64::from(available),
            report_capacity - report_held - report_sold
        );
    }
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn only_the_owner_reads_an_events_sales(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let path = format!("/admin/v1/events/{}/sales", fixture.event_id);
    let mut conn = pool.acquire().await.expect("connection");
    let (_, other_token) = tessera_ledger::auth::create_tenant(&mut conn, "Other")
        .await
        .expect("tenant");
    let status = |token: Option<String>, path: String| {
        let mut request = app.client.get(app.url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(status(Some(other_token), path.clone()).await, 403);
    assert_eq!(status(None, path).await, 401);
    let unknown = format!("/admin/v1/events/{}/sales", Uuid::new_v4());
    assert_eq!(app.admin_get(&unknown).await.0, 404);
    assert_eq!(app.admin_get("/admin/v1/events/nope/sales").await.0, 422);
    app.stop().await;
}
