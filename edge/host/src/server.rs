//! The HTTP side of a node: accept connections, route each request by the manifest's
//! routes to a component instance, stream the guest's response back; plus the host's own
//! `/health` and `/metrics`, the Redis triggers, and graceful shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use tessera_domain::{ErrorCode, Problem};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::config::HostConfig;
use crate::kv::KvStore;
use crate::manifest::Manifest;
use crate::redis_trigger::{self, Subscription};
use crate::routes::{Route, Router};
use crate::runtime::{is_deadline, App, Compiled, Entry, LoadedComponent, StoreState};
use crate::variables::AppVariables;

/// An instance kept for reuse, with the number of requests it has served.
struct Idle {
    store: Store<StoreState>,
    proxy: Proxy,
    served: u32,
}

/// A node, loaded and linked, not yet listening.
pub struct EdgeHost {
    app: Arc<App>,
    router: Router,
    config: HostConfig,
    idle: HashMap<String, Mutex<Vec<Idle>>>,
    /// Idle instances kept per component: they hold pool slots, so one busy component's
    /// leftovers must not starve the others.
    idle_max: usize,
    /// One permit per request running a guest; waiting for one is bounded by
    /// `config.instance_wait`.
    request_slots: Arc<tokio::sync::Semaphore>,
    subscriptions: Vec<Arc<Subscription>>,
    metrics: PrometheusHandle,
}

/// A node that is serving.
pub struct RunningEdge {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningEdge {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let in-flight requests finish (up to the grace period), stop the
    /// Redis subscriptions.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Wait until `signal` resolves, then stop.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        tokio::select! {
            () = signal => {}
            () = self.shutdown.cancelled() => {}
        }
        self.stop().await;
    }
}

impl EdgeHost {
    /// Read the manifest, resolve variables from the environment, compile and link.
    pub fn load(config: HostConfig) -> anyhow::Result<Self> {
        let manifest = Manifest::load(&config.manifest)?;
        let variables = AppVariables::from_env(&manifest)?;
        let compiled = Compiled::compile(&manifest, config.limits)?;
        Self::new(&compiled, manifest, variables, config)
    }

