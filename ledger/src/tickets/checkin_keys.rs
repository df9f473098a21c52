//! `GET /v1/events/{event_id}/checkin-keys`: the public keys an event's codes are signed
//! with, for edges and offline scanners to verify codes without the database, and the
//! codes refused since (voided tickets; every code of a cancelled event). The ETag names the
//! key ids and the revocation count (a rotation, a void or the event's cancellation changes
//! it).

use axum::extract::State;
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tessera_domain::tickets::CheckinKeys;
use tessera_domain::EventId;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_none_match, path_id, PathParams};
use crate::openapi::problems;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events/{event_id}/checkin-keys", get(checkin_keys))
}

/// The event's public keys (published events; a draft has no public keys).
#[utoipa::path(
    get, path = "/v1/events/{event_id}/checkin-keys", tag = "checkin",
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = CheckinKeys, headers(("ETag" = String))),
              (status = 304, description = "not modified (If-None-Match)"),
              problems::NotFound, problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn checkin_keys(
    State(state): State<AppState>,
    PathParams(event_id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let mut conn = state.pool.acquire().await?;
    let public: Option<bool> =
        sqlx::query_scalar("select status <> 'draft' from events where id = $1")
            .bind(event_id.as_uuid())
            .fetch_optional(&mut *conn)
            .await?;
    if public != Some(true) {
        return Err(ApiError::not_found("event"));
    }
    let keys = super::keys::public_keys(&mut conn, event_id).await?;
    let mut document = CheckinKeys {
        event_id,
        keys,
        cancelled: false,
        revocation_version: 0,
        revoked: Vec::new(),
    };
    super::revocations::fill(&mut conn, &mut document).await?;
    let etag = HeaderValue::from_str(&document.etag())
        .map_err(|e| anyhow::anyhow!("checkin-keys ETag: {e}"))?;
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    Ok(([(ETAG, etag)], Json(document)).into_response())
}
