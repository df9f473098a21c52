//! Startup: `Ledger::build` connects and binds, `run_until_stopped` serves until the
//! shutdown signal, then finishes in-flight requests and commits before returning.
//! Two listeners, each with its own connection bound and idle timeout ([`connections`]):
//! the public API (`LEDGER_ADDR`) and operations (`METRICS_ADDR`: `/metrics`, and
//! `/health`, so liveness answers even while idle clients fill the public bound). Request
//! bodies are read whole before a request counts as in flight ([`body`]). Tests bind port
//! 0 for both and pass their own pool and shutdown future.

mod body;
mod connections;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::{BoxError, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tessera_domain::settings::redact_url;
use tessera_domain::ErrorCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::ApiError;
use crate::health::RedisProbe;
use crate::holds::engine::HoldEngine;
use crate::holds::sweeper::Sweeper;
use crate::outbox::{OutboxWake, Relay};
use body::BodyLimits;
use connections::ConnectionLimits;

/// Connections open at once on the operations listener: a scraper and a few probes need
/// a handful; the bound keeps a misbehaving one from using the process's descriptors.
const OPERATIONS_CONNECTIONS_MAX: usize = 64;

/// What every handler can reach. axum clones the state for every request, so it is one
/// `Arc`: a clone is one reference count, not a copy of each part (the Redis client's
/// connection info alone is several heap strings).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub pool: PgPool,
    pub redis: redis::Client,
    /// Readiness's one shared Redis connection.
    pub redis_probe: RedisProbe,
    pub engine: HoldEngine,
    pub outbox_wake: OutboxWake,
    pub config: Arc<Config>,
    /// The guarded HTTP client webhooks are checked and sent with.
    pub egress: crate::webhooks::egress::Egress,
    /// Places in queues, handed out in batches.
    pub joins: crate::queue::joins::Joins,
}

pub struct Ledger {
    listener: TcpListener,
    /// The operations listener (`/metrics`), apart from the public one.
    metrics_listener: TcpListener,
    metrics: PrometheusHandle,
    state: AppState,
}

impl Ledger {
    /// Connects to PostgreSQL (creating and migrating the database if needed) and binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&config).await?;
        Self::build_with_pool(config, pool).await
    }

    /// Binds `config.addr` and `config.metrics_addr` with an already migrated pool.
    pub async fn build_with_pool(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("failed to bind LEDGER_ADDR {}", config.addr))?;
        let metrics_listener = TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("failed to bind METRICS_ADDR {}", config.metrics_addr))?;
        let redis = redis::Client::open(config.redis_url.as_str())
            .with_context(|| format!("invalid REDIS_URL {:?}", redact_url(&config.redis_url)))?;
        let outbox_wake = OutboxWake::default();
        let engine = HoldEngine::new(
            pool.clone(),
            config.holds.clone(),
            outbox_wake.clone(),
            config.queue.keys.clone(),
        );
        let egress = crate::webhooks::egress::Egress::new(
            config.webhooks.timeout,
            config.webhooks.allow_private_addresses,
        )
        .context("building the webhook HTTP client")?;
        let joins = crate::queue::joins::Joins::start(pool.clone(), &config.queue);
        let state = AppState(Arc::new(Shared {
            joins,
            pool,
            redis_probe: RedisProbe::new(redis.clone()),
            redis,
            engine,
            outbox_wake,
            config: Arc::new(config),
            egress,
        }));
        Ok(Self {
            listener,
            metrics_listener,
            metrics: crate::metrics::recorder()?,
            state,
        })
    }

    /// The public API's bound address (port 0 in tests becomes the real port).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The operations listener's bound address: `GET /metrics` is served there.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.metrics_listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then: stops accepting, lets in-flight requests
    /// (and the hold batches they wait for) finish, stops the relay, sweeper and
    /// operations listener after a last round, and returns: all within one
    /// `shutdown_grace` from the request.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            metrics_listener,
            metrics,
            state,
        } = self;
        let cancel = CancellationToken::new();
        let tasks = spawn_background(&state, metrics_listener, metrics, &cancel);
        let engine = state.engine.clone();
        let grace = state.config.shutdown_grace;
        let limits = ConnectionLimits {
            idle_timeout: state.config.idle_timeout,
            connections_max: state.config.connections_max.get(),
            listener: "public",
        };
        let deadline = serve_public(listener, router(state), limits, grace, shutdown).await?;
        // The writers commit what is queued (those requests were answered or abandoned);
        // then the relay and sweeper stop after a last round.
        if tokio::time::timeout_at(deadline, engine.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace elapsed with hold batches still committing");
        }
        cancel.cancel();
        if tokio::time::timeout_at(deadline, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace elapsed before the relay and sweeper stopped");
        }
        tracing::info!("ledger stopped");
        Ok(())
    }
}

