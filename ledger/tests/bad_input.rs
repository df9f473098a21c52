//! Hostile and careless input the shared field rules (`tessera_domain::fields`) refuse
//! with 422 `validation_failed` naming the field, before anything reaches PostgreSQL: NUL
//! and other control characters in listing filters and admin text, instants outside the
//! sane range (year 0, year 10000), and time zones the IANA database does not know. A
//! refused write leaves every row as it was.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::{event_body, spawn_app, zone, TestApp};

/// The counts a refused create or edit must leave unchanged.
async fn written(pool: &PgPool) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "select (select count(*) from events), (select count(*) from venues),
                (select count(*) from shows), (select count(*) from zones),
                (select count(*) from outbox)",
    )
    .fetch_one(pool)
    .await
    .expect("counts")
}

/// Asserts a 422 `validation_failed` problem whose errors name exactly `fields`.
async fn assert_refused(what: &str, response: reqwest::Response, fields: &[&str]) {
    assert_eq!(response.status(), 422, "{what}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{what}"
    );
    let problem: Value = response.json().await.expect("problem json");
    assert_eq!(problem["code"], "validation_failed", "{what}: {problem}");
    let named: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(named, fields, "{what}: {problem}");
}

/// The one-show event body with `edit` applied to it.
fn event_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = event_body("bad-input", vec![zone(10)]);
    edit(&mut body);
    body
}

