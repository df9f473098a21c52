//! What a message's `seq` says. The relay numbers messages without gaps and delivers them at
//! least once, so the edge can tell a duplicate from a missed message; its heartbeats carry
//! the last published `seq`, so a missed message shows within a heartbeat interval even
//! when nothing else is published.

/// What the store knows before a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// The highest `seq` applied.
    Applied(i64),
    /// Nothing applied since the native host emptied the cache on subscribing
    /// ([`crate::keys::SUBSCRIBED_AT`]): every entry was fetched while subscribed, so no
    /// message can be missing from it.
    Subscribed,
    /// Nothing known (a new store, an unreadable value; under Spin, which has no subscribe
    /// hook, entries cached before the subscription may have missed messages).
    Unknown,
}

/// A message, by what its `seq` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbered {
    /// A change (or a kind this version does not know) numbered `seq`: the next after
    /// `last` is `last + 1`.
    Change(i64),
    /// A heartbeat: everything up to `seq` was published, so `seq > last` means missed.
    Heartbeat(i64),
}

/// What to do with a message, given what the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqDecision {
    /// Drop every cached entry before applying: messages were missed (or, for the first
    /// message a store sees, may have been), so any entry may be stale.
    pub flush: bool,
    /// The value to store as the last seq; never lower than before.
    pub new_last: i64,
}

pub fn decide(last: Last, message: Numbered) -> SeqDecision {
    let (Numbered::Change(seq) | Numbered::Heartbeat(seq)) = message;
    let last = match last {
        Last::Applied(last) => last,
        // The host emptied the cache when it subscribed: this message starts the count.
        Last::Subscribed => {
            return SeqDecision {
                flush: false,
                new_last: seq,
            }
        }
        // One flush per store lifetime is cheap.
        Last::Unknown => {
            return SeqDecision {
                flush: true,
                new_last: seq,
            }
        }
    };
    let missed = match message {
        Numbered::Change(_) => seq > last.saturating_add(1),
        Numbered::Heartbeat(_) => seq > last,
    };
    SeqDecision {
        flush: missed,
        new_last: last.max(seq),
    }
}

/// What the store knows, from its `invalidation/last_seq` and whether the native host
/// marked its subscription ([`crate::keys::SUBSCRIBED_AT`]). An unreadable `last_seq` is
/// unknown (→ a flush) whatever the mark says.
pub fn parse_last(stored: Option<&[u8]>, subscribed_mark: bool) -> Last {
    match stored {
        None if subscribed_mark => Last::Subscribed,
        None => Last::Unknown,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map_or(Last::Unknown, Last::Applied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(last: Last, seq: i64) -> (bool, i64) {
        let d = decide(last, Numbered::Change(seq));
        (d.flush, d.new_last)
    }

    fn heartbeat(last: Last, seq: i64) -> (bool, i64) {
        let d = decide(last, Numbered::Heartbeat(seq));
        (d.flush, d.new_last)
    }

    #[test]
    fn next_in_order_applies_without_flush() {
        assert_eq!(change(Last::Applied(41), 42), (false, 42));
    }

    #[test]
    fn a_gap_flushes() {
        assert_eq!(change(Last::Applied(41), 43), (true, 43));
        assert_eq!(change(Last::Applied(i64::MAX), i64::MAX), (false, i64::MAX));
    }

    #[test]
    fn duplicates_and_old_messages_never_move_last_backwards() {
        assert_eq!(change(Last::Applied(42), 42), (false, 42));
        assert_eq!(change(Last::Applied(42), 7), (false, 42));
        assert_eq!(heartbeat(Last::Applied(42), 7), (false, 42));
    }

    #[test]
    fn a_heartbeat_above_the_last_applied_means_a_missed_message() {
        assert_eq!(
            heartbeat(Last::Applied(42), 42),
            (false, 42),
            "all caught up"
        );
        // Message 43 was published and never arrived: one past the last is already a gap.
        assert_eq!(heartbeat(Last::Applied(42), 43), (true, 43));
    }

    #[test]
    fn the_first_message_flushes_unless_the_host_emptied_the_cache_on_subscribing() {
        assert_eq!(change(Last::Unknown, 5), (true, 5));
        assert_eq!(heartbeat(Last::Unknown, 5), (true, 5));
        assert_eq!(change(Last::Subscribed, 5), (false, 5));
        assert_eq!(heartbeat(Last::Subscribed, 5), (false, 5));
        assert_eq!(parse_last(Some(b"17"), false), Last::Applied(17));
        assert_eq!(parse_last(Some(b"17"), true), Last::Applied(17));
        assert_eq!(parse_last(Some(b"x"), true), Last::Unknown, "unreadable");
        assert_eq!(parse_last(None, false), Last::Unknown);
        assert_eq!(parse_last(None, true), Last::Subscribed);
    }
}
