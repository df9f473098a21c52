//! The scenarios of the benchmark report, each against the baseline it is judged by.
//!
//! The steps more than one scenario takes live here, once: a ledger with edge nodes in
//! front of it ([`Stand`]), one closed-loop slice on one server and the running total of
//! slices, the edge's requests to the ledger, and reading (or waiting for) a zone's
//! availability.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, Call, Figures, Targets, Workload};
use crate::stack::{start_edges, Edge, Env, Ledger};

pub mod checkin;
pub mod checkout;
pub mod edge_reads;
pub mod flash_sale;
pub mod geo;
pub mod invalidation;
pub mod mixed_day;
pub mod queue;
pub mod ratelimit;
pub mod scale;
pub mod seats;
pub mod sell_out;
pub mod slow_clients;
pub mod storefront;
pub mod webhooks;

/// A ledger `name` on a fresh database with edge nodes in front of it, named
/// `{name}-edge-0`, `{name}-edge-1`, …
pub struct Stand {
    pub ledger: Ledger,
    pub edges: Vec<Edge>,
}

impl Stand {
    pub async fn start(env: &Env, name: &str, edges: usize) -> anyhow::Result<Self> {
        let ledger = Ledger::start(env, name, &[]).await?;
        let edges = start_edges(env, &format!("{name}-edge"), &ledger, edges).await?;
        Ok(Self { ledger, edges })
    }

    /// The edges' `host:port`s, in order: load spread over every edge.
    pub fn edge_targets(&self) -> Targets {
        Targets::new(self.edges.iter().map(|e| e.authority.clone()).collect())
    }

    /// Stops the edges, then the ledger (dropping its database).
    pub async fn stop(self) -> anyhow::Result<()> {
        for edge in self.edges {
            edge.stop().await;
        }
        self.ledger.stop().await
    }
}

/// One closed-loop slice of `clients` clients against the single server `authority`.
pub async fn slice_on<W: Workload>(
    authority: &str,
    workload: Arc<W>,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Figures> {
    let targets = Targets::new(vec![authority.to_owned()]);
    load::closed_loop(&targets, workload, clients, warmup, window).await
}

/// Adds a slice to the running total of its configuration (the first slice starts it).
pub fn add_slice(total: &mut Option<Figures>, slice: Figures) -> anyhow::Result<()> {
    *total = Some(match total.take() {
        Some(sum) => sum.absorb(&slice)?,
        None => slice,
    });
    Ok(())
}

/// Requests edges sent to `ledger` on `route` (the route template), from its `/metrics`.
pub async fn edge_requests(env: &Env, ledger: &Ledger, route: &str) -> anyhow::Result<f64> {
    ledger
        .metric(
            env,
            "http_requests_total",
            &[("route", route), ("origin", "edge")],
        )
        .await
}

/// `available` of `zone_id` in an availability document.
pub fn zone_available(body: &[u8], zone_id: &str) -> Option<i64> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc["zones"]
        .as_array()?
        .iter()
        .find(|z| z["zone_id"] == zone_id)?["available"]
        .as_i64()
}

/// Polls `path` (an availability document) through `client`, `pause` apart, until
/// `zone_id`'s availability satisfies `shows`: the time since `since` when it did, or
/// `None` once `deadline` has passed. Failed reads are polled again.
pub async fn watch_zone(
    client: &mut load::Client,
    path: &str,
    zone_id: &str,
    shows: impl Fn(i64) -> bool,
    since: Instant,
    deadline: Instant,
    pause: Duration,
) -> Option<Duration> {
    while Instant::now() < deadline {
        if let Ok(answer) = client.send(&Call::get(0, path.to_owned())).await {
            if zone_available(&answer.body, zone_id).is_some_and(&shows) {
                return Some(since.elapsed());
            }
        }
        tokio::time::sleep(pause).await;
    }
    None
}
