//! The KV store, forgiving: an entry that fails to read or decode is a miss (and is
//! deleted), a failed write is logged and skipped. The cache is an optimisation; the ledger
//! is the truth. Read-modify-writes of live entries go through [`update_entry`], a
//! compare-and-swap on the same store through `wasi:keyvalue` ([`crate::cas`]).

use spin_sdk::http::Response;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{atomics, store};

use super::respond;
use crate::cas::{self, Begun, CasStore, Swapped, UpdateError, Updated};
use crate::entry::Entry;
use crate::stored::{Kind, Stored};

/// The label of the store every component shares.
pub const STORE: &str = "default";

/// The store every component shares ([`STORE`]).
pub fn open() -> Result<Store, Response> {
    Store::open(STORE).map_err(|e| respond::internal(&format!("cannot open KV store: {e}")))
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

pub fn delete(store: &Store, key: &str) -> bool {
    match store.delete(key) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("tessera edge: KV delete {key}: {e}");
            false
        }
    }
}

/// The same store through `wasi:keyvalue`, for what `fermyon:spin/key-value` lacks: its
/// compare-and-swap ([`update_entry`]).
pub struct Bucket(store::Bucket);

impl Bucket {
    pub fn open() -> Result<Self, store::Error> {
        store::open(STORE).map(Self)
    }
}

impl CasStore for Bucket {
    type Error = store::Error;
    type Handle = atomics::Cas;

    fn begin(&self, key: &str) -> Result<Begun<atomics::Cas>, store::Error> {
        let handle = atomics::Cas::new(&self.0, key)?;
        let current = handle.current()?;
        Ok(Begun { handle, current })
    }

    fn swap(&self, handle: atomics::Cas, value: &[u8]) -> Result<Swapped, store::Error> {
        match atomics::swap(handle, value) {
            Ok(()) => Ok(Swapped::Written),
            Err(atomics::CasError::CasFailed(_)) => Ok(Swapped::Changed),
            Err(atomics::CasError::StoreError(e)) => Err(e),
        }
    }
}

/// Why an entry could not be updated.
pub type UpdateFailure = UpdateError<store::Error>;

/// `key`'s entry changed by `change` and written over exactly the entry it was given,
/// retried when another writer came between ([`cas::update_entry`]).
///
/// Under `spin up` (Spin's SQLite store) writing over an *absent* key is not conditional:
/// Spin's swap of a key read as absent is an upsert. Writers that must not bring back an
/// evicted entry check their epochs again after writing ([`crate::spin::reads`]).
pub fn update_entry<T: Entry>(
    key: &str,
    change: impl FnMut(Option<T>) -> Option<T>,
) -> Result<Updated<T>, UpdateFailure> {
    let bucket = Bucket::open().map_err(UpdateError::Store)?;
    cas::update_entry(&bucket, key, change)
}