    /// Link already compiled components into a new node with its own key-value store.
    pub fn new(
        compiled: &Compiled,
        manifest: Manifest,
        variables: AppVariables,
        config: HostConfig,
    ) -> anyhow::Result<Self> {
        let kv = KvStore::new(config.kv_entries_max);
        let app = Arc::new(compiled.link(&manifest, variables, kv)?);
        let router = Router::new(
            manifest
                .http
                .iter()
                .map(|t| {
                    Ok((
                        Route::parse(&t.route).map_err(anyhow::Error::msg)?,
                        t.component.clone(),
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let subscriptions = manifest
            .redis
            .iter()
            .map(|t| {
                let address = manifest
                    .redis_address(t)
                    .context("Redis trigger without an address")?;
                Ok(Arc::new(Subscription {
                    address: app.variables.expand(address)?,
                    channel: app.variables.expand(&t.channel)?,
                    component: t.component.clone(),
                    connected: Default::default(),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let idle = app
            .components
            .keys()
            .map(|id| (id.clone(), Mutex::new(Vec::new())))
            .collect();
        let http_components = manifest
            .http
            .iter()
            .map(|t| &t.component)
            .collect::<std::collections::HashSet<_>>()
            .len();
        let idle_max = (config.limits.instances_max as usize / (2 * http_components.max(1))).max(1);
        // Slots for requests: the pool, less what idle instances (when reused) and one
        // message handler per subscription can hold, so a request with a permit always
        // finds a free slot.
        let idle_slots = if config.instance_reuse_max > 1 {
            idle_max * http_components
        } else {
            0
        };
        let request_slots = (config.limits.instances_max as usize)
            .saturating_sub(idle_slots + subscriptions.len())
            .max(1);
        Ok(Self {
            app,
            router,
            config,
            idle,
            idle_max,
            request_slots: Arc::new(tokio::sync::Semaphore::new(request_slots)),
            subscriptions,
            metrics: crate::metrics::recorder()?,
        })
    }

    /// Bind the configured address (port 0 picks one) and serve until stopped.
    pub async fn start(self) -> anyhow::Result<RunningEdge> {
        let listener = TcpListener::bind(self.config.addr)
            .await
            .with_context(|| format!("binding {}", self.config.addr))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let kv = self.app.kv.clone();
        let host = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for subscription in &host.subscriptions {
            tasks.spawn(redis_trigger::run(
                host.app.clone(),
                subscription.clone(),
                shutdown.clone(),
            ));
        }
        {
            let handle = host.metrics.clone();
            let cancel = shutdown.clone();
            let kv = kv.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
                            handle.run_upkeep();
                            metrics::gauge!("edge_kv_entries").set(kv.len() as f64);
                        }
                    }
                }
            });
        }
        let task = tokio::spawn(serve(host, listener, shutdown.clone(), tasks));
        Ok(RunningEdge {
            addr,
            shutdown,
            task,
        })
    }

    async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let path = req.uri().path().to_owned();
        match path.as_str() {
            "/health" => return self.health(),
            "/metrics" => {
                return text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            _ => {}
        }
        let Some((component_id, matched)) = self.router.route(&path) else {
            return problem(
                Problem::new(ErrorCode::NotFound).with_detail(format!("no route for {path}")),
            );
        };
        let component_id = component_id.to_owned();
        let Some(component) = self.app.components.get(&component_id) else {
            return problem(Problem::new(ErrorCode::Internal));
        };
        if let Some(len) = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > self.config.request_body_max_bytes {
                return problem(
                    Problem::new(ErrorCode::PayloadTooLarge).with_detail(format!(
                        "request bodies are limited to {} bytes",
                        self.config.request_body_max_bytes
                    )),
                );
            }
        }
        // The headers Spin gives every HTTP component.
        let full_url = format!(
            "http://{}{}",
            req.headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost"),
            req.uri()
        );
        let spin_headers = [
            ("spin-full-url", full_url),
            ("spin-path-info", matched.path_info.clone()),
            ("spin-matched-route", matched.template.to_owned()),
            (
                "spin-component-route",
                matched.template.trim_end_matches("/...").to_owned(),
            ),
            ("spin-raw-component-route", matched.template.to_owned()),
            ("spin-base-path", "/".to_owned()),
            ("spin-client-addr", client.to_string()),
        ];
        for (name, value) in spin_headers {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                req.headers_mut().insert(name, value);
            }
        }
        for (name, value) in &matched.params {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(format!("spin-path-match-{name}").as_bytes()),
                hyper::header::HeaderValue::from_str(value),
            ) {
                req.headers_mut().insert(name, value);
            }
        }
        if !req.headers().contains_key(hyper::header::HOST) {
            req.headers_mut().insert(
                hyper::header::HOST,
                hyper::header::HeaderValue::from_static("localhost"),
            );
        }

        let started = Instant::now();
        let response = self.run_guest(&component_id, component, req).await;
        let status = response.status().as_u16().to_string();
        // Who answered: the edge alone (cache hits, refusals, sheds) or the ledger, relayed.
        let served_by = match response
            .headers()
            .get("tessera-served-by")
            .map(|v| v.as_bytes())
        {
            Some(b"edge") => "edge",
            Some(b"ledger") => "ledger",
            _ => "unknown",
        };
        metrics::counter!("edge_requests_total", "component" => component_id.clone(), "status" => status, "served_by" => served_by).increment(1);
        metrics::histogram!("edge_request_duration_seconds", "component" => component_id.clone())
            .record(started.elapsed().as_secs_f64());
        if let Some(result) = response
            .headers()
            .get("tessera-cache")
            .and_then(|v| v.to_str().ok())
            .filter(|v| matches!(*v, "hit" | "miss"))
        {
            metrics::counter!("edge_cache_total", "component" => component_id, "result" => result.to_owned()).increment(1);
        }
        response
    }

    async fn run_guest(
        self: &Arc<Self>,
        component_id: &str,
        component: &LoadedComponent,
        req: Request<Incoming>,
    ) -> Response<HyperOutgoingBody> {
        let Entry::Http(pre) = &component.entry else {
            return problem(Problem::new(ErrorCode::Internal));
        };
        let slot = match tokio::time::timeout(
            self.config.instance_wait,
            self.request_slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(slot)) => slot,
            // Every slot stayed busy for the whole wait (or the node is closing).
            _ => {
                guest_failure(component_id, "instance_wait");
                return at_instance_limit();
            }
        };
        let reused = self
            .idle
            .get(component_id)
            .and_then(|idle| idle.lock().unwrap_or_else(|p| p.into_inner()).pop());
        let Idle {
            mut store,
            proxy,
            served,
        } = match reused {
            Some(idle) => {
                metrics::counter!("edge_instance_reuses_total", "component" => component_id.to_owned()).increment(1);
                idle
            }
            None => {
                let started = Instant::now();
                let mut store = self.app.store(component);
                match pre.instantiate_async(&mut store).await {
                    Ok(proxy) => {
                        metrics::histogram!("edge_instantiation_seconds", "component" => component_id.to_owned())
                            .record(started.elapsed().as_secs_f64());
                        Idle {
                            store,
                            proxy,
                            served: 0,
                        }
                    }
                    Err(e) => {
                        // With a request slot in hand the pool has room: this is rare.
                        tracing::warn!(component = component_id, error = %e, "instantiation failed");
                        guest_failure(component_id, "instantiation");
                        return at_instance_limit();
                    }
                }
            }
        };
        self.app.arm_deadline(&mut store);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let resources = (|| {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, req)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok::<_, wasmtime::Error>((req, out))
        })();
        let (wasi_req, out) = match resources {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(component = component_id, error = %e, "cannot hand the request to the component");
                return problem(Problem::new(ErrorCode::Internal));
            }
        };
        let host = self.clone();
        let id = component_id.to_owned();
        let reuse_max = self.config.instance_reuse_max;
        // The guest may keep running after it sends the response head (streaming the body),
        // so it runs in its own task.
        let task = tokio::spawn(async move {
            // The slot is free again when the guest is done (or back among the idle). The
            // store is rebound after it so that it drops first: its pool slot must be free
            // before the permit is.
            let _slot = slot;
            let (mut store, proxy) = (store, proxy);
            // The epoch deadline stops a guest that computes; this one stops a guest that
            // waits (on a slow client's body, on an upstream), which epochs never see.
            let result = tokio::time::timeout(
                host.app.guest_wall_clock(),
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, wasi_req, out),
            )
            .await
            .unwrap_or_else(|_| Err(host.app.deadline_error()));
            match &result {
                Ok(()) if served + 1 < reuse_max => {
                    if let Some(idle) = host.idle.get(&id) {
                        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
                        if idle.len() < host.idle_max {
                            idle.push(Idle {
                                store,
                                proxy,
                                served: served + 1,
                            });
                        }
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    let reason = if is_deadline(e) { "deadline" } else { "trap" };
                    tracing::warn!(component = %id, reason, error = ?e, "guest failed");
                    guest_failure(&id, reason);
                }
            }
            result
        });
        match receiver.await {
            Ok(Ok(response)) => coalesce_small_body(component_id, response).await,
            Ok(Err(code)) => {
                tracing::warn!(
                    component = component_id,
                    ?code,
                    "guest answered with an error code"
                );
                guest_failure(component_id, "error_code");
                problem(Problem::new(ErrorCode::Internal).with_detail("the component failed"))
            }
            // The guest finished (or died) without sending a response.
            Err(_) => match task.await {
                Ok(Err(e)) if is_deadline(&e) => {
                    problem(Problem::new(ErrorCode::Internal).with_detail(format!(
                        "the component ran past its {} ms limit and was stopped",
                        self.app.limits.request_timeout.as_millis()
                    )))
                }
                // Counted by the task already.
                Ok(Err(_)) => {
                    problem(Problem::new(ErrorCode::Internal).with_detail("the component failed"))
                }
                Ok(Ok(())) | Err(_) => {
                    guest_failure(component_id, "no_response");
                    problem(Problem::new(ErrorCode::Internal).with_detail("the component failed"))
                }
            },
        }
    }

    fn health(&self) -> Response<HyperOutgoingBody> {
        let redis: Vec<_> = self
            .subscriptions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "channel": s.channel,
                    "component": s.component,
                    "subscribed": s.connected.load(std::sync::atomic::Ordering::Relaxed),
                })
            })
            .collect();
        let body = serde_json::json!({
            "status": "ok",
            "application": self.app.manifest.application.name,
            "components": self.app.components.len(),
            "kv_entries": self.app.kv.len(),
            "redis": redis,
        });
        text(StatusCode::OK, "application/json", body.to_string())
    }
}

