//! `POST /admin/v1/events`: a [`NewEvent`] request is parsed once into a [`ValidEvent`]
//! and inserted, with its venue, shows and zones, as a draft. The demo seed uses the same
//! path ([`insert_event`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use tessera_domain::catalog::{EventDetail, SeatingKind};
use tessera_domain::invalidation::Change;
use tessera_domain::seats::{Seat, SeatSpec};
use tessera_domain::{fields, Currency, EventId, FieldError, Problem, TenantId};
use uuid::Uuid;

use super::fields::{
    category, text, EventFields, EventInput, FieldErrors, Window, ZoneFields, ZoneInput,
};
use super::{constraint_error, detail_of};
use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::openapi::problems;
use crate::outbox;

/// Bounds on one event, so one request cannot create unbounded work.
const SHOWS_PER_EVENT_MAX: usize = 200;
const ZONES_PER_SHOW_MAX: usize = 50;
const SLUG_LEN_MAX: usize = 100;
const VENUE_NAME_LEN_MAX: usize = 200;
const VENUE_CITY_LEN_MAX: usize = 100;
/// Per-order limits of a zone that names none (the columns' defaults too).
const MIN_PER_ORDER_DEFAULT: i32 = 1;
const MAX_PER_ORDER_DEFAULT: i32 = 10;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// URL name, unique per tenant: lower-case words joined by `-`.
    #[schema(max_length = 100, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    slug: String,
    /// One line: no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    title: String,
    /// Tabs and line breaks allowed; no other control characters.
    #[serde(default)]
    #[schema(
        max_length = 10000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    description: String,
    /// A category slug (see `GET /v1/categories`).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    category: String,
    #[serde(default)]
    featured: bool,
    booking_opens_at: Option<DateTime<Utc>>,
    booking_closes_at: Option<DateTime<Utc>>,
    #[schema(minimum = 1)]
    max_tickets_per_customer: Option<i32>,
    venue: NewVenue,
    #[schema(min_items = 1, max_items = 200)]
    shows: Vec<NewShow>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVenue {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    city: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    #[schema(pattern = r"^[A-Z]{2}$")]
    country: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    timezone: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShow {
    /// Every instant lies from 2000-01-01T00:00:00Z and before 2200-01-01T00:00:00Z.
    starts_at: DateTime<Utc>,
    sale_starts_at: Option<DateTime<Utc>>,
    sale_ends_at: Option<DateTime<Utc>>,
    #[schema(min_items = 1, max_items = 50)]
    zones: Vec<NewZone>,
}

fn min_per_order_default() -> i32 {
    MIN_PER_ORDER_DEFAULT
}
fn max_per_order_default() -> i32 {
    MAX_PER_ORDER_DEFAULT
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewZone {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: String,
    #[schema(minimum = 0, maximum = 1000000000)]
    price_minor: i64,
    /// Every zone of an event has the same one.
    currency: Currency,
    /// Tickets a general-admission zone sells (required there). An assigned zone's
    /// capacity is its seat count: omit it, or give that number.
    #[schema(minimum = 0, maximum = 1000000)]
    capacity: Option<i32>,
    /// `general_admission` (the default): any place in the area, by quantity; `assigned`:
    /// specific seats, described in `seats`.
    #[serde(default)]
    seating: SeatingKind,
    /// An assigned zone's seats (required there, refused elsewhere), in layout order: a
    /// seat's index in this order is its id within the zone.
    seats: Option<SeatSpec>,
    #[serde(default = "min_per_order_default")]
    #[schema(minimum = 1, maximum = 100)]
    min_per_order: i32,
    #[serde(default = "max_per_order_default")]
    #[schema(minimum = 1, maximum = 100)]
    max_per_order: i32,
    #[serde(default)]
    sort_order: i32,
}

/// A [`NewEvent`] that passed every check: what [`insert_event`] writes.
pub struct ValidEvent {
    slug: String,
    fields: EventFields,
    category: String,
    featured: bool,
    venue: ValidVenue,
    shows: Vec<ValidShow>,
    /// The one currency of all zones.
    currency: Currency,
}

struct ValidVenue {
    name: String,
    city: String,
    /// ISO 3166-1 alpha-2.
    country: String,
    timezone: String,
}

struct ValidShow {
    starts_at: DateTime<Utc>,
    sale: Window,
    zones: Vec<ValidZone>,
}

struct ValidZone {
    fields: ZoneFields,
    /// An assigned zone's seats in layout order; empty for general admission.
    seats: Vec<Seat>,
}

impl NewEvent {
    /// Every check of a new event, all problems reported at once.
    pub(crate) fn parse(&self) -> Result<ValidEvent, ApiError> {
        let mut errors = FieldErrors::default();
        let slug = errors.check(slug(&self.slug));
        let category = errors.check(category(&self.category));
        let fields = EventInput {
            title: &self.title,
            description: &self.description,
            booking_opens_at: self.booking_opens_at,
            booking_closes_at: self.booking_closes_at,
            max_tickets_per_customer: self.max_tickets_per_customer,
        }
        .parse(&mut errors);
        let venue = self.venue.parse(&mut errors);
        let shows = parse_shows(&self.shows, &mut errors);
        let currency = one_currency(&self.shows, &mut errors);
        errors.finish(|| {
            Some(ValidEvent {
                slug: slug?,
                fields: fields?,
                category: category?,
                featured: self.featured,
                venue: venue?,
                shows: shows?,
                currency: currency?,
            })
        })
    }
}

fn slug(value: &str) -> Result<String, FieldError> {
    let words_ok = value.split('-').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if value.is_empty() || value.len() > SLUG_LEN_MAX || !words_ok {
        return Err(FieldError::new(
            "slug",
            format!("lower-case letters and digits in words joined by '-', at most {SLUG_LEN_MAX}"),
        ));
    }
    Ok(value.to_owned())
}

impl NewVenue {
    fn parse(&self, errors: &mut FieldErrors) -> Option<ValidVenue> {
        let name = errors.check(text("venue.name", &self.name, VENUE_NAME_LEN_MAX));
        let city = errors.check(text("venue.city", &self.city, VENUE_CITY_LEN_MAX));
        let country = errors.check(country(&self.country));
        let timezone = errors.check(fields::time_zone("venue.timezone", &self.timezone));
        Some(ValidVenue {
            name: name?,
            city: city?,
            country: country?,
            timezone: timezone?,
        })
    }
}

fn country(value: &str) -> Result<String, FieldError> {
    if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(FieldError::new(
            "venue.country",
            "must be an ISO 3166-1 alpha-2 code, e.g. DE",
        ));
    }
    Ok(value.to_owned())
}

/// Every show parsed (so each reports its problems), then `None` if any failed.
fn parse_shows(shows: &[NewShow], errors: &mut FieldErrors) -> Option<Vec<ValidShow>> {
    if shows.is_empty() || shows.len() > SHOWS_PER_EVENT_MAX {
        errors.push("shows", format!("need 1 to {SHOWS_PER_EVENT_MAX} shows"));
    }
    let parsed: Vec<Option<ValidShow>> = shows
        .iter()
        .enumerate()
        .map(|(i, show)| show.parse(&format!("shows[{i}]"), errors))
        .collect();
    parsed.into_iter().collect()
}

impl NewShow {
    fn parse(&self, at: &str, errors: &mut FieldErrors) -> Option<ValidShow> {
        let starts_at = errors.check(fields::instant(&format!("{at}.starts_at"), self.starts_at));
        let sale = Window::parse(
            (&format!("{at}.sale_starts_at"), self.sale_starts_at),
            (&format!("{at}.sale_ends_at"), self.sale_ends_at),
            errors,
        );
        if self.zones.is_empty() || self.zones.len() > ZONES_PER_SHOW_MAX {
            errors.push(
                format!("{at}.zones"),
                format!("need 1 to {ZONES_PER_SHOW_MAX} zones"),
            );
        }
        let zones: Vec<Option<ValidZone>> = self
            .zones
            .iter()
            .enumerate()
            .map(|(j, zone)| zone.parse(&format!("{at}.zones[{j}]"), errors))
            .collect();
        Some(ValidShow {
            starts_at: starts_at?,
            sale: sale?,
            zones: zones.into_iter().collect::<Option<_>>()?,
        })
    }
}

impl NewZone {
    /// The zone's fields (the rules edits share) and, for an assigned zone, its seats.
    fn parse(&self, at: &str, errors: &mut FieldErrors) -> Option<ValidZone> {
        let seats = self.seats(at, errors);
        let capacity = self.capacity(at, seats.as_deref(), errors);
        let fields = ZoneInput {
            name: &self.name,
            price_minor: self.price_minor,
            capacity: capacity.unwrap_or_default(),
            min_per_order: self.min_per_order,
            max_per_order: self.max_per_order,
            sort_order: self.sort_order,
        }
        .parse(at, errors);
        capacity?;
        Some(ValidZone {
            fields: fields?,
            seats: seats?,
        })
    }

    /// The seats an assigned zone needs and only it may have (none for general admission).
    fn seats(&self, at: &str, errors: &mut FieldErrors) -> Option<Vec<Seat>> {
        let field = format!("{at}.seats");
        match (self.seating, &self.seats) {
            (SeatingKind::GeneralAdmission, None) => Some(Vec::new()),
            (SeatingKind::GeneralAdmission, Some(_)) => {
                errors.push(field, "only an assigned zone has seats");
                None
            }
            (SeatingKind::Assigned, None) => {
                errors.push(field, "an assigned zone needs its seats");
                None
            }
            (SeatingKind::Assigned, Some(spec)) => match spec.parse(&field) {
                Ok(seats) => Some(seats),
                Err(broken) => {
                    for e in broken {
                        errors.push(e.field, e.message);
                    }
                    None
                }
            },
        }
    }

    /// General admission: the given capacity. Assigned: the seat count, which a given
    /// capacity must equal.
    fn capacity(&self, at: &str, seats: Option<&[Seat]>, errors: &mut FieldErrors) -> Option<i32> {
        let field = format!("{at}.capacity");
        match (self.seating, self.capacity) {
            (SeatingKind::GeneralAdmission, Some(capacity)) => Some(capacity),
            (SeatingKind::GeneralAdmission, None) => {
                errors.push(field, "required for a general-admission zone");
                None
            }
            (SeatingKind::Assigned, given) => {
                let count = i32::try_from(seats?.len()).ok()?;
                if given.is_some_and(|c| c != count) {
                    errors.push(
                        field,
                        format!("an assigned zone's capacity is its seat count ({count})"),
                    );
                    return None;
                }
                Some(count)
            }
        }
    }
}

/// The currency every zone shares (the first zone's); each zone with another one is an
/// error. `None` without an error when there are no zones (reported as such).
fn one_currency(shows: &[NewShow], errors: &mut FieldErrors) -> Option<Currency> {
    let currency = shows.iter().flat_map(|s| &s.zones).next()?.currency;
    for (i, show) in shows.iter().enumerate() {
        for (j, zone) in show.zones.iter().enumerate() {
            if zone.currency != currency {
                errors.push(
                    format!("shows[{i}].zones[{j}].currency"),
                    "all zones of an event share one currency",
                );
            }
        }
    }
    Some(currency)
}

/// Create an event with its venue, shows and zones, as a draft.
#[utoipa::path(
    post, path = "/admin/v1/events", tag = "admin", request_body = NewEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, body = EventDetail),
        problems::JsonBody,
        problems::Unauthorized,
        (status = 409, body = Problem, content_type = "application/problem+json", description = "conflict: slug taken"),
        problems::Unavailable,
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

