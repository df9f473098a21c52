//! Loading one event with its venue, shows and zones: shared by the public read and the
//! admin responses.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::catalog::{
    EventDetail, EventStatus, SeatingKind, ShowView, VenueView, ZoneView,
};
use tessera_domain::queue::QueueView;
use tessera_domain::tickets::CheckinKey;
use tessera_domain::{Currency, EventId, ShowId, TenantId, VenueId, ZoneId};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    tenant_id: Uuid,
    slug: String,
    title: String,
    description: String,
    category_slug: String,
    status: EventStatus,
    featured: bool,
    booking_opens_at: Option<DateTime<Utc>>,
    booking_closes_at: Option<DateTime<Utc>>,
    max_tickets_per_customer: Option<i32>,
    version: i64,
    venue_id: Uuid,
    venue_name: String,
    city: String,
    country: String,
    timezone: String,
    queue_admit_per_minute: Option<i32>,
    queue_session_minutes: Option<i32>,
    queue_opens_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ShowRow {
    id: Uuid,
    starts_at: DateTime<Utc>,
    sale_starts_at: Option<DateTime<Utc>>,
    sale_ends_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ZoneRow {
    id: Uuid,
    show_id: Uuid,
    name: String,
    price_minor: i64,
    currency: Currency,
    capacity: i32,
    min_per_order: i32,
    max_per_order: i32,
    sort_order: i32,
    seating: SeatingKind,
}

/// The event with everything under it, and its owning tenant; `None` if it doesn't exist.
/// A stored status, seating or currency this version does not know is a decode error.
pub async fn load_event_detail(
    conn: &mut PgConnection,
    event_id: EventId,
) -> Result<Option<(TenantId, EventDetail)>, sqlx::Error> {
    let event: Option<EventRow> = sqlx::query_as(
        "select e.id, e.tenant_id, e.slug, e.title, e.description, e.category_slug, e.status, e.featured,
                e.booking_opens_at, e.booking_closes_at, e.max_tickets_per_customer, e.version,
                v.id as venue_id, v.name as venue_name, v.city, v.country, v.timezone,
                q.admit_per_minute as queue_admit_per_minute,
                q.session_minutes as queue_session_minutes, q.opens_at as queue_opens_at
         from events e join venues v on v.id = e.venue_id
              left join event_queues q on q.event_id = e.id and q.enabled
         where e.id = $1",
    )
    .bind(event_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(event) = event else { return Ok(None) };
    let shows: Vec<ShowRow> = sqlx::query_as(
        "select id, starts_at, sale_starts_at, sale_ends_at from shows where event_id = $1 order by starts_at, id",
    )
    .bind(event.id)
    .fetch_all(&mut *conn)
    .await?;
    let zones: Vec<ZoneRow> = sqlx::query_as(
        "select z.id, z.show_id, z.name, z.price_minor, z.currency, z.capacity, z.min_per_order, z.max_per_order,
                z.sort_order, z.seating
         from zones z join shows s on s.id = z.show_id where s.event_id = $1 order by z.sort_order, z.name, z.id",
    )
    .bind(event.id)
    .fetch_all(&mut *conn)
    .await?;
    let checkin_keys = crate::tickets::keys::public_keys(&mut *conn, event_id).await?;
    let tenant = TenantId(event.tenant_id);
    let detail = event.into_detail(show_views(shows, &zones), checkin_keys);
    Ok(Some((tenant, detail)))
}

/// The shows in their order, each with its zones (in the zones' order).
fn show_views(shows: Vec<ShowRow>, zones: &[ZoneRow]) -> Vec<ShowView> {
    shows
        .into_iter()
        .map(|show| ShowView {
            show_id: ShowId(show.id),
            starts_at: show.starts_at,
            sale_starts_at: show.sale_starts_at,
            sale_ends_at: show.sale_ends_at,
            zones: zones
                .iter()
                .filter(|z| z.show_id == show.id)
                .map(ZoneRow::view)
                .collect(),
        })
        .collect()
}

impl ZoneRow {
    fn view(&self) -> ZoneView {
        ZoneView {
            zone_id: ZoneId(self.id),
            name: self.name.clone(),
            price_minor: self.price_minor,
            currency: self.currency,
            capacity: self.capacity,
            min_per_order: self.min_per_order,
            max_per_order: self.max_per_order,
            sort_order: self.sort_order,
            seating: self.seating,
        }
    }
}

impl EventRow {
    fn into_detail(self, shows: Vec<ShowView>, checkin_keys: Vec<CheckinKey>) -> EventDetail {
        EventDetail {
            event_id: EventId(self.id),
            slug: self.slug,
            title: self.title,
            description: self.description,
            category: self.category_slug,
            status: self.status,
            featured: self.featured,
            booking_opens_at: self.booking_opens_at,
            booking_closes_at: self.booking_closes_at,
            max_tickets_per_customer: self.max_tickets_per_customer,
            venue: VenueView {
                venue_id: VenueId(self.venue_id),
                name: self.venue_name,
                city: self.city,
                country: self.country,
                timezone: self.timezone,
            },
            shows,
            version: self.version,
            checkin_keys,
            queue: match (self.queue_admit_per_minute, self.queue_session_minutes) {
                (Some(admit_per_minute), Some(session_minutes)) => Some(QueueView {
                    admit_per_minute,
                    session_minutes,
                    opens_at: self.queue_opens_at,
                }),
                _ => None,
            },
        }
    }
}
