//! The hold engine: how hold and confirm requests reach the database.
//!
//! One hot zone during a flash sale is one hot row, and PostgreSQL holds a row lock
//! through each commit's fsync, so one transaction per hold (or per confirm: it moves the
//! zone's counters too) caps a zone at roughly one commit per fsync. Instead, requests for
//! a zone queue in-process and a writer task per zone commits everything waiting: the
//! holds in one transaction ([`super::commit`]), then the confirms in one
//! ([`super::confirm`]); while it commits, the next batch collects in the queue. Every
//! request still gets its own answer.
//!
//! Bounds: each zone's queue holds at most `zone_queue_depth_max` requests (past it a hold
//! is shed with 503 + `Retry-After` rather than queued without end; a confirm, already
//! paid for, commits alone), each batch at
//! most `batch_size_max`, and at most `zone_writers_max` zones have a writer at once (past
//! it a request commits alone, like the naive strategy: slower, never refused).
//!
//! Writers run on a thread of their own with their own pool ([`super::writer_thread`]), so
//! a writer resumes as soon as PostgreSQL answers instead of queueing behind request
//! tasks. A writer keeps its connection from one batch to the next while batches follow
//! back to back (at most `WRITER_CONNECTION_BATCHES_MAX` in a row, and only while no other
//! writer could be waiting for it), sparing each batch the pool's checkout and its
//! liveness round trip; an idle writer holds none.
//!
//! Several ledger processes may run at once: each batches its own requests and the zone's
//! row lock arbitrates between them, so they stay correct (one process batches best).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::PgPool;
use tessera_domain::holds::{Confirmation, NewHold};
use tessera_domain::queue::QueueKeys;
use tessera_domain::{HoldId, IdempotencyKey, ZoneId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::commit::{commit_batch, CommitContext, WriterState};
use super::confirm::{commit_confirms, ConfirmJob};
use super::writer_thread::WriterThread;
use crate::config::{HoldStrategy, HoldsConfig};
use crate::error::ApiError;
use crate::idempotency::Reply;
use crate::outbox::OutboxWake;

/// Batches a writer commits on one connection before giving it back to the pool: a hot
/// zone commits dozens of batches a second, so checkouts (and their pings) become rare,
/// and the pool still sees every connection again within seconds.
const WRITER_CONNECTION_BATCHES_MAX: u32 = 256;

/// One hold request waiting for its batch.
pub struct Job {
    pub hold: NewHold,
    pub key: IdempotencyKey,
    pub request_sha256: Vec<u8>,
    /// The `Tessera-Pass` header as sent (checked under the zone's lock when the event's
    /// on-sale is queued: `super::passes`).
    pub pass: Option<String>,
    pub reply: oneshot::Sender<Result<Reply, ApiError>>,
    pub enqueued_at: Instant,
}

/// What a zone's writer commits.
pub enum Work {
    Hold(Job),
    Confirm(ConfirmJob),
}

impl Work {
    fn zone_id(&self) -> ZoneId {
        match self {
            Self::Hold(job) => job.hold.zone_id,
            Self::Confirm(job) => job.zone_id,
        }
    }
}

#[derive(Clone)]
pub struct HoldEngine {
    inner: Arc<Inner>,
}

struct Inner {
    /// For holds committed by the request itself (naive, or past the writer cap).
    ctx: CommitContext,
    /// For the zone writers: on their thread's pool when it runs.
    writer_ctx: CommitContext,
    /// `None` for the naive strategy, or if the thread could not start (then writers run
    /// on the request runtime: slower, still correct).
    writer_thread: Option<WriterThread>,
    config: HoldsConfig,
    /// Senders of the live zone writers. A `std::sync::Mutex`: no `.await` while held, and
    /// every send happens under it, so a writer that finds its queue empty under the lock
    /// can retire without losing a request.
    writers: Mutex<HashMap<ZoneId, mpsc::Sender<Work>>>,
    tasks: TaskTracker,
}

impl HoldEngine {
    pub fn new(
        pool: PgPool,
        config: HoldsConfig,
        outbox_wake: OutboxWake,
        queue_keys: Option<QueueKeys>,
    ) -> Self {
        let writer_thread = match config.strategy {
            HoldStrategy::Naive => None,
            HoldStrategy::Batched => WriterThread::start(&pool)
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "hold writers run on the request runtime: no thread of their own");
                })
                .ok(),
        };
        let ctx = CommitContext {
            pool,
            hold_ttl: config.hold_ttl,
            outbox_wake,
            queue_keys: queue_keys.map(Arc::new),
        };
        let writer_ctx = match &writer_thread {
            Some(thread) => CommitContext {
                pool: thread.pool().clone(),
                ..ctx.clone()
            },
            None => ctx.clone(),
        };
        Self {
            inner: Arc::new(Inner {
                ctx,
                writer_ctx,
                writer_thread,
                config,
                writers: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Places a hold (or replays its stored result) and waits for the answer.
    pub async fn submit(
        &self,
        hold: NewHold,
        key: IdempotencyKey,
        request_sha256: Vec<u8>,
        pass: Option<String>,
    ) -> Result<Reply, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            hold,
            key,
            request_sha256,
            pass,
            reply,
            enqueued_at: Instant::now(),
        };
        self.dispatch(Work::Hold(job)).await?;
        answer
            .await
            .map_err(|_| ApiError::Unexpected(anyhow::anyhow!("hold writer dropped a request")))?
    }

    /// Confirms a hold of `zone_id` (or replays its stored result) and waits for the answer.
    pub async fn confirm(
        &self,
        hold_id: HoldId,
        zone_id: ZoneId,
        key: IdempotencyKey,
        confirmation: Confirmation<'_>,
    ) -> Result<Reply, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = ConfirmJob::new(hold_id, zone_id, key, confirmation, reply);
        self.dispatch(Work::Confirm(job)).await?;
        answer
            .await
            .map_err(|_| ApiError::Unexpected(anyhow::anyhow!("zone writer dropped a confirm")))?
    }

    /// Hands `work` to its zone's writer, or commits it alone (naive, or past the writer
    /// cap: still correct, just unbatched).
    async fn dispatch(&self, work: Work) -> Result<(), ApiError> {
        match self.inner.config.strategy {
            HoldStrategy::Naive => self.commit_alone(work).await,
            HoldStrategy::Batched => {
                if let Some(work) = self.enqueue(work)? {
                    metrics::counter!("holds_unbatched_total").increment(1);
                    self.commit_alone(work).await;
                }
            }
        }
        Ok(())
    }

    /// Queues `work` for its zone's writer, starting one if needed. Gives the work back
    /// when all `zone_writers_max` writer slots are taken, or a confirm when its zone's
    /// queue is full.
    fn enqueue(&self, work: Work) -> Result<Option<Work>, ApiError> {
        let zone_id = work.zone_id();
        let mut writers = self.inner.writers.lock().unwrap_or_else(|p| p.into_inner());
        let work = match writers.get(&zone_id) {
            Some(sender) => match sender.try_send(work) {
                Ok(()) => {
                    metrics::gauge!("hold_zone_queued").increment(1.0);
                    return Ok(None);
                }
                // A confirm is paid for: past the bound it commits alone, never shed.
                Err(mpsc::error::TrySendError::Full(work @ Work::Confirm(_))) => {
                    return Ok(Some(work));
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("holds_shed_total", "reason" => "zone_queue_full")
                        .increment(1);
                    return Err(ApiError::Overloaded(
                        "too many requests waiting for this zone",
                    ));
                }
                // The writer retired between our lookup and now: start a new one.
                Err(mpsc::error::TrySendError::Closed(work)) => work,
            },
            None => work,
        };
        if writers.len() >= self.inner.config.zone_writers_max {
            return Ok(Some(work));
        }
        let (sender, receiver) = mpsc::channel(self.inner.config.zone_queue_depth_max.get());
        // A fresh channel has room for one job.
        if sender.try_send(work).is_err() {
            return Err(ApiError::Overloaded("zone queue unavailable"));
        }
        metrics::gauge!("hold_zone_queued").increment(1.0);
        writers.insert(zone_id, sender);
        metrics::gauge!("hold_zone_writers").set(writers.len() as f64);
        let engine = self.clone();
        let writer = self
            .inner
            .tasks
            .track_future(async move { engine.write_zone(zone_id, receiver).await });
        match &self.inner.writer_thread {
            Some(thread) => thread.handle().spawn(writer),
            None => tokio::spawn(writer),
        };
        Ok(None)
    }

    /// Commits one request in a transaction of its own, on the request's task.
    async fn commit_alone(&self, work: Work) {
        let zone_id = work.zone_id();
        let mut alone = WriterState::default();
        match work {
            Work::Hold(job) => {
                commit_batch(&self.inner.ctx, &mut alone, zone_id, vec![job]).await;
            }
            Work::Confirm(job) => {
                commit_confirms(&self.inner.ctx, &mut alone, zone_id, vec![job]).await;
            }
        }
    }

    /// A zone's writer: commit whatever is waiting, one batch at a time, until idle.
    async fn write_zone(self, zone_id: ZoneId, mut receiver: mpsc::Receiver<Work>) {
        let config = &self.inner.config;
        let mut writer = WriterState::default();
        let mut batches_on_conn = 0;
        loop {
            let first = match tokio::time::timeout(config.zone_writer_idle, receiver.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_idle) => {
                    if self.retire_if_idle(zone_id, &receiver) {
                        break;
                    }
                    continue;
                }
            };
            let batch_size_max = config.batch_size_max.get();
            let mut batch = Vec::with_capacity(batch_size_max.min(receiver.len() + 1));
            batch.push(first);
            while batch.len() < batch_size_max {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            metrics::gauge!("hold_zone_queued").decrement(batch.len() as f64);
            let zone_found = self.commit_work(&mut writer, zone_id, batch).await;
            batches_on_conn += 1;
            if !self.keep_connection(&receiver, batches_on_conn) {
                writer.conn = None;
                batches_on_conn = 0;
            }
            // Requests for a zone that does not exist must not pin a writer slot.
            if !zone_found && self.retire_if_idle(zone_id, &receiver) {
                break;
            }
        }
    }

    /// Commits a batch taken from a zone's queue: its holds, then its confirms. Returns
    /// `false` if the zone does not exist.
    async fn commit_work(
        &self,
        writer: &mut WriterState,
        zone_id: ZoneId,
        batch: Vec<Work>,
    ) -> bool {
        let ctx = &self.inner.writer_ctx;
        let (mut holds, mut confirms) = (Vec::new(), Vec::new());
        for work in batch {
            match work {
                Work::Hold(job) => holds.push(job),
                Work::Confirm(job) => confirms.push(job),
            }
        }
        let mut zone_found = true;
        if !holds.is_empty() {
            zone_found = commit_batch(ctx, writer, zone_id, holds).await;
        }
        if !confirms.is_empty() {
            commit_confirms(ctx, writer, zone_id, confirms).await;
        }
        zone_found
    }

    /// Whether the writer keeps its connection for the next batch: only if that batch is
    /// already waiting, the connection has not served its quota, and no other writer can
    /// be waiting for it (the pool has an idle connection or room to open one).
    fn keep_connection(&self, receiver: &mpsc::Receiver<Work>, batches_on_conn: u32) -> bool {
        let pool = &self.inner.writer_ctx.pool;
        let pool_has_room =
            pool.num_idle() > 0 || pool.size() < pool.options().get_max_connections();
        !receiver.is_empty() && batches_on_conn < WRITER_CONNECTION_BATCHES_MAX && pool_has_room
    }

    fn retire_if_idle(&self, zone_id: ZoneId, receiver: &mpsc::Receiver<Work>) -> bool {
        let mut writers = self.inner.writers.lock().unwrap_or_else(|p| p.into_inner());
        if !receiver.is_empty() {
            return false;
        }
        writers.remove(&zone_id);
        metrics::gauge!("hold_zone_writers").set(writers.len() as f64);
        true
    }

    /// Stops accepting work, lets every writer commit what it has queued, and waits.
    pub async fn shutdown(&self) {
        self.inner
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        if let Some(thread) = &self.inner.writer_thread {
            thread.pool().close().await;
        }
    }
}
