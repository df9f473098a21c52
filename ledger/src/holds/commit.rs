//! The batch transaction: everything waiting for one zone, committed at once.
//!
//! Under the zone's row lock, in arrival order, each request is replayed (same
//! `Idempotency-Key`), or checked against the shared hold rules, the customer's limit and
//! the stock, and granted or rejected. Then one statement moves the summed quantity from
//! `available` to `held`, writes the granted holds (one insert from arrays) and the outbox
//! row announcing the new counters; refusals are stored for replay. The outbox row is
//! written from the counters the allocation expects, so the counters that statement
//! returns must be exactly those ([`InvariantBreach`] otherwise), and the CHECK
//! constraints on `zones` back all of this: a bug here aborts the commit instead of
//! overselling.
//!
//! Round trips are what a hot zone waits on (its writer commits nothing else meanwhile,
//! and every one after the lock holds the zone's row lock), so a batch makes five:
//! `BEGIN`, the lock, one probe for used keys, the write and `COMMIT`; the statements are
//! prepared once per connection and the writer keeps its connection. Replays and refusals
//! add their own statements only to the batches that have them. (It made eleven: a pool
//! checkout's ping, two lookups planned per call at two round trips each, and the update,
//! insert and outbox row one by one.)
//!
//! The naive strategy is this same function called with a batch of one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tessera_domain::catalog::{EventStatus, SeatingKind};
use tessera_domain::holds::{
    check_customer_limit, check_hold, check_stock, zone_not_in_show, HoldContext, HoldStatus,
    HoldView, NewHold, Rejection, SeatPick,
};
use tessera_domain::queue::QueueKeys;
use tessera_domain::seats::SeatStatus;
use tessera_domain::{Currency, CustomerId, ErrorCode, EventId, HoldId, Problem, ShowId, ZoneId};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::engine::Job;
use super::settle::StoredHold;
use super::stock::{Counters, Movement};
use crate::config::HoldTtl;
use crate::error::{is_unavailable, ApiError};
use crate::idempotency::{self, NewRecord, Reply};
use crate::outbox::OutboxWake;
use crate::seats::board::Board;

/// Idempotency scope of `POST /v1/holds`.
pub const HOLD_SCOPE: &str = "hold";
/// Attempts per batch when a retry can succeed (a concurrent duplicate key, a deadlock).
pub(super) const COMMIT_ATTEMPTS_MAX: u32 = 3;

/// What every batch commit needs.
#[derive(Clone)]
pub struct CommitContext {
    pub pool: PgPool,
    pub hold_ttl: HoldTtl,
    pub outbox_wake: OutboxWake,
    /// Checks the admission passes of holds on queued events (`None`: no `QUEUE_KEY`, so
    /// no queue can be on and such holds are refused).
    pub queue_keys: Option<Arc<QueueKeys>>,
}

/// What a zone's writer keeps from one batch to the next ([`super::engine`]): its
/// connection (`None` when the next attempt must take one from the pool), and an assigned
/// zone's seats as its last commit left them.
#[derive(Default)]
pub struct WriterState {
    pub conn: Option<PoolConnection<Postgres>>,
    board: Option<CachedBoard>,
}

/// A zone's whole board as of the zone's `version`. Every change of a seat moves the
/// version (a batch, confirm, release, expiry, blocking; another ledger's too), so a
/// board whose version is still the zone's, read under its lock, is the zone's seats:
/// a hot zone's writer reads its 50,000 seats once, not once per batch.
struct CachedBoard {
    version: i64,
    board: Board,
}

/// Why a batch (of holds or of confirms) did not commit.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommitError {
    #[error("retryable: {0}")]
    Retry(&'static str),
    #[error(transparent)]
    Invariant(#[from] InvariantBreach),
    /// Seats found free (or held by the hold being confirmed) under the zone's lock did
    /// not all move: a bug, or a writer that ignores the lock. The batch rolls back.
    #[error("zone {zone_id}: {moved} of {expected} seats moved")]
    Seats {
        zone_id: ZoneId,
        expected: usize,
        moved: u64,
    },
    #[error(transparent)]
    Database(sqlx::Error),
    /// Anything else that stops the batch (a confirm's signing key, say).
    #[error(transparent)]
    Failed(#[from] ApiError),
}

impl From<anyhow::Error> for CommitError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(ApiError::Unexpected(e))
    }
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        let database = e.as_database_error();
        match database.and_then(|d| d.code()).as_deref() {
            Some("40001") => Self::Retry("serialization failure"),
            Some("40P01") => Self::Retry("deadlock"),
            // Another process granted a hold with one of these keys first: the retry replays it.
            Some("23505")
                if database.and_then(|d| d.constraint()) == Some("holds_idempotency_key_key") =>
            {
                Self::Retry("idempotency key used concurrently")
            }
            _ => Self::Database(e),
        }
    }
}