/// Sets the member at JSON `pointer` (its parent must exist).
fn set(body: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let parent = body.pointer_mut(parent).expect("parent in the body");
    match parent {
        Value::Array(items) => items[key.parse::<usize>().expect("an index")] = value,
        object => object[key] = value,
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn nul_in_a_listing_filter_is_a_422_naming_it(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.event_with_zone(10).await;
    for (query, field) in [
        ("q=%00", "q"),
        ("q=jazz%00night", "q"),
        ("city=%00", "city"),
        ("city=Ber%00lin", "city"),
        ("category=%00", "category"),
        ("category=concerts%1B", "category"),
        ("q=a%0Ab", "q"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/v1/events?{query}")))
            .send()
            .await
            .expect("request");
        assert_refused(query, response, &[field]).await;
    }
    // Every bad filter is named at once; ordinary text still searches.
    let response = app
        .client
        .get(app.url("/v1/events?q=%00&city=%7F&category=%C2%85"))
        .send()
        .await
        .expect("request");
    assert_refused("all three", response, &["q", "category", "city"]).await;
    let (status, page) = app.get_json("/v1/events?city=Berlin&q=Event").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn nul_in_any_admin_text_field_is_refused_and_nothing_is_written(pool: PgPool) {
    let app = spawn_app(pool).await;
    let before = written(&app.pool).await;
    let paths = [
        ("slug", "/slug"),
        ("title", "/title"),
        ("description", "/description"),
        ("category", "/category"),
        ("venue.name", "/venue/name"),
        ("venue.city", "/venue/city"),
        ("venue.country", "/venue/country"),
        ("venue.timezone", "/venue/timezone"),
        ("shows[0].zones[0].name", "/shows/0/zones/0/name"),
    ];
    for (field, pointer) in paths {
        let body = event_with(|body| {
            let given = body.pointer(pointer).and_then(Value::as_str).unwrap_or("x");
            let with_nul = format!("{given}\u{0}");
            set(body, pointer, json!(with_nul));
        });
        let response = app.admin_post("/admin/v1/events", &body).await;
        assert_refused(field, response, &[field]).await;
    }
    assert_eq!(
        written(&app.pool).await,
        before,
        "a refused create writes nothing"
    );

    // A description is multi-line: tabs and line breaks stay, other controls do not.
    let body = event_with(|body| body["description"] = json!("Doors 19:00\r\n\tSupport act"));
    assert_eq!(
        app.admin_post("/admin/v1/events", &body).await.status(),
        201
    );
    let body = event_with(|body| body["description"] = json!("bell\u{7}"));
    assert_refused(
        "bell",
        app.admin_post("/admin/v1/events", &body).await,
        &["description"],
    )
    .await;
    app.stop().await;
}

/// `PATCH path` with `body` as the tenant's admin.
async fn patch(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.admin_patch(path, body).await
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn nul_in_an_edit_is_refused_and_changes_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let event = format!("/admin/v1/events/{}", fixture.event_id);
    let zone_path = format!("{event}/zones/{}", fixture.zone_ids[0]);
    let before = app.admin(reqwest::Method::GET, &event, &json!({})).await;
    let before: Value = before.json().await.expect("detail");
    let counts = written(&app.pool).await;
    let cases = [
        (&event, json!({"title": "Ti\u{0}tle"}), "title"),
        (&event, json!({"description": "\u{0}"}), "description"),
        (&event, json!({"category": "concerts\u{0}"}), "category"),
        (&zone_path, json!({"name": "Stalls\u{0}"}), "zone.name"),
    ];
    for (path, body, field) in cases {
        assert_refused(field, patch(&app, path, &body).await, &[field]).await;
    }
    let after = app.admin(reqwest::Method::GET, &event, &json!({})).await;
    assert_eq!(after.json::<Value>().await.expect("detail"), before);
    assert_eq!(written(&app.pool).await, counts, "no outbox message either");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn instants_outside_the_sane_range_are_refused_on_create(pool: PgPool) {
    let app = spawn_app(pool).await;
    let before = written(&app.pool).await;
    let cases = [
        (
            "/shows/0/starts_at",
            "+10000-01-01T00:00:00Z",
            "shows[0].starts_at",
        ),
        (
            "/shows/0/starts_at",
            "0000-01-01T00:00:00Z",
            "shows[0].starts_at",
        ),
        (
            "/shows/0/starts_at",
            "1999-12-31T23:59:59Z",
            "shows[0].starts_at",
        ),
        (
            "/shows/0/starts_at",
            "2200-01-01T00:00:00Z",
            "shows[0].starts_at",
        ),
        (
            "/shows/0/sale_starts_at",
            "0000-01-01T00:00:00Z",
            "shows[0].sale_starts_at",
        ),
        (
            "/shows/0/sale_ends_at",
            "+10000-01-01T00:00:00Z",
            "shows[0].sale_ends_at",
        ),
        (
            "/booking_opens_at",
            "0000-01-01T00:00:00Z",
            "booking_opens_at",
        ),
        (
            "/booking_closes_at",
            "+10000-01-01T00:00:00Z",
            "booking_closes_at",
        ),
    ];
    for (pointer, at, field) in cases {
        let body = event_with(|body| set(body, pointer, json!(at)));
        let response = app.admin_post("/admin/v1/events", &body).await;
        assert_refused(&format!("{field} = {at}"), response, &[field]).await;
    }
    assert_eq!(
        written(&app.pool).await,
        before,
        "a refused create writes nothing"
    );
    // The bounds themselves: from 2000-01-01 inclusive, before 2200-01-01.
    let body = event_with(|body| {
        body["shows"][0]["starts_at"] = json!("2199-12-31T23:59:59Z");
        body["shows"][0]["sale_starts_at"] = json!("2000-01-01T00:00:00Z");
    });
    assert_eq!(
        app.admin_post("/admin/v1/events", &body).await.status(),
        201
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn instants_outside_the_sane_range_are_refused_on_edit(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let event = format!("/admin/v1/events/{}", fixture.event_id);
    let show = format!("{event}/shows/{}", fixture.show_id);
    let counts = written(&app.pool).await;
    let cases = [
        (
            &show,
            json!({"starts_at": "+10000-01-01T00:00:00Z"}),
            "starts_at",
        ),
        (
            &show,
            json!({"starts_at": "0000-01-01T00:00:00Z"}),
            "starts_at",
        ),
        (
            &show,
            json!({"sale_starts_at": "0000-01-01T00:00:00Z"}),
            "sale_starts_at",
        ),
        (
            &show,
            json!({"sale_ends_at": "+10000-01-01T00:00:00Z"}),
            "sale_ends_at",
        ),
        (
            &event,
            json!({"booking_opens_at": "0000-01-01T00:00:00Z"}),
            "booking_opens_at",
        ),
        (
            &event,
            json!({"booking_closes_at": "+10000-01-01T00:00:00Z"}),
            "booking_closes_at",
        ),
    ];
    for (path, body, field) in cases {
        assert_refused(
            &format!("{path} {body}"),
            patch(&app, path, &body).await,
            &[field],
        )
        .await;
    }
    assert_eq!(
        written(&app.pool).await,
        counts,
        "a refused edit writes nothing"
    );
    // Nothing served is outside RFC 3339's four-digit years.
    let (_, detail) = app
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await;
    let starts_at = detail["shows"][0]["starts_at"].as_str().expect("starts_at");
    assert!(!starts_at.starts_with('+'), "{starts_at}");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn time_zones_must_be_iana_names(pool: PgPool) {
    let app = spawn_app(pool).await;
    let before = written(&app.pool).await;
    for timezone in [
        "Not/AZone",
        "europe/berlin",
        "CEST",
        "+01:00",
        " Europe/Berlin",
    ] {
        let body = event_with(|body| body["venue"]["timezone"] = json!(timezone));
        let response = app.admin_post("/admin/v1/events", &body).await;
        assert_refused(timezone, response, &["venue.timezone"]).await;
    }
    assert_eq!(written(&app.pool).await, before);
    for (n, timezone) in ["America/Argentina/Buenos_Aires", "UTC", "Asia/Kolkata"]
        .into_iter()
        .enumerate()
    {
        let mut body = event_with(|body| body["venue"]["timezone"] = json!(timezone));
        body["slug"] = json!(format!("tz-{n}"));
        let response = app.admin_post("/admin/v1/events", &body).await;
        assert_eq!(response.status(), 201, "{timezone}");
        let detail: Value = response.json().await.expect("detail");
        assert_eq!(detail["venue"]["timezone"], timezone);
    }
    app.stop().await;
}

/// JSON Schema's `integer` is any number without a fraction, so `2.0` and `1.2e1` are the
/// integers the document promises to take (schemathesis sends them); `2.5` is not one.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn integral_floats_are_integers_and_fractions_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let body = |quantity: Value| {
        json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
               "quantity": quantity, "customer_id": "floaty"})
    };
    let (status, hold) = app
        .post_json("/v1/holds", &body(json!(2.0)), Some("float-1"))
        .await;
    assert_eq!((status, &hold["quantity"]), (201, &json!(2)), "{hold}");
    let (status, problem) = app
        .post_json("/v1/holds", &body(json!(2.5)), Some("float-2"))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "quantity", "{problem}");

    let zone_path = format!(
        "/admin/v1/events/{}/zones/{}",
        fixture.event_id, fixture.zone_ids[0]
    );
    let edited = patch(&app, &zone_path, &json!({"capacity": 1.2e1})).await;
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.expect("event detail");
    assert_eq!(edited["shows"][0]["zones"][0]["capacity"], 12, "{edited}");
    let refused = patch(&app, &zone_path, &json!({"capacity": 10.5})).await;
    assert_refused("fractional capacity", refused, &["capacity"]).await;
    app.stop().await;
}

/// `payment_ref` is bounded in characters, as the document's `maxLength` and the column's
/// check count them: 128 two-byte characters are accepted, 129 refused.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_payment_ref_is_bounded_in_characters_not_bytes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let mut hold_ids = Vec::new();
    for key in ["ref-hold-1", "ref-hold-2"] {
        let (status, hold) = app.hold(&fixture, 1, key, key).await;
        assert_eq!(status, 201, "{hold}");
        hold_ids.push(hold["hold_id"].as_str().expect("hold_id").to_owned());
    }
    let confirm = |hold_id: &str, payment_ref: String, key: &'static str| {
        let path = format!("/v1/holds/{hold_id}/confirm");
        let app = &app;
        async move {
            app.post_json(&path, &json!({ "payment_ref": payment_ref }), Some(key))
                .await
        }
    };
    let (status, problem) = confirm(&hold_ids[0], "ü".repeat(129), "ref-confirm-1").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "payment_ref", "{problem}");
    let (status, confirmed) = confirm(&hold_ids[1], "ü".repeat(128), "ref-confirm-2").await;
    assert_eq!(
        (status, &confirmed["status"]),
        (200, &json!("confirmed")),
        "{confirmed}"
    );
    app.stop().await;
}
