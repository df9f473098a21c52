//! Startup: `Ledger::build` connects and binds, `run_until_stopped` serves until the
//! shutdown signal, then finishes in-flight requests and commits before returning.
//! Tests bind port 0 and pass their own pool and shutdown future.

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
use tessera_domain::ErrorCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::ApiError;
use crate::holds::engine::HoldEngine;
use crate::holds::sweeper::Sweeper;
use crate::outbox::{OutboxWake, Relay};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub redis: redis::Client,
    pub engine: HoldEngine,
    pub outbox_wake: OutboxWake,
    pub metrics: PrometheusHandle,
    pub config: Arc<Config>,
}

pub struct Ledger {
    listener: TcpListener,
    state: AppState,
}

impl Ledger {
    /// Connects to PostgreSQL (creating and migrating the database if needed) and binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&config).await?;
        Self::build_with_pool(config, pool).await
    }

    /// Binds `config.addr` with an already migrated pool.
    pub async fn build_with_pool(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("failed to bind {}", config.addr))?;
        let redis = redis::Client::open(config.redis_url.as_str())
            .with_context(|| format!("invalid REDIS_URL {:?}", config.redis_url))?;
        let outbox_wake = OutboxWake::default();
        let engine = HoldEngine::new(pool.clone(), config.holds.clone(), outbox_wake.clone());
        let metrics = crate::metrics::recorder()?;
        let state = AppState {
            pool,
            redis,
            engine,
            outbox_wake,
            metrics,
            config: Arc::new(config),
        };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then: stops accepting, lets in-flight requests
    /// (and the hold batches they wait for) finish, stops the relay and sweeper after a
    /// last round, and returns: all within one `shutdown_grace` from the request.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        let config = state.config.clone();
        let cancel = CancellationToken::new();
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
        tasks.spawn(crate::metrics::upkeep(
            state.metrics.clone(),
            cancel.clone(),
        ));
        tasks.close();

        let engine = state.engine.clone();
        let app = router(state);
        let grace = config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            // One deadline for the whole shutdown, from the moment it is requested.
            let _ = stopping_tx.send(tokio::time::Instant::now() + grace);
        });
        let mut serve = tokio::spawn(async move { serve.await });
        let deadline = tokio::select! {
            result = &mut serve => {
                result.context("server task failed")?.context("server failed")?;
                tokio::time::Instant::now() + grace
            }
            Ok(deadline) = stopping_rx => {
                match tokio::time::timeout_at(deadline, &mut serve).await {
                    Ok(result) => result.context("server task failed")?.context("server failed")?,
                    Err(_) => tracing::warn!("shutdown grace elapsed with requests still in flight"),
                }
                deadline
            }
        };
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

/// The whole HTTP surface with its middleware.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    Router::new()
        .merge(crate::catalog::router())
        .merge(crate::holds::router())
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
                .concurrency_limit(config.requests_in_flight_max)
                .timeout(config.request_timeout),
        )
        .layer(DefaultBodyLimit::max(config.request_body_max_bytes))
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
        ApiError::client(
            ErrorCode::Unavailable,
            "the request took too long; retry (holds are idempotent)",
        )
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded("too many requests in flight")
    } else {
        ApiError::Unexpected(anyhow::anyhow!("middleware failed: {error}"))
    }
    .into_response()
}
