//! Handing out places in line. Joins are a flash crowd's first request, and every place
//! comes from one row per event (`event_queues.joined`), so — as holds are — joins wait
//! in-process and one task takes everything waiting in one transaction per event: lock the
//! row, give keys seen before their old place, number the rest on from `joined`, record the
//! keyed ones, commit. Places are gap-free (taken under the row lock, only by commits) and
//! durable (a restart reads `joined` back). Bounded: at most `join_queue_depth_max` joins
//! wait (past it 503 + `Retry-After`) and a transaction takes at most `join_batch_max`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tessera_domain::catalog::EventStatus;
use tessera_domain::queue::{self, QueueState};
use tessera_domain::{EventId, IdempotencyKey};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::settings::QueueRow;
use crate::config::QueueConfig;
use crate::error::ApiError;

/// A place handed out (or handed out before, to the same key).
#[derive(Debug, Clone)]
pub struct Joined {
    pub position: u64,
    pub joined_at: DateTime<Utc>,
    /// False when the key already had this place.
    pub new: bool,
    /// The queue as the batch left it.
    pub state: QueueState,
}

struct JoinJob {
    event_id: EventId,
    key: Option<IdempotencyKey>,
    reply: oneshot::Sender<Result<Joined, ApiError>>,
}

/// The way in: [`Joins::join`] waits for its batch.
#[derive(Clone)]
pub struct Joins {
    sender: mpsc::Sender<JoinJob>,
}

impl Joins {
    /// Starts the batching task; it ends when every `Joins` is dropped.
    pub fn start(pool: PgPool, config: &QueueConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.join_queue_depth_max.get());
        tokio::spawn(run(pool, receiver, config.join_batch_max.get()));
        Self { sender }
    }

    pub async fn join(
        &self,
        event_id: EventId,
        key: Option<IdempotencyKey>,
    ) -> Result<Joined, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = JoinJob {
            event_id,
            key,
            reply,
        };
        self.sender.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::Overloaded("too many joins waiting"),
            mpsc::error::TrySendError::Closed(_) => ApiError::database_unavailable(),
        })?;
        answer
            .await
            .map_err(|_| ApiError::Unexpected(anyhow::anyhow!("the join batcher stopped")))?
    }
}

async fn run(pool: PgPool, mut receiver: mpsc::Receiver<JoinJob>, batch_max: usize) {
    let mut jobs = Vec::with_capacity(batch_max);
    while receiver.recv_many(&mut jobs, batch_max).await > 0 {
        let mut per_event: HashMap<EventId, Vec<JoinJob>> = HashMap::new();
        for job in jobs.drain(..) {
            per_event.entry(job.event_id).or_default().push(job);
        }
        for (event_id, jobs) in per_event {
            let size = jobs.len();
            let outcome = commit(&pool, event_id, &jobs).await;
            metrics::histogram!("queue_join_batch_size").record(size as f64);
            answer(jobs, outcome);
        }
    }
}

fn answer(jobs: Vec<JoinJob>, outcome: Result<Vec<Joined>, ApiError>) {
    match outcome {
        Ok(places) => {
            for (job, place) in jobs.into_iter().zip(places) {
                let _ = job.reply.send(Ok(place));
            }
        }
        Err(e) => {
            if matches!(e, ApiError::Unexpected(_)) {
                tracing::error!(error = %e, "a join batch failed");
            }
            let problem = e.problem();
            for job in jobs {
                let _ = job.reply.send(Err(ApiError::from(problem.clone())));
            }
        }
    }
}

