//! Expiry by the wall clock. Invalidation messages keep entries current; the TTL only bounds
//! how long a missed message (one with no later message to reveal the gap) can leave an
//! entry stale.

/// When an entry stored at `now_ms` with `ttl_ms` expires.
pub fn expires_at(now_ms: i64, ttl_ms: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
}

/// Whether an entry stored at `stored_at_ms` and expiring at `expires_at_ms` may be served
/// at `now_ms`. A clock that went backwards past the store time also counts as expired, so
/// a clock jump can never stretch an entry's life.
pub fn is_fresh(stored_at_ms: i64, expires_at_ms: i64, now_ms: i64) -> bool {
    stored_at_ms <= now_ms && now_ms < expires_at_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let exp = expires_at(1_000, 500);
        assert_eq!(exp, 1_500);
        assert!(is_fresh(1_000, exp, 1_000));
        assert!(is_fresh(1_000, exp, 1_499));
        assert!(!is_fresh(1_000, exp, 1_500));
        assert!(!is_fresh(1_000, exp, 999), "clock went backwards");
        assert!(
            !is_fresh(1_000, expires_at(1_000, 0), 1_000),
            "ttl 0 never serves"
        );
        assert_eq!(expires_at(i64::MAX - 1, u64::MAX), i64::MAX);
    }
}
