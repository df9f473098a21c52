//! The transactional outbox and its relay.
//!
//! Every inventory or catalog change calls [`enqueue`] inside its own transaction
//! (invariant 5), so a change and its message commit or vanish together. The relay then
//! numbers new rows, oldest first, and commits the numbers; then it publishes numbered rows
//! in `seq` order to the Redis channel and marks them. Published `seq`s are gap-free, which
//! lets an edge detect a missed message, and a message keeps its number if it is sent
//! again. Delivery is at-least-once (a crash between `PUBLISH` and the commit that marks
//! the rows re-sends them), which the message format makes harmless.
//!
//! Only one relay publishes at a time across all ledger processes (a transaction-scoped
//! advisory lock); the others find the lock taken and wait for the next round. If Redis is
//! down the rows simply stay unpublished and drain, in order, when it returns.
//!
//! Heartbeats (DESIGN.md, "Freshness lease"): when the channel was silent for
//! `heartbeat_interval`, the leading relay publishes `{"kind": "heartbeat", "seq": <last
//! published seq>}`, in a round that holds the lock and found nothing to publish (so every
//! numbered row is published and the last number is the last published one). Edges trust
//! their cached availability only while the stream speaks, and a heartbeat above what an
//! edge applied shows it a missed message within one interval.
//!
//! Wake-ups: commits in this process call [`OutboxWake::notify`]; commits from other
//! processes are found by polling. (Not `NOTIFY`: PostgreSQL serialises the commits of
//! every notifying transaction on one lock, which would cap the whole ledger's commit rate.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use tessera_domain::invalidation::{Change, Heartbeat, Invalidation};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::OutboxConfig;

/// Arbitrary, fixed key of the advisory lock that elects the publishing relay.
const RELAY_LOCK_KEY: i64 = 0x7e55_e2a0_0b0c;
/// Longest wait between attempts while Redis is unreachable.
const REDIS_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often backlog metrics are refreshed and old rows pruned.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// Most published rows deleted per prune statement (keeps each delete short).
const PRUNE_BATCH_MAX: i64 = 10_000;

/// Takes the relay's leadership for this transaction, if no other relay holds it.
async fn lead(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK_KEY)
        .fetch_one(conn)
        .await
}

/// Writes `change` to the outbox in the caller's transaction.
pub async fn enqueue(conn: &mut PgConnection, change: &Change) -> Result<(), sqlx::Error> {
    sqlx::query("insert into outbox (payload) values ($1)")
        .bind(sqlx::types::Json(change))
        .execute(conn)
        .await?;
    Ok(())
}

/// Wakes the relay after a commit that wrote outbox rows.
#[derive(Clone, Default)]
pub struct OutboxWake(Arc<Notify>);

impl OutboxWake {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored change that does not serialise: a bug, not a transient failure.
    #[error("serialising message {seq}: {source}")]
    Serialise { seq: i64, source: serde_json::Error },
}

/// Message `seq` as published: DESIGN.md's JSON.
fn message_text(seq: i64, change: &Change) -> Result<String, RelayError> {
    let message = Invalidation {
        seq,
        change: change.clone(),
    };
    serde_json::to_string(&message).map_err(|source| RelayError::Serialise { seq, source })
}

/// What a leading round put on the channel.
#[derive(Debug, Clone, Copy)]
struct Round {
    published: usize,
    heartbeat: bool,
}

impl Round {
    /// Whether the channel heard from this relay: any message restarts the heartbeat clock.
    fn spoke(self) -> bool {
        self.published > 0 || self.heartbeat
    }
}

/// The relay: runs until `cancel`, publishing to `config.channel` on `redis`.
pub struct Relay {
    pub pool: PgPool,
    pub redis: redis::Client,
    pub config: OutboxConfig,
    pub wake: OutboxWake,
}

impl Relay {
    pub async fn run(self, cancel: CancellationToken) {
        let mut connection: Option<redis::aio::MultiplexedConnection> = None;
        let mut backoff = Duration::ZERO;
        let mut last_housekeeping = Instant::now() - HOUSEKEEPING_INTERVAL;
        // Only the leading relay counts the backlog and prunes: one scan, not one per process.
        let mut leading = false;
        // When a heartbeat is due if nothing else was published by then; a relay that does
        // not lead defers it too (the leader speaks).
        let mut next_heartbeat = Instant::now();
        loop {
            if leading && last_housekeeping.elapsed() >= HOUSEKEEPING_INTERVAL {
                last_housekeeping = Instant::now();
                if let Err(e) = self.housekeeping().await {
                    tracing::warn!(error = %e, "outbox housekeeping failed");
                }
            }
            let heartbeat_due = Instant::now() >= next_heartbeat;
            let published = match self.publish_round(&mut connection, heartbeat_due).await {
                Ok(round) => {
                    backoff = Duration::ZERO;
                    leading = round.is_some();
                    if round.is_none_or(Round::spoke) {
                        next_heartbeat = Instant::now() + self.config.heartbeat_interval;
                    }
                    round.map_or(0, |r| r.published)
                }
                Err(e) => {
                    connection = None;
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), REDIS_BACKOFF_MAX);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay round failed");
                    0
                }
            };
            // A full batch means more is waiting: go again without sleeping.
            if published as i64 >= self.config.batch_size_max && backoff.is_zero() {
                continue;
            }
            let pause = if backoff.is_zero() {
                let until_heartbeat = next_heartbeat.saturating_duration_since(Instant::now());
                self.config.poll_interval.min(until_heartbeat)
            } else {
                backoff
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.0.notified(), if backoff.is_zero() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        // Last round so changes committed during shutdown are not left for the next start.
        if let Err(e) = self.publish_round(&mut connection, false).await {
            tracing::warn!(error = %e, "final outbox round failed; rows stay for the next relay");
        }
    }

