//! Scenario 4: invalidation latency. One change at a time is committed at the ledger (a
//! hold of one ticket, straight at the ledger); from its 201, every edge node is polled
//! until it shows the new count. Once through one edge process, once through four.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::load::{self, histogram, quantile_ms, Call};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::scenarios::{edge_requests, watch_zone, Stand};
use crate::stack::{Edge, Env, Ledger};
use crate::workloads::hold_call;
use crate::{Plan, Progress};

const EDGE_COUNTS: [usize; 2] = [1, 4];
/// A change not visible after this long counts as missed.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of one edge: bounds the measurement's resolution (~1 ms).
const POLL_PAUSE: Duration = Duration::from_micros(500);
const STOCK: i32 = 1_000_000;
/// Progress is shown every this many changes.
const PROGRESS_EVERY: usize = 50;
/// The goal: every edge shows a change within this long at p99.
const GOAL_P99_MS: f64 = 50.0;
/// The route of the reads edges would make if a change did not arrive by push.
const AVAILABILITY_ROUTE: &str = "/v1/shows/{show_id}/availability";
/// The percentiles of the chart's lines.
const PERCENTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Commit-to-visible latencies through one number of edges.
struct Latencies {
    edges: usize,
    /// µs, over changes every edge showed in time.
    all_edges: Histogram<u64>,
    /// Changes some edge did not show within `VISIBLE_TIMEOUT`.
    missed: u64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("invalidation", "4. Invalidation latency");
    progress.step("invalidation: starting a ledger and 4 edges");
    let stand = Stand::start(env, "invalidation", EDGE_COUNTS[EDGE_COUNTS.len() - 1]).await?;
    let reads_before = edge_requests(env, &stand.ledger, AVAILABILITY_ROUTE).await?;
    let mut table = Table::new(
        "Commit at the ledger → visible at every edge (ms)",
        &[
            "edges",
            "changes",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "missed (> 5 s)",
        ],
    );
    let (mut series, mut results) = (Vec::new(), Vec::new());
    for &edge_count in &EDGE_COUNTS {
        let edges = &stand.edges[..edge_count];
        let latencies = measure(env, plan, progress, &stand.ledger, edges).await?;
        table.row(latencies.row(plan));
        let p99 = latencies.q(0.99);
        section.goal(
            &format!("invalidation.p99_{edge_count}_edges"),
            &format!("p99 < 50 ms through {edge_count} edge process(es)"),
            format!("{} ms", ms(p99)),
            p99 < GOAL_P99_MS && latencies.missed == 0,
        );
        series.push(latencies.series());
        results.push(latencies.data(plan));
    }
    // The edges saw every change by push: they should not have refetched from the ledger.
    let refetches = edge_requests(env, &stand.ledger, AVAILABILITY_ROUTE).await?
        - reads_before
        - EDGE_COUNTS.iter().sum::<usize>() as f64;
    section.notes.push(format!(
        "Each change: a 1-ticket hold committed at the ledger; from its 201, every edge is polled (a pause of {} µs between polls, so figures are ±~1 ms) \
         until it shows the new count. The path: ledger commit → outbox row → relay → Redis pub/sub → each edge's invalidator component → the node's cache. \
         Availability reads the edges made at the ledger beyond the first fill: {} (0 means every change arrived by push).",
        POLL_PAUSE.as_micros(),
        count(refetches.max(0.0))
    ));
    section.tables.push(table);
    section.charts.push(Chart {
        file: "invalidation-latency.svg".to_owned(),
        title: "Invalidation latency by percentile (ms)".to_owned(),
        x_label: "percentile".to_owned(),
        y_label: "ms".to_owned(),
        log_y: false,
        kind: ChartKind::Lines,
        series,
    });
    section.data = json!({"runs": results, "edge_refetches": refetches});
    stand.stop().await?;
    Ok(section)
}

