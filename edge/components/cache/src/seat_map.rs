//! `seats/{show_id}`: a show's seat map as the edge keeps it, patched in place by the
//! ledger's `seats` messages (by zone `version`, as availability is).
//!
//! Stored ([`crate::stored`], kind `TSM1`): the public document (`GET /v1/shows/{id}/seats`
//! with each zone's status map as patched) and its ETag ([`map_etag`], the ledger's own),
//! then the rest: show id, event id (16 bytes each), the zone count (u16), and per zone its
//! id (16 bytes), `version`, `confirmed_at_ms` (i64 each), seat count (u32), and its seats'
//! states packed two bits a seat (u32 length, bytes). The hold checks read the rest in
//! place ([`look_up`]) without parsing the body; writers (a fetch merging, a message)
//! decode the whole entry, the layout from the body.

use serde::Serialize;
use tessera_domain::seats::{map_etag, status_in, PackedStatus, SeatMap, SeatRun, SeatStatus};
use tessera_domain::{EventId, ShowId, ZoneId};
use uuid::Uuid;

use crate::entry::Entry;
use crate::stored::{self, Corrupt, Kind, Reader, Stored, Unstorable};
use crate::ttl;

/// One assigned zone: its layout, its seats' states as of `version`, and when the ledger
/// last confirmed them (a fetch or a message).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedSeats {
    pub zone_id: ZoneId,
    pub version: i64,
    pub confirmed_at_ms: i64,
    pub runs: Vec<SeatRun>,
    pub status: PackedStatus,
}

/// `seats/{show_id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeatMapEntry {
    /// When the fetch that made this entry started (messages patch zones and leave it).
    pub stored_at_ms: i64,
    pub expires_at_ms: i64,
    pub show_id: ShowId,
    pub event_id: EventId,
    pub zones: Vec<CachedSeats>,
}

/// What a `seats` message did to a cached map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    /// The zone's seats and version moved: store the entry again.
    Applied,
    /// Not newer than what is cached (a duplicate or a late message): nothing to do.
    Unchanged,
    /// The message cannot be applied (its changes were too many to carry, a seat or zone
    /// this map does not have): drop the entry, the next read fetches it.
    Refetch,
}

impl SeatMapEntry {
    /// A fresh fetch, merged with what was cached: per zone the higher `version` wins (a
    /// message may have been applied while the fetch was in flight). The fetch decides which
    /// zones exist and their order. A status map of the wrong length is [`Corrupt`].
    pub fn merge_fetch(
        cached: Option<&SeatMapEntry>,
        fresh: SeatMap,
        now_ms: i64,
        ttl_ms: u64,
    ) -> Result<Self, Corrupt> {
        let zones = fresh
            .zones
            .into_iter()
            .map(|zone| {
                let newer_cached = cached
                    .and_then(|c| c.zone(zone.zone_id))
                    .filter(|c| c.version > zone.version);
                if let Some(kept) = newer_cached {
                    return Ok(kept.clone());
                }
                let seat_count = usize::try_from(zone.seat_count)
                    .map_err(|_| Corrupt("a negative seat count"))?;
                let status = PackedStatus::from_map(&zone.status, seat_count)
                    .ok_or(Corrupt("a status map that is not the zone's"))?;
                Ok(CachedSeats {
                    zone_id: zone.zone_id,
                    version: zone.version,
                    confirmed_at_ms: now_ms,
                    runs: zone.runs,
                    status,
                })
            })
            .collect::<Result<_, Corrupt>>()?;
        Ok(Self {
            stored_at_ms: now_ms,
            expires_at_ms: ttl::expires_at(now_ms, ttl_ms),
            show_id: fresh.show_id,
            event_id: fresh.event_id,
            zones,
        })
    }

    pub fn zone(&self, zone_id: ZoneId) -> Option<&CachedSeats> {
        self.zones.iter().find(|z| z.zone_id == zone_id)
    }