/// The zone's counters after the batch's update are not what granting `granted` tickets
/// under its row lock must leave: a bug here, or a writer that ignores the lock. The batch
/// rolls back (its outbox row with it), nothing is granted, and the requests get a 500
/// (the detail goes to the log).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("zone {zone_id}: counters {found:?} after granting {granted} of {before:?}, expected {expected:?}")]
pub struct InvariantBreach {
    zone_id: ZoneId,
    granted: i32,
    before: Counters,
    expected: Option<Counters>,
    found: Counters,
}

/// Commits `jobs` (all for `zone_id`) on `conn` (or a pooled connection, left in `conn`
/// on success) and answers each one. Returns `false` if the zone does not exist, so its
/// writer can retire at once instead of occupying a slot.
pub async fn commit_batch(
    ctx: &CommitContext,
    writer: &mut WriterState,
    zone_id: ZoneId,
    jobs: Vec<Job>,
) -> bool {
    metrics::histogram!("hold_batch_size").record(jobs.len() as f64);
    let queue_wait = metrics::histogram!("hold_queue_wait_seconds");
    for job in &jobs {
        queue_wait.record(job.enqueued_at.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    let mut attempt = 1;
    let result = loop {
        match commit_once(ctx, writer, zone_id, &jobs).await {
            Err(CommitError::Retry(why)) if attempt < COMMIT_ATTEMPTS_MAX => {
                tracing::debug!(%zone_id, why, attempt, "retrying hold batch");
                attempt += 1;
            }
            other => break other,
        }
    };
    metrics::histogram!("hold_commit_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(committed) => {
            ctx.outbox_wake.notify();
            for (job, reply) in jobs.into_iter().zip(committed.replies) {
                let _ = job.reply.send(Ok(reply));
            }
            committed.zone_found
        }
        Err(e) => {
            answer_failure(zone_id, "hold", jobs.into_iter().map(|j| j.reply), &e);
            true
        }
    }
}

/// One attempt on the writer's connection, or a fresh one from the pool. A connection
/// that saw an error goes back to the pool (which tests it before its next use) instead
/// of on to the next batch, and the board goes with the rolled-back batch.
async fn commit_once(
    ctx: &CommitContext,
    writer: &mut WriterState,
    zone_id: ZoneId,
    jobs: &[Job],
) -> Result<Committed, CommitError> {
    let mut conn = match writer.conn.take() {
        Some(conn) => conn,
        None => ctx.pool.acquire().await?,
    };
    match try_commit(ctx, &mut conn, &mut writer.board, zone_id, jobs).await {
        Ok(committed) => {
            writer.conn = Some(conn);
            Ok(committed)
        }
        Err(e) => {
            writer.board = None;
            Err(e)
        }
    }
}

/// Answers every request of a batch (of `kind` requests) that did not commit.
pub(super) fn answer_failure(
    zone_id: ZoneId,
    kind: &'static str,
    replies: impl ExactSizeIterator<Item = oneshot::Sender<Result<Reply, ApiError>>>,
    e: &CommitError,
) {
    // Transient: the client should retry (with the same key), not report a bug.
    let unavailable = match e {
        CommitError::Retry(_) => true,
        CommitError::Database(d) => is_unavailable(d),
        CommitError::Failed(ApiError::Client { code, .. }) => *code == ErrorCode::Unavailable,
        CommitError::Invariant(_) | CommitError::Seats { .. } | CommitError::Failed(_) => false,
    };
    tracing::error!(%zone_id, error = %e, kind, requests = replies.len(), "batch failed");
    for reply in replies {
        let err = if unavailable {
            ApiError::database_unavailable()
        } else {
            ApiError::Unexpected(anyhow::anyhow!("{kind} batch failed"))
        };
        let _ = reply.send(Err(err));
    }
}

/// The zone row, locked, with what the rules need from its show and event.
#[derive(sqlx::FromRow)]
struct LockedZone {
    event_id: Uuid,
    price_minor: i64,
    currency: Currency,
    seating: SeatingKind,
    /// The counters before this batch (`show_id`, `available`, `held`, `sold`, `version`).
    #[sqlx(flatten)]
    counters: Counters,
    min_per_order: i32,
    max_per_order: i32,
    sale_starts_at: Option<DateTime<Utc>>,
    sale_ends_at: Option<DateTime<Utc>>,
    event_status: EventStatus,
    booking_opens_at: Option<DateTime<Utc>>,
    booking_closes_at: Option<DateTime<Utc>>,
    max_tickets_per_customer: Option<i32>,
    /// Whether the event's on-sale is queued: every hold needs an admission pass.
    queued: bool,
    now: DateTime<Utc>,
}

impl LockedZone {
    /// Locks `zone_id`'s row until commit and reads it with its show and event.
    async fn lock(conn: &mut PgConnection, zone_id: ZoneId) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "select z.show_id, s.event_id, z.price_minor, z.currency, z.seating,
                    z.available, z.held, z.sold, z.version,
                    z.min_per_order, z.max_per_order, s.sale_starts_at, s.sale_ends_at,
                    e.status as event_status, e.booking_opens_at, e.booking_closes_at,
                    e.max_tickets_per_customer, now() as now,
                    exists(select 1 from event_queues q where q.event_id = e.id and q.enabled) as queued
             from zones z join shows s on s.id = z.show_id join events e on e.id = s.event_id
             where z.id = $1
             for update of z",
        )
        .bind(zone_id.as_uuid())
        .fetch_optional(conn)
        .await
    }

    fn show_id(&self) -> Uuid {
        self.counters.show_id
    }

    fn hold_context(&self) -> HoldContext {
        HoldContext {
            event_status: self.event_status,
            booking_opens_at: self.booking_opens_at,
            booking_closes_at: self.booking_closes_at,
            sale_starts_at: self.sale_starts_at,
            sale_ends_at: self.sale_ends_at,
            min_per_order: self.min_per_order,
            max_per_order: self.max_per_order,
            assigned_seating: self.seating == SeatingKind::Assigned,
        }
    }

    fn snapshot(&self) -> ZoneSnapshot {
        ZoneSnapshot {
            show_id: self.show_id(),
            rules: self.hold_context(),
            max_tickets_per_customer: self.max_tickets_per_customer,
            now: self.now,
        }
    }
}

