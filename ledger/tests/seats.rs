//! Assigned seating at the ledger, against real PostgreSQL: zones made with their seats
//! (rows with gaps, explicit lists, 100,000 seats in one request), the public seat map
//! with its ETag, the refusals of broken layouts, and the schema's own guards
//! (invariant 7).

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::IndexedRandom;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::seats::{decode_status_map, SeatStatus};
use tessera_testkit::ledger::{
    event_body, spawn_app, spawn_app_with, zone, zone_counters, Fixture, TestApp,
};
use tessera_testkit::wait_until;

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
            // A1–A2, then the aisle (`gaps_after: [2]`), then A3–A4 two places on.
            {"section": "", "row": "A", "first_seat": 0, "count": 2, "first_number": 1, "x": 0.0, "y": 0.0, "dx": 1.0, "dy": 0.0},
            {"section": "", "row": "A", "first_seat": 2, "count": 2, "first_number": 3, "x": 3.0, "y": 0.0, "dx": 1.0, "dy": 0.0},
            {"section": "Balcony", "row": "B", "first_seat": 4, "count": 2, "first_number": 11, "x": 0.0, "y": 1.0, "dx": 1.0, "dy": 0.0}
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
    // A run a side of each row's aisle: the layout is 200 runs, not 100,000 seats.
    assert_eq!(zone["runs"].as_array().expect("runs").len(), 200);
    // Two bits a seat: 25,000 bytes, 33,334 characters of base64.
    assert_eq!(zone["status"].as_str().expect("status").len(), 33_334);
    // The whole answer: the status map and a small layout (it was 1.5 MB with a number and
    // coordinates per seat).
    let bytes = serde_json::to_vec(&map).expect("json").len();
    assert!(bytes < 70_000, "{bytes} bytes");
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

/// A published event with one assigned zone of `rows` (row specs).
async fn seated_event(app: &TestApp, rows: Value) -> Fixture {
    app.publish_event(event_body(
        &slug(),
        vec![assigned_zone(json!({ "rows": rows }))],
    ))
    .await
}

/// `POST /v1/holds` for `seats` (indexes) by `customer`.
async fn hold_seats(
    app: &TestApp,
    fixture: &Fixture,
    seats: &[i32],
    customer: &str,
) -> (u16, Value) {
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                      "seats": seats, "customer_id": customer});
    app.post_json("/v1/holds", &body, Some(&uuid::Uuid::new_v4().to_string()))
        .await
}

async fn hold_best(
    app: &TestApp,
    fixture: &Fixture,
    quantity: i32,
    customer: &str,
) -> (u16, Value) {
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                      "quantity": quantity, "best_available": true, "customer_id": customer});
    app.post_json("/v1/holds", &body, Some(&uuid::Uuid::new_v4().to_string()))
        .await
}

/// The seats of the fixture's zone as the public map shows them.
async fn seat_states(app: &TestApp, fixture: &Fixture) -> Vec<SeatStatus> {
    let (status, map) = app
        .get_json(&format!("/v1/shows/{}/seats", fixture.show_id))
        .await;
    assert_eq!(status, 200, "{map}");
    let zone = &map["zones"][0];
    let count = zone["seat_count"].as_u64().expect("count") as usize;
    decode_status_map(zone["status"].as_str().expect("status"), count).expect("a status map")
}

fn indexes(value: &Value) -> Vec<i32> {
    value
        .as_array()
        .expect("an array of seat indexes")
        .iter()
        .map(|s| s.as_i64().expect("index") as i32)
        .collect()
}

