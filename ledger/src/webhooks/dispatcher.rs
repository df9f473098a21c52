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
//! At least once: a crash between a receiver's 2xx and the record sends that event again
//! (the receiver deduplicates by its id). The edges' invalidation relay is separate and
//! never waits for any of this.

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
const DELIVERIES_PER_LEASE_MAX: usize = 500;
/// Pending deliveries of one endpoint read per query.
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

impl Dispatcher {
    pub async fn run(self, cancel: CancellationToken) {
        let owner = Uuid::new_v4();
        let mut last_prune = Instant::now();
        loop {
            if let Err(e) = self.round(owner).await {
                tracing::warn!(error = %e, "webhook dispatch round failed");
            }
            if last_prune.elapsed() >= PRUNE_INTERVAL {
                last_prune = Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "webhook prune failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// One round: fan out, lease the due endpoints, deliver to them concurrently.
    pub async fn round(&self, owner: Uuid) -> Result<(), sqlx::Error> {
        while self.fan_out().await? == FAN_OUT_BATCH as u64 {}
        let endpoints = self.lease(owner).await?;
        let deliveries = endpoints.iter().map(|e| self.deliver_queue(owner, e));
        for result in futures::future::join_all(deliveries).await {
            result?;
        }
        Ok(())
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
    /// is used), renewing the lease before half of it is spent, then gives the lease back.
    async fn deliver_queue(&self, owner: Uuid, endpoint: &Endpoint) -> Result<(), sqlx::Error> {
        let mut renewed_at = Instant::now();
        let mut sent = 0;
        'queue: while sent < DELIVERIES_PER_LEASE_MAX {
            let queue = self.queue(endpoint.id).await?;
            if queue.is_empty() {
                break;
            }
            for due in queue {
                if renewed_at.elapsed() > self.lease_length() / 2 {
                    if !self.renew(owner, endpoint.id).await? {
                        return Ok(()); // another process took it over: its lease, its queue
                    }
                    renewed_at = Instant::now();
                }
                let outcome = self.send(endpoint, &due).await;
                sent += 1;
                if !self.record(&due, outcome).await? || sent >= DELIVERIES_PER_LEASE_MAX {
                    break 'queue;
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
        Ok(())
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

    /// Records an attempt; `true` if it was delivered (the queue goes on).
    async fn record(
        &self,
        due: &Due,
        outcome: Result<Answer, SendError>,
    ) -> Result<bool, sqlx::Error> {
        let (status, error) = match &outcome {
            Ok(answer) if (200..300).contains(&answer.status) => (Some(answer.status), None),
            Ok(answer) => (
                Some(answer.status),
                Some(format!(
                    "answered {}: {}",
                    answer.status,
                    answer.body.trim()
                )),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivered = error.is_none();
        let retry_at = Utc::now() + self.backoff(due.attempts + 1);
        let dead = !delivered && retry_at > due.give_up_at;
        let result = match (delivered, dead) {
            (true, _) => "delivered",
            (false, true) => "dead",
            (false, false) => "failed",
        };
        metrics::counter!("webhook_attempts_total", "result" => result).increment(1);
        sqlx::query(
            "update webhook_deliveries set attempts = attempts + 1, last_attempt_at = now(),
                 last_status = $2, last_error = $3,
                 status = case when $4 then 'delivered' when $5 then 'dead' else 'pending' end,
                 delivered_at = case when $4 then now() end,
                 next_attempt_at = case when $4 or $5 then next_attempt_at else $6 end
             where id = $1",
        )
        .bind(due.delivery_id)
        .bind(status.map(|s| s as i16))
        .bind(error.map(|e| e.chars().take(LAST_ERROR_CHARS_MAX).collect::<String>()))
        .bind(delivered)
        .bind(dead)
        .bind(retry_at)
        .execute(&self.pool)
        .await?;
        Ok(delivered)
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