/// What the arrival-order allocation needs to know about the locked zone.
struct ZoneSnapshot {
    show_id: Uuid,
    rules: HoldContext,
    max_tickets_per_customer: Option<i32>,
    now: DateTime<Utc>,
}

/// What a batch's grants come out of: a general-admission zone's count, or an assigned
/// zone's free seats.
enum Stock {
    Count(i32),
    Seats(Board),
}

impl Stock {
    /// Takes what `hold` asks for, or refuses it; the seats taken (none by count).
    fn take(&mut self, hold: &NewHold) -> Result<Vec<i32>, Rejection> {
        match (self, &hold.pick) {
            (Self::Count(available), _) => {
                check_stock(*available, hold.quantity)?;
                *available -= hold.quantity;
                Ok(Vec::new())
            }
            (Self::Seats(board), SeatPick::Seats(seats)) => board
                .take(seats)
                .map(|()| seats.clone())
                .map_err(Rejection::seats_unavailable),
            (Self::Seats(board), _) => match board.take_best(hold.quantity) {
                Some(seats) => Ok(seats),
                None => {
                    // Sold out, or too few seats at all; else none side by side.
                    let free = i32::try_from(board.free_count()).unwrap_or(i32::MAX);
                    check_stock(free, hold.quantity)?;
                    Err(Rejection::new(
                        ErrorCode::InsufficientStock,
                        format!(
                            "no {} seats side by side are left in one row",
                            hold.quantity
                        ),
                    ))
                }
            },
        }
    }
}

/// Decides a batch in arrival order: each request is granted if it passes the shared hold
/// rules and the customer's limit (counting what this batch already granted them) and
/// fits in the stock the earlier ones left. A request too large for what is left is
/// refused and a later, smaller one can still be served — exactly what one transaction per
/// request would have done in the same order. `live_per_customer` is updated in place, and
/// only when the event has a limit (without one there is nothing to count against).
fn allocate<'a>(
    zone: &ZoneSnapshot,
    stock: &mut Stock,
    requests: impl Iterator<Item = &'a NewHold>,
    live_per_customer: &mut HashMap<String, i64>,
) -> Vec<Result<Vec<i32>, Rejection>> {
    requests
        .map(|hold| {
            if hold.show_id.as_uuid() != zone.show_id {
                return Err(zone_not_in_show());
            }
            check_hold(&zone.rules, hold.quantity, &hold.pick, zone.now)?;
            let live = match zone.max_tickets_per_customer {
                Some(max) => {
                    let live = live_per_customer
                        .entry(hold.customer_id.as_str().to_owned())
                        .or_insert(0);
                    check_customer_limit(*live, hold.quantity, Some(max))?;
                    Some(live)
                }
                None => None,
            };
            let seats = stock.take(hold)?;
            if let Some(live) = live {
                *live += i64::from(hold.quantity);
            }
            Ok(seats)
        })
        .collect()
}

/// What one batch transaction produced.
struct Committed {
    /// One reply per job, in the jobs' order.
    replies: Vec<Reply>,
    /// Whether the zone exists (a writer for a missing zone retires at once).
    zone_found: bool,
}

/// One transaction: lock the zone, replay known keys, decide the rest, write the grants
/// and the outbox row, store refusals, commit; then answer in-batch duplicates of a key.
async fn try_commit(
    ctx: &CommitContext,
    conn: &mut PgConnection,
    board: &mut Option<CachedBoard>,
    zone_id: ZoneId,
    jobs: &[Job],
) -> Result<Committed, CommitError> {
    let mut tx = conn.begin().await?;
    let zone = LockedZone::lock(&mut tx, zone_id).await?;
    let mut replies: Vec<Option<Reply>> = vec![None; jobs.len()];
    let (fresh, duplicates) = replay_stored(&mut tx, jobs, &mut replies).await?;
    if !fresh.is_empty() {
        match &zone {
            Some(zone) => {
                let batch = Batch {
                    zone_id,
                    zone,
                    jobs,
                    fresh: &fresh,
                };
                decide(&mut tx, ctx, &batch, board, &mut replies).await?;
            }
            None => {
                let missing = Reply::problem(
                    &Problem::new(ErrorCode::NotFound).with_detail("zone not found"),
                );
                for &i in &fresh {
                    replies[i] = Some(missing.clone());
                }
            }
        }
        store_refusals(&mut tx, jobs, &fresh, &replies).await?;
    }
    tx.commit().await?;
    answer_duplicates(jobs, &duplicates, &mut replies);
    let replies = replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Reply::problem(&Problem::new(ErrorCode::Internal))))
        .collect();
    Ok(Committed {
        replies,
        zone_found: zone.is_some(),
    })
}

