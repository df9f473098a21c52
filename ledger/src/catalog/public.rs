//! Public catalog reads. Drafts are invisible; cancelled events stay visible (marked) so
//! ticket holders can find out.
//!
//! The status filters are SQL literals (`e.status = 'published'`), not bound values: they
//! match the partial indexes' predicates, which a generic plan with a parameter could not
//! use. Statuses read back decode into `EventStatus` (an unknown one is an error).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tessera_domain::catalog::{
    Availability, Category, EventDetail, EventPage, EventStatus, EventSummary, ZoneAvailability,
};
use tessera_domain::{fields, Currency, EventId, FieldError, ShowId, ZoneId};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, PathParams, QueryParams};
use crate::openapi::problems;

/// Page size when the client names none, and the most it may ask for (also in the
/// OpenAPI document, whose test compares them).
const PAGE_SIZE_DEFAULT: i64 = 20;
pub const PAGE_SIZE_MAX: i64 = 100;
/// Longest search text, and most words used from it.
pub const QUERY_LEN_MAX: usize = 200;
const QUERY_WORDS_MAX: usize = 8;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/events/{event_id}", get(get_event))
        .route("/v1/categories", get(list_categories))
        .route("/v1/shows/{show_id}/availability", get(show_availability))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Search text: matches title and description, prefix and typo tolerant. No control
    /// characters.
    #[param(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    q: Option<String>,
    /// Category slug. No control characters.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    category: Option<String>,
    /// City, case-insensitive. No control characters.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    city: Option<String>,
    /// Only events with a show starting at or after this instant (RFC 3339, from
    /// 2000-01-01 and before 2200-01-01, as every instant).
    from: Option<DateTime<Utc>>,
    /// Only events with a show starting before this instant (RFC 3339, from 2000-01-01
    /// and before 2200-01-01).
    to: Option<DateTime<Utc>>,
    featured: Option<bool>,
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The position after the last item of a page: `(starts_at, id)`, opaque to clients.
fn encode_cursor(starts_at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", starts_at.to_rfc3339(), id))
}

fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((
        DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        id.parse().ok()?,
    ))
}

/// Turns free text into a prefix `tsquery` (`word:* & word:*`). Only letters and digits
/// pass, so nothing the client types can be a tsquery operator.
fn prefix_tsquery(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(QUERY_WORDS_MAX)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

/// A [`ListQuery`], checked: what the listing query binds.
struct Listing<'q> {
    /// Trimmed, non-empty, at most `QUERY_LEN_MAX` characters.
    text: Option<&'q str>,
    /// `text` as a prefix `tsquery`; `None` if it has no words.
    tsquery: Option<String>,
    /// The position of the previous page's last item.
    after: Option<(DateTime<Utc>, Uuid)>,
    /// `1..=PAGE_SIZE_MAX`.
    limit: i64,
    starts: StartWindow,
}

/// The listing's show-start filters, checked: within [`fields::instant`]'s range
/// (PostgreSQL refuses an instant before 4713 BC, which RFC 3339 with a signed year can
/// name).
struct StartWindow {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl ListQuery {
    fn parse(&self) -> Result<Listing<'_>, ApiError> {
        let starts = self.checked_filters()?;
        let limit = self.limit.unwrap_or(PAGE_SIZE_DEFAULT);
        if !(1..=PAGE_SIZE_MAX).contains(&limit) {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {PAGE_SIZE_MAX}"),
            ));
        }
        let text = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if text.is_some_and(|q| q.chars().count() > QUERY_LEN_MAX) {
            return Err(ApiError::field(
                "q",
                format!("must be at most {QUERY_LEN_MAX} characters"),
            ));
        }
        let after = match &self.cursor {
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| ApiError::field("cursor", "not a cursor from this API"))?,
            ),
            None => None,
        };
        Ok(Listing {
            text,
            tsquery: text.and_then(prefix_tsquery),
            after,
            limit,
            starts,
        })
    }
}

