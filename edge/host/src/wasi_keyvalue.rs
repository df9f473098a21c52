//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`), the interface Spin 3+ gives
//! components beside `fermyon:spin/key-value`, over the same node store ([`KvStore`]): a
//! bucket opened as `default` sees exactly what the Spin store `default` sees, and a
//! component may open it only if it declares `key_value_stores = ["default"]` (the same
//! refusals as the Spin interface, [`StoreState::open_store`]).
//!
//! As Spin's key-value factor does: `increment` treats an absent key as 0 and stores the
//! result as 8 bytes of little-endian `i64`, under the store's lock ([`KvStore::increment`]);
//! `list-keys` answers every key at once and refuses a cursor; a CAS handle remembers the
//! value `current` read (none read: it expects the key absent), and `swap` writes only if
//! that is still the value, else answers `cas-failed` with a fresh handle holding the
//! current value. Every call counts in `edge_host_calls_total{interface="wasi:keyvalue/…"}`.

use wasmtime::component::Resource;

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::kv::{KvError, KvStore, OpenRefusal};
use crate::runtime::StoreState;

/// The guest's handle to an opened bucket.
pub struct Bucket(KvStore);

/// A compare-and-swap in progress: the key and the value the guest saw (`None`: absent,
/// or not read yet).
pub struct Cas {
    store: KvStore,
    key: String,
    expected: Option<Vec<u8>>,
}

type StoreResult<T> = wasmtime::Result<Result<T, store::Error>>;

impl From<KvError> for store::Error {
    fn from(e: KvError) -> Self {
        store::Error::Other(e.to_string())
    }
}

impl StoreState {
    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<KvStore> {
        Ok(self.table.get(bucket)?.0.clone())
    }
}

impl store::Host for StoreState {
    fn open(&mut self, identifier: String) -> StoreResult<Resource<Bucket>> {
        self.host_calls.wasi_keyvalue_store += 1;
        match self.open_store(&identifier) {
            Ok(kv) => Ok(Ok(self.table.push(Bucket(kv))?)),
            Err(OpenRefusal::NoSuchStore) => Ok(Err(store::Error::NoSuchStore)),
            Err(OpenRefusal::AccessDenied) => Ok(Err(store::Error::AccessDenied)),
        }
    }
}

impl store::HostBucket for StoreState {
    fn get(&mut self, bucket: Resource<Bucket>, key: String) -> StoreResult<Option<Vec<u8>>> {
        self.host_calls.wasi_keyvalue_store += 1;
        let value = self.bucket(&bucket)?.get(&key);
        self.metrics_kv_get(value.is_some());
        Ok(Ok(value))
    }

    fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> StoreResult<()> {
        self.host_calls.wasi_keyvalue_store += 1;
        Ok(self.bucket(&bucket)?.set(key, value).map_err(Into::into))
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> StoreResult<()> {
        self.host_calls.wasi_keyvalue_store += 1;
        self.bucket(&bucket)?.delete(&key);
        Ok(Ok(()))
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> StoreResult<bool> {
        self.host_calls.wasi_keyvalue_store += 1;
        Ok(Ok(self.bucket(&bucket)?.exists(&key)))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> StoreResult<store::KeyResponse> {
        self.host_calls.wasi_keyvalue_store += 1;
        if cursor.is_some() {
            // Spin's answer too: every key comes in the first response.
            return Ok(Err(store::Error::Other(
                "list-keys: cursor not supported".to_owned(),
            )));
        }
        let keys = self.bucket(&bucket)?.keys();
        Ok(Ok(store::KeyResponse { keys, cursor: None }))
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.host_calls.wasi_keyvalue_store += 1;
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for StoreState {
    fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> StoreResult<i64> {
        self.host_calls.wasi_keyvalue_atomics += 1;
        Ok(self
            .bucket(&bucket)?
            .increment(key, delta)
            .map_err(Into::into))
    }

    fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        self.host_calls.wasi_keyvalue_atomics += 1;
        let Cas {
            store,
            key,
            expected,
        } = self.table.delete(cas)?;
        let swapped = store.compare_and_swap(&key, expected.as_deref(), value);
        if let Ok(outcome) = &swapped {
            self.metrics_kv_swap(outcome.is_ok());
        }
        match swapped {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(current)) => {
                let retry = self.table.push(Cas {
                    store,
                    key,
                    expected: current,
                })?;
                Ok(Err(atomics::CasError::CasFailed(retry)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(e.into()))),
        }
    }
}

impl atomics::HostCas for StoreState {
    fn new(&mut self, bucket: Resource<Bucket>, key: String) -> StoreResult<Resource<Cas>> {
        self.host_calls.wasi_keyvalue_atomics += 1;
        let store = self.bucket(&bucket)?;
        Ok(Ok(self.table.push(Cas {
            store,
            key,
            expected: None,
        })?))
    }

    fn current(&mut self, cas: Resource<Cas>) -> StoreResult<Option<Vec<u8>>> {
        self.host_calls.wasi_keyvalue_atomics += 1;
        let cas = self.table.get_mut(&cas)?;
        cas.expected = cas.store.get(&cas.key);
        Ok(Ok(cas.expected.clone()))
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.host_calls.wasi_keyvalue_atomics += 1;
        self.table.delete(cas)?;
        Ok(())
    }
}

/// A batch is not atomic (the interface does not promise it): each key as on its own.
impl batch::Host for StoreState {
    fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> StoreResult<Vec<(String, Option<Vec<u8>>)>> {
        self.host_calls.wasi_keyvalue_batch += 1;
        let kv = self.bucket(&bucket)?;
        Ok(Ok(keys
            .into_iter()
            .map(|key| {
                let value = kv.get(&key);
                (key, value)
            })
            .collect()))
    }

    fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> StoreResult<()> {
        self.host_calls.wasi_keyvalue_batch += 1;
        let kv = self.bucket(&bucket)?;
        for (key, value) in key_values {
            if let Err(e) = kv.set(key, value) {
                return Ok(Err(e.into()));
            }
        }
        Ok(Ok(()))
    }

    fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> StoreResult<()> {
        self.host_calls.wasi_keyvalue_batch += 1;
        let kv = self.bucket(&bucket)?;
        for key in keys {
            kv.delete(&key);
        }
        Ok(Ok(()))
    }
}