/// Stores the refusals among the fresh requests' replies for replay. Granted holds are
/// their own record (found by key in `holds`).
async fn store_refusals(
    conn: &mut PgConnection,
    jobs: &[Job],
    fresh: &[usize],
    replies: &[Option<Reply>],
) -> Result<(), CommitError> {
    let records: Vec<NewRecord<'_>> = fresh
        .iter()
        .filter_map(|&i| {
            // Pass refusals (403) are not stored: they decide nothing about stock, and a
            // retry with the same key once admitted must be decided afresh.
            let reply = replies[i]
                .as_ref()
                .filter(|r| r.status != CREATED && r.status != FORBIDDEN)?;
            Some(NewRecord {
                scope: HOLD_SCOPE,
                key: &jobs[i].key,
                request_sha256: &jobs[i].request_sha256,
                reply,
            })
        })
        .collect();
    if idempotency::store(conn, &records).await? < records.len() {
        return Err(CommitError::Retry("idempotency key stored concurrently"));
    }
    Ok(())
}

/// A key sent twice in one batch: the later copy gets the first's reply (replayed), or
/// the 422 conflict if its body differs.
fn answer_duplicates(jobs: &[Job], duplicates: &[(usize, usize)], replies: &mut [Option<Reply>]) {
    for &(i, first) in duplicates {
        let same_request = jobs[i].request_sha256 == jobs[first].request_sha256;
        replies[i] = match (&replies[first], same_request) {
            (Some(reply), true) => Some(Reply {
                replayed: true,
                ..reply.clone()
            }),
            _ => Some(Reply::conflict()),
        };
    }
}

const CREATED: u16 = 201;
const FORBIDDEN: u16 = 403;

/// A hold found by the key that created it: the first result of that request.
#[derive(sqlx::FromRow)]
struct KeyedHold {
    idempotency_key: String,
    request_sha256: Vec<u8>,
    #[sqlx(flatten)]
    core: StoredHold,
}

impl KeyedHold {
    /// The 201 the first request got (status `held`, whatever happened since), or the 422
    /// conflict if this request differs.
    fn replay_for(&self, request_sha256: &[u8]) -> Reply {
        if self.request_sha256 != request_sha256 {
            return Reply::conflict();
        }
        match self.core.view(HoldStatus::Held) {
            Ok(view) => Reply {
                replayed: true,
                ..Reply::ok(axum::http::StatusCode::CREATED, &view)
            },
            Err(e) => {
                tracing::error!(error = %e, "stored hold cannot be replayed");
                Reply::problem(&Problem::new(ErrorCode::Internal))
            }
        }
    }
}

/// [`used_keys`]: `$1` the batch's keys, `$2` [`HOLD_SCOPE`]. One index probe per key (a
/// `lateral` join with `limit 1`), so that even the generic plan PostgreSQL caches for a
/// prepared statement, made while the tables are still empty, stays a nested loop over
/// the unique indexes: `key = any($1)` would be cached as a sequential scan that stays in
/// use as the tables grow (see `idempotency::lookup`).
pub const USED_KEYS_SQL: &str = "select k.key from unnest($1::text[]) as k(key),
     lateral (select 1 from holds h where h.idempotency_key = k.key
              union all
              select 1 from idempotency i where i.scope = $2 and i.key = k.key
              limit 1) as used";

/// Which of `keys` were used before, as a granted hold or a stored refusal: one prepared
/// statement that finds none in the common case, so a batch fetches stored results only
/// for the keys that have one.
async fn used_keys(conn: &mut PgConnection, keys: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(USED_KEYS_SQL)
        .bind(keys)
        .bind(HOLD_SCOPE)
        .fetch_all(conn)
        .await
}

/// Granted holds with any of `keys` (planned per call, as `idempotency::lookup`).
async fn keyed_holds(
    conn: &mut PgConnection,
    keys: &[&str],
) -> Result<Vec<KeyedHold>, sqlx::Error> {
    sqlx::query_as(
        "select idempotency_key, request_sha256, id, zone_id, show_id, customer_id, quantity,
                unit_price_minor, currency, created_at, expires_at, seat_indexes
         from holds where idempotency_key = any($1)",
    )
    .bind(keys)
    .persistent(false)
    .fetch_all(conn)
    .await
}

