//! The node's key-value store, in process: one per host process, so each host process is
//! one edge node with its own cache. Two interfaces see it, as in Spin: the store labelled
//! `default` of `fermyon:spin/key-value` (here) and the bucket `default` of
//! `wasi:keyvalue` (`crate::wasi_keyvalue`), both only for components that declare
//! `key_value_stores = ["default"]`. Every call a guest makes on it counts in the request's
//! host calls (`edge_host_calls_total{interface=...}`).
//!
//! Bounded, so a flood of distinct keys cannot exhaust the node's memory: at most
//! `entries_max` entries, and apart from them at most `entries_max` rate-limit counters
//! (`ratelimit/` keys, [`keys::is_rate_limit`]). The counters have their own budget so a
//! flood of distinct client addresses fills only theirs, never the cache's; their keys
//! name their window, so the ended ones are dropped by [`KvStore::sweep_stale_windows`]
//! (the host's upkeep) and, when their budget is full, before a new one is refused.
//! Counters are what `wasi:keyvalue/atomics` `increment` writes: the value as 8 bytes,
//! little-endian `i64`, as Spin's key-value stores write it, so `get` reads the same bytes
//! under both hosts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_edge_cache::keys;
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin2_0_0::key_value::{self, Error};
use crate::runtime::StoreState;

/// The label (Spin) and identifier (wasi:keyvalue) of the node's one store.
pub const STORE_LABEL: &str = "default";

/// Why the store refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("the store is full ({max} entries)")]
    Full { max: usize },
    #[error("the rate-limit counters are full ({max} of them in live windows)")]
    CountersFull { max: usize },
    #[error("the value at {key:?} is not a counter (8 bytes, little-endian i64)")]
    NotACounter { key: String },
    #[error("the counter at {key:?} would overflow")]
    Overflow { key: String },
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        Error::Other(e.to_string())
    }
}

/// The entries, in two budgets (see the module docs).
#[derive(Debug, Default)]
struct Maps {
    /// Cache entries and the components' bookkeeping.
    entries: HashMap<String, Vec<u8>>,
    /// Rate-limit counters (`ratelimit/` keys).
    windows: HashMap<String, Vec<u8>>,
}

impl Maps {
    fn map(&self, key: &str) -> &HashMap<String, Vec<u8>> {
        if keys::is_rate_limit(key) {
            &self.windows
        } else {
            &self.entries
        }
    }

    fn map_mut(&mut self, key: &str) -> &mut HashMap<String, Vec<u8>> {
        if keys::is_rate_limit(key) {
            &mut self.windows
        } else {
            &mut self.entries
        }
    }

    /// Drops the counters whose window ended by `now_s`; returns how many.
    fn sweep(&mut self, now_s: u64) -> usize {
        let before = self.windows.len();
        self.windows
            .retain(|key, _| !keys::rate_limit_is_stale(key, now_s));
        before - self.windows.len()
    }

    /// Whether `key` may be written: it exists, or its budget has room (for a counter,
    /// after dropping the ended windows).
    fn room_for(&mut self, key: &str, max: usize) -> Result<(), KvError> {
        if self.map(key).len() < max || self.map(key).contains_key(key) {
            return Ok(());
        }
        if !keys::is_rate_limit(key) {
            return Err(KvError::Full { max });
        }
        self.sweep(now_s());
        if self.windows.len() < max {
            Ok(())
        } else {
            Err(KvError::CountersFull { max })
        }
    }
}

/// Seconds since the Unix epoch: the components' clock (WASI's wall clock is the system's).
fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One node's store, shared by every component that declares `key_value_stores = ["default"]`.
#[derive(Debug, Clone)]
pub struct KvStore {
    maps: Arc<RwLock<Maps>>,
    entries_max: usize,
}