async fn serve(
    host: Arc<EdgeHost>,
    listener: TcpListener,
    shutdown: CancellationToken,
    mut tasks: tokio::task::JoinSet<()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client that trickles its request head must not hold a connection (and, with a body,
    // an instance) for ever; guests have their own deadline for the body.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(host.app.limits.request_timeout);
    loop {
        let (stream, client) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        let service = hyper::service::service_fn(move |req| {
            let host = host.clone();
            async move { Ok::<_, Infallible>(host.handle(req, client).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(host.config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with connections still open");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

fn guest_failure(component: &str, reason: &'static str) {
    metrics::counter!("edge_guest_failures_total", "component" => component.to_owned(), "reason" => reason)
        .increment(1);
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// A problem+json answered by the host itself (no component ran, or it failed).
fn problem(mut problem: Problem) -> Response<HyperOutgoingBody> {
    problem.served_by = Some("edge".into());
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let mut response = text(status, tessera_domain::problem::PROBLEM_CONTENT_TYPE, body);
    response.headers_mut().insert(
        "tessera-served-by",
        hyper::header::HeaderValue::from_static("edge"),
    );
    if problem.code == ErrorCode::Overloaded {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    response
}

/// 503 + Retry-After: every instance slot is busy.
fn at_instance_limit() -> Response<HyperOutgoingBody> {
    problem(
        Problem::new(ErrorCode::Overloaded)
            .with_detail("the edge node is at its instance limit; retry shortly"),
    )
}

/// Bodies up to this size are collected before the head is written.
const COALESCE_BODY_MAX_BYTES: usize = 64 * 1024;
/// How long to wait for the body's next frame before streaming instead: a component that
/// writes its body at once is never this slow; one that streams or polls must not be held.
const COALESCE_FRAME_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// A component sends its response head before it writes the body, so hyper would write the
/// head, then each body chunk, in separate system calls: measured as ~14% of the node's CPU
/// under the edge read benchmark. A small body written at once (all of ours) is collected
/// first, so head and body leave in one write with a Content-Length; anything larger or
/// slower streams on after the part collected.
async fn coalesce_small_body(
    component_id: &str,
    response: Response<HyperOutgoingBody>,
) -> Response<HyperOutgoingBody> {
    let (parts, mut body) = response.into_parts();
    let mut collected = bytes::BytesMut::new();
    loop {
        let Ok(frame) = tokio::time::timeout(COALESCE_FRAME_WAIT, body.frame()).await else {
            return streamed(parts, collected, None, body);
        };
        match frame {
            None => return Response::from_parts(parts, full(collected.freeze())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if collected.len() + data.len() <= COALESCE_BODY_MAX_BYTES => {
                    collected.extend_from_slice(&data);
                }
                // Too large to hold, or trailers: stream from here on.
                Ok(data) => return streamed(parts, collected, Some(Frame::data(data)), body),
                Err(trailers) => return streamed(parts, collected, Some(trailers), body),
            },
            Some(Err(e)) => {
                // Nothing was sent yet, so the client gets a clean error, not a cut body.
                tracing::warn!(component = component_id, error = %e, "the component's response body failed");
                guest_failure(component_id, "body");
                return problem(
                    Problem::new(ErrorCode::Internal).with_detail("the component failed"),
                );
            }
        }
    }
}

/// `collected`, then `next`, then the rest of `body`.
fn streamed(
    parts: hyper::http::response::Parts,
    collected: bytes::BytesMut,
    next: Option<Frame<Bytes>>,
    body: HyperOutgoingBody,
) -> Response<HyperOutgoingBody> {
    use futures_util::StreamExt as _;
    let head = std::iter::once(Frame::data(collected.freeze()))
        .chain(next)
        .map(Ok);
    let frames = futures_util::stream::iter(head).chain(http_body_util::BodyStream::new(body));
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
