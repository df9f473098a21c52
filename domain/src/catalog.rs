//! The public catalog as the API returns it. The edge caches these documents verbatim
//! and derives its validation context from them ([`EventDetail::hold_context`]).
//!
//! The enums here are also stored by the ledger as `text` columns restricted by a `CHECK`
//! to the same spellings. With the `sqlx` feature they decode from those columns in one
//! place ([`stored_as_text`]): a value this version does not know is a decode error
//! ([`UnknownStoredValue`]), never a default.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::holds::HoldContext;
use crate::ids::{EventId, ShowId, VenueId, ZoneId};
use crate::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
}

/// A stored enum column held a spelling this version does not know: the row was written
/// by something else (a newer version, a hand edit), so the read fails instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} {value:?} is not one this version knows")]
pub struct UnknownStoredValue {
    pub what: &'static str,
    pub value: String,
}

/// Implements `sqlx::Type`, `Decode` and `Encode` for PostgreSQL `text` (and `char(n)`)
/// columns for a type with `as_str` and a parser (`|text| -> Option<Self>`). Only with the
/// `sqlx` feature; the edge (wasm32) builds without it.
macro_rules! stored_as_text {
    ($ty:ty, $what:literal, |$text:ident| $parse:expr) => {
        #[cfg(feature = "sqlx")]
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let $text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                let parsed: Option<$ty> = $parse;
                parsed.ok_or_else(|| {
                    $crate::catalog::UnknownStoredValue {
                        what: $what,
                        value: $text.to_owned(),
                    }
                    .into()
                })
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Encode<'_, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}
pub(crate) use stored_as_text;

stored_as_text!(EventStatus, "event status", |text| EventStatus::parse(text));
stored_as_text!(SeatingKind, "seating kind", |text| SeatingKind::parse(text));

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => Self::Draft,
            "published" => Self::Published,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// How a zone sells: any place in the area (by quantity), or specific seats
/// ([`crate::seats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeatingKind {
    #[default]
    GeneralAdmission,
    Assigned,
}

impl SeatingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GeneralAdmission => "general_admission",
            Self::Assigned => "assigned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "general_admission" => Self::GeneralAdmission,
            "assigned" => Self::Assigned,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Category {
    pub slug: String,
    pub name: String,
    /// Published events in this category.
    pub event_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueView {
    pub venue_id: VenueId,
    pub name: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// IANA time zone, e.g. `Europe/Berlin`: shows are stored in UTC.
    pub timezone: String,
}

/// One event in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSummary {
    pub event_id: EventId,
    pub slug: String,
    pub title: String,
    pub category: String,
    pub city: String,
    pub venue_name: String,
    pub featured: bool,
    pub status: EventStatus,
    /// The first show's start; listings are ordered by it.
    pub starts_at: Option<DateTime<Utc>>,
    /// Cheapest zone, in minor units of `currency`.
    pub price_from_minor: Option<i64>,
    pub currency: Option<Currency>,
}

/// `GET /v1/events` result: one page and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub items: Vec<EventSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneView {
    pub zone_id: ZoneId,
    pub name: String,
    pub price_minor: i64,
    pub currency: Currency,
    pub capacity: i32,
    pub min_per_order: i32,
    pub max_per_order: i32,
    pub sort_order: i32,
    pub seating: SeatingKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShowView {
    pub show_id: ShowId,
    pub starts_at: DateTime<Utc>,
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
    pub zones: Vec<ZoneView>,
}

/// `GET /v1/events/{event_id}`: the event with its venue, shows and zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    pub event_id: EventId,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub category: String,
    pub status: EventStatus,
    pub featured: bool,
    pub booking_opens_at: Option<DateTime<Utc>>,
    pub booking_closes_at: Option<DateTime<Utc>>,
    /// Tickets one customer may hold or buy across all shows of the event.
    pub max_tickets_per_customer: Option<i32>,
    pub venue: VenueView,
    pub shows: Vec<ShowView>,
    /// Bumped on every catalog change; the edge's `ETag`.
    pub version: i64,
    /// The public keys the event's ticket codes are signed with (none before it is
    /// published): any door or offline scanner verifies a code with these alone.
    #[serde(default)]
    pub checkin_keys: Vec<crate::tickets::CheckinKey>,
    /// The on-sale's queue, when it is on: holds then need an admission pass
    /// (DESIGN.md "The front door"); a storefront sends buyers to the queue first.
    #[serde(default)]
    pub queue: Option<crate::queue::QueueView>,
}

impl EventDetail {
    /// The validation context for a hold on `zone_id` of `show_id`, if the zone belongs to
    /// that show of this event.
    pub fn hold_context(&self, show_id: ShowId, zone_id: ZoneId) -> Option<HoldContext> {
        let show = self.shows.iter().find(|s| s.show_id == show_id)?;
        let zone = show.zones.iter().find(|z| z.zone_id == zone_id)?;
        Some(HoldContext {
            event_status: self.status,
            booking_opens_at: self.booking_opens_at,
            booking_closes_at: self.booking_closes_at,
            sale_starts_at: show.sale_starts_at,
            sale_ends_at: show.sale_ends_at,
            min_per_order: zone.min_per_order,
            max_per_order: zone.max_per_order,
            assigned_seating: zone.seating != SeatingKind::GeneralAdmission,
        })
    }
}

/// Live counters of one zone. `version` increases on every change, so a cache can keep
/// the newest of two copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneAvailability {
    pub zone_id: ZoneId,
    pub available: i32,
    pub held: i32,
    pub sold: i32,
    pub capacity: i32,
    pub version: i64,
}

/// `GET /v1/shows/{show_id}/availability`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Availability {
    pub show_id: ShowId,
    pub event_id: EventId,
    pub zones: Vec<ZoneAvailability>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored spellings (`as_str`/`parse`, the columns' `CHECK`s) are the JSON ones.
    #[test]
    fn stored_spellings_round_trip_and_match_the_json() {
        for status in [
            EventStatus::Draft,
            EventStatus::Published,
            EventStatus::Cancelled,
        ] {
            assert_eq!(EventStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_value(status).expect("serialize");
            assert_eq!(json.as_str(), Some(status.as_str()));
        }
        for seating in [SeatingKind::GeneralAdmission, SeatingKind::Assigned] {
            assert_eq!(SeatingKind::parse(seating.as_str()), Some(seating));
            let json = serde_json::to_value(seating).expect("serialize");
            assert_eq!(json.as_str(), Some(seating.as_str()));
        }
        assert_eq!(EventStatus::parse("Published"), None);
        assert_eq!(SeatingKind::parse("standing"), None);
    }
}
