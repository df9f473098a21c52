//! The KV store, forgiving: an entry that fails to read or parse is a miss (and is
//! deleted), a failed write is logged and skipped. The cache is an optimisation; the ledger
//! is the truth.

use serde::de::DeserializeOwned;
use serde::Serialize;
use spin_sdk::http::Response;
use spin_sdk::key_value::Store;

use super::respond;

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

/// A JSON entry, or `None` if absent, unreadable or corrupt (corrupt entries are deleted).
pub fn get_json<T: DeserializeOwned>(store: &Store, key: &str) -> Option<T> {
    let bytes = get_raw(store, key)?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            eprintln!("tessera edge: dropping corrupt KV entry {key}: {e}");
            delete(store, key);
            None
        }
    }
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

pub fn set_json<T: Serialize>(store: &Store, key: &str, value: &T) -> bool {
    match serde_json::to_vec(value) {
        Ok(bytes) => set_raw(store, key, &bytes),
        Err(e) => {
            eprintln!("tessera edge: cannot serialise KV entry {key}: {e}");
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
