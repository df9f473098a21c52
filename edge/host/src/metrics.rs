//! Prometheus metrics of one edge node. Names:
//! - `edge_requests_total{component,status,served_by}`, `edge_request_duration_seconds{component}`
//!   (time to the response head)
//! - `edge_cache_total{component,result}`: reads answered from the node's cache (`hit`) or
//!   fetched from the ledger (`miss`), as the component reports in `Tessera-Cache`
//! - `edge_kv_swaps_total{component,result}`: compare-and-swaps (`wasi:keyvalue/atomics`
//!   `swap`) that wrote (`written`) or found the key changed since it was read (`changed`,
//!   the guest reads again and retries): how often a node's writers of one entry collide
//! - `edge_kv_gets_total{component,result}`, `edge_kv_entries` (rate-limit counters
//!   included), `edge_kv_rate_limit_counters`, `edge_kv_rate_limit_swept_total` (counters
//!   of ended windows dropped by the upkeep)
//! - `edge_instantiation_seconds{component}`, `edge_instance_reuses_total{component}`
//! - `edge_guest_failures_total{component,reason}`: traps, deadlines, missing responses,
//!   failed response bodies (`body`), requests that found no free instance slot in time
//!   (`instance_wait`)
//! - `edge_invalidations_total{component,outcome}`, `edge_invalidation_seconds{component}`
//!   (one message, instantiation included), `edge_redis_connected{channel}`,
//!   `edge_redis_resubscriptions_total{channel}`
//! - `edge_outbound_requests_total{component,method}`: every outbound HTTP request a guest
//!   makes that the manifest allows (sent, whatever came of it); `edge_outbound_denied_total`:
//!   the ones it does not allow
//! - `edge_host_calls_per_request{component}` (histogram) and
//!   `edge_host_calls_total{component,interface}`: the calls a guest made into the host
//!   while serving one HTTP request ([`HostCalls`]); `interface` is
//!   `fermyon:spin/key-value`, `fermyon:spin/variables`, `wasi:keyvalue/store`,
//!   `wasi:keyvalue/atomics`, `wasi:keyvalue/batch`, or `other` (WASI 0.2 — cli,
//!   clocks, random, io, http — and the component model's built-ins such as resource drops
//!   and memory growth)
//! - `edge_memory_grows_total{component}`: growths of a guest's linear memory past its
//!   initial size while serving an HTTP request (each costs two page-protection changes
//!   and the TLB shootdowns they send to every core; our components start with enough)
//!
//! They are served on the operations listener (`EDGE_METRICS_ADDR`), not the public port.
//! What every request records goes through one component's handles, registered on first
//! use and kept ([`component`]): looking a labelled metric up in the registry (a key built
//! from owned label strings, hashed, found in a sharded map) cost more than the increment
//! it guards, several times per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets of `edge_host_calls_per_request`: a cache hit makes a few dozen calls, a miss
/// (an outbound request, its body, the store writes) a hundred or more.
const HOST_CALLS_BUCKETS: &[f64] = &[
    5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0, 500.0, 1000.0,
];
const HOST_CALLS_PER_REQUEST: &str = "edge_host_calls_per_request";

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process-wide recorder, installed once.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(HOST_CALLS_PER_REQUEST.into()),
                        HOST_CALLS_BUCKETS,
                    )
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))
}

/// A guest that did not answer normally, by why (see the module docs for the reasons).
pub fn guest_failure(component: &str, reason: &'static str) {
    metrics::counter!("edge_guest_failures_total", "component" => component.to_owned(), "reason" => reason)
        .increment(1);
}

/// A request a component answered: by status and who answered, its time to the response
/// head, and whether the cache served it.
pub fn request_served<B>(component_id: &str, response: &http::Response<B>, elapsed: Duration) {
    let header = |name: &str| response.headers().get(name).map(|v| v.as_bytes());
    // Who answered: the edge alone (cache hits, refusals, sheds) or the ledger, relayed.
    let served_by = match header(tessera_domain::SERVED_BY_HEADER) {
        Some(b"edge") => ServedBy::Edge,
        Some(b"ledger") => ServedBy::Ledger,
        _ => ServedBy::Unknown,
    };
    let handles = component(component_id);
    handles
        .requests(response.status().as_u16(), served_by)
        .increment(1);
    handles.duration().record(elapsed.as_secs_f64());
    let result = match header(tessera_domain::CACHE_HEADER) {
        Some(b"hit") => CacheResult::Hit,
        Some(b"miss") => CacheResult::Miss,
        Some(b"bypass") => CacheResult::Bypass,
        _ => return,
    };
    handles.cache()[result as usize].increment(1);
}

