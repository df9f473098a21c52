//! The cached documents. Catalog documents are stored verbatim (the bytes the ledger sent);
//! availability is stored structured, because the fetch path merges it and invalidation
//! messages update it in place, and beside it the public document and ETag rendered when
//! it was written, which is all a hit reads. Both in the binary layout of [`crate::stored`].

use tessera_domain::catalog::{Availability, ZoneAvailability};
use tessera_domain::{EventId, ShowId, ZoneId};
use uuid::Uuid;

use crate::freshness::within_window;
use crate::stored::{self, Corrupt, Kind, Reader, Stored, Unstorable};
use crate::{etag, ttl};

/// An entry with a stored form ([`crate::stored`]): what the KV helpers read and write.
pub trait Entry: Sized {
    fn encode(&self) -> Result<Vec<u8>, Unstorable>;
    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt>;
}

impl Entry for DocEntry {
    fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        DocEntry::encode(self)
    }

    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        DocEntry::decode(bytes)
    }
}

impl Entry for AvailEntry {
    fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        AvailEntry::encode(self)
    }

    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        AvailEntry::decode(bytes)
    }
}

/// A value stored as raw bytes, with no entry type of its own (a bucket of
/// [`crate::forwarded`]), so it can go through [`crate::cas`] like the entries.
impl Entry for Vec<u8> {
    fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        Ok(self.clone())
    }

    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        Ok(bytes)
    }
}

/// A catalog document (`event/…`, `events/…`, `categories`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocEntry {
    pub stored_at_ms: i64,
    pub expires_at_ms: i64,
    /// The quoted entity tag, computed when stored.
    pub etag: String,
    /// The ledger's JSON, verbatim.
    pub body: String,
    /// What was fetched (`path?query`): entries whose key is a hash slot (listings) are hits
    /// only for the request they were fetched for.
    pub source: String,
    /// The catalog epoch this entry was fetched under, for entries a catalog message
    /// evicts by moving the epoch rather than by deleting them (listings, categories:
    /// [`crate::keys::evicted_by_epoch`]). `None` for entries evicted by key.
    pub catalog_epoch: Option<String>,
}

impl DocEntry {
    pub fn new(source: String, body: String, etag: String, now_ms: i64, ttl_ms: u64) -> Self {
        Self {
            stored_at_ms: now_ms,
            expires_at_ms: ttl::expires_at(now_ms, ttl_ms),
            etag,
            body,
            source,
            catalog_epoch: None,
        }
    }

    /// Stamps the entry with the catalog epoch it was fetched under (see `catalog_epoch`).
    pub fn under_epoch(mut self, epoch: String) -> Self {
        self.catalog_epoch = Some(epoch);
        self
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        ttl::is_fresh(self.stored_at_ms, self.expires_at_ms, now_ms)
    }

    /// The epoch rule: an entry evicted by epoch serves only while the catalog epoch is the
    /// one it was fetched under. A catalog message (or a flush) moves the epoch, so every
    /// listing and the categories become misses at once without the invalidator finding
    /// them; an absent epoch (the store was emptied) or an unstamped entry is a miss too.
    pub fn is_current(&self, epoch_now: Option<&[u8]>) -> bool {
        match (&self.catalog_epoch, epoch_now) {
            (Some(stamp), Some(now)) => stamp.as_bytes() == now,
            _ => false,
        }
    }
}

impl DocEntry {
    /// The stored form ([`crate::stored`]): the body and ETag as served, then the source
    /// and the epoch stamp.
    pub fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        let epoch = self.catalog_epoch.as_deref().map(str::as_bytes);
        let rest_hint = 2 + self.source.len() + 3 + epoch.map_or(0, <[u8]>::len);
        stored::encode(
            Kind::Document,
            (self.stored_at_ms, self.expires_at_ms),
            &self.etag,
            self.body.as_bytes(),
            rest_hint,
            |w| {
                w.bytes16(self.source.as_bytes());
                match epoch {
                    Some(epoch) => {
                        w.u8(1);
                        w.bytes16(epoch);
                    }
                    None => w.u8(0),
                }
            },
        )
    }

    /// The whole entry back from its stored form (writers and the invalidator; a hit reads
    /// [`Stored`] in place instead).
    pub fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        let stored = Stored::parse(bytes, Kind::Document)?;
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|_| Corrupt("text that is not UTF-8"))
        };
        let (source, epoch) = stored.document_fields()?;
        Ok(Self {
            stored_at_ms: stored.stored_at_ms(),
            expires_at_ms: stored.expires_at_ms(),
            etag: stored.etag().to_owned(),
            body: text(stored.body())?,
            source: text(source)?,
            catalog_epoch: epoch.map(text).transpose()?,
        })
    }
}

