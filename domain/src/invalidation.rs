//! The messages the ledger's outbox relay publishes on [`INVALIDATION_CHANNEL`] and the
//! edge applies. Delivery is at-least-once and `seq` is gap-free per relay, so a receiver
//! can detect a missed message; applying one twice is harmless because availability
//! carries absolute counts with a per-zone `version`, and catalog messages only evict.
//!
//! Between changes the relay publishes a [`Heartbeat`] (DESIGN.md, "Freshness lease"): it
//! carries the last published `seq` and no change, so a receiver knows the stream is alive
//! and, if the number is above what it applied, that it missed a message.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, ShowId, TicketId, ZoneId};
use crate::seats::SeatStatus;

/// Seat changes one `seats` message lists; past it the message says `changes: null` and a
/// receiver refetches the zone's seats.
pub const SEAT_CHANGES_PER_MESSAGE_MAX: usize = 1_000;

/// Ticket ids one `revocation` message lists; past it the message says `ticket_ids: null`
/// and a receiver refetches the event's check-in keys (with its revoked set).
pub const REVOCATIONS_PER_MESSAGE_MAX: usize = 1_000;

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
    Availability(ZoneCounters),
    /// An assigned zone's seats changed: its new counters (as `availability`, the same
    /// fields at the same level) and the seats that changed, `[index, state]` each, or
    /// `null` when they were more than [`SEAT_CHANGES_PER_MESSAGE_MAX`] (refetch the
    /// zone's seats).
    Seats {
        #[serde(flatten)]
        counters: ZoneCounters,
        changes: Option<Vec<(i32, SeatStatus)>>,
    },
    /// The event's catalog documents changed; evict them.
    Catalog { event_id: EventId },
    /// Tickets of the event were voided: their codes are refused at the door. `version` is
    /// the event's count of voided tickets after this change (it only grows), so a receiver
    /// holding the set at `version - ticket_ids.len()` adds them, one already at `version`
    /// has them, and any other refetches; `ticket_ids: null` (more than
    /// [`REVOCATIONS_PER_MESSAGE_MAX`], or the whole event cancelled) means refetch.
    Revocation {
        event_id: EventId,
        version: i64,
        ticket_ids: Option<Vec<TicketId>>,
    },
    /// The event's queue let people in up to position `serving`; apply only if `version`
    /// is newer than the cached one (settings changes come as `catalog` messages).
    Queue {
        event_id: EventId,
        serving: i64,
        version: i64,
    },
}

/// A zone's counters as a change announces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneCounters {
    pub show_id: ShowId,
    pub zone_id: ZoneId,
    pub available: i32,
    pub held: i32,
    pub sold: i32,
    pub version: i64,
}

impl Change {
    /// The zone counters an `availability` or `seats` message carries.
    pub fn zone_counters(&self) -> Option<ZoneCounters> {
        match *self {
            Self::Availability(counters) | Self::Seats { counters, .. } => Some(counters),
            Self::Catalog { .. } | Self::Revocation { .. } | Self::Queue { .. } => None,
        }
    }

    /// `counters` as an `availability` message.
    pub fn availability(counters: ZoneCounters) -> Self {
        Self::Availability(counters)
    }

    /// `counters` and the seats now in `state`, as a `seats` message (their list bounded).
    pub fn seats(counters: ZoneCounters, seats: &[i32], state: SeatStatus) -> Self {
        let changes = (seats.len() <= SEAT_CHANGES_PER_MESSAGE_MAX)
            .then(|| seats.iter().map(|&index| (index, state)).collect());
        Self::Seats { counters, changes }
    }
}

impl Change {
    /// `ticket_ids` of `event_id` voided, the event's revocation count now `version`
    /// (the list bounded; `None` asks receivers to refetch).
    pub fn revocation(event_id: EventId, version: i64, ticket_ids: Option<&[TicketId]>) -> Self {
        let ticket_ids = ticket_ids
            .filter(|ids| ids.len() <= REVOCATIONS_PER_MESSAGE_MAX)
            .map(<[TicketId]>::to_vec);
        Self::Revocation {
            event_id,
            version,
            ticket_ids,
        }
    }
}

/// The relay's "still here": `{"kind": "heartbeat", "seq": <last published seq>}`. It takes
/// no new number; a receiver that applied less than `seq` missed a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "heartbeat")]
pub struct Heartbeat {
    pub seq: i64,
}

/// One message as a receiver reads it: `seq` first, so a message of a kind (or shape) this
/// version does not know still counts in the sequence and a newer ledger does not make
/// every receiver see gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Change(Invalidation),
    Heartbeat(Heartbeat),
    /// Numbered, but not a message this version can apply; `reason` says why (for logs).
    Unknown {
        seq: i64,
        reason: String,
    },
}

impl Received {
    /// Parses a message. `Err` only when even `seq` cannot be read, or when the message is
    /// not a JSON object (serde reads a struct from an array too: `[7, "heartbeat"]` would
    /// pass for a heartbeat; the fuzzer found it).
    pub fn parse(message: &[u8]) -> Result<Self, serde_json::Error> {
        if message.trim_ascii_start().first() != Some(&b'{') {
            return Err(serde::de::Error::custom(
                "an invalidation message is a JSON object",
            ));
        }
        #[derive(Deserialize)]
        struct Envelope {
            seq: i64,
            kind: Option<String>,
        }
        let Envelope { seq, kind } = serde_json::from_slice(message)?;
        if kind.as_deref() == Some("heartbeat") {
            return Ok(Self::Heartbeat(Heartbeat { seq }));
        }
        Ok(match serde_json::from_slice::<Invalidation>(message) {
            Ok(invalidation) => Self::Change(invalidation),
            Err(e) => Self::Unknown {
                seq,
                reason: e.to_string(),
            },
        })
    }