/// The plan's changes, one at a time, on a fresh zone that `edges` have cached: for each,
/// from the ledger's 201 until the last of `edges` shows it.
async fn measure(
    env: &Env,
    plan: &Plan,
    progress: &Progress,
    ledger: &Ledger,
    edges: &[Edge],
) -> anyhow::Result<Latencies> {
    let edge_count = edges.len();
    let ids = ledger
        .create_event(env, &format!("invalidation-{edge_count}"), 1, STOCK)
        .await?;
    let (show, zone) = (ids.show_id.clone(), ids.zone_ids[0].clone());
    let avail_path = format!("/v1/shows/{show}/availability");
    let mut clients: Vec<load::Client> = edges
        .iter()
        .map(|e| load::Client::new(&e.authority))
        .collect();
    for client in &mut clients {
        client.send(&Call::get(0, avail_path.clone())).await?;
    }
    let mut ledger_client = load::Client::new(&ledger.authority);
    let mut latencies = Latencies {
        edges: edge_count,
        all_edges: histogram(),
        missed: 0,
    };
    for change in 0..plan.invalidation_changes {
        if change % PROGRESS_EVERY == 0 {
            progress.step(&format!(
                "invalidation: {edge_count} edge(s), change {change}/{}",
                plan.invalidation_changes
            ));
        }
        let hold = hold_call(0, &show, &zone, 1, &format!("inv-{edge_count}-{change}"));
        let answer = ledger_client.send(&hold).await?;
        if answer.status != 201 {
            anyhow::bail!("hold {change} at the ledger answered {}", answer.status);
        }
        let committed = Instant::now();
        let expected = i64::from(STOCK) - change as i64 - 1;
        match visible_everywhere(&mut clients, &avail_path, &zone, expected, committed).await {
            Some(latency) => {
                latencies
                    .all_edges
                    .saturating_record(latency.as_micros().max(1) as u64);
            }
            None => latencies.missed += 1,
        }
    }
    Ok(latencies)
}

/// Polls every edge at once until each shows at most `expected` available: the time from
/// `committed` until the last one did (`None` if one did not within `VISIBLE_TIMEOUT`).
async fn visible_everywhere(
    clients: &mut [load::Client],
    avail_path: &str,
    zone: &str,
    expected: i64,
    committed: Instant,
) -> Option<Duration> {
    let deadline = committed + VISIBLE_TIMEOUT;
    let polls = clients.iter_mut().map(|client| {
        let shown = move |available| available <= expected;
        watch_zone(
            client, avail_path, zone, shown, committed, deadline, POLL_PAUSE,
        )
    });
    let seen = futures_util::future::join_all(polls).await;
    seen.iter()
        .copied()
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max())
}

impl Latencies {
    /// The latency at quantile `p`, in ms.
    fn q(&self, p: f64) -> f64 {
        quantile_ms(&self.all_edges, p)
    }

    fn max_ms(&self) -> f64 {
        self.all_edges.max() as f64 / 1000.0
    }

    fn row(&self, plan: &Plan) -> Vec<String> {
        vec![
            self.edges.to_string(),
            count(plan.invalidation_changes as f64),
            ms(self.q(0.5)),
            ms(self.q(0.9)),
            ms(self.q(0.99)),
            ms(self.q(0.999)),
            ms(self.max_ms()),
            count(self.missed as f64),
        ]
    }

    fn series(&self) -> Series {
        Series {
            name: format!("{} edge(s)", self.edges),
            points: PERCENTILES
                .iter()
                .map(|&p| (p * 100.0, self.q(p)))
                .collect(),
        }
    }

    fn data(&self, plan: &Plan) -> Value {
        json!({"edges": self.edges, "changes": plan.invalidation_changes, "missed": self.missed,
            "p50_ms": self.q(0.5), "p90_ms": self.q(0.9), "p99_ms": self.q(0.99), "p999_ms": self.q(0.999), "max_ms": self.max_ms()})
    }
}