/// The relay, the sweeper, metrics upkeep and the operations listener, until `cancel`.
fn spawn_background(
    state: &AppState,
    metrics_listener: TcpListener,
    metrics: PrometheusHandle,
    cancel: &CancellationToken,
) -> TaskTracker {
    let config = &state.config;
    let tasks = TaskTracker::new();
    tasks.spawn(
        Relay {
            pool: state.pool.clone(),
            redis: state.redis.clone(),
            config: config.outbox.clone(),
            wake: state.outbox_wake.clone(),
        }
        .run(cancel.clone()),
    );
    tasks.spawn(
        Sweeper {
            pool: state.pool.clone(),
            interval: config.holds.sweep_interval,
            batch_size_max: config.holds.sweep_batch_size_max,
            idempotency_retention: config.idempotency_retention,
            outbox_wake: state.outbox_wake.clone(),
        }
        .run(cancel.clone()),
    );
    tasks.spawn(
        crate::queue::advance::Advancer {
            pool: state.pool.clone(),
            tick: config.queue.tick,
            outbox_wake: state.outbox_wake.clone(),
        }
        .run(cancel.clone()),
    );
    if config.webhooks.dispatch {
        tasks.spawn(
            crate::webhooks::dispatcher::Dispatcher {
                pool: state.pool.clone(),
                egress: state.egress.clone(),
                config: config.webhooks.clone(),
            }
            .run(cancel.clone()),
        );
    }
    tasks.spawn(crate::metrics::upkeep(metrics.clone(), cancel.clone()));
    let operations =
        crate::metrics::router(metrics).route("/health", axum::routing::get(crate::health::live));
    let limits = ConnectionLimits {
        idle_timeout: config.idle_timeout,
        connections_max: OPERATIONS_CONNECTIONS_MAX,
        listener: "operations",
    };
    tasks.spawn(connections::serve(
        metrics_listener,
        operations,
        limits,
        cancel.clone().cancelled_owned(),
    ));
    tasks.close();
    tasks
}

/// Serves the public API until `shutdown`, then waits for in-flight requests until the
/// shutdown deadline (`grace` from the request), which it returns for the steps after.
async fn serve_public(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    grace: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::time::Instant> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
    let serve = connections::serve(listener, app, limits, async move {
        shutdown.await;
        // One deadline for the whole shutdown, from the moment it is requested.
        let _ = stopping_tx.send(tokio::time::Instant::now() + grace);
    });
    let mut serve = tokio::spawn(serve);
    Ok(tokio::select! {
        result = &mut serve => {
            result.context("server task failed")?;
            tokio::time::Instant::now() + grace
        }
        Ok(deadline) = stopping_rx => {
            match tokio::time::timeout_at(deadline, &mut serve).await {
                Ok(result) => result.context("server task failed")?,
                Err(_) => tracing::warn!("shutdown grace elapsed with requests still in flight"),
            }
            deadline
        }
    })
}

/// The whole HTTP surface with its middleware.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    Router::new()
        .merge(crate::catalog::router())
        .merge(crate::holds::router())
        .merge(crate::seats::router())
        .merge(crate::tickets::router())
        .merge(crate::organizers::router())
        .merge(crate::sales::router())
        .merge(crate::webhooks::router())
        .merge(crate::queue::router())
        .merge(crate::health::router())
        .merge(crate::openapi::router())
        .fallback(|| async { ApiError::client(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::client(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(middleware_error))
                .load_shed()
                // Global, not `concurrency_limit`: axum applies a layer to each route
                // separately, and a per-layer semaphore would allow the limit per route.
                .layer(GlobalConcurrencyLimitLayer::new(
                    config.requests_in_flight_max.get(),
                ))
                .timeout(config.request_timeout),
        )
        .layer(DefaultBodyLimit::max(config.request_body_max_bytes))
        // Outside the in-flight limit and the request timeout: the body arrives first.
        .layer(axum::middleware::from_fn_with_state(
            BodyLimits {
                max_bytes: config.request_body_max_bytes,
                read_timeout: config.body_read_timeout,
            },
            body::read_whole,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::origin::identify,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Errors from the tower layers above, as problem+json.
async fn middleware_error(error: BoxError) -> Response {
    use axum::response::IntoResponse;
    if error.is::<tower::timeout::error::Elapsed>() {
        // Shed like a full queue: the ledger is too busy to answer in time (what already
        // committed stays, and a retry with the same key replays it).
        ApiError::Overloaded("the request took too long; retry (holds are idempotent)")
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded("too many requests in flight")
    } else {
        ApiError::Unexpected(anyhow::anyhow!("middleware failed: {error}"))
    }
    .into_response()
}
