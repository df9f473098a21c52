//! The per-event index of cached shows (`event_shows/{event_id}`): which `avail/{show_id}`
//! entries a catalog message for the event must evict, found without scanning the store.
//!
//! Written by the read path before it stores an availability entry (the entry knows its
//! event), read and deleted by the invalidator. Adding a show is a read-modify-write over
//! exactly the index read ([`crate::cas`]), so two writers adding different shows cannot
//! drop each other's; the writer checks the index again after storing its entry, and
//! deletes its entry if its show is missing (an eviction deleted the index meanwhile; see
//! `spin::reads`). Under `spin up`, Spin's store writes over an *absent* key
//! unconditionally, so two first writers of an event's index can still collide; the check
//! after storing lists the lost show again.

use crate::entry::Entry;
use crate::stored::{Corrupt, Unstorable};
use tessera_domain::ShowId;

/// Shows one index may list: above the ledger's own limit of 200 shows per event, so a
/// real event always fits; a show that does not fit is served but not cached.
pub const SHOWS_PER_EVENT_MAX: usize = 256;

/// The shows listed for one event, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShowIndex {
    shows: Vec<ShowId>,
}

/// What adding a show to an index means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// Already listed: nothing to write.
    Present,
    /// Write this index.
    Added(ShowIndex),
    /// The index holds [`SHOWS_PER_EVENT_MAX`] shows already: do not cache the show.
    Full,
}

/// The stored bytes could not be read as an index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt show index: {0}")]
pub struct CorruptIndex(String);

/// Stored through [`crate::cas`] like the entries it lists; an unreadable index decodes as
/// corrupt, and its writer starts it afresh (the shows it listed stay findable through the
/// event detail, or expire with the availability TTL).
impl Entry for ShowIndex {
    fn encode(&self) -> Result<Vec<u8>, Unstorable> {
        Ok(ShowIndex::encode(self))
    }

    fn decode(bytes: Vec<u8>) -> Result<Self, Corrupt> {
        ShowIndex::decode(Some(&bytes)).map_err(|_| Corrupt("an unreadable show index"))
    }
}

impl ShowIndex {
    /// The stored form: the show ids, one per line (a 37-byte line each, so a full index
    /// stays under 10 KB). Absent reads as empty.
    pub fn decode(stored: Option<&[u8]>) -> Result<ShowIndex, CorruptIndex> {
        let Some(bytes) = stored else {
            return Ok(ShowIndex::default());
        };
        let text = std::str::from_utf8(bytes).map_err(|e| CorruptIndex(e.to_string()))?;
        let shows = text
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.parse().map_err(|_| CorruptIndex(format!("{line:?}"))))
            .collect::<Result<Vec<ShowId>, _>>()?;
        if shows.len() > SHOWS_PER_EVENT_MAX {
            return Err(CorruptIndex(format!("{} shows", shows.len())));
        }
        Ok(ShowIndex { shows })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.shows.len() * 37);
        for show in &self.shows {
            out.push_str(&show.to_string());
            out.push('\n');
        }
        out.into_bytes()
    }

    pub fn contains(&self, show_id: ShowId) -> bool {
        self.shows.contains(&show_id)
    }

    pub fn shows(&self) -> &[ShowId] {
        &self.shows
    }

    /// This index with `show_id` added, if it needs writing and fits.
    pub fn insert(&self, show_id: ShowId) -> Insert {
        if self.contains(show_id) {
            Insert::Present
        } else if self.shows.len() >= SHOWS_PER_EVENT_MAX {
            Insert::Full
        } else {
            let mut shows = self.shows.clone();
            shows.push(show_id);
            Insert::Added(ShowIndex { shows })
        }
    }

    /// The shows a catalog message evicts: this index's, plus those of the event's cached
    /// detail (which covers an index write lost to a concurrent writer), each once.
    pub fn union(&self, more: impl IntoIterator<Item = ShowId>) -> Vec<ShowId> {
        let mut shows = self.shows.clone();
        for show in more {
            if !shows.contains(&show) {
                shows.push(show);
            }
        }
        shows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(n: u128) -> ShowId {
        format!("00000000-0000-0000-0000-{n:012x}")
            .parse()
            .expect("valid id")
    }

    #[test]
    fn shows_are_added_once_and_round_trip() {
        let empty = ShowIndex::decode(None).expect("absent is empty");
        assert_eq!(empty.shows(), &[] as &[ShowId]);
        let Insert::Added(one) = empty.insert(show(1)) else {
            panic!("a new show is added");
        };
        assert_eq!(one.insert(show(1)), Insert::Present);
        let Insert::Added(two) = one.insert(show(2)) else {
            panic!("a second show is added");
        };
        let back = ShowIndex::decode(Some(&two.encode())).expect("round trip");
        assert_eq!(back, two);
        assert!(back.contains(show(1)) && back.contains(show(2)));
        assert!(!back.contains(show(3)));
    }

    #[test]
    fn an_index_is_bounded() {
        let mut index = ShowIndex::default();
        for n in 0..SHOWS_PER_EVENT_MAX as u128 {
            match index.insert(show(n)) {
                Insert::Added(next) => index = next,
                other => panic!("show {n}: {other:?}"),
            }
        }
        assert_eq!(index.insert(show(100_000)), Insert::Full);
        assert_eq!(
            index.insert(show(7)),
            Insert::Present,
            "listed shows still are"
        );
        let full = index.encode();
        assert!(full.len() < 10_000, "{} bytes", full.len());
        assert!(ShowIndex::decode(Some(&full)).is_ok());
        let over = [full, format!("{}\n", show(100_000)).into_bytes()].concat();
        assert!(
            ShowIndex::decode(Some(&over)).is_err(),
            "a longer one is corrupt"
        );
    }

    #[test]
    fn corrupt_indexes_are_errors_not_empty() {
        assert!(ShowIndex::decode(Some(b"not-a-uuid\n")).is_err());
        assert!(ShowIndex::decode(Some(&[0xff, 0xfe])).is_err());
    }

    #[test]
    fn eviction_covers_the_index_and_the_detail_once_each() {
        let Insert::Added(index) = ShowIndex::default().insert(show(1)) else {
            panic!("added");
        };
        assert_eq!(
            index.union([show(2), show(1)]),
            vec![show(1), show(2)],
            "a show the index lost is still evicted through the detail"
        );
    }
}