/// Fills in replies for keys already used: granted holds (in `holds`) and refusals (in
/// `idempotency`). Returns the indexes to decide now (first use of each key) and the later
/// duplicates of a key within this batch, paired with the first.
async fn replay_stored(
    conn: &mut PgConnection,
    jobs: &[Job],
    replies: &mut [Option<Reply>],
) -> Result<(Vec<usize>, Vec<(usize, usize)>), sqlx::Error> {
    let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
    let used = used_keys(conn, &keys).await?;
    let (held, refused) = if used.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let used: Vec<&str> = used.iter().map(String::as_str).collect();
        (
            keyed_holds(conn, &used).await?,
            idempotency::lookup(conn, HOLD_SCOPE, &used).await?,
        )
    };
    let held: HashMap<&str, &KeyedHold> = held
        .iter()
        .map(|h| (h.idempotency_key.as_str(), h))
        .collect();
    let refused: HashMap<&str, &idempotency::Stored> =
        refused.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut first_of_key: HashMap<&str, usize> = HashMap::with_capacity(jobs.len());
    let (mut fresh, mut duplicates) = (Vec::with_capacity(jobs.len()), Vec::new());
    for (i, job) in jobs.iter().enumerate() {
        let key = job.key.as_str();
        if let Some(hold) = held.get(key) {
            replies[i] = Some(hold.replay_for(&job.request_sha256));
        } else if let Some(found) = refused.get(key) {
            replies[i] = Some(found.replay_for(&job.request_sha256));
        } else if let Some(&first) = first_of_key.get(key) {
            duplicates.push((i, first));
        } else {
            first_of_key.insert(key, i);
            fresh.push(i);
        }
    }
    Ok((fresh, duplicates))
}

/// A batch's requests to decide now, against the locked zone.
struct Batch<'a> {
    zone_id: ZoneId,
    zone: &'a LockedZone,
    jobs: &'a [Job],
    /// Indexes into `jobs` of the first use of each key not seen before.
    fresh: &'a [usize],
}

impl Batch<'_> {
    fn requests(&self) -> impl Iterator<Item = &NewHold> {
        self.fresh.iter().map(|&i| &self.jobs[i].hold)
    }
}

/// The holds a batch grants, as the columns (arrays) of one insert, and their seats as
/// the columns of one update.
struct Grants<'a> {
    ids: Vec<Uuid>,
    customers: Vec<&'a str>,
    quantities: Vec<i32>,
    keys: Vec<&'a str>,
    hashes: Vec<&'a [u8]>,
    /// The admission pass each hold was placed with (queued on-sales).
    passes: Vec<Option<Uuid>>,
    /// Each hold's seats as an array literal (`{3,4}`), `None` for general admission: an
    /// array of arrays cannot be unnested row by row, and gathering each hold's seats from
    /// `seats` in the statement would scan them once per hold under the zone's lock.
    seat_lists: Vec<Option<String>>,
    /// Every granted seat, and the hold it goes to.
    seats: Vec<i32>,
    seat_holds: Vec<Uuid>,
}

impl<'a> Grants<'a> {
    fn with_capacity(holds: usize) -> Self {
        Self {
            ids: Vec::with_capacity(holds),
            customers: Vec::with_capacity(holds),
            quantities: Vec::with_capacity(holds),
            keys: Vec::with_capacity(holds),
            hashes: Vec::with_capacity(holds),
            passes: Vec::with_capacity(holds),
            seat_lists: Vec::with_capacity(holds),
            seats: Vec::new(),
            seat_holds: Vec::new(),
        }
    }

    /// Records the grant of `job` (with `seats`, for a seat hold) and returns its 201.
    fn grant(
        &mut self,
        batch: &Batch<'_>,
        job: &'a Job,
        seats: Vec<i32>,
        expires_at: DateTime<Utc>,
        pass_id: Option<Uuid>,
    ) -> Reply {
        let hold_id = Uuid::now_v7();
        self.passes.push(pass_id);
        self.ids.push(hold_id);
        self.customers.push(job.hold.customer_id.as_str());
        self.quantities.push(job.hold.quantity);
        self.keys.push(job.key.as_str());
        self.hashes.push(job.request_sha256.as_slice());
        self.seat_lists.push(array_literal(&seats));
        self.seats.extend(&seats);
        self.seat_holds
            .extend(std::iter::repeat_n(hold_id, seats.len()));
        let view = HoldView {
            hold_id: HoldId(hold_id),
            status: HoldStatus::Held,
            show_id: ShowId(batch.zone.show_id()),
            zone_id: batch.zone_id,
            customer_id: job.hold.customer_id.clone(),
            quantity: job.hold.quantity,
            seats,
            unit_price_minor: batch.zone.price_minor,
            currency: batch.zone.currency,
            created_at: batch.zone.now,
            expires_at,
        };
        Reply::ok(axum::http::StatusCode::CREATED, &view)
    }

    /// Tickets granted in total (at most the zone's `available`, an `i32`).
    fn quantity(&self) -> i32 {
        self.quantities.iter().sum()
    }
}

/// `{3,4}`, or `None` for no seats.
fn array_literal(seats: &[i32]) -> Option<String> {
    if seats.is_empty() {
        return None;
    }
    let items: Vec<String> = seats.iter().map(i32::to_string).collect();
    Some(format!("{{{}}}", items.join(",")))
}

