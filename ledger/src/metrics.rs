//! Prometheus metrics: the recorder, the per-route HTTP middleware, and the `/metrics`
//! handler. Domain metrics (holds, batches, outbox) are recorded where they happen.
//!
//! `/metrics` is served by the operations listener ([`router`] on `METRICS_ADDR`,
//! loopback by default), never the public one: route names, volumes and shed counts are
//! for operators, not for whoever can reach the API.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tessera_domain::ErrorCode;

use crate::error::ApiError;

/// Latency buckets in seconds: sub-millisecond to the request timeout.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Batch size buckets: powers of two up to the largest sensible batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process-wide recorder once (tests start many ledgers in one process) and
/// returns its handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("hold_batch_size".into()), BATCH_BUCKETS)
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter queues every histogram sample until upkeep folds it into the buckets;
/// without this task an unscraped ledger's memory would grow with every request.
pub async fn upkeep(handle: PrometheusHandle, cancel: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(UPKEEP_INTERVAL) => handle.run_upkeep(),
        }
    }
}

/// Records `http_requests_total` and `http_request_duration_seconds` by route template
/// (never the raw path: ids would explode the label space) and origin (`edge`/`direct`).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let origin = request
        .extensions()
        .get::<crate::origin::Origin>()
        .map_or("direct", |o| o.as_str());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status),
        ("origin", origin.to_owned()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The operations listener's routes: `GET /metrics`, and problem+json for anything else.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .fallback(|| async { ApiError::client(ErrorCode::NotFound, "no such route") })
        .with_state(handle)
}

/// `GET /metrics`: Prometheus text format (on the operations listener, `METRICS_ADDR`).
pub(crate) async fn render(State(handle): State<PrometheusHandle>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response()
}
