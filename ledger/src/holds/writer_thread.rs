//! The zone writers' own thread. A hot zone sells as fast as its writer's batch cycle,
//! and that cycle is a handful of round trips to PostgreSQL. On the request runtime a
//! writer resumes after each answer only once a worker busy with request tasks polls the
//! I/O driver and reaches it in its queue, and a batch's answers wake dozens of those
//! tasks at once. Here the writers run on a single-threaded runtime of their own, on
//! connections whose I/O that runtime drives (its own pool: a connection's socket belongs
//! to the runtime that opened it). Measured in one run at 128 clients: a batch of ~60
//! holds took 19.5 ms on the request runtime and 14.8 ms here.
//!
//! One thread: a writer spends its batch waiting on PostgreSQL, its own work is a few µs a
//! hold, and the machines this runs on have few cores to spare from request handling.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How the writers' connections show in `pg_stat_activity`.
pub const WRITER_APPLICATION_NAME: &str = "tessera-hold-writers";

/// How the writers' connections differ from the request pool's: their name, and no
/// sequential scan where an index can answer. PostgreSQL caches a generic plan for a
/// prepared statement after a few executions, and one made while `holds` was small (a
/// fresh database, analyzed empty) would scan the whole table on every batch once it has
/// grown (measured: the bench's scale scenario sold a third less). The same holds for the
/// foreign-key checks of the rows a batch inserts, which PostgreSQL runs as prepared
/// statements of its own: a ticket's check on its hold, cached while the sale was young,
/// would read every hold. Every statement a writer runs is an index probe or a scan of
/// its batch's arrays, so forbidding the sequential scan keeps each cached plan right as
/// the tables grow. (Planning every execution instead, `force_custom_plan`, plans those
/// checks once per inserted row too: ~12 µs a row, measured with pgbench.)
pub fn writer_connect_options(request_pool: &PgConnectOptions) -> PgConnectOptions {
    request_pool
        .clone()
        .application_name(WRITER_APPLICATION_NAME)
        .options([("enable_seqscan", "off")])
}

/// A batch waits at most this long for a writer connection before failing with 503 (as
/// the request pool's checkout).
const WRITER_POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The writers' runtime and connection pool. Dropping it stops the thread (writers still
/// running are dropped with it; [`super::engine::HoldEngine::shutdown`] lets them finish
/// first).
pub struct WriterThread {
    handle: Handle,
    pool: PgPool,
    /// Dropped with the engine: ends the thread's `block_on`.
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    /// Starts the thread, and a pool to the request pool's database with as many
    /// connections at most (opened on demand by the writers).
    pub fn start(request_pool: &PgPool) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("hold-writers".to_owned())
            .spawn(move || {
                // Runs the writers until the engine is dropped.
                let _ = runtime.block_on(stopped);
            })?;
        // Inside the writers' runtime, so the pool's own tasks (and every connection the
        // writers open) belong to it.
        let pool = {
            let _enter = handle.enter();
            PgPoolOptions::new()
                .max_connections(request_pool.options().get_max_connections())
                .acquire_timeout(WRITER_POOL_ACQUIRE_TIMEOUT)
                .connect_lazy_with(writer_connect_options(&request_pool.connect_options()))
        };
        Ok(Self {
            handle,
            pool,
            _stop: stop,
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
