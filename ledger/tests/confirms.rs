//! Confirms are batched by their zone's writer, as holds are: confirms that wait for a
//! busy zone commit in one transaction, and each is answered exactly as it would have
//! been alone (the naive strategy commits each alone: the same script, the same answers).
//!
//! A test binary of its own: it waits on `hold_zone_queued`, a process-wide gauge that
//! other tests' zone writers would move; its own tests that queue take turns
//! ([`QUEUE_GAUGE`]).

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::{
    assert_conservation, lock_waiters, lock_zone, spawn_app_with, zone_counters, Fixture, TestApp,
};
use tessera_testkit::metrics::sum_metric;
use tessera_testkit::wait_until;

/// Held by each test here from its start (its setup queues holds too).
static QUEUE_GAUGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(20);
const TICKETS_PER_HOLD: i64 = 2;

/// One confirm of the script: which hold, with which key and payment reference.
#[derive(Clone)]
struct Confirm {
    hold: usize,
    key: &'static str,
    payment_ref: &'static str,
}

const fn confirm(hold: usize, key: &'static str, payment_ref: &'static str) -> Confirm {
    Confirm {
        hold,
        key,
        payment_ref,
    }
}

/// The confirms sent while the zone is busy, each answer depending on the others: hold 0
/// is confirmed before (its key replays, another key is refused), hold 4 is released.
const WAITING: [Confirm; 9] = [
    confirm(1, "k1", "pay"),
    confirm(1, "k1", "pay"), // the same request again: the first's result
    confirm(2, "k2", "pay"),
    confirm(2, "k2b", "pay"), // another key for a hold just confirmed: refused
    confirm(3, "k3", "pay"),
    confirm(3, "k3", "other"), // the same key with another body: conflict
    confirm(0, "k0", "pay"),   // the key that confirmed hold 0: its stored result
    confirm(0, "k0b", "pay"),  // another key for hold 0: refused
    confirm(4, "k4", "pay"),   // a released hold: refused
];

/// What a confirm was answered: status, error code (none for 200), tickets (for 200).
type Answer = (u16, Option<String>, Value);

async fn send(app: &TestApp, hold_id: &str, c: &Confirm) -> Answer {
    let (status, body) = app
        .post_json(
            &format!("/v1/holds/{hold_id}/confirm"),
            &json!({"payment_ref": c.payment_ref}),
            Some(c.key),
        )
        .await;
    let code = body["code"].as_str().map(str::to_owned);
    (status, code, body["tickets"].clone())
}

async fn hold_ids(app: &TestApp, fixture: &Fixture) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, hold) = app
            .hold(
                fixture,
                TICKETS_PER_HOLD,
                &format!("c{i}"),
                &format!("h{i}"),
            )
            .await;
        assert_eq!(status, 201, "{hold}");
        ids.push(hold["hold_id"].as_str().expect("hold_id").to_owned());
    }
    let (status, released) = app
        .post_json(&format!("/v1/holds/{}/release", ids[4]), &json!({}), None)
        .await;
    assert_eq!(status, 200, "{released}");
    ids
}

async fn queued(app: &TestApp) -> f64 {
    sum_metric(&app.metrics_text().await, "hold_zone_queued", &[])
}

/// Runs the script against a ledger with `strategy`. Batched: hold 0's confirm is sent
/// while the zone is locked (its commit waits), then the waiting confirms one by one, each
/// queued before the next is sent, and the zone is let go. Naive: the same confirms in the
/// same order, each after the last was answered — one transaction per confirm, the answers
/// the batch must give. Returns the waiting confirms' answers and hold 0's first answer.
async fn run_script(pool: PgPool, strategy: &str) -> (Vec<Answer>, Answer, Fixture) {
    let _turn = QUEUE_GAUGE.lock().await;
    let app =
        Arc::new(spawn_app_with(pool.clone(), &[("HOLD_STRATEGY", strategy.to_owned())]).await);
    let fixture = app.event_with_zone(20).await;
    let ids = Arc::new(hold_ids(&app, &fixture).await);
    if strategy == "naive" {
        let first = send(&app, &ids[0], &confirm(0, "k0", "pay")).await;
        let mut answers = Vec::new();
        for c in &WAITING {
            answers.push(send(&app, &ids[c.hold], c).await);
        }
        return (answers, first, fixture);
    }
    let lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    let spawn = |c: Confirm| {
        let (app, ids) = (app.clone(), ids.clone());
        tokio::spawn(async move { send(&app, &ids[c.hold], &c).await })
    };
    let first = spawn(confirm(0, "k0", "pay"));
    wait_until("the first confirm waits for the zone", WAIT, || async {
        lock_waiters(&pool).await >= 1
    })
    .await;
    let mut waiting = Vec::new();
    for (i, c) in WAITING.iter().enumerate() {
        waiting.push(spawn(c.clone()));
        wait_until("the confirm is queued", WAIT, || async {
            queued(&app).await >= (i + 1) as f64
        })
        .await;
    }
    lock.commit().await.expect("let the zone go");
    let first = first.await.expect("task");
    let mut answers = Vec::new();
    for task in waiting {
        answers.push(task.await.expect("task"));
    }
    (answers, first, fixture)
}

