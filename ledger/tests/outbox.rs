//! The outbox relay against real Redis: the documented message reaches a subscriber, and
//! while Redis refuses the relay, changes wait in the outbox and arrive in order once it
//! is back; between changes the leading relay (only it) publishes heartbeats carrying the
//! last published `seq`.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use tessera_testkit::ledger::{event_body, spawn_app_with, TestApp};
use tessera_testkit::services::own_redis::OwnRedis;
use tessera_testkit::wait_until;

/// Subscribes to `channel` and returns a stream of parsed messages.
async fn subscribe(redis_url: &str, channel: &str) -> impl futures::Stream<Item = Value> {
    let client = redis::Client::open(redis_url).expect("redis url");
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .expect("redis pubsub connection");
    pubsub.subscribe(channel).await.expect("subscribe");
    pubsub.into_on_message().map(|msg| {
        let payload: String = msg.get_payload().expect("string payload");
        serde_json::from_str(&payload).expect("json message")
    })
}

async fn next_within(
    stream: &mut (impl futures::Stream<Item = Value> + Unpin),
    limit: Duration,
) -> Value {
    tokio::time::timeout(limit, stream.next())
        .await
        .expect("message in time")
        .expect("stream open")
}

/// The next message that is not a heartbeat.
async fn next_change(
    stream: &mut (impl futures::Stream<Item = Value> + Unpin),
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let message = next_within(stream, deadline.saturating_duration_since(Instant::now())).await;
        if message["kind"] != "heartbeat" {
            return message;
        }
    }
}

