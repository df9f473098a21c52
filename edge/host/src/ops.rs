//! The node's operations side: a listener of its own (`EDGE_METRICS_ADDR`, loopback by
//! default) for `/metrics` and `/health`, so Prometheus text is never published on the
//! application's port; `/health` is answered on the public port too (load balancers probe
//! it there). Plus the periodic upkeep of the metrics.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use tessera_domain::{ErrorCode, Problem};
use tessera_serving::{ConnectionPolicy, OnShutdown, Report};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::redis_trigger::Subscription;
use crate::respond::{problem, text};
use crate::runtime::App;

/// How often histograms are compacted and the store's size is sampled.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// A scraper that trickles its request head must not hold a connection for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapers and probes open a handful of connections; past this a new one is closed at
/// once, so the operations listener cannot be made to hold the node's descriptors (the
/// ledger's operations listener has the same bound).
const CONNECTIONS_MAX: usize = 64;
/// A request head (request line and headers) larger than this is answered 431.
const HEAD_MAX_BYTES: usize = 16 << 10;
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// `/health`'s `status` while every Redis subscription is live.
const STATUS_OK: &str = "ok";
/// `/health`'s `status` while a Redis subscription is down: the node still answers
/// correctly (availability reads go through to the ledger once the freshness lease
/// lapses), so it stays in rotation — HTTP 200, not 503: every node shares the one Redis,
/// and a 503 would take them all out at once (or have them restarted, which helps
/// nothing). Alert on this status or on `edge_redis_connected`.
const STATUS_DEGRADED: &str = "degraded";

/// What the operations endpoints report on.
pub struct Ops {
    pub app: Arc<App>,
    pub subscriptions: Vec<Arc<Subscription>>,
    pub metrics: PrometheusHandle,
}

impl Ops {
    /// `GET /health`: the application, its size and each Redis subscription's state; the
    /// status is `degraded` while any subscription is down (always HTTP 200: see
    /// [`STATUS_DEGRADED`]).
    pub fn health(&self) -> Response<HyperOutgoingBody> {
        let subscribed = |s: &Subscription| s.connected.load(Ordering::Relaxed);
        let redis: Vec<_> = self
            .subscriptions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "channel": s.channel,
                    "component": s.component,
                    "subscribed": subscribed(s),
                })
            })
            .collect();
        let all_subscribed = self.subscriptions.iter().all(|s| subscribed(s));
        let body = serde_json::json!({
            "status": if all_subscribed { STATUS_OK } else { STATUS_DEGRADED },
            "application": self.app.manifest.application.name,
            "components": self.app.components.len(),
            "kv_entries": self.app.kv.len(),
            "redis": redis,
        });
        text(StatusCode::OK, "application/json", body.to_string())
    }

    fn handle(&self, req: &Request<Incoming>) -> Response<HyperOutgoingBody> {
        match req.uri().path() {
            "/metrics" => text(
                StatusCode::OK,
                PROMETHEUS_CONTENT_TYPE,
                self.metrics.render(),
            ),
            "/health" => self.health(),
            path => problem(
                Problem::new(ErrorCode::NotFound)
                    .with_detail(format!("the operations listener has no {path}")),
            ),
        }
    }
}

/// Serve the operations endpoints on `listener` until `shutdown`. Connections are not
/// drained on shutdown: a scrape cut short is simply retried by the scraper.
pub async fn serve(ops: Arc<Ops>, listener: TcpListener, shutdown: CancellationToken) {
    let policy = ConnectionPolicy {
        header_read_timeout: HEADER_READ_TIMEOUT,
        head_max_bytes: HEAD_MAX_BYTES,
        connections_max: CONNECTIONS_MAX,
        nodelay: false,
        on_shutdown: OnShutdown::Cut,
        report: OpsConnections,
    };
    // Cut: nothing is left to drain.
    let _cut = tessera_serving::serve(listener, policy, shutdown.cancelled(), |_| {
        let ops = ops.clone();
        hyper::service::service_fn(move |req| {
            let response = ops.handle(&req);
            async move { Ok::<_, Infallible>(response) }
        })
    })
    .await;
}

/// The operations listener's logs; it keeps no connection metrics and refuses past
/// [`CONNECTIONS_MAX`] silently.
#[derive(Debug, Clone, Copy)]
struct OpsConnections;

impl Report for OpsConnections {
    fn accept_failed(&self, error: &std::io::Error) {
        tracing::warn!(error = %error, "operations listener: accept failed");
    }

    fn opened(&self) {}

    fn refused(&self, _peer: std::net::SocketAddr) {}

    fn closed(&self, error: Option<&hyper::Error>) {
        if let Some(e) = error {
            tracing::debug!(error = %e, "operations connection closed with an error");
        }
    }
}

/// Every [`UPKEEP_INTERVAL`]: compact the histograms, drop the rate-limit counters of ended
/// windows (so they never pile up between floods) and sample the store's size.
pub async fn upkeep(ops: Arc<Ops>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(UPKEEP_INTERVAL) => {
                ops.metrics.run_upkeep();
                let now_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let swept = ops.app.kv.sweep_stale_windows(now_s);
                metrics::counter!("edge_kv_rate_limit_swept_total").increment(swept as u64);
                metrics::gauge!("edge_kv_entries").set(ops.app.kv.len() as f64);
                metrics::gauge!("edge_kv_rate_limit_counters").set(ops.app.kv.counters() as f64);
            }
        }
    }
}
