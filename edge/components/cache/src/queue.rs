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
}
