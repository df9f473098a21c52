//! Read-modify-writes of one entry that a concurrent writer cannot undo.
//!
//! Live entries have several writers on one node: a fetch merges what the ledger answered
//! into the entry, the invalidator applies a message, a hold notes a sell-out, a fetch
//! lists a show in its event's index. Each reads the entry, changes it and writes it back.
//! With a plain get and set, a writer that read before another's write puts its older copy
//! over the newer one — in a sell-out no later message corrects that, and the node shows
//! tickets that are gone until the entry's TTL. So every such write is a compare-and-swap
//! (`wasi:keyvalue/atomics`): it lands only if the entry is still what the writer read;
//! otherwise the writer reads again and redoes its change. The changes are merges by
//! version (a message, a fetch) or set insertions, so redoing one over a newer entry is
//! safe: it keeps what is newer.
//!
//! The loop is here, over [`CasStore`], so it is tested natively against a store that
//! interleaves other writers; the Spin half (`spin::kv`) implements [`CasStore`] on a
//! `wasi:keyvalue` bucket.

use crate::entry::Entry;
use crate::stored::Unstorable;

/// Attempts of one read-modify-write before giving up. Each failed attempt means another
/// writer of the same key wrote between this one's read and write; on one node that is a
/// message and a fetch or two at once, so a handful is already unusual.
pub const ATTEMPTS_MAX: u32 = 8;

/// A store with compare-and-swap on one key.
pub trait CasStore {
    type Error;
    type Handle;
    /// Starts a compare-and-swap of `key`.
    fn begin(&self, key: &str) -> Result<Begun<Self::Handle>, Self::Error>;
    /// Writes `value` if the key still holds what [`CasStore::begin`] read.
    fn swap(&self, handle: Self::Handle, value: &[u8]) -> Result<Swapped, Self::Error>;
}

/// A compare-and-swap begun: its handle and the value it will compare with.
pub struct Begun<H> {
    pub handle: H,
    /// `None`: absent.
    pub current: Option<Vec<u8>>,
}

/// What a compare-and-swap did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swapped {
    Written,
    /// Another writer changed the key since it was read; nothing was written.
    Changed,
}

/// How a read-modify-write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated<T> {
    /// Written over exactly what the change was given: the entry and its stored bytes.
    Written(T, Vec<u8>),
    /// The change wanted nothing written.
    Kept,
    /// Other writers changed the key between every read and write ([`ATTEMPTS_MAX`]).
    Contended,
}

/// Why a read-modify-write failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error("key-value store: {0}")]
    Store(E),
    #[error(transparent)]
    Unstorable(#[from] Unstorable),
}

