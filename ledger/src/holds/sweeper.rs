//! The expiry sweeper: returns the stock of lapsed holds, in batches, each hold exactly
//! once — also with several ledger processes sweeping at once, because each batch claims
//! its holds with `FOR UPDATE SKIP LOCKED` and re-checks `status = 'held'` under the lock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tessera_domain::seats::SeatStatus;
use tessera_domain::ZoneId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::stock::{move_stock, Movement};
use crate::outbox::{self, OutboxWake};

/// Most batches in one sweep round, so a huge backlog cannot starve the shutdown check.
const SWEEP_BATCHES_PER_ROUND_MAX: usize = 100;
/// How often stored idempotent results are pruned.
const IDEMPOTENCY_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

pub struct Sweeper {
    pub pool: PgPool,
    pub interval: Duration,
    pub batch_size_max: i64,
    pub idempotency_retention: Duration,
    pub outbox_wake: OutboxWake,
}

impl Sweeper {
    pub async fn run(self, cancel: CancellationToken) {
        let mut last_prune = Instant::now();
        loop {
            for _ in 0..SWEEP_BATCHES_PER_ROUND_MAX {
                match sweep_once(&self.pool, self.batch_size_max).await {
                    Ok(n) => {
                        if n > 0 {
                            self.outbox_wake.notify();
                        }
                        if (n as i64) < self.batch_size_max {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "expiry sweep failed");
                        break;
                    }
                }
            }
            if last_prune.elapsed() >= IDEMPOTENCY_PRUNE_INTERVAL {
                last_prune = Instant::now();
                if let Err(e) =
                    crate::idempotency::prune(&self.pool, self.idempotency_retention).await
                {
                    tracing::warn!(error = %e, "idempotency prune failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

/// Expires up to `batch_size_max` lapsed holds in one transaction; returns how many.
pub async fn sweep_once(pool: &PgPool, batch_size_max: i64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let expired: Vec<(Uuid, Uuid, i32, Option<Vec<i32>>)> = sqlx::query_as(
        "with due as (
             select id from holds where status = 'held' and expires_at <= now()
             order by expires_at limit $1 for update skip locked)
         update holds h set status = 'expired', settled_at = now()
         from due where h.id = due.id
         returning h.id, h.zone_id, h.quantity, h.seat_indexes",
    )
    .bind(batch_size_max)
    .persistent(false) // planned per call: see `idempotency::lookup`
    .fetch_all(&mut *tx)
    .await?;
    if expired.is_empty() {
        return Ok(0);
    }
    // Zones in id order: two sweepers locking overlapping zones cannot deadlock.
    // Per zone: the tickets returned and the seats freed (none for general admission).
    let mut per_zone: BTreeMap<Uuid, (i32, Vec<i32>)> = BTreeMap::new();
    for (_, zone_id, quantity, seats) in &expired {
        let zone = per_zone.entry(*zone_id).or_default();
        zone.0 += quantity;
        zone.1.extend(seats.iter().flatten());
    }
    for (zone_id, (quantity, seats)) in per_zone {
        let zone_id = ZoneId(zone_id);
        let change = move_stock(&mut tx, zone_id, quantity, Movement::Release)
            .await?
            .change_with_seats(zone_id, &seats, SeatStatus::Available);
        outbox::enqueue(&mut tx, &change).await?;
    }
    // Their seats, after every zone's counters (zone rows first, then seats).
    let hold_ids: Vec<Uuid> = expired.iter().map(|(id, ..)| *id).collect();
    crate::seats::free_held(&mut tx, &hold_ids).await?;
    crate::webhooks::emit::holds_expired(&mut tx, &hold_ids).await?;
    tx.commit().await?;
    metrics::counter!("holds_expired_total").increment(expired.len() as u64);
    Ok(expired.len())
}