fn refusal(rejection: Rejection) -> Reply {
    metrics::counter!("holds_rejected_total", "code" => rejection.code.as_str()).increment(1);
    Reply::problem(&rejection.problem())
}

/// Decides each fresh request in arrival order and, if any is granted, writes the grants
/// and the outbox row.
async fn decide(
    conn: &mut PgConnection,
    ctx: &CommitContext,
    batch: &Batch<'_>,
    cached: &mut Option<CachedBoard>,
    replies: &mut [Option<Reply>],
) -> Result<(), CommitError> {
    let mut live_per_customer = match batch.zone.max_tickets_per_customer {
        Some(_) => {
            let customers = batch.requests().map(|hold| &hold.customer_id);
            lock_and_count_customers(conn, EventId(batch.zone.event_id), customers).await?
        }
        None => HashMap::new(),
    };
    // `HoldTtl` is at most a day, so this cannot leave chrono's range.
    let expires_at = batch.zone.now + ctx.hold_ttl.as_delta();
    let mut stock = match batch.zone.seating {
        SeatingKind::GeneralAdmission => Stock::Count(batch.zone.counters.available),
        SeatingKind::Assigned => Stock::Seats(seat_board(conn, batch, cached).await?),
    };
    let passes = admit_passes(conn, ctx, batch).await?;
    let verdicts = allocate_admitted(batch, passes, &mut stock, &mut live_per_customer);
    let mut grants = Grants::with_capacity(batch.fresh.len());
    for (&i, verdict) in batch.fresh.iter().zip(verdicts) {
        replies[i] = Some(match verdict {
            Ok((seats, pass_id)) => grants.grant(batch, &batch.jobs[i], seats, expires_at, pass_id),
            Err(rejection) => refusal(rejection),
        });
    }
    if grants.ids.is_empty() {
        keep_board(cached, stock, batch.zone.counters.version);
        return Ok(());
    }
    let granted = grants.quantity();
    let before = batch.zone.counters;
    let expected = Movement::Hold.apply(&before, granted);
    let breach = |found| InvariantBreach {
        zone_id: batch.zone_id,
        granted,
        before,
        expected,
        found,
    };
    // Under our row lock nothing else can move the counters, so the outbox row can carry
    // what the update must leave; it is checked against what the update did leave.
    let Some(expected) = expected else {
        return Err(breach(before).into());
    };
    let written = write_grants(conn, batch, &grants, expires_at, &expected).await?;
    if written.counters != expected {
        return Err(breach(written.counters).into());
    }
    // Every granted seat was free under the lock, so each must have moved.
    if written.seated != grants.seats.len() as i64 {
        return Err(CommitError::Seats {
            zone_id: batch.zone_id,
            expected: grants.seats.len(),
            moved: u64::try_from(written.seated).unwrap_or(0),
        });
    }
    keep_board(cached, stock, expected.version);
    metrics::counter!("holds_created_total").increment(grants.ids.len() as u64);
    Ok(())
}

/// A granted request's seats (none by count) and the pass it was placed with.
type Admitted = (Vec<i32>, Option<Uuid>);

/// [`allocate`] over the fresh requests whose pass admitted them (all, unless the event is
/// queued), in arrival order: each request's seats and pass id, or its refusal.
fn allocate_admitted(
    batch: &Batch<'_>,
    passes: Vec<Result<Option<Uuid>, Rejection>>,
    stock: &mut Stock,
    live_per_customer: &mut HashMap<String, i64>,
) -> Vec<Result<Admitted, Rejection>> {
    let admitted = batch
        .fresh
        .iter()
        .zip(&passes)
        .filter(|(_, pass)| pass.is_ok())
        .map(|(&i, _)| &batch.jobs[i].hold);
    let mut allocated =
        allocate(&batch.zone.snapshot(), stock, admitted, live_per_customer).into_iter();
    passes
        .into_iter()
        .map(|pass| {
            let pass_id = pass?;
            let seats = allocated
                .next()
                .unwrap_or_else(|| Err(zone_not_in_show()))?;
            Ok((seats, pass_id))
        })
        .collect()
}

/// Each fresh request's admission pass (its id, `None` when the event is not queued) or
/// its refusal.
async fn admit_passes(
    conn: &mut PgConnection,
    ctx: &CommitContext,
    batch: &Batch<'_>,
) -> Result<Vec<Result<Option<Uuid>, Rejection>>, sqlx::Error> {
    if !batch.zone.queued {
        return Ok(vec![Ok(None); batch.fresh.len()]);
    }
    let jobs = batch.fresh.iter().map(|&i| &batch.jobs[i]);
    let admitted = super::passes::admit(
        conn,
        ctx.queue_keys.as_deref(),
        EventId(batch.zone.event_id),
        batch.zone.now,
        jobs,
    )
    .await?;
    Ok(admitted.into_iter().map(|r| r.map(Some)).collect())
}

