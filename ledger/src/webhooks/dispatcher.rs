//! Delivering integration events (invariant 11). Every ledger process runs one dispatcher;
//! each round it
//! 1. fans new events out to the endpoints of their tenant that want their type (one
//!    process at a time: a transaction-scoped advisory lock keeps deliveries in event order);
//! 2. leases endpoints whose oldest pending delivery is due (`FOR UPDATE SKIP LOCKED`, a
//!    lease that runs out if the process dies), so no two processes deliver to one endpoint
//!    at once and no event is sent twice concurrently;
//! 3. delivers each leased endpoint's queue in order, stopping at the first failure: a
//!    failing event holds back the later ones of that endpoint only. A failure is retried
//!    after an exponential backoff with jitter until the delivery's `give_up_at`, then it
//!    is `dead` (visible, redeliverable) and the queue moves on.
//!
//! Sends are one at a time (the order is the receiver's to rely on), but their records are
//! not: the deliveries a receiver acknowledged are written together, once per read of the
//! queue or, checked between sends, once the oldest has waited `ack_record_delay`, so a
//! burst costs one commit per batch, not one per event. At least once: a crash between a
//! receiver's 2xx and its record sends that event again (the receiver deduplicates by its
//! id); a process that is stopping sends nothing more and records what it has. The edges'
//! invalidation relay is separate and never waits for any of this.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tessera_domain::webhooks::{self, Delivered, EventType, EVENT_ID_HEADER, SIGNATURE_HEADER};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::egress::{Answer, Egress, SendError};
use crate::config::WebhooksConfig;

/// Events fanned out per statement.
const FAN_OUT_BATCH: i64 = 500;
/// Endpoints leased per round (each delivered concurrently).
const ENDPOINTS_PER_ROUND_MAX: i64 = 64;
/// Deliveries one lease sends before the endpoint goes back to the pool (fairness).
pub const DELIVERIES_PER_LEASE_MAX: usize = 500;
/// Pending deliveries of one endpoint read per query (and at most recorded per commit).
const QUEUE_READ_MAX: i64 = 100;
/// How often delivered rows and fanned-out events past retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Characters of an attempt's error kept on its delivery.
const LAST_ERROR_CHARS_MAX: usize = 500;
/// The fan-out lock's key (any constant other locks do not use).
const FAN_OUT_LOCK: i64 = 0x7465_7373_6877_6b31; // "tesshwk1"

pub struct Dispatcher {
    pub pool: PgPool,
    pub egress: Egress,
    pub config: WebhooksConfig,
}

/// A leased endpoint.
#[derive(sqlx::FromRow)]
struct Endpoint {
    id: Uuid,
    url: String,
    secret: String,
}

/// The head of an endpoint's queue.
#[derive(sqlx::FromRow)]
struct Due {
    delivery_id: Uuid,
    attempts: i32,
    give_up_at: DateTime<Utc>,
    event_id: Uuid,
    event_type: EventType,
    created_at: DateTime<Utc>,
    data: serde_json::Value,
    /// Its next attempt's time has come.
    is_due: bool,
}

/// An attempt that did not end in a 2xx.
struct Failure {
    /// The receiver's status, if it answered.
    status: Option<u16>,
    /// Why, for the delivery's `last_error`.
    error: String,
    /// When it ended (the dispatcher's clock, as acknowledgements are timed).
    at: DateTime<Utc>,
}

/// The receiver's 2xx status, or why the attempt failed.
fn acknowledged_status(outcome: Result<Answer, SendError>) -> Result<u16, Failure> {
    match outcome {
        Ok(answer) if (200..300).contains(&answer.status) => Ok(answer.status),
        Ok(answer) => Err(Failure {
            status: Some(answer.status),
            error: format!("answered {}: {}", answer.status, answer.body.trim()),
            at: Utc::now(),
        }),
        Err(e) => Err(Failure {
            status: None,
            error: e.to_string(),
            at: Utc::now(),
        }),
    }
}

/// An HTTP status as its column stores it.
fn status_column(status: u16) -> i16 {
    i16::try_from(status).unwrap_or(i16::MAX)
}

/// Acknowledged deliveries whose record is not written yet (columns for one `unnest`).
#[derive(Default)]
struct Acknowledged {
    delivery_ids: Vec<Uuid>,
    statuses: Vec<i16>,
    at: Vec<DateTime<Utc>>,
    /// When the oldest of them was acknowledged.
    since: Option<Instant>,
}