    /// One round, if this relay leads: number the new rows, then publish the numbered ones
    /// in order and mark them; with nothing to publish, the heartbeat if it is due. `None`
    /// if another relay leads.
    async fn publish_round(
        &self,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
        heartbeat_due: bool,
    ) -> Result<Option<Round>, RelayError> {
        if !self.number_new_rows().await? {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        if !lead(&mut tx).await? {
            return Ok(None);
        }
        let rows: Vec<(
            i64,
            sqlx::types::Json<Change>,
            chrono::DateTime<chrono::Utc>,
        )> = sqlx::query_as(
            "select seq, payload, created_at from outbox
                 where published_at is null and seq is not null order by seq limit $1",
        )
        .bind(self.config.batch_size_max)
        .persistent(false) // planned per call: see `idempotency::lookup`
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            if heartbeat_due {
                self.heartbeat(&mut tx, connection).await?;
            }
            // Releases the lock now (see `number_new_rows`).
            tx.rollback().await?;
            return Ok(Some(Round {
                published: 0,
                heartbeat: heartbeat_due,
            }));
        }
        let mut pipe = redis::pipe();
        for (seq, payload, _) in &rows {
            pipe.publish(&self.config.channel, message_text(*seq, &payload.0)?)
                .ignore();
        }
        pipe.query_async::<()>(self.connect(connection).await?)
            .await?;
        // A crash before this commit re-sends the same messages with the same numbers, so
        // the mark need not wait for its own fsync (it shares the next commit's): holds and
        // numbers stay synchronous, and the relay costs one fsync per round, not two.
        sqlx::query("set local synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        sqlx::query("update outbox set published_at = now() where seq = any($1)")
            .bind(&seqs)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;

        let oldest = rows
            .iter()
            .map(|r| r.2)
            .min()
            .unwrap_or_else(chrono::Utc::now);
        let lag = (chrono::Utc::now() - oldest).to_std().unwrap_or_default();
        metrics::histogram!("outbox_relay_lag_seconds").record(lag.as_secs_f64());
        metrics::counter!("outbox_published_total").increment(rows.len() as u64);
        Ok(Some(Round {
            published: rows.len(),
            heartbeat: false,
        }))
    }

    /// The Redis connection, made again if the last round lost it.
    async fn connect<'c>(
        &self,
        connection: &'c mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<&'c mut redis::aio::MultiplexedConnection, redis::RedisError> {
        Ok(match connection {
            Some(c) => c,
            None => connection.insert(self.redis.get_multiplexed_async_connection().await?),
        })
    }

    /// Publishes the heartbeat, inside the leading transaction `tx` that found no numbered
    /// row unpublished: the last number given out is then the last one published.
    async fn heartbeat(
        &self,
        tx: &mut PgConnection,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<(), RelayError> {
        let seq: i64 = sqlx::query_scalar("select last_seq from outbox_relay")
            .fetch_one(tx)
            .await?;
        let text = serde_json::to_string(&Heartbeat { seq })
            .map_err(|source| RelayError::Serialise { seq, source })?;
        redis::cmd("PUBLISH")
            .arg(&self.config.channel)
            .arg(text)
            .query_async::<()>(self.connect(connection).await?)
            .await?;
        metrics::counter!("outbox_heartbeats_total").increment(1);
        Ok(())
    }

    /// Gives the next `seq` numbers to rows that have none, oldest first, and commits that
    /// before anything is published. Returns whether this relay leads.
    async fn number_new_rows(&self) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !lead(&mut tx).await? {
            return Ok(false);
        }
        let ids: Vec<i64> =
            sqlx::query_scalar("select id from outbox where seq is null order by id limit $1")
                .bind(self.config.batch_size_max)
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
        if ids.is_empty() {
            // Ended here, not dropped: a dropped transaction is rolled back only once its
            // connection is back in the pool, and until then it holds the relay's lock, so
            // the round's next transaction (on another connection) would not lead and the
            // heartbeat would be skipped (measured: 1 heartbeat in 12 s with a pool of 16).
            tx.rollback().await?;
            return Ok(true);
        }
        let last_seq: i64 = sqlx::query_scalar("select last_seq from outbox_relay")
            .fetch_one(&mut *tx)
            .await?;
        let seqs: Vec<i64> = (1..=ids.len() as i64).map(|i| last_seq + i).collect();
        sqlx::query(
            "update outbox o set seq = m.seq from unnest($1::bigint[], $2::bigint[]) as m(id, seq)
             where o.id = m.id",
        )
        .bind(&ids)
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
        sqlx::query("update outbox_relay set last_seq = $1")
            .bind(last_seq + ids.len() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Refreshes the backlog gauges and prunes old published rows.
    async fn housekeeping(&self) -> Result<(), sqlx::Error> {
        let (backlog, oldest_age_s): (i64, Option<f64>) = sqlx::query_as(
            "select count(*), extract(epoch from now() - min(created_at))::float8
             from outbox where published_at is null",
        )
        .fetch_one(&self.pool)
        .await?;
        metrics::gauge!("outbox_backlog").set(backlog as f64);
        metrics::gauge!("outbox_oldest_unpublished_age_seconds").set(oldest_age_s.unwrap_or(0.0));
        let retention_s = self.config.retention.as_secs_f64();
        sqlx::query(
            "delete from outbox where id in (
                 select id from outbox
                 where published_at is not null and published_at < now() - make_interval(secs => $1)
                 limit $2)",
        )
        .bind(retention_s)
        .bind(PRUNE_BATCH_MAX)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
