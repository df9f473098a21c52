//! The wasmtime side: one engine (pooling allocator, epoch interruption), each component
//! compiled and pre-instantiated once at load, and the per-instance state a `Store` carries
//! (WASI, wasi-http with the outbound policy, the node's key-value store, the component's
//! variables, memory limits and the deadline of the request it is serving).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{fermyon, wasi, RedisComponentPre};
use crate::config::GuestLimits;
use crate::kv::KvStore;
use crate::manifest::{ComponentSpec, Manifest};
use crate::metrics::HostCalls;
use crate::outbound::pool::OutboundPool;
use crate::outbound::{AllowedHost, OutboundPolicy};
use crate::variables::AppVariables;

/// How often the epoch advances; deadlines are checked at this granularity, and a busy
/// guest yields to other tasks this often.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Outbound timeouts are this share of the guest's deadline: shorter, so a slow upstream
/// surfaces as an error the component can answer, not as the guest being stopped.
const OUTBOUND_TIMEOUT_SHARE: f64 = 0.75;

/// Bytes of each linear memory / table kept resident across instances (see `engine`). The
/// components link with this much initial memory (`.cargo/config.toml`: stack, data and a
/// heap that serves a request without `memory.grow`), and all of it stays resident, so a
/// request neither grows its memory nor has pages unmapped when its slot is reset: either
/// costs page-protection changes and a TLB shootdown on every core.
const SLOT_KEEP_RESIDENT_BYTES: usize = 4 << 20;
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// Wasmtime's engine configured for serving many short-lived instances.
pub fn engine(limits: &GuestLimits) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let instances = limits.instances_max;
    // A component built by wasm-component-ld is a handful of core instances (the program,
    // the WASI adapter, shims); each has at most one memory and a few tables.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_memory_size(limits.memory_max_bytes);
    // A slot is reset for the next instance by zeroing its dirty pages in place (found with
    // PAGEMAP_SCAN where the kernel has it, ≥ 6.7) instead of unmapping them: unmapping
    // cost a TLB shootdown on every core per request and refaulting the pages on the next
    // one. Measured with `cargo xtask bench` (edge reads): +65% requests/s, instantiation
    // 58 → ~40 µs. Memory is still zeroed between instances; only the method differs.
    pool.linear_memory_keep_resident(SLOT_KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Memories never grow past the limit, so reserve just that (plus guard pages)
        // instead of 4 GiB of address space per pool slot.
        .memory_reservation(limits.memory_max_bytes as u64);
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("edge-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the epoch ticker")?;
    Ok(engine)
}

/// What a component's instances see of the node: its variables, the key-value store if it
/// declared one, and the hosts it may call.
#[derive(Debug)]
pub struct ComponentEnv {
    pub id: String,
    pub variables: HashMap<String, String>,
    pub kv: Option<KvStore>,
    pub outbound: OutboundPolicy,
}

/// The state of one `Store`: one guest instance.
pub struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    hooks: OutboundPolicy,
    limits: GuestLimiter,
    pub(crate) env: Arc<ComponentEnv>,
    /// When the request being served must be finished; checked at every epoch tick.
    deadline: Instant,
    /// Calls the guest made into the host for the request being served.
    pub(crate) host_calls: HostCalls,
}

impl StoreState {
    pub(crate) fn metrics_kv_get(&self, hit: bool) {
        crate::metrics::kv_get(&self.env.id, hit);
    }

    pub(crate) fn metrics_kv_swap(&self, written: bool) {
        crate::metrics::kv_swap(&self.env.id, written);
    }

    /// What the instance asked of the host for the request being served.
    pub(crate) fn tally(&self) -> HostCalls {
        HostCalls {
            memory_grows: self.limits.memory_grows,
            ..self.host_calls
        }
    }

    /// A (reused) instance's next request counts anew.
    pub(crate) fn reset_tally(&mut self) {
        self.host_calls = HostCalls::default();
        self.limits.memory_grows = 0;
    }
}

