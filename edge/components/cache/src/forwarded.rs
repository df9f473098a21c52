//! The node's memory of the holds it forwarded: a retry of such a request must reach the
//! ledger (which replays its answer, perhaps a 201 the client never received) even when
//! the zone is shed by now or a rule changed since — an edge refusal could contradict a
//! hold that exists.
//!
//! The memory is bounded whatever the traffic: [`BUCKETS`] buckets (a hash of the key
//! picks one, [`crate::keys::forwarded`]), each holding the last [`BUCKET_KEYS_MAX`] keys
//! that landed in it, newest first, oldest evicted. A key is forgotten only after that
//! many newer keys landed in its bucket: after 16,000 forwarded holds a bucket has had
//! about four, so the chance that a given key is gone is ~10⁻⁵. With one key per slot, a
//! collision forgot a key after a few hundred (the chaos campaign saw it: a granted key
//! re-sent long after the sale was shed `sold_out`).
//!
//! Keys are `Idempotency-Key` values (`[A-Za-z0-9-_.:@]`, at most 128 bytes), so a bucket
//! is the keys joined by [`SEPARATOR`]. A key is remembered by compare-and-swap
//! ([`crate::cas`]), so two instances remembering keys of one bucket at the same instant
//! both keep theirs.

/// Buckets of the memory.
pub const BUCKETS: u64 = 4096;
/// Keys a bucket keeps: a stored bucket is at most 16 × 129 bytes, the whole memory at
/// most ~8.5 MB (~2.4 MB with UUID keys).
pub const BUCKET_KEYS_MAX: usize = 16;
/// Not in the key alphabet ([`tessera_domain::IdempotencyKey`]).
const SEPARATOR: u8 = b'\n';

/// Whether the stored `bucket` holds `key`.
pub fn contains(bucket: &[u8], key: &str) -> bool {
    bucket
        .split(|&b| b == SEPARATOR)
        .any(|stored| stored == key.as_bytes())
}

/// `bucket` (as stored, if any) with `key` as its newest entry: moved to the front if it
/// was there, the oldest dropped past [`BUCKET_KEYS_MAX`].
pub fn remember(bucket: Option<&[u8]>, key: &str) -> Vec<u8> {
    let older = bucket
        .unwrap_or_default()
        .split(|&b| b == SEPARATOR)
        .filter(|stored| !stored.is_empty() && *stored != key.as_bytes())
        .take(BUCKET_KEYS_MAX - 1);
    let mut out = Vec::with_capacity(BUCKET_KEYS_MAX * (key.len() + 1));
    out.extend_from_slice(key.as_bytes());
    for stored in older {
        out.push(SEPARATOR);
        out.extend_from_slice(stored);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_remembered_key_is_found_and_others_are_not() {
        let bucket = remember(None, "key-a");
        assert!(contains(&bucket, "key-a"));
        assert!(!contains(&bucket, "key-b"));
        assert!(!contains(&bucket, "key"), "whole keys only");
        assert!(!contains(b"", "key-a"));
    }

    #[test]
    fn the_oldest_key_goes_first_and_a_repeat_moves_to_the_front() {
        let mut bucket = None;
        for i in 0..BUCKET_KEYS_MAX {
            bucket = Some(remember(bucket.as_deref(), &format!("k{i}")));
        }
        // k0 is the oldest; remembering it again makes k1 the oldest.
        let bucket = remember(bucket.as_deref(), "k0");
        let bucket = remember(Some(&bucket), "new");
        assert!(contains(&bucket, "k0"));
        assert!(contains(&bucket, "new"));
        assert!(!contains(&bucket, "k1"), "evicted: the oldest");
        for i in 2..BUCKET_KEYS_MAX {
            assert!(contains(&bucket, &format!("k{i}")));
        }
    }

    proptest! {
        /// Whatever arrives, a bucket holds exactly the last `BUCKET_KEYS_MAX` distinct keys.
        #[test]
        fn a_bucket_holds_the_most_recent_distinct_keys(
            keys in proptest::collection::vec("[a-d]{1,2}", 0..40)
        ) {
            let mut bucket: Option<Vec<u8>> = None;
            for key in &keys {
                bucket = Some(remember(bucket.as_deref(), key));
            }
            let mut recent: Vec<&str> = Vec::new();
            for key in keys.iter().rev() {
                if !recent.contains(&key.as_str()) {
                    recent.push(key);
                }
            }
            let kept = &recent[..recent.len().min(BUCKET_KEYS_MAX)];
            let stored = bucket.unwrap_or_default();
            for key in &recent {
                prop_assert_eq!(contains(&stored, key), kept.contains(key), "{}", key);
            }
            prop_assert!(stored.len() <= BUCKET_KEYS_MAX * 3);
        }
    }
}