impl Acknowledged {
    fn push(&mut self, delivery_id: Uuid, status: u16) {
        self.delivery_ids.push(delivery_id);
        self.statuses.push(status_column(status));
        self.at.push(Utc::now());
        self.since.get_or_insert_with(Instant::now);
    }

    fn has_waited(&self, delay: Duration) -> bool {
        self.since.is_some_and(|since| since.elapsed() >= delay)
    }
}

/// How sending one read of an endpoint's queue ended.
enum Sent<'q> {
    /// Every delivery read was acknowledged.
    All,
    /// The lease's share of deliveries is used.
    ShareUsed,
    /// Another process holds the endpoint now: its lease, its queue.
    LeaseLost,
    /// This process is stopping: it gives the lease back.
    Stopping,
    /// This delivery failed: the queue stops at it.
    Failed(&'q Due, Failure),
}

/// What a lease left of its endpoint's queue.
#[derive(PartialEq, Eq)]
enum Left {
    /// Nothing due (or another process's lease has it).
    Drained,
    /// Deliveries still due: the lease's share was used.
    More,
}

/// This process's hold on one endpoint.
struct Lease<'a> {
    owner: Uuid,
    endpoint_id: Uuid,
    renewed_at: Instant,
    /// The process's stop: no send starts once it is cancelled.
    stop: &'a CancellationToken,
}

