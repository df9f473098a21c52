//! The inventory engine against real PostgreSQL: no oversell under concurrency,
//! conservation under a random mixed workload, idempotency, confirm/release, expiry.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::{
    assert_conservation, event_body, holds_per_transaction, lock_waiters, lock_zone, spawn_app,
    spawn_app_with, zone, zone_counters, Fixture, TestApp,
};
use tessera_testkit::metrics::sum_metric;
use tessera_testkit::wait_until;

/// Awaits hold requests that must all be answered 201; returns the distinct hold ids.
async fn created_hold_ids(
    tasks: Vec<tokio::task::JoinHandle<(u16, Value)>>,
) -> std::collections::HashSet<String> {
    let mut hold_ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 201, "{body}");
        hold_ids.insert(body["hold_id"].as_str().expect("hold_id").to_owned());
    }
    hold_ids
}

async fn five_hundred_clients_race_for_one_hundred_tickets(app: TestApp) {
    let fixture = Arc::new(app.event_with_zone(100).await);
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..500 {
        let (app, fixture) = (app.clone(), fixture.clone());
        tasks.push(tokio::spawn(async move {
            app.hold(&fixture, 1, &format!("c{i}"), &format!("race-{i}"))
                .await
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            201 => created += 1,
            409 => {
                let code = body["code"].as_str().unwrap_or_default();
                assert!(
                    code == "sold_out" || code == "insufficient_stock",
                    "unexpected refusal {body}"
                );
                refused += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(created, 100);
    assert_eq!(refused, 400);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (0, 100, 0, 100)
    );
    assert_conservation(&app.pool).await;
    let app = Arc::try_unwrap(app).ok().expect("sole owner");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn concurrent_holds_never_oversell_batched(pool: PgPool) {
    five_hundred_clients_race_for_one_hundred_tickets(spawn_app(pool).await).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn concurrent_holds_never_oversell_naive(pool: PgPool) {
    let app = spawn_app_with(pool, &[("HOLD_STRATEGY", "naive".to_owned())]).await;
    five_hundred_clients_race_for_one_hundred_tickets(app).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn two_ledgers_on_one_database_never_oversell(pool: PgPool) {
    // Two processes batching the same zone: the row lock arbitrates.
    let a = Arc::new(spawn_app(pool.clone()).await);
    let b = Arc::new(spawn_app(pool.clone()).await);
    let fixture = Arc::new(a.event_with_zone(50).await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let fixture = fixture.clone();
        tasks.push(tokio::spawn(async move {
            app.hold(&fixture, 1, &format!("c{i}"), &format!("k{i}"))
                .await
                .0
        }));
    }
    let mut created = 0;
    for task in tasks {
        if task.await.expect("task") == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 50);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (0, 50, 0, 50)
    );
    assert_conservation(&pool).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn idempotent_retry_returns_the_first_hold(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let (status, first) = app.hold(&fixture, 2, "alice", "key-1").await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = app.hold(&fixture, 2, "alice", "key-1").await;
    assert_eq!(status, 201);
    assert_eq!(again["hold_id"], first["hold_id"]);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (8, 2, 0, 10),
        "a retry changes nothing"
    );

    let (status, conflict) = app.hold(&fixture, 3, "alice", "key-1").await;
    assert_eq!(status, 422);
    assert_eq!(conflict["code"], "idempotency_conflict");
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (8, 2, 0, 10)
    );

    // The same key sent concurrently many times: one hold, every answer the same.
    let app = Arc::new(app);
    let fixture = Arc::new(fixture);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, fixture) = (app.clone(), fixture.clone());
            tokio::spawn(async move { app.hold(&fixture, 1, "bob", "key-2").await })
        })
        .collect();
    assert_eq!(created_hold_ids(tasks).await.len(), 1);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (7, 3, 0, 10)
    );
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn confirm_issues_tickets_and_release_returns_stock(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let (_, hold) = app.hold(&fixture, 3, "alice", "h1").await;
    let hold_id = hold["hold_id"].as_str().expect("hold_id");
    let confirm = format!("/v1/holds/{hold_id}/confirm");

    let (status, problem) = app
        .post_json(&confirm, &json!({"payment_ref": "pay_1"}), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("idempotency_key_required"))
    );
    let (status, confirmed) = app
        .post_json(&confirm, &json!({"payment_ref": "pay_1"}), Some("c1"))
        .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["tickets"].as_array().map(Vec::len), Some(3));
    assert_eq!(confirmed["total_minor"], 3 * 4500);
    let (status, replay) = app
        .post_json(&confirm, &json!({"payment_ref": "pay_1"}), Some("c1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        replay["tickets"], confirmed["tickets"],
        "a replay issues no new tickets"
    );
    let (status, again) = app
        .post_json(&confirm, &json!({"payment_ref": "pay_2"}), Some("c2"))
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("hold_not_active"))
    );
    let (status, _) = app
        .post_json(&format!("/v1/holds/{hold_id}/release"), &json!({}), None)
        .await;
    assert_eq!(status, 409, "a confirmed hold cannot be released");
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (7, 0, 3, 10)
    );

    let (_, second) = app.hold(&fixture, 2, "bob", "h2").await;
    let release = format!(
        "/v1/holds/{}/release",
        second["hold_id"].as_str().expect("hold_id")
    );
    for _ in 0..2 {
        let (status, released) = app.post_json(&release, &json!({}), None).await;
        assert_eq!(
            (status, released["status"].as_str()),
            (200, Some("released"))
        );
    }
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (7, 0, 3, 10),
        "released exactly once"
    );
    let (status, view) = app.get_json(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("confirmed")));
    assert_conservation(&app.pool).await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn rules_are_enforced_by_the_ledger(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut body = event_body(
        "limits",
        vec![json!({"name": "A", "price_minor": 1000, "currency": "EUR",
        "capacity": 100, "min_per_order": 2, "max_per_order": 4})],
    );
    body["max_tickets_per_customer"] = json!(6);
    let fixture = app.publish_event(body).await;
    let code = |r: (u16, Value)| (r.0, r.1["code"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        code(app.hold(&fixture, 1, "a", "r1").await),
        (422, "quantity_out_of_range".to_owned())
    );
    assert_eq!(
        code(app.hold(&fixture, 5, "a", "r2").await),
        (422, "quantity_out_of_range".to_owned())
    );
    assert_eq!(app.hold(&fixture, 4, "a", "r3").await.0, 201);
    assert_eq!(
        code(app.hold(&fixture, 3, "a", "r4").await),
        (409, "customer_limit_exceeded".to_owned())
    );
    assert_eq!(app.hold(&fixture, 2, "a", "r5").await.0, 201);

    // Sale window: move the show's sale into the future.
    let future = json!({"sale_starts_at": "2029-01-01T00:00:00Z"});
    let path = format!(
        "/admin/v1/events/{}/shows/{}",
        fixture.event_id, fixture.show_id
    );
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&app.token)
        .json(&future)
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    assert_eq!(
        code(app.hold(&fixture, 2, "b", "r6").await),
        (409, "sale_not_started".to_owned())
    );

    let cancelled = app
        .admin_post(
            &format!("/admin/v1/events/{}/cancel", fixture.event_id),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        code(app.hold(&fixture, 2, "b", "r7").await),
        (409, "event_not_on_sale".to_owned())
    );
    // Cancelling the event released its live holds: the stock is all back.
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (100, 0, 0, 100)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn expiry_releases_each_hold_once_with_two_sweepers(pool: PgPool) {
    // Holds live 1 s; two ledgers (two sweepers every 100 ms) share the database.
    let ttl = [("HOLD_TTL_SECONDS", "1".to_owned())];
    let a = spawn_app_with(pool.clone(), &ttl).await;
    let b = spawn_app_with(pool.clone(), &ttl).await;
    let fixture = a.event_with_zone(1000).await;
    let mut hold_ids = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (status, hold) = app
            .hold(&fixture, 2, &format!("c{i}"), &format!("e{i}"))
            .await;
        assert_eq!(status, 201, "{hold}");
        hold_ids.push(hold["hold_id"].as_str().expect("hold_id").to_owned());
    }
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (920, 80, 0, 1000)
    );

    wait_until("every hold expired", Duration::from_secs(15), || async {
        zone_counters(&pool, &fixture.zone_ids[0]).await.1 == 0
    })
    .await;
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await.0,
        1000,
        "every expired hold returned its stock exactly once"
    );
    let expired: i64 = sqlx::query_scalar("select count(*) from holds where status = 'expired'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(expired, 40);

    let (status, problem) = a
        .post_json(
            &format!("/v1/holds/{}/confirm", hold_ids[0]),
            &json!({"payment_ref": "late"}),
            Some("late"),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("hold_expired"))
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (1000, 0, 0, 1000),
        "a late confirm changes nothing"
    );
    assert_conservation(&pool).await;
    a.stop().await;
    b.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn confirm_after_expiry_fails_even_before_the_sweeper_runs(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("HOLD_TTL_SECONDS", "1".to_owned()),
            ("SWEEP_INTERVAL_MS", "600000".to_owned()),
        ],
    )
    .await;
    let fixture = app.event_with_zone(5).await;
    let (_, hold) = app.hold(&fixture, 1, "a", "x").await;
    let hold_id = hold["hold_id"].as_str().expect("hold_id");
    let id: uuid::Uuid = hold_id.parse().expect("uuid");
    wait_until("the hold lapsed", Duration::from_secs(5), || async {
        sqlx::query_scalar::<_, bool>("select now() >= expires_at from holds where id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("hold")
    })
    .await;
    let (status, problem) = app
        .post_json(
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({"payment_ref": "p"}),
            Some("k"),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("hold_expired"))
    );
    let (_, view) = app.get_json(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!(view["status"], "expired");
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (4, 1, 0, 5),
        "nothing changed yet"
    );
    let swept = tessera_ledger::holds::sweeper::sweep_once(&app.pool, 100)
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (5, 0, 0, 5)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn mixed_random_workload_conserves_every_ticket(pool: PgPool) {
    let app = Arc::new(spawn_app_with(pool.clone(), &[("HOLD_TTL_SECONDS", "1".to_owned())]).await);
    let zones = vec![zone(40), zone(25), zone(60)];
    let fixture = Arc::new(app.publish_event(event_body("mixed", zones)).await);
    let run_for = Duration::from_secs(4);
    let mut workers = Vec::new();
    for worker in 0..16 {
        let (app, fixture) = (app.clone(), fixture.clone());
        workers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut ops = 0u32;
            while started.elapsed() < run_for {
                let (zone, quantity, action) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..fixture.zone_ids.len()),
                        rng.random_range(1..=4),
                        rng.random_range(0..3),
                    )
                };
                let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[zone],
                                  "quantity": quantity, "customer_id": format!("w{worker}")});
                let key = uuid::Uuid::new_v4().to_string();
                let (status, hold) = app.post_json("/v1/holds", &body, Some(&key)).await;
                assert!(status == 201 || status == 409, "hold: {status} {hold}");
                if status == 201 {
                    let hold_id = hold["hold_id"].as_str().expect("hold_id");
                    match action {
                        0 => {
                            let (s, b) = app
                                .post_json(
                                    &format!("/v1/holds/{hold_id}/confirm"),
                                    &json!({"payment_ref": "p"}),
                                    Some(&key),
                                )
                                .await;
                            assert!(
                                s == 200 || (s == 409 && b["code"] == "hold_expired"),
                                "confirm: {s} {b}"
                            );
                        }
                        1 => {
                            let (s, b) = app
                                .post_json(
                                    &format!("/v1/holds/{hold_id}/release"),
                                    &json!({}),
                                    None,
                                )
                                .await;
                            assert_eq!(s, 200, "release: {b}");
                        }
                        _ => {} // left to expire
                    }
                }
                ops += 1;
            }
            ops
        }));
    }
    let mut total_ops = 0;
    for worker in workers {
        total_ops += worker.await.expect("worker");
    }
    assert!(total_ops > 100, "the workload ran ({total_ops} operations)");
    assert_conservation(&pool).await;
    // After every hold has lapsed and been swept, only sold tickets remain out.
    wait_until("every hold lapsed", Duration::from_secs(5), || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from holds where status = 'held' and expires_at > now()",
        )
        .fetch_one(&pool)
        .await
        .expect("count")
            == 0
    })
    .await;
    tessera_ledger::holds::sweeper::sweep_once(&pool, 10_000)
        .await
        .expect("sweep");
    // The app's own sweeper may hold some of them in a transaction of its own (this sweep
    // skips locked rows): every lapsed hold is released once it commits.
    wait_until("no ticket is held", Duration::from_secs(5), || async {
        sqlx::query_scalar::<_, i64>("select sum(held)::bigint from zones")
            .fetch_one(&pool)
            .await
            .expect("sum")
            == 0
    })
    .await;
    assert_conservation(&pool).await;
    let app = Arc::try_unwrap(app).ok().expect("sole owner");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_database_refuses_an_oversell_even_if_code_tries(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(3).await;
    let zone: uuid::Uuid = fixture.zone_ids[0].parse().expect("uuid");
    let err =
        sqlx::query("update zones set available = available - 4, held = held + 4 where id = $1")
            .bind(zone)
            .execute(&pool)
            .await
            .expect_err("the CHECK constraint must refuse");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("zone_counters_nonnegative")
    );
    let err = sqlx::query("update zones set held = held + 1 where id = $1")
        .bind(zone)
        .execute(&pool)
        .await
        .expect_err("refused");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("zone_conservation")
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn one_key_sent_to_two_ledgers_at_once_makes_one_hold(pool: PgPool) {
    let a = Arc::new(spawn_app(pool.clone()).await);
    let b = Arc::new(spawn_app(pool.clone()).await);
    let fixture = Arc::new(a.event_with_zone(100).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let fixture = fixture.clone();
            tokio::spawn(async move { app.hold(&fixture, 2, "carol", "shared-key").await })
        })
        .collect();
    assert_eq!(
        created_hold_ids(tasks).await.len(),
        1,
        "every retry got the first hold"
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (98, 2, 0, 100)
    );
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_refusal_is_replayed_too(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(1).await;
    let (_, first) = app.hold(&fixture, 1, "a", "first").await;
    let (status, refused) = app.hold(&fixture, 1, "b", "second").await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("sold_out")));
    // Stock comes back, but a retry of the refused request returns its first result.
    let release = format!(
        "/v1/holds/{}/release",
        first["hold_id"].as_str().expect("hold_id")
    );
    assert_eq!(app.post_json(&release, &json!({}), None).await.0, 200);
    let (status, replayed) = app.hold(&fixture, 1, "b", "second").await;
    assert_eq!((status, replayed), (409, refused));
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (1, 0, 0, 1)
    );
    // A new key is a new request.
    assert_eq!(app.hold(&fixture, 1, "b", "third").await.0, 201);
    app.stop().await;
}