impl ListQuery {
    /// The free-text filters carry no control characters (the shared rule): PostgreSQL
    /// refuses NUL in `text`, and no other one can match a stored name. The instants are
    /// within the shared range; they are returned, checked, with every error at once.
    fn checked_filters(&self) -> Result<StartWindow, ApiError> {
        let filters = [
            ("q", &self.q),
            ("category", &self.category),
            ("city", &self.city),
        ];
        let mut errors: Vec<FieldError> = filters
            .into_iter()
            .filter_map(|(field, value)| fields::no_controls(field, value.as_deref()?).err())
            .collect();
        let mut instant = |field: &str, at: Option<DateTime<Utc>>| {
            fields::optional_instant(field, at).unwrap_or_else(|e| {
                errors.push(e);
                None
            })
        };
        let window = StartWindow {
            from: instant("from", self.from),
            to: instant("to", self.to),
        };
        if errors.is_empty() {
            Ok(window)
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Uuid,
    slug: String,
    title: String,
    category_slug: String,
    city: String,
    venue_name: String,
    featured: bool,
    status: EventStatus,
    starts_at: DateTime<Utc>,
    price_minor: Option<i64>,
    currency: Option<Currency>,
}

impl SummaryRow {
    fn summary(self) -> EventSummary {
        EventSummary {
            event_id: EventId(self.id),
            slug: self.slug,
            title: self.title,
            category: self.category_slug,
            city: self.city,
            venue_name: self.venue_name,
            featured: self.featured,
            status: self.status,
            starts_at: Some(self.starts_at),
            price_from_minor: self.price_minor,
            currency: self.currency,
        }
    }
}

/// Published events, filtered, ordered by their first show.
#[utoipa::path(
    get, path = "/v1/events", tag = "catalog", params(ListQuery),
    responses((status = 200, body = EventPage), problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Json<EventPage>> {
    let listing = query.parse()?;
    let rows = fetch_summaries(&state.pool, &query, &listing).await?;
    Ok(Json(page_of(rows, listing.limit)))
}

/// Up to `limit + 1` published events after the cursor (the extra one says whether
/// another page follows).
async fn fetch_summaries(
    pool: &sqlx::PgPool,
    query: &ListQuery,
    listing: &Listing<'_>,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    sqlx::query_as(
        "select e.id, e.slug, e.title, e.category_slug, v.city, v.name as venue_name, e.featured, e.status,
                e.starts_at, p.price_minor, p.currency
         from events e
         join venues v on v.id = e.venue_id
         left join lateral (
             select z.price_minor, z.currency from zones z join shows s on s.id = z.show_id
             where s.event_id = e.id order by z.price_minor limit 1) p on true
         where e.status = 'published' and e.starts_at is not null
           and ($1::text is null or e.search @@ to_tsquery('simple', $1) or $2 <% e.title)
           and ($3::text is null or e.category_slug = $3)
           and ($4::text is null or lower(v.city) = lower($4))
           and ($5::bool is null or e.featured = $5)
           and (($6::timestamptz is null and $7::timestamptz is null) or exists (
               select 1 from shows s where s.event_id = e.id
               and ($6::timestamptz is null or s.starts_at >= $6)
               and ($7::timestamptz is null or s.starts_at < $7)))
           and ($8::timestamptz is null or (e.starts_at, e.id) > ($8, $9))
         order by e.starts_at, e.id
         limit $10",
    )
    .bind(&listing.tsquery)
    .bind(listing.text)
    .bind(&query.category)
    .bind(&query.city)
    .bind(query.featured)
    .bind(listing.starts.from)
    .bind(listing.starts.to)
    .bind(listing.after.map(|a| a.0))
    .bind(listing.after.map(|a| a.1))
    .bind(listing.limit + 1)
    // Planned per call for the filters actually given: a generic plan for all the
    // `$n is null or …` branches cannot use the search indexes.
    .persistent(false)
    .fetch_all(pool)
    .await
}

/// The first `limit` rows as a page, with a cursor if more rows followed.
fn page_of(rows: Vec<SummaryRow>, limit: i64) -> EventPage {
    let has_more = rows.len() as i64 > limit;
    let items: Vec<EventSummary> = rows
        .into_iter()
        .take(limit as usize)
        .map(SummaryRow::summary)
        .collect();
    let next_cursor = match items.last() {
        Some(last) if has_more => last
            .starts_at
            .map(|at| encode_cursor(at, last.event_id.as_uuid())),
        _ => None,
    };
    EventPage { items, next_cursor }
}

/// One event with its venue, shows and zones (prices, capacities, per-order limits).
#[utoipa::path(
    get, path = "/v1/events/{event_id}", tag = "catalog",
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EventDetail), problems::NotFound, problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<EventDetail>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let mut conn = state.pool.acquire().await?;
    match super::load_event_detail(&mut conn, event_id).await? {
        Some((_, detail)) if detail.status != EventStatus::Draft => Ok(Json(detail)),
        _ => Err(ApiError::not_found("event")),
    }
}

/// Categories with the number of published events in each.
#[utoipa::path(get, path = "/v1/categories", tag = "catalog",
    responses((status = 200, body = [Category]), problems::Unavailable))]
pub(crate) async fn list_categories(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Category>>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "select c.slug, c.name, count(e.id) from categories c
         left join events e on e.category_slug = c.slug and e.status = 'published'
         group by c.slug, c.name order by c.name",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(slug, name, event_count)| Category {
                slug,
                name,
                event_count,
            })
            .collect(),
    ))
}

/// Live counters of every zone of a show, each with its `version`.
#[utoipa::path(
    get, path = "/v1/shows/{show_id}/availability", tag = "catalog",
    params(("show_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Availability), problems::NotFound, problems::Invalid, problems::Unavailable)
)]
pub(crate) async fn show_availability(
    State(state): State<AppState>,
    PathParams(show_id): PathParams<String>,
) -> ApiResult<Json<Availability>> {
    let show_id: ShowId = path_id("show_id", &show_id)?;
    let rows: Vec<(Uuid, i32, i32, i32, i32, i64, Uuid)> = sqlx::query_as(
        "select z.id, z.available, z.held, z.sold, z.capacity, z.version, s.event_id
         from shows s join events e on e.id = s.event_id join zones z on z.show_id = s.id
         where s.id = $1 and e.status <> 'draft'
         order by z.sort_order, z.name, z.id",
    )
    .bind(show_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    let event_id = rows
        .first()
        .map(|r| EventId(r.6))
        .ok_or_else(|| ApiError::not_found("show"))?;
    let zones = rows
        .into_iter()
        .map(
            |(id, available, held, sold, capacity, version, _)| ZoneAvailability {
                zone_id: ZoneId(id),
                available,
                held,
                sold,
                capacity,
                version,
            },
        )
        .collect();
    Ok(Json(Availability {
        show_id,
        event_id,
        zones,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let at = DateTime::parse_from_rfc3339("2026-06-01T19:30:00Z")
            .map(|d| d.with_timezone(&Utc))
            .expect("valid");
        let id = Uuid::nil();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("2026|x")), None);
    }

    #[test]
    fn search_text_becomes_a_safe_prefix_query() {
        assert_eq!(
            prefix_tsquery("Beeth  Symph!").as_deref(),
            Some("beeth:* & symph:*")
        );
        assert_eq!(prefix_tsquery("a') | !b:*").as_deref(), Some("a:* & b:*"));
        assert_eq!(prefix_tsquery("&|!"), None);
    }
}
