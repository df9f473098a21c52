//! Cancelling confirmed orders (invariant 9): tickets void, stock and seats back on sale
//! in the same transaction, one refund due, the door refusing the voided codes, and the
//! refund completed once.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::{
    assert_conservation, event_body, spawn_app, zone_counters, Fixture, TestApp,
};
use uuid::Uuid;

async fn cancel(app: &TestApp, hold_id: &str) -> (u16, Value) {
    let response = app
        .admin_post(&format!("/admin/v1/orders/{hold_id}/cancel"), &Value::Null)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ga(fixture: &Fixture, quantity: i64) -> Value {
    json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": "ann"})
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_cancelled_order_voids_its_tickets_returns_its_stock_and_owes_one_refund(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (hold_id, confirm) = app.buy(&ga(&fixture, 3)).await;
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (7, 0, 3, 10)
    );
    let (status, cancelled) = cancel(&app, &hold_id).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["order"]["status"], "cancelled");
    assert_eq!(
        cancelled["voided_tickets"]
            .as_array()
            .expect("tickets")
            .len(),
        3
    );
    assert_eq!(cancelled["refund"]["status"], "due");
    assert_eq!(cancelled["refund"]["amount_minor"], confirm["total_minor"]);
    // The stock is back on sale in the same commit, and the totals still add up.
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (10, 0, 0, 10)
    );
    assert_conservation(&pool).await;
    let void: i64 = sqlx::query_scalar(
        "select count(*) from tickets where hold_id = $1 and status = 'void' and voided_at is not null",
    )
    .bind(hold_id.parse::<Uuid>().expect("uuid"))
    .fetch_one(&pool)
    .await
    .expect("tickets");
    assert_eq!(void, 3);
    // Cancelling again: the same order and the same refund, nothing moved twice.
    let (status, again) = cancel(&app, &hold_id).await;
    assert_eq!((status, &again), (200, &cancelled));
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (10, 0, 0, 10)
    );
    let refunds: i64 = sqlx::query_scalar("select count(*) from refunds")
        .fetch_one(&pool)
        .await
        .expect("refunds");
    assert_eq!(refunds, 1);
    // The hold reads cancelled; the stock sells again.
    let (_, hold) = app.get_json(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!(hold["status"], "cancelled");
    let (status, problem) = app
        .post_json(
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({"payment_ref": "pay-2"}),
            Some("confirm-again"),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("hold_not_active"))
    );
    assert_eq!(problem["detail"], "the order was cancelled");
    app.buy(&ga(&fixture, 4)).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_voided_code_is_refused_at_the_door(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (hold_id, confirm) = app.buy(&ga(&fixture, 1)).await;
    let code = confirm["tickets"][0]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let issued: Value = app
        .admin_post(
            &format!("/admin/v1/events/{}/gates", fixture.event_id),
            &json!({"gate": "A"}),
        )
        .await
        .json()
        .await
        .expect("credential");
    assert_eq!(cancel(&app, &hold_id).await.0, 200);
    let response = app
        .client
        .post(app.url("/v1/checkin"))
        .bearer_auth(issued["token"].as_str().expect("token"))
        .json(&json!({"code": code, "gate": "A", "nonce": "after-cancel"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 409);
    let verdict: Value = response.json().await.expect("json");
    assert_eq!(verdict["result"], "void");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_cancelled_seat_order_puts_exactly_its_seats_back(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let zone = json!({"name": "Stalls", "price_minor": 5000, "currency": "EUR", "seating": "assigned",
                      "seats": {"rows": [{"row": "A", "seats": 6}]}});
    let fixture = app
        .publish_event(event_body(
            &format!("e-{}", Uuid::new_v4().simple()),
            vec![zone],
        ))
        .await;
    let seats = |seats: &[i32], who: &str| json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "seats": seats, "customer_id": who});
    let (cancelled, _) = app.buy(&seats(&[1, 2], "ann")).await;
    app.buy(&seats(&[3], "bob")).await;
    assert_eq!(cancel(&app, &cancelled).await.0, 200);
    let states: Vec<(i32, String)> = sqlx::query_as(
        "select seat_index, status from seats where zone_id = $1 order by seat_index",
    )
    .bind(fixture.zone_ids[0].parse::<Uuid>().expect("uuid"))
    .fetch_all(&pool)
    .await
    .expect("seats");
    let sold: Vec<i32> = states
        .iter()
        .filter(|(_, s)| s == "sold")
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(sold, [3], "only bob's seat stays sold");
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (5, 0, 1, 6)
    );
    // The freed seats sell again.
    app.buy(&seats(&[1, 2], "cy")).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_refund_is_completed_once_with_its_reference(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (hold_id, _) = app.buy(&ga(&fixture, 2)).await;
    let (_, cancelled) = cancel(&app, &hold_id).await;
    let refund_id = cancelled["refund"]["refund_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let complete = |reference: &str| {
        let path = format!("/admin/v1/refunds/{refund_id}/complete");
        let body = json!({"reference": reference});
        let app = &app;
        async move {
            let response = app.admin_post(&path, &body).await;
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, refund) = complete("re_123").await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!(
        (refund["status"].as_str(), refund["reference"].as_str()),
        (Some("refunded"), Some("re_123"))
    );
    assert_eq!(
        complete("re_123").await,
        (200, refund.clone()),
        "the same completion again"
    );
    let (status, problem) = complete("re_999").await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("conflict")));
    assert_eq!(complete(" ").await.0, 422);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn only_the_owner_cancels_and_only_confirmed_orders(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (status, live) = app
        .post_json(
            "/v1/holds",
            &ga(&fixture, 1),
            Some(&Uuid::new_v4().to_string()),
        )
        .await;
    assert_eq!(status, 201);
    let (status, problem) = cancel(&app, live["hold_id"].as_str().expect("id")).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("conflict")));
    assert_eq!(cancel(&app, &Uuid::new_v4().to_string()).await.0, 404);
    assert_eq!(cancel(&app, "not-a-uuid").await.0, 422);
    // Another tenant's token.
    let (hold_id, _) = app.buy(&ga(&fixture, 1)).await;
    let mut conn = pool.acquire().await.expect("connection");
    let (_, other_token) = tessera_ledger::auth::create_tenant(&mut conn, "Other")
        .await
        .expect("tenant");
    let response = app
        .client
        .post(app.url(&format!("/admin/v1/orders/{hold_id}/cancel")))
        .bearer_auth(other_token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (8, 1, 1, 10)
    );
    app.stop().await;
}