/// Parses `new` and inserts it, with its venue, shows and zones, as a draft owned by
/// `tenant`, in the caller's transaction. The admin API and the demo seed both use it.
pub async fn insert_event(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewEvent,
) -> ApiResult<EventId> {
    let event = new.parse()?;
    let venue_id = insert_venue(conn, tenant, &event.venue).await?;
    let event_id = insert_event_row(conn, tenant, venue_id, &event).await?;
    for show in &event.shows {
        insert_show(conn, event_id, show, event.currency).await?;
    }
    outbox::enqueue(conn, &Change::Catalog { event_id }).await?;
    Ok(event_id)
}

async fn insert_venue(
    conn: &mut PgConnection,
    tenant: TenantId,
    venue: &ValidVenue,
) -> ApiResult<Uuid> {
    let venue_id = Uuid::now_v7();
    sqlx::query("insert into venues (id, tenant_id, name, city, country, timezone) values ($1, $2, $3, $4, $5, $6)")
        .bind(venue_id)
        .bind(tenant.as_uuid())
        .bind(&venue.name)
        .bind(&venue.city)
        .bind(&venue.country)
        .bind(&venue.timezone)
        .execute(conn)
        .await?;
    Ok(venue_id)
}

async fn insert_event_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    venue_id: Uuid,
    event: &ValidEvent,
) -> ApiResult<EventId> {
    let event_id = EventId(Uuid::now_v7());
    let starts_at = event.shows.iter().map(|s| s.starts_at).min();
    sqlx::query(
        "insert into events (id, tenant_id, venue_id, category_slug, slug, title, description, featured,
                             booking_opens_at, booking_closes_at, max_tickets_per_customer, starts_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(event_id.as_uuid())
    .bind(tenant.as_uuid())
    .bind(venue_id)
    .bind(&event.category)
    .bind(&event.slug)
    .bind(&event.fields.title)
    .bind(&event.fields.description)
    .bind(event.featured)
    .bind(event.fields.booking.opens)
    .bind(event.fields.booking.closes)
    .bind(event.fields.max_tickets_per_customer)
    .bind(starts_at)
    .execute(conn)
    .await
    .map_err(constraint_error)?;
    Ok(event_id)
}

async fn insert_show(
    conn: &mut PgConnection,
    event_id: EventId,
    show: &ValidShow,
    currency: Currency,
) -> ApiResult<()> {
    let show_id = Uuid::now_v7();
    sqlx::query("insert into shows (id, event_id, starts_at, sale_starts_at, sale_ends_at) values ($1, $2, $3, $4, $5)")
        .bind(show_id)
        .bind(event_id.as_uuid())
        .bind(show.starts_at)
        .bind(show.sale.opens)
        .bind(show.sale.closes)
        .execute(&mut *conn)
        .await?;
    for zone in &show.zones {
        let zone_id = Uuid::now_v7();
        let fields = &zone.fields;
        let seating = if zone.seats.is_empty() {
            SeatingKind::GeneralAdmission
        } else {
            SeatingKind::Assigned
        };
        sqlx::query(
            "insert into zones (id, show_id, name, price_minor, currency, capacity, available,
                                min_per_order, max_per_order, sort_order, seating)
             values ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10)",
        )
        .bind(zone_id)
        .bind(show_id)
        .bind(&fields.name)
        .bind(fields.price_minor)
        .bind(currency)
        .bind(fields.capacity)
        .bind(fields.limits.min)
        .bind(fields.limits.max)
        .bind(fields.sort_order)
        .bind(seating)
        .execute(&mut *conn)
        .await?;
        crate::seats::insert_layout(conn, zone_id, &zone.seats).await?;
    }
    Ok(())
}
