//! Letting people in: every tick, each open queue's `serving` moves on by what its rate
//! credits since `advanced_at`, and each move goes out as a `queue` message in the same
//! transaction (the outbox), so every edge learns it. Credit is never banked: while nobody
//! waits, while the event is sold out, or before the queue opens, `advanced_at` follows the
//! clock, so a crowd arriving later is still let in at the rate, not in one burst. Sold out
//! means no zone of the event has anything available (held tickets may come back; then
//! admission resumes). Several ledgers may tick at once: the rows are locked, and a second
//! tick in the same instant finds nothing credited.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use tessera_domain::invalidation::Change;
use tessera_domain::EventId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::outbox::{self, OutboxWake};

/// Microseconds in a minute: rates are per minute, credit is kept to the microsecond.
const MICROS_PER_MINUTE: i64 = 60_000_000;

/// One queue as the tick sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    pub admit_per_minute: i32,
    pub opens_at: Option<DateTime<Utc>>,
    pub joined: i64,
    pub serving: i64,
    pub advanced_at: DateTime<Utc>,
    /// Whether any zone of the event has stock available.
    pub selling: bool,
}

/// Where a tick leaves a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    pub serving: i64,
    pub advanced_at: DateTime<Utc>,
}

/// The rule: let in `rate × elapsed` more, at most everyone waiting; carry the fraction
/// of a person not yet credited in `advanced_at`; bank nothing while there is nobody to
/// let in.
pub fn advance(q: &Credit, now: DateTime<Utc>) -> Advance {
    let start = q
        .opens_at
        .map_or(q.advanced_at, |open| q.advanced_at.max(open));
    let hold_still = Advance {
        serving: q.serving,
        advanced_at: start.max(now),
    };
    if now <= start || !q.selling || q.serving >= q.joined {
        return hold_still;
    }
    let rate = i64::from(q.admit_per_minute.max(1));
    let elapsed_us = (now - start).num_microseconds().unwrap_or(i64::MAX);
    let due = elapsed_us.saturating_mul(rate) / MICROS_PER_MINUTE;
    let waiting = q.joined - q.serving;
    if due >= waiting {
        return Advance {
            serving: q.joined,
            advanced_at: now,
        };
    }
    Advance {
        serving: q.serving + due,
        advanced_at: start + TimeDelta::microseconds(due * MICROS_PER_MINUTE / rate),
    }
}

/// The ticking task.
pub struct Advancer {
    pub pool: PgPool,
    pub tick: Duration,
    pub outbox_wake: OutboxWake,
}

#[derive(sqlx::FromRow)]
struct TickRow {
    event_id: Uuid,
    admit_per_minute: i32,
    opens_at: Option<DateTime<Utc>>,
    joined: i64,
    serving: i64,
    version: i64,
    advanced_at: DateTime<Utc>,
    selling: bool,
    now: DateTime<Utc>,
}

impl Advancer {
    pub async fn run(self, cancel: CancellationToken) {
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match self.round().await {
                Ok(0) => {}
                Ok(_) => self.outbox_wake.notify(),
                Err(e) => tracing::warn!(error = %e, "a queue tick failed; the next one retries"),
            }
        }
    }

    /// One tick over every open queue; returns how many let people in.
    pub async fn round(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<TickRow> = sqlx::query_as(
            "select q.event_id, q.admit_per_minute, q.opens_at, q.joined, q.serving, q.version,
                    q.advanced_at, clock_timestamp() as now,
                    exists(select 1 from zones z join shows s on s.id = z.show_id
                           where s.event_id = q.event_id and z.available > 0) as selling
             from event_queues q join events e on e.id = q.event_id
             where q.enabled and e.status = 'published'
             order by q.event_id
             for update of q",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut moved = 0;
        for row in rows {
            let credit = Credit {
                admit_per_minute: row.admit_per_minute,
                opens_at: row.opens_at,
                joined: row.joined,
                serving: row.serving,
                advanced_at: row.advanced_at,
                selling: row.selling,
            };
            let next = advance(&credit, row.now);
            let version = row.version + i64::from(next.serving != row.serving);
            sqlx::query(
                "update event_queues set serving = $2, advanced_at = $3, version = $4 where event_id = $1",
            )
            .bind(row.event_id)
            .bind(next.serving)
            .bind(next.advanced_at)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            if next.serving != row.serving {
                let change = Change::Queue {
                    event_id: EventId(row.event_id),
                    serving: next.serving,
                    version,
                };
                outbox::enqueue(&mut tx, &change).await?;
                metrics::counter!("queue_admitted_total")
                    .increment(u64::try_from(next.serving - row.serving).unwrap_or(0));
                moved += 1;
            }
        }
        tx.commit().await?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_900_000_000_000 + ms).expect("t")
    }

    fn queue(joined: i64) -> Credit {
        Credit {
            admit_per_minute: 600,
            opens_at: None,
            joined,
            serving: 0,
            advanced_at: at_ms(0),
            selling: true,
        }
    }

    #[test]
    fn lets_in_at_the_rate_and_never_past_who_joined() {
        let q = queue(1_000);
        assert_eq!(
            advance(&q, at_ms(1_000)).serving,
            10,
            "600 a minute: 10 a second"
        );
        assert_eq!(advance(&q, at_ms(150)).serving, 1, "the fraction waits");
        assert_eq!(advance(&q, at_ms(150)).advanced_at, at_ms(100));
        let few = queue(3);
        assert_eq!(advance(&few, at_ms(1_000)).serving, 3);
    }

    #[test]
    fn banks_nothing_while_idle_sold_out_or_closed() {
        let mut idle = queue(5);
        idle.serving = 5;
        assert_eq!(advance(&idle, at_ms(60_000)).advanced_at, at_ms(60_000));
        let mut sold_out = queue(100);
        sold_out.selling = false;
        let held = advance(&sold_out, at_ms(60_000));
        assert_eq!((held.serving, held.advanced_at), (0, at_ms(60_000)));
        let mut later = queue(100);
        later.opens_at = Some(at_ms(10_000));
        assert_eq!(advance(&later, at_ms(5_000)).serving, 0);
        assert_eq!(
            advance(&later, at_ms(11_000)).serving,
            10,
            "credited from opening"
        );
    }

    proptest! {
        /// However the ticks fall, after `t` the queue let in `rate × t` (rounded down)
        /// while people wait: ticking often loses nobody, and gains at most one person
        /// (each tick's carry is rounded to the microsecond, in the crowd's favour).
        #[test]
        fn ticks_add_up_to_the_rate(
            rate in 1i32..=100_000,
            gaps in proptest::collection::vec(1i64..5_000, 1..50),
        ) {
            let mut q = Credit { admit_per_minute: rate, ..queue(i64::MAX / 4) };
            let mut now = 0;
            for gap in gaps {
                now += gap;
                let next = advance(&q, at_ms(now));
                q.serving = next.serving;
                q.advanced_at = next.advanced_at;
            }
            let exact = now * i64::from(rate) / 60_000;
            prop_assert!((exact..=exact + 1).contains(&q.serving), "{} for {}", q.serving, exact);
        }
    }
}
