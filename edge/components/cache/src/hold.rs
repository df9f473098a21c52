//! The edge's checks on a hold before it is forwarded: the shared domain rules against the
//! cached catalog, in the ledger's order (zone of this show → seating → `check_hold`), then
//! sold-out shedding. The ledger re-checks everything under the zone's lock; these checks
//! only spare it requests it would certainly refuse.

use chrono::{DateTime, Utc};
use tessera_domain::catalog::EventDetail;
use tessera_domain::holds::{check_hold, zone_not_in_show, NewHold};
use tessera_domain::{ErrorCode, Problem};

use crate::entry::AvailEntry;
use crate::problem::edge;

/// Everything the checks need, read from the cache or fetched.
pub struct HoldCheck<'a> {
    pub detail: &'a EventDetail,
    pub availability: &'a AvailEntry,
    pub now: DateTime<Utc>,
    pub now_ms: i64,
    pub shed_window_ms: u64,
    /// Whether the invalidation stream is fresh ([`crate::freshness`]): only then is a
    /// cached zero trusted for shedding.
    pub stream_fresh: bool,
}

/// What the edge does with a hold.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldVerdict {
    /// Send it to the ledger.
    Forward,
    /// Refuse it here; the ledger would refuse it too.
    Refuse(Problem),
    /// Refuse it `sold_out` without asking the ledger (the host counts these as `holds`
    /// answers `served_by="edge"` with status 409).
    Shed(Problem),
}

