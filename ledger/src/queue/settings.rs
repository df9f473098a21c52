//! An event's queue settings (admin) and its state as read by polls and edges.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tessera_domain::catalog::EventStatus;
use tessera_domain::queue::{self, QueueSettings, QueueSettingsRequest, QueueState};
use tessera_domain::{ErrorCode, EventId, Problem};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::catalog::admin::{commit_and_wake, finish_edit, lock_owned_event};
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::openapi::problems;

/// The columns [`QueueRow`] reads.
const STATE_COLUMNS: &str = "q.event_id, q.enabled, q.admit_per_minute, q.session_minutes,
     q.opens_at, q.joined, q.serving, q.version";

#[derive(sqlx::FromRow)]
pub(crate) struct QueueRow {
    event_id: Uuid,
    enabled: bool,
    admit_per_minute: i32,
    session_minutes: i32,
    opens_at: Option<DateTime<Utc>>,
    joined: i64,
    serving: i64,
    version: i64,
}

impl From<QueueRow> for QueueState {
    fn from(row: QueueRow) -> Self {
        Self {
            event_id: EventId(row.event_id),
            enabled: row.enabled,
            admit_per_minute: row.admit_per_minute,
            session_minutes: row.session_minutes,
            opens_at: row.opens_at,
            joined: row.joined,
            serving: row.serving,
            version: row.version,
        }
    }
}

/// A published event's queue; an event without one reads as off (`enabled: false`).
/// Unknown and unpublished events are 404, as every public read.
pub async fn public_state(pool: &PgPool, event_id: EventId) -> ApiResult<QueueState> {
    let status: Option<EventStatus> = sqlx::query_scalar("select status from events where id = $1")
        .bind(event_id.as_uuid())
        .fetch_optional(pool)
        .await?;
    if status.is_none_or(|s| s == EventStatus::Draft) {
        return Err(ApiError::not_found("event"));
    }
    let row: Option<QueueRow> = sqlx::query_as(&format!(
        "select {STATE_COLUMNS} from event_queues q where q.event_id = $1"
    ))
    .bind(event_id.as_uuid())
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or_else(|| off(event_id), QueueState::from))
}

/// The state of a queue that is on, for a poll or a rejoin; else `queue_off` (404 for an
/// unknown or unpublished event).
pub async fn open_state(pool: &PgPool, event_id: EventId) -> ApiResult<QueueState> {
    let state = public_state(pool, event_id).await?;
    if !state.enabled {
        return Err(queue::queue_off().into());
    }
    Ok(state)
}

fn off(event_id: EventId) -> QueueState {
    QueueState {
        event_id,
        enabled: false,
        admit_per_minute: 1,
        session_minutes: 1,
        opens_at: None,
        joined: 0,
        serving: 0,
        version: 0,
    }
}

/// An event's queue: its settings and how far it has let people in.
#[utoipa::path(get, path = "/admin/v1/events/{event_id}/queue", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = QueueState),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<QueueState>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    let queue = read_locked(&mut tx, event_id).await?;
    tx.commit().await?;
    Ok(Json(queue))
}

/// Turn an event's queue on or off and set its rate, session length and opening time.
/// Places already handed out are kept whatever changes; turning the queue off lets
/// holds through without a pass.
#[utoipa::path(put, path = "/admin/v1/events/{event_id}/queue", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    request_body = QueueSettingsRequest,
    responses((status = 200, body = QueueState),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "conflict: the ledger has no QUEUE_KEY"),
        problems::JsonBody, problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
    JsonBody(request): JsonBody<QueueSettingsRequest>,
) -> ApiResult<Json<QueueState>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let settings = request.parse().map_err(ApiError::Validation)?;
    if settings.enabled && state.config.queue.keys.is_none() {
        return Err(ApiError::client(
            ErrorCode::Conflict,
            "the ledger has no QUEUE_KEY: queue tickets and passes cannot be signed",
        ));
    }
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    write(&mut tx, event_id, &settings).await?;
    // The event's public detail shows the queue: its version moves and edges evict it
    // (and the queue state they cached with it).
    finish_edit(&mut tx, event_id).await?;
    let queue = read_locked(&mut tx, event_id).await?;
    commit_and_wake(&state, tx).await?;
    tracing::info!(%event_id, enabled = settings.enabled, admit_per_minute = settings.admit_per_minute, "queue settings changed");
    Ok(Json(queue))
}

/// Upserts the settings. Admissions are credited from when the queue (re)opens, never for
/// time it was off; a running queue keeps its credit, and a new opening time moves it
/// (earlier or later) at once.
async fn write(
    conn: &mut PgConnection,
    event_id: EventId,
    settings: &QueueSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into event_queues (event_id, enabled, admit_per_minute, session_minutes, opens_at, advanced_at)
         values ($1, $2, $3, $4, $5, greatest(now(), coalesce($5, now())))
         on conflict (event_id) do update set
             enabled = excluded.enabled, admit_per_minute = excluded.admit_per_minute,
             session_minutes = excluded.session_minutes, opens_at = excluded.opens_at,
             advanced_at = case when event_queues.enabled and excluded.enabled
                                then greatest(least(event_queues.advanced_at, now()),
                                              coalesce(excluded.opens_at, '-infinity'))
                                else excluded.advanced_at end,
             version = event_queues.version + 1, updated_at = now()",
    )
    .bind(event_id.as_uuid())
    .bind(settings.enabled)
    .bind(settings.admit_per_minute)
    .bind(settings.session_minutes)
    .bind(settings.opens_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn read_locked(conn: &mut PgConnection, event_id: EventId) -> ApiResult<QueueState> {
    let row: Option<QueueRow> = sqlx::query_as(&format!(
        "select {STATE_COLUMNS} from event_queues q where q.event_id = $1"
    ))
    .bind(event_id.as_uuid())
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or_else(|| off(event_id), QueueState::from))
}