    /// Applies a `seats` message: the `changes` (`[index, state]`) of `zone_id` at
    /// `version`, or `None` when the message had too many to carry.
    pub fn apply(
        &mut self,
        zone_id: ZoneId,
        version: i64,
        changes: Option<&[(i32, SeatStatus)]>,
        now_ms: i64,
    ) -> Patch {
        let Some(zone) = self.zones.iter_mut().find(|z| z.zone_id == zone_id) else {
            // A zone this map does not know (made since it was fetched).
            return Patch::Refetch;
        };
        if version <= zone.version {
            return Patch::Unchanged;
        }
        let Some(changes) = changes else {
            return Patch::Refetch;
        };
        let mut status = zone.status.clone();
        if !changes
            .iter()
            .all(|&(index, state)| status.set(index, state))
        {
            return Patch::Refetch;
        }
        zone.status = status;
        zone.version = version;
        zone.confirmed_at_ms = now_ms;
        Patch::Applied
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        ttl::is_fresh(self.stored_at_ms, self.expires_at_ms, now_ms)
    }

    pub fn etag(&self) -> String {
        map_etag(self.zones.iter().map(|z| z.version))
    }

    /// The public document as the ledger serves it.
    fn body(&self) -> Result<Vec<u8>, Unstorable> {
        #[derive(Serialize)]
        struct MapView<'a> {
            show_id: ShowId,
            event_id: EventId,
            zones: Vec<ZoneView<'a>>,
        }
        #[derive(Serialize)]
        struct ZoneView<'a> {
            zone_id: ZoneId,
            version: i64,
            seat_count: usize,
            runs: &'a [SeatRun],
            status: String,
        }
        let view = MapView {
            show_id: self.show_id,
            event_id: self.event_id,
            zones: self
                .zones
                .iter()
                .map(|z| ZoneView {
                    zone_id: z.zone_id,
                    version: z.version,
                    seat_count: z.status.seat_count(),
                    runs: &z.runs,
                    status: z.status.to_map(),
                })
                .collect(),
        };
        serde_json::to_vec(&view).map_err(|_| Unstorable("the public document"))
    }
}

/// Bytes of a zone's fixed fields in the rest: id, version, confirmation time, seat count.
const ZONE_HEAD_BYTES: usize = 16 + 8 + 8 + 4;

impl Entry for SeatMapEntry {
    /// The stored form: the public document and its ETag rendered now, then the ids and
    /// every zone's version, confirmation time and packed states.
    fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        let body = self.body()?;
        let rest_hint = 16
            + 16
            + 2
            + self
                .zones
                .iter()
                .map(|z| ZONE_HEAD_BYTES + 4 + z.status.as_bytes().len())
                .sum::<usize>();
        let seat_counts = self
            .zones
            .iter()
            .map(|z| u32::try_from(z.status.seat_count()))
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| Unstorable("a seat count"))?;
        stored::encode(
            Kind::SeatMap,
            (self.stored_at_ms, self.expires_at_ms),
            &self.etag(),
            &body,
            rest_hint,
            |w| {
                w.raw(self.show_id.0.as_bytes());
                w.raw(self.event_id.0.as_bytes());
                w.u16(self.zones.len());
                for (zone, seat_count) in self.zones.iter().zip(seat_counts) {
                    w.raw(zone.zone_id.0.as_bytes());
                    w.i64(zone.version);
                    w.i64(zone.confirmed_at_ms);
                    w.raw(&seat_count.to_le_bytes());
                    w.bytes32(zone.status.as_bytes());
                }
            },
        )
    }

    /// The whole entry back: ids, versions and states from the rest, each zone's layout
    /// from the body.
    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        let stored = Stored::parse(bytes, Kind::SeatMap)?;
        let document: SeatMap = serde_json::from_slice(stored.body())
            .map_err(|_| Corrupt("the body is no seat map"))?;
        let mut layouts = document.zones.into_iter();
        let mut r = Reader::new(stored.rest());
        let show_id = ShowId(Uuid::from_bytes(r.take()?));
        let event_id = EventId(Uuid::from_bytes(r.take()?));
        let count = usize::from(r.u16()?);
        let mut zones = Vec::with_capacity(count);
        for _ in 0..count {
            let zone = read_zone(&mut r)?;
            let layout = layouts
                .next()
                .filter(|l| l.zone_id == zone.zone_id)
                .ok_or(Corrupt("the body's zones are not the rest's"))?;
            zones.push(CachedSeats {
                runs: layout.runs,
                ..zone
            });
        }
        r.end()?;
        Ok(Self {
            stored_at_ms: stored.stored_at_ms(),
            expires_at_ms: stored.expires_at_ms(),
            show_id,
            event_id,
            zones,
        })
    }
}