/// A key-value read by `component`, found or not.
pub fn kv_get(component_id: &str, hit: bool) {
    let handles = component(component_id);
    let [found, missing] = handles.kv_gets();
    if hit { found } else { missing }.increment(1);
}

/// A key-value compare-and-swap by `component`: written, or the key had changed.
pub fn kv_swap(component_id: &str, written: bool) {
    let handles = component(component_id);
    let [wrote, changed] = handles.kv_swaps();
    if written { wrote } else { changed }.increment(1);
}

/// Who answered a request (`served_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServedBy {
    Edge,
    Ledger,
    Unknown,
}

impl ServedBy {
    fn label(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Ledger => "ledger",
            Self::Unknown => "unknown",
        }
    }
}

/// `edge_cache_total`'s `result`, as an index into a component's counters.
#[derive(Debug, Clone, Copy)]
enum CacheResult {
    Hit = 0,
    Miss = 1,
    Bypass = 2,
}

/// Calls one guest instance made into the host while serving one request: every one
/// (`all`, counted by the store's call hook: imports, the component model's built-ins and
/// libcalls such as memory growth alike), those of Spin's interfaces by name (counted
/// where they are implemented), and the growths of its linear memory (counted by its
/// limiter).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HostCalls {
    pub all: u32,
    pub key_value: u32,
    pub variables: u32,
    pub wasi_keyvalue_store: u32,
    pub wasi_keyvalue_atomics: u32,
    pub wasi_keyvalue_batch: u32,
    pub memory_grows: u32,
}

impl HostCalls {
    /// The calls counted by interface (the rest of `all` is `other`).
    fn named(&self) -> u32 {
        [
            self.key_value,
            self.variables,
            self.wasi_keyvalue_store,
            self.wasi_keyvalue_atomics,
            self.wasi_keyvalue_batch,
        ]
        .into_iter()
        .fold(0, u32::saturating_add)
    }
}

/// The handles of one component's per-request metrics. Each group is registered when it
/// is first recorded, so a component shows only the series it has (the invalidator no
/// cache results, a component without a store no key-value reads).
pub struct ComponentMetrics {
    id: String,
    /// `edge_requests_total` by status and `served_by`: a handful of pairs per component.
    requests: Mutex<Vec<(u16, ServedBy, Counter)>>,
    duration: OnceLock<Histogram>,
    /// `edge_cache_total` by [`CacheResult`].
    cache: OnceLock<[Counter; 3]>,
    /// `edge_kv_gets_total`: found, missing.
    kv_gets: OnceLock<[Counter; 2]>,
    /// `edge_kv_swaps_total`: written, changed.
    kv_swaps: OnceLock<[Counter; 2]>,
    instantiation: OnceLock<Histogram>,
    instance_reuses: OnceLock<Counter>,
    host_calls: OnceLock<HostCallHandles>,
}

struct HostCallHandles {
    per_request: Histogram,
    key_value: Counter,
    variables: Counter,
    wasi_keyvalue_store: Counter,
    wasi_keyvalue_atomics: Counter,
    wasi_keyvalue_batch: Counter,
    other: Counter,
    memory_grows: Counter,
}

/// Distinct (status, `served_by`) pairs kept per component; past it (a component answering
/// with many statuses) the registry is asked each time instead.
const REQUEST_SERIES_KEPT_MAX: usize = 32;