/// Invariant 7 on every assigned zone: counters = seats by state, a held seat's hold is
/// live and lists it, a sold seat's ticket is its hold's and names it.
async fn assert_seats_agree(pool: &PgPool) {
    let breaches: Vec<String> = sqlx::query_scalar(
        "select 'zone ' || z.id || ': counters ' || z.available || '/' || z.held || '/' || z.sold
                || '/' || z.capacity || ' vs seats ' || count(*) filter (where s.status = 'available')
                || '/' || count(*) filter (where s.status = 'held') || '/'
                || count(*) filter (where s.status = 'sold') || '/'
                || count(*) filter (where s.status <> 'blocked')
         from zones z join seats s on s.zone_id = z.id
         group by z.id
         having z.available <> count(*) filter (where s.status = 'available')
             or z.held <> count(*) filter (where s.status = 'held')
             or z.sold <> count(*) filter (where s.status = 'sold')
             or z.capacity <> count(*) filter (where s.status <> 'blocked')
         union all
         select 'seat ' || s.seat_index || ' held by ' || coalesce(h.id::text, 'nothing')
         from seats s left join holds h on h.id = s.hold_id
         where s.status = 'held'
           and (h.id is null or h.status <> 'held' or not s.seat_index = any(h.seat_indexes))
         union all
         select 'seat ' || s.seat_index || ' sold to ' || coalesce(t.id::text, 'nothing')
         from seats s left join tickets t on t.id = s.ticket_id
         where s.status = 'sold'
           and (t.id is null or t.hold_id <> s.hold_id or t.seat_index <> s.seat_index)",
    )
    .fetch_all(pool)
    .await
    .expect("audit");
    assert!(breaches.is_empty(), "{breaches:#?}");
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn named_seats_are_held_all_or_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = seated_event(&app, json!([{"row": "A", "seats": 6}])).await;
    let (status, hold) = hold_seats(&app, &fixture, &[1, 2], "ann").await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(indexes(&hold["seats"]), [1, 2]);
    assert_eq!(hold["quantity"], 2);
    // Seat 2 is taken: the whole request is refused, naming it; seat 3 stays free.
    let (status, problem) = hold_seats(&app, &fixture, &[2, 3], "bob").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "seat_unavailable");
    assert_eq!(indexes(&problem["seats"]), [2]);
    // A seat the zone does not have is unavailable too.
    let (status, problem) = hold_seats(&app, &fixture, &[5, 6], "cy").await;
    assert_eq!(
        (status, indexes(&problem["seats"])),
        (409, vec![6]),
        "{problem}"
    );
    use SeatStatus::{Available as A, Held as H};
    assert_eq!(seat_states(&app, &fixture).await, [A, H, H, A, A, A]);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (4, 2, 0, 6)
    );
    assert_seats_agree(&pool).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn best_available_is_adjacent_front_and_centre_without_single_gaps(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    // Row A: 8 seats (0..=7); row B: 8 seats (8..=15), an aisle after B4.
    let fixture = seated_event(
        &app,
        json!([{"row": "A", "seats": 8}, {"row": "B", "seats": 8, "gaps_after": [4]}]),
    )
    .await;
    // Row A: seats 2 and 5 taken. Free blocks of 2: 0-1, 3-4, 6-7.
    for (seat, who) in [(2, "x"), (5, "y")] {
        assert_eq!(hold_seats(&app, &fixture, &[seat], who).await.0, 201);
    }
    // Three side by side: none left in row A, so row B; the aisle splits it 4 + 4, and
    // the block nearest the centre within a side is taken.
    let (status, hold) = hold_best(&app, &fixture, 3, "ann").await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(indexes(&hold["seats"]), [9, 10, 11]);
    // Two: row A's 3-4 is nearest the centre and leaves no single seat.
    let (status, hold) = hold_best(&app, &fixture, 2, "bob").await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(indexes(&hold["seats"]), [3, 4]);
    // Five side by side exist nowhere (row B is split by its aisle): refused, not scattered.
    let (status, problem) = hold_best(&app, &fixture, 5, "cy").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "insufficient_stock");
    assert_seats_agree(&pool).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn confirm_sells_the_seats_and_release_and_expiry_free_exactly_them(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), &[("HOLD_TTL_SECONDS", "1".to_owned())]).await;
    let fixture = seated_event(&app, json!([{"row": "A", "seats": 6}])).await;
    let (_, sold) = hold_seats(&app, &fixture, &[0, 1], "ann").await;
    let (_, released) = hold_seats(&app, &fixture, &[2], "bob").await;
    let (_, expiring) = hold_seats(&app, &fixture, &[4, 5], "cy").await;
    let confirm = app
        .post_json(
            &format!(
                "/v1/holds/{}/confirm",
                sold["hold_id"].as_str().expect("id")
            ),
            &json!({"payment_ref": "pay-1"}),
            Some("confirm-1"),
        )
        .await;
    assert_eq!(confirm.0, 200, "{}", confirm.1);
    let tickets = confirm.1["tickets"].as_array().expect("tickets");
    let ticket_seats: HashSet<i64> = tickets
        .iter()
        .map(|t| t["seat_index"].as_i64().expect("a seat"))
        .collect();
    assert_eq!(ticket_seats, HashSet::from([0, 1]));
    let release = app
        .post_json(
            &format!(
                "/v1/holds/{}/release",
                released["hold_id"].as_str().expect("id")
            ),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(release.0, 200, "{}", release.1);
    // The third hold lapses and the sweeper frees its seats.
    let _ = expiring;
    use SeatStatus::{Available as A, Sold as S};
    wait_until(
        "the lapsed hold's seats are free",
        Duration::from_secs(10),
        || async { seat_states(&app, &fixture).await == [S, S, A, A, A, A] },
    )
    .await;
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (4, 0, 2, 6)
    );
    assert_seats_agree(&pool).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn crowds_on_overlapping_seats_on_two_ledgers_never_share_a_seat(pool: PgPool) {
    const BUYERS: usize = 500;
    // Two processes on one database: the zone's row lock orders their batches.
    let a = Arc::new(spawn_app(pool.clone()).await);
    let b = Arc::new(spawn_app(pool.clone()).await);
    let fixture = Arc::new(
        seated_event(
            &a,
            json!([{"row": "A", "seats": 20}, {"row": "B", "seats": 20}]),
        )
        .await,
    );
    let mut tasks = Vec::new();
    for buyer in 0..BUYERS {
        let app = if buyer % 2 == 0 { a.clone() } else { b.clone() };
        let fixture = fixture.clone();
        // Most want the same twelve seats; some ask for the best three.
        let wanted: Vec<i32> = {
            let popular: Vec<i32> = (4..16).collect();
            let mut rng = rand::rng();
            let mut seats: Vec<i32> = popular
                .choose_multiple(&mut rng, 1 + buyer % 3)
                .copied()
                .collect();
            seats.sort_unstable();
            seats
        };
        tasks.push(tokio::spawn(async move {
            let customer = format!("c{buyer}");
            let answer = if buyer % 5 == 0 {
                hold_best(&app, &fixture, 3, &customer).await
            } else {
                hold_seats(&app, &fixture, &wanted, &customer).await
            };
            (wanted, buyer % 5 == 0, answer)
        }));
    }
    let mut granted: HashMap<i32, String> = HashMap::new();
    let mut refused = Vec::new();
    for task in tasks {
        let (wanted, best, (status, body)) = task.await.expect("task");
        match status {
            201 => {
                let seats = indexes(&body["seats"]);
                if !best {
                    assert_eq!(seats, wanted, "exactly the seats asked for");
                }
                for seat in seats {
                    let hold = body["hold_id"].as_str().expect("id").to_owned();
                    assert!(
                        granted.insert(seat, hold).is_none(),
                        "seat {seat} granted twice"
                    );
                }
            }
            409 => refused.push(body),
            other => panic!("{other}: {body}"),
        }
    }
    // Every refusal of named seats names seats some granted hold has.
    for problem in &refused {
        if problem["code"] == "seat_unavailable" {
            let named = indexes(&problem["seats"]);
            assert!(
                !named.is_empty() && named.iter().all(|s| granted.contains_key(s)),
                "{problem}"
            );
        } else {
            assert_eq!(problem["code"], "insufficient_stock", "{problem}");
        }
    }
    let held = granted.len() as i32;
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (40 - held, held, 0, 40)
    );
    assert_seats_agree(&pool).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn blocked_seats_leave_the_sale_and_its_capacity_until_unblocked(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = seated_event(&app, json!([{"row": "A", "seats": 6}])).await;
    let seats_url = |action: &str| {
        format!(
            "/admin/v1/events/{}/zones/{}/seats/{action}",
            fixture.event_id, fixture.zone_ids[0]
        )
    };
    let blocked = app
        .admin_post(&seats_url("block"), &json!({"seats": [0, 5]}))
        .await;
    assert_eq!(blocked.status(), 200);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (4, 0, 0, 4)
    );
    use SeatStatus::{Available as A, Blocked as B, Held as H};
    assert_eq!(seat_states(&app, &fixture).await, [B, A, A, A, A, B]);
    // A blocked seat cannot be held.
    let (status, problem) = hold_seats(&app, &fixture, &[4, 5], "ann").await;
    assert_eq!(
        (status, indexes(&problem["seats"])),
        (409, vec![5]),
        "{problem}"
    );
    // A held seat cannot be blocked, and nothing of that request is.
    assert_eq!(hold_seats(&app, &fixture, &[2], "bob").await.0, 201);
    let refused = app
        .admin_post(&seats_url("block"), &json!({"seats": [1, 2]}))
        .await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "seat_unavailable");
    assert_eq!(indexes(&problem["seats"]), [2]);
    assert_eq!(seat_states(&app, &fixture).await, [B, A, H, A, A, B]);
    // Unblocking only what is blocked, then back on sale.
    let refused = app
        .admin_post(&seats_url("unblock"), &json!({"seats": [0, 1]}))
        .await;
    assert_eq!(refused.status(), 409);
    let unblocked = app
        .admin_post(&seats_url("unblock"), &json!({"seats": [0, 5]}))
        .await;
    assert_eq!(unblocked.status(), 200);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (5, 1, 0, 6)
    );
    assert_seats_agree(&pool).await;
    // Bad input, and a zone without seats.
    for body in [
        json!({"seats": []}),
        json!({"seats": [1, 1]}),
        json!({"seats": [-1]}),
    ] {
        let response = app.admin_post(&seats_url("block"), &body).await;
        assert_eq!(response.status(), 422, "{body}");
    }
    let general = app.event_with_zone(5).await;
    let response = app
        .admin_post(
            &format!(
                "/admin/v1/events/{}/zones/{}/seats/block",
                general.event_id, general.zone_ids[0]
            ),
            &json!({"seats": [0]}),
        )
        .await;
    assert_eq!(response.status(), 409);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn best_available_sees_seats_changed_since_its_writers_last_batch(pool: PgPool) {
    // The writer keeps its board between batches: a release, or another ledger's hold,
    // must still be seen by the next best-available pick.
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app(pool.clone()).await;
    let fixture = seated_event(&a, json!([{"row": "A", "seats": 4}])).await;
    let (status, all) = hold_best(&a, &fixture, 4, "ann").await;
    assert_eq!(
        (status, indexes(&all["seats"])),
        (201, vec![0, 1, 2, 3]),
        "{all}"
    );
    let release = a
        .post_json(
            &format!("/v1/holds/{}/release", all["hold_id"].as_str().expect("id")),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(release.0, 200, "{}", release.1);
    // All four free again (1-2 would strand 0 and 3).
    let (status, two) = hold_best(&a, &fixture, 2, "bob").await;
    assert_eq!((status, indexes(&two["seats"])), (201, vec![0, 1]), "{two}");
    // Seat 2, the better of the two left, goes through the other ledger: only 3 remains.
    assert_eq!(hold_seats(&b, &fixture, &[2], "cy").await.0, 201);
    let (status, one) = hold_best(&a, &fixture, 1, "dee").await;
    assert_eq!((status, indexes(&one["seats"])), (201, vec![3]), "{one}");
    assert_seats_agree(&pool).await;
    b.stop().await;
    a.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn seat_holds_keep_the_limits_and_idempotency_of_general_admission(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let mut zone = assigned_zone(json!({"rows": [{"row": "A", "seats": 10}]}));
    zone["max_per_order"] = json!(3);
    let mut body = event_body(&slug(), vec![zone]);
    body["max_tickets_per_customer"] = json!(4);
    let fixture = app.publish_event(body).await;
    let request = |seats: &[i32], customer: &str| {
        json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "seats": seats,
               "customer_id": customer})
    };
    // The same key again: the first answer, seats and all; with another body: a conflict.
    let (status, first) = app
        .post_json("/v1/holds", &request(&[0, 1], "ann"), Some("seat-key"))
        .await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = app
        .post_json("/v1/holds", &request(&[0, 1], "ann"), Some("seat-key"))
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        (&again["hold_id"], &again["seats"]),
        (&first["hold_id"], &first["seats"])
    );
    let (status, conflict) = app
        .post_json("/v1/holds", &request(&[5], "ann"), Some("seat-key"))
        .await;
    assert_eq!(
        (status, conflict["code"].as_str()),
        (422, Some("idempotency_conflict"))
    );
    // The zone's order limit counts seats; the event's customer limit counts them too.
    let (status, problem) = hold_seats(&app, &fixture, &[5, 6, 7, 8], "bob").await;
    assert_eq!(
        problem["code"], "quantity_out_of_range",
        "{status} {problem}"
    );
    let (status, problem) = hold_seats(&app, &fixture, &[5, 6, 7], "ann").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("customer_limit_exceeded"))
    );
    let (status, hold) = hold_seats(&app, &fixture, &[5, 6], "ann").await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (6, 4, 0, 10)
    );
    assert_seats_agree(&pool).await;
    app.stop().await;
}