/// A stored result replays only a final HTTP status: the database refuses to store another,
/// and a row that holds one anyway (written past the check) fails its retry with a 500
/// instead of replaying as status 700.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_stored_status_that_is_not_final_is_never_replayed(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(1).await;
    app.hold(&fixture, 1, "a", "first").await;
    let (status, refused) = app.hold(&fixture, 1, "b", "second").await;
    assert_eq!(status, 409, "{refused}");
    let set_status = "update idempotency set response_status = 700 where key = 'second'";
    let refusal = sqlx::query(set_status)
        .execute(&pool)
        .await
        .expect_err("a status past 599 is refused");
    let code = refusal.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23514"), "{refusal}");
    sqlx::raw_sql("alter table idempotency drop constraint idempotency_response_status_final")
        .execute(&pool)
        .await
        .expect("drop the check");
    sqlx::query(set_status)
        .execute(&pool)
        .await
        .expect("store 700");
    let (status, answer) = app.hold(&fixture, 1, "b", "second").await;
    assert_eq!((status, answer["code"].as_str()), (500, Some("internal")));
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_confirm_retried_while_the_first_runs_gets_the_same_tickets(pool: PgPool) {
    let app = Arc::new(spawn_app(pool).await);
    let fixture = app.event_with_zone(10).await;
    let (_, hold) = app.hold(&fixture, 2, "alice", "h").await;
    let confirm = Arc::new(format!(
        "/v1/holds/{}/confirm",
        hold["hold_id"].as_str().expect("hold_id")
    ));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (app, confirm) = (app.clone(), confirm.clone());
            tokio::spawn(async move {
                app.post_json(&confirm, &json!({"payment_ref": "pay"}), Some("pay-key"))
                    .await
            })
        })
        .collect();
    let mut tickets = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 200, "every retry gets the original result: {body}");
        tickets.insert(body["tickets"].to_string());
    }
    assert_eq!(tickets.len(), 1, "one set of tickets");
    assert_eq!(
        zone_counters(&app.pool, &fixture.zone_ids[0]).await,
        (8, 0, 2, 10)
    );
    assert_conservation(&app.pool).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn more_busy_zones_than_writers_are_served_unbatched(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), &[("HOLD_ZONE_WRITERS_MAX", "1".to_owned())]).await;
    let fixture = app
        .publish_event(event_body("two-zones", vec![zone(5), zone(7)]))
        .await;
    // Process-wide, so other tests may add to it; a delta below 7 still means this test's
    // unbatched holds were not counted.
    let unbatched_before = unbatched_total(&app).await;
    let app = Arc::new(app);
    let (show_id, zone_ids) = (fixture.show_id.clone(), fixture.zone_ids.clone());
    let metrics_app = app.clone();
    let request = move |i: usize| {
        let app = app.clone();
        let body = json!({"show_id": show_id, "zone_id": zone_ids[i % 2], "quantity": 1,
                          "customer_id": format!("c{i}")});
        async move {
            app.post_json("/v1/holds", &body, Some(&format!("k{i}")))
                .await
                .0
        }
    };
    // Zone 0 takes the only writer slot (its writer then idles far longer than this test).
    let mut statuses = vec![request(0).await];
    // Zone 0's writer stays blocked on the zone's row lock while the rest arrive, so its
    // requests queue; zone 1, with no slot left, commits each request alone meanwhile.
    let lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    let (zone0_tasks, zone1_tasks): (Vec<_>, Vec<_>) = (1..20)
        .map(|i| (i, tokio::spawn(request(i))))
        .partition(|(i, _)| i % 2 == 0);
    for (_, task) in zone1_tasks {
        statuses.push(task.await.expect("task"));
    }
    wait_until(
        "zone 0's writer waits for the lock",
        Duration::from_secs(10),
        || async { lock_waiters(&pool).await >= 1 },
    )
    .await;
    lock.commit().await.expect("unlock zone 0");
    for (_, task) in zone0_tasks {
        statuses.push(task.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        12,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (0, 5, 0, 5)
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[1]).await,
        (0, 7, 0, 7)
    );

    let unbatched = holds_per_transaction(&pool, &fixture.zone_ids[1]).await;
    assert_eq!(
        unbatched.len(),
        7,
        "one transaction per hold: {unbatched:?}"
    );
    let batched = holds_per_transaction(&pool, &fixture.zone_ids[0]).await;
    assert!(
        batched.iter().any(|&(_, holds)| holds > 1),
        "the writer committed queued holds together: {batched:?}"
    );
    let counted = unbatched_total(&metrics_app).await - unbatched_before;
    assert!(counted >= 7.0, "holds_unbatched_total rose by {counted}");
}

