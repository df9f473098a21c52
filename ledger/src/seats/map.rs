//! `GET /v1/shows/{show_id}/seats`: each assigned zone's layout (runs of seats side by side)
//! and its seats' states as a status map (two bits a seat: a 50,000-seat zone's states
//! are 16,667 characters), as of the zone's `version`. The ETag is made from the zones'
//! versions (the edge makes the same one), so an unchanged map is a `304` without its body being built.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tessera_domain::seats::{
    encode_status_map, layout_runs, map_etag, Seat, SeatMap, SeatStatus, ZoneSeats,
};
use tessera_domain::{EventId, ShowId, ZoneId};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{if_none_match, path_id, PathParams};
use crate::openapi::problems;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/shows/{show_id}/seats", get(show_seats))
}

/// A show's assigned zones: id and version, in zone order.
#[derive(sqlx::FromRow)]
struct ZoneVersion {
    event_id: Uuid,
    zone_id: Option<Uuid>,
    version: Option<i64>,
}

/// One seat as the map reads it.
#[derive(sqlx::FromRow)]
struct SeatRow {
    zone_id: Uuid,
    section: String,
    row_label: String,
    row_order: i32,
    position: i32,
    number: i32,
    x: f32,
    y: f32,
    status: SeatStatus,
}

/// Every assigned zone of a show: its layout and the state of each seat.
#[utoipa::path(
    get, path = "/v1/shows/{show_id}/seats", tag = "catalog",
    params(("show_id" = String, Path, format = Uuid)),
    responses((status = 200, body = SeatMap, headers(("ETag" = String))),
              (status = 304, description = "not modified (If-None-Match)"),
              problems::NotFound, problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn show_seats(
    State(state): State<AppState>,
    PathParams(show_id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let show_id: ShowId = path_id("show_id", &show_id)?;
    let zones = zone_versions(&state, show_id).await?;
    let event_id = zones
        .first()
        .map(|z| EventId(z.event_id))
        .ok_or_else(|| ApiError::not_found("show"))?;
    let etag = etag(&zones);
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    let map = SeatMap {
        show_id,
        event_id,
        zones: zone_seats(&state, &zones).await?,
    };
    // Read after the versions: a change in between makes the map newer than its ETag, and
    // the next request fetches it again (never the reverse).
    Ok(([(ETAG, etag)], Json(map)).into_response())
}

/// The show's zones that sell seats (a published show with none still answers, empty).
async fn zone_versions(state: &AppState, show_id: ShowId) -> ApiResult<Vec<ZoneVersion>> {
    Ok(sqlx::query_as(
        "select s.event_id, z.id as zone_id, z.version
         from shows s join events e on e.id = s.event_id
              left join zones z on z.show_id = s.id and z.seating = 'assigned'
         where s.id = $1 and e.status <> 'draft'
         order by z.sort_order, z.name, z.id",
    )
    .bind(show_id.as_uuid())
    .fetch_all(&state.pool)
    .await?)
}

/// Each zone's seats read back and folded into runs and a status map.
async fn zone_seats(state: &AppState, zones: &[ZoneVersion]) -> ApiResult<Vec<ZoneSeats>> {
    let ids: Vec<Uuid> = zones.iter().filter_map(|z| z.zone_id).collect();
    let seats: Vec<SeatRow> = sqlx::query_as(
        "select zone_id, section, row_label, row_order, position, number, x, y, status
         from seats where zone_id = any($1) order by zone_id, seat_index",
    )
    .bind(&ids)
    .persistent(false) // planned per call: see `crate::seats::load_board`
    .fetch_all(&state.pool)
    .await?;
    let by_zone: HashMap<Uuid, &[SeatRow]> = seats
        .chunk_by(|a, b| a.zone_id == b.zone_id)
        .map(|chunk| (chunk[0].zone_id, chunk))
        .collect();
    zones
        .iter()
        .filter_map(|z| Some((z.zone_id?, z.version?)))
        .map(|(zone_id, version)| {
            fold_zone(
                zone_id,
                version,
                by_zone.get(&zone_id).copied().unwrap_or_default(),
            )
        })
        .collect()
}

/// One zone's seats (in index order) as runs and a status map.
fn fold_zone(zone_id: Uuid, version: i64, rows: &[SeatRow]) -> ApiResult<ZoneSeats> {
    let seat_count = i32::try_from(rows.len())
        .map_err(|_| anyhow::anyhow!("zone {zone_id}: seat count past i32"))?;
    let seats: Vec<Seat> = rows
        .iter()
        .map(|row| Seat {
            section: row.section.clone(),
            row: row.row_label.clone(),
            row_order: row.row_order,
            position: row.position,
            number: row.number,
            x: row.x,
            y: row.y,
        })
        .collect();
    Ok(ZoneSeats {
        zone_id: ZoneId(zone_id),
        version,
        seat_count,
        runs: layout_runs(&seats),
        status: encode_status_map(rows.iter().map(|s| s.status)),
    })
}

/// The seat map's strong ETag (`map_etag`, as the edge makes it): every change of a
/// seat's state moves its zone's version.
fn etag(zones: &[ZoneVersion]) -> HeaderValue {
    let tag = map_etag(
        zones
            .iter()
            .filter(|z| z.zone_id.is_some())
            .filter_map(|z| z.version),
    );
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"seats\""))
}