impl KvStore {
    /// A store of at most `entries_max` entries, and as many rate-limit counters.
    pub fn new(entries_max: usize) -> Self {
        Self {
            maps: Arc::default(),
            entries_max,
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.read().map(key).get(key).cloned()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.read().map(key).contains_key(key)
    }

    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        let mut maps = self.write();
        maps.room_for(&key, self.entries_max)?;
        maps.map_mut(&key).insert(key, value);
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        self.write().map_mut(key).remove(key);
    }

    /// Adds `delta` to the counter at `key` (absent: 0) under the store's lock, so
    /// concurrent increments never lose one; returns the new value. The value is stored
    /// as Spin stores it (8 bytes, little-endian `i64`); any other value is refused.
    pub fn increment(&self, key: String, delta: i64) -> Result<i64, KvError> {
        let mut maps = self.write();
        let current = match maps.map(&key).get(&key) {
            None => 0,
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(i64::from_le_bytes)
                .map_err(|_| KvError::NotACounter { key: key.clone() })?,
        };
        let value = current
            .checked_add(delta)
            .ok_or_else(|| KvError::Overflow { key: key.clone() })?;
        maps.room_for(&key, self.entries_max)?;
        maps.map_mut(&key).insert(key, value.to_le_bytes().to_vec());
        Ok(value)
    }

    /// Writes `value` at `key` if its current value (absent: `None`) is still `expected`;
    /// otherwise leaves it and returns the current value, for the caller's retry.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
    ) -> Result<Result<(), Option<Vec<u8>>>, KvError> {
        let mut maps = self.write();
        let current = maps.map(key).get(key);
        if current.map(Vec::as_slice) != expected {
            return Ok(Err(current.cloned()));
        }
        maps.room_for(key, self.entries_max)?;
        maps.map_mut(key).insert(key.to_owned(), value);
        Ok(Ok(()))
    }

    /// Every key, counters included.
    pub fn keys(&self) -> Vec<String> {
        let maps = self.read();
        maps.entries
            .keys()
            .chain(maps.windows.keys())
            .cloned()
            .collect()
    }

    /// Entries and counters.
    pub fn len(&self) -> usize {
        let maps = self.read();
        maps.entries.len() + maps.windows.len()
    }

    /// Rate-limit counters alone.
    pub fn counters(&self) -> usize {
        self.read().windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep only the entries `keep` accepts; returns how many were dropped.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) -> usize {
        let mut maps = self.write();
        let before = maps.entries.len() + maps.windows.len();
        maps.entries.retain(|key, _| keep(key));
        maps.windows.retain(|key, _| keep(key));
        before - (maps.entries.len() + maps.windows.len())
    }

    /// Drops the rate-limit counters whose window ended by `now_s` (Unix seconds); returns
    /// how many. The host's upkeep calls it; a full counter budget calls it too.
    pub fn sweep_stale_windows(&self, now_s: u64) -> usize {
        self.write().sweep(now_s)
    }

    /// After a possibly missed invalidation no cached entry can be trusted: drop them all
    /// (what is a cache entry is the components' rule, `keys::is_cache_entry`). The
    /// components' bookkeeping stays, above all the `forwarded/` holds, so a retry of a hold
    /// this node forwarded still reaches the ledger and gets its replayed answer, and so do
    /// the rate-limit counters (no ledger change concerns them). The catalog epoch goes
    /// too: a read that was fetching meanwhile finds it moved (an absent epoch counts as
    /// moved) and does not store what it read before the gap.
    /// Returns how many entries were dropped.
    pub fn drop_cache_entries(&self) -> usize {
        self.retain(|key| !keys::is_cache_entry(key) && key != keys::CATALOG_EPOCH)
    }

    // A poisoned lock only means a holder panicked mid-operation on a HashMap, which
    // leaves it consistent; keep serving rather than take the node down. A std `RwLock`,
    // not a Tokio one: nothing awaits while it is held.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The guest's handle to an opened store.
pub struct OpenStore(KvStore);

/// Why a component may not open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenRefusal {
    /// The node has no store by that name (only [`STORE_LABEL`]).
    NoSuchStore,
    /// The component did not declare it in `key_value_stores`.
    AccessDenied,
}

