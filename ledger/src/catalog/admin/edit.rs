//! Edits of an event, a show or a zone. A patch is merged with the stored values (absent
//! fields are kept, `null` clears a nullable one) and the result is parsed with the same
//! rules as on create ([`super::fields`]). A zone's capacity edit also rewrites its
//! counters, keeping invariant 1 (`available + held + sold = capacity`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use tessera_domain::catalog::{EventDetail, SeatingKind};
use tessera_domain::invalidation::{Change, ZoneCounters};
use tessera_domain::{fields, ErrorCode, EventId, Problem, ShowId, ZoneId};
use uuid::Uuid;

use super::fields::{category, EventInput, FieldErrors, Window, ZoneFields, ZoneInput};
use super::{commit_edit, constraint_error, detail_of, lock_owned_event, nullable};
use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::openapi::problems;
use crate::outbox;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    title: Option<String>,
    #[schema(
        max_length = 10000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    description: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    category: Option<String>,
    featured: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    booking_opens_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    booking_closes_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, minimum = 1)]
    max_tickets_per_customer: Option<Option<i32>>,
}

/// Edit an event's fields; absent fields are kept, `null` clears a nullable one.
#[utoipa::path(patch, path = "/admin/v1/events/{event_id}", tag = "admin", request_body = EventPatch, security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn patch_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
    JsonBody(patch): JsonBody<EventPatch>,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    let current = detail_of(&mut tx, event_id).await?;
    let mut errors = FieldErrors::default();
    let fields = EventInput {
        title: patch.title.as_deref().unwrap_or(&current.title),
        description: patch.description.as_deref().unwrap_or(&current.description),
        booking_opens_at: patch.booking_opens_at.unwrap_or(current.booking_opens_at),
        booking_closes_at: patch.booking_closes_at.unwrap_or(current.booking_closes_at),
        max_tickets_per_customer: patch
            .max_tickets_per_customer
            .unwrap_or(current.max_tickets_per_customer),
    }
    .parse(&mut errors);
    let category = errors.check(patch.category.as_deref().map(category).transpose());
    let (fields, category) = errors.finish(|| Some((fields?, category?)))?;
    sqlx::query(
        "update events set title = $2, description = $3, category_slug = $4, featured = $5,
                booking_opens_at = $6, booking_closes_at = $7, max_tickets_per_customer = $8
         where id = $1",
    )
    .bind(event_id.as_uuid())
    .bind(&fields.title)
    .bind(&fields.description)
    .bind(category.unwrap_or(current.category))
    .bind(patch.featured.unwrap_or(current.featured))
    .bind(fields.booking.opens)
    .bind(fields.booking.closes)
    .bind(fields.max_tickets_per_customer)
    .execute(&mut *tx)
    .await
    .map_err(constraint_error)?;
    commit_edit(&state, tx, event_id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowPatch {
    starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    sale_starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    sale_ends_at: Option<Option<DateTime<Utc>>>,
}

/// Edit a show's start and sale window.
#[utoipa::path(patch, path = "/admin/v1/events/{event_id}/shows/{show_id}", tag = "admin", request_body = ShowPatch,
    security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid), ("show_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn patch_show(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams((event_id, show_id)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<ShowPatch>,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let show_id: ShowId = path_id("show_id", &show_id)?;
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    let current = detail_of(&mut tx, event_id).await?;
    let show = current
        .shows
        .iter()
        .find(|s| s.show_id == show_id)
        .ok_or_else(|| ApiError::not_found("show"))?;
    let mut errors = FieldErrors::default();
    let starts_at = errors.check(fields::instant(
        "starts_at",
        patch.starts_at.unwrap_or(show.starts_at),
    ));
    let sale = Window::parse(
        (
            "sale_starts_at",
            patch.sale_starts_at.unwrap_or(show.sale_starts_at),
        ),
        (
            "sale_ends_at",
            patch.sale_ends_at.unwrap_or(show.sale_ends_at),
        ),
        &mut errors,
    );
    let (starts_at, sale) = errors.finish(|| Some((starts_at?, sale?)))?;
    sqlx::query(
        "update shows set starts_at = $2, sale_starts_at = $3, sale_ends_at = $4 where id = $1",
    )
    .bind(show_id.as_uuid())
    .bind(starts_at)
    .bind(sale.opens)
    .bind(sale.closes)
    .execute(&mut *tx)
    .await?;
    commit_edit(&state, tx, event_id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonePatch {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: Option<String>,
    #[schema(minimum = 0, maximum = 1000000000)]
    price_minor: Option<i64>,
    /// New capacity; must be at least `held + sold`. `available` becomes the difference.
    #[schema(minimum = 0, maximum = 1000000)]
    capacity: Option<i32>,
    #[schema(minimum = 1, maximum = 100)]
    min_per_order: Option<i32>,
    #[schema(minimum = 1, maximum = 100)]
    max_per_order: Option<i32>,
    sort_order: Option<i32>,
}

/// The stored zone a patch applies to, locked.
#[derive(sqlx::FromRow)]
pub(super) struct ZoneRow {
    pub(super) show_id: Uuid,
    name: String,
    price_minor: i64,
    capacity: i32,
    held: i32,
    sold: i32,
    min_per_order: i32,
    max_per_order: i32,
    sort_order: i32,
    pub(super) seating: SeatingKind,
}

impl ZonePatch {
    /// The zone's fields after the patch, checked as on create.
    fn apply(&self, row: &ZoneRow) -> ApiResult<ZoneFields> {
        let mut errors = FieldErrors::default();
        let fields = ZoneInput {
            name: self.name.as_deref().unwrap_or(&row.name),
            price_minor: self.price_minor.unwrap_or(row.price_minor),
            capacity: self.capacity.unwrap_or(row.capacity),
            min_per_order: self.min_per_order.unwrap_or(row.min_per_order),
            max_per_order: self.max_per_order.unwrap_or(row.max_per_order),
            sort_order: self.sort_order.unwrap_or(row.sort_order),
        }
        .parse("zone", &mut errors);
        errors.finish(|| fields)
    }
}

/// Edit a zone; capacity changes keep `available + held + sold = capacity`.
#[utoipa::path(patch, path = "/admin/v1/events/{event_id}/zones/{zone_id}", tag = "admin", request_body = ZonePatch,
    security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid), ("zone_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "conflict: capacity below held + sold"),
              problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn patch_zone(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams((event_id, zone_id)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<ZonePatch>,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let zone_id: ZoneId = path_id("zone_id", &zone_id)?;
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    let row = lock_zone(&mut tx, event_id, zone_id).await?;
    if row.seating == SeatingKind::Assigned && patch.capacity.is_some_and(|c| c != row.capacity) {
        return Err(ApiError::client(
            ErrorCode::Conflict,
            "an assigned zone's capacity is its seats that are not blocked: it cannot be set",
        ));
    }
    let fields = patch.apply(&row)?;
    let taken = row.held + row.sold;
    if fields.capacity < taken {
        return Err(ApiError::client(
            ErrorCode::Conflict,
            format!("capacity must be at least held + sold = {taken}"),
        ));
    }
    let change = update_zone(&mut tx, ShowId(row.show_id), zone_id, &fields).await?;
    outbox::enqueue(&mut tx, &change).await?;
    commit_edit(&state, tx, event_id).await
}

/// The zone of this event, locked for the edit (its fields, counters and seating; seat
/// blocking locks it the same way).
pub(super) async fn lock_zone(
    conn: &mut PgConnection,
    event_id: EventId,
    zone_id: ZoneId,
) -> ApiResult<ZoneRow> {
    let row: Option<ZoneRow> = sqlx::query_as(
        "select z.show_id, z.name, z.price_minor, z.capacity, z.held, z.sold, z.min_per_order, z.max_per_order,
                z.sort_order, z.seating
         from zones z join shows s on s.id = z.show_id where z.id = $1 and s.event_id = $2 for update of z",
    )
    .bind(zone_id.as_uuid())
    .bind(event_id.as_uuid())
    .fetch_optional(conn)
    .await?;
    row.ok_or_else(|| ApiError::not_found("zone"))
}

/// Writes the zone's new fields and counters; returns the availability change to announce.
async fn update_zone(
    conn: &mut PgConnection,
    show_id: ShowId,
    zone_id: ZoneId,
    fields: &ZoneFields,
) -> ApiResult<Change> {
    let (available, held, sold, version): (i32, i32, i32, i64) = sqlx::query_as(
        "update zones set name = $2, price_minor = $3, capacity = $4, available = $4 - held - sold,
                min_per_order = $5, max_per_order = $6, sort_order = $7, version = version + 1
         where id = $1 returning available, held, sold, version",
    )
    .bind(zone_id.as_uuid())
    .bind(&fields.name)
    .bind(fields.price_minor)
    .bind(fields.capacity)
    .bind(fields.limits.min)
    .bind(fields.limits.max)
    .bind(fields.sort_order)
    .fetch_one(conn)
    .await?;
    Ok(Change::availability(ZoneCounters {
        show_id,
        zone_id,
        available,
        held,
        sold,
        version,
    }))
}
