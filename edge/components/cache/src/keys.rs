//! The key-value layout (store label `default`, one store per edge node):
//!
//! | key | value |
//! | --- | --- |
//! | `avail/{show_id}` | [`crate::entry::AvailEntry`]: the show's availability, merged per zone |
//! | `seats/{show_id}` | [`crate::seat_map::SeatMapEntry`]: the show's seat map, patched per zone by version |
//! | `event_shows/{event_id}` | [`crate::show_index::ShowIndex`]: the shows of the event with an `avail/` or `seats/` entry, written before the entry |
//! | `event/{event_id}` | [`crate::entry::DocEntry`]: `GET /v1/events/{id}` verbatim |
//! | `queue/{event_id}` | [`crate::queue::QueueEntry`]: the event's queue (`GET /v1/events/{id}/queue/state`), `serving` moved on by `queue` messages |
//! | `checkin_keys/{event_id}` | [`crate::entry::DocEntry`]: `GET /v1/events/{id}/checkin-keys` verbatim (the check-in component's) |
//! | `events/{slot}` | [`crate::entry::DocEntry`]: one `GET /v1/events` page (slot: a hash of the normalised query), stamped with the catalog epoch |
//! | `categories` | [`crate::entry::DocEntry`]: `GET /v1/categories`, stamped with the catalog epoch |
//! | `invalidation/last_seq` | highest `seq` applied, decimal text |
//! | `invalidation/catalog_epoch` | changes on every catalog eviction or flush (`{seq}-{ms}` text) |
//! | `invalidation/avail_epoch/{slot}` | moved by a message for a show that is not cached ([`availability_epoch`]) |
//! | `invalidation/stream_heard_at_ms` | when the invalidation stream last spoke (wall-clock ms): [`crate::freshness`] |
//! | `invalidation/subscribed_at_ms` | native host only: when it last subscribed, emptying the cache and forgetting `last_seq`; consumed by the first message after it ([`SUBSCRIBED_AT`]) |
//! | `fill/{key}` | an instance is fetching the missing entry `key` (lease deadline) |
//! | `forwarded/{bucket}` | the `Idempotency-Key`s of the last holds this node forwarded that hash to the bucket ([`crate::forwarded`]) |
//! | `ratelimit/{window_start_s}/{window_s}/{class}/{addr}` | requests of `addr` in `class` during the fixed window, a `wasi:keyvalue/atomics` counter (8 bytes, little-endian `i64`, as Spin stores it) ([`rate_limit`], [`crate::ratelimit`]) |
//!
//! A catalog message finds what it evicts without scanning the store: the event detail by
//! its key, the shows' availability through `event_shows/`, and listings and categories by
//! the epoch rule ([`evicted_by_epoch`], [`crate::entry::DocEntry::is_current`]). Only a
//! flush (a missed message: rare) lists every key, since the store has no prefix delete.
//!
//! Everything outside `invalidation/`, `forwarded/` and `ratelimit/` is a cache entry and
//! may be dropped at any time. Rate-limit counters name the window they count, so a host
//! can drop the ones whose window ended without reading them ([`rate_limit_is_stale`]).

use tessera_domain::{EventId, ShowId};

pub const AVAIL_PREFIX: &str = "avail/";
pub const SEAT_MAP_PREFIX: &str = "seats/";
pub const EVENT_PREFIX: &str = "event/";
pub const CHECKIN_KEYS_PREFIX: &str = "checkin_keys/";
pub const QUEUE_PREFIX: &str = "queue/";
pub const EVENT_LIST_PREFIX: &str = "events/";
const EVENT_SHOWS_PREFIX: &str = "event_shows/";
pub const CATEGORIES: &str = "categories";
pub const LAST_SEQ: &str = "invalidation/last_seq";
/// Readers note this before fetching from the ledger and store what they fetched only if
/// it is unchanged afterwards: a catalog eviction that landed while the fetch was in flight
/// would otherwise be undone by storing the older document.
pub const CATALOG_EPOCH: &str = "invalidation/catalog_epoch";
/// When the invalidation stream last spoke (any message, heartbeats included), wall-clock
/// ms as decimal text: cached availability is trusted only while this is recent
/// ([`crate::freshness`]).
pub const STREAM_HEARD_AT: &str = "invalidation/stream_heard_at_ms";
/// Written only by the native host (`tessera-edge`) when it (re)subscribes, right after it
/// emptied the cache's entries and deleted [`LAST_SEQ`]: nothing cached predates the
/// subscription, so the first message needs no flush ([`crate::seq::Last`]). Spin has no
/// subscribe hook and never writes it.
pub const SUBSCRIBED_AT: &str = "invalidation/subscribed_at_ms";
const INVALIDATION_PREFIX: &str = "invalidation/";
const FILL_PREFIX: &str = "fill/";
const FORWARDED_PREFIX: &str = "forwarded/";
pub const RATE_LIMIT_PREFIX: &str = "ratelimit/";