impl Dispatcher {
    pub async fn run(self, cancel: CancellationToken) {
        let owner = Uuid::new_v4();
        let mut last_prune = Instant::now();
        loop {
            let more = self.round(owner, &cancel).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "webhook dispatch round failed");
                false
            });
            if last_prune.elapsed() >= PRUNE_INTERVAL {
                last_prune = Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "webhook prune failed");
                }
            }
            // A queue left with deliveries due goes on at once; otherwise wait for more.
            let pause = if more {
                Duration::ZERO
            } else {
                self.config.poll_interval
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round: fan out, lease the due endpoints, deliver to them concurrently; `true`
    /// if an endpoint gave its lease back with deliveries still due (its share used).
    pub async fn round(&self, owner: Uuid, stop: &CancellationToken) -> Result<bool, sqlx::Error> {
        while self.fan_out().await? == FAN_OUT_BATCH as u64 {}
        let endpoints = self.lease(owner).await?;
        let deliveries = endpoints.iter().map(|e| self.deliver_queue(owner, e, stop));
        let mut more = false;
        for result in futures::future::join_all(deliveries).await {
            more |= result? == Left::More;
        }
        Ok(more)
    }

    /// Creates the deliveries of up to [`FAN_OUT_BATCH`] new events; how many events.
    async fn fan_out(&self) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(FAN_OUT_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let done = sqlx::query(
            "with ev as (
                 select seq, tenant_id, type from integration_events where not fanned_out
                 order by seq limit $1),
             made as (
                 insert into webhook_deliveries (id, endpoint_id, event_seq, give_up_at)
                 select gen_random_uuid(), w.id, ev.seq, now() + $2 * interval '1 millisecond'
                 from ev join webhook_endpoints w
                      on w.tenant_id = ev.tenant_id and ev.type = any(w.event_types)
                         and w.deleted_at is null
                 on conflict do nothing)
             update integration_events set fanned_out = true where seq in (select seq from ev)",
        )
        .bind(FAN_OUT_BATCH)
        .bind(millis(self.config.max_age))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Leases the endpoints whose oldest pending delivery is due and that no live lease holds.
    async fn lease(&self, owner: Uuid) -> Result<Vec<Endpoint>, sqlx::Error> {
        sqlx::query_as(
            "update webhook_endpoints w
             set lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond'
             where w.id in (
                 select c.id from webhook_endpoints c
                 where c.deleted_at is null
                   and (c.lease_until is null or c.lease_until < now())
                   and (select d.next_attempt_at from webhook_deliveries d
                        where d.endpoint_id = c.id and d.status = 'pending'
                        order by d.event_seq limit 1) <= now()
                 limit $3 for update skip locked)
             returning w.id, w.url, w.secret",
        )
        .bind(owner)
        .bind(millis(self.lease_length()))
        .bind(ENDPOINTS_PER_ROUND_MAX)
        .fetch_all(&self.pool)
        .await
    }

    /// Longer than one attempt can take, so a live lease never runs out mid-send.
    fn lease_length(&self) -> Duration {
        self.config.timeout * 2 + Duration::from_secs(5)
    }

    /// Sends the endpoint's due deliveries in order until one fails (or the lease's share
    /// is used), recording the acknowledged ones in batches, then gives the lease back.
    async fn deliver_queue(
        &self,
        owner: Uuid,
        endpoint: &Endpoint,
        stop: &CancellationToken,
    ) -> Result<Left, sqlx::Error> {
        let mut lease = Lease {
            owner,
            endpoint_id: endpoint.id,
            renewed_at: Instant::now(),
            stop,
        };
        let mut sent = 0;
        let mut left = Left::Drained;
        loop {
            // The share is checked before each send: a lease that used it exactly finds
            // out here, from a queue that is then empty (drained) or not (more).
            let queue = self.queue(endpoint.id).await?;
            if queue.is_empty() {
                break;
            }
            let mut acknowledged = Acknowledged::default();
            let ended = self
                .send_in_order(&mut lease, endpoint, &queue, &mut sent, &mut acknowledged)
                .await;
            // Whatever stopped the sends, what was acknowledged is recorded.
            self.record_acknowledged(&mut acknowledged).await?;
            match ended? {
                Sent::All => {}
                Sent::Stopping => break,
                Sent::ShareUsed => {
                    left = Left::More;
                    break;
                }
                Sent::LeaseLost => return Ok(Left::Drained),
                Sent::Failed(due, failure) => {
                    self.record_failure(due, failure).await?;
                    break;
                }
            }
        }
        sqlx::query(
            "update webhook_endpoints set lease_owner = null, lease_until = null
             where id = $1 and lease_owner = $2",
        )
        .bind(endpoint.id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(left)
    }

    /// Sends `queue` in order, one at a time, until one fails; the acknowledged ones go to
    /// `acknowledged`, recorded here whenever the oldest has waited too long.
    async fn send_in_order<'q>(
        &self,
        lease: &mut Lease<'_>,
        endpoint: &Endpoint,
        queue: &'q [Due],
        sent: &mut usize,
        acknowledged: &mut Acknowledged,
    ) -> Result<Sent<'q>, sqlx::Error> {
        for due in queue {
            if *sent >= DELIVERIES_PER_LEASE_MAX {
                return Ok(Sent::ShareUsed);
            }
            if lease.stop.is_cancelled() {
                return Ok(Sent::Stopping);
            }
            if acknowledged.has_waited(self.config.ack_record_delay) {
                self.record_acknowledged(acknowledged).await?;
            }
            if !self.keep(lease).await? {
                return Ok(Sent::LeaseLost);
            }
            let status = acknowledged_status(self.send(endpoint, due).await);
            *sent += 1;
            match status {
                Ok(status) => {
                    metrics::counter!("webhook_attempts_total", "result" => "delivered")
                        .increment(1);
                    acknowledged.push(due.delivery_id, status);
                }
                Err(failure) => return Ok(Sent::Failed(due, failure)),
            }
        }
        Ok(Sent::All)
    }

    /// Renews the lease before half of it is spent; `false` if another process has it.
    async fn keep(&self, lease: &mut Lease<'_>) -> Result<bool, sqlx::Error> {
        if lease.renewed_at.elapsed() <= self.lease_length() / 2 {
            return Ok(true);
        }
        let renewed = self.renew(lease.owner, lease.endpoint_id).await?;
        lease.renewed_at = Instant::now();
        Ok(renewed)
    }

    /// The endpoint's pending deliveries from its oldest, in order, as long as each is due
    /// (a delivery waiting for its retry stops the queue there).
    async fn queue(&self, endpoint_id: Uuid) -> Result<Vec<Due>, sqlx::Error> {
        let pending: Vec<Due> = sqlx::query_as(
            "select d.id as delivery_id, d.attempts, d.give_up_at, e.id as event_id,
                    e.type as event_type, e.created_at, e.data,
                    d.next_attempt_at <= now() as is_due
             from webhook_deliveries d join integration_events e on e.seq = d.event_seq
             where d.endpoint_id = $1 and d.status = 'pending'
             order by d.event_seq limit $2",
        )
        .bind(endpoint_id)
        .bind(QUEUE_READ_MAX)
        .fetch_all(&self.pool)
        .await?;
        Ok(pending.into_iter().take_while(|due| due.is_due).collect())
    }

    async fn renew(&self, owner: Uuid, endpoint_id: Uuid) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "update webhook_endpoints set lease_until = now() + $3 * interval '1 millisecond'
             where id = $1 and lease_owner = $2 and deleted_at is null",
        )
        .bind(endpoint_id)
        .bind(owner)
        .bind(millis(self.lease_length()))
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn send(&self, endpoint: &Endpoint, due: &Due) -> Result<Answer, SendError> {
        let body = serde_json::to_vec(&Delivered {
            id: due.event_id,
            event_type: due.event_type,
            created_at: due.created_at,
            data: due.data.clone(),
        })
        .map_err(|e| SendError::Other(format!("event body: {e}")))?;
        let signature = webhooks::sign(&endpoint.secret, Utc::now().timestamp(), &body);
        let host = webhooks::endpoint_host(&endpoint.url)
            .map_err(|why| SendError::Other(format!("stored url: {why}")))?;
        let headers = [
            (SIGNATURE_HEADER, signature),
            (EVENT_ID_HEADER, due.event_id.to_string()),
        ];
        let started = Instant::now();
        let answer = self.egress.post(&endpoint.url, &host, &headers, body).await;
        metrics::histogram!("webhook_delivery_seconds").record(started.elapsed().as_secs_f64());
        answer
    }

    /// Records the acknowledged deliveries in one statement, then empties `acknowledged`
    /// (kept if the statement fails: the caller tries again before giving up).
    async fn record_acknowledged(
        &self,
        acknowledged: &mut Acknowledged,
    ) -> Result<(), sqlx::Error> {
        if acknowledged.delivery_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "update webhook_deliveries d set attempts = d.attempts + 1,
                 last_attempt_at = a.at, last_status = a.status, last_error = null,
                 status = 'delivered', delivered_at = a.at
             from unnest($1::uuid[], $2::int2[], $3::timestamptz[]) as a(id, status, at)
             where d.id = a.id",
        )
        .bind(&acknowledged.delivery_ids)
        .bind(&acknowledged.statuses)
        .bind(&acknowledged.at)
        .execute(&self.pool)
        .await?;
        *acknowledged = Acknowledged::default();
        Ok(())
    }

    /// Records a failed attempt: retried after a backoff, or `dead` past its age.
    async fn record_failure(&self, due: &Due, failure: Failure) -> Result<(), sqlx::Error> {
        let retry_at = failure.at + self.backoff(due.attempts + 1);
        let dead = retry_at > due.give_up_at;
        let result = if dead { "dead" } else { "failed" };
        metrics::counter!("webhook_attempts_total", "result" => result).increment(1);
        sqlx::query(
            "update webhook_deliveries set attempts = attempts + 1, last_attempt_at = $6,
                 last_status = $2, last_error = $3,
                 status = case when $4 then 'dead' else 'pending' end,
                 next_attempt_at = case when $4 then next_attempt_at else $5 end
             where id = $1",
        )
        .bind(due.delivery_id)
        .bind(failure.status.map(status_column))
        .bind(
            failure
                .error
                .chars()
                .take(LAST_ERROR_CHARS_MAX)
                .collect::<String>(),
        )
        .bind(dead)
        .bind(retry_at)
        .bind(failure.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The wait before attempt `attempt + 1`: `base · 2^(attempt-1)`, capped, then between
    /// half and all of it (jitter, so receivers coming back are not hit in lockstep).
    fn backoff(&self, attempt: i32) -> chrono::TimeDelta {
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let full = self
            .config
            .backoff_base
            .saturating_mul(1 << exponent)
            .min(self.config.backoff_max);
        let jittered = full.mul_f64(0.5 + rand::random::<f64>() * 0.5);
        chrono::TimeDelta::from_std(jittered).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Deletes delivered rows and fanned-out events older than the retention.
    async fn prune(&self) -> Result<(), sqlx::Error> {
        let retention = millis(self.config.retention);
        sqlx::query(
            "delete from webhook_deliveries where status = 'delivered'
             and delivered_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(retention)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "delete from integration_events e where fanned_out
             and created_at < now() - $1 * interval '1 millisecond'
             and not exists (select 1 from webhook_deliveries d where d.event_seq = e.seq)",
        )
        .bind(retention)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
