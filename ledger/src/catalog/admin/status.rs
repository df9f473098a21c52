//! Publishing and cancelling an event: `draft → published`, `draft | published →
//! cancelled`; repeating a move is a no-op, and a cancelled event stays cancelled.
//! Cancelling also undoes the event's sales ([`crate::holds::event_cancel`]).

use axum::extract::State;
use axum::Json;
use sqlx::PgConnection;
use tessera_domain::catalog::{EventDetail, EventStatus};
use tessera_domain::webhooks::EventType;
use tessera_domain::{ErrorCode, EventId, Problem};

use super::{commit_and_wake, detail_of, finish_edit, lock_owned_event};
use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, PathParams};
use crate::holds;
use crate::openapi::problems;

/// Make a draft event visible and on sale (idempotent).
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/publish", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "conflict: the event is cancelled"),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn publish_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<EventDetail>> {
    set_status(&state, tenant, &event_id, EventStatus::Published).await
}

/// Cancel an event: no new holds or confirms; every confirmed order cancelled (tickets
/// void, stock and seats back, a refund due each) and every live hold released
/// (idempotent: cancelling again finishes what an interrupted cancel left).
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn cancel_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<EventDetail>> {
    let Json(cancelled) = set_status(&state, tenant, &event_id, EventStatus::Cancelled).await?;
    let event_id = cancelled.event_id;
    holds::event_cancel::wait_for_writers(&state.pool, event_id).await?;
    let mut tx = state.pool.begin().await?;
    let undone = holds::event_cancel::cancel_sales(&mut tx, event_id).await?;
    let detail = detail_of(&mut tx, event_id).await?;
    tx.commit().await?;
    state.outbox_wake.notify();
    tracing::info!(%event_id, ?undone, "event cancelled");
    Ok(Json(detail))
}

async fn set_status(
    state: &AppState,
    tenant: AdminTenant,
    event_id: &str,
    to: EventStatus,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", event_id)?;
    let mut tx = state.pool.begin().await?;
    let detail = change_status(&mut tx, tenant, event_id, to).await?;
    commit_and_wake(state, tx).await?;
    Ok(Json(detail))
}

/// Moves an event to `to` in the caller's transaction. Idempotent; a cancelled event
/// stays cancelled.
pub async fn change_status(
    conn: &mut PgConnection,
    tenant: AdminTenant,
    event_id: EventId,
    to: EventStatus,
) -> ApiResult<EventDetail> {
    let status = lock_owned_event(conn, tenant, event_id).await?;
    if status == to {
        return detail_of(conn, event_id).await;
    }
    if status == EventStatus::Cancelled {
        return Err(ApiError::client(
            ErrorCode::Conflict,
            "a cancelled event cannot change status",
        ));
    }
    sqlx::query("update events set status = $2 where id = $1")
        .bind(event_id.as_uuid())
        .bind(to)
        .execute(&mut *conn)
        .await?;
    if to == EventStatus::Published {
        // Its key pair, before any ticket needs a code (its public half in the detail).
        crate::tickets::keys::ensure_key(conn, event_id).await?;
    }
    let announced = match to {
        EventStatus::Published => Some(EventType::EventPublished),
        EventStatus::Cancelled => Some(EventType::EventCancelled),
        EventStatus::Draft => None,
    };
    if let Some(event_type) = announced {
        crate::webhooks::emit::event_status(conn, event_id, event_type).await?;
    }
    finish_edit(conn, event_id).await
}