/// The board a batch on an assigned zone decides on: the writer's own if the zone has not
/// changed since its last commit, else read under the lock ([`crate::seats::load_board`]).
async fn seat_board(
    conn: &mut PgConnection,
    batch: &Batch<'_>,
    cached: &mut Option<CachedBoard>,
) -> Result<Board, sqlx::Error> {
    match cached.take() {
        Some(c) if c.version == batch.zone.counters.version => Ok(c.board),
        _ => crate::seats::load_board(conn, batch.zone_id.as_uuid(), batch.requests()).await,
    }
}

/// Keeps a whole board for the writer's next batch, as of `version` (what this batch's
/// commit leaves, or the zone's if it granted nothing). A board of only the seats a batch
/// named is not kept.
fn keep_board(cached: &mut Option<CachedBoard>, stock: Stock, version: i64) {
    if let Stock::Seats(board) = stock {
        if board.is_whole() {
            *cached = Some(CachedBoard { version, board });
        }
    }
}

/// [`write_grants`]: `$1` the zone, `$2` the tickets granted, the holds as arrays, `$14`
/// the outbox payload, `$15` each hold's seats, `$16`–`$17` each granted seat and its
/// hold. (`outbox::enqueue` writes the same outbox row for the other movers.)
static WRITE_GRANTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with moved as (
             update zones set {} where id = $1
             returning show_id, available, held, sold, version
         ), granted as (
             insert into holds (id, zone_id, show_id, event_id, customer_id, quantity,
                                unit_price_minor, currency, created_at, expires_at,
                                idempotency_key, request_sha256, seat_indexes, pass_id)
             select t.id, $1, $3, $4, t.customer_id, t.quantity, $5, $6, $7, $8, t.key, t.sha,
                    t.seats::int4[], t.pass_id
             from unnest($9::uuid[], $10::text[], $11::int4[], $12::text[], $13::bytea[],
                         $15::text[], $18::uuid[])
                  as t(id, customer_id, quantity, key, sha, seats, pass_id)
         ), seated as (
             update seats s set status = 'held', hold_id = t.hold_id
             from unnest($16::int4[], $17::uuid[]) as t(seat_index, hold_id)
             where s.zone_id = $1 and s.seat_index = t.seat_index and s.status = 'available'
             returning 1
         ), announced as (
             insert into outbox (payload) values ($14)
         )
         select show_id, available, held, sold, version,
                (select count(*) from seated) as seated
         from moved",
        Movement::Hold.assignments()
    )
});

/// Moves the granted tickets, writes the holds from one set of arrays and the outbox row
/// announcing `expected` — one statement, one round trip — and returns the counters the
/// update left.
async fn write_grants(
    conn: &mut PgConnection,
    batch: &Batch<'_>,
    grants: &Grants<'_>,
    expires_at: DateTime<Utc>,
    expected: &Counters,
) -> Result<Written, sqlx::Error> {
    sqlx::query_as(WRITE_GRANTS_SQL.as_str())
        .bind(batch.zone_id.as_uuid())
        .bind(grants.quantity())
        .bind(batch.zone.show_id())
        .bind(batch.zone.event_id)
        .bind(batch.zone.price_minor)
        .bind(batch.zone.currency)
        .bind(batch.zone.now)
        .bind(expires_at)
        .bind(&grants.ids)
        .bind(&grants.customers)
        .bind(&grants.quantities)
        .bind(&grants.keys)
        .bind(&grants.hashes)
        .bind(sqlx::types::Json(expected.change_with_seats(
            batch.zone_id,
            &grants.seats,
            SeatStatus::Held,
        )))
        .bind(&grants.seat_lists)
        .bind(&grants.seats)
        .bind(&grants.seat_holds)
        .bind(&grants.passes)
        .fetch_one(conn)
        .await
}

/// What [`write_grants`] left: the zone's counters and the seats it marked held.
#[derive(sqlx::FromRow)]
struct Written {
    #[sqlx(flatten)]
    counters: Counters,
    seated: i64,
}

/// Serialises concurrent holds of the same customers for this event (in any zone) until
/// commit, then counts their live tickets. Locks are taken in key order, and only while
/// holding a single zone lock, so two batches cannot deadlock on them.
async fn lock_and_count_customers<'a>(
    conn: &mut PgConnection,
    event_id: EventId,
    customers: impl Iterator<Item = &'a CustomerId>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let customers: BTreeMap<&str, i64> = customers
        .map(|c| (c.as_str(), customer_lock_key(event_id, c)))
        .collect();
    let mut lock_keys: Vec<i64> = customers.values().copied().collect();
    lock_keys.sort_unstable();
    lock_keys.dedup();
    // unnest preserves array order and the function scan evaluates row by row, so the
    // locks are taken in `lock_keys` order.
    sqlx::query("select pg_advisory_xact_lock(k) from unnest($1::bigint[]) as t(k)")
        .bind(&lock_keys)
        .execute(&mut *conn)
        .await?;
    let names: Vec<&str> = customers.keys().copied().collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(CUSTOMER_TICKETS_SQL)
        .bind(event_id.as_uuid())
        .bind(&names)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// [`lock_and_count_customers`]' count: `$1` the event, `$2` the batch's customers; the
