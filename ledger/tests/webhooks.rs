//! Webhooks end to end (invariant 11) against a real receiver on 127.0.0.1: every event type
//! arrives signed and in order; a receiver that refuses, fails and hangs loses nothing and
//! is retried ever less often; a delivery past its bounded age is dead until redelivered;
//! two ledger processes deliver each event once; a backlog's acknowledgements are recorded
//! in batches (a slow receiver's after a delay) and a failure keeps those before it, one
//! longer than a lease's share goes on without waiting for the next poll, and a stopping
//! ledger records what was acknowledged and gives its lease back; tenants see only their own endpoints;
//! loopback is refused unless allowed, also at send time.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::webhooks::{self, SignatureError};
use tessera_ledger::webhooks::dispatcher::DELIVERIES_PER_LEASE_MAX;
use tessera_testkit::ledger::{event_body, spawn_app_with, zone, TestApp};
use tessera_testkit::wait_until;
use tessera_testkit::webhook_receiver::{Accepted, Mode, WebhookReceiver};
use uuid::Uuid;

/// How long a delivery may take to arrive when the receiver is up.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// A ledger that may deliver to loopback, quickly, with short backoffs.
async fn ledger(pool: PgPool, extra: &[(&str, &str)]) -> TestApp {
    let mut overrides: Vec<(&str, String)> = vec![
        ("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true".into()),
        ("WEBHOOK_POLL_INTERVAL_MS", "20".into()),
        ("WEBHOOK_TIMEOUT_MS", "500".into()),
        ("WEBHOOK_BACKOFF_BASE_MS", "200".into()),
        ("WEBHOOK_BACKOFF_MAX_MS", "1600".into()),
    ];
    overrides.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    spawn_app_with(pool, &overrides).await
}