impl StoreState {
    /// The node's store if this component may open `label`: declared in the manifest or
    /// not at all, Spin's rule; both key-value interfaces ask here.
    pub(crate) fn open_store(&self, label: &str) -> Result<KvStore, OpenRefusal> {
        if label != STORE_LABEL {
            return Err(OpenRefusal::NoSuchStore);
        }
        self.env.kv.clone().ok_or(OpenRefusal::AccessDenied)
    }
}

impl key_value::Host for StoreState {}

impl key_value::HostStore for StoreState {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        self.host_calls.key_value += 1;
        match self.open_store(&label) {
            Ok(store) => Ok(Ok(self.table.push(OpenStore(store))?)),
            Err(OpenRefusal::NoSuchStore) => Ok(Err(Error::NoSuchStore)),
            Err(OpenRefusal::AccessDenied) => Ok(Err(Error::AccessDenied)),
        }
    }

    fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        self.host_calls.key_value += 1;
        let value = self.table.get(&store)?.0.get(&key);
        self.metrics_kv_get(value.is_some());
        Ok(Ok(value))
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.host_calls.key_value += 1;
        Ok(self
            .table
            .get(&store)?
            .0
            .set(key, value)
            .map_err(Error::from))
    }

    fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.host_calls.key_value += 1;
        self.table.get(&store)?.0.delete(&key);
        Ok(Ok(()))
    }

    fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.host_calls.key_value += 1;
        Ok(Ok(self.table.get(&store)?.0.exists(&key)))
    }

    fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.host_calls.key_value += 1;
        Ok(Ok(self.table.get(&store)?.0.keys()))
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.host_calls.key_value += 1;
        self.table.delete(store)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_store_refuses_new_keys_when_full_but_updates_existing() {
        let kv = KvStore::new(2);
        kv.set("a".into(), vec![1]).expect("room");
        kv.set("b".into(), vec![2]).expect("room");
        assert!(kv.set("c".into(), vec![3]).is_err());
        kv.set("a".into(), vec![9]).expect("update in place");
        assert_eq!(kv.get("a"), Some(vec![9]));
        kv.delete("b");
        kv.set("c".into(), vec![3]).expect("room again");
        assert_eq!(kv.retain(|_| false), 2);
        assert!(kv.is_empty());
    }

    #[test]
    fn dropping_cache_entries_keeps_forwarded_holds_and_bookkeeping() {
        let kv = KvStore::new(64);
        let forwarded = keys::forwarded("hold-key-1");
        let show = tessera_domain::ShowId(Default::default());
        let avail_epoch = keys::availability_epoch(show);
        let cached = [
            keys::availability(show),
            keys::event(tessera_domain::EventId(Default::default())),
            keys::CATEGORIES.to_owned(),
            keys::fill_lease(keys::CATEGORIES),
        ];
        let kept = [forwarded.clone(), keys::LAST_SEQ.to_owned(), avail_epoch];
        for key in cached.iter().chain(&kept) {
            kv.set(key.clone(), b"x".to_vec()).expect("room");
        }
        kv.set(keys::CATALOG_EPOCH.to_owned(), b"7".to_vec())
            .expect("room");

        assert_eq!(kv.drop_cache_entries(), cached.len() + 1);
        let mut left = kv.keys();
        left.sort();
        let mut expected = kept.to_vec();
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(
            kv.get(&forwarded),
            Some(b"x".to_vec()),
            "forwarded holds survive"
        );
        assert_eq!(kv.get(keys::CATALOG_EPOCH), None, "the epoch moved");
    }

    #[test]
    fn increments_store_spins_bytes_and_refuse_other_values() {
        let kv = KvStore::new(8);
        assert_eq!(kv.increment("n".into(), 1), Ok(1));
        assert_eq!(kv.increment("n".into(), 41), Ok(42));
        assert_eq!(
            kv.get("n"),
            Some(42i64.to_le_bytes().to_vec()),
            "as Spin stores it"
        );
        assert_eq!(kv.increment("n".into(), -50), Ok(-8));
        kv.set("text".into(), b"7".to_vec()).expect("room");
        assert!(matches!(
            kv.increment("text".into(), 1),
            Err(KvError::NotACounter { .. })
        ));
        kv.set("max".into(), i64::MAX.to_le_bytes().to_vec())
            .expect("room");
        assert!(matches!(
            kv.increment("max".into(), 1),
            Err(KvError::Overflow { .. })
        ));
    }

    #[test]
    fn concurrent_increments_lose_none() {
        const THREADS: i64 = 8;
        const EACH: i64 = 1_000;
        let kv = KvStore::new(8);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                let kv = kv.clone();
                scope.spawn(move || {
                    for _ in 0..EACH {
                        kv.increment("n".into(), 1).expect("counter");
                    }
                });
            }
        });
        assert_eq!(kv.increment("n".into(), 0), Ok(THREADS * EACH));
    }

    #[test]
    fn compare_and_swap_writes_only_over_the_value_seen() {
        let kv = KvStore::new(8);
        assert_eq!(kv.compare_and_swap("k", None, b"a".to_vec()), Ok(Ok(())));
        assert_eq!(
            kv.compare_and_swap("k", None, b"b".to_vec()),
            Ok(Err(Some(b"a".to_vec())))
        );
        assert_eq!(
            kv.compare_and_swap("k", Some(b"a"), b"b".to_vec()),
            Ok(Ok(()))
        );
        assert_eq!(kv.get("k"), Some(b"b".to_vec()));
    }

    #[test]
    fn rate_limit_counters_have_their_own_budget_and_ended_windows_make_room() {
        use tessera_edge_cache::ratelimit::{Class, Window};
        let kv = KvStore::new(4);
        let now_s = now_s();
        let live = Window::containing(i64::try_from(now_s * 1000).expect("ms"), 3600);
        let ended = Window {
            start_s: 1_000,
            len_s: 10,
        };
        for n in 0..4 {
            kv.set(format!("avail/{n}"), vec![1]).expect("room");
        }
        assert_eq!(
            kv.set("avail/5".into(), vec![1]),
            Err(KvError::Full { max: 4 })
        );
        // The cache is full, yet counters count: a budget of their own.
        for n in 0..2 {
            let key = keys::rate_limit(ended, Class::Reads, &format!("10.0.0.{n}"));
            assert_eq!(kv.increment(key, 1), Ok(1));
        }
        for n in 0..2 {
            let key = keys::rate_limit(live, Class::Reads, &format!("10.0.1.{n}"));
            assert_eq!(kv.increment(key, 1), Ok(1));
        }
        assert_eq!(kv.counters(), 4);
        // Full of counters: the ended windows go to make room for a new address.
        let key = keys::rate_limit(live, Class::Reads, "10.0.2.1");
        assert_eq!(kv.increment(key, 1), Ok(1));
        assert_eq!(kv.counters(), 3, "two ended windows dropped, one new");
        for n in 2..3 {
            let key = keys::rate_limit(live, Class::Reads, &format!("10.0.1.{n}"));
            assert_eq!(kv.increment(key, 1), Ok(1));
        }
        // All live now: a flood of new addresses is refused, and the cache is untouched.
        let key = keys::rate_limit(live, Class::Reads, "10.0.3.1");
        assert_eq!(kv.increment(key, 1), Err(KvError::CountersFull { max: 4 }));
        assert_eq!(kv.len(), 8);
        assert_eq!(
            kv.drop_cache_entries(),
            4,
            "the counters are no cache entries"
        );
        assert_eq!(kv.counters(), 4);
        // Once their window ends, the sweep drops them.
        assert_eq!(kv.sweep_stale_windows(live.end_s()), 4);
        assert!(kv.is_empty());
    }
}