/// A zone's fixed fields and states (its layout is in the body).
fn read_zone(r: &mut Reader<'_>) -> Result<CachedSeats, Corrupt> {
    let zone_id = ZoneId(Uuid::from_bytes(r.take()?));
    let version = r.i64()?;
    let confirmed_at_ms = r.i64()?;
    let seat_count = usize::try_from(u32::from_le_bytes(r.take()?))
        .map_err(|_| Corrupt("a seat count past the address space"))?;
    let status = PackedStatus::from_bytes(r.bytes32()?.to_vec(), seat_count)
        .ok_or(Corrupt("states that are not the zone's seat count"))?;
    Ok(CachedSeats {
        zone_id,
        version,
        confirmed_at_ms,
        runs: Vec::new(),
        status,
    })
}

/// What a hold check learns about one cached zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneLook {
    pub version: i64,
    pub confirmed_at_ms: i64,
    /// The requested seats the cached map shows as not available (held, sold, blocked, or
    /// no seat of the zone), in the order asked.
    pub unavailable: Vec<i32>,
}

/// `seats` of `zone_id` in a stored map, read in place: `None` if the map has no such zone.
pub fn look_up(
    stored: &Stored,
    zone_id: ZoneId,
    seats: &[i32],
) -> Result<Option<ZoneLook>, Corrupt> {
    let mut r = Reader::new(stored.rest());
    let _show_and_event: [u8; 32] = r.take()?;
    for _ in 0..r.u16()? {
        let id = ZoneId(Uuid::from_bytes(r.take()?));
        let version = r.i64()?;
        let confirmed_at_ms = r.i64()?;
        let seat_count = usize::try_from(u32::from_le_bytes(r.take()?))
            .map_err(|_| Corrupt("a seat count past the address space"))?;
        let packed = r.bytes32()?;
        if id != zone_id {
            continue;
        }
        let unavailable = seats
            .iter()
            .copied()
            .filter(|&i| status_in(packed, seat_count, i) != Some(SeatStatus::Available))
            .collect();
        return Ok(Some(ZoneLook {
            version,
            confirmed_at_ms,
            unavailable,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_domain::seats::{encode_status_map, ZoneSeats};

    fn zone_id(n: u8) -> ZoneId {
        format!("00000000-0000-0000-0000-0000000000{n:02x}")
            .parse()
            .expect("id")
    }

    fn run(count: i32) -> SeatRun {
        SeatRun {
            section: String::new(),
            row: "A".into(),
            first_seat: 0,
            count,
            first_number: 1,
            x: 0.0,
            y: 0.0,
            dx: 1.0,
            dy: 0.0,
        }
    }

    /// A map of zones `(n, version, states)` as the ledger sends it.
    fn ledger_map(zones: &[(u8, i64, &[SeatStatus])]) -> SeatMap {
        SeatMap {
            show_id: "00000000-0000-0000-0000-00000000aaaa".parse().expect("id"),
            event_id: "00000000-0000-0000-0000-00000000bbbb".parse().expect("id"),
            zones: zones
                .iter()
                .map(|&(n, version, states)| ZoneSeats {
                    zone_id: zone_id(n),
                    version,
                    seat_count: states.len() as i32,
                    runs: vec![run(states.len() as i32)],
                    status: encode_status_map(states.iter().copied()),
                })
                .collect(),
        }
    }

    use SeatStatus::{Available as A, Held as H, Sold as S};

    #[test]
    fn the_stored_map_serves_the_ledgers_document_and_reads_back_whole() {
        let fresh = ledger_map(&[(1, 4, &[A, H, S, A, A]), (2, 9, &[A; 3])]);
        let entry = SeatMapEntry::merge_fetch(None, fresh.clone(), 100, 1_000).expect("merges");
        let bytes = entry.encode().expect("encodes");
        let stored = Stored::parse(bytes.clone(), Kind::SeatMap).expect("parses");
        let served: SeatMap = serde_json::from_slice(stored.body()).expect("a seat map");
        assert_eq!(served, fresh, "the body is the ledger's document");
        assert_eq!(stored.etag(), map_etag([4, 9]));
        assert_eq!(SeatMapEntry::decode(bytes).expect("decodes"), entry);
    }

    #[test]
    fn messages_patch_by_version_and_what_cannot_be_patched_is_refetched() {
        let fresh = ledger_map(&[(1, 4, &[A, A, A, A, A])]);
        let mut entry = SeatMapEntry::merge_fetch(None, fresh, 100, 1_000).expect("merges");
        let held = [(1, H), (2, H)];
        assert_eq!(entry.apply(zone_id(1), 5, Some(&held), 200), Patch::Applied);
        let zone = entry.zone(zone_id(1)).expect("zone");
        assert_eq!(zone.status.statuses().collect::<Vec<_>>(), [A, H, H, A, A]);
        assert_eq!((zone.version, zone.confirmed_at_ms), (5, 200));
        // A duplicate or late message changes nothing.
        assert_eq!(
            entry.apply(zone_id(1), 5, Some(&[(0, S)]), 300),
            Patch::Unchanged
        );
        assert_eq!(
            entry.apply(zone_id(1), 3, Some(&[(0, S)]), 300),
            Patch::Unchanged
        );
        assert_eq!(entry.zone(zone_id(1)).expect("zone").status.get(0), Some(A));
        // Too many changes to carry, a seat past the zone, a zone the map lacks.
        assert_eq!(entry.apply(zone_id(1), 6, None, 300), Patch::Refetch);
        assert_eq!(
            entry.apply(zone_id(1), 6, Some(&[(0, S), (5, S)]), 300),
            Patch::Refetch
        );
        assert_eq!(
            entry.zone(zone_id(1)).expect("zone").status.get(0),
            Some(A),
            "a refused message leaves no half"
        );
        assert_eq!(
            entry.apply(zone_id(7), 6, Some(&[(0, S)]), 300),
            Patch::Refetch
        );
    }

    #[test]
    fn a_fetch_keeps_zones_a_message_made_newer() {
        let old = ledger_map(&[(1, 4, &[A, A]), (2, 4, &[A, A])]);
        let mut cached = SeatMapEntry::merge_fetch(None, old, 100, 1_000).expect("merges");
        assert_eq!(
            cached.apply(zone_id(1), 6, Some(&[(0, S)]), 150),
            Patch::Applied
        );
        // The fetch read zone 1 before the message's change and zone 2 after a newer one.
        let fetched = ledger_map(&[(1, 5, &[A, H]), (2, 7, &[H, H])]);
        let merged = SeatMapEntry::merge_fetch(Some(&cached), fetched, 200, 1_000).expect("merges");
        let states = |n| {
            merged
                .zone(zone_id(n))
                .expect("zone")
                .status
                .statuses()
                .collect::<Vec<_>>()
        };
        assert_eq!(states(1), [S, A], "the message's newer version stays");
        assert_eq!(states(2), [H, H]);
        assert_eq!(merged.stored_at_ms, 200);
    }

    #[test]
    fn the_hold_check_reads_a_zone_in_place() {
        let fresh = ledger_map(&[(1, 4, &[A, H]), (2, 8, &[A, S, A, A, H])]);
        let entry = SeatMapEntry::merge_fetch(None, fresh, 100, 1_000).expect("merges");
        let stored =
            Stored::parse(entry.encode().expect("encodes"), Kind::SeatMap).expect("parses");
        let look = look_up(&stored, zone_id(2), &[0, 1, 4, 9, -1]).expect("readable");
        assert_eq!(
            look,
            Some(ZoneLook {
                version: 8,
                confirmed_at_ms: 100,
                unavailable: vec![1, 4, 9, -1]
            })
        );
        assert_eq!(look_up(&stored, zone_id(3), &[0]).expect("readable"), None);
    }

    #[test]
    fn a_status_map_that_is_not_the_zones_is_refused() {
        let mut fresh = ledger_map(&[(1, 4, &[A, A, A, A, A])]);
        fresh.zones[0].seat_count = 9;
        assert!(SeatMapEntry::merge_fetch(None, fresh, 100, 1_000).is_err());
    }
}
