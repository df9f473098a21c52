//! The ledger's bounds shed load with `503 overloaded` and `Retry-After: 1`: a full zone
//! queue, the in-flight limit and the request timeout. Each test fills its bound
//! deterministically by holding the zone's row lock from the test, so the engine's
//! writer (or a naive commit) cannot finish until the test lets it.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::ledger::{
    holds_per_transaction, lock_waiters, lock_zone, spawn_app_with, zone_counters, Fixture, TestApp,
};
use tessera_testkit::wait_until;

/// Longest wait for a condition the test set up.
const WAIT_MAX: Duration = Duration::from_secs(10);

/// An answer with the headers the shedding rules are about.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Value,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (retry_after, content_type) = (header("retry-after"), header("content-type"));
        Self {
            status: response.status().as_u16(),
            retry_after,
            content_type,
            body: response.json().await.unwrap_or(Value::Null),
        }
    }

    /// 503 `overloaded`, problem+json, `Retry-After: 1`, with `detail` naming the bound.
    fn assert_shed(&self, detail: &str) {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (503, Some("overloaded")),
            "{self:?}"
        );
        assert_eq!(self.retry_after.as_deref(), Some("1"), "{self:?}");
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        let said = self.body["detail"].as_str().unwrap_or_default();
        assert!(
            said.contains(detail),
            "{said:?} does not mention {detail:?}"
        );
    }
}

async fn post_hold(app: &TestApp, fixture: &Fixture, key: &str) -> Answer {
    let body = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                      "quantity": 1, "customer_id": key});
    let response = app
        .client
        .post(app.url("/v1/holds"))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    Answer::from(response).await
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_full_zone_queue_sheds_and_what_queued_commits_together(pool: PgPool) {
    // The writer takes at most 2 per batch and 2 more may wait: with the zone locked, at
    // most 4 of 8 requests can be held back, so at least 4 must be shed at once.
    let app = spawn_app_with(
        pool.clone(),
        &[
            ("HOLD_ZONE_QUEUE_DEPTH_MAX", "2".to_owned()),
            ("HOLD_BATCH_SIZE_MAX", "2".to_owned()),
        ],
    )
    .await;
    let app = Arc::new(app);
    let fixture = Arc::new(app.event_with_zone(10).await);
    let lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..8 {
        let (app, fixture, answers_tx) = (app.clone(), fixture.clone(), answers_tx.clone());
        tokio::spawn(async move {
            let _ = answers_tx.send(post_hold(&app, &fixture, &format!("q{i}")).await);
        });
    }
    let mut early = Vec::new();
    while early.len() < 4 {
        let answer = tokio::time::timeout(WAIT_MAX, answers.recv())
            .await
            .expect("shed in time")
            .expect("answer");
        early.push(answer);
    }
    for answer in &early {
        answer.assert_shed("waiting for this zone");
    }

    // A shed request proves the queue was full: the 2 waiting then go as one batch.
    lock.commit().await.expect("unlock");
    drop(answers_tx);
    let mut late = Vec::new();
    while let Some(answer) = answers.recv().await {
        late.push(answer);
    }
    let created = late.iter().filter(|a| a.status == 201).count();
    assert!(
        late.iter().all(|a| a.status == 201 || a.status == 503),
        "{late:?}"
    );
    let (_, held, _, _) = zone_counters(&pool, &fixture.zone_ids[0]).await;
    assert_eq!(held as usize, created, "every answered hold committed");
    // The queue's two, and the writer's batch if it took one before the others arrived
    // (its own thread may start after the whole burst was queued or shed).
    assert!(
        created >= 2,
        "the queue (and the writer's batch): {created}: {late:?}"
    );
    let batches = holds_per_transaction(&pool, &fixture.zone_ids[0]).await;
    let largest = batches.iter().map(|&(_, holds)| holds).max();
    assert_eq!(
        largest,
        Some(2),
        "the queued holds committed in one transaction: {batches:?}"
    );
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_in_flight_limit_sheds_with_retry_after(pool: PgPool) {
    // Naive commits, so both requests in flight are visible waiting on the zone's lock.
    let app = spawn_app_with(
        pool.clone(),
        &[
            ("REQUESTS_IN_FLIGHT_MAX", "2".to_owned()),
            ("HOLD_STRATEGY", "naive".to_owned()),
        ],
    )
    .await;
    let app = Arc::new(app);
    let fixture = Arc::new(app.event_with_zone(10).await);
    let lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    let in_flight: Vec<_> = (0..2)
        .map(|i| {
            let (app, fixture) = (app.clone(), fixture.clone());
            tokio::spawn(async move { post_hold(&app, &fixture, &format!("f{i}")).await })
        })
        .collect();
    wait_until("both requests wait on the zone", WAIT_MAX, || async {
        lock_waiters(&pool).await == 2
    })
    .await;

    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("request");
    Answer::from(response)
        .await
        .assert_shed("too many requests in flight");

    lock.commit().await.expect("unlock");
    for request in in_flight {
        assert_eq!(request.await.expect("task").status, 201);
    }
    assert_eq!(
        app.get_json("/health").await.0,
        200,
        "the slots are free again"
    );
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_request_past_its_timeout_is_shed_and_its_hold_still_commits(pool: PgPool) {
    // The setup and the retry go through a ledger with the default timeout; the timed
    // request through one that gives up after 100 ms. Both share the database.
    let patient = spawn_app_with(pool.clone(), &[]).await;
    let hasty = spawn_app_with(pool.clone(), &[("REQUEST_TIMEOUT_MS", "100".to_owned())]).await;
    let fixture = patient.event_with_zone(10).await;
    let lock = lock_zone(&pool, &fixture.zone_ids[0]).await;
    post_hold(&hasty, &fixture, "slow")
        .await
        .assert_shed("took too long");

    // The writer still holds the request; once the zone is free it commits, and a retry
    // with the same key gets that hold.
    lock.commit().await.expect("unlock");
    wait_until("the abandoned hold committed", WAIT_MAX, || async {
        zone_counters(&pool, &fixture.zone_ids[0]).await.1 == 1
    })
    .await;
    let retry = patient
        .client
        .post(patient.url("/v1/holds"))
        .header("Idempotency-Key", "slow")
        .json(
            &json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                      "quantity": 1, "customer_id": "slow"}),
        )
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (9, 1, 0, 10)
    );
    hasty.stop().await;
    patient.stop().await;
}