/// The store's limits ([`StoreLimits`]), counting each growth of a linear memory past its
/// initial size: a grown page is made accessible for the request and inaccessible again
/// when the slot is reset, two page-protection changes that each interrupt every core
/// (a TLB shootdown). Our components start with the memory a request needs, so a request
/// that grows one is worth a look (`edge_memory_grows_total`).
struct GuestLimiter {
    limits: StoreLimits,
    memory_grows: u32,
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Instantiation asks for the initial size from 0: not a growth.
        if current > 0 && desired > current {
            self.memory_grows = self.memory_grows.saturating_add(1);
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl fermyon::spin::redis_types::Host for StoreState {}

impl fermyon::spin2_0_0::variables::Host for StoreState {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, fermyon::spin2_0_0::variables::Error>> {
        use fermyon::spin2_0_0::variables::Error;
        self.host_calls.variables += 1;
        Ok(match self.env.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                Err(Error::InvalidName(name))
            }
            None => Err(Error::Undefined(name)),
        })
    }
}

/// A guest exceeded its time budget.
#[derive(Debug, thiserror::Error)]
#[error("the component ran past its {0:?} deadline")]
pub struct DeadlineExceeded(pub Duration);

/// Whether `error` is a deadline stopping a guest: the epoch interrupting a busy one, or
/// the wall clock abandoning one that waits.
pub fn is_deadline(error: &wasmtime::Error) -> bool {
    error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
        || error.downcast_ref::<DeadlineExceeded>().is_some()
}

/// What kind of entry point a component has.
pub enum Entry {
    Http(ProxyPre<StoreState>),
    Redis(RedisComponentPre<StoreState>),
}

/// One component, compiled and linked, ready to instantiate.
pub struct LoadedComponent {
    pub env: Arc<ComponentEnv>,
    pub entry: Entry,
}

/// The application: the engine plus every component the triggers use.
pub struct App {
    pub engine: Engine,
    pub manifest: Manifest,
    pub components: HashMap<String, LoadedComponent>,
    pub variables: AppVariables,
    pub limits: GuestLimits,
    pub kv: KvStore,
}

/// Components compiled once per process: compiling is the slow part of loading (seconds
/// for a debug build of the host), and several nodes in one process (tests) share it.
pub struct Compiled {
    pub engine: Engine,
    pub limits: GuestLimits,
    components: HashMap<String, Component>,
}

impl Compiled {
    pub fn compile(manifest: &Manifest, limits: GuestLimits) -> wasmtime::Result<Self> {
        let engine = engine(&limits)?;
        let mut components = HashMap::new();
        for (id, spec) in &manifest.components {
            let path = manifest.source_path(spec);
            let started = Instant::now();
            let component = Component::from_file(&engine, &path).with_context(|| {
                format!(
                    "component `{id}`: cannot load {} (build it: cargo xtask build-edge)",
                    path.display()
                )
            })?;
            tracing::info!(component = %id, path = %path.display(), elapsed_ms = started.elapsed().as_millis(), "compiled");
            components.insert(id.clone(), component);
        }
        Ok(Self {
            engine,
            limits,
            components,
        })
    }

    /// Connect, first-byte and between-bytes timeout of outbound calls a guest sets none for.
    fn outbound_timeout(&self) -> Duration {
        self.limits.request_timeout.mul_f64(OUTBOUND_TIMEOUT_SHARE)
    }

    /// The compiled components by id.
    pub fn components(&self) -> impl Iterator<Item = (&String, &Component)> {
        self.components.iter()
    }

    /// Link every triggered component against this node's store and variables.
    pub fn link(
        &self,
        manifest: &Manifest,
        variables: AppVariables,
        kv: KvStore,
    ) -> wasmtime::Result<App> {
        let linker = linker(&self.engine)?;
        let http_ids: Vec<&str> = manifest.http.iter().map(|t| t.component.as_str()).collect();
        let redis_ids: Vec<&str> = manifest
            .redis
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        // One pool per node: every component's outbound calls share its connections.
        let pool = Arc::new(OutboundPool::new(
            self.limits.outbound_connections_max.get(),
            self.outbound_timeout(),
        ));
        let mut components = HashMap::new();
        for (id, spec) in &manifest.components {
            let is_http = http_ids.contains(&id.as_str());
            let is_redis = redis_ids.contains(&id.as_str());
            if !is_http && !is_redis {
                continue;
            }
            if is_http && is_redis {
                wasmtime::bail!("component `{id}` is used by both an HTTP and a Redis trigger");
            }
            let component = self
                .components
                .get(id)
                .with_context(|| format!("component `{id}` was not compiled"))?;
            let env = self.component_env(id, spec, &variables, &kv, &pool)?;
            let pre = linker.instantiate_pre(component).with_context(|| {
                format!("component `{id}` imports something this host does not provide")
            })?;
            let entry = if is_http {
                Entry::Http(ProxyPre::new(pre).with_context(|| {
                    format!("component `{id}` does not export wasi:http/incoming-handler@0.2")
                })?)
            } else {
                Entry::Redis(RedisComponentPre::new(pre).with_context(|| {
                    format!("component `{id}` does not export fermyon:spin/inbound-redis")
                })?)
            };
            components.insert(id.clone(), LoadedComponent { env, entry });
        }
        Ok(App {
            engine: self.engine.clone(),
            manifest: manifest.clone(),
            components,
            variables,
            limits: self.limits,
            kv,
        })
    }

