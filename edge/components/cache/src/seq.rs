//! What a message's `seq` says. The relay numbers messages without gaps and delivers them at
//! least once, so the edge can tell a duplicate from a missed message.

/// What to do with a message numbered `seq`, given the highest applied so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqDecision {
    /// Drop every cached entry before applying: messages were missed (or, for the first
    /// message this store sees, may have been), so any entry may be stale.
    pub flush: bool,
    /// The value to store as the last seq; never lower than before.
    pub new_last: i64,
}

pub fn decide(last: Option<i64>, seq: i64) -> SeqDecision {
    match last {
        // Nothing known: entries cached before the subscription started may have missed
        // messages. One flush per store lifetime is cheap.
        None => SeqDecision {
            flush: true,
            new_last: seq,
        },
        Some(last) => SeqDecision {
            flush: seq > last.saturating_add(1),
            new_last: last.max(seq),
        },
    }
}

/// Parses the stored last seq; anything unreadable counts as unknown (→ a flush).
pub fn parse_last(stored: Option<&[u8]>) -> Option<i64> {
    std::str::from_utf8(stored?).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_in_order_applies_without_flush() {
        assert_eq!(
            decide(Some(41), 42),
            SeqDecision {
                flush: false,
                new_last: 42
            }
        );
    }

    #[test]
    fn a_gap_flushes() {
        assert_eq!(
            decide(Some(41), 43),
            SeqDecision {
                flush: true,
                new_last: 43
            }
        );
        assert_eq!(
            decide(Some(i64::MAX), i64::MAX),
            SeqDecision {
                flush: false,
                new_last: i64::MAX
            }
        );
    }

    #[test]
    fn duplicates_and_old_messages_never_move_last_backwards() {
        assert_eq!(
            decide(Some(42), 42),
            SeqDecision {
                flush: false,
                new_last: 42
            }
        );
        assert_eq!(
            decide(Some(42), 7),
            SeqDecision {
                flush: false,
                new_last: 42
            }
        );
    }

    #[test]
    fn the_first_message_flushes() {
        assert_eq!(
            decide(None, 5),
            SeqDecision {
                flush: true,
                new_last: 5
            }
        );
        assert_eq!(parse_last(Some(b"17")), Some(17));
        assert_eq!(parse_last(Some(b"x")), None);
        assert_eq!(parse_last(None), None);
    }
}
