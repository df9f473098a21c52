//! Assigned seating at the ledger, against real PostgreSQL: zones made with their seats
//! (rows with gaps, explicit lists, 100,000 seats in one request), the public seat map
//! with its ETag, the refusals of broken layouts, and the schema's own guards
//! (invariant 7).

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::seats::{decode_status_map, SeatStatus};
use tessera_testkit::ledger::{event_body, spawn_app, zone, zone_counters, TestApp};

fn slug() -> String {
    format!("e-{}", uuid::Uuid::new_v4().simple())
}

fn assigned_zone(seats: Value) -> Value {
    json!({"name": "Stalls", "price_minor": 6000, "currency": "EUR", "seating": "assigned", "seats": seats})
}

/// Creates an event with `zones` and answers the creation's status and body.
async fn create(app: &TestApp, zones: Vec<Value>) -> (u16, Value) {
    let response = app
        .admin_post("/admin/v1/events", &event_body(&slug(), zones))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// The fields a 422 names.
fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect()
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn an_assigned_zone_is_made_with_its_seats_and_mapped(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let seats = json!({"rows": [
        {"row": "A", "seats": 4, "gaps_after": [2]},
        {"section": "Balcony", "row": "B", "seats": 2, "first_number": 11}
    ]});
    let fixture = app
        .publish_event(event_body(&slug(), vec![assigned_zone(seats), zone(30)]))
        .await;
    let assigned = &fixture.zone_ids[0];
    // The counters are the seats': six available, capacity six.
    assert_eq!(zone_counters(&pool, assigned).await, (6, 0, 0, 6));

    let (status, map) = app
        .get_json(&format!("/v1/shows/{}/seats", fixture.show_id))
        .await;
    assert_eq!(status, 200, "{map}");
    let zones = map["zones"].as_array().expect("zones");
    assert_eq!(zones.len(), 1, "only the assigned zone has seats: {map}");
    let zone = &zones[0];
    assert_eq!(zone["zone_id"], assigned.as_str());
    assert_eq!(zone["seat_count"], 6);
    assert_eq!(
        zone["runs"],
        json!([
            {"section": "", "row": "A", "first_seat": 0, "numbers": [1, 2, 3, 4], "x": [0.0, 1.0, 3.0, 4.0], "y": [0.0, 0.0, 0.0, 0.0]},
            {"section": "Balcony", "row": "B", "first_seat": 4, "numbers": [11, 12], "x": [0.0, 1.0], "y": [1.0, 1.0]}
        ])
    );
    let statuses = decode_status_map(zone["status"].as_str().expect("status"), 6);
    assert_eq!(statuses, Some(vec![SeatStatus::Available; 6]));
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_seat_map_follows_its_zones_versions_by_etag(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let seats = json!({"rows": [{"row": "A", "seats": 3}]});
    let fixture = app
        .publish_event(event_body(&slug(), vec![assigned_zone(seats)]))
        .await;
    let url = app.url(&format!("/v1/shows/{}/seats", fixture.show_id));
    let client = reqwest::Client::new();
    let first = client.get(&url).send().await.expect("seats");
    let etag = first.headers().get(ETAG).expect("an ETag").clone();
    let again = client
        .get(&url)
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("seats");
    assert_eq!(again.status(), 304);

    // A seat changes state (blocked here by hand; holds come next) and the zone's
    // version moves with it: the old ETag no longer matches.
    sqlx::query(
        "with blocked as (update seats set status = 'blocked' where zone_id = $1 and seat_index = 1)
         update zones set available = available - 1, capacity = capacity - 1, version = version + 1
         where id = $1",
    )
    .bind(fixture.zone_ids[0].parse::<uuid::Uuid>().expect("zone id"))
    .execute(&pool)
    .await
    .expect("block a seat");
    let changed = client
        .get(&url)
        .header(IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("seats");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers().get(ETAG), Some(&etag));
    let map: Value = changed.json().await.expect("json");
    let statuses = decode_status_map(map["zones"][0]["status"].as_str().expect("status"), 3);
    assert_eq!(
        statuses,
        Some(vec![
            SeatStatus::Available,
            SeatStatus::Blocked,
            SeatStatus::Available
        ])
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_100000_seat_zone_is_one_request_and_its_states_stay_compact(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let rows: Vec<Value> = (0..100)
        .map(|i| json!({"row": format!("R{i}"), "seats": 1000, "gaps_after": [500]}))
        .collect();
    let fixture = app
        .publish_event(event_body(
            &slug(),
            vec![assigned_zone(json!({ "rows": rows }))],
        ))
        .await;
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (100_000, 0, 0, 100_000)
    );
    let (status, map) = app
        .get_json(&format!("/v1/shows/{}/seats", fixture.show_id))
        .await;
    assert_eq!(status, 200);
    let zone = &map["zones"][0];
    assert_eq!(zone["seat_count"], 100_000);
    assert_eq!(zone["runs"].as_array().expect("runs").len(), 100);
    // Two bits a seat: 25,000 bytes, 33,334 characters of base64.
    assert_eq!(zone["status"].as_str().expect("status").len(), 33_334);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn broken_layouts_are_refused_with_their_fields(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let cases = [
        (
            json!({"name": "S", "price_minor": 1, "currency": "EUR", "seating": "assigned"}),
            "shows[0].zones[0].seats",
        ),
        (
            json!({"name": "S", "price_minor": 1, "currency": "EUR", "capacity": 5,
                   "seats": {"rows": [{"row": "A", "seats": 5}]}}),
            "shows[0].zones[0].seats",
        ),
        (
            json!({"name": "S", "price_minor": 1, "currency": "EUR"}),
            "shows[0].zones[0].capacity",
        ),
        (
            assigned_zone(json!({"rows": [{"row": "A", "seats": 3}]}))
                .as_object()
                .map(|z| {
                    let mut z = z.clone();
                    z.insert("capacity".into(), json!(4));
                    Value::Object(z)
                })
                .expect("object"),
            "shows[0].zones[0].capacity",
        ),
        (
            assigned_zone(json!({"rows": [{"row": "A", "seats": 2}, {"row": "A", "seats": 2}]})),
            "shows[0].zones[0].seats",
        ),
        (
            assigned_zone(json!({"rows": [{"row": "A", "seats": 3, "gaps_after": [9]}]})),
            "shows[0].zones[0].seats.rows[0].gaps_after",
        ),
        (
            assigned_zone(json!({"list": [{"row": "A", "number": 0, "x": 0, "y": 0}]})),
            "shows[0].zones[0].seats.list[0].number",
        ),
    ];
    for (zone, field) in cases {
        let (status, problem) = create(&app, vec![zone.clone()]).await;
        assert_eq!(status, 422, "{zone} → {problem}");
        assert_eq!(problem["code"], "validation_failed", "{problem}");
        assert_eq!(fields(&problem), [field], "{zone} → {problem}");
    }
    // Both layouts at once, or neither, is not a layout.
    for seats in [json!({"rows": [], "list": []}), json!({})] {
        let (status, problem) = create(&app, vec![assigned_zone(seats)]).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(fields(&problem), ["shows[0].zones[0].seats"], "{problem}");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from seats")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 0, "nothing refused was stored");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn quantity_holds_and_capacity_edits_do_not_apply_to_seats(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app
        .publish_event(event_body(
            &slug(),
            vec![assigned_zone(json!({"rows": [{"row": "A", "seats": 5}]}))],
        ))
        .await;
    let (status, problem) = app.hold(&fixture, 2, "ann", "by-quantity").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (5, 0, 0, 5)
    );
    let edited = app
        .admin_patch(
            &format!(
                "/admin/v1/events/{}/zones/{}",
                fixture.event_id, fixture.zone_ids[0]
            ),
            &json!({"capacity": 9}),
        )
        .await;
    assert_eq!(edited.status(), 409);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (5, 0, 0, 5)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_schema_keeps_one_state_and_one_owner_per_seat(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app
        .publish_event(event_body(
            &slug(),
            vec![assigned_zone(json!({"rows": [{"row": "A", "seats": 2}]}))],
        ))
        .await;
    let zone_id: uuid::Uuid = fixture.zone_ids[0].parse().expect("zone id");
    // `$2` is one ticket id for the whole statement.
    let refused = [
        ("held without its hold", "update seats set status = 'held' where zone_id = $1 and seat_index = 0"),
        ("sold without its ticket", "update seats set status = 'sold', hold_id = $2 where zone_id = $1 and seat_index = 0"),
        ("available with a hold", "update seats set hold_id = $2 where zone_id = $1 and seat_index = 0"),
        ("an unknown state", "update seats set status = 'lost' where zone_id = $1 and seat_index = 0"),
        ("one ticket, two seats", "update seats set status = 'sold', hold_id = gen_random_uuid(), ticket_id = $2 where zone_id = $1"),
    ];
    for (what, sql) in refused {
        let mut query = sqlx::query(sql).bind(zone_id);
        if sql.contains("$2") {
            query = query.bind(uuid::Uuid::new_v4());
        }
        let error = query.execute(&pool).await.expect_err(what);
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        // 23514 check_violation, 23505 unique_violation: the schema's guards, nothing else.
        assert!(
            matches!(code.as_deref(), Some("23514" | "23505")),
            "{what}: {error}"
        );
    }
    // And a legal sale is stored.
    sqlx::query(
        "update seats set status = 'sold', hold_id = gen_random_uuid(), ticket_id = gen_random_uuid()
         where zone_id = $1 and seat_index = 0",
    )
    .bind(zone_id)
    .execute(&pool)
    .await
    .expect("a seat sold to one ticket");
    app.stop().await;
}
