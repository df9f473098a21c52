//! The KV store, forgiving: an entry that fails to read or decode is a miss (and is
//! deleted), a failed write is logged and skipped. The cache is an optimisation; the ledger
//! is the truth.

use spin_sdk::http::Response;
use spin_sdk::key_value::Store;

use super::respond;
use crate::entry::Entry;
use crate::stored::{Kind, Stored};

/// The store every component shares (label `default`).
pub fn open() -> Result<Store, Response> {
    Store::open("default").map_err(|e| respond::internal(&format!("cannot open KV store: {e}")))
}

pub fn get_raw(store: &Store, key: &str) -> Option<Vec<u8>> {
    match store.get(key) {
        Ok(value) => value,
        Err(e) => {
            eprintln!("tessera edge: KV get {key}: {e}");
            None
        }
    }
}

/// An entry of `kind` as stored, checked but not decoded (what a hit serves), or `None` if
/// absent, unreadable or corrupt (corrupt entries are deleted).
pub fn get_stored(store: &Store, key: &str, kind: Kind) -> Option<Stored> {
    let bytes = get_raw(store, key)?;
    Stored::parse(bytes, kind)
        .map_err(|e| drop_corrupt(store, key, &e))
        .ok()
}

/// A whole entry, decoded (for writers), or `None` as for [`get_stored`].
pub fn get_entry<T: Entry>(store: &Store, key: &str) -> Option<T> {
    let bytes = get_raw(store, key)?;
    T::decode(bytes)
        .map_err(|e| drop_corrupt(store, key, &e))
        .ok()
}

fn drop_corrupt(store: &Store, key: &str, error: &dyn std::fmt::Display) {
    eprintln!("tessera edge: dropping KV entry {key}: {error}");
    delete(store, key);
}

pub fn set_raw(store: &Store, key: &str, value: &[u8]) -> bool {
    match store.set(key, value) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("tessera edge: KV set {key}: {e}");
            false
        }
    }
}

/// Writes `value` in its stored form; `false` (logged) if it could not be.
pub fn set_entry<T: Entry>(store: &Store, key: &str, value: &T) -> bool {
    match value.encode() {
        Ok(bytes) => set_raw(store, key, &bytes),
        Err(e) => {
            eprintln!("tessera edge: cannot store KV entry {key}: {e}");
            false
        }
    }
}

pub fn delete(store: &Store, key: &str) -> bool {
    match store.delete(key) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("tessera edge: KV delete {key}: {e}");
            false
        }
    }
}