async fn unbatched_total(app: &TestApp) -> f64 {
    sum_metric(&app.metrics_text().await, "holds_unbatched_total", &[])
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_batch_whose_counters_disagree_is_rolled_back(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    // A foreign writer that skims one ticket off every hold update: the counters stay
    // conserved and in range, so only the engine's own check after the update sees it.
    sqlx::raw_sql(
        "create function skim() returns trigger language plpgsql as $$
         begin
             if new.held > old.held then
                 new.available := new.available + 1;
                 new.held := new.held - 1;
             end if;
             return new;
         end $$;
         create trigger skim before update on zones for each row execute function skim();",
    )
    .execute(&pool)
    .await
    .expect("trigger");
    let (status, problem) = app.hold(&fixture, 2, "alice", "skimmed").await;
    assert_eq!((status, problem["code"].as_str()), (500, Some("internal")));
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (10, 0, 0, 10),
        "nothing was granted"
    );
    let holds: i64 = sqlx::query_scalar("select count(*) from holds")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(holds, 0);

    sqlx::raw_sql("drop trigger skim on zones")
        .execute(&pool)
        .await
        .expect("drop trigger");
    let (status, hold) = app.hold(&fixture, 2, "alice", "skimmed").await;
    assert_eq!(
        status, 201,
        "a failed batch stores nothing to replay: {hold}"
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (8, 2, 0, 10)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn stored_refusals_expire_after_retention(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(1).await;
    assert_eq!(app.hold(&fixture, 1, "a", "k1").await.0, 201);
    assert_eq!(app.hold(&fixture, 1, "b", "k2").await.0, 409);
    let stored: i64 = sqlx::query_scalar("select count(*) from idempotency")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1, "only the refusal is stored separately");
    assert_eq!(
        tessera_ledger::idempotency::prune(&pool, Duration::from_secs(3600))
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        tessera_ledger::idempotency::prune(&pool, Duration::ZERO)
            .await
            .expect("prune"),
        1
    );
    app.stop().await;
}

/// Backends of this database opened by the hold writers' own pool.
async fn writer_connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
         where datname = current_database() and application_name = $1",
    )
    .bind(tessera_ledger::holds::writer_thread::WRITER_APPLICATION_NAME)
    .fetch_one(pool)
    .await
    .expect("count writer connections")
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn hold_writers_commit_on_their_own_pool_and_close_it_at_shutdown(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    assert_eq!(app.hold(&fixture, 2, "ann", "own-pool").await.0, 201);
    assert!(
        writer_connections(&pool).await >= 1,
        "the batch was committed on the writers' pool"
    );
    app.stop().await;
    wait_until(
        "the writers' connections are closed",
        Duration::from_secs(10),
        || async { writer_connections(&pool).await == 0 },
    )
    .await;
}

