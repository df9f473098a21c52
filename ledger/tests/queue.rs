//! The front door at the ledger (DESIGN.md "The front door"): places handed out once and
//! kept across restarts, `serving` moved on at the rate and held while sold out, and every
//! hold on a queued event checked for its pass — forged, foreign, expired, shared and
//! overused passes refused, nothing held for them.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::queue::{AdmissionPass, QueueKey, QueueKeys, HOLDS_PER_PASS_MAX};
use tessera_domain::EventId;
use tessera_testkit::edge::QUEUE_KEY;
use tessera_testkit::ledger::{
    executed_plan, probes_by, spawn_app, zone_counters, Fixture, TestApp,
};
use tessera_testkit::queue::{hold, join, poll, rejoin, wait_admitted};
use uuid::Uuid;

/// Longest a test waits for the queue to let someone in or move on.
const ADMISSION_LIMIT: Duration = Duration::from_secs(15);

fn ga(fixture: &Fixture, customer: &str, quantity: i64) -> Value {
    json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": quantity, "customer_id": customer})
}

fn keys() -> QueueKeys {
    QueueKeys {
        current: QueueKey::parse(QUEUE_KEY).expect("the kit's key"),
        previous: None,
    }
}

/// Joins with `key` and waits until admitted: the admitted answer.
async fn admitted(app: &TestApp, event_id: &str, key: &str) -> Value {
    let (status, joined) = join(&app.client, &app.base, event_id, Some(key)).await;
    assert_eq!(status, 201, "{joined}");
    let ticket = joined["ticket"].as_str().expect("ticket");
    wait_admitted(&app.client, &app.base, event_id, ticket, ADMISSION_LIMIT).await
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn places_are_handed_out_once_in_order_and_a_key_or_ticket_keeps_its_place(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fixture = app.event_with_zone(10).await;
    let event = fixture.event_id.as_str();
    let (status, off) = join(&app.client, &app.base, event, None).await;
    assert_eq!((status, off["code"].as_str()), (409, Some("queue_off")));
    // Slow enough that nobody is let in during this test.
    app.queue_on(event, 1).await;
    let (_, detail) = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(detail["queue"]["admit_per_minute"], 1, "{detail}");

    let (status, first) = join(&app.client, &app.base, event, Some("ann-1")).await;
    assert_eq!(
        (status, first["position"].as_i64()),
        (201, Some(1)),
        "{first}"
    );
    let (status, again) = join(&app.client, &app.base, event, Some("ann-1")).await;
    assert_eq!(status, 200, "the same key: the same place");
    assert_eq!(again["ticket"], first["ticket"]);
    let (status, second) = join(&app.client, &app.base, event, None).await;
    assert_eq!((status, second["position"].as_i64()), (201, Some(2)));
    // Rejoining with the ticket: the same place, and no new one taken.
    let ticket = first["ticket"].as_str().expect("ticket");
    let (status, _) = rejoin(&app.client, &app.base, event, ticket.as_bytes()).await;
    assert_eq!(status, 200);
    let (_, state) = app
        .get_json(&format!("/v1/events/{event}/queue/state"))
        .await;
    assert_eq!(state["joined"], 2, "{state}");
    // Waiting: the people ahead and a suggested polling interval.
    let (status, waiting) = poll(
        &app.client,
        &app.base,
        event,
        second["ticket"].as_str().expect("t"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(waiting["state"], "waiting");
    assert_eq!(waiting["ahead"], 1, "{waiting}");
    assert!(waiting["poll_after_seconds"].as_i64().is_some());
    assert!(waiting["pass"].is_null());
    // A bent ticket, or one for another event, is refused.
    let mut bent = ticket.to_owned();
    bent.replace_range(40..41, if &bent[40..41] == "A" { "B" } else { "A" });
    let (status, problem) = poll(&app.client, &app.base, event, &bent).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("queue_ticket_invalid"))
    );
    let other = app.event_with_zone(5).await;
    app.queue_on(&other.event_id, 1).await;
    let (status, problem) = poll(&app.client, &app.base, &other.event_id, ticket).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("queue_ticket_invalid"))
    );
    // A ticket that is not text is still a ticket sent: refused, and no new place.
    let (status, problem) = rejoin(&app.client, &app.base, event, b"\xff\xfeticket").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("queue_ticket_invalid")),
        "{problem}"
    );
    let (_, state) = app
        .get_json(&format!("/v1/events/{event}/queue/state"))
        .await;
    assert_eq!(state["joined"], 2, "{state}");

    // A restart keeps every place: the next is 3.
    let pool = app.pool.clone();
    app.stop().await;
    let app = spawn_app(pool).await;
    let (status, third) = join(&app.client, &app.base, event, None).await;
    assert_eq!(
        (status, third["position"].as_i64()),
        (201, Some(3)),
        "{third}"
    );
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_queued_event_holds_only_with_its_own_live_pass_for_one_buyer(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(50).await;
    let event = fixture.event_id.as_str();
    app.queue_on(event, 6_000).await;
    let (status, problem) = hold(&app.client, &app.base, &ga(&fixture, "ann", 2), None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("pass_required")),
        "{problem}"
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (50, 0, 0, 50)
    );

    let admitted_ann = admitted(&app, event, "ann").await;
    let pass = admitted_ann["pass"]["token"].as_str().expect("a pass");
    let (status, held) = hold(&app.client, &app.base, &ga(&fixture, "ann", 2), Some(pass)).await;
    assert_eq!(status, 201, "{held}");

    // Forged, foreign and expired passes hold nothing.
    let mut forged = pass.to_owned();
    forged.replace_range(60..61, if &forged[60..61] == "A" { "B" } else { "A" });
    let other = app.event_with_zone(5).await;
    app.queue_on(&other.event_id, 6_000).await;
    let foreign = admitted(&app, &other.event_id, "ann-elsewhere").await;
    let expired = keys().sign_pass(&AdmissionPass {
        event_id: EventId(fixture.event_id.parse().expect("uuid")),
        position: 1,
        expires_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("t"),
        pass_id: Uuid::new_v4(),
    });
    let foreign_pass = foreign["pass"]["token"].as_str().expect("pass");
    for (bad, says) in [
        (forged.as_str(), "signed"),
        (foreign_pass, "another event"),
        (expired.as_str(), "expired"),
    ] {
        let (status, problem) =
            hold(&app.client, &app.base, &ga(&fixture, "ann", 1), Some(bad)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("pass_required")),
            "{problem}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{says}: {detail}");
    }
    // One buyer per pass: another customer is refused.
    let (status, problem) = hold(&app.client, &app.base, &ga(&fixture, "bob", 1), Some(pass)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("pass_used_up")),
        "{problem}"
    );
    // And a bounded number of holds: the first took one.
    for _ in 1..HOLDS_PER_PASS_MAX {
        let (status, held) =
            hold(&app.client, &app.base, &ga(&fixture, "ann", 1), Some(pass)).await;
        assert_eq!(status, 201, "{held}");
    }
    let (status, problem) = hold(&app.client, &app.base, &ga(&fixture, "ann", 1), Some(pass)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("pass_used_up")),
        "{problem}"
    );
    let holds_with_pass: i64 = sqlx::query_scalar(
        "select count(*) from holds where pass_id is not null and event_id = $1",
    )
    .bind(fixture.event_id.parse::<Uuid>().expect("uuid"))
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(holds_with_pass, HOLDS_PER_PASS_MAX);

    // A pass refusal is not stored against the key: once admitted, the same retry holds.
    let key = Uuid::new_v4().to_string();
    let body = ga(&fixture, "cy", 1);
    let (status, _) = app.post_json("/v1/holds", &body, Some(&key)).await;
    assert_eq!(status, 403);
    let cy = admitted(&app, event, "cy").await;
    let response = app
        .client
        .post(app.url("/v1/holds"))
        .header("idempotency-key", &key)
        .header("tessera-pass", cy["pass"]["token"].as_str().expect("pass"))
        .json(&body)
        .send()
        .await
        .expect("hold");
    assert_eq!(response.status().as_u16(), 201);
}