/// Reads `key`'s entry, gives it to `change` (`None`: absent, or unreadable — a corrupt
/// entry is overwritten) and writes back what `change` returns (`None`: write nothing),
/// only over the entry it read; if another writer came between, reads again and calls
/// `change` again, at most [`ATTEMPTS_MAX`] times.
pub fn update_entry<S: CasStore, T: Entry>(
    store: &S,
    key: &str,
    mut change: impl FnMut(Option<T>) -> Option<T>,
) -> Result<Updated<T>, UpdateError<S::Error>> {
    for _ in 0..ATTEMPTS_MAX {
        let Begun { handle, current } = store.begin(key).map_err(UpdateError::Store)?;
        let Some(changed) = change(current.and_then(|bytes| T::decode(bytes).ok())) else {
            return Ok(Updated::Kept);
        };
        let bytes = changed.encode()?;
        match store.swap(handle, &bytes).map_err(UpdateError::Store)? {
            Swapped::Written => return Ok(Updated::Written(changed, bytes)),
            Swapped::Changed => continue,
        }
    }
    Ok(Updated::Contended)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use tessera_domain::catalog::{Availability, ZoneAvailability};
    use tessera_domain::{EventId, ShowId, ZoneId};

    use super::*;
    use crate::entry::AvailEntry;

    /// An in-memory store whose `interleave` writes land between a writer's read and its
    /// swap, one per swap, as another component's would.
    #[derive(Default)]
    struct Interleaving {
        values: RefCell<HashMap<String, Vec<u8>>>,
        interleave: RefCell<Vec<Vec<u8>>>,
        swaps: RefCell<u32>,
    }

    impl Interleaving {
        /// [`KEY`] holding `stored`; `others` land one per swap, in order.
        fn new(stored: Option<&AvailEntry>, others: &[AvailEntry]) -> Self {
            let store = Self::default();
            if let Some(entry) = stored {
                let bytes = entry.encode().unwrap();
                store.values.borrow_mut().insert(KEY.into(), bytes);
            }
            let mut interleave = store.interleave.borrow_mut();
            interleave.extend(others.iter().rev().map(|e| e.encode().unwrap()));
            drop(interleave);
            store
        }
    }

    struct Handle {
        key: String,
        seen: Option<Vec<u8>>,
    }

    impl CasStore for Interleaving {
        type Error = std::convert::Infallible;
        type Handle = Handle;

        fn begin(&self, key: &str) -> Result<Begun<Handle>, Self::Error> {
            let seen = self.values.borrow().get(key).cloned();
            let handle = Handle {
                key: key.to_owned(),
                seen: seen.clone(),
            };
            Ok(Begun {
                handle,
                current: seen,
            })
        }

        fn swap(&self, handle: Handle, value: &[u8]) -> Result<Swapped, Self::Error> {
            *self.swaps.borrow_mut() += 1;
            let mut values = self.values.borrow_mut();
            if let Some(other) = self.interleave.borrow_mut().pop() {
                values.insert(handle.key.clone(), other);
            }
            if values.get(&handle.key) != handle.seen.as_ref() {
                return Ok(Swapped::Changed);
            }
            values.insert(handle.key, value.to_vec());
            Ok(Swapped::Written)
        }
    }

    const KEY: &str = "avail/show";

    fn zone(available: i32, version: i64) -> ZoneAvailability {
        ZoneAvailability {
            zone_id: ZoneId(uuid::Uuid::from_u128(7)),
            available,
            held: 0,
            sold: 100 - available,
            capacity: 100,
            version,
        }
    }

    fn entry(available: i32, version: i64) -> AvailEntry {
        let fresh = Availability {
            event_id: EventId(uuid::Uuid::from_u128(1)),
            show_id: ShowId(uuid::Uuid::from_u128(2)),
            zones: vec![zone(available, version)],
        };
        AvailEntry::merge_fetch(None, fresh, 0, 60_000)
    }

    fn stored(store: &Interleaving) -> AvailEntry {
        let bytes = store.values.borrow()[KEY].clone();
        AvailEntry::decode(bytes).unwrap()
    }

    fn version_of(entry: &AvailEntry) -> i64 {
        entry.zones[0].zone.version
    }

    /// A fetch that read version 3 merges in the ledger's version 5 (sold out); a message
    /// writer stores version 4 between its read and its write. A plain set would leave
    /// version 4 (tickets shown after the sell-out); the update reads again and merges.
    #[test]
    fn a_write_between_the_read_and_the_swap_is_merged_not_overwritten() {
        let store = Interleaving::new(Some(&entry(30, 3)), &[entry(20, 4)]);
        let fresh = entry(0, 5);
        let mut seen = Vec::new();
        let updated = update_entry(&store, KEY, |cached: Option<AvailEntry>| {
            seen.push(cached.as_ref().map(version_of));
            let mut merged = cached.unwrap_or_else(|| fresh.clone());
            merged.apply_message(fresh.zones[0].zone.zone_id, 0, 0, 100, 5, 0);
            Some(merged)
        })
        .unwrap();
        assert!(matches!(updated, Updated::Written(ref e, _) if version_of(e) == 5));
        assert_eq!(seen, [Some(3), Some(4)], "read again after losing the swap");
        assert_eq!(version_of(&stored(&store)), 5);
        assert_eq!(stored(&store).zones[0].zone.available, 0);
    }

    /// An older message's writer that loses its swap to a newer fetch redoes its change
    /// over the newer entry, which keeps the newer version.
    #[test]
    fn an_older_change_redone_over_a_newer_entry_keeps_the_newer() {
        let store = Interleaving::new(Some(&entry(30, 3)), &[entry(0, 5)]);
        let updated = update_entry(&store, KEY, |cached: Option<AvailEntry>| {
            let mut entry = cached?;
            let zone_id = entry.zones[0].zone.zone_id;
            entry
                .apply_message(zone_id, 20, 0, 80, 4, 0)
                .then_some(entry)
        })
        .unwrap();
        assert_eq!(updated, Updated::Kept);
        assert_eq!(version_of(&stored(&store)), 5);
        assert_eq!(stored(&store).zones[0].zone.available, 0);
    }

    #[test]
    fn a_key_that_keeps_changing_gives_up_after_the_bound() {
        let others: Vec<_> = (0..=ATTEMPTS_MAX)
            .map(|v| entry(10, i64::from(v)))
            .collect();
        let store = Interleaving::new(None, &others);
        let updated = update_entry(&store, KEY, |_: Option<AvailEntry>| Some(entry(0, 99)));
        assert_eq!(updated.unwrap(), Updated::Contended);
        assert_eq!(*store.swaps.borrow(), ATTEMPTS_MAX);
    }

    #[test]
    fn an_absent_key_is_given_as_none_and_written() {
        let store = Interleaving::new(None, &[]);
        let updated = update_entry(&store, KEY, |cached: Option<AvailEntry>| {
            assert!(cached.is_none());
            Some(entry(5, 1))
        })
        .unwrap();
        assert!(matches!(updated, Updated::Written(..)));
        assert_eq!(version_of(&stored(&store)), 1);
    }
}