pub fn check(hold: &NewHold, c: &HoldCheck<'_>) -> HoldVerdict {
    let Some(ctx) = c.detail.hold_context(hold.show_id, hold.zone_id) else {
        let rejection = zone_not_in_show();
        return HoldVerdict::Refuse(edge(rejection.code, rejection.detail));
    };
    if let Err(rejection) = check_hold(&ctx, hold.quantity, &hold.pick, c.now) {
        return HoldVerdict::Refuse(edge(rejection.code, rejection.detail));
    }
    if c.availability
        .should_shed(hold.zone_id, c.now_ms, c.shed_window_ms, c.stream_fresh)
    {
        return HoldVerdict::Shed(edge(ErrorCode::SoldOut, "no tickets left in this zone"));
    }
    HoldVerdict::Forward
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tessera_domain::catalog::{
        Availability, EventStatus, SeatingKind, ShowView, VenueView, ZoneAvailability, ZoneView,
    };
    use tessera_domain::CustomerId;

    const SHOW: &str = "00000000-0000-0000-0000-0000000000a1";
    const ZONE: &str = "00000000-0000-0000-0000-0000000000b1";
    const OTHER_ZONE: &str = "00000000-0000-0000-0000-0000000000b2";
    const EVENT: &str = "00000000-0000-0000-0000-0000000000c1";

    fn detail(status: EventStatus, seating: SeatingKind) -> EventDetail {
        EventDetail {
            event_id: EVENT.parse().expect("id"),
            slug: "s".into(),
            title: "t".into(),
            description: String::new(),
            category: "rock".into(),
            status,
            featured: false,
            booking_opens_at: None,
            booking_closes_at: None,
            max_tickets_per_customer: None,
            venue: VenueView {
                venue_id: EVENT.parse().expect("id"),
                name: "v".into(),
                city: "c".into(),
                country: "DE".into(),
                timezone: "Europe/Berlin".into(),
            },
            shows: vec![ShowView {
                show_id: SHOW.parse().expect("id"),
                starts_at: Utc
                    .with_ymd_and_hms(2030, 1, 1, 20, 0, 0)
                    .single()
                    .expect("t"),
                sale_starts_at: None,
                sale_ends_at: None,
                zones: vec![ZoneView {
                    zone_id: ZONE.parse().expect("id"),
                    name: "floor".into(),
                    price_minor: 5000,
                    currency: "EUR".parse().expect("eur"),
                    capacity: 10,
                    min_per_order: 1,
                    max_per_order: 4,
                    sort_order: 0,
                    seating,
                }],
            }],
            version: 3,
        }
    }

    fn availability(available: i32, now_ms: i64) -> AvailEntry {
        let fresh = Availability {
            show_id: SHOW.parse().expect("id"),
            event_id: EVENT.parse().expect("id"),
            zones: vec![ZoneAvailability {
                zone_id: ZONE.parse().expect("id"),
                available,
                held: 0,
                sold: 10 - available,
                capacity: 10,
                version: 1,
            }],
        };
        AvailEntry::merge_fetch(None, fresh, now_ms, 60_000)
    }

    fn hold(zone: &str, quantity: i32) -> NewHold {
        NewHold {
            show_id: SHOW.parse().expect("id"),
            zone_id: zone.parse().expect("id"),
            quantity,
            customer_id: CustomerId::parse("alice").expect("id"),
            pick: tessera_domain::holds::SeatPick::Quantity,
        }
    }

    fn verdict(d: &EventDetail, a: &AvailEntry, h: &NewHold, now_ms: i64) -> HoldVerdict {
        verdict_with(d, a, h, now_ms, true)
    }

    fn verdict_with(
        d: &EventDetail,
        a: &AvailEntry,
        h: &NewHold,
        now_ms: i64,
        stream_fresh: bool,
    ) -> HoldVerdict {
        check(
            h,
            &HoldCheck {
                detail: d,
                availability: a,
                now: Utc
                    .with_ymd_and_hms(2029, 6, 1, 0, 0, 0)
                    .single()
                    .expect("t"),
                now_ms,
                shed_window_ms: 1_000,
                stream_fresh,
            },
        )
    }

    fn code(v: HoldVerdict) -> Option<(bool, ErrorCode)> {
        match v {
            HoldVerdict::Forward => None,
            HoldVerdict::Refuse(p) => Some((false, p.code)),
            HoldVerdict::Shed(p) => Some((true, p.code)),
        }
    }

    #[test]
    fn valid_holds_are_forwarded() {
        let d = detail(EventStatus::Published, SeatingKind::GeneralAdmission);
        assert_eq!(
            verdict(&d, &availability(5, 0), &hold(ZONE, 2), 0),
            HoldVerdict::Forward
        );
    }

    #[test]
    fn shared_rules_refuse_at_the_edge() {
        let ga = detail(EventStatus::Published, SeatingKind::GeneralAdmission);
        let a = availability(5, 0);
        assert_eq!(
            code(verdict(&ga, &a, &hold(OTHER_ZONE, 2), 0)),
            Some((false, ErrorCode::NotFound))
        );
        assert_eq!(
            code(verdict(&ga, &a, &hold(ZONE, 5), 0)),
            Some((false, ErrorCode::QuantityOutOfRange))
        );
        let cancelled = detail(EventStatus::Cancelled, SeatingKind::GeneralAdmission);
        assert_eq!(
            code(verdict(&cancelled, &a, &hold(ZONE, 1), 0)),
            Some((false, ErrorCode::EventNotOnSale))
        );
        let assigned = detail(EventStatus::Published, SeatingKind::Assigned);
        assert_eq!(
            code(verdict(&assigned, &a, &hold(ZONE, 1), 0)),
            Some((false, ErrorCode::ValidationFailed))
        );
    }

    #[test]
    fn a_recent_zero_is_shed_an_old_one_is_forwarded() {
        let d = detail(EventStatus::Published, SeatingKind::GeneralAdmission);
        let a = availability(0, 10_000);
        assert_eq!(
            code(verdict(&d, &a, &hold(ZONE, 1), 10_500)),
            Some((true, ErrorCode::SoldOut))
        );
        assert_eq!(
            verdict(&d, &a, &hold(ZONE, 1), 11_001),
            HoldVerdict::Forward
        );
        // The rules come first: a bad quantity is refused as such even when sold out.
        assert_eq!(
            code(verdict(&d, &a, &hold(ZONE, 9), 10_500)),
            Some((false, ErrorCode::QuantityOutOfRange))
        );
    }

    #[test]
    fn a_zero_from_a_silent_stream_is_forwarded() {
        let d = detail(EventStatus::Published, SeatingKind::GeneralAdmission);
        let a = availability(0, 10_000);
        assert_eq!(
            verdict_with(&d, &a, &hold(ZONE, 1), 10_500, false),
            HoldVerdict::Forward,
            "the ledger decides while the stream cannot vouch for the zero"
        );
    }
}