/// `serving` and the instant admissions are credited to.
async fn serving(pool: &PgPool, event_id: &str) -> (i64, DateTime<Utc>) {
    sqlx::query_as("select serving, advanced_at from event_queues where event_id = $1")
        .bind(event_id.parse::<Uuid>().expect("uuid"))
        .fetch_one(pool)
        .await
        .expect("queue")
}

/// Waits until `serving` reaches `target` (never beyond who joined).
async fn wait_serving(pool: &PgPool, event_id: &str, target: i64) {
    let deadline = Instant::now() + ADMISSION_LIMIT;
    loop {
        let (now_serving, _) = serving(pool, event_id).await;
        assert!(
            now_serving <= target,
            "let in {now_serving}, only {target} joined"
        );
        if now_serving == target {
            return;
        }
        assert!(Instant::now() < deadline, "serving stuck at {now_serving}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn serving_moves_on_to_who_joined_and_holds_still_while_sold_out(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(2).await;
    let event = fixture.event_id.as_str();
    app.queue_on(event, 6_000).await;
    let ann = admitted(&app, event, "ann").await;
    for i in 0..4 {
        join(&app.client, &app.base, event, Some(&format!("p{i}"))).await;
    }
    wait_serving(&pool, event, 5).await;
    // Sold out: nobody more is let in, however many ticks pass.
    let pass = ann["pass"]["token"].as_str().expect("pass");
    let (status, held) = hold(&app.client, &app.base, &ga(&fixture, "ann", 2), Some(pass)).await;
    assert_eq!(status, 201, "{held}");
    for i in 0..3 {
        join(&app.client, &app.base, event, Some(&format!("late{i}"))).await;
    }
    let (_, sold_out_at) = serving(&pool, event).await;
    let deadline = Instant::now() + ADMISSION_LIMIT;
    loop {
        let (now_serving, advanced_at) = serving(&pool, event).await;
        assert_eq!(now_serving, 5, "let in while sold out");
        // Ten ticks (100 ms each in the kit) have looked at the queue.
        if advanced_at - sold_out_at >= chrono::TimeDelta::seconds(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the queue stopped ticking");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The hold released: stock again, and the queue moves on.
    let hold_id = held["hold_id"].as_str().expect("id");
    let (status, _) = app
        .post_json(&format!("/v1/holds/{hold_id}/release"), &Value::Null, None)
        .await;
    assert_eq!(status, 200);
    wait_serving(&pool, event, 8).await;
}

/// A join batch finds the keys it was sent before through the primary key, one probe a key,
/// even when the statistics date from before the line grew (a sale's first minute, or a
/// server without autovacuum): otherwise every batch reads the whole line, and joins slow
/// down as the line gets longer (`joins::KNOWN_PLACES_SQL`).
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_join_batch_probes_its_keys_however_long_the_line(pool: PgPool) {
    const BATCH_KEYS: usize = 128;
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let event = fixture.event_id.as_str();
    app.queue_on(event, 1).await;
    sqlx::raw_sql("analyze queue_joins")
        .execute(&pool)
        .await
        .expect("statistics of the empty line");
    sqlx::query(
        "insert into queue_joins (event_id, idempotency_key, position, joined_at)
         select $1, 'grown-' || g, g, now() from generate_series(1, 20000) g",
    )
    .bind(Uuid::parse_str(event).expect("event id"))
    .execute(&pool)
    .await
    .expect("a long line");
    app.stop().await;
    // A batch's worth of keys: some seen before, some new.
    let keys: Vec<String> = (1..=BATCH_KEYS)
        .map(|i| format!("'{}-{i}'", if i % 2 == 0 { "grown" } else { "new" }))
        .collect();
    let plan = executed_plan(
        &pool,
        tessera_ledger::queue::joins::KNOWN_PLACES_SQL,
        "uuid, text[]",
        &format!("'{event}', array[{}]", keys.join(", ")),
    )
    .await;
    assert!(probes_by(&plan, "idempotency_key"), "{plan}");
}

/// A join batch that fails for a reason other than the database being away is a bug: a
/// 500 (and an error in the log), not a 503 asking every client to retry for ever.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_join_batch_failing_on_a_bug_is_a_500_not_an_outage(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let fixture = app.event_with_zone(10).await;
    let event = fixture.event_id.as_str();
    app.queue_on(event, 1).await;
    let (status, _) = join(&app.client, &app.base, event, Some("before")).await;
    assert_eq!(status, 201);
    // The batch's key lookup now names a column that is not there (SQLSTATE 42703).
    sqlx::query("alter table queue_joins rename column idempotency_key to renamed_key")
        .execute(&pool)
        .await
        .expect("rename");
    let (status, problem) = join(&app.client, &app.base, event, Some("after")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (500, Some("internal")),
        "{problem}"
    );
    app.stop().await;
}