/// Every hold and order of an event: `(status, count)` sorted by status.
async fn hold_states(pool: &PgPool, event_id: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "select status, count(*) from holds where event_id = $1 group by status order by status",
    )
    .bind(event_id.parse::<Uuid>().expect("uuid"))
    .fetch_all(pool)
    .await
    .expect("holds")
}

async fn cancel_event(app: &TestApp, event_id: &str) -> (u16, Value) {
    let response = app
        .admin_post(&format!("/admin/v1/events/{event_id}/cancel"), &Value::Null)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn cancelling_an_event_cancels_its_orders_and_releases_its_live_holds(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_ga_and_seats().await;
    let (ga_zone, seat_zone) = (&fixture.zone_ids[0], &fixture.zone_ids[1]);
    let seats = |seats: &[i32], who: &str| json!({"show_id": fixture.show_id, "zone_id": seat_zone, "seats": seats, "customer_id": who});
    let (_, ga_order) = app.buy(&ga(&fixture, 2)).await;
    let (_, seat_order) = app.buy(&seats(&[1, 2], "bob")).await;
    let key = Uuid::new_v4().to_string();
    let (status, live) = app.hold(&fixture, 3, "cy", &key).await;
    assert_eq!(status, 201, "{live}");
    let (status, _) = app
        .post_json(
            "/v1/holds",
            &seats(&[4], "dan"),
            Some(&key.replace('-', "")),
        )
        .await;
    assert_eq!(status, 201);

    let (status, detail) = cancel_event(&app, &fixture.event_id).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["status"], "cancelled");
    assert_eq!(
        hold_states(&pool, &fixture.event_id).await,
        [("cancelled".to_owned(), 2), ("released".to_owned(), 2)]
    );
    // Stock and seats all back, every ticket void, one refund per order of its total.
    assert_eq!(zone_counters(&pool, ga_zone).await, (10, 0, 0, 10));
    assert_eq!(zone_counters(&pool, seat_zone).await, (6, 0, 0, 6));
    let taken: i64 = sqlx::query_scalar(
        "select count(*) from seats where zone_id = $1 and (status <> 'available' or hold_id is not null)",
    )
    .bind(seat_zone.parse::<Uuid>().expect("uuid"))
    .fetch_one(&pool)
    .await
    .expect("seats");
    assert_eq!(taken, 0);
    let tickets: Vec<(String, i64)> =
        sqlx::query_as("select status, count(*) from tickets group by status")
            .fetch_all(&pool)
            .await
            .expect("tickets");
    assert_eq!(tickets, [("void".to_owned(), 4)]);
    let mut refunds: Vec<i64> =
        sqlx::query_scalar("select amount_minor from refunds where status = 'due'")
            .fetch_all(&pool)
            .await
            .expect("refunds");
    refunds.sort_unstable();
    let mut totals = [&ga_order, &seat_order].map(|o| o["total_minor"].as_i64().expect("total"));
    totals.sort_unstable();
    assert_eq!(refunds, totals);
    assert_conservation(&pool).await;
    // Nothing is confirmable or holdable after; the door's keys say cancelled.
    let (status, problem) = app
        .post_json(
            &format!(
                "/v1/holds/{}/confirm",
                live["hold_id"].as_str().expect("id")
            ),
            &json!({"payment_ref": "late"}),
            Some("late-confirm"),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("hold_not_active"))
    );
    let (status, problem) = app.hold(&fixture, 1, "eve", "after-cancel").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("event_not_on_sale"))
    );
    let (_, keys) = app
        .get_json(&format!("/v1/events/{}/checkin-keys", fixture.event_id))
        .await;
    assert_eq!(
        (
            keys["cancelled"].as_bool(),
            keys["revocation_version"].as_i64()
        ),
        (Some(true), Some(4))
    );
    // Again: the same answer, nothing moved or owed twice.
    let (status, again) = cancel_event(&app, &fixture.event_id).await;
    assert_eq!((status, &again["status"]), (200, &detail["status"]));
    let refunds: i64 = sqlx::query_scalar("select count(*) from refunds")
        .fetch_one(&pool)
        .await
        .expect("refunds");
    assert_eq!(refunds, 2);
    assert_eq!(zone_counters(&pool, ga_zone).await, (10, 0, 0, 10));
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn no_hold_is_confirmed_after_its_event_is_cancelled(pool: PgPool) {
    const HOLDS: usize = 24;
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(100).await;
    let mut hold_ids = Vec::new();
    for n in 0..HOLDS {
        let (status, hold) = app
            .hold(&fixture, 2, &format!("c{n}"), &Uuid::new_v4().to_string())
            .await;
        assert_eq!(status, 201, "{hold}");
        hold_ids.push(hold["hold_id"].as_str().expect("id").to_owned());
    }
    // Every confirm races the cancellation; whatever each answers, afterwards no order
    // stands, nothing is held or sold, and each confirm that won owes one refund.
    let body = json!({"payment_ref": "race"});
    let paths: Vec<String> = hold_ids
        .iter()
        .map(|hold_id| format!("/v1/holds/{hold_id}/confirm"))
        .collect();
    let confirms = paths
        .iter()
        .zip(&hold_ids)
        .map(|(path, key)| app.post_json(path, &body, Some(key)));
    let (answers, (status, _)) = tokio::join!(
        futures::future::join_all(confirms),
        cancel_event(&app, &fixture.event_id)
    );
    assert_eq!(status, 200);
    let won = answers.iter().filter(|(status, _)| *status == 200).count();
    for (status, answer) in &answers {
        assert!(
            *status == 200 || *status == 409 || *status == 422,
            "{status} {answer}"
        );
    }
    let states = hold_states(&pool, &fixture.event_id).await;
    assert!(
        states
            .iter()
            .all(|(s, _)| s == "cancelled" || s == "released"),
        "{states:?}"
    );
    assert_eq!(
        states
            .iter()
            .find(|(s, _)| s == "cancelled")
            .map_or(0, |(_, n)| *n),
        won as i64
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (100, 0, 0, 100)
    );
    let refunds: i64 = sqlx::query_scalar("select count(*) from refunds")
        .fetch_one(&pool)
        .await
        .expect("refunds");
    assert_eq!(refunds, won as i64);
    assert_conservation(&pool).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_doors_keys_list_revoked_tickets_and_a_message_announces_them(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (cancelled, confirm) = app.buy(&ga(&fixture, 2)).await;
    app.buy(&ga(&fixture, 1)).await;
    let path = format!("/v1/events/{}/checkin-keys", fixture.event_id);
    let keys = |if_none_match: Option<String>| {
        let mut request = app.client.get(app.url(&path));
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let etag = response.headers()["etag"]
                .to_str()
                .expect("ascii")
                .to_owned();
            (
                status,
                etag,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (_, before, document) = keys(None).await;
    assert_eq!(
        (
            document["revocation_version"].as_i64(),
            document["revoked"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert_eq!(cancel(&app, &cancelled).await.0, 200);
    let (status, after, document) = keys(Some(before.clone())).await;
    assert_eq!(status, 200, "a revocation changes the tag");
    assert_ne!(after, before);
    let mut voided: Vec<String> = confirm["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["ticket_id"].as_str().expect("id").to_owned())
        .collect();
    voided.sort();
    assert_eq!(document["revocation_version"], 2);
    assert_eq!(document["revoked"], json!(voided));
    assert_eq!(document["cancelled"], false);
    assert_eq!(keys(Some(after)).await.0, 304);
    // The message names the event, the count after it and the tickets.
    let message: Value = sqlx::query_scalar(
        "select payload from outbox where payload->>'kind' = 'revocation' order by id desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("message");
    assert_eq!(
        message,
        json!({"kind": "revocation", "event_id": fixture.event_id, "version": 2, "ticket_ids": voided})
    );
    app.stop().await;
}