/// `count` held holds on the fixture's zone and as many stored refusals, written directly
/// (the probe only reads their keys).
async fn grow_holds(pool: &PgPool, fixture: &Fixture, count: i32) {
    let zone_id: uuid::Uuid = fixture.zone_ids[0].parse().expect("zone id");
    sqlx::query(
        "insert into holds (id, zone_id, show_id, event_id, customer_id, quantity,
                            unit_price_minor, currency, expires_at, idempotency_key,
                            request_sha256)
         select gen_random_uuid(), z.id, z.show_id, s.event_id, 'c' || g, 1, z.price_minor,
                z.currency, now() + interval '1 hour', 'grow-' || g,
                sha256(('grow-' || g)::bytea)
         from zones z join shows s on s.id = z.show_id, generate_series(1, $2) g
         where z.id = $1",
    )
    .bind(zone_id)
    .bind(count)
    .execute(pool)
    .await
    .expect("grow holds");
    sqlx::query(
        "insert into idempotency (scope, key, request_sha256, response_status, response_body)
         select 'hold', 'grow-r-' || g, sha256(('grow-r-' || g)::bytea), 409, '{}'::jsonb
         from generate_series(1, $1) g",
    )
    .bind(count)
    .execute(pool)
    .await
    .expect("grow refusals");
}

