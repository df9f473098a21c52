//! Running one HTTP request through a guest: wait for an instance slot, take an idle
//! instance or instantiate one, arm the deadline, run the guest — in the request's own task
//! while it needs nothing but the CPU (a cache hit runs to its end there), in a task of its
//! own from its first wait on (it may keep streaming its body after the head, or outlive
//! the client) — and turn what it answered, or how it failed, into the response. Every
//! call the guest makes into the host is counted ([`count_host_call`]) and recorded per
//! request (`edge_host_calls_per_request`).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use hyper::{Request, Response};
use tessera_domain::{ErrorCode, Problem};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use wasmtime::component::Resource;
use wasmtime::{CallHook, Store, StoreContextMut};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode as WasiErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::WasiHttpView;

use crate::body::{coalesce_small_body, GuestBody};
use crate::metrics::{guest_failure, ComponentMetrics};
use crate::respond::{at_instance_limit, problem};
use crate::runtime::{is_deadline, App, LoadedComponent, StoreState};

/// An instantiated guest, with the number of requests it has served.
pub(crate) struct Instance {
    store: Store<StoreState>,
    proxy: Proxy,
    served: u32,
}

/// A guest's run: over already (`None`: it panicked), or going on in a task of its own.
enum GuestRun {
    Finished(Option<wasmtime::Result<()>>),
    Running(JoinHandle<wasmtime::Result<()>>),
}

impl GuestRun {
    /// How the guest's run ended (`None`: it panicked or its task was cancelled).
    async fn outcome(self) -> Option<wasmtime::Result<()>> {
        match self {
            Self::Finished(result) => result,
            Self::Running(task) => task.await.ok(),
        }
    }
}
/// Where the guest puts its response head.
type ResponseSlot = oneshot::Receiver<Result<Response<HyperOutgoingBody>, WasiErrorCode>>;

/// Everything a request needs to run a guest: the linked application, the slots that bound
/// how many run at once, and the instances kept for reuse.
pub(crate) struct Guests {
    pub(crate) app: Arc<App>,
    /// One permit per request running a guest; waiting for one is bounded by
    /// `instance_wait`.
    slots: Arc<Semaphore>,
    instance_wait: std::time::Duration,
    /// Requests one instance serves before it is dropped (1: a fresh one each time).
    reuse_max: u32,
    idle: HashMap<String, Mutex<Vec<Instance>>>,
    /// Idle instances kept per component: they hold pool slots, so one busy component's
    /// leftovers must not starve the others.
    idle_max: usize,
}

impl Guests {
    /// `http_components`: how many components HTTP routes use; `reserved`: pool slots
    /// others hold (one message handler per Redis subscription).
    pub(crate) fn new(
        app: Arc<App>,
        http_components: usize,
        reserved: usize,
        reuse_max: u32,
        instance_wait: std::time::Duration,
    ) -> Self {
        let instances_max = app.limits.instances_max as usize;
        let idle_max = (instances_max / (2 * http_components.max(1))).max(1);
        // Slots for requests: the pool, less what idle instances (when reused) and the
        // reserved handlers can hold, so a request with a permit always finds a free slot.
        let idle_slots = if reuse_max > 1 {
            idle_max * http_components
        } else {
            0
        };
        let request_slots = instances_max.saturating_sub(idle_slots + reserved).max(1);
        let idle = app
            .components
            .keys()
            .map(|id| (id.clone(), Mutex::new(Vec::new())))
            .collect();
        Self {
            app,
            slots: Arc::new(Semaphore::new(request_slots)),
            instance_wait,
            reuse_max,
            idle,
            idle_max,
        }
    }

    /// Run `req` through an instance of `component` and answer with what it responded.
    pub(crate) async fn run(
        self: &Arc<Self>,
        component_id: &str,
        component: &LoadedComponent,
        pre: &ProxyPre<StoreState>,
        req: Request<GuestBody>,
    ) -> Response<HyperOutgoingBody> {
        let metrics = crate::metrics::component(component_id);
        let Some(slot) = self.acquire_slot(component_id).await else {
            return at_instance_limit();
        };
        let Some(mut instance) = self.checkout(&metrics, component, pre).await else {
            return at_instance_limit();
        };
        self.app.arm_deadline(&mut instance.store);
        let (response, resources) = match hand_over(&mut instance.store, req) {
            Ok(handed) => handed,
            Err(e) => {
                tracing::warn!(component = component_id, error = %e, "cannot hand the request to the component");
                return problem(Problem::new(ErrorCode::Internal));
            }
        };
        let call = self.clone().call(metrics, instance, slot, resources);
        let run = start(Box::pin(call)).await;
        self.answer(component_id, response, run).await
    }

    /// A request slot, waiting at most `instance_wait`; `None` (counted) if every slot
    /// stayed busy that long (or the node is closing).
    async fn acquire_slot(&self, component_id: &str) -> Option<OwnedSemaphorePermit> {
        let acquired =
            tokio::time::timeout(self.instance_wait, self.slots.clone().acquire_owned()).await;
        match acquired {
            Ok(Ok(slot)) => Some(slot),
            _ => {
                guest_failure(component_id, "instance_wait");
                None
            }
        }
    }

    /// An idle instance of the component, or a new one; `None` (counted) if instantiating
    /// failed.
    async fn checkout(
        &self,
        metrics: &ComponentMetrics,
        component: &LoadedComponent,
        pre: &ProxyPre<StoreState>,
    ) -> Option<Instance> {
        let component_id = component.env.id.as_str();
        let reused = self
            .idle
            .get(component_id)
            .and_then(|idle| lock(idle).pop());
        if let Some(instance) = reused {
            metrics.reused();
            return Some(instance);
        }
        let started = Instant::now();
        let mut store = self.app.store(component);
        match pre.instantiate_async(&mut store).await {
            Ok(proxy) => {
                metrics.instantiated(started.elapsed());
                Some(Instance {
                    store,
                    proxy,
                    served: 0,
                })
            }
            Err(e) => {
                // With a request slot in hand the pool has room: this is rare.
                tracing::warn!(component = component_id, error = %e, "instantiation failed");
                guest_failure(component_id, "instantiation");
                None
            }
        }
    }

