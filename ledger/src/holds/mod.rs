//! Holds: the inventory engine's HTTP face. Placing and confirming a hold go through the
//! batching [`engine`] ([`commit`], [`confirm`]); release settles one hold ([`settle`]); the [`sweeper`] expires
//! lapsed holds; all of them move a zone's counters through [`stock`].

pub mod cancel;
pub mod commit;
pub mod confirm;
pub mod engine;
pub mod event_cancel;
pub mod order;
mod passes;
pub mod settle;
pub mod stock;
pub mod sweeper;
pub mod writer_thread;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_domain::holds::{ConfirmRequest, ConfirmedHold, HoldRequest, HoldView};
use tessera_domain::{queue, HoldId, Problem};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, IdempotencyKeyHeader, JsonBody, PathParams};
use crate::idempotency;
use crate::openapi::problems;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/holds", post(create_hold))
        .route("/v1/holds/{hold_id}", get(get_hold))
        .route("/v1/holds/{hold_id}/confirm", post(confirm_hold))
        .route("/v1/holds/{hold_id}/release", post(release_hold))
        .route("/v1/orders/{hold_id}", get(order::get_order))
        .route(
            "/admin/v1/orders/{hold_id}/cancel",
            post(cancel::cancel_order),
        )
        .route(
            "/admin/v1/refunds/{refund_id}/complete",
            post(cancel::complete_refund),
        )
}

/// Take `quantity` tickets from a zone for a customer until `expires_at`.
#[utoipa::path(
    post, path = "/v1/holds", tag = "holds",
    request_body = HoldRequest,
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:@-]+$", description = "Required; a retry with the same key and body returns the first result"),
           ("Tessera-Pass" = Option<String>, Header, description = "The admission pass from the event's queue; required while its on-sale is queued")),
    responses(
        (status = 201, body = HoldView, description = "Held"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "pass_required, pass_used_up: the event's on-sale is queued"),
        problems::JsonBody,
        (status = 404, body = Problem, content_type = "application/problem+json", description = "not_found: no such zone in this show"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "sold_out, insufficient_stock, customer_limit_exceeded, sale_not_started, sale_ended, event_not_on_sale"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "validation_failed, quantity_out_of_range, idempotency_conflict"),
        problems::Unavailable,
    )
)]
pub(crate) async fn create_hold(
    State(state): State<AppState>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    headers: HeaderMap,
    JsonBody(request): JsonBody<HoldRequest>,
) -> ApiResult<Response> {
    let hold = request.parse().map_err(ApiError::Validation)?;
    let request_sha256 = idempotency::request_sha256(&hold);
    // Checked with the zone's event under its lock; not part of the request's identity
    // (a retry with a renewed pass is the same hold).
    let pass = headers
        .get(queue::PASS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(state
        .engine
        .submit(hold, key, request_sha256, pass)
        .await?
        .into_response())
}

/// A hold and its status (`held`, `confirmed`, `released`, `expired`).
#[utoipa::path(
    get, path = "/v1/holds/{hold_id}", tag = "holds",
    params(("hold_id" = String, Path, format = Uuid)),
    responses((status = 200, body = HoldView), problems::NotFound, problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn get_hold(
    State(state): State<AppState>,
    PathParams(hold_id): PathParams<String>,
) -> ApiResult<Json<HoldView>> {
    let hold_id: HoldId = path_id("hold_id", &hold_id)?;
    Ok(Json(settle::get(&state.pool, hold_id).await?))
}

/// Confirm a live hold after payment: issues its tickets.
#[utoipa::path(
    post, path = "/v1/holds/{hold_id}/confirm", tag = "holds",
    request_body = ConfirmRequest,
    params(("hold_id" = String, Path, format = Uuid),
           ("Idempotency-Key" = String, Header, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:@-]+$", description = "Required; a retry with the same key and body returns the first result")),
    responses(
        (status = 200, body = ConfirmedHold),
        problems::JsonBody,
        problems::NotFound,
        (status = 409, body = Problem, content_type = "application/problem+json", description = "hold_expired, hold_not_active, event_not_on_sale"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "validation_failed, idempotency_conflict"),
        problems::Unavailable,
    )
)]
pub(crate) async fn confirm_hold(
    State(state): State<AppState>,
    PathParams(hold_id): PathParams<String>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(request): JsonBody<ConfirmRequest>,
) -> ApiResult<Response> {
    let hold_id: HoldId = path_id("hold_id", &hold_id)?;
    let confirmation = request.parse().map_err(ApiError::Validation)?;
    let zone_id = confirm::zone_of(&state.pool, hold_id).await?;
    Ok(state
        .engine
        .confirm(hold_id, zone_id, key, confirmation)
        .await?
        .into_response())
}

/// Release a hold, returning its stock. Idempotent.
#[utoipa::path(
    post, path = "/v1/holds/{hold_id}/release", tag = "holds",
    params(("hold_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = HoldView),
        problems::NotFound,
        (status = 409, body = Problem, content_type = "application/problem+json", description = "hold_not_active: already confirmed"),
        problems::Invalid,
        problems::Unavailable,
    )
)]
pub(crate) async fn release_hold(
    State(state): State<AppState>,
    PathParams(hold_id): PathParams<String>,
) -> ApiResult<Json<HoldView>> {
    let hold_id: HoldId = path_id("hold_id", &hold_id)?;
    Ok(Json(settle::release(&state, hold_id).await?))
}