/// A batch of an event with a per-customer limit counts its customers' tickets through
/// `holds_customer_idx`, one probe a customer, even when the statistics date from before
/// the sale (its first minute, or a server without autovacuum): otherwise every batch reads
/// every live hold of the event (`commit::CUSTOMER_TICKETS_SQL`).
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_customer_count_probes_its_customers_however_much_is_sold(pool: PgPool) {
    const BATCH_CUSTOMERS: usize = 128;
    sqlx::raw_sql("analyze holds")
        .execute(&pool)
        .await
        .expect("statistics of the empty table");
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(1_000_000).await;
    grow_holds(&pool, &fixture, 20_000).await;
    app.stop().await;
    // A batch's worth of customers: some with tickets, some new.
    let customers: Vec<String> = (1..=BATCH_CUSTOMERS)
        .map(|i| format!("'{}{i}'", if i % 2 == 0 { "c" } else { "new-" }))
        .collect();
    let plan = tessera_testkit::ledger::executed_plan(
        &pool,
        tessera_ledger::holds::commit::CUSTOMER_TICKETS_SQL,
        "uuid, text[]",
        &format!("'{}', array[{}]", fixture.event_id, customers.join(", ")),
    )
    .await;
    assert!(
        tessera_testkit::ledger::probes_by(&plan, "customer_id"),
        "{plan}"
    );
}

