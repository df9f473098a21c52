//! `GET /v1/orders/{hold_id}`: the order through its life — a live hold, its tickets once
//! confirmed, a ticket's entry at the door, and the void tickets and refund once cancelled.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::spawn_app;
use uuid::Uuid;

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn an_order_shows_its_tickets_their_states_and_its_refund(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let (status, hold) = app.hold(&fixture, 2, "ann", "order-hold").await;
    assert_eq!(status, 201);
    let hold_id = hold["hold_id"].as_str().expect("id").to_owned();
    let path = format!("/v1/orders/{hold_id}");
    let (status, order) = app.get_json(&path).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(
        (
            order["status"].as_str(),
            order["tickets"].as_array().map(Vec::len)
        ),
        (Some("held"), Some(0))
    );
    assert_eq!(order["event_id"].as_str(), Some(fixture.event_id.as_str()));
    assert_eq!(order["total_minor"], 9000);
    assert!(order.get("refund").is_none() && order.get("payment_ref").is_none());

    let (status, confirm) = app
        .post_json(
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({"payment_ref": "pay-7"}),
            Some("order-confirm"),
        )
        .await;
    assert_eq!(status, 200);
    let (_, order) = app.get_json(&path).await;
    assert_eq!(
        (order["status"].as_str(), order["payment_ref"].as_str()),
        (Some("confirmed"), Some("pay-7"))
    );
    let tickets = order["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 2);
    for ticket in tickets {
        assert_eq!(ticket["status"], "valid");
        let issued = confirm["tickets"]
            .as_array()
            .expect("issued")
            .iter()
            .find(|t| t["ticket_id"] == ticket["ticket_id"])
            .expect("the confirm's ticket");
        assert_eq!(ticket["code"], issued["code"]);
    }

    // One enters at the door.
    let gate = app.gate_token(&fixture.event_id, "East").await;
    let code = tickets[0]["code"].as_str().expect("code");
    assert_eq!(app.scan(&gate, code, "East").await.0, 201);
    let (_, order) = app.get_json(&path).await;
    let entered = order["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .find(|t| t["ticket_id"] == tickets[0]["ticket_id"])
        .expect("ticket")
        .clone();
    assert_eq!(
        (
            entered["status"].as_str(),
            entered["checked_in_gate"].as_str()
        ),
        (Some("checked_in"), Some("East"))
    );
    assert!(entered["checked_in_at"].is_string());

    // Cancelled: every ticket void, the entry kept, the refund due.
    let cancelled = app
        .admin_post(&format!("/admin/v1/orders/{hold_id}/cancel"), &Value::Null)
        .await;
    assert_eq!(cancelled.status(), 200);
    let (_, order) = app.get_json(&path).await;
    assert_eq!(order["status"], "cancelled");
    for ticket in order["tickets"].as_array().expect("tickets") {
        assert_eq!(ticket["status"], "void");
        assert!(ticket["voided_at"].is_string());
    }
    assert!(order["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .any(|t| t["checked_in_gate"] == "East"));
    assert_eq!(
        (
            order["refund"]["status"].as_str(),
            order["refund"]["amount_minor"].as_i64()
        ),
        (Some("due"), Some(9000))
    );

    assert_eq!(
        app.get_json(&format!("/v1/orders/{}", Uuid::new_v4()))
            .await
            .0,
        404
    );
    let (status, problem) = app.get_json("/v1/orders/not-a-uuid").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("validation_failed"))
    );
    app.stop().await;
}
