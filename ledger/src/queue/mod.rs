//! The front door (DESIGN.md "The front door"): per-event queues for an on-sale. The
//! ledger is the single arbiter of places: it hands out positions ([`joins`], batched as
//! holds are), moves each queue's `serving` on at its rate and pushes it to every edge
//! ([`advance`]), and checks the admission pass of every hold on a queued event
//! (`holds::commit`). Edges answer polls and sign passes themselves from the pushed
//! `serving`, with the same rules ([`tessera_domain::queue`]).

pub mod advance;
pub mod joins;
pub mod settings;

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use tessera_domain::body::{self, IDEMPOTENCY_KEY_HEADER};
use tessera_domain::queue::{self, QueueKeys, QueueState, QueueStatus, QueueTicket};
use tessera_domain::{EventId, Problem};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, PathParams};
use crate::openapi::problems;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{event_id}/queue", get(poll).post(join))
        .route("/v1/events/{event_id}/queue/state", get(state_of))
        .route(
            "/admin/v1/events/{event_id}/queue",
            get(settings::get_settings).put(settings::put_settings),
        )
}

/// The keys queue tokens are signed with; without them no queue can be on.
fn keys(state: &AppState) -> ApiResult<&QueueKeys> {
    state
        .config
        .queue
        .keys
        .as_ref()
        .ok_or_else(|| ApiError::from(queue::queue_off()))
}

/// The `Tessera-Queue-Ticket` header's text, if it was sent. A value that is not text is
/// still a ticket sent (and no ticket this deployment signed: refused as one), never taken
/// as none, which would hand out a new place.
fn ticket_header(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    headers
        .get(queue::TICKET_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// Join an event's queue: the next place in line, as a signed queue ticket.
#[utoipa::path(
    post, path = "/v1/events/{event_id}/queue", tag = "queue",
    params(("event_id" = String, Path, format = Uuid),
           ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:@-]+$", description = "Joining again with the same key gives the same place"),
           ("Tessera-Queue-Ticket" = Option<String>, Header, description = "A ticket already held: the same place")),
    responses(
        (status = 201, body = QueueStatus, description = "A new place"),
        (status = 200, body = QueueStatus, description = "The place this key or ticket already has"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "queue_ticket_invalid"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "queue_off"),
        problems::NotFound, problems::Invalid, problems::Unavailable,
    )
)]
pub(crate) async fn join(
    State(state): State<AppState>,
    PathParams(event_id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let keys = keys(&state)?;
    if let Some(token) = ticket_header(&headers) {
        let line = settings::open_state(&state.pool, event_id).await?;
        let ticket = queue::ticket(keys, Some(&token), event_id).map_err(ApiError::Rejected)?;
        let status = line.status(keys, &ticket, token.trim().to_owned(), Utc::now());
        return Ok((StatusCode::OK, Json(status)).into_response());
    }
    let key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        Some(value) => Some(body::idempotency_key(Some(value.as_bytes()))?),
        None => None,
    };
    let joined = state.joins.join(event_id, key).await?;
    let ticket = QueueTicket {
        event_id,
        position: joined.position,
        joined_at: joined.joined_at,
    };
    let status = joined
        .state
        .status(keys, &ticket, keys.sign_ticket(&ticket), Utc::now());
    let code = if joined.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(status)).into_response())
}

/// Where a ticket's holder stands, with an admission pass once let in.
#[utoipa::path(
    get, path = "/v1/events/{event_id}/queue", tag = "queue",
    params(("event_id" = String, Path, format = Uuid),
           ("Tessera-Queue-Ticket" = String, Header, description = "The ticket from joining")),
    responses(
        (status = 200, body = QueueStatus),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "queue_ticket_invalid"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "queue_off"),
        problems::NotFound, problems::Invalid, problems::Unavailable,
    )
)]
pub(crate) async fn poll(
    State(state): State<AppState>,
    PathParams(event_id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Json<QueueStatus>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let keys = keys(&state)?;
    let token =
        ticket_header(&headers).ok_or_else(|| ApiError::Rejected(queue::missing_ticket()))?;
    // Then the event: an unknown one is 404 whatever the ticket.
    let line = settings::open_state(&state.pool, event_id).await?;
    let ticket = queue::ticket(keys, Some(&token), event_id).map_err(ApiError::Rejected)?;
    let token = token.trim().to_owned();
    Ok(Json(line.status(keys, &ticket, token, Utc::now())))
}

/// An event's queue as edges cache it (`enabled: false` when it has none).
#[utoipa::path(
    get, path = "/v1/events/{event_id}/queue/state", tag = "queue",
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = QueueState), problems::NotFound, problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn state_of(
    State(state): State<AppState>,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Response> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let queue = settings::public_state(&state.pool, event_id).await?;
    // Polled by edges only on a miss; `serving` moves every tick, so no caching here.
    Ok(([("cache-control", "no-store")], Json(queue)).into_response())
}
