//! The Spin key-value store, in process: one per host process, so each host process is one
//! edge node with its own cache. Bounded, so a flood of distinct keys cannot exhaust the
//! node's memory. Every call a guest makes on it counts in the request's host calls
//! (`edge_host_calls_total{interface="fermyon:spin/key-value"}`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tessera_edge_cache::keys;
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin2_0_0::key_value::{self, Error};
use crate::runtime::StoreState;

/// One node's store, shared by every component that declares `key_value_stores = ["default"]`.
#[derive(Debug, Clone)]
pub struct KvStore {
    entries: Arc<RwLock<HashMap<String, Vec<u8>>>>,
    entries_max: usize,
}

impl KvStore {
    pub fn new(entries_max: usize) -> Self {
        Self {
            entries: Arc::default(),
            entries_max,
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.read().get(key).cloned()
    }

    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        let mut entries = self.write();
        if entries.len() >= self.entries_max && !entries.contains_key(&key) {
            return Err(Error::Other(format!(
                "the store is full ({} entries)",
                self.entries_max
            )));
        }
        entries.insert(key, value);
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        self.write().remove(key);
    }

    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep only the entries `keep` accepts; returns how many were dropped.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) -> usize {
        let mut entries = self.write();
        let before = entries.len();
        entries.retain(|key, _| keep(key));
        before - entries.len()
    }

    /// After a possibly missed invalidation no cached entry can be trusted: drop them all
    /// (what is a cache entry is the components' rule, `keys::is_cache_entry`). The
    /// components' bookkeeping stays, above all the `forwarded/` holds, so a retry of a hold
    /// this node forwarded still reaches the ledger and gets its replayed answer. The
    /// catalog epoch goes too: a read that was fetching meanwhile finds it moved (an absent
    /// epoch counts as moved) and does not store what it read before the gap.
    /// Returns how many entries were dropped.
    pub fn drop_cache_entries(&self) -> usize {
        self.retain(|key| !keys::is_cache_entry(key) && key != keys::CATALOG_EPOCH)
    }

    // A poisoned lock only means a holder panicked mid-operation on a HashMap, which
    // leaves it consistent; keep serving rather than take the node down.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<u8>>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<u8>>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The guest's handle to an opened store.
pub struct OpenStore(KvStore);

impl key_value::Host for StoreState {}

impl key_value::HostStore for StoreState {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        self.host_calls.key_value += 1;
        if label != "default" {
            return Ok(Err(Error::NoSuchStore));
        }
        let Some(store) = self.env.kv.clone() else {
            // Declared in the manifest or not at all: Spin's rule.
            return Ok(Err(Error::AccessDenied));
        };
        Ok(Ok(self.table.push(OpenStore(store))?))
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
        Ok(self.table.get(&store)?.0.set(key, value))
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
        Ok(Ok(self.table.get(&store)?.0.read().contains_key(&key)))
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
}