/// live tickets of each customer who has any. One probe of `holds_customer_idx` per
/// customer (a `lateral` aggregate, which PostgreSQL cannot flatten into a scan). Written
/// as `customer_id = any($2)`, the planner — its statistics taken before the sale began,
/// as they are for its whole first minute (and for ever where autovacuum is off) — reads
/// every live hold of the event and filters the customers: each batch then costs as much
/// as the sale has sold (measured: 2.7 ms a batch at 41,000 holds, against 0.6 ms).
pub const CUSTOMER_TICKETS_SQL: &str =
    "select c.customer_id, live.tickets from unnest($2::text[]) as c(customer_id),
     lateral (select sum(quantity)::bigint as tickets from holds
              where event_id = $1 and customer_id = c.customer_id
                and status in ('held', 'confirmed')) as live
     where live.tickets is not null";

/// A 64-bit advisory lock key for (event, customer).
fn customer_lock_key(event_id: EventId, customer: &CustomerId) -> i64 {
    let digest = Sha256::new()
        .chain_update(event_id.as_uuid().as_bytes())
        .chain_update(customer.as_str())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CUSTOMERS: [&str; 4] = ["ann", "bob", "cy", "dee"];

    fn zone(max_per_customer: Option<i32>) -> ZoneSnapshot {
        ZoneSnapshot {
            show_id: Uuid::nil(),
            rules: HoldContext {
                event_status: EventStatus::Published,
                booking_opens_at: None,
                booking_closes_at: None,
                sale_starts_at: None,
                sale_ends_at: None,
                min_per_order: 1,
                max_per_order: 6,
                assigned_seating: false,
            },
            max_tickets_per_customer: max_per_customer,
            now: Utc::now(),
        }
    }

    fn hold(customer: usize, quantity: i32) -> NewHold {
        NewHold {
            show_id: ShowId(Uuid::nil()),
            zone_id: ZoneId(Uuid::nil()),
            quantity,
            customer_id: CustomerId::parse(CUSTOMERS[customer]).expect("valid id"),
            pick: SeatPick::Quantity,
        }
    }

    proptest! {
        /// Whatever arrives, a batch never grants more than the stock or a customer's limit,
        /// and it refuses for stock only what did not fit in what earlier requests left.
        #[test]
        fn allocation_never_oversells(
            available in 0..40i32,
            max_per_customer in proptest::option::of(1..12i32),
            requests in proptest::collection::vec((0..CUSTOMERS.len(), 0..9i32), 0..60),
        ) {
            let holds: Vec<NewHold> = requests.iter().map(|&(c, q)| hold(c, q)).collect();
            let mut live = HashMap::new();
            let mut stock = Stock::Count(available);
            let verdicts = allocate(&zone(max_per_customer), &mut stock, holds.iter(), &mut live);
            prop_assert_eq!(verdicts.len(), holds.len());

            let mut left = available;
            let mut per_customer: HashMap<&str, i64> = HashMap::new();
            for (hold, verdict) in holds.iter().zip(&verdicts) {
                let mine = per_customer.entry(hold.customer_id.as_str()).or_default();
                match verdict {
                    Ok(seats) => {
                        prop_assert!(seats.is_empty(), "no seats by quantity");
                        prop_assert!((1..=6).contains(&hold.quantity));
                        prop_assert!(hold.quantity <= left, "granted beyond the stock");
                        left -= hold.quantity;
                        *mine += i64::from(hold.quantity);
                        if let Some(max) = max_per_customer {
                            prop_assert!(*mine <= i64::from(max), "granted beyond the customer limit");
                        }
                    }
                    Err(r) if r.code == ErrorCode::SoldOut => prop_assert_eq!(left, 0),
                    Err(r) if r.code == ErrorCode::InsufficientStock => {
                        prop_assert!(left > 0 && left < hold.quantity)
                    }
                    Err(r) => prop_assert!(
                        matches!(r.code, ErrorCode::QuantityOutOfRange | ErrorCode::CustomerLimitExceeded),
                        "unexpected refusal {:?}", r.code
                    ),
                }
            }
            let granted: i64 = per_customer.values().sum();
            prop_assert_eq!(granted, i64::from(available - left));
            // Counted only against a limit.
            for (customer, tickets) in per_customer {
                let counted = live.get(customer).copied().unwrap_or(0);
                prop_assert_eq!(counted, if max_per_customer.is_some() { tickets } else { 0 });
            }
        }
    }

    #[test]
    fn a_smaller_later_request_takes_what_a_larger_one_could_not() {
        let holds = [hold(0, 3), hold(1, 1)];
        let verdicts = allocate(
            &zone(None),
            &mut Stock::Count(2),
            holds.iter(),
            &mut HashMap::new(),
        );
        let codes: Vec<_> = verdicts
            .iter()
            .map(|v| v.as_ref().err().map(|r| r.code))
            .collect();
        assert_eq!(codes, [Some(ErrorCode::InsufficientStock), None]);
    }
}