    pub fn seq(&self) -> i64 {
        match self {
            Self::Change(invalidation) => invalidation.seq,
            Self::Heartbeat(heartbeat) => heartbeat.seq,
            Self::Unknown { seq, .. } => *seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_documented_format() {
        let zone = ZoneId(uuid::Uuid::nil());
        let show = ShowId(uuid::Uuid::nil());
        let change = Change::Availability(ZoneCounters {
            show_id: show,
            zone_id: zone,
            available: 17,
            held: 3,
            sold: 80,
            version: 311,
        });
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

    #[test]
    fn seat_messages_match_the_documented_format_and_are_bounded() {
        let counters = ZoneCounters {
            show_id: ShowId(uuid::Uuid::nil()),
            zone_id: ZoneId(uuid::Uuid::nil()),
            available: 10,
            held: 2,
            sold: 0,
            version: 7,
        };
        let change = Change::seats(counters, &[4, 5], SeatStatus::Held);
        let json = serde_json::to_value(Invalidation {
            seq: 3,
            change: change.clone(),
        })
        .expect("ser");
        let nil = uuid::Uuid::nil().to_string();
        assert_eq!(
            json,
            serde_json::json!({"seq": 3, "kind": "seats", "show_id": nil, "zone_id": nil,
                               "available": 10, "held": 2, "sold": 0, "version": 7,
                               "changes": [[4, "held"], [5, "held"]]})
        );
        assert_eq!(change.zone_counters(), Some(counters));
        let many: Vec<i32> = (0..=SEAT_CHANGES_PER_MESSAGE_MAX as i32).collect();
        let json =
            serde_json::to_value(Change::seats(counters, &many, SeatStatus::Sold)).expect("ser");
        assert_eq!(json["changes"], serde_json::Value::Null);
        let parsed = Received::parse(
            &serde_json::to_vec(&Invalidation {
                seq: 4,
                change: Change::seats(counters, &[1], SeatStatus::Available),
            })
            .expect("ser"),
        );
        assert!(matches!(parsed, Ok(Received::Change(_))), "{parsed:?}");
    }

    #[test]
    fn revocation_messages_match_the_documented_format_and_are_bounded() {
        let nil = uuid::Uuid::nil();
        let ids = [TicketId(nil)];
        let change = Change::revocation(EventId(nil), 12, Some(&ids));
        let json = serde_json::to_value(Invalidation { seq: 9, change }).expect("ser");
        assert_eq!(
            json,
            serde_json::json!({"seq": 9, "kind": "revocation", "event_id": nil.to_string(),
                               "version": 12, "ticket_ids": [nil.to_string()]})
        );
        let many = vec![TicketId(nil); REVOCATIONS_PER_MESSAGE_MAX + 1];
        let json = serde_json::to_value(Change::revocation(EventId(nil), 2_000, Some(&many)))
            .expect("ser");
        assert_eq!(json["ticket_ids"], serde_json::Value::Null);
        let parsed = Received::parse(
            br#"{"seq": 3, "kind": "revocation", "event_id": "00000000-0000-0000-0000-000000000000", "version": 1, "ticket_ids": null}"#,
        );
        assert!(
            matches!(
                parsed,
                Ok(Received::Change(Invalidation {
                    change: Change::Revocation {
                        ticket_ids: None,
                        ..
                    },
                    ..
                }))
            ),
            "{parsed:?}"
        );
    }

    #[test]
    fn only_objects_are_messages() {
        assert!(Received::parse(br#"[7, "heartbeat"]"#).is_err());
        assert!(Received::parse(b" [7]").is_err());
        assert!(Received::parse(b"7").is_err());
        assert_eq!(
            Received::parse(br#" {"seq": 7, "kind": "heartbeat"}"#)
                .map(|r| r.seq())
                .ok(),
            Some(7)
        );
    }

    #[test]
    fn heartbeats_match_the_documented_format_and_parse_apart() {
        let json = serde_json::to_value(Heartbeat { seq: 1043 }).expect("ser");
        assert_eq!(json, serde_json::json!({"kind": "heartbeat", "seq": 1043}));
        let received = Received::parse(br#"{"kind": "heartbeat", "seq": 1043}"#).expect("parses");
        assert_eq!(received, Received::Heartbeat(Heartbeat { seq: 1043 }));
        assert_eq!(received.seq(), 1043);
        let catalog = format!(
            r#"{{"seq": 7, "kind": "catalog", "event_id": "{}"}}"#,
            uuid::Uuid::nil()
        );
        assert!(matches!(
            Received::parse(catalog.as_bytes()),
            Ok(Received::Change(Invalidation { seq: 7, .. }))
        ));
        // A kind from a newer ledger still counts in the sequence.
        let unknown = Received::parse(br#"{"seq": 8, "kind": "seats"}"#).expect("numbered");
        assert!(
            matches!(unknown, Received::Unknown { seq: 8, .. }),
            "{unknown:?}"
        );
        let unknown = Received::parse(br#"{"seq": 9}"#).expect("numbered, without a kind");
        assert!(
            matches!(unknown, Received::Unknown { seq: 9, .. }),
            "{unknown:?}"
        );
        assert!(
            Received::parse(br#"{"kind": "heartbeat"}"#).is_err(),
            "no seq"
        );
        assert!(Received::parse(b"\x00").is_err());
    }
}
