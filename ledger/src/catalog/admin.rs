//! Admin writes, scoped to the bearer token's tenant: create an event with its venue,
//! shows and zones in one request (as a draft), publish, edit, cancel. Every change bumps
//! the event's `version` and writes a catalog outbox message in the same transaction;
//! capacity edits also write the zone's new counters, keeping invariant 1.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use sqlx::PgConnection;
use tessera_domain::catalog::EventDetail;
use tessera_domain::invalidation::Change;
use tessera_domain::money::PRICE_MINOR_MAX;
use tessera_domain::{Currency, ErrorCode, EventId, FieldError, Problem, ShowId, TenantId, ZoneId};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::outbox;

/// Bounds on one event, so one request cannot create unbounded work.
const SHOWS_PER_EVENT_MAX: usize = 200;
const ZONES_PER_SHOW_MAX: usize = 50;
const ZONE_CAPACITY_MAX: i32 = 1_000_000;
const TITLE_LEN_MAX: usize = 200;
const DESCRIPTION_LEN_MAX: usize = 10_000;

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
}

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// URL name, unique per tenant: lower-case words joined by `-`.
    slug: String,
    title: String,
    #[serde(default)]
    description: String,
    /// A category slug (see `GET /v1/categories`).
    category: String,
    #[serde(default)]
    featured: bool,
    booking_opens_at: Option<DateTime<Utc>>,
    booking_closes_at: Option<DateTime<Utc>>,
    max_tickets_per_customer: Option<i32>,
    venue: NewVenue,
    shows: Vec<NewShow>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVenue {
    name: String,
    city: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    country: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    timezone: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShow {
    starts_at: DateTime<Utc>,
    sale_starts_at: Option<DateTime<Utc>>,
    sale_ends_at: Option<DateTime<Utc>>,
    zones: Vec<NewZone>,
}

fn one() -> i32 {
    1
}
fn ten() -> i32 {
    10
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewZone {
    name: String,
    price_minor: i64,
    currency: Currency,
    capacity: i32,
    #[serde(default = "one")]
    min_per_order: i32,
    #[serde(default = "ten")]
    max_per_order: i32,
    #[serde(default)]
    sort_order: i32,
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() || value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
}

fn check_window(
    errors: &mut Vec<FieldError>,
    field: &str,
    opens: Option<DateTime<Utc>>,
    closes: Option<DateTime<Utc>>,
) {
    if let (Some(o), Some(c)) = (opens, closes) {
        if o >= c {
            errors.push(FieldError::new(
                field,
                "the window must open before it closes",
            ));
        }
    }
}

fn check_zone(errors: &mut Vec<FieldError>, at: &str, z: &ZoneFields) {
    check_text(errors, &format!("{at}.name"), &z.name, 100);
    if !(0..=PRICE_MINOR_MAX).contains(&z.price_minor) {
        errors.push(FieldError::new(
            format!("{at}.price_minor"),
            format!("must be 0 to {PRICE_MINOR_MAX}"),
        ));
    }
    if !(0..=ZONE_CAPACITY_MAX).contains(&z.capacity) {
        errors.push(FieldError::new(
            format!("{at}.capacity"),
            format!("must be 0 to {ZONE_CAPACITY_MAX}"),
        ));
    }
    let max_order = tessera_domain::holds::QUANTITY_PER_ORDER_MAX;
    if z.min_per_order < 1 || z.min_per_order > z.max_per_order || z.max_per_order > max_order {
        errors.push(FieldError::new(
            format!("{at}.max_per_order"),
            format!("need 1 <= min_per_order <= max_per_order <= {max_order}"),
        ));
    }
}

/// The editable fields of a zone, checked the same way on create and on edit.
struct ZoneFields {
    name: String,
    price_minor: i64,
    capacity: i32,
    min_per_order: i32,
    max_per_order: i32,
}

impl NewEvent {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        if !is_slug(&self.slug) {
            errors.push(FieldError::new(
                "slug",
                "lower-case letters and digits in words joined by '-', at most 100",
            ));
        }
        check_text(&mut errors, "title", &self.title, TITLE_LEN_MAX);
        if self.description.chars().count() > DESCRIPTION_LEN_MAX {
            errors.push(FieldError::new(
                "description",
                format!("at most {DESCRIPTION_LEN_MAX} characters"),
            ));
        }
        if self.max_tickets_per_customer.is_some_and(|m| m < 1) {
            errors.push(FieldError::new(
                "max_tickets_per_customer",
                "must be at least 1",
            ));
        }
        check_window(
            &mut errors,
            "booking_closes_at",
            self.booking_opens_at,
            self.booking_closes_at,
        );
        check_text(&mut errors, "venue.name", &self.venue.name, 200);
        check_text(&mut errors, "venue.city", &self.venue.city, 100);
        if self.venue.country.len() != 2
            || !self.venue.country.bytes().all(|b| b.is_ascii_uppercase())
        {
            errors.push(FieldError::new(
                "venue.country",
                "must be an ISO 3166-1 alpha-2 code, e.g. DE",
            ));
        }
        check_text(&mut errors, "venue.timezone", &self.venue.timezone, 64);
        if self.shows.is_empty() || self.shows.len() > SHOWS_PER_EVENT_MAX {
            errors.push(FieldError::new(
                "shows",
                format!("need 1 to {SHOWS_PER_EVENT_MAX} shows"),
            ));
        }
        let currency = self
            .shows
            .iter()
            .flat_map(|s| &s.zones)
            .map(|z| z.currency)
            .next();
        for (i, show) in self.shows.iter().enumerate() {
            check_window(
                &mut errors,
                &format!("shows[{i}].sale_ends_at"),
                show.sale_starts_at,
                show.sale_ends_at,
            );
            if show.zones.is_empty() || show.zones.len() > ZONES_PER_SHOW_MAX {
                errors.push(FieldError::new(
                    format!("shows[{i}].zones"),
                    format!("need 1 to {ZONES_PER_SHOW_MAX} zones"),
                ));
            }
            for (j, zone) in show.zones.iter().enumerate() {
                let at = format!("shows[{i}].zones[{j}]");
                check_zone(&mut errors, &at, &zone.fields());
                if Some(zone.currency) != currency {
                    errors.push(FieldError::new(
                        format!("{at}.currency"),
                        "all zones of an event share one currency",
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

impl NewZone {
    fn fields(&self) -> ZoneFields {
        ZoneFields {
            name: self.name.clone(),
            price_minor: self.price_minor,
            capacity: self.capacity,
            min_per_order: self.min_per_order,
            max_per_order: self.max_per_order,
        }
    }
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

/// Create an event with its venue, shows and zones, as a draft.
#[utoipa::path(
    post, path = "/admin/v1/events", tag = "admin", request_body = NewEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, body = EventDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "slug taken"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    JsonBody(new): JsonBody<NewEvent>,
) -> ApiResult<(StatusCode, Json<EventDetail>)> {
    let mut tx = state.pool.begin().await?;
    let event_id = insert_event(&mut tx, tenant.0, &new).await?;
    let detail = detail_of(&mut tx, event_id).await?;
    tx.commit().await?;
    state.outbox_wake.notify();
    Ok((StatusCode::CREATED, Json(detail)))
}

/// Validates `new` and inserts it, with its venue, shows and zones, as a draft owned by
/// `tenant`, in the caller's transaction. The admin API and the demo seed both use it.
pub async fn insert_event(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewEvent,
) -> ApiResult<EventId> {
    new.validate()?;
    let venue_id = Uuid::now_v7();
    sqlx::query("insert into venues (id, tenant_id, name, city, country, timezone) values ($1, $2, $3, $4, $5, $6)")
        .bind(venue_id)
        .bind(tenant.as_uuid())
        .bind(&new.venue.name)
        .bind(&new.venue.city)
        .bind(&new.venue.country)
        .bind(&new.venue.timezone)
        .execute(&mut *conn)
        .await?;
    let event_id = EventId(Uuid::now_v7());
    let starts_at = new.shows.iter().map(|s| s.starts_at).min();
    sqlx::query(
        "insert into events (id, tenant_id, venue_id, category_slug, slug, title, description, featured,
                             booking_opens_at, booking_closes_at, max_tickets_per_customer, starts_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event_id.as_uuid())
    .bind(tenant.as_uuid())
    .bind(venue_id)
    .bind(&new.category)
    .bind(&new.slug)
    .bind(&new.title)
    .bind(&new.description)
    .bind(new.featured)
    .bind(new.booking_opens_at)
    .bind(new.booking_closes_at)
    .bind(new.max_tickets_per_customer)
    .bind(starts_at)
    .execute(&mut *conn)
    .await
    .map_err(constraint_error)?;
    for show in &new.shows {
        let show_id = Uuid::now_v7();
        sqlx::query("insert into shows (id, event_id, starts_at, sale_starts_at, sale_ends_at) values ($1, $2, $3, $4, $5)")
            .bind(show_id)
            .bind(event_id.as_uuid())
            .bind(show.starts_at)
            .bind(show.sale_starts_at)
            .bind(show.sale_ends_at)
            .execute(&mut *conn)
            .await?;
        for zone in &show.zones {
            sqlx::query(
                "insert into zones (id, show_id, name, price_minor, currency, capacity, available,
                                    min_per_order, max_per_order, sort_order)
                 values ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)",
            )
            .bind(Uuid::now_v7())
            .bind(show_id)
            .bind(&zone.name)
            .bind(zone.price_minor)
            .bind(zone.currency.as_str())
            .bind(zone.capacity)
            .bind(zone.min_per_order)
            .bind(zone.max_per_order)
            .bind(zone.sort_order)
            .execute(&mut *conn)
            .await?;
        }
    }
    outbox::enqueue(conn, &Change::Catalog { event_id }).await?;
    Ok(event_id)
}

async fn detail_of(conn: &mut PgConnection, event_id: EventId) -> ApiResult<EventDetail> {
    super::load_event_detail(conn, event_id)
        .await?
        .map(|(_, d)| d)
        .ok_or_else(|| ApiError::not_found("event"))
}

/// Locks the event row and checks the tenant owns it; returns its status.
async fn lock_owned_event(
    conn: &mut PgConnection,
    tenant: AdminTenant,
    event_id: EventId,
) -> ApiResult<String> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("select tenant_id, status from events where id = $1 for update")
            .bind(event_id.as_uuid())
            .fetch_optional(conn)
            .await?;
    let (owner, status) = row.ok_or_else(|| ApiError::not_found("event"))?;
    tenant.owns(TenantId(owner))?;
    Ok(status)
}

/// Bumps the event's version and announces the change; then returns the new detail.
async fn finish_edit(conn: &mut PgConnection, event_id: EventId) -> ApiResult<EventDetail> {
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
    tx.commit().await?;
    state.outbox_wake.notify();
    Ok(Json(detail))
}

/// One event of this tenant, drafts included.
#[utoipa::path(get, path = "/admin/v1/events/{event_id}", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), (status = 403, body = Problem, content_type = "application/problem+json")))]
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

/// Make a draft event visible and on sale (idempotent).
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/publish", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), (status = 409, body = Problem, content_type = "application/problem+json", description = "cancelled")))]
pub(crate) async fn publish_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<EventDetail>> {
    set_status(&state, tenant, &event_id, "published").await
}

/// Cancel an event: no new holds or confirms (idempotent).
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn cancel_event(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<EventDetail>> {
    set_status(&state, tenant, &event_id, "cancelled").await
}

async fn set_status(
    state: &AppState,
    tenant: AdminTenant,
    event_id: &str,
    to: &str,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", event_id)?;
    let mut tx = state.pool.begin().await?;
    let detail = change_status(&mut tx, tenant, event_id, to).await?;
    tx.commit().await?;
    state.outbox_wake.notify();
    Ok(Json(detail))
}

/// Moves an event to `to` (`published` or `cancelled`) in the caller's transaction.
/// Idempotent; a cancelled event stays cancelled.
pub async fn change_status(
    conn: &mut PgConnection,
    tenant: AdminTenant,
    event_id: EventId,
    to: &str,
) -> ApiResult<EventDetail> {
    let status = lock_owned_event(conn, tenant, event_id).await?;
    if status == to {
        return detail_of(conn, event_id).await;
    }
    if status == "cancelled" {
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
    finish_edit(conn, event_id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPatch {
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
    featured: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    booking_opens_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    booking_closes_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    max_tickets_per_customer: Option<Option<i32>>,
}

/// Edit an event's fields; absent fields are kept, `null` clears a nullable one.
#[utoipa::path(patch, path = "/admin/v1/events/{event_id}", tag = "admin", request_body = EventPatch, security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), (status = 422, body = Problem, content_type = "application/problem+json")))]
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
    let title = patch.title.unwrap_or(current.title);
    let description = patch.description.unwrap_or(current.description);
    let opens = patch.booking_opens_at.unwrap_or(current.booking_opens_at);
    let closes = patch.booking_closes_at.unwrap_or(current.booking_closes_at);
    let max_per_customer = patch
        .max_tickets_per_customer
        .unwrap_or(current.max_tickets_per_customer);
    let mut errors = Vec::new();
    check_text(&mut errors, "title", &title, TITLE_LEN_MAX);
    if description.chars().count() > DESCRIPTION_LEN_MAX {
        errors.push(FieldError::new(
            "description",
            format!("at most {DESCRIPTION_LEN_MAX} characters"),
        ));
    }
    check_window(&mut errors, "booking_closes_at", opens, closes);
    if max_per_customer.is_some_and(|m| m < 1) {
        errors.push(FieldError::new(
            "max_tickets_per_customer",
            "must be at least 1",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    sqlx::query(
        "update events set title = $2, description = $3, category_slug = $4, featured = $5,
                booking_opens_at = $6, booking_closes_at = $7, max_tickets_per_customer = $8
         where id = $1",
    )
    .bind(event_id.as_uuid())
    .bind(&title)
    .bind(&description)
    .bind(patch.category.unwrap_or(current.category))
    .bind(patch.featured.unwrap_or(current.featured))
    .bind(opens)
    .bind(closes)
    .bind(max_per_customer)
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
    responses((status = 200, body = EventDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
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
    let starts_at = patch.starts_at.unwrap_or(show.starts_at);
    let opens = patch.sale_starts_at.unwrap_or(show.sale_starts_at);
    let closes = patch.sale_ends_at.unwrap_or(show.sale_ends_at);
    let mut errors = Vec::new();
    check_window(&mut errors, "sale_ends_at", opens, closes);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    sqlx::query(
        "update shows set starts_at = $2, sale_starts_at = $3, sale_ends_at = $4 where id = $1",
    )
    .bind(show_id.as_uuid())
    .bind(starts_at)
    .bind(opens)
    .bind(closes)
    .execute(&mut *tx)
    .await?;
    commit_edit(&state, tx, event_id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZonePatch {
    name: Option<String>,
    price_minor: Option<i64>,
    /// New capacity; must be at least `held + sold`. `available` becomes the difference.
    capacity: Option<i32>,
    min_per_order: Option<i32>,
    max_per_order: Option<i32>,
    sort_order: Option<i32>,
}

/// Edit a zone; capacity changes keep `available + held + sold = capacity`.
#[utoipa::path(patch, path = "/admin/v1/events/{event_id}/zones/{zone_id}", tag = "admin", request_body = ZonePatch,
    security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid), ("zone_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "capacity below held + sold")))]
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
    #[derive(sqlx::FromRow)]
    struct Row {
        show_id: Uuid,
        name: String,
        price_minor: i64,
        capacity: i32,
        held: i32,
        sold: i32,
        min_per_order: i32,
        max_per_order: i32,
        sort_order: i32,
    }
    let row: Option<Row> = sqlx::query_as(
        "select z.show_id, z.name, z.price_minor, z.capacity, z.held, z.sold, z.min_per_order, z.max_per_order, z.sort_order
         from zones z join shows s on s.id = z.show_id where z.id = $1 and s.event_id = $2 for update of z",
    )
    .bind(zone_id.as_uuid())
    .bind(event_id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("zone"))?;
    let fields = ZoneFields {
        name: patch.name.unwrap_or(row.name),
        price_minor: patch.price_minor.unwrap_or(row.price_minor),
        capacity: patch.capacity.unwrap_or(row.capacity),
        min_per_order: patch.min_per_order.unwrap_or(row.min_per_order),
        max_per_order: patch.max_per_order.unwrap_or(row.max_per_order),
    };
    let mut errors = Vec::new();
    check_zone(&mut errors, "zone", &fields);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if fields.capacity < row.held + row.sold {
        return Err(ApiError::client(
            ErrorCode::Conflict,
            format!(
                "capacity must be at least held + sold = {}",
                row.held + row.sold
            ),
        ));
    }
    let (available, held, sold, version): (i32, i32, i32, i64) = sqlx::query_as(
        "update zones set name = $2, price_minor = $3, capacity = $4, available = $4 - held - sold,
                min_per_order = $5, max_per_order = $6, sort_order = $7, version = version + 1
         where id = $1 returning available, held, sold, version",
    )
    .bind(zone_id.as_uuid())
    .bind(&fields.name)
    .bind(fields.price_minor)
    .bind(fields.capacity)
    .bind(fields.min_per_order)
    .bind(fields.max_per_order)
    .bind(patch.sort_order.unwrap_or(row.sort_order))
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::Availability {
        show_id: ShowId(row.show_id),
        zone_id,
        available,
        held,
        sold,
        version,
    };
    outbox::enqueue(&mut tx, &change).await?;
    commit_edit(&state, tx, event_id).await
}
