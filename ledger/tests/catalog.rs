//! Catalog reads and admin writes over HTTP: auth per tenant, listing, search,
//! pagination, capacity edits, bad input answered with problem+json, stored values this
//! version does not know, and the price cap held by the database too.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::money::PRICE_MINOR_MAX;
use tessera_testkit::ledger::{event_body, spawn_app, zone, zone_counters};

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn admin_needs_a_token_of_the_owning_tenant(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let body = event_body("owned", vec![zone(10)]);

    let anonymous = app
        .client
        .post(app.url("/admin/v1/events"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let problem: Value = anonymous.json().await.expect("json");
    assert_eq!(problem["code"], "unauthorized");
    let forged = app
        .client
        .post(app.url("/admin/v1/events"))
        .bearer_auth("tsk_forged")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 401);

    let created = app.admin_post("/admin/v1/events", &body).await;
    assert_eq!(created.status(), 201);
    let event: Value = created.json().await.expect("json");
    assert_eq!(event["status"], "draft");
    let event_id = event["event_id"].as_str().expect("event_id");

    let mut conn = pool.acquire().await.expect("conn");
    let (_, other_token) = tessera_ledger::auth::create_tenant(&mut conn, "Rival")
        .await
        .expect("tenant");
    let publish = format!("/admin/v1/events/{event_id}/publish");
    let rival = app
        .client
        .post(app.url(&publish))
        .bearer_auth(&other_token)
        .send()
        .await
        .expect("request");
    assert_eq!(rival.status(), 403);
    let problem: Value = rival.json().await.expect("json");
    assert_eq!(problem["code"], "forbidden");
    let rival_edit = app
        .client
        .patch(app.url(&format!("/admin/v1/events/{event_id}")))
        .bearer_auth(&other_token)
        .json(&json!({"title": "Hijacked"}))
        .send()
        .await
        .expect("request");
    assert_eq!(rival_edit.status(), 403);

    // A draft is invisible to the public until its owner publishes it.
    assert_eq!(app.get_json(&format!("/v1/events/{event_id}")).await.0, 404);
    assert_eq!(app.admin_post(&publish, &json!({})).await.status(), 200);
    let (status, public) = app.get_json(&format!("/v1/events/{event_id}")).await;
    assert_eq!(
        (status, public["title"].as_str()),
        (200, Some("Event owned"))
    );

    let duplicate = app.admin_post("/admin/v1/events", &body).await;
    assert_eq!(duplicate.status(), 409, "slug is unique per tenant");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn bad_admin_input_is_a_422_problem_listing_the_fields(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut body = event_body(
        "Not A Slug",
        vec![
            json!({"name": "", "price_minor": -1, "currency": "EUR", "capacity": 10,
        "min_per_order": 5, "max_per_order": 2}),
        ],
    );
    body["venue"]["country"] = json!("Germany");
    let response = app.admin_post("/admin/v1/events", &body).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "validation_failed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    for expected in [
        "slug",
        "venue.country",
        "shows[0].zones[0].name",
        "shows[0].zones[0].price_minor",
        "shows[0].zones[0].max_per_order",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }

    let mut unknown = event_body("ok-slug", vec![zone(1)]);
    unknown["colour"] = json!("red");
    let response = app.admin_post("/admin/v1/events", &unknown).await;
    assert_eq!(response.status(), 422, "unknown fields are rejected");

    let mut bad_currency = event_body("ok-slug", vec![zone(1)]);
    bad_currency["shows"][0]["zones"][0]["currency"] = json!("euro");
    assert_eq!(
        app.admin_post("/admin/v1/events", &bad_currency)
            .await
            .status(),
        422
    );

    let mut bad_category = event_body("ok-slug", vec![zone(1)]);
    bad_category["category"] = json!("no-such-category");
    let response = app.admin_post("/admin/v1/events", &bad_category).await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["errors"][0]["field"], "category");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn public_bad_input_never_yields_a_500(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let cases: Vec<(&str, &str, Option<String>, u16, &str)> = vec![
        ("GET", "/v1/events/not-a-uuid", None, 422, "validation_failed"),
        ("GET", "/v1/shows/123/availability", None, 422, "validation_failed"),
        ("GET", "/v1/holds/zzz", None, 422, "validation_failed"),
        ("GET", "/v1/holds/%FF", None, 422, "validation_failed"),
        ("GET", "/v1/events/00000000-0000-0000-0000-000000000000", None, 404, "not_found"),
        ("GET", "/v1/events?limit=0", None, 422, "validation_failed"),
        ("GET", "/v1/events?limit=abc", None, 422, "validation_failed"),
        ("GET", "/v1/events?cursor=garbage", None, 422, "validation_failed"),
        ("GET", "/v1/events?from=yesterday", None, 422, "validation_failed"),
        // RFC 3339 with a signed year: PostgreSQL refuses instants before 4713 BC.
        ("GET", "/v1/events?from=-5000-01-01T00:00:00Z", None, 422, "validation_failed"),
        ("GET", "/v1/events?to=%2B10000-01-01T00:00:00Z", None, 422, "validation_failed"),
        ("GET", "/v1/nowhere", None, 404, "not_found"),
        ("DELETE", "/v1/events", None, 405, "method_not_allowed"),
        ("POST", "/v1/holds", Some("{not json".to_owned()), 400, "malformed_json"),
        ("POST", "/v1/holds", Some("[]".to_owned()), 422, "validation_failed"),
        ("POST", "/v1/holds", Some(json!({"show_id": fixture.show_id, "zone_id": "nope", "quantity": 1, "customer_id": "a"}).to_string()), 422, "validation_failed"),
        ("POST", "/v1/holds", Some(json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": "2", "customer_id": "a"}).to_string()), 422, "validation_failed"),
        ("POST", "/v1/holds", Some(json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": "a", "vip": true}).to_string()), 422, "validation_failed"),
        ("POST", "/v1/holds", Some(json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": "a", "pad": "x".repeat(70_000)}).to_string()), 413, "payload_too_large"),
        ("POST", "/v1/holds", Some(json!({"show_id": fixture.show_id, "zone_id": "00000000-0000-0000-0000-000000000000", "quantity": 1, "customer_id": "a"}).to_string()), 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let mut request = app
            .client
            .request(method.parse().expect("method"), app.url(path))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{method} {path}"
        );
        let problem: Value = response.json().await.expect("problem json");
        assert_eq!(problem["code"], code, "{method} {path}: {problem}");
        assert_eq!(problem["status"], status);
    }
    // Nothing above touched the stock.
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (10, 0, 0, 10)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn listing_filters_searches_and_paginates(pool: PgPool) {
    let app = spawn_app(pool).await;
    let titles = [
        "Beethoven Symphony Night",
        "Jazz at the Lake",
        "Cup Final",
        "Rock Legends",
        "Beethoven Piano Sonatas",
    ];
    for (i, title) in titles.iter().enumerate() {
        let mut body = event_body(&format!("event-{i}"), vec![zone(10 + i as i32)]);
        body["title"] = json!(title);
        body["shows"][0]["starts_at"] = json!(format!("2030-0{}-01T19:00:00Z", i + 1));
        if *title == "Cup Final" {
            body["category"] = json!("sports");
            body["venue"]["city"] = json!("Munich");
            body["featured"] = json!(true);
        }
        app.publish_event(body).await;
    }
    app.admin_post("/admin/v1/events", &event_body("draft-one", vec![zone(5)]))
        .await;

    let titles_of = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, all) = app.get_json("/v1/events").await;
    assert_eq!(
        titles_of(&all),
        titles,
        "published only, ordered by first show"
    );
    let (_, found) = app.get_json("/v1/events?q=beeth").await;
    assert_eq!(
        titles_of(&found),
        ["Beethoven Symphony Night", "Beethoven Piano Sonatas"],
        "prefix search"
    );
    let (_, typo) = app.get_json("/v1/events?q=Beethovn").await;
    assert_eq!(titles_of(&typo).len(), 2, "typo tolerant");
    let (_, sports) = app.get_json("/v1/events?category=sports").await;
    assert_eq!(titles_of(&sports), ["Cup Final"]);
    let (_, munich) = app.get_json("/v1/events?city=munich&featured=true").await;
    assert_eq!(titles_of(&munich), ["Cup Final"]);
    let (_, window) = app
        .get_json("/v1/events?from=2030-02-01T00:00:00Z&to=2030-04-01T00:00:00Z")
        .await;
    assert_eq!(titles_of(&window), ["Jazz at the Lake", "Cup Final"]);
    assert_eq!(all["items"][0]["price_from_minor"], 4500);

    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=2".to_owned();
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200);
        seen.extend(titles_of(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, titles, "pages cover everything exactly once");

    let (_, categories) = app.get_json("/v1/categories").await;
    let count = |slug: &str| {
        categories
            .as_array()
            .expect("list")
            .iter()
            .find(|c| c["slug"] == slug)
            .map(|c| c["event_count"].clone())
    };
    assert_eq!(count("concerts"), Some(json!(4)));
    assert_eq!(count("sports"), Some(json!(1)));
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn capacity_edits_keep_conservation(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    assert_eq!(app.hold(&fixture, 4, "a", "k1").await.0, 201);
    let path = format!(
        "/admin/v1/events/{}/zones/{}",
        fixture.event_id, fixture.zone_ids[0]
    );
    let patch = |capacity: i32| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.token)
            .json(&json!({"capacity": capacity}))
            .send()
    };
    let too_small = patch(3).await.expect("request");
    assert_eq!(too_small.status(), 409);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (6, 4, 0, 10)
    );
    assert_eq!(patch(25).await.expect("request").status(), 200);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (21, 4, 0, 25)
    );
    let (_, availability) = app
        .get_json(&format!("/v1/shows/{}/availability", fixture.show_id))
        .await;
    assert_eq!(availability["zones"][0]["available"], 21);
    assert_eq!(availability["zones"][0]["capacity"], 25);
    assert_eq!(patch(4).await.expect("request").status(), 200);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (0, 4, 0, 4)
    );
    let (status, problem) = app.hold(&fixture, 1, "b", "k2").await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("sold_out")));
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn availability_versions_increase_on_every_change(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let version = |v: &Value| v["zones"][0]["version"].as_i64().expect("version");
    let path = format!("/v1/shows/{}/availability", fixture.show_id);
    let (_, before) = app.get_json(&path).await;
    let (_, hold) = app.hold(&fixture, 1, "a", "k").await;
    let (_, after_hold) = app.get_json(&path).await;
    assert!(version(&after_hold) > version(&before));
    app.post_json(
        &format!(
            "/v1/holds/{}/release",
            hold["hold_id"].as_str().expect("id")
        ),
        &json!({}),
        None,
    )
    .await;
    let (_, after_release) = app.get_json(&path).await;
    assert!(version(&after_release) > version(&after_hold));
    assert_eq!(after_release["zones"][0]["available"], 10);
    app.stop().await;
}

/// Asserts a generic 500 `internal` that does not show the stored value.
fn assert_internal(what: &str, (status, problem): (u16, Value), stored: &str) {
    assert_eq!(
        (status, problem["code"].as_str()),
        (500, Some("internal")),
        "{what}: {problem}"
    );
    assert!(
        !problem.to_string().contains(stored),
        "{what} leaks the stored value: {problem}"
    );
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn unknown_stored_status_or_seating_is_an_error_not_a_default(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (status, hold) = app.hold(&fixture, 1, "a", "k1").await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["hold_id"].as_str().expect("hold_id");
    let event = format!("/v1/events/{}", fixture.event_id);
    let admin_event = format!("/admin{event}");
    // A value written by something other than this version: drop the CHECKs that would
    // refuse it (this test's own database).
    for sql in [
        "alter table events drop constraint events_status_check",
        "alter table zones drop constraint zones_seating_check",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    sqlx::query("update events set status = 'archived' where id = $1::uuid")
        .bind(&fixture.event_id)
        .execute(&pool)
        .await
        .expect("unknown status");
    // Read as a draft it would be a 404, as published a 200: neither is a guess we make.
    assert_internal("public read", app.get_json(&event).await, "archived");
    assert_internal("admin read", app.admin_get(&admin_event).await, "archived");
    let publish = app
        .admin_post(&format!("{admin_event}/publish"), &json!({}))
        .await;
    let publish = (
        publish.status().as_u16(),
        publish.json().await.expect("json"),
    );
    assert_internal("publish", publish, "archived");
    let confirm = app
        .post_json(
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({"payment_ref": "pay_1"}),
            Some("c1"),
        )
        .await;
    assert_internal("confirm", confirm, "archived");
    assert_internal("hold", app.hold(&fixture, 1, "b", "k2").await, "archived");

    sqlx::query("update events set status = 'published' where id = $1::uuid")
        .bind(&fixture.event_id)
        .execute(&pool)
        .await
        .expect("known status");
    assert_eq!(app.get_json(&event).await.0, 200);
    sqlx::query("update zones set seating = 'boxes' where id = $1::uuid")
        .bind(&fixture.zone_ids[0])
        .execute(&pool)
        .await
        .expect("unknown seating");
    // Read as general admission it would be a 200 that sells; as assigned, a refusal.
    assert_internal("public read", app.get_json(&event).await, "boxes");
    assert_internal("hold", app.hold(&fixture, 1, "c", "k3").await, "boxes");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_database_holds_the_same_price_cap_as_the_ledger(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let (status, hold) = app.hold(&fixture, 1, "a", "k1").await;
    assert_eq!(status, 201, "{hold}");
    let path = format!(
        "/admin/v1/events/{}/zones/{}",
        fixture.event_id, fixture.zone_ids[0]
    );
    let patch = |price: i64| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.token)
            .json(&json!({ "price_minor": price }))
            .send()
    };
    // The API takes the cap (so the database must too) and refuses one more.
    assert_eq!(patch(PRICE_MINOR_MAX).await.expect("request").status(), 200);
    let above = patch(PRICE_MINOR_MAX + 1).await.expect("request");
    assert_eq!(above.status(), 422);
    let problem: Value = above.json().await.expect("json");
    assert_eq!(problem["errors"][0]["field"], "zone.price_minor");

    // Written around the API, one more than the cap is refused by a CHECK.
    let cases = [
        (
            "update zones set price_minor = $1 where id = $2::uuid",
            fixture.zone_ids[0].as_str(),
            "zone_price_max",
        ),
        (
            "update holds set unit_price_minor = $1 where id = $2::uuid",
            hold["hold_id"].as_str().expect("hold_id"),
            "hold_unit_price_max",
        ),
    ];
    for (sql, id, constraint) in cases {
        let write = |price: i64| sqlx::query(sql).bind(price).bind(id).execute(&pool);
        write(PRICE_MINOR_MAX)
            .await
            .expect("the cap itself is allowed");
        let refused = write(PRICE_MINOR_MAX + 1).await.expect_err("above the cap");
        assert_eq!(
            refused.as_database_error().and_then(|e| e.constraint()),
            Some(constraint),
            "{refused}"
        );
    }
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn edits_are_checked_like_creates_and_change_nothing_when_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let event = format!("/admin/v1/events/{}", fixture.event_id);
    let (_, before) = app.admin_get(&event).await;
    let cases = [
        (
            event.clone(),
            json!({"title": " ", "description": "x".repeat(10_001), "max_tickets_per_customer": 0,
                   "booking_opens_at": "2030-01-02T00:00:00Z", "booking_closes_at": "2030-01-01T00:00:00Z"}),
            vec![
                "title",
                "description",
                "max_tickets_per_customer",
                "booking_closes_at",
            ],
        ),
        (
            format!("{event}/shows/{}", fixture.show_id),
            json!({"sale_starts_at": "2030-01-02T00:00:00Z", "sale_ends_at": "2030-01-01T00:00:00Z"}),
            vec!["sale_ends_at"],
        ),
        (
            format!("{event}/zones/{}", fixture.zone_ids[0]),
            json!({"name": "", "price_minor": -1, "capacity": -1, "min_per_order": 5, "max_per_order": 2}),
            vec![
                "zone.name",
                "zone.price_minor",
                "zone.capacity",
                "zone.max_per_order",
            ],
        ),
    ];
    for (path, body, expected) in cases {
        let response = app
            .client
            .patch(app.url(&path))
            .bearer_auth(&app.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 422, "{path}");
        let problem: Value = response.json().await.expect("json");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(fields, expected, "{path}");
    }
    let (_, after) = app.admin_get(&event).await;
    assert_eq!(after, before, "a refused edit changes nothing");
    app.stop().await;
}