/// Listings with a longer query are served but not cached.
pub const EVENT_LIST_QUERY_MAX: usize = 512;
/// Listings live in this many slots (a hash of the query picks one; the entry records its
/// query, so a collision is a miss): however many distinct queries clients send, listings
/// never take more of the store than this.
pub const EVENT_LIST_SLOTS: u64 = 1024;

pub fn availability(show_id: ShowId) -> String {
    PrefixedId::availability(show_id).as_str().to_owned()
}

pub fn seat_map(show_id: ShowId) -> String {
    PrefixedId::seat_map(show_id).as_str().to_owned()
}

/// The ledger path of an event's detail, before its id.
const EVENT_PATH_PREFIX: &str = "/v1/events/";
/// Bytes of the longest prefix and id ([`EVENT_SHOWS_PREFIX`] and a hyphenated UUID).
const ID_KEY_BYTES_MAX: usize = 12 + 36;

/// A prefix and an id, spelled on the stack: the hit path builds its key (the same text as
/// [`availability`] and [`event`]) and the path it compares an entry's source with without
/// allocating.
pub struct PrefixedId {
    bytes: [u8; ID_KEY_BYTES_MAX],
    len: usize,
}

impl PrefixedId {
    pub fn availability(show_id: ShowId) -> Self {
        Self::new(AVAIL_PREFIX, show_id.0)
    }

    pub fn seat_map(show_id: ShowId) -> Self {
        Self::new(SEAT_MAP_PREFIX, show_id.0)
    }

    pub fn event(event_id: EventId) -> Self {
        Self::new(EVENT_PREFIX, event_id.0)
    }

    /// `/v1/events/{event_id}`: what an event's entry is fetched from.
    pub fn event_path(event_id: EventId) -> Self {
        Self::new(EVENT_PATH_PREFIX, event_id.0)
    }

    fn new(prefix: &'static str, id: uuid::Uuid) -> Self {
        let mut bytes = [0; ID_KEY_BYTES_MAX];
        let len = prefix.len() + uuid::fmt::Hyphenated::LENGTH;
        bytes[..prefix.len()].copy_from_slice(prefix.as_bytes());
        id.hyphenated().encode_lower(&mut bytes[prefix.len()..len]);
        Self { bytes, len }
    }