    /// What instances of component `id` see of the node: its variables, the store if it
    /// declared one, and its outbound policy.
    fn component_env(
        &self,
        id: &str,
        spec: &ComponentSpec,
        variables: &AppVariables,
        kv: &KvStore,
        pool: &Arc<OutboundPool>,
    ) -> wasmtime::Result<Arc<ComponentEnv>> {
        let allowed = spec
            .allowed_outbound_hosts
            .iter()
            .map(|entry| {
                let entry = variables.expand(entry)?;
                AllowedHost::parse(&entry).map_err(wasmtime::Error::msg)
            })
            .collect::<wasmtime::Result<Vec<_>>>()
            .with_context(|| format!("component `{id}`: allowed_outbound_hosts"))?;
        Ok(Arc::new(ComponentEnv {
            id: id.to_owned(),
            variables: variables
                .for_component(&spec.variables)
                .with_context(|| format!("component `{id}`: variables"))?,
            kv: spec
                .key_value_stores
                .iter()
                .any(|s| s == "default")
                .then(|| kv.clone()),
            outbound: OutboundPolicy {
                component: id.to_owned(),
                allowed,
                timeout: self.outbound_timeout(),
                pool: pool.clone(),
            },
        }))
    }
}

/// Everything a component may import: WASI 0.2, wasi:http outgoing, and the Spin
/// interfaces of `wit/` (key-value, variables, wasi:keyvalue).
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    fermyon::spin2_0_0::key_value::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    fermyon::spin2_0_0::variables::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    // wasi:keyvalue, over the same store (crate::wasi_keyvalue).
    wasi::keyvalue::store::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    wasi::keyvalue::atomics::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    wasi::keyvalue::batch::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    // Types only (the error and payload of inbound-redis), but imported all the same.
    fermyon::spin::redis_types::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    Ok(linker)
}

impl App {
    /// A fresh store for one instance of `component`.
    pub fn store(&self, component: &LoadedComponent) -> Store<StoreState> {
        let state = StoreState {
            // Guests log to the host's stderr/stdout; no files, environment or sockets.
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: component.env.outbound.clone(),
            limits: GuestLimiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory_max_bytes)
                    .trap_on_grow_failure(true)
                    .build(),
                memory_grows: 0,
            },
            env: component.env.clone(),
            deadline: Instant::now() + self.limits.request_timeout,
            host_calls: Default::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.call_hook(crate::guest::count_host_call);
        // Every tick: past the deadline, stop the guest; otherwise yield, so one busy guest
        // cannot monopolise an executor thread.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        store
    }

    /// How long a call into a guest may take in all, waiting included: a little past the
    /// epoch deadline, so a computing guest is interrupted (a trap) before it is abandoned.
    pub fn guest_wall_clock(&self) -> Duration {
        self.limits.request_timeout + EPOCH_TICK * 4
    }

    pub fn deadline_error(&self) -> wasmtime::Error {
        wasmtime::Error::new(DeadlineExceeded(self.limits.request_timeout))
    }

    /// Start the clock of a new request or message on `store`.
    pub fn arm_deadline(&self, store: &mut Store<StoreState>) {
        store.data_mut().deadline = Instant::now() + self.limits.request_timeout;
        store.set_epoch_deadline(1);
    }
}
