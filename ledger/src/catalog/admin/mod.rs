//! Admin writes, scoped to the bearer token's tenant: create an event with its venue,
//! shows and zones in one request (as a draft), publish, edit, cancel. Every change bumps
//! the event's `version` and writes a catalog outbox message in the same transaction;
//! capacity edits also write the zone's new counters, keeping invariant 1.
//!
//! - [`fields`]: the parsers create and edit share (a request becomes typed values once).
//! - [`create`]: `POST /admin/v1/events` and the insert the demo seed also uses.
//! - [`edit`]: `PATCH` of an event, a show or a zone.
//! - [`status`]: publish and cancel.
//! - [`seats`]: blocking and unblocking an assigned zone's seats.
//! - here: the router, the owned-event read, and the steps every edit shares.

mod create;
mod edit;
mod fields;
mod seats;
mod status;

use axum::extract::State;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use sqlx::PgConnection;
use tessera_domain::catalog::{EventDetail, EventStatus};
use tessera_domain::invalidation::Change;
use tessera_domain::{ErrorCode, EventId, TenantId};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, PathParams};
use crate::openapi::problems;
use crate::outbox;

pub use create::{insert_event, NewEvent, NewShow, NewVenue, NewZone, ValidEvent};
pub use edit::{EventPatch, ShowPatch, ZonePatch};
pub use status::change_status;
// The handlers with their `utoipa::path` companions (`__path_*`), which `openapi.rs`
// names through this module.
pub(crate) use create::{__path_create_event, create_event};
pub(crate) use edit::{
    __path_patch_event, __path_patch_show, __path_patch_zone, patch_event, patch_show, patch_zone,
};
pub(crate) use seats::{__path_block_seats, __path_unblock_seats, block_seats, unblock_seats};
pub(crate) use status::{__path_cancel_event, __path_publish_event, cancel_event, publish_event};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/events", post(create_event))
        .route(
            "/admin/v1/events/{event_id}",
            get(get_owned_event).patch(patch_event),
        )
        .route("/admin/v1/events/{event_id}/publish", post(publish_event))
        .route("/admin/v1/events/{event_id}/cancel", post(cancel_event))
        .route(
            "/admin/v1/events/{event_id}/shows/{show_id}",
            patch(patch_show),
        )
        .route(
            "/admin/v1/events/{event_id}/zones/{zone_id}",
            patch(patch_zone),
        )
        .route(
            "/admin/v1/events/{event_id}/zones/{zone_id}/seats/block",
            post(block_seats),
        )
        .route(
            "/admin/v1/events/{event_id}/zones/{zone_id}/seats/unblock",
            post(unblock_seats),
        )
}

/// One event of this tenant, drafts included.
#[utoipa::path(get, path = "/admin/v1/events/{event_id}", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn get_owned_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let mut conn = state.pool.acquire().await?;
    let (owner, detail) = super::load_event_detail(&mut conn, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    tenant.owns(owner)?;
    Ok(Json(detail))
}

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Maps the constraint violations a client can cause to 4xx.
fn constraint_error(e: sqlx::Error) -> ApiError {
    match e.as_database_error().and_then(|d| d.constraint()) {
        Some("events_tenant_id_slug_key") => ApiError::client(
            ErrorCode::Conflict,
            "an event with this slug already exists for this tenant",
        ),
        Some("events_category_slug_fkey") => ApiError::field("category", "unknown category"),
        _ => e.into(),
    }
}

async fn detail_of(conn: &mut PgConnection, event_id: EventId) -> ApiResult<EventDetail> {
    super::load_event_detail(conn, event_id)
        .await?
        .map(|(_, d)| d)
        .ok_or_else(|| ApiError::not_found("event"))
}

/// Locks the event row and checks the tenant owns it; returns its status.
pub(crate) async fn lock_owned_event(
    conn: &mut PgConnection,
    tenant: AdminTenant,
    event_id: EventId,
) -> ApiResult<EventStatus> {
    let row: Option<(Uuid, EventStatus)> =
        sqlx::query_as("select tenant_id, status from events where id = $1 for update")
            .bind(event_id.as_uuid())
            .fetch_optional(conn)
            .await?;
    let (owner, status) = row.ok_or_else(|| ApiError::not_found("event"))?;
    tenant.owns(TenantId(owner))?;
    Ok(status)
}

/// Bumps the event's version and announces the change; then returns the new detail.
pub(crate) async fn finish_edit(
    conn: &mut PgConnection,
    event_id: EventId,
) -> ApiResult<EventDetail> {
    sqlx::query(
        "update events set version = version + 1, updated_at = now(),
                starts_at = (select min(starts_at) from shows where event_id = $1)
         where id = $1",
    )
    .bind(event_id.as_uuid())
    .execute(&mut *conn)
    .await?;
    outbox::enqueue(conn, &Change::Catalog { event_id }).await?;
    detail_of(conn, event_id).await
}

/// Finishes an edit ([`finish_edit`]), commits it and wakes the outbox relay.
async fn commit_edit(
    state: &AppState,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    event_id: EventId,
) -> ApiResult<Json<EventDetail>> {
    let detail = finish_edit(&mut tx, event_id).await?;
    commit_and_wake(state, tx).await?;
    Ok(Json(detail))
}

/// Commits a catalog change and wakes the outbox relay, so its message goes out now
/// rather than at the next poll.
pub(crate) async fn commit_and_wake(
    state: &AppState,
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
) -> ApiResult<()> {
    tx.commit().await?;
    state.outbox_wake.notify();
    Ok(())
}