/// Whether a stored document may answer the request for `path_and_query` at `now_ms`:
/// fresh, and fetched for that very request (listing slots are shared by hash).
pub fn serves_request(stored: &Stored, path_and_query: &str, now_ms: i64) -> bool {
    stored.is_fresh(now_ms)
        && stored
            .document_fields()
            .is_ok_and(|(source, _)| source == path_and_query.as_bytes())
}

/// The epoch rule for a stored document ([`DocEntry::is_current`]): stamped with the
/// catalog epoch that holds now.
pub fn is_current(stored: &Stored, epoch_now: Option<&[u8]>) -> bool {
    match (stored.document_fields(), epoch_now) {
        (Ok((_, Some(stamp))), Some(now)) => stamp == now,
        _ => false,
    }
}

/// One zone's counters plus when they were last confirmed by the ledger (a fetch or an
/// invalidation message), and when the ledger last answered a hold `sold_out` while these
/// counters were current: sold-out shedding trusts a zero only while it is that recent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedZone {
    pub zone: ZoneAvailability,
    pub confirmed_at_ms: i64,
    /// Kept apart from the public counters (which stay a consistent ledger snapshot) and
    /// forgotten with them: any newer version replaces the zone.
    pub sold_out_at_ms: Option<i64>,
}

/// `avail/{show_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailEntry {
    /// When the ledger fetch that made this entry started (messages update zones in place
    /// and leave it): a read going through to the ledger accepts an entry fetched after it
    /// arrived ([`Self::fetched_since`]).
    pub stored_at_ms: i64,
    pub expires_at_ms: i64,
    pub show_id: ShowId,
    pub event_id: EventId,
    pub zones: Vec<CachedZone>,
}

impl AvailEntry {
    /// A fresh fetch, merged with what was cached: per zone the higher `version` wins, since
    /// an invalidation may have landed while the fetch was in flight. The fetch decides
    /// which zones exist and their order; ties go to the fetch (same version, same counters,
    /// now confirmed).
    pub fn merge_fetch(
        cached: Option<&AvailEntry>,
        fresh: Availability,
        now_ms: i64,
        ttl_ms: u64,
    ) -> AvailEntry {
        let zones = fresh
            .zones
            .into_iter()
            .map(|zone| {
                let newer_cached = cached
                    .and_then(|c| c.zone(zone.zone_id))
                    .filter(|c| c.zone.version > zone.version);
                match newer_cached {
                    Some(kept) => kept.clone(),
                    None => CachedZone {
                        zone,
                        confirmed_at_ms: now_ms,
                        sold_out_at_ms: None,
                    },
                }
            })
            .collect();
        AvailEntry {
            stored_at_ms: now_ms,
            expires_at_ms: ttl::expires_at(now_ms, ttl_ms),
            show_id: fresh.show_id,
            event_id: fresh.event_id,
            zones,
        }
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        ttl::is_fresh(self.stored_at_ms, self.expires_at_ms, now_ms)
    }

    /// Whether a read through to the ledger that arrived at `since_ms` may answer with this
    /// entry instead of fetching: its fetch started at or after the arrival, so it saw
    /// every change committed before the read arrived (coalesced read-through).
    pub fn fetched_since(&self, since_ms: i64) -> bool {
        self.stored_at_ms >= since_ms
    }

    pub fn zone(&self, zone_id: ZoneId) -> Option<&CachedZone> {
        self.zones.iter().find(|z| z.zone.zone_id == zone_id)
    }