/// The next availability message (catalog messages from setup are skipped).
async fn next_availability(
    stream: &mut (impl futures::Stream<Item = Value> + Unpin),
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let message = next_within(stream, deadline.saturating_duration_since(Instant::now())).await;
        if message["kind"] == "availability" {
            return message;
        }
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_hold_publishes_the_documented_message(pool: PgPool) {
    let app = spawn_app_with(pool, &[]).await;
    let mut messages = Box::pin(subscribe(&app.redis_url, &app.channel).await);
    let fixture = app.event_with_zone(20).await;
    let catalog = next_change(&mut messages, Duration::from_secs(5)).await;
    assert_eq!(catalog["kind"], "catalog");
    assert_eq!(catalog["event_id"], fixture.event_id.as_str());
    let first_seq = catalog["seq"].as_i64().expect("seq");

    let (status, _) = app.hold(&fixture, 3, "alice", "k1").await;
    assert_eq!(status, 201);
    let message = next_availability(&mut messages, Duration::from_secs(5)).await;
    let expected = serde_json::json!({
        "kind": "availability", "show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
        "available": 17, "held": 3, "sold": 0, "version": message["version"], "seq": message["seq"],
    });
    assert_eq!(message, expected);
    assert!(message["version"].as_i64().expect("version") > 1);
    assert!(
        message["seq"].as_i64().expect("seq") > first_seq,
        "seq increases"
    );
    app.stop().await;
}

async fn backlog(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// Unpublished rows the relay has already numbered: it numbers, then publishes, in one round.
async fn numbered_unpublished(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where published_at is null and seq is not null")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// Commands Redis refused for want of a password (`INFO errorstats`): the relay's attempts
/// while Redis is locked.
async fn refused_for_auth(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query_async(admin)
        .await
        .expect("INFO errorstats");
    info.lines()
        .find_map(|line| line.strip_prefix("errorstat_NOAUTH:count="))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn changes_wait_for_redis_and_arrive_in_order(pool: PgPool) {
    let mut redis = OwnRedis::start().await;
    let app = spawn_app_with(pool, &[("REDIS_URL", redis.url())]).await;
    let fixture = app.event_with_zone(100).await;
    // Let the setup's catalog message drain while Redis is up.
    wait_until(
        "the initial outbox drained",
        Duration::from_secs(5),
        || async { backlog(&app).await == 0 },
    )
    .await;

    // Redis goes down and comes back refusing the relay (it has no password), so the
    // relay's attempts show up in Redis's error counts.
    redis.restart_locked().await;
    let mut admin = redis::Client::open(redis.locked_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    for i in 0..5 {
        let (status, body) = app
            .hold(&fixture, 1, &format!("c{i}"), &format!("down-{i}"))
            .await;
        assert_eq!(status, 201, "holds keep working without Redis: {body}");
    }
    // The relay had its chance: it numbered the five rows, and an attempt after that
    // (which includes them) was refused.
    wait_until(
        "the relay numbered the rows",
        Duration::from_secs(10),
        || async { numbered_unpublished(&app).await == 5 },
    )
    .await;
    let refused = refused_for_auth(&mut admin).await;
    wait_until(
        "the relay tried again and was refused",
        Duration::from_secs(10),
        || {
            // Multiplexed: a clone shares the one connection.
            let mut admin = admin.clone();
            async move { refused_for_auth(&mut admin).await > refused }
        },
    )
    .await;
    assert_eq!(backlog(&app).await, 5, "the changes wait in the outbox");

    let mut messages = Box::pin(subscribe(&redis.locked_url(), &app.channel).await);
    redis.unlock().await;
    // The relay retries with backoff (at most 5 s); the subscriber is already listening.
    let mut received = Vec::new();
    while received.len() < 5 {
        received.push(next_availability(&mut messages, Duration::from_secs(15)).await);
    }
    let held: Vec<i64> = received
        .iter()
        .map(|m| m["held"].as_i64().expect("held"))
        .collect();
    assert_eq!(held, [1, 2, 3, 4, 5], "in commit order");
    let versions: Vec<i64> = received
        .iter()
        .map(|m| m["version"].as_i64().expect("version"))
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions increase: {versions:?}"
    );
    let seqs: Vec<i64> = received
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq is gap-free: {seqs:?}"
    );
    // Rows are marked in the transaction that commits after the PUBLISH.
    wait_until(
        "published rows are marked",
        Duration::from_secs(5),
        || async { backlog(&app).await == 0 },
    )
    .await;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn published_rows_are_pruned_after_retention(pool: PgPool) {
    let app = spawn_app_with(
        pool.clone(),
        &[("OUTBOX_RETENTION_SECONDS", "0".to_owned())],
    )
    .await;
    let fixture = app.event_with_zone(5).await;
    assert_eq!(app.hold(&fixture, 1, "a", "k").await.0, 201);
    // Published, marked, then deleted by the leader's housekeeping (every second).
    wait_until(
        "the outbox rows were pruned",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, i64>("select count(*) from outbox")
                .fetch_one(&pool)
                .await
                .expect("count")
                == 0
        },
    )
    .await;
    let last_seq: i64 = sqlx::query_scalar("select last_seq from outbox_relay")
        .fetch_one(&pool)
        .await
        .expect("seq");
    assert!(
        last_seq >= 3,
        "numbering continues past pruned rows ({last_seq})"
    );
    app.stop().await;
}

/// Reads `messages` until `count` heartbeats were seen, checking that each carries the
/// `seq` of the last change before it (`last_seq` before the first); returns the last
/// change's `seq` and how long that took.
async fn heartbeats(
    messages: &mut (impl futures::Stream<Item = Value> + Unpin),
    mut last_seq: i64,
    count: usize,
    limit: Duration,
) -> (i64, Duration) {
    let started = Instant::now();
    let deadline = started + limit;
    let mut seen = 0;
    while seen < count {
        let message =
            next_within(messages, deadline.saturating_duration_since(Instant::now())).await;
        if message["kind"] != "heartbeat" {
            last_seq = message["seq"].as_i64().expect("seq");
            continue;
        }
        assert_eq!(
            message,
            serde_json::json!({"kind": "heartbeat", "seq": last_seq}),
            "the documented heartbeat, carrying the last published seq"
        );
        seen += 1;
    }
    (last_seq, started.elapsed())
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn an_idle_relay_sends_heartbeats_with_the_last_published_seq(pool: PgPool) {
    const INTERVAL: Duration = Duration::from_millis(200);
    const COUNT: usize = 5;
    let interval = || {
        (
            "OUTBOX_HEARTBEAT_INTERVAL_MS",
            INTERVAL.as_millis().to_string(),
        )
    };
    let app = spawn_app_with(pool.clone(), &[interval()]).await;
    // A second ledger on the same database and channel: whichever relay leads a round,
    // every heartbeat on the channel carries the last published seq.
    let other = spawn_app_with(pool, &[interval(), ("OUTBOX_CHANNEL", app.channel.clone())]).await;
    let mut messages = Box::pin(subscribe(&app.redis_url, &app.channel).await);
    let fixture = app.event_with_zone(10).await;
    // The setup's catalog messages, each heartbeat between them carrying the number
    // before it, until the last one's.
    wait_until(
        "the setup's messages were published",
        Duration::from_secs(5),
        || async { backlog(&app).await == 0 },
    )
    .await;
    let published: i64 = sqlx::query_scalar("select last_seq from outbox_relay")
        .fetch_one(&app.pool)
        .await
        .expect("last seq");
    assert!(published > 0, "the setup published its catalog messages");
    let mut catalog_seq = 0;
    while catalog_seq < published {
        (catalog_seq, _) = heartbeats(&mut messages, catalog_seq, 1, Duration::from_secs(5)).await;
    }

    // (No rate check here: measured at the subscriber, heartbeats buffered while the test
    // was busy arrive back to back, so a rate bound would test the machine's load.)
    let (last_seq, _) = heartbeats(&mut messages, catalog_seq, COUNT, INTERVAL * 25).await;
    assert_eq!(last_seq, catalog_seq, "nothing else was published");

    // After a change, heartbeats carry its number.
    assert_eq!(app.hold(&fixture, 1, "alice", "hb-1").await.0, 201);
    let (last_seq, _) = heartbeats(&mut messages, catalog_seq, 1, INTERVAL * 25).await;
    assert!(last_seq > catalog_seq, "the hold's message came first");
    other.stop().await;
    app.stop().await;
}

/// The next message of `kind`.
async fn next_of_kind(
    stream: &mut (impl futures::Stream<Item = Value> + Unpin),
    kind: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let message = next_within(stream, deadline.saturating_duration_since(Instant::now())).await;
        if message["kind"] == kind {
            return message;
        }
    }
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn seat_changes_publish_the_documented_seats_messages(pool: PgPool) {
    let app = spawn_app_with(pool, &[]).await;
    let mut messages = Box::pin(subscribe(&app.redis_url, &app.channel).await);
    let zone = serde_json::json!({"name": "Stalls", "price_minor": 6000, "currency": "EUR",
        "seating": "assigned", "seats": {"rows": [{"row": "A", "seats": 6}]}});
    let fixture = app
        .publish_event(event_body(
            &format!("e-{}", uuid::Uuid::new_v4().simple()),
            vec![zone],
        ))
        .await;
    let body = serde_json::json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                                  "seats": [2, 3], "customer_id": "ann"});
    let (status, hold) = app.post_json("/v1/holds", &body, Some("seats-1")).await;
    assert_eq!(status, 201, "{hold}");
    let held = next_of_kind(&mut messages, "seats", Duration::from_secs(5)).await;
    let expected = serde_json::json!({
        "kind": "seats", "show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
        "available": 4, "held": 2, "sold": 0, "version": held["version"], "seq": held["seq"],
        "changes": [[2, "held"], [3, "held"]],
    });
    assert_eq!(held, expected);
    // Release: the same seats, available again, at a newer version.
    let hold_id = hold["hold_id"].as_str().expect("id");
    let (status, _) = app
        .post_json(
            &format!("/v1/holds/{hold_id}/release"),
            &serde_json::json!({}),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let freed = next_of_kind(&mut messages, "seats", Duration::from_secs(5)).await;
    assert_eq!(
        freed["changes"],
        serde_json::json!([[2, "available"], [3, "available"]])
    );
    assert_eq!(freed["available"], 6);
    assert!(freed["version"].as_i64() > held["version"].as_i64());
    app.stop().await;
}