    pub fn as_str(&self) -> &str {
        // ASCII by construction (an ASCII prefix, a hyphenated UUID).
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// Slots of the per-show availability epochs (a show hashes to one; a shared slot only
/// costs a neighbour an extra refetch).
pub const AVAILABILITY_EPOCH_SLOTS: u64 = 1024;

/// Moved by the invalidator when a message concerns a show whose availability or seat map
/// is not cached: a fetch of that show in flight re-checks it after storing and drops what
/// it stored if it moved.
pub fn availability_epoch(show_id: ShowId) -> String {
    let slot = crate::etag::fnv1a64(show_id.to_string().as_bytes()) % AVAILABILITY_EPOCH_SLOTS;
    format!("{INVALIDATION_PREFIX}avail_epoch/{slot}")
}

/// The lease of an instance fetching the missing entry `key` (its deadline, ms since the
/// epoch, as decimal text); deleted when the fetch ends.
pub fn fill_lease(key: &str) -> String {
    format!("{FILL_PREFIX}{key}")
}

pub fn event(event_id: EventId) -> String {
    PrefixedId::event(event_id).as_str().to_owned()
}

/// The event's cached queue.
pub fn queue(event_id: EventId) -> String {
    format!("{QUEUE_PREFIX}{event_id}")
}

/// The event's public keys, as the check-in component caches them.
pub fn checkin_keys(event_id: EventId) -> String {
    format!("{CHECKIN_KEYS_PREFIX}{event_id}")
}

/// The index of the event's cached shows ([`crate::show_index`]).
pub fn event_shows(event_id: EventId) -> String {
    format!("{EVENT_SHOWS_PREFIX}{event_id}")
}

/// Whether the entry at `key` is evicted by moving the catalog epoch rather than by
/// deleting it: listings (up to [`EVENT_LIST_SLOTS`] keys, any of which a change may touch)
/// and the categories. Their stale copies stay in the store, bounded by those slots, until
/// the next fetch of the slot overwrites them.
pub fn evicted_by_epoch(key: &str) -> bool {
    key == CATEGORIES || key.starts_with(EVENT_LIST_PREFIX)
}

/// The key of the listing for `normalised_query` ([`normalize_query`]), or `None` if the
/// query is too long to cache.
pub fn event_list(normalised_query: &str) -> Option<String> {
    (normalised_query.len() <= EVENT_LIST_QUERY_MAX).then(|| {
        let slot = crate::etag::fnv1a64(normalised_query.as_bytes()) % EVENT_LIST_SLOTS;
        format!("{EVENT_LIST_PREFIX}{slot}")
    })
}

/// Whether `key` holds cached data (as opposed to the invalidator's bookkeeping or the
/// node's memory of forwarded holds, which no ledger change makes stale).
pub fn is_cache_entry(key: &str) -> bool {
    !key.starts_with(INVALIDATION_PREFIX)
        && !key.starts_with(FORWARDED_PREFIX)
        && !is_rate_limit(key)
}

/// The counter of `addr`'s requests in `class` during `window`
/// (`ratelimit/{window_start_s}/{window_s}/{class}/{addr}`).
pub fn rate_limit(
    window: crate::ratelimit::Window,
    class: crate::ratelimit::Class,
    addr: &str,
) -> String {
    format!(
        "{RATE_LIMIT_PREFIX}{}/{}/{}/{addr}",
        window.start_s,
        window.len_s,
        class.name()
    )
}

/// Whether `key` is a rate-limit counter ([`rate_limit`]).
pub fn is_rate_limit(key: &str) -> bool {
    key.starts_with(RATE_LIMIT_PREFIX)
}

/// When the window a rate-limit counter counts ends (Unix seconds); `None` for any other
/// key, or a counter key that does not spell its window.
pub fn rate_limit_window_end_s(key: &str) -> Option<u64> {
    let mut parts = key.strip_prefix(RATE_LIMIT_PREFIX)?.splitn(3, '/');
    let start_s: u64 = parts.next()?.parse().ok()?;
    let len_s: u64 = parts.next()?.parse().ok()?;
    start_s.checked_add(len_s)
}

/// Whether `key` is a rate-limit counter that no request will read again at `now_s` (Unix
/// seconds): its window has ended (or it does not spell one). What the host drops in its
/// sweep and when the counters fill their share of the store; any other key is never
/// stale here.
pub fn rate_limit_is_stale(key: &str, now_s: u64) -> bool {
    is_rate_limit(key) && rate_limit_window_end_s(key).is_none_or(|end_s| end_s <= now_s)
}

/// The bucket of the node's memory of forwarded holds ([`crate::forwarded`]) that
/// `idempotency_key` belongs to.
pub fn forwarded(idempotency_key: &str) -> String {
    let bucket = crate::etag::fnv1a64(idempotency_key.as_bytes()) % crate::forwarded::BUCKETS;
    format!("{FORWARDED_PREFIX}{bucket}")
}

/// A query string with its parameters sorted and empty pieces dropped, so `a=1&b=2` and
/// `b=2&a=1&` share one entry. Pairs are compared as raw text (no percent-decoding): two
/// spellings of one value only split the cache, they never merge different queries.
/// `query` is what follows the URL's `?`; a further `?` is part of a parameter's name (the
/// fuzzer found that stripping it here made `q=a&?q=a` normalise differently twice).
pub fn normalize_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_keys_live_in_bounded_buckets_outside_the_cache() {
        let a = forwarded("key-a");
        assert_eq!(a, forwarded("key-a"));
        assert!(a.starts_with("forwarded/"));
        let bucket: u64 = a["forwarded/".len()..].parse().expect("bucket");
        assert!(bucket < crate::forwarded::BUCKETS);
        assert!(
            !is_cache_entry(&a),
            "a flush must not forget forwarded keys"
        );
        assert!(is_cache_entry("avail/x"));
    }

    #[test]
    fn listing_keys_are_order_independent() {
        assert_eq!(normalize_query("city=Berlin&q=jazz"), "city=Berlin&q=jazz");
        assert_eq!(normalize_query("q=jazz&city=Berlin"), "city=Berlin&q=jazz");
        assert_eq!(
            normalize_query("q=jazz&&city=Berlin&"),
            "city=Berlin&q=jazz"
        );
        // Found by the fuzzer: normalising is idempotent with a `?` inside the query too.
        let once = normalize_query("q=a&?q=a");
        assert_eq!(once, "?q=a&q=a");
        assert_eq!(normalize_query(&once), once);
        assert_eq!(normalize_query(""), "");
        // Listings hash into a bounded set of slots.
        let slot = |key: Option<String>| -> u64 {
            key.and_then(|k| k.strip_prefix(EVENT_LIST_PREFIX)?.parse().ok())
                .unwrap_or(u64::MAX)
        };
        for n in 0..5_000 {
            assert!(slot(event_list(&format!("q=query{n}"))) < EVENT_LIST_SLOTS);
        }
        assert_eq!(
            event_list(&normalize_query("limit=5&category=rock")),
            event_list(&normalize_query("category=rock&limit=5"))
        );
        // Different values stay different.
        assert_ne!(normalize_query("q=a&q=b"), normalize_query("q=a"));
        assert_eq!(normalize_query("q=b&q=a"), normalize_query("q=a&q=b"));
        assert_eq!(event_list(&"q=x".repeat(300)), None);
    }

    #[test]
    fn listings_and_categories_go_by_the_epoch_the_rest_by_key() {
        assert!(evicted_by_epoch(CATEGORIES));
        assert!(evicted_by_epoch(
            &event_list("q=jazz").expect("short query")
        ));
        let event_id = EventId(Default::default());
        assert!(!evicted_by_epoch(&event(event_id)));
        assert!(!evicted_by_epoch(&event_shows(event_id)));
        assert!(!evicted_by_epoch(&availability(ShowId(Default::default()))));
        assert!(
            is_cache_entry(&event_shows(event_id)),
            "a flush drops the index with the entries it lists"
        );
    }

    #[test]
    fn id_keys_spell_the_ids_as_urls_do() {
        // Parsed from upper case, spelled in lower case, as `Display` spells it.
        let show: ShowId = "0192F0C4-7D3E-7B6A-9C1E-3F5A2B8C9D01"
            .parse()
            .expect("valid id");
        assert_eq!(
            availability(show),
            "avail/0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01"
        );
        assert_eq!(availability(show), format!("{AVAIL_PREFIX}{show}"));
        let event_id = EventId(show.0);
        assert_eq!(event(event_id), format!("{EVENT_PREFIX}{event_id}"));
        assert_eq!(PrefixedId::event(event_id).as_str(), event(event_id));
        assert_eq!(
            PrefixedId::event_path(event_id).as_str(),
            format!("/v1/events/{event_id}")
        );
        assert_eq!(seat_map(show), format!("{SEAT_MAP_PREFIX}{show}"));
        for prefix in [
            SEAT_MAP_PREFIX,
            EVENT_SHOWS_PREFIX,
            EVENT_PATH_PREFIX,
            AVAIL_PREFIX,
            EVENT_PREFIX,
        ] {
            assert!(prefix.len() + 36 <= ID_KEY_BYTES_MAX, "{prefix}");
        }
    }

    #[test]
    fn rate_limit_counters_are_not_cache_entries_and_go_stale_with_their_window() {
        use crate::ratelimit::{Class, Window};
        let window = Window::containing(1_700_000_004_000, 10);
        let key = rate_limit(window, Class::Holds, "2001:db8::/64");
        assert_eq!(key, "ratelimit/1700000000/10/holds/2001:db8::/64");
        assert!(is_rate_limit(&key));
        assert!(!is_cache_entry(&key), "a flush keeps the counters");
        assert_eq!(rate_limit_window_end_s(&key), Some(1_700_000_010));
        assert!(!rate_limit_is_stale(&key, 1_700_000_009));
        assert!(rate_limit_is_stale(&key, 1_700_000_010));
        assert!(
            rate_limit_is_stale("ratelimit/garbage", 0),
            "unreadable: dropped"
        );
        for other in [LAST_SEQ, CATEGORIES, "forwarded/3", "avail/x"] {
            assert!(!rate_limit_is_stale(other, u64::MAX), "{other}");
            assert_eq!(rate_limit_window_end_s(other), None);
        }
    }

    #[test]
    fn bookkeeping_keys_are_not_cache_entries() {
        assert!(!is_cache_entry(LAST_SEQ));
        assert!(!is_cache_entry(CATALOG_EPOCH));
        assert!(!is_cache_entry(STREAM_HEARD_AT), "a flush keeps the lease");
        assert!(!is_cache_entry(SUBSCRIBED_AT));
        assert!(is_cache_entry(CATEGORIES));
        assert!(is_cache_entry(&availability(ShowId(Default::default()))));
    }
}
