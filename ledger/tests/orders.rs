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
    assert!(order.get("buyer").is_none(), "confirmed without a buyer");
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

/// The buyer a storefront's checkout sends; distinctive enough to search every message
/// and log line for.
const BUYER_NAME: &str = "Ada Quillfeather";
const BUYER_EMAIL: &str = "ada.quillfeather@Example.COM";

/// Every outbox message and integration event (webhook payload) written so far, as text.
async fn messages(pool: &PgPool) -> Vec<String> {
    let outbox: Vec<String> = sqlx::query_scalar("select payload::text from outbox")
        .fetch_all(pool)
        .await
        .expect("outbox");
    let events: Vec<String> = sqlx::query_scalar("select data::text from integration_events")
        .fetch_all(pool)
        .await
        .expect("integration events");
    outbox.into_iter().chain(events).collect()
}

/// A confirm that names its buyer: refused field by field while the hold stays held, then
/// stored on the order and answered, replayed for its key (the domain's case aside) and a
/// conflict with another buyer; never in an outbox message, a webhook payload or a log line.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_confirm_records_who_bought_and_nothing_else_learns_it(pool: PgPool) {
    let captured = tessera_testkit::logs::LogCapture::start();
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (status, hold) = app.hold(&fixture, 2, "ann", "buyer-hold").await;
    assert_eq!(status, 201);
    let hold_id = hold["hold_id"].as_str().expect("id").to_owned();
    let confirm = format!("/v1/holds/{hold_id}/confirm");
    let order = format!("/v1/orders/{hold_id}");
    let with_buyer = |buyer: Value| json!({"payment_ref": "pay-b", "buyer": buyer});

    let refused = [
        (
            json!({"name": "Ada", "email": "ada@localhost"}),
            "buyer.email",
        ),
        (
            json!({"name": "Ada", "email": "ada @example.com"}),
            "buyer.email",
        ),
        (
            json!({"name": "  ", "email": "ada@example.com"}),
            "buyer.name",
        ),
        (
            json!({"name": "Ada", "email": "ada@example.com", "phone": "1"}),
            "buyer.phone",
        ),
    ];
    for (i, (buyer, field)) in refused.into_iter().enumerate() {
        let (status, problem) = app
            .post_json(&confirm, &with_buyer(buyer), Some(&format!("bad-{i}")))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("validation_failed")),
            "{problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        let (_, still) = app.get_json(&order).await;
        assert_eq!(still["status"], "held", "nothing confirmed: {still}");
        assert!(still.get("buyer").is_none() && still.get("payment_ref").is_none());
    }

    let buyer = json!({"name": format!("  {BUYER_NAME} "), "email": BUYER_EMAIL});
    let (status, confirmed) = app
        .post_json(&confirm, &with_buyer(buyer), Some("buyer-confirm"))
        .await;
    assert_eq!(status, 200, "{confirmed}");
    let stored = json!({"name": BUYER_NAME, "email": BUYER_EMAIL});
    assert_eq!(confirmed["buyer"], stored, "trimmed name, e-mail as given");
    let (_, shown) = app.get_json(&order).await;
    assert_eq!(
        (shown["status"].as_str(), &shown["buyer"]),
        (Some("confirmed"), &stored)
    );

    // The same key: the same buyer (the domain spelled in another case) replays; another
    // buyer (a local part differs in case too), or none, is the key reused with a
    // different request.
    let local_case = json!({"name": BUYER_NAME, "email": "Ada.quillfeather@Example.COM"});
    let lower_domain = json!({"name": BUYER_NAME, "email": "ada.quillfeather@example.com"});
    let (status, replay) = app
        .post_json(&confirm, &with_buyer(lower_domain), Some("buyer-confirm"))
        .await;
    assert_eq!((status, &replay), (200, &confirmed));
    for other in [
        with_buyer(json!({"name": BUYER_NAME, "email": "grace@example.com"})),
        with_buyer(json!({"name": "Grace Hopper", "email": BUYER_EMAIL})),
        with_buyer(local_case),
        json!({"payment_ref": "pay-b"}),
    ] {
        let (status, problem) = app.post_json(&confirm, &other, Some("buyer-confirm")).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("idempotency_conflict")),
            "{other}"
        );
    }
    let (_, shown) = app.get_json(&order).await;
    assert_eq!(shown["buyer"], stored, "the first confirm's buyer stays");

    // Personal data: in no outbox message or webhook payload, in no log line.
    let written = messages(&pool).await;
    assert!(
        written.iter().any(|m| m.contains(&hold_id)),
        "the confirm's messages are among them"
    );
    app.stop().await;
    let log = captured.text();
    assert!(
        log.contains("buyer_email"),
        "the capture holds the statement that stored the buyer"
    );
    for text in written.iter().chain([&log]) {
        for personal in ["Quillfeather", "quillfeather", "Example.COM"] {
            assert!(!text.contains(personal), "{personal} leaked into {text}");
        }
    }
}