/// The writers' key probe is a prepared statement, first run while `holds` is empty (and
/// analyzed so: a fresh database after `ANALYZE`, as the bench's scale scenario makes). A
/// plan cached then scans the whole table on every batch once it has grown (measured:
/// scale's holds/s fell by a third); on the writers' connections it probes the indexes.
/// So does the foreign-key check PostgreSQL runs for each ticket a confirm batch inserts
/// (its own prepared statement, as written here), cached while the sale was young.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_key_probe_uses_the_indexes_after_the_tables_grew(pool: PgPool) {
    use sqlx::ConnectOptions;
    let options =
        tessera_ledger::holds::writer_thread::writer_connect_options(&pool.connect_options());
    let mut conn = options.connect().await.expect("a writer's connection");
    sqlx::raw_sql("analyze holds; analyze idempotency")
        .execute(&mut conn)
        .await
        .expect("analyze the empty tables");
    let prepare = format!(
        "prepare probe(text[], text) as {}",
        tessera_ledger::holds::commit::USED_KEYS_SQL
    );
    sqlx::raw_sql(&prepare)
        .execute(&mut conn)
        .await
        .expect("prepare the probe");
    sqlx::raw_sql(TICKET_HOLD_CHECK)
        .execute(&mut conn)
        .await
        .expect("prepare the ticket's check");
    // Past the executions after which PostgreSQL may switch to a cached generic plan.
    for _ in 0..10 {
        sqlx::raw_sql(&format!(
            "execute probe(array['a', 'b'], 'hold'); execute ticket_check('{}')",
            uuid::Uuid::nil()
        ))
        .execute(&mut conn)
        .await
        .expect("probe");
    }
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(1_000_000).await;
    grow_holds(&pool, &fixture, 20_000).await;
    app.stop().await;
    let plan = explained(&mut conn, "explain execute probe(array['a', 'b'], 'hold')").await;
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(
        plan.contains("holds_idempotency_key_key") && plan.contains("idempotency_pkey"),
        "{plan}"
    );
    let check = explained(
        &mut conn,
        &format!("explain execute ticket_check('{}')", uuid::Uuid::nil()),
    )
    .await;
    assert!(check.contains("Index Scan using holds_pkey"), "{check}");
}

/// The query PostgreSQL runs to check a ticket's foreign key to its hold (`ri_triggers.c`).
const TICKET_HOLD_CHECK: &str =
    "prepare ticket_check(uuid) as select 1 from only public.holds x where id = $1 for key share of x";

async fn explained(conn: &mut sqlx::PgConnection, explain: &str) -> String {
    let plan: Vec<String> = sqlx::query_scalar(explain)
        .fetch_all(conn)
        .await
        .expect("explain");
    plan.join("\n")
}