/// One transaction for `jobs` (all of `event_id`): one place each, in arrival order.
async fn commit(
    pool: &PgPool,
    event_id: EventId,
    jobs: &[JoinJob],
) -> Result<Vec<Joined>, ApiError> {
    let mut tx = pool.begin().await?;
    let (mut state, now) = lock_open_queue(&mut tx, event_id).await?;
    let keys: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.key.as_ref())
        .map(|k| k.as_str())
        .collect();
    let mut known = known_places(&mut tx, event_id, &keys).await?;
    let mut places = Vec::with_capacity(jobs.len());
    let mut new_keys: Vec<&str> = Vec::new();
    let mut new_positions: Vec<i64> = Vec::new();
    for job in jobs {
        let key = job.key.as_ref().map(|k| k.as_str());
        if let Some(&(position, joined_at)) = key.and_then(|k| known.get(k)) {
            places.push((position, joined_at, false));
            continue;
        }
        state.joined += 1;
        places.push((state.joined, now, true));
        if let Some(key) = key {
            known.insert(key.to_owned(), (state.joined, now));
            new_keys.push(key);
            new_positions.push(state.joined);
        }
    }
    record(
        &mut tx,
        event_id,
        state.joined,
        &new_keys,
        &new_positions,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(places
        .into_iter()
        .map(|(position, joined_at, new)| Joined {
            position: u64::try_from(position).unwrap_or(0),
            joined_at,
            new,
            state,
        })
        .collect())
}

/// Locks the event's queue row; it must be on and the event published. Returns the queue
/// and the transaction's time in whole seconds (a ticket carries seconds).
async fn lock_open_queue(
    conn: &mut PgConnection,
    event_id: EventId,
) -> Result<(QueueState, DateTime<Utc>), ApiError> {
    let row: Option<(EventStatus, DateTime<Utc>)> = sqlx::query_as(
        "select e.status, date_trunc('second', now()) from events e where e.id = $1",
    )
    .bind(event_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let (status, now) = row.ok_or_else(|| ApiError::not_found("event"))?;
    if status == EventStatus::Draft {
        return Err(ApiError::not_found("event"));
    }
    let queue: Option<QueueRow> = sqlx::query_as(
        "select q.event_id, q.enabled, q.admit_per_minute, q.session_minutes, q.opens_at,
                q.joined, q.serving, q.version
         from event_queues q where q.event_id = $1 for update",
    )
    .bind(event_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    match queue.map(QueueState::from) {
        Some(state) if state.enabled && status == EventStatus::Published => Ok((state, now)),
        _ => Err(queue::queue_off().into()),
    }
}

/// [`known_places`]: `$1` the event, `$2` the batch's keys. One primary-key probe per key
/// (a `lateral` join with `limit 1`, which PostgreSQL cannot flatten into a scan). Written
/// as `event_id = $1 and idempotency_key = any($2)`, the planner — its statistics taken
/// before the flash crowd arrived, as they are for the whole first minute of a sale (and
/// for ever where autovacuum is off) — reads every place of the event and filters the keys:
/// each batch then costs as much as the line is long (measured: 3.2 ms a batch at 24,000
/// joins, PostgreSQL's core full at 2,800 joins/s).
pub const KNOWN_PLACES_SQL: &str =
    "select k.key, j.position, j.joined_at from unnest($2::text[]) as k(key),
     lateral (select position, joined_at from queue_joins
              where event_id = $1 and idempotency_key = k.key limit 1) as j";

/// The places keys already have.
async fn known_places(
    conn: &mut PgConnection,
    event_id: EventId,
    keys: &[&str],
) -> Result<HashMap<String, (i64, DateTime<Utc>)>, ApiError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(KNOWN_PLACES_SQL)
        .bind(event_id.as_uuid())
        .bind(keys)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(k, p, at)| (k, (p, at))).collect())
}

async fn record(
    conn: &mut PgConnection,
    event_id: EventId,
    joined: i64,
    keys: &[&str],
    positions: &[i64],
    joined_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let event: Uuid = event_id.as_uuid();
    sqlx::query("update event_queues set joined = $2 where event_id = $1")
        .bind(event)
        .bind(joined)
        .execute(&mut *conn)
        .await?;
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into queue_joins (event_id, idempotency_key, position, joined_at)
         select $1, t.k, t.p, $4 from unnest($2::text[], $3::int8[]) as t(k, p)",
    )
    .bind(event)
    .bind(keys)
    .bind(positions)
    .bind(joined_at)
    .execute(conn)
    .await?;
    Ok(())
}
