//! The Spin key-value store, in process: one per host process, so each host process is one
//! edge node with its own cache. Bounded, so a flood of distinct keys cannot exhaust the
//! node's memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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

    /// Drop everything: after a missed invalidation nothing cached can be trusted.
    pub fn clear(&self) {
        self.write().clear();
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
        Ok(self.table.get(&store)?.0.set(key, value))
    }

    fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get(&store)?.0.delete(&key);
        Ok(Ok(()))
    }

    fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(Ok(self.table.get(&store)?.0.read().contains_key(&key)))
    }

    fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(Ok(self.table.get(&store)?.0.keys()))
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
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
        kv.clear();
        assert!(kv.is_empty());
    }
}
