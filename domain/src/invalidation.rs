//! The messages the ledger's outbox relay publishes on [`INVALIDATION_CHANNEL`] and the
//! edge applies. Delivery is at-least-once and `seq` is gap-free per relay, so a receiver
//! can detect a missed message; applying one twice is harmless because availability
//! carries absolute counts with a per-zone `version`, and catalog messages only evict.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, ShowId, ZoneId};

/// The Redis pub/sub channel (DESIGN.md, "Invalidation contract").
pub const INVALIDATION_CHANNEL: &str = "tessera.invalidate";

/// One published message: a [`Change`] numbered `seq` by the relay, flattened into one JSON
/// object (`{"seq": 1042, "kind": "availability", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    pub seq: i64,
    #[serde(flatten)]
    pub change: Change,
}

/// What changed: the payload an outbox row carries before the relay gives it a `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// New counters of one zone; apply only if `version` is newer than the cached one.
    Availability {
        show_id: ShowId,
        zone_id: ZoneId,
        available: i32,
        held: i32,
        sold: i32,
        version: i64,
    },
    /// The event's catalog documents changed; evict them.
    Catalog { event_id: EventId },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_documented_format() {
        let zone = ZoneId(uuid::Uuid::nil());
        let show = ShowId(uuid::Uuid::nil());
        let change = Change::Availability {
            show_id: show,
            zone_id: zone,
            available: 17,
            held: 3,
            sold: 80,
            version: 311,
        };
        let json = serde_json::to_value(Invalidation { seq: 1042, change }).expect("ser");
        let expected = serde_json::json!({
            "seq": 1042, "kind": "availability", "show_id": show.to_string(), "zone_id": zone.to_string(),
            "available": 17, "held": 3, "sold": 80, "version": 311
        });
        assert_eq!(json, expected);
        let catalog = Invalidation {
            seq: 1043,
            change: Change::Catalog {
                event_id: EventId(uuid::Uuid::nil()),
            },
        };
        let json = serde_json::to_value(&catalog).expect("ser");
        assert_eq!(
            json,
            serde_json::json!({"seq": 1043, "kind": "catalog", "event_id": uuid::Uuid::nil().to_string()})
        );
        let back: Invalidation = serde_json::from_value(json).expect("de");
        assert_eq!(back, catalog);
    }
}