fn codes(answers: &[Answer]) -> Vec<(u16, Option<&str>)> {
    answers.iter().map(|(s, c, _)| (*s, c.as_deref())).collect()
}

/// The answers the script must get, in its order.
const EXPECTED: [(u16, Option<&str>); 9] = [
    (200, None),
    (200, None),
    (200, None),
    (409, Some("hold_not_active")),
    (200, None),
    (422, Some("idempotency_conflict")),
    (200, None),
    (409, Some("hold_not_active")),
    (409, Some("hold_not_active")),
];

/// Tickets issued in `zone_id` by each transaction that issued some, fewest first (one
/// transaction's rows share its `xmin`).
async fn tickets_per_transaction(pool: &PgPool, zone_id: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "select count(*) from tickets where zone_id = $1::uuid group by xmin::text order by 1",
    )
    .bind(zone_id)
    .fetch_all(pool)
    .await
    .expect("tickets by transaction")
}

/// The script's answers, one transaction per confirm or not: each code as [`EXPECTED`],
/// a repeated request and a stored result answered with the first's tickets, and every
/// confirmed hold's tickets issued.
fn assert_answered_as_alone(answers: &[Answer], first: &Answer) {
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(codes(answers), EXPECTED);
    assert_eq!(
        answers[0].2, answers[1].2,
        "a repeat gets the first's tickets"
    );
    assert_eq!(
        answers[6].2, first.2,
        "a stored result replays hold 0's tickets"
    );
    for confirmed in [&answers[0], &answers[2], &answers[4], first] {
        let tickets = &confirmed.2;
        assert_eq!(
            tickets.as_array().map(Vec::len),
            Some(TICKETS_PER_HOLD as usize),
            "{tickets}"
        );
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn confirms_waiting_for_a_zone_commit_together_each_answered_as_alone(pool: PgPool) {
    let (answers, first, fixture) = run_script(pool.clone(), "batched").await;
    assert_answered_as_alone(&answers, &first);
    // Holds 1, 2 and 3 were confirmed by one transaction (their tickets share its xmin),
    // after hold 0's own.
    assert_eq!(
        tickets_per_transaction(&pool, &fixture.zone_ids[0]).await,
        [2, 6],
        "hold 0 alone, then holds 1–3 at once"
    );
    let (available, held, sold, total) = zone_counters(&pool, &fixture.zone_ids[0]).await;
    assert_eq!((available, held, sold, total), (12, 0, 8, 20));
    assert_conservation(&pool).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn one_confirm_per_transaction_answers_the_script_the_same(pool: PgPool) {
    let (answers, first, fixture) = run_script(pool.clone(), "naive").await;
    assert_answered_as_alone(&answers, &first);
    assert_eq!(
        tickets_per_transaction(&pool, &fixture.zone_ids[0]).await,
        [2, 2, 2, 2],
        "one transaction per confirm"
    );
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (12, 0, 8, 20)
    );
    assert_conservation(&pool).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_batch_of_seat_confirms_sells_each_seat_to_its_own_ticket(pool: PgPool) {
    let _turn = QUEUE_GAUGE.lock().await;
    let app = Arc::new(spawn_app_with(pool.clone(), &[]).await);
    let fixture = app.event_with_ga_and_seats().await;
    let zone_id = fixture.zone_ids[1].clone();
    let mut holds = Vec::new();
    for (customer, seats) in [("ann", vec![0, 1]), ("bob", vec![2]), ("cy", vec![4, 5])] {
        let body = json!({"show_id": fixture.show_id, "zone_id": zone_id, "seats": seats,
                          "customer_id": customer});
        let (status, hold) = app.post_json("/v1/holds", &body, Some(customer)).await;
        assert_eq!(status, 201, "{hold}");
        holds.push((hold["hold_id"].as_str().expect("hold_id").to_owned(), seats));
    }
    let lock = lock_zone(&pool, &zone_id).await;
    let mut confirms = Vec::new();
    for (i, (hold_id, _)) in holds.iter().enumerate() {
        let (sender, hold_id) = (app.clone(), hold_id.clone());
        let key: &'static str = ["ka", "kb", "kc"][i];
        confirms.push(tokio::spawn(async move {
            send(&sender, &hold_id, &confirm(i, key, "pay")).await
        }));
        // Ann's confirm takes the writer and waits for the zone; the others queue.
        if i == 0 {
            wait_until("ann's confirm waits for the zone", WAIT, || async {
                lock_waiters(&pool).await >= 1
            })
            .await;
        } else {
            wait_until("the confirm is queued", WAIT, || async {
                queued(&app).await >= i as f64
            })
            .await;
        }
    }
    lock.commit().await.expect("let the zone go");
    for (task, (_, seats)) in confirms.into_iter().zip(&holds) {
        let (status, code, tickets) = task.await.expect("task");
        assert_eq!((status, code), (200, None));
        let ticket_seats: Vec<i64> = tickets
            .as_array()
            .expect("tickets")
            .iter()
            .map(|t| t["seat_index"].as_i64().expect("a seat"))
            .collect();
        let seats: Vec<i64> = seats.iter().map(|&s| i64::from(s)).collect();
        assert_eq!(ticket_seats, seats);
    }
    // Each sold seat belongs to a ticket of the hold that held it.
    let sold: Vec<(i32, String)> = sqlx::query_as(
        "select s.seat_index, t.hold_id::text from seats s join tickets t on t.id = s.ticket_id
         where s.zone_id = $1::uuid and s.status = 'sold' and s.hold_id = t.hold_id
         order by s.seat_index",
    )
    .bind(&zone_id)
    .fetch_all(&pool)
    .await
    .expect("sold seats");
    let expected: Vec<(i32, String)> = holds
        .iter()
        .flat_map(|(hold_id, seats)| seats.iter().map(|&s| (s, hold_id.clone())))
        .collect();
    assert_eq!(sold, expected);
    assert_eq!(
        tickets_per_transaction(&pool, &zone_id).await,
        [2, 3],
        "ann alone, then bob's and cy's at once"
    );
    assert_eq!(zone_counters(&pool, &zone_id).await, (1, 0, 5, 6));
    assert_conservation(&pool).await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_confirm_past_a_full_zone_queue_commits_alone_where_a_hold_is_shed(pool: PgPool) {
    let _turn = QUEUE_GAUGE.lock().await;
    let app = Arc::new(
        spawn_app_with(
            pool.clone(),
            &[("HOLD_ZONE_QUEUE_DEPTH_MAX", "1".to_owned())],
        )
        .await,
    );
    let fixture = Arc::new(app.event_with_zone(20).await);
    let (status, paid) = app.hold(&fixture, 1, "payer", "paid").await;
    assert_eq!(status, 201, "{paid}");
    let paid = paid["hold_id"].as_str().expect("hold_id").to_owned();
    let lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    let spawn_hold = |key: &'static str| {
        let (app, fixture) = (app.clone(), fixture.clone());
        tokio::spawn(async move { app.hold(&fixture, 1, key, key).await.0 })
    };
    // One hold takes the writer and waits for the zone; one fills the queue.
    let taken = spawn_hold("taken");
    wait_until("the writer waits for the zone", WAIT, || async {
        lock_waiters(&pool).await >= 1
    })
    .await;
    let queued_hold = spawn_hold("queued");
    wait_until("a hold fills the queue", WAIT, || async {
        queued(&app).await >= 1.0
    })
    .await;
    let (status, shed) = app.hold(&fixture, 1, "shed", "shed").await;
    assert_eq!((status, shed["code"].as_str()), (503, Some("overloaded")));
    let confirm = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, &paid, &confirm(0, "pay-key", "pay")).await })
    };
    wait_until(
        "the confirm waits for the zone on its own",
        WAIT,
        || async { lock_waiters(&pool).await >= 2 },
    )
    .await;
    lock.commit().await.expect("let the zone go");
    let (status, code, tickets) = confirm.await.expect("task");
    assert_eq!((status, code), (200, None), "a confirm is not shed");
    assert_eq!(tickets.as_array().map(Vec::len), Some(1));
    assert_eq!(taken.await.expect("task"), 201);
    assert_eq!(queued_hold.await.expect("task"), 201);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (17, 2, 1, 20)
    );
}
