//! `GET /admin/v1/events/{event_id}/sales`: how an event's sale went, per show and zone and
//! per currency (DESIGN.md "Organizers and integrations"). Counted from the rows — holds,
//! tickets, refunds — not from the zones' counters, so it agrees with them only if the
//! ledger kept its invariants (the tests assert it does).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Currency, EventId, ShowId, ZoneId};

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SalesReport {
    pub event_id: EventId,
    /// When it was read (one snapshot: every figure is of the same moment).
    pub generated_at: DateTime<Utc>,
    pub shows: Vec<ShowSales>,
    /// The figures of every zone, summed per currency.
    pub totals: Vec<CurrencyTotals>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShowSales {
    pub show_id: ShowId,
    pub starts_at: DateTime<Utc>,
    pub zones: Vec<ZoneSales>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneSales {
    pub zone_id: ZoneId,
    pub name: String,
    pub currency: Currency,
    #[serde(flatten)]
    pub figures: SalesFigures,
}

/// One zone's figures, or a currency's sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SalesFigures {
    pub capacity: i64,
    /// Places in live holds (`held`, not yet confirmed, released or expired).
    pub held: i64,
    /// Tickets issued and not void.
    pub sold: i64,
    /// Of those sold, the tickets that entered.
    pub checked_in: i64,
    /// Tickets voided (their orders cancelled).
    pub void: i64,
    /// Every order ever confirmed (cancelled ones included), in minor units.
    pub gross_minor: i64,
    /// Refunds recorded and not yet paid back.
    pub refund_due_minor: i64,
    /// Refunds paid back.
    pub refunded_minor: i64,
}

impl SalesFigures {
    /// The two figures summed (saturating: an i64 of minor units is far beyond any sale).
    pub fn plus(self, other: Self) -> Self {
        Self {
            capacity: self.capacity.saturating_add(other.capacity),
            held: self.held.saturating_add(other.held),
            sold: self.sold.saturating_add(other.sold),
            checked_in: self.checked_in.saturating_add(other.checked_in),
            void: self.void.saturating_add(other.void),
            gross_minor: self.gross_minor.saturating_add(other.gross_minor),
            refund_due_minor: self.refund_due_minor.saturating_add(other.refund_due_minor),
            refunded_minor: self.refunded_minor.saturating_add(other.refunded_minor),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrencyTotals {
    pub currency: Currency,
    #[serde(flatten)]
    pub figures: SalesFigures,
}

/// Sums zones' figures per currency, currencies in alphabetical order.
pub fn totals<'a>(zones: impl IntoIterator<Item = &'a ZoneSales>) -> Vec<CurrencyTotals> {
    let mut by_currency: std::collections::BTreeMap<String, (Currency, SalesFigures)> =
        std::collections::BTreeMap::new();
    for zone in zones {
        let entry = by_currency
            .entry(zone.currency.as_str().to_owned())
            .or_insert((zone.currency, SalesFigures::default()));
        entry.1 = entry.1.plus(zone.figures);
    }
    by_currency
        .into_values()
        .map(|(currency, figures)| CurrencyTotals { currency, figures })
        .collect()
}