    /// Applies an availability message. Only a strictly newer `version` changes anything,
    /// so duplicates and late messages are harmless. Returns whether the entry changed.
    pub fn apply_message(
        &mut self,
        zone_id: ZoneId,
        available: i32,
        held: i32,
        sold: i32,
        version: i64,
        now_ms: i64,
    ) -> bool {
        let Some(cached) = self.zones.iter_mut().find(|z| z.zone.zone_id == zone_id) else {
            // A zone this entry does not know: a catalog message will evict the entry.
            return false;
        };
        if version <= cached.zone.version {
            return false;
        }
        let zone = &mut cached.zone;
        zone.available = available;
        zone.held = held;
        zone.sold = sold;
        // Invariant 1 (available + held + sold = capacity) also carries capacity edits.
        if let Some(capacity) = available
            .checked_add(held)
            .and_then(|c| c.checked_add(sold))
        {
            zone.capacity = capacity;
        }
        zone.version = version;
        cached.confirmed_at_ms = now_ms;
        cached.sold_out_at_ms = None;
        true
    }

    /// The ledger answered a fresh (not replayed) hold `sold_out` for this zone while the
    /// cache held `seen_version`: note it as of `now_ms`, so holds are shed for a while. If
    /// the zone moved on meanwhile (a newer message, e.g. a release), the answer is stale
    /// and nothing is recorded. The public counters are left as the ledger last sent them.
    pub fn record_sold_out(&mut self, zone_id: ZoneId, seen_version: i64, now_ms: i64) -> bool {
        match self.zones.iter_mut().find(|z| z.zone.zone_id == zone_id) {
            Some(cached) if cached.zone.version == seen_version => {
                cached.sold_out_at_ms = Some(now_ms);
                true
            }
            _ => false,
        }
    }

    /// Whether a hold for `zone_id` may be refused `sold_out` at the edge: the cached zone
    /// has nothing available, confirmed at most `window_ms` ago while the invalidation
    /// stream was fresh (`stream_fresh`: a zero the stream no longer vouches for may have
    /// been released meanwhile), or the ledger itself answered a hold `sold_out` that
    /// recently. A confirmation from the future (the clock went backwards) is not trusted.
    pub fn should_shed(
        &self,
        zone_id: ZoneId,
        now_ms: i64,
        window_ms: u64,
        stream_fresh: bool,
    ) -> bool {
        let Some(cached) = self.zone(zone_id) else {
            return false;
        };
        let recent = |at: i64| within_window(at, now_ms, window_ms);
        (stream_fresh && cached.zone.available <= 0 && recent(cached.confirmed_at_ms))
            || cached.sold_out_at_ms.is_some_and(recent)
    }

    /// The public document.
    pub fn to_availability(&self) -> Availability {
        Availability {
            show_id: self.show_id,
            event_id: self.event_id,
            zones: self.zones.iter().map(|z| z.zone.clone()).collect(),
        }
    }

    pub fn etag(&self) -> String {
        etag::for_availability(self.zones.iter().map(|z| &z.zone))
    }
}

