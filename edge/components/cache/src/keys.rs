//! The key-value layout (store label `default`, one store per edge node):
//!
//! | key | value |
//! | --- | --- |
//! | `avail/{show_id}` | [`crate::entry::AvailEntry`]: the show's availability, merged per zone |
//! | `event/{event_id}` | [`crate::entry::DocEntry`]: `GET /v1/events/{id}` verbatim |
//! | `events/{normalised query}` | [`crate::entry::DocEntry`]: one `GET /v1/events` page |
//! | `categories` | [`crate::entry::DocEntry`]: `GET /v1/categories` |
//! | `invalidation/last_seq` | highest `seq` applied, decimal text |
//! | `invalidation/catalog_epoch` | changes on every catalog eviction or flush (decimal text) |
//! | `granted/{slot}` | the `Idempotency-Key` of a hold this node saw granted ([`granted`]) |
//!
//! Everything outside `invalidation/` and `granted/` is a cache entry and may be dropped at
//! any time.

use tessera_domain::{EventId, ShowId};

pub const AVAIL_PREFIX: &str = "avail/";
pub const EVENT_PREFIX: &str = "event/";
pub const EVENT_LIST_PREFIX: &str = "events/";
pub const CATEGORIES: &str = "categories";
pub const LAST_SEQ: &str = "invalidation/last_seq";
/// Readers note this before fetching from the ledger and store what they fetched only if
/// it is unchanged afterwards: a catalog eviction that landed while the fetch was in flight
/// would otherwise be undone by storing the older document.
pub const CATALOG_EPOCH: &str = "invalidation/catalog_epoch";
const INVALIDATION_PREFIX: &str = "invalidation/";
const GRANTED_PREFIX: &str = "granted/";
/// Slots of the granted-keys ring: bounds what it can take of the store, whatever the
/// traffic; a newer key in the same slot replaces an older one.
pub const GRANTED_SLOTS: u64 = 4096;

/// Listings with a longer query are served but not cached: an unbounded key space would let
/// one client fill the store.
pub const EVENT_LIST_QUERY_MAX: usize = 512;

pub fn availability(show_id: ShowId) -> String {
    format!("{AVAIL_PREFIX}{show_id}")
}

pub fn event(event_id: EventId) -> String {
    format!("{EVENT_PREFIX}{event_id}")
}

/// The key of a listing, or `None` if the query is too long to cache.
pub fn event_list(query: &str) -> Option<String> {
    let normalised = normalize_query(query);
    (normalised.len() <= EVENT_LIST_QUERY_MAX).then(|| format!("{EVENT_LIST_PREFIX}{normalised}"))
}

/// Whether `key` holds cached data (as opposed to the invalidator's bookkeeping or the
/// node's memory of granted holds, which no ledger change makes stale).
pub fn is_cache_entry(key: &str) -> bool {
    !key.starts_with(INVALIDATION_PREFIX) && !key.starts_with(GRANTED_PREFIX)
}

/// Where the node remembers that it relayed a granted hold for `idempotency_key`: a retry
/// of that request must reach the ledger (which replays the 201) even when the zone is now
/// shed or a rule changed since — an edge refusal would contradict a hold that exists.
pub fn granted(idempotency_key: &str) -> String {
    let slot = crate::etag::fnv1a64(idempotency_key.as_bytes()) % GRANTED_SLOTS;
    format!("{GRANTED_PREFIX}{slot}")
}

/// A query string with its parameters sorted and empty pieces dropped, so `a=1&b=2` and
/// `b=2&a=1&` share one entry. Pairs are compared as raw text (no percent-decoding): two
/// spellings of one value only split the cache, they never merge different queries.
pub fn normalize_query(query: &str) -> String {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_keys_live_in_a_bounded_ring_outside_the_cache() {
        let a = granted("key-a");
        assert_eq!(a, granted("key-a"));
        assert!(a.starts_with("granted/"));
        let slot: u64 = a["granted/".len()..].parse().expect("slot");
        assert!(slot < GRANTED_SLOTS);
        assert!(!is_cache_entry(&a), "a flush must not forget granted keys");
        assert!(is_cache_entry("avail/x"));
    }

    #[test]
    fn listing_keys_are_order_independent() {
        assert_eq!(normalize_query("city=Berlin&q=jazz"), "city=Berlin&q=jazz");
        assert_eq!(normalize_query("q=jazz&city=Berlin"), "city=Berlin&q=jazz");
        assert_eq!(
            normalize_query("?q=jazz&&city=Berlin&"),
            "city=Berlin&q=jazz"
        );
        assert_eq!(normalize_query(""), "");
        assert_eq!(event_list("").as_deref(), Some("events/"));
        assert_eq!(
            event_list("limit=5&category=rock").as_deref(),
            Some("events/category=rock&limit=5")
        );
        // Different values stay different.
        assert_ne!(normalize_query("q=a&q=b"), normalize_query("q=a"));
        assert_eq!(normalize_query("q=b&q=a"), normalize_query("q=a&q=b"));
        assert_eq!(event_list(&"q=x".repeat(300)), None);
    }

    #[test]
    fn bookkeeping_keys_are_not_cache_entries() {
        assert!(!is_cache_entry(LAST_SEQ));
        assert!(!is_cache_entry(CATALOG_EPOCH));
        assert!(is_cache_entry(CATEGORIES));
        assert!(is_cache_entry(&availability(ShowId(Default::default()))));
    }
}
