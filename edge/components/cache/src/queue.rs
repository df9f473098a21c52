//! An event's queue as the node caches it (`queue/{event_id}`): the ledger's
//! [`QueueState`] with a safety-net expiry. `queue` messages move `serving` on in place by
//! version; `catalog` messages for the event (its settings changed) evict it. A poll is
//! answered from it with the shared rule ([`QueueState::status`]), so every node and the
//! ledger tell a person in line the same thing.

use serde::{Deserialize, Serialize};
use tessera_domain::queue::QueueState;

use crate::entry::Entry;
use crate::stored::{Corrupt, Unstorable};

/// The cached queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub state: QueueState,
    /// Wall-clock ms after which the entry is fetched again (a safety net: messages keep
    /// `serving` current).
    pub expires_at_ms: i64,
}

impl QueueEntry {
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Applies a `queue` message; `false` when it is not newer than what is cached (a
    /// replay, or one the fetched state already includes).
    pub fn advance(&mut self, serving: i64, version: i64) -> bool {
        if version <= self.state.version {
            return false;
        }
        self.state.serving = serving;
        self.state.version = version;
        true
    }

    /// A fetched entry about to be stored over `stored`: a `queue` message applied while
    /// the fetch was on its way is newer than the ledger's answer, so its `serving` is
    /// kept (versions only grow) and `serving` never steps back at this node.
    pub fn over(mut self, stored: Option<&QueueEntry>) -> Self {
        if let Some(stored) = stored {
            self.advance(stored.state.serving, stored.state.version);
        }
        self
    }
}

impl Entry for QueueEntry {
    fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        serde_json::to_vec(self).map_err(|_| Unstorable("the queue entry did not serialise"))
    }

    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        serde_json::from_slice(&bytes).map_err(|_| Corrupt("the queue entry is not its JSON"))
    }
}

#[cfg(test)]
mod tests {
    use tessera_domain::EventId;

    use super::*;

    fn entry(serving: i64, version: i64) -> QueueEntry {
        QueueEntry {
            state: QueueState {
                event_id: EventId(uuid::Uuid::from_u128(1)),
                enabled: true,
                admit_per_minute: 60,
                session_minutes: 10,
                opens_at: None,
                joined: 100,
                serving,
                version,
            },
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn messages_move_serving_on_only_when_newer() {
        let mut cached = entry(10, 5);
        assert!(!cached.advance(4, 5), "a replay");
        assert!(!cached.advance(3, 4), "older");
        assert_eq!(cached.state.serving, 10);
        assert!(cached.advance(12, 7));
        assert_eq!((cached.state.serving, cached.state.version), (12, 7));
        let round_trip = QueueEntry::decode(cached.encode().unwrap()).unwrap();
        assert_eq!(round_trip, cached);
        assert!(QueueEntry::decode(b"{".to_vec()).is_err());
        assert!(cached.is_fresh(999) && !cached.is_fresh(1_000));
    }

    #[test]
    fn a_fetch_stored_over_a_newer_message_keeps_the_messages_serving() {
        let mut fetched = entry(10, 5);
        fetched.state.admit_per_minute = 120;
        let newer = entry(14, 7);
        let kept = fetched.over(Some(&newer));
        assert_eq!((kept.state.serving, kept.state.version), (14, 7));
        assert_eq!(
            kept.state.admit_per_minute, 120,
            "the fetch's settings stay"
        );
        let older = entry(8, 4);
        assert_eq!(fetched.over(Some(&older)), fetched);
        assert_eq!(fetched.over(None), fetched);
    }
}
