//! The HTTP side of a node: accept connections (at most `EDGE_CONNECTIONS_MAX`, each closed
//! after `EDGE_IDLE_TIMEOUT_MS` without a request head), route each request by the
//! manifest's routes to a component (run by [`crate::guest`]) once its body has arrived
//! whole ([`crate::body`]), with the headers Spin adds; start the Redis triggers and the
//! operations listener ([`crate::ops`]); shut down gracefully.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};
use tessera_domain::{ErrorCode, Problem};
use tessera_serving::{ConnectionPolicy, OnShutdown, Report};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::body::{read_request_body, BodyReadError, GuestBody};
use crate::config::HostConfig;
use crate::guest::Guests;
use crate::kv::KvStore;
use crate::manifest::Manifest;
use crate::ops::{self, Ops};
use crate::redis_trigger::{self, Subscription};
use crate::respond::{body_unreadable, payload_too_large, problem, request_timeout};
use crate::routes::{Route, RouteMatch, Router};
use crate::runtime::{App, Compiled, Entry};
use crate::variables::AppVariables;

/// Answered by the host on the public port too, ahead of the manifest's routes.
const HEALTH_PATH: &str = "/health";
/// The largest request head (request line and headers) read from a client; past it hyper
/// answers `431` and closes. Unset, hyper's bound is its read buffer (~400 KB, more than
/// any real client sends), which every open connection could be made to hold.
const HEAD_MAX_BYTES: usize = 64 << 10;

/// A node, loaded and linked, not yet listening.
pub struct EdgeHost {
    router: Router,
    config: HostConfig,
    guests: Arc<Guests>,
    ops: Arc<Ops>,
}

/// A node that is serving.
pub struct RunningEdge {
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningEdge {
    /// The application's (public) address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operations listener's address (`/metrics`, `/health`).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Stop accepting, let in-flight requests finish (up to the grace period), stop the
    /// Redis subscriptions and the operations listener.
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
        let router = router(&manifest)?;
        let subscriptions = subscriptions(&manifest, &app)?;
        let http_components = manifest
            .http
            .iter()
            .map(|t| &t.component)
            .collect::<HashSet<_>>()
            .len();
        let guests = Guests::new(
            app.clone(),
            http_components,
            subscriptions.len(),
            config.instance_reuse_max,
            config.instance_wait,
        );
        let ops = Ops {
            app,
            subscriptions,
            metrics: crate::metrics::recorder()?,
        };
        Ok(Self {
            router,
            config,
            guests: Arc::new(guests),
            ops: Arc::new(ops),
        })
    }