impl AvailEntry {
    /// The stored form ([`crate::stored`]): the public document and its ETag rendered now,
    /// then the ids and every zone with its confirmation times.
    pub fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        let body = serde_json::to_vec(&self.to_availability())
            .map_err(|_| Unstorable("the public document"))?;
        let zones = self.zones.len();
        let rest_hint = stored::AVAIL_REST_HEAD_BYTES + zones * stored::ZONE_BYTES;
        stored::encode(
            Kind::Availability,
            (self.stored_at_ms, self.expires_at_ms),
            &self.etag(),
            &body,
            rest_hint,
            |w| {
                w.raw(self.show_id.0.as_bytes());
                w.raw(self.event_id.0.as_bytes());
                w.u16(zones);
                for cached in &self.zones {
                    let zone = &cached.zone;
                    w.raw(zone.zone_id.0.as_bytes());
                    for counter in [zone.available, zone.held, zone.sold, zone.capacity] {
                        w.i32(counter);
                    }
                    w.i64(zone.version);
                    w.i64(cached.confirmed_at_ms);
                    w.i64(cached.sold_out_at_ms.unwrap_or(stored::NO_TIME));
                }
            },
        )
    }

    /// The whole entry back from its stored form, for writers (a fetch merging, a message,
    /// a `sold_out` note, the hold checks); the rendered body is not read back.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        let stored = Stored::parse(bytes, Kind::Availability)?;
        let mut r = Reader::new(stored.rest());
        let show_id = ShowId(Uuid::from_bytes(r.take()?));
        let event_id = EventId(Uuid::from_bytes(r.take()?));
        let count = usize::from(r.u16()?);
        let mut zones = Vec::with_capacity(count);
        for _ in 0..count {
            zones.push(read_zone(&mut r)?);
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

fn read_zone(r: &mut Reader<'_>) -> Result<CachedZone, Corrupt> {
    let zone = ZoneAvailability {
        zone_id: ZoneId(Uuid::from_bytes(r.take()?)),
        available: r.i32()?,
        held: r.i32()?,
        sold: r.i32()?,
        capacity: r.i32()?,
        version: r.i64()?,
    };
    let confirmed_at_ms = r.i64()?;
    let sold_out_at_ms = Some(r.i64()?).filter(|&at| at != stored::NO_TIME);
    Ok(CachedZone {
        zone,
        confirmed_at_ms,
        sold_out_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_domain::catalog::ZoneAvailability;

    /// Ids from small numbers, so tests read as "zone 1", "zone 2".
    fn id(n: u128) -> Ids {
        Ids(n)
    }

    struct Ids(u128);

    impl Ids {
        fn zone(&self) -> ZoneId {
            format!("00000000-0000-0000-0000-{:012x}", self.0)
                .parse()
                .expect("valid id")
        }
    }

    fn zone(n: u128, available: i32, version: i64) -> ZoneAvailability {
        ZoneAvailability {
            zone_id: id(n).zone(),
            available,
            held: 0,
            sold: 10 - available,
            capacity: 10,
            version,
        }
    }

    fn avail(zones: Vec<ZoneAvailability>) -> Availability {
        Availability {
            show_id: "00000000-0000-0000-0000-00000000aaaa"
                .parse()
                .expect("valid id"),
            event_id: "00000000-0000-0000-0000-00000000bbbb"
                .parse()
                .expect("valid id"),
            zones,
        }
    }

    #[test]
    fn merge_keeps_the_newer_version_per_zone() {
        let cached =
            AvailEntry::merge_fetch(None, avail(vec![zone(1, 5, 7), zone(2, 9, 3)]), 100, 1000);
        // The fetch started before zone 1's message (version 7) and saw version 6; zone 2
        // moved on in the meantime.
        let fresh = avail(vec![zone(1, 6, 6), zone(2, 8, 4), zone(3, 10, 1)]);
        let merged = AvailEntry::merge_fetch(Some(&cached), fresh, 200, 1000);
        let z = |n| {
            merged
                .zone(id(n).zone())
                .map(|z| (z.zone.available, z.zone.version, z.confirmed_at_ms))
        };
        assert_eq!(
            z(1),
            Some((5, 7, 100)),
            "cached zone 1 is newer and keeps its confirmation time"
        );
        assert_eq!(z(2), Some((8, 4, 200)));
        assert_eq!(z(3), Some((10, 1, 200)));
        assert_eq!(merged.expires_at_ms, 1200);
        // Equal versions: the fetch wins and re-confirms.
        let again = AvailEntry::merge_fetch(Some(&merged), avail(vec![zone(1, 5, 7)]), 300, 1000);
        assert_eq!(
            again.zone(id(1).zone()).map(|z| z.confirmed_at_ms),
            Some(300)
        );
        assert_eq!(again.zones.len(), 1, "the fetch decides which zones exist");
    }

    #[test]
    fn messages_apply_only_when_newer_and_duplicates_are_harmless() {
        let mut entry = AvailEntry::merge_fetch(None, avail(vec![zone(1, 5, 7)]), 100, 1000);
        assert!(
            !entry.apply_message(id(1).zone(), 9, 0, 1, 6, 150),
            "older message"
        );
        assert!(
            !entry.apply_message(id(1).zone(), 9, 0, 1, 7, 150),
            "same version"
        );
        assert_eq!(
            entry
                .zone(id(1).zone())
                .map(|z| (z.zone.available, z.confirmed_at_ms)),
            Some((5, 100))
        );
        assert!(entry.apply_message(id(1).zone(), 3, 2, 6, 8, 160));
        let after = entry.clone();
        assert!(
            !entry.apply_message(id(1).zone(), 3, 2, 6, 8, 170),
            "duplicate"
        );
        assert_eq!(entry, after);
        let z = entry.zone(id(1).zone()).map(|z| z.zone.clone());
        assert_eq!(
            z.map(|z| (z.available, z.held, z.sold, z.capacity, z.version)),
            Some((3, 2, 6, 11, 8))
        );
        assert!(
            !entry.apply_message(id(9).zone(), 1, 1, 1, 99, 170),
            "unknown zone"
        );
    }

    #[test]
    fn sold_out_keeps_the_version_so_newer_updates_replace_it() {
        let mut entry = AvailEntry::merge_fetch(None, avail(vec![zone(1, 5, 7)]), 100, 1000);
        let public = entry.to_availability();
        assert!(!entry.should_shed(id(1).zone(), 100, 1_000, true));
        assert!(
            !entry.record_sold_out(id(1).zone(), 6, 500),
            "a stale answer is ignored"
        );
        assert!(entry.record_sold_out(id(1).zone(), 7, 500));
        assert!(entry.should_shed(id(1).zone(), 600, 1_000, true));
        assert_eq!(entry.to_availability(), public, "public counters untouched");
        // A newer version (e.g. a release) replaces the zone and forgets the answer.
        assert!(entry.apply_message(id(1).zone(), 2, 0, 8, 8, 700));
        assert!(!entry.should_shed(id(1).zone(), 800, 1_000, true));
    }

    #[test]
    fn shedding_needs_a_recently_confirmed_zero() {
        let mut entry = AvailEntry::merge_fetch(
            None,
            avail(vec![zone(1, 0, 7), zone(2, 3, 7)]),
            1_000,
            60_000,
        );
        let z1 = id(1).zone();
        assert!(entry.should_shed(z1, 1_000, 1_000, true));
        assert!(
            entry.should_shed(z1, 2_000, 1_000, true),
            "window is inclusive"
        );
        assert!(
            !entry.should_shed(z1, 2_001, 1_000, true),
            "too old to trust"
        );
        assert!(
            !entry.should_shed(z1, 999, 1_000, true),
            "confirmed in the future"
        );
        assert!(
            !entry.should_shed(id(2).zone(), 1_000, 1_000, true),
            "has stock"
        );
        assert!(
            !entry.should_shed(id(3).zone(), 1_000, 1_000, true),
            "unknown zone"
        );
        // A message re-confirms the zero later on.
        assert!(entry.apply_message(z1, 0, 2, 8, 8, 5_000));
        assert!(entry.should_shed(z1, 5_500, 1_000, true));
        // A sold_out answer from the ledger does too.
        assert!(entry.record_sold_out(id(2).zone(), 7, 9_000));
        assert!(entry.should_shed(id(2).zone(), 9_100, 1_000, true));
    }

    #[test]
    fn a_cached_zero_is_shed_only_while_the_stream_vouches_for_it() {
        let mut entry = AvailEntry::merge_fetch(
            None,
            avail(vec![zone(1, 0, 7), zone(2, 3, 7)]),
            1_000,
            60_000,
        );
        let (z1, z2) = (id(1).zone(), id(2).zone());
        assert!(entry.should_shed(z1, 1_500, 1_000, true));
        assert!(
            !entry.should_shed(z1, 1_500, 1_000, false),
            "a silent stream may have missed the release"
        );
        // The ledger's own sold_out answer needs no stream: it is the ledger's word.
        assert!(entry.record_sold_out(z2, 7, 1_200));
        assert!(entry.should_shed(z2, 1_500, 1_000, false));
        assert!(
            !entry.should_shed(z2, 2_201, 1_000, false),
            "too old to trust"
        );
    }

    #[test]
    fn a_read_through_takes_only_entries_fetched_after_it_arrived() {
        let entry = AvailEntry::merge_fetch(None, avail(vec![zone(1, 5, 7)]), 1_000, 60_000);
        assert!(entry.fetched_since(1_000));
        assert!(entry.fetched_since(999));
        assert!(
            !entry.fetched_since(1_001),
            "fetched before the reader arrived"
        );
        let mut updated = entry.clone();
        assert!(updated.apply_message(id(1).zone(), 4, 1, 5, 8, 5_000));
        assert!(
            !updated.fetched_since(1_001),
            "a message updates zones, not when the entry was fetched"
        );
    }

    #[test]
    fn entries_under_an_epoch_serve_only_while_it_holds() {
        let doc = DocEntry::new("/v1/categories".into(), "[]".into(), "\"b1\"".into(), 0, 1);
        assert!(!doc.is_current(Some(b"7-100")), "unstamped");
        let doc = doc.under_epoch("7-100".into());
        assert!(doc.is_current(Some(b"7-100")));
        assert!(
            !doc.is_current(Some(b"8-200")),
            "a catalog message moved it"
        );
        assert!(!doc.is_current(None), "the store was emptied");
        let back = DocEntry::decode(doc.encode().expect("encodes")).expect("decodes");
        assert!(back.is_current(Some(b"7-100")), "the stamp is stored");
        assert_eq!(back, doc);
    }

    #[test]
    fn the_stored_form_round_trips_and_serves_the_public_shape() {
        let mut entry =
            AvailEntry::merge_fetch(None, avail(vec![zone(1, 5, 7), zone(2, 0, 9)]), 100, 1000);
        assert!(entry.record_sold_out(id(2).zone(), 9, 150));
        let bytes = entry.encode().expect("encodes");
        assert_eq!(AvailEntry::decode(bytes.clone()), Ok(entry.clone()));
        // What a hit reads, in place: the public document and its tag, as rendered when
        // the entry was written.
        let stored = Stored::parse(bytes.clone(), Kind::Availability).expect("parses");
        let public: Availability = serde_json::from_slice(stored.body()).expect("json");
        assert_eq!(public, entry.to_availability());
        assert_eq!(stored.etag(), entry.etag());
        assert_eq!(stored.stored_at_ms(), 100);
        assert!(stored.is_fresh(1_099) && !stored.is_fresh(1_100));
        assert!(
            Stored::parse(bytes.clone(), Kind::Document).is_err(),
            "availability is not a document"
        );
        assert!(AvailEntry::decode(bytes[..bytes.len() - 1].to_vec()).is_err());
        assert!(
            AvailEntry::decode(b"{\"zones\":3}".to_vec()).is_err(),
            "old JSON entries"
        );
        // A message re-renders what hits serve.
        assert!(entry.apply_message(id(1).zone(), 4, 1, 5, 8, 200));
        let stored =
            Stored::parse(entry.encode().expect("encodes"), Kind::Availability).expect("parses");
        let public: Availability = serde_json::from_slice(stored.body()).expect("json");
        assert_eq!(public.zones[0].available, 4);
        assert_eq!(stored.etag(), "\"a17-2-1\"");
    }

    #[test]
    fn a_document_serves_only_its_own_request_while_fresh_and_current() {
        let doc = DocEntry::new(
            "/v1/events?q=a".into(),
            "[]".into(),
            "\"b1\"".into(),
            100,
            1000,
        );
        let stored = |doc: &DocEntry| {
            Stored::parse(doc.encode().expect("encodes"), Kind::Document).expect("parses")
        };
        let by_key = stored(&doc);
        assert!(serves_request(&by_key, "/v1/events?q=a", 500));
        assert!(
            !serves_request(&by_key, "/v1/events?q=b", 500),
            "another query"
        );
        assert!(!serves_request(&by_key, "/v1/events?q=a", 1_100), "expired");
        assert!(!is_current(&by_key, Some(b"7")), "unstamped");
        let stamped = stored(&doc.clone().under_epoch("7".into()));
        assert!(is_current(&stamped, Some(b"7")));
        assert!(
            !is_current(&stamped, Some(b"8")),
            "a catalog message moved it"
        );
        assert!(!is_current(&stamped, None), "the store was emptied");
        assert_eq!(stamped.body(), b"[]");
        assert_eq!(stamped.etag(), "\"b1\"");
    }
}
