//! The freshness lease (DESIGN.md, "Freshness lease"): cached availability is trusted only
//! while the invalidation stream speaks. The ledger's relay publishes a heartbeat at least
//! every second (`OUTBOX_HEARTBEAT_INTERVAL_MS`); the invalidator records when the stream
//! last spoke ([`crate::keys::STREAM_HEARD_AT`], wall-clock ms; the native host also on
//! subscribing, right after it empties the cache). A node whose subscription died
//! silently, or that restarted with an old cache file, stops trusting its counts after
//! `stream_freshness_ms` and reads through to the ledger until the stream returns
//! ([`Trust::ReadThrough`], answers marked [`Served::Bypass`]).
//!
//! What is read through is still stored: an entry is only ever served while the stream is
//! fresh (or to readers that arrived before it was fetched, see
//! [`crate::entry::AvailEntry::fetched_since`]), and when the stream returns, the seq rule
//! decides whether it survives: a heartbeat above what the node applied flushes it.
//! Catalog documents (event detail, listings, categories) are not gated: they change
//! rarely, catalog messages evict them, and their TTL bounds a missed eviction.

/// How a read may use cached availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The stream is live: a TTL-fresh entry is a hit.
    Cached,
    /// The stream is silent: ask the ledger. Coalesced: an entry another instance fetched
    /// at or after `since_ms` (this request's arrival) is as good as fetching it here.
    ReadThrough { since_ms: i64 },
}

/// What the `Tessera-Cache` header says about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache, no ledger call.
    Hit,
    /// Fetched from the ledger because the entry was missing or expired (then cached).
    Miss,
    /// Read through to the ledger because the stream is not fresh (DESIGN.md's lease).
    Bypass,
}

impl Served {
    pub fn header_value(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// The stored "stream heard at" time; absent or unreadable → never heard.
pub fn parse_heard_at(stored: Option<&[u8]>) -> Option<i64> {
    std::str::from_utf8(stored?).ok()?.trim().parse().ok()
}

/// Whether `at_ms` lies at most `window_ms` before `now_ms` (inclusive). An instant "in the
/// future" (the clock went backwards) is not within the window. The one recency rule for
/// the stream's last word and for sold-out confirmations ([`crate::entry::AvailEntry::should_shed`]).
pub fn within_window(at_ms: i64, now_ms: i64, window_ms: u64) -> bool {
    let age = now_ms.saturating_sub(at_ms);
    age >= 0 && u64::try_from(age).is_ok_and(|age| age <= window_ms)
}

/// Whether the stream spoke at most `window_ms` before `now_ms`. Never heard → no; heard
/// "in the future" (the clock went backwards) → no, as for sold-out confirmations.
pub fn stream_is_fresh(heard_at_ms: Option<i64>, now_ms: i64, window_ms: u64) -> bool {
    heard_at_ms.is_some_and(|at| within_window(at, now_ms, window_ms))
}

/// The trust a read arriving at `now_ms` may place in cached availability.
pub fn trust(heard_at_ms: Option<i64>, now_ms: i64, window_ms: u64) -> Trust {
    if stream_is_fresh(heard_at_ms, now_ms, window_ms) {
        Trust::Cached
    } else {
        Trust::ReadThrough { since_ms: now_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_fresh_only_within_the_window() {
        assert!(stream_is_fresh(Some(10_000), 10_000, 3_000));
        assert!(stream_is_fresh(Some(10_000), 13_000, 3_000), "inclusive");
        assert!(
            !stream_is_fresh(Some(10_000), 13_001, 3_000),
            "silent too long"
        );
        assert!(!stream_is_fresh(None, 10_000, 3_000), "never heard");
        assert!(
            !stream_is_fresh(Some(10_001), 10_000, 3_000),
            "heard in the future"
        );
        assert!(
            !stream_is_fresh(Some(9_999), 10_000, 0),
            "a zero window never trusts"
        );
    }

    #[test]
    fn within_window_is_inclusive_and_refuses_the_future() {
        assert!(within_window(10_000, 10_000, 3_000));
        assert!(within_window(10_000, 13_000, 3_000), "inclusive");
        assert!(!within_window(10_000, 13_001, 3_000), "too old");
        assert!(!within_window(10_001, 10_000, 3_000), "in the future");
        assert!(!within_window(9_999, 10_000, 0), "a zero window");
        assert!(
            within_window(i64::MIN, i64::MAX, u64::MAX),
            "the age saturates, no overflow"
        );
    }

    #[test]
    fn a_silent_stream_reads_through_from_the_arrival() {
        assert_eq!(trust(Some(1_000), 2_000, 3_000), Trust::Cached);
        assert_eq!(
            trust(Some(1_000), 5_000, 3_000),
            Trust::ReadThrough { since_ms: 5_000 }
        );
        assert_eq!(
            trust(None, 5_000, 3_000),
            Trust::ReadThrough { since_ms: 5_000 }
        );
    }

    #[test]
    fn heard_at_parses_or_counts_as_never() {
        assert_eq!(
            parse_heard_at(Some(b"1700000000000")),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_heard_at(Some(b"soon")), None);
        assert_eq!(parse_heard_at(None), None);
        assert_eq!(Served::Bypass.header_value(), "bypass");
        assert_eq!(Served::Hit.header_value(), "hit");
        assert_eq!(Served::Miss.header_value(), "miss");
    }
}