/// Registers `receiver` for `events` (all when empty); the webhook's id.
async fn register(app: &TestApp, receiver: &WebhookReceiver, events: &[&str]) -> String {
    let events: Vec<&str> = if events.is_empty() {
        webhooks::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect()
    } else {
        events.to_vec()
    };
    let response = app
        .admin_post(
            "/admin/v1/webhooks",
            &json!({"url": receiver.url(), "events": events}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    receiver.set_secret(created["secret"].as_str().expect("secret"));
    created["webhook_id"].as_str().expect("id").to_owned()
}

async fn accepted_types(receiver: &WebhookReceiver) -> Vec<String> {
    receiver
        .accepted()
        .iter()
        .map(|a| a.event.event_type.as_str().to_owned())
        .collect()
}

async fn wait_for_types(receiver: &WebhookReceiver, count: usize) {
    wait_until("deliveries", DELIVERY_DEADLINE, || async {
        receiver.accepted().len() >= count
    })
    .await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn every_event_type_arrives_signed_and_in_order(pool: PgPool) {
    let app = ledger(
        pool.clone(),
        &[("HOLD_TTL_SECONDS", "1"), ("SWEEP_INTERVAL_MS", "50")],
    )
    .await;
    let receiver = WebhookReceiver::start().await;
    register(&app, &receiver, &[]).await;
    let fixture = app.event_with_zone(10).await;
    assert_eq!(app.hold(&fixture, 1, "lapses", "k-lapse").await.0, 201);
    wait_until("the hold expires", DELIVERY_DEADLINE, || async {
        sqlx::query_scalar::<_, i64>("select count(*) from holds where status = 'expired'")
            .fetch_one(&pool)
            .await
            .expect("count")
            == 1
    })
    .await;
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 2, "customer_id": "ann"});
    let (hold_id, confirm) = app.buy(&body).await;
    let gate = app.gate_token(&fixture.event_id, "A").await;
    let code = confirm["tickets"][0]["code"].as_str().expect("code");
    assert_eq!(app.scan(&gate, code, "A").await.0, 201);
    app.cancel_and_refund(&hold_id, "re_9").await;
    let cancel = app
        .admin_post(
            &format!("/admin/v1/events/{}/cancel", fixture.event_id),
            &Value::Null,
        )
        .await;
    assert_eq!(cancel.status(), 200);

    wait_for_types(&receiver, 8).await;
    assert_eq!(
        accepted_types(&receiver).await,
        [
            "event.published",
            "hold.expired",
            "order.confirmed",
            "ticket.checked_in",
            "order.cancelled",
            "refund.due",
            "refund.completed",
            "event.cancelled"
        ]
    );
    let accepted = receiver.accepted();
    assert!(
        accepted.iter().all(|a| a.verified),
        "every signature verifies"
    );
    let confirmed = &accepted[2].event.data;
    assert_eq!(
        (
            confirmed["hold_id"].as_str(),
            confirmed["total_minor"].as_i64()
        ),
        (Some(hold_id.as_str()), Some(9000))
    );
    assert_eq!(confirmed["ticket_ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(accepted[6].event.data["reference"], "re_9");
    // A receiver refuses a tampered body and an old (replayed) signature.
    let first = &accepted[0];
    let mut tampered = first.body.clone();
    tampered[10] ^= 1;
    let secret = sqlx::query_scalar::<_, String>("select secret from webhook_endpoints")
        .fetch_one(&pool)
        .await
        .expect("secret");
    let now = chrono::Utc::now();
    assert_eq!(
        webhooks::verify(&secret, &first.signature, &first.body, now, 300),
        Ok(())
    );
    assert_eq!(
        webhooks::verify(&secret, &first.signature, &tampered, now, 300),
        Err(SignatureError::Mismatch)
    );
    let later = now + chrono::Duration::seconds(301);
    assert_eq!(
        webhooks::verify(&secret, &first.signature, &first.body, later, 300),
        Err(SignatureError::Stale)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_receiver_down_for_ten_seconds_loses_nothing_and_is_retried_ever_less_often(
    pool: PgPool,
) {
    let app = ledger(pool, &[]).await;
    let mut receiver = WebhookReceiver::start().await;
    register(&app, &receiver, &["event.published", "order.confirmed"]).await;
    receiver.refuse();
    let fixture = app.event_with_zone(10).await; // event.published
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": "ann"});
    for _ in 0..3 {
        app.buy(&body).await; // order.confirmed ×3
    }
    // Refused for ~4 s, then 500 for ~3 s, then hanging past the timeout for ~3 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    receiver.resume().await;
    receiver.set_mode(Mode::Fail);
    tokio::time::sleep(Duration::from_secs(3)).await;
    receiver.set_mode(Mode::Hang(Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    receiver.set_mode(Mode::Accept);
    wait_for_types(&receiver, 4).await;
    let accepted = receiver.accepted();
    let types: Vec<&str> = accepted
        .iter()
        .map(|a| a.event.event_type.as_str())
        .collect();
    assert_eq!(
        types[..4],
        [
            "event.published",
            "order.confirmed",
            "order.confirmed",
            "order.confirmed"
        ]
    );
    let mut ids: Vec<Uuid> = accepted.iter().map(|a| a.event.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each event accepted once, none lost");
    // Only the head was tried while the receiver was down, and ever less often: two
    // attempts apart, the wait at least doubles (jitter keeps each within half of it).
    let attempts = receiver.attempts();
    let head = accepted[0].event.id;
    assert!(attempts
        .iter()
        .filter(|a| a.event_id.is_some())
        .all(|a| a.event_id == Some(head) || a.mode == Mode::Accept));
    let times: Vec<_> = attempts
        .iter()
        .filter(|a| a.event_id == Some(head))
        .map(|a| a.at)
        .collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(90)),
        "{gaps:?}"
    );
    assert!(
        times.len() <= 12,
        "{} attempts in ~10 s: not backing off",
        times.len()
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_delivery_past_its_age_is_dead_and_redelivered_on_request(pool: PgPool) {
    let app = ledger(pool, &[("WEBHOOK_MAX_AGE_SECONDS", "2")]).await;
    let receiver = WebhookReceiver::start().await;
    let webhook = register(&app, &receiver, &["event.published"]).await;
    receiver.set_mode(Mode::Fail);
    app.event_with_zone(10).await;
    let deliveries = format!("/admin/v1/webhooks/{webhook}/deliveries");
    wait_until("the delivery is dead", DELIVERY_DEADLINE, || async {
        let (_, dead) = app.admin_get(&format!("{deliveries}?status=dead")).await;
        dead.as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let (_, dead) = app.admin_get(&format!("{deliveries}?status=dead")).await;
    let dead = &dead[0];
    assert!(dead["attempts"].as_i64().expect("attempts") >= 2);
    assert_eq!(dead["last_status"], 500);
    // The queue moves on: a later event is delivered although the dead one is not.
    receiver.set_mode(Mode::Accept);
    app.event_with_zone(5).await;
    wait_for_types(&receiver, 1).await;
    assert_ne!(
        receiver.accepted()[0].event.id.to_string(),
        dead["event_id"].as_str().expect("id")
    );
    let redeliver = app
        .admin_post(
            &format!(
                "{deliveries}/{}/redeliver",
                dead["delivery_id"].as_str().expect("id")
            ),
            &Value::Null,
        )
        .await;
    assert_eq!(redeliver.status(), 200);
    wait_for_types(&receiver, 2).await;
    assert_eq!(
        receiver.accepted()[1].event.id.to_string(),
        dead["event_id"].as_str().expect("id")
    );
    let (_, again) = app.admin_get(&format!("{deliveries}?status=dead")).await;
    assert_eq!(again.as_array().map(Vec::len), Some(0));
    assert_eq!(
        app.admin_get(&format!("{deliveries}?status=lost")).await.0,
        422
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn two_ledger_processes_deliver_each_event_once_in_order(pool: PgPool) {
    let (a, b) = tokio::join!(ledger(pool.clone(), &[]), ledger(pool.clone(), &[]));
    let receiver = WebhookReceiver::start().await;
    register(&a, &receiver, &["order.confirmed"]).await;
    let fixture = a.event_with_zone(100).await;
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": "ann"});
    let mut confirmed = Vec::new();
    for n in 0..30 {
        let (hold_id, _) = if n % 2 == 0 {
            a.buy(&body).await
        } else {
            b.buy(&body).await
        };
        confirmed.push(hold_id);
    }
    wait_for_types(&receiver, 30).await;
    // Settle a little longer than a round: a duplicate would show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|a| a.event.data["hold_id"].as_str().expect("hold").to_owned())
        .collect();
    assert_eq!(
        delivered, confirmed,
        "each once, in the order they were confirmed"
    );
    assert_eq!(receiver.attempts().len(), 30);
    a.stop().await;
    b.stop().await;
}

/// Orders confirmed while the receiver is down, and how many of them it then accepts.
const BACKLOG: usize = 80;
const ACCEPTED_BEFORE_FAILING: usize = 60;

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_backlog_is_recorded_in_batches_and_a_failure_keeps_what_came_before(pool: PgPool) {
    // Acknowledgements wait for the end of a read, however slow the sends.
    let app = ledger(pool.clone(), &[("WEBHOOK_ACK_RECORD_DELAY_MS", "60000")]).await;
    let mut receiver = WebhookReceiver::start().await;
    register(&app, &receiver, &["order.confirmed"]).await;
    receiver.refuse();
    let fixture = app
        .event_with_zone(i32::try_from(BACKLOG).expect("fits"))
        .await;
    let mut confirmed = Vec::new();
    for n in 0..BACKLOG {
        let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": format!("buyer-{n}")});
        confirmed.push(app.buy(&body).await.0);
    }
    receiver.set_mode(Mode::AcceptFirst(ACCEPTED_BEFORE_FAILING));
    receiver.resume().await;
    wait_until("the delivery after the accepted ones fails", DELIVERY_DEADLINE, || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from webhook_deliveries where status = 'pending' and last_status = 500",
        )
        .fetch_one(&pool)
        .await
        .expect("count")
            == 1
    })
    .await;
    let hold_ids = |accepted: &[Accepted]| -> Vec<String> {
        let hold_id = |a: &Accepted| a.event.data["hold_id"].as_str().expect("hold").to_owned();
        accepted.iter().map(hold_id).collect()
    };
    assert_eq!(
        hold_ids(&receiver.accepted()),
        confirmed[..ACCEPTED_BEFORE_FAILING]
    );
    // (status, attempts, last status, the transaction that wrote the row) in event order.
    let rows: Vec<(String, i32, Option<i16>, String)> = sqlx::query_as(
        "select status, attempts, last_status, xmin::text from webhook_deliveries order by event_seq",
    )
    .fetch_all(&pool)
    .await
    .expect("deliveries");
    let (delivered, rest) = rows.split_at(ACCEPTED_BEFORE_FAILING);
    assert!(delivered
        .iter()
        .all(|(status, _, last, _)| status == "delivered" && *last == Some(200)));
    // The head was tried while the receiver was down; each later one once.
    assert!(delivered[1..]
        .iter()
        .all(|(_, attempts, _, _)| *attempts == 1));
    let transactions: std::collections::BTreeSet<&str> =
        delivered.iter().map(|(.., xmin)| xmin.as_str()).collect();
    assert_eq!(
        transactions.len(),
        1,
        "{ACCEPTED_BEFORE_FAILING} acknowledgements of one read of the queue recorded in {} transactions, not one",
        transactions.len()
    );
    let (failed, untried) = rest.split_first().expect("the failed one");
    assert_eq!((failed.0.as_str(), failed.2), ("pending", Some(500)));
    assert!(untried
        .iter()
        .all(|(status, attempts, ..)| status == "pending" && *attempts == 0));
    // The queue goes on from the failed one; nothing acknowledged is sent again.
    receiver.set_mode(Mode::Accept);
    wait_for_types(&receiver, BACKLOG).await;
    let accepted = receiver.accepted();
    assert_eq!(hold_ids(&accepted), confirmed);
    let attempts = receiver.attempts();
    let times_sent = |event: &Accepted| {
        attempts
            .iter()
            .filter(|a| a.event_id == Some(event.event.id))
            .count()
    };
    let mut sent: Vec<usize> = accepted.iter().map(times_sent).collect();
    assert!(sent[ACCEPTED_BEFORE_FAILING] >= 2, "{sent:?}");
    sent[ACCEPTED_BEFORE_FAILING] = 1;
    assert_eq!(sent, [1; BACKLOG], "each acknowledged event sent once");
    app.stop().await;
}

/// More events than one lease sends, and a poll interval longer than the test may take:
/// the rest must go without waiting for the next poll.
const PAST_ONE_SHARE: usize = DELIVERIES_PER_LEASE_MAX + 100;
const LONG_POLL_MS: &str = "120000";
const BEFORE_THE_NEXT_POLL: Duration = Duration::from_secs(60);

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_backlog_past_a_leases_share_goes_on_without_waiting_for_the_next_poll(pool: PgPool) {
    let long_poll = [("WEBHOOK_POLL_INTERVAL_MS", LONG_POLL_MS)];
    let registrar = ledger(pool.clone(), &long_poll).await;
    let receiver = WebhookReceiver::start().await;
    register(&registrar, &receiver, &["event.published"]).await;
    registrar.stop().await;
    insert_events(&pool, PAST_ONE_SHARE).await;
    // A dispatcher's first round starts with the process; its next poll is far off.
    let app = ledger(pool.clone(), &long_poll).await;
    wait_until("the whole backlog", BEFORE_THE_NEXT_POLL, || async {
        receiver.count_accepted(|_| true) >= PAST_ONE_SHARE
    })
    .await;
    let order: Vec<i64> = receiver
        .accepted()
        .iter()
        .map(|a| a.event.data["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(order, (1..=count_of(PAST_ONE_SHARE)).collect::<Vec<_>>());
    app.stop().await;
}

/// `count` `event.published` events numbered from 1 (`data.n`), for the endpoint's tenant,
/// as the ledger writes them (the dispatcher cannot tell).
async fn insert_events(pool: &PgPool, count: usize) {
    sqlx::query(
        "insert into integration_events (id, tenant_id, type, data)
         select gen_random_uuid(), w.tenant_id, 'event.published', jsonb_build_object('n', n)
         from webhook_endpoints w, generate_series(1, $1) n order by n",
    )
    .bind(count_of(count))
    .execute(pool)
    .await
    .expect("events");
}

fn count_of(count: usize) -> i64 {
    i64::try_from(count).expect("a test's count")
}

async fn delivered(pool: &PgPool) -> usize {
    let count: i64 =
        sqlx::query_scalar("select count(*) from webhook_deliveries where status = 'delivered'")
            .fetch_one(pool)
            .await
            .expect("count");
    usize::try_from(count).expect("a count")
}

/// A slow receiver: each answer (200) takes this long, under the sender's timeout.
const SLOW_ANSWER: Duration = Duration::from_millis(200);
/// Its backlog: sending it takes 10 × 200 ms.
const SLOW_BACKLOG: usize = 10;

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_slow_receivers_acknowledgements_are_recorded_after_the_delay_not_at_the_end(
    pool: PgPool,
) {
    let app = ledger(pool.clone(), &[("WEBHOOK_ACK_RECORD_DELAY_MS", "100")]).await;
    let receiver = WebhookReceiver::start().await;
    register(&app, &receiver, &["event.published"]).await;
    receiver.set_mode(Mode::Hang(SLOW_ANSWER));
    insert_events(&pool, SLOW_BACKLOG).await;
    wait_until(
        "an acknowledgement is recorded",
        DELIVERY_DEADLINE,
        || async { delivered(&pool).await >= 1 },
    )
    .await;
    let sent = receiver.attempts().len();
    assert!(
        sent < SLOW_BACKLOG,
        "the first record came after {sent} of {SLOW_BACKLOG} sends: at the read's end, not after the delay"
    );
    wait_until(
        "every acknowledgement is recorded",
        DELIVERY_DEADLINE,
        || async { delivered(&pool).await == SLOW_BACKLOG },
    )
    .await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_stopping_ledger_sends_nothing_more_and_records_what_was_acknowledged(pool: PgPool) {
    // Far more than the shutdown grace (5 s) takes to send to the slow receiver.
    const BACKLOG: usize = 100;
    let app = ledger(pool.clone(), &[]).await;
    let receiver = WebhookReceiver::start().await;
    register(&app, &receiver, &["event.published"]).await;
    receiver.set_mode(Mode::Hang(SLOW_ANSWER));
    insert_events(&pool, BACKLOG).await;
    wait_until("sending has begun", DELIVERY_DEADLINE, || async {
        receiver.attempts().len() >= 2
    })
    .await;
    app.stop().await;
    let sent = receiver.attempts().len();
    assert!(
        sent < BACKLOG,
        "{sent} sent: the stop did not stop the sends"
    );
    assert_eq!(delivered(&pool).await, sent, "each answered send recorded");
    let leased: i64 =
        sqlx::query_scalar("select count(*) from webhook_endpoints where lease_owner is not null")
            .fetch_one(&pool)
            .await
            .expect("leases");
    assert_eq!(leased, 0, "the lease given back");
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn tenants_see_only_their_own_webhooks_and_events(pool: PgPool) {
    let app = ledger(pool.clone(), &[]).await;
    let receiver = WebhookReceiver::start().await;
    let webhook = register(&app, &receiver, &["event.published"]).await;
    let (_, listed) = app.admin_get("/admin/v1/webhooks").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once only"
    );
    let mut conn = pool.acquire().await.expect("connection");
    let (_, other) = tessera_ledger::auth::create_tenant(&mut conn, "Other")
        .await
        .expect("tenant");
    let as_other = |method: reqwest::Method, path: String| {
        let request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&other);
        async move { request.send().await.expect("request") }
    };
    let listed_by_other: Value = as_other(reqwest::Method::GET, "/admin/v1/webhooks".into())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed_by_other, json!([]));
    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/admin/v1/webhooks/{webhook}/deliveries"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/v1/webhooks/{webhook}"),
        ),
    ] {
        assert_eq!(as_other(method, path).await.status(), 403);
    }
    let unknown = format!("/admin/v1/webhooks/{}/deliveries", Uuid::new_v4());
    assert_eq!(app.admin_get(&unknown).await.0, 404);
    // Another tenant's event is not delivered here.
    let slug = format!("o-{}", Uuid::new_v4().simple());
    let created: Value = app
        .client
        .post(app.url("/admin/v1/events"))
        .bearer_auth(&other)
        .json(&event_body(&slug, vec![zone(3)]))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let publish = format!(
        "/admin/v1/events/{}/publish",
        created["event_id"].as_str().expect("id")
    );
    assert_eq!(as_other(reqwest::Method::POST, publish).await.status(), 200);
    let own = app.event_with_zone(3).await;
    wait_for_types(&receiver, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].event.data["event_id"].as_str(),
        Some(own.event_id.as_str())
    );
    let deleted = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/v1/webhooks/{webhook}"),
            &Value::Null,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn loopback_is_refused_at_registration_and_at_send_time(pool: PgPool) {
    let app = spawn_app_with(
        pool.clone(),
        &[("WEBHOOK_POLL_INTERVAL_MS", "20".to_owned())],
    )
    .await;
    let receiver = WebhookReceiver::start().await;
    for url in [
        receiver.url(),
        receiver.url().replace("127.0.0.1", "localhost"),
        "http://169.254.169.254/latest".into(),
    ] {
        let response = app
            .admin_post(
                "/admin/v1/webhooks",
                &json!({"url": url, "events": ["event.published"]}),
            )
            .await;
        assert_eq!(response.status(), 422, "{url}");
    }
    for bad in ["ftp://example.com/", "https://user:pw@example.com/"] {
        let response = app
            .admin_post(
                "/admin/v1/webhooks",
                &json!({"url": bad, "events": ["event.published"]}),
            )
            .await;
        assert_eq!(response.status(), 422, "{bad}");
    }
    // A name that pointed elsewhere at registration and at loopback now (rebinding): the
    // check at send time refuses it.
    sqlx::query(
        "insert into webhook_endpoints (id, tenant_id, url, event_types, secret)
         values ($1, $2, $3, '{event.published}', 'whsec_x')",
    )
    .bind(Uuid::new_v4())
    .bind(
        sqlx::query_scalar::<_, Uuid>("select id from tenants")
            .fetch_one(&pool)
            .await
            .expect("the test's one tenant"),
    )
    .bind(receiver.url().replace("127.0.0.1", "localhost"))
    .execute(&pool)
    .await
    .expect("endpoint");
    app.event_with_zone(3).await;
    wait_until("the attempt is refused", DELIVERY_DEADLINE, || async {
        sqlx::query_scalar::<_, Option<String>>("select last_error from webhook_deliveries")
            .fetch_optional(&pool)
            .await
            .expect("delivery")
            .flatten()
            .is_some_and(|e| e.contains("not allowed"))
    })
    .await;
    assert!(
        receiver.attempts().is_empty(),
        "nothing reached the receiver"
    );
    app.stop().await;
}