    /// The guest's task: run the handler under the wall clock, then keep the instance for
    /// reuse or count its failure.
    async fn call(
        self: Arc<Self>,
        metrics: Arc<ComponentMetrics>,
        instance: Instance,
        slot: OwnedSemaphorePermit,
        (req, out): HandedOver,
    ) -> wasmtime::Result<()> {
        // The slot is free again when the guest is done (or back among the idle). The store
        // is bound after it so that it drops first: its pool slot must be free before the
        // permit is.
        let _slot = slot;
        let Instance {
            mut store,
            proxy,
            served,
        } = instance;
        store.data_mut().reset_tally();
        // The epoch deadline stops a guest that computes; this one stops a guest that
        // waits (on a slow client's body, on an upstream), which epochs never see.
        let result = tokio::time::timeout(
            self.app.guest_wall_clock(),
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out),
        )
        .await
        .unwrap_or_else(|_| Err(self.app.deadline_error()));
        metrics.host_calls(&store.data().tally());
        let env = store.data().env.clone();
        let component_id = env.id.as_str();
        match &result {
            Ok(()) => self.park(
                component_id,
                Instance {
                    store,
                    proxy,
                    served: served + 1,
                },
            ),
            Err(e) => {
                let reason = if is_deadline(e) { "deadline" } else { "trap" };
                tracing::warn!(component = %component_id, reason, error = ?e, "guest failed");
                guest_failure(component_id, reason);
            }
        }
        result
    }

    /// Keep a healthy instance for the next request, while it has requests left and the
    /// component has idle room; otherwise it drops here.
    fn park(&self, component_id: &str, instance: Instance) {
        if instance.served >= self.reuse_max {
            return;
        }
        if let Some(idle) = self.idle.get(component_id) {
            let mut idle = lock(idle);
            if idle.len() < self.idle_max {
                idle.push(instance);
            }
        }
    }

    /// The guest's response head, or the problem that replaces it when the guest failed
    /// before sending one.
    async fn answer(
        &self,
        component_id: &str,
        response: ResponseSlot,
        run: GuestRun,
    ) -> Response<HyperOutgoingBody> {
        let failed =
            || problem(Problem::new(ErrorCode::Internal).with_detail("the component failed"));
        match response.await {
            Ok(Ok(response)) => coalesce_small_body(component_id, response).await,
            Ok(Err(code)) => {
                tracing::warn!(
                    component = component_id,
                    ?code,
                    "guest answered with an error code"
                );
                guest_failure(component_id, "error_code");
                failed()
            }
            // The guest finished (or died) without sending a response.
            Err(_) => match run.outcome().await {
                Some(Err(e)) if is_deadline(&e) => {
                    problem(Problem::new(ErrorCode::Internal).with_detail(format!(
                        "the component ran past its {} ms limit and was stopped",
                        self.app.limits.request_timeout.as_millis()
                    )))
                }
                // Counted by the run already.
                Some(Err(_)) => failed(),
                Some(Ok(())) | None => {
                    guest_failure(component_id, "no_response");
                    failed()
                }
            },
        }
    }
}

/// Polls the guest's run once, here: a guest that needs nothing but the CPU (a cache hit)
/// finishes within it, with no task to spawn and no other thread to wake for the answer.
/// One that waits (an upstream, a slow body, the client reading its response) goes on in
/// a task of its own, as every guest did before, so it runs to its end even if the client
/// goes away. A panic in this poll ends the run as a panic in its task would.
async fn start(
    mut call: Pin<Box<impl Future<Output = wasmtime::Result<()>> + Send + 'static>>,
) -> GuestRun {
    let first = std::future::poll_fn(|cx| {
        let poll = std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx)));
        Poll::Ready(poll)
    })
    .await;
    match first {
        Ok(Poll::Ready(result)) => GuestRun::Finished(Some(result)),
        Ok(Poll::Pending) => GuestRun::Running(tokio::spawn(call)),
        Err(_) => {
            tracing::error!("the guest's run panicked");
            GuestRun::Finished(None)
        }
    }
}

/// The store's call hook: counts every call from the guest into the host (imports and the
/// component model's built-ins; wasmtime calls it around each, so the count is exact).
pub(crate) fn count_host_call(
    mut store: StoreContextMut<'_, StoreState>,
    hook: CallHook,
) -> wasmtime::Result<()> {
    if matches!(hook, CallHook::CallingHost) {
        let calls = &mut store.data_mut().host_calls;
        calls.all = calls.all.saturating_add(1);
    }
    Ok(())
}

/// The request and the response outparam, as resources of the guest's store.
type HandedOver = (
    Resource<HostIncomingRequest>,
    Resource<HostResponseOutparam>,
);

/// Put the request into the guest's store, with an outparam that sends the response head
/// to the returned receiver.
fn hand_over(
    store: &mut Store<StoreState>,
    req: Request<GuestBody>,
) -> wasmtime::Result<(ResponseSlot, HandedOver)> {
    let (sender, receiver) = oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    Ok((receiver, (req, out)))
}

/// A poisoned lock only means a holder panicked while pushing or popping: the list is
/// still a list of healthy instances.
fn lock(idle: &Mutex<Vec<Instance>>) -> std::sync::MutexGuard<'_, Vec<Instance>> {
    idle.lock().unwrap_or_else(|p| p.into_inner())
}