    /// Bind the configured addresses (port 0 picks one) and serve until stopped.
    pub async fn start(self) -> anyhow::Result<RunningEdge> {
        let listener = bind(self.config.addr).await?;
        let ops_listener = bind(self.config.metrics_addr).await?;
        let addr = listener.local_addr()?;
        let metrics_addr = ops_listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for subscription in &self.ops.subscriptions {
            tasks.spawn(redis_trigger::run(
                self.ops.app.clone(),
                subscription.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(ops::serve(self.ops.clone(), ops_listener, shutdown.clone()));
        tasks.spawn(ops::upkeep(self.ops.clone(), shutdown.clone()));
        let task = tokio::spawn(serve(Arc::new(self), listener, shutdown.clone(), tasks));
        Ok(RunningEdge {
            addr,
            metrics_addr,
            shutdown,
            task,
        })
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let path = req.uri().path().to_owned();
        if path == HEALTH_PATH {
            return self.ops.health();
        }
        let Some((component_id, matched)) = self.router.route(&path) else {
            return problem(
                Problem::new(ErrorCode::NotFound).with_detail(format!("no route for {path}")),
            );
        };
        let Some(component) = self.guests.app.components.get(component_id) else {
            return problem(Problem::new(ErrorCode::Internal));
        };
        let Entry::Http(pre) = &component.entry else {
            return problem(Problem::new(ErrorCode::Internal));
        };
        let started = Instant::now();
        // The body first, then a slot: a slow client must not hold an instance.
        let response = match self.read_body(req).await {
            Ok(mut req) => {
                add_spin_headers(&mut req, &matched, client);
                self.guests.run(component_id, component, pre, req).await
            }
            Err(refusal) => refusal,
        };
        crate::metrics::request_served(component_id, &response, started.elapsed());
        response
    }

    /// The request with its whole body, or the answer that refuses it: 413 past the body
    /// limit (up front when the Content-Length says so), 408 past the body-read timeout.
    async fn read_body(
        &self,
        req: Request<Incoming>,
    ) -> Result<Request<GuestBody>, Response<HyperOutgoingBody>> {
        let body_max_bytes = self.config.request_body_max_bytes;
        if declared_length(&req).is_some_and(|length| length > body_max_bytes) {
            return Err(payload_too_large(body_max_bytes));
        }
        let (parts, body) = req.into_parts();
        match read_request_body(body, body_max_bytes, self.config.body_read_timeout).await {
            Ok(body) => Ok(Request::from_parts(parts, body)),
            Err(BodyReadError::TooLarge(max_bytes)) => Err(payload_too_large(max_bytes)),
            Err(BodyReadError::TimedOut(timeout)) => Err(request_timeout(timeout)),
            Err(e @ BodyReadError::Broken(_)) => {
                tracing::debug!(error = %e, "request body broken off");
                Err(body_unreadable())
            }
        }
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// The manifest's HTTP routes, by Spin's precedence.
fn router(manifest: &Manifest) -> anyhow::Result<Router> {
    let routes = manifest
        .http
        .iter()
        .map(|t| {
            let route = Route::parse(&t.route).map_err(anyhow::Error::msg)?;
            Ok((route, t.component.clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Router::new(routes))
}

/// The manifest's Redis triggers, with their variables expanded.
fn subscriptions(manifest: &Manifest, app: &App) -> anyhow::Result<Vec<Arc<Subscription>>> {
    manifest
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
        .collect()
}

/// The body length the client announced, if it announced one.
fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The headers Spin gives every HTTP component (and a `Host`, which wasi-http requires).
/// Per request: names are constants, values are borrowed until copied into the map once,
/// and the map grows once.
fn add_spin_headers<B>(req: &mut Request<B>, matched: &RouteMatch<'_>, client: SocketAddr) {
    const FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
    const PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
    const MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
    const COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
    const RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
    const BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
    const CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let full_url = format!("http://{host}{}", req.uri());
    let client = client.to_string();
    let spin_headers = [
        (FULL_URL, full_url.as_str()),
        (PATH_INFO, matched.path_info.as_str()),
        (MATCHED_ROUTE, matched.template),
        (COMPONENT_ROUTE, matched.template.trim_end_matches("/...")),
        (RAW_COMPONENT_ROUTE, matched.template),
        (BASE_PATH, "/"),
        (CLIENT_ADDR, client.as_str()),
    ];
    let headers = req.headers_mut();
    headers.reserve(spin_headers.len() + matched.params.len() + 1);
    for (name, value) in spin_headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &matched.params {
        let name = HeaderName::from_bytes(format!("spin-path-match-{name}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    if !headers.contains_key(hyper::header::HOST) {
        headers.insert(hyper::header::HOST, HeaderValue::from_static("localhost"));
    }
}

/// Accept until `shutdown`, then let open connections finish their requests for up to the
/// grace period, then stop the background `tasks`.
async fn serve(
    host: Arc<EdgeHost>,
    listener: TcpListener,
    shutdown: CancellationToken,
    mut tasks: JoinSet<()>,
) {
    let policy = ConnectionPolicy {
        header_read_timeout: host.config.idle_timeout,
        head_max_bytes: HEAD_MAX_BYTES,
        connections_max: host.config.connections_max.get(),
        nodelay: true,
        on_shutdown: OnShutdown::Drain,
        report: PublicConnections,
    };
    let shutdown_grace = host.config.shutdown_grace;
    let drain = tessera_serving::serve(listener, policy, shutdown.cancelled(), |client| {
        let host = host.clone();
        hyper::service::service_fn(move |req| {
            let host = host.clone();
            async move { Ok::<_, Infallible>(host.handle(req, client).await) }
        })
    })
    .await;
    if tokio::time::timeout(shutdown_grace, drain.finish())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with connections still open");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// The public listener's connection metrics and logs. At `EDGE_CONNECTIONS_MAX` a new
/// connection is closed at once (the client or its load balancer learns at once and can
/// go elsewhere); `/health` on the operations listener is not behind this bound.
#[derive(Debug, Clone, Copy)]
struct PublicConnections;

impl Report for PublicConnections {
    fn accept_failed(&self, error: &std::io::Error) {
        tracing::warn!(error = %error, "accept failed");
    }

    fn opened(&self) {
        metrics::gauge!("edge_connections_open").increment(1.0);
    }

    fn refused(&self, peer: SocketAddr) {
        tracing::debug!(%peer, "at the connection limit: connection closed");
        metrics::counter!("edge_connections_refused_total").increment(1);
    }

    fn closed(&self, error: Option<&hyper::Error>) {
        if let Some(e) = error {
            tracing::debug!(error = %e, "connection closed with an error");
        }
        metrics::gauge!("edge_connections_open").decrement(1.0);
    }
}