impl ComponentMetrics {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            requests: Mutex::default(),
            duration: OnceLock::new(),
            cache: OnceLock::new(),
            kv_gets: OnceLock::new(),
            kv_swaps: OnceLock::new(),
            instantiation: OnceLock::new(),
            instance_reuses: OnceLock::new(),
            host_calls: OnceLock::new(),
        }
    }

    fn requests(&self, status: u16, served_by: ServedBy) -> Counter {
        let mut kept = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, counter)) = kept
            .iter()
            .find(|(s, by, _)| *s == status && *by == served_by)
        {
            return counter.clone();
        }
        let counter = metrics::counter!("edge_requests_total", "component" => self.id.clone(), "status" => status.to_string(), "served_by" => served_by.label());
        if kept.len() < REQUEST_SERIES_KEPT_MAX {
            kept.push((status, served_by, counter.clone()));
        }
        counter
    }

    fn duration(&self) -> &Histogram {
        self.duration.get_or_init(
            || metrics::histogram!("edge_request_duration_seconds", "component" => self.id.clone()),
        )
    }

    fn cache(&self) -> &[Counter; 3] {
        self.cache.get_or_init(|| {
            ["hit", "miss", "bypass"].map(|result| {
                metrics::counter!("edge_cache_total", "component" => self.id.clone(), "result" => result)
            })
        })
    }

    fn kv_gets(&self) -> &[Counter; 2] {
        self.kv_gets.get_or_init(|| {
            ["hit", "miss"].map(|result| {
                metrics::counter!("edge_kv_gets_total", "component" => self.id.clone(), "result" => result)
            })
        })
    }

    fn kv_swaps(&self) -> &[Counter; 2] {
        self.kv_swaps.get_or_init(|| {
            ["written", "changed"].map(|result| {
                metrics::counter!("edge_kv_swaps_total", "component" => self.id.clone(), "result" => result)
            })
        })
    }

    /// `edge_instantiation_seconds`.
    pub fn instantiated(&self, elapsed: Duration) {
        self.instantiation
            .get_or_init(|| {
                metrics::histogram!("edge_instantiation_seconds", "component" => self.id.clone())
            })
            .record(elapsed.as_secs_f64());
    }

    /// `edge_instance_reuses_total`.
    pub fn reused(&self) {
        self.instance_reuses
            .get_or_init(
                || metrics::counter!("edge_instance_reuses_total", "component" => self.id.clone()),
            )
            .increment(1);
    }

    /// One request's host calls.
    pub fn host_calls(&self, calls: &HostCalls) {
        let handles = self.host_calls.get_or_init(|| {
            let total = |interface: &'static str| {
                metrics::counter!("edge_host_calls_total", "component" => self.id.clone(), "interface" => interface)
            };
            HostCallHandles {
                per_request: metrics::histogram!(HOST_CALLS_PER_REQUEST, "component" => self.id.clone()),
                key_value: total("fermyon:spin/key-value"),
                variables: total("fermyon:spin/variables"),
                wasi_keyvalue_store: total("wasi:keyvalue/store"),
                wasi_keyvalue_atomics: total("wasi:keyvalue/atomics"),
                wasi_keyvalue_batch: total("wasi:keyvalue/batch"),
                other: total("other"),
                memory_grows: metrics::counter!("edge_memory_grows_total", "component" => self.id.clone()),
            }
        });
        handles.per_request.record(f64::from(calls.all));
        handles
            .memory_grows
            .increment(u64::from(calls.memory_grows));
        handles.key_value.increment(u64::from(calls.key_value));
        handles.variables.increment(u64::from(calls.variables));
        handles
            .wasi_keyvalue_store
            .increment(u64::from(calls.wasi_keyvalue_store));
        handles
            .wasi_keyvalue_atomics
            .increment(u64::from(calls.wasi_keyvalue_atomics));
        handles
            .wasi_keyvalue_batch
            .increment(u64::from(calls.wasi_keyvalue_batch));
        handles
            .other
            .increment(u64::from(calls.all.saturating_sub(calls.named())));
    }
}

/// The handles of `component_id`'s metrics, made the first time it is asked for. The
/// components are the manifest's, so this stays as small as the application.
pub fn component(component_id: &str) -> Arc<ComponentMetrics> {
    static COMPONENTS: OnceLock<RwLock<HashMap<String, Arc<ComponentMetrics>>>> = OnceLock::new();
    let components = COMPONENTS.get_or_init(RwLock::default);
    let known = components
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(component_id)
        .cloned();
    if let Some(handles) = known {
        return handles;
    }
    components
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(component_id.to_owned())
        .or_insert_with(|| Arc::new(ComponentMetrics::new(component_id)))
        .clone()
}
