//! Prometheus metrics of one edge node. Names:
//! - `edge_requests_total{component,status,served_by}`, `edge_request_duration_seconds{component}`
//!   (time to the response head)
//! - `edge_cache_total{component,result}`: reads answered from the node's cache (`hit`) or
//!   fetched from the ledger (`miss`), as the component reports in `Tessera-Cache`
//! - `edge_kv_gets_total{component,result}`, `edge_kv_entries`
//! - `edge_instantiation_seconds{component}`, `edge_instance_reuses_total{component}`
//! - `edge_guest_failures_total{component,reason}`: traps, deadlines, missing responses,
//!   failed response bodies (`body`), requests that found no free instance slot in time
//!   (`instance_wait`)
//! - `edge_invalidations_total{component,outcome}`, `edge_redis_connected{channel}`,
//!   `edge_redis_resubscriptions_total{channel}`
//! - `edge_outbound_requests_total{component,method}`: every outbound HTTP request a guest
//!   makes that the manifest allows (sent, whatever came of it); `edge_outbound_denied_total`:
//!   the ones it does not allow
//!
//! They are served on the operations listener (`EDGE_METRICS_ADDR`), not the public port.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process-wide recorder, installed once.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
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
pub fn request_served<B>(component: &str, response: &http::Response<B>, elapsed: Duration) {
    let status = response.status().as_u16().to_string();
    let header = |name: &str| response.headers().get(name).map(|v| v.as_bytes());
    // Who answered: the edge alone (cache hits, refusals, sheds) or the ledger, relayed.
    let served_by = match header(tessera_domain::SERVED_BY_HEADER) {
        Some(b"edge") => "edge",
        Some(b"ledger") => "ledger",
        _ => "unknown",
    };
    metrics::counter!("edge_requests_total", "component" => component.to_owned(), "status" => status, "served_by" => served_by).increment(1);
    metrics::histogram!("edge_request_duration_seconds", "component" => component.to_owned())
        .record(elapsed.as_secs_f64());
    let cache = match header(tessera_domain::CACHE_HEADER) {
        Some(b"hit") => "hit",
        Some(b"miss") => "miss",
        Some(b"bypass") => "bypass",
        _ => return,
    };
    metrics::counter!("edge_cache_total", "component" => component.to_owned(), "result" => cache)
        .increment(1);
}
