//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tessera_domain::{ErrorCode, Problem};

use crate::app::AppState;
use crate::error::ApiError;

/// A dependency that does not answer within this is reported down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(crate::metrics::render))
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
    let redis = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut conn = state.redis.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    })
    .await;
    let redis_up = matches!(redis, Ok(Ok(_)));
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
