//! Liveness and readiness.
//!
//! Readiness pings Redis over one connection kept for the purpose ([`RedisProbe`]), not a
//! new one per call: an orchestrator probing every second (or a client hammering the
//! route) must not turn into a connection storm against Redis.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tessera_domain::{ErrorCode, Problem};
use tokio::sync::Mutex;

use crate::app::AppState;
use crate::error::ApiError;

/// A dependency that does not answer within this is reported down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
}

/// At most one Redis connection for readiness, opened on first use and replaced only
/// after it fails. Concurrent probes share it (it is multiplexed); the mutex is held only
/// to take or (re)open it, a Tokio mutex because opening awaits, and bounded by
/// the probe timeout (`PROBE_TIMEOUT`) so a hung connect cannot pile probes up behind it.
#[derive(Clone)]
pub struct RedisProbe {
    client: redis::Client,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
}

#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("redis did not answer within {PROBE_TIMEOUT:?}")]
    Timeout,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl RedisProbe {
    pub fn new(client: redis::Client) -> Self {
        Self {
            client,
            connection: Arc::new(Mutex::new(None)),
        }
    }

    /// `PING` within [`PROBE_TIMEOUT`]; a failed connection is dropped so the next probe
    /// opens a fresh one.
    async fn ping(&self) -> Result<(), ProbeError> {
        let attempt = async {
            let mut connection = self.shared().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(_pong)) => Ok(()),
            Ok(Err(e)) => {
                *self.connection.lock().await = None;
                Err(e.into())
            }
            Err(_elapsed) => {
                *self.connection.lock().await = None;
                Err(ProbeError::Timeout)
            }
        }
    }

    /// The shared connection, opening it if there is none.
    async fn shared(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.client.get_multiplexed_async_connection().await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    postgres: &'static str,
    redis: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn live() -> Json<Health> {
    Json(Health {
        status: "ok",
        postgres: "unchecked",
        redis: "unchecked",
    })
}

/// PostgreSQL and Redis answer.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let postgres =
        tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("select 1").execute(&state.pool)).await;
    let postgres_up = matches!(postgres, Ok(Ok(_)));
    let redis = state.redis_probe.ping().await;
    if let Err(e) = &redis {
        tracing::warn!(error = %e, "readiness: redis down");
    }
    let redis_up = redis.is_ok();
    if postgres_up && redis_up {
        return Ok(Json(Health {
            status: "ok",
            postgres: "up",
            redis: "up",
        }));
    }
    let down: Vec<&str> = [("postgres", postgres_up), ("redis", redis_up)]
        .into_iter()
        .filter_map(|(name, up)| (!up).then_some(name))
        .collect();
    Err(ApiError::client(
        ErrorCode::Unavailable,
        format!("not ready: {} down", down.join(" and ")),
    ))
}
