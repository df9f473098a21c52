//! The edge's checks on a hold before it is forwarded: the shared domain rules against the
//! cached catalog, in the ledger's order (zone of this show → seating → `check_hold`), then
//! shedding: sold-out zones, and named seats the cached seat map shows taken. The ledger
//! re-checks everything under the zone's lock; these checks only spare it requests it
//! would certainly refuse.

use chrono::{DateTime, Utc};
use tessera_domain::catalog::EventDetail;
use tessera_domain::holds::{check_hold, zone_not_in_show, NewHold, Rejection, SeatPick};
use tessera_domain::{ErrorCode, Problem, ZoneId};

use crate::entry::AvailEntry;
use crate::freshness::within_window;
use crate::problem::{edge, from_rules};
use crate::seat_map;
use crate::stored::Stored;

/// Everything the checks need, read from the cache or fetched.
pub struct HoldCheck<'a> {
    pub detail: &'a EventDetail,
    pub availability: &'a AvailEntry,
    /// The show's cached seat map, if there is one (read for holds that name seats; never
    /// fetched for them).
    pub seat_map: Option<&'a Stored>,
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
    /// Refuse it `sold_out` or `seat_unavailable` without asking the ledger (the host
    /// counts these as `holds` answers `served_by="edge"` with status 409).
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
    if let SeatPick::Seats(seats) = &hold.pick {
        if let Some(taken) = seats_taken(c, hold.zone_id, seats) {
            return HoldVerdict::Shed(from_rules(Rejection::seats_unavailable(taken).problem()));
        }
    }
    HoldVerdict::Forward
}

/// The named seats the cached map shows taken, if it may be trusted for that: the stream is
/// fresh and a message or fetch confirmed the zone's seats within the shed window (as a
/// sold-out zero). An unreadable map sheds nothing.
fn seats_taken(c: &HoldCheck<'_>, zone_id: ZoneId, seats: &[i32]) -> Option<Vec<i32>> {
    if !c.stream_fresh {
        return None;
    }
    let look = seat_map::look_up(c.seat_map?, zone_id, seats).ok()??;
    let recent = within_window(look.confirmed_at_ms, c.now_ms, c.shed_window_ms);
    (recent && !look.unavailable.is_empty()).then_some(look.unavailable)
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
            checkin_keys: Vec::new(),
            queue: None,
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
        verdict_seated(d, a, None, h, now_ms, stream_fresh)
    }

    fn verdict_seated(
        d: &EventDetail,
        a: &AvailEntry,
        seat_map: Option<&Stored>,
        h: &NewHold,
        now_ms: i64,
        stream_fresh: bool,
    ) -> HoldVerdict {
        check(
            h,
            &HoldCheck {
                detail: d,
                availability: a,
                seat_map,
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

    /// The zone's seat map, confirmed at `confirmed_at_ms`: seats 0–2 available, 3 held,
    /// 4 sold.
    fn seat_map(confirmed_at_ms: i64) -> Stored {
        use crate::entry::Entry;
        use tessera_domain::seats::{encode_status_map, SeatMap, SeatStatus, ZoneSeats};
        let states = [
            SeatStatus::Available,
            SeatStatus::Available,
            SeatStatus::Available,
            SeatStatus::Held,
            SeatStatus::Sold,
        ];
        let map = SeatMap {
            show_id: SHOW.parse().expect("id"),
            event_id: EVENT.parse().expect("id"),
            zones: vec![ZoneSeats {
                zone_id: ZONE.parse().expect("id"),
                version: 7,
                seat_count: 5,
                runs: Vec::new(),
                status: encode_status_map(states),
            }],
        };
        let entry = crate::seat_map::SeatMapEntry::merge_fetch(None, map, confirmed_at_ms, 60_000)
            .expect("merges");
        Stored::parse(
            entry.encode().expect("encodes"),
            crate::stored::Kind::SeatMap,
        )
        .expect("parses")
    }

    #[test]
    fn named_seats_the_map_shows_taken_are_shed_while_it_is_recent_and_the_stream_fresh() {
        let d = detail(EventStatus::Published, SeatingKind::Assigned);
        let a = availability(3, 10_000);
        let map = seat_map(10_000);
        let seats = |seats: Vec<i32>| NewHold {
            quantity: seats.len() as i32,
            pick: SeatPick::Seats(seats),
            ..hold(ZONE, 1)
        };
        let shed = verdict_seated(&d, &a, Some(&map), &seats(vec![2, 3, 4]), 10_500, true);
        match shed {
            HoldVerdict::Shed(problem) => {
                assert_eq!(problem.code, ErrorCode::SeatUnavailable);
                assert_eq!(problem.seats, vec![3, 4], "the taken seats, named");
                assert_eq!(problem.served_by.as_deref(), Some("edge"));
            }
            other => panic!("expected a shed hold, got {other:?}"),
        }
        // Free seats, an old confirmation, a silent stream, no map: the ledger decides.
        let forwarded = [
            verdict_seated(&d, &a, Some(&map), &seats(vec![0, 1]), 10_500, true),
            verdict_seated(&d, &a, Some(&map), &seats(vec![3]), 11_001, true),
            verdict_seated(&d, &a, Some(&map), &seats(vec![3]), 10_500, false),
            verdict_seated(&d, &a, None, &seats(vec![3]), 10_500, true),
        ];
        for verdict in forwarded {
            assert_eq!(verdict, HoldVerdict::Forward);
        }
    }
}
