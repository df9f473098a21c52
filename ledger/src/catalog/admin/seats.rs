//! Blocking and unblocking an assigned zone's seats (house seats, broken seats): a
//! blocked seat is out of sale and out of the zone's capacity, so `available` and
//! `capacity` move together and invariant 7 holds (counters = seats by state). Only free
//! seats can be blocked and only blocked ones unblocked: a held or sold seat is the
//! buyer's.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use sqlx::PgConnection;
use tessera_domain::catalog::{EventDetail, SeatingKind};
use tessera_domain::holds::Rejection;
use tessera_domain::invalidation::{Change, ZoneCounters};
use tessera_domain::seats::SeatStatus;
use tessera_domain::{ErrorCode, EventId, FieldError, ShowId, ZoneId};

use super::{commit_edit, lock_owned_event};
use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::openapi::problems;
use crate::outbox;

/// Seats one request may block or unblock.
pub const SEATS_PER_CHANGE_MAX: usize = 1_000;

/// `POST …/seats/block` and `…/seats/unblock`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatChange {
    /// Seat indexes in the zone's layout, each once.
    #[schema(min_items = 1, max_items = 1000)]
    seats: Vec<i32>,
}

impl SeatChange {
    fn parse(&self) -> ApiResult<Vec<i32>> {
        let mut seats = self.seats.clone();
        seats.sort_unstable();
        seats.dedup();
        let valid = (1..=SEATS_PER_CHANGE_MAX).contains(&self.seats.len())
            && seats.len() == self.seats.len()
            && seats.iter().all(|s| *s >= 0);
        if !valid {
            return Err(ApiError::Validation(vec![FieldError::new(
                "seats",
                format!("1 to {SEATS_PER_CHANGE_MAX} different seat indexes"),
            )]));
        }
        Ok(seats)
    }
}

/// Takes free seats out of sale.
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/zones/{zone_id}/seats/block", tag = "admin",
    request_body = SeatChange, security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid), ("zone_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail),
              (status = 409, body = tessera_domain::Problem, content_type = "application/problem+json", description = "seat_unavailable: some seats are not free (listed in `seats`); conflict: the zone sells no seats"),
              problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn block_seats(
    state: State<AppState>,
    tenant: AdminTenant,
    path: PathParams<(String, String)>,
    JsonBody(change): JsonBody<SeatChange>,
) -> ApiResult<Json<EventDetail>> {
    change_seats(
        state,
        tenant,
        path,
        change,
        SeatStatus::Available,
        SeatStatus::Blocked,
    )
    .await
}

/// Puts blocked seats back on sale.
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/zones/{zone_id}/seats/unblock", tag = "admin",
    request_body = SeatChange, security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid), ("zone_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail),
              (status = 409, body = tessera_domain::Problem, content_type = "application/problem+json", description = "seat_unavailable: some seats are not blocked (listed in `seats`); conflict: the zone sells no seats"),
              problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn unblock_seats(
    state: State<AppState>,
    tenant: AdminTenant,
    path: PathParams<(String, String)>,
    JsonBody(change): JsonBody<SeatChange>,
) -> ApiResult<Json<EventDetail>> {
    change_seats(
        state,
        tenant,
        path,
        change,
        SeatStatus::Blocked,
        SeatStatus::Available,
    )
    .await
}

/// Moves `seats` from `from` to `to`, all or none, with the zone's counters: the event
/// row, then the zone row, then its seats (the order every writer of seats keeps).
async fn change_seats(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams((event_id, zone_id)): PathParams<(String, String)>,
    change: SeatChange,
    from: SeatStatus,
    to: SeatStatus,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let zone_id: ZoneId = path_id("zone_id", &zone_id)?;
    let seats = change.parse()?;
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    let show_id = lock_seated_zone(&mut tx, event_id, zone_id).await?;
    let moved: Vec<i32> = sqlx::query_scalar(
        "update seats set status = $4 where zone_id = $1 and seat_index = any($2) and status = $3
         returning seat_index",
    )
    .bind(zone_id.as_uuid())
    .bind(&seats)
    .bind(from)
    .bind(to)
    .persistent(false) // planned per call: see `crate::seats::load_board`
    .fetch_all(&mut *tx)
    .await?;
    if moved.len() != seats.len() {
        let not_moved = seats.into_iter().filter(|s| !moved.contains(s)).collect();
        return Err(Rejection::seats_unavailable(not_moved).into());
    }
    // Blocking takes seats out of capacity; unblocking puts them back.
    let delta = i32::try_from(moved.len()).map_err(anyhow::Error::new)?;
    let delta = if to == SeatStatus::Blocked {
        -delta
    } else {
        delta
    };
    let change = move_capacity(&mut tx, show_id, zone_id, delta, &moved, to).await?;
    outbox::enqueue(&mut tx, &change).await?;
    commit_edit(&state, tx, event_id).await
}

/// The event's zone, locked as an edit locks it; it must sell seats. Returns its show.
async fn lock_seated_zone(
    conn: &mut PgConnection,
    event_id: EventId,
    zone_id: ZoneId,
) -> ApiResult<ShowId> {
    let zone = super::edit::lock_zone(conn, event_id, zone_id).await?;
    match zone.seating {
        SeatingKind::GeneralAdmission => Err(ApiError::client(
            ErrorCode::Conflict,
            "this zone sells places by quantity: it has no seats",
        )),
        SeatingKind::Assigned => Ok(ShowId(zone.show_id)),
    }
}

/// `available` and `capacity` move by `delta` together; returns the change to announce:
/// the counters and `seats` now `state`.
async fn move_capacity(
    conn: &mut PgConnection,
    show_id: ShowId,
    zone_id: ZoneId,
    delta: i32,
    seats: &[i32],
    state: SeatStatus,
) -> ApiResult<Change> {
    let (available, held, sold, version): (i32, i32, i32, i64) = sqlx::query_as(
        "update zones set available = available + $2, capacity = capacity + $2,
                version = version + 1
         where id = $1 returning available, held, sold, version",
    )
    .bind(zone_id.as_uuid())
    .bind(delta)
    .fetch_one(conn)
    .await?;
    let counters = ZoneCounters {
        show_id,
        zone_id,
        available,
        held,
        sold,
        version,
    };
    Ok(Change::seats(counters, seats, state))
}
