//! Scenario 4: invalidation latency. One change at a time is committed at the ledger (a
//! hold of one ticket, straight at the ledger); from its 201, every edge node is polled
//! until it shows the new count. Once through one edge process, once through four.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::load::{self, histogram, Call};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::scenarios::sell_out::zone_available;
use crate::stack::{start_edges, Env, Ledger};
use crate::workloads::hold_call;
use crate::{Plan, Progress};

const EDGE_COUNTS: [usize; 2] = [1, 4];
/// A change not visible after this long counts as missed.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of one edge: bounds the measurement's resolution (~1 ms).
const POLL_PAUSE: Duration = Duration::from_micros(500);
const STOCK: i32 = 1_000_000;

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("invalidation", "4. Invalidation latency");
    progress.step("invalidation: starting a ledger and 4 edges");
    let ledger = Ledger::start(env, "invalidation", &[]).await?;
    let edges = start_edges(
        env,
        "invalidation-edge",
        &ledger,
        EDGE_COUNTS[EDGE_COUNTS.len() - 1],
    )
    .await?;
    let reads_before = ledger_reads(env, &ledger).await?;
    let mut results = Vec::new();
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
    let mut series = Vec::new();
    for &edge_count in &EDGE_COUNTS {
        let ids = ledger
            .create_event(env, &format!("invalidation-{edge_count}"), 1, STOCK)
            .await?;
        let (show, zone) = (ids.show_id.clone(), ids.zone_ids[0].clone());
        let avail_path = format!("/v1/shows/{show}/availability");
        let mut clients: Vec<load::Client> = edges[..edge_count]
            .iter()
            .map(|e| load::Client::new(&e.authority))
            .collect();
        for client in &mut clients {
            client.send(&Call::get(0, avail_path.clone())).await?;
        }
        let mut ledger_client = load::Client::new(&ledger.authority);
        let mut all_edges: Histogram<u64> = histogram();
        let mut missed = 0u64;
        for change in 0..plan.invalidation_changes {
            if change % 50 == 0 {
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
            // Poll every edge at once; the change is visible when the last one shows it.
            let polls = clients.iter_mut().map(|client| {
                let path = avail_path.clone();
                let zone = zone.clone();
                async move {
                    while committed.elapsed() < VISIBLE_TIMEOUT {
                        if let Ok(answer) = client.send(&Call::get(0, path.clone())).await {
                            if zone_available(&answer.body, &zone).is_some_and(|a| a <= expected) {
                                return Some(committed.elapsed());
                            }
                        }
                        tokio::time::sleep(POLL_PAUSE).await;
                    }
                    None
                }
            });
            let seen = futures_util::future::join_all(polls).await;
            match seen
                .iter()
                .copied()
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.into_iter().max())
            {
                Some(latency) => {
                    all_edges.saturating_record(latency.as_micros().max(1) as u64);
                }
                None => missed += 1,
            }
        }
        let q = |p: f64| all_edges.value_at_quantile(p) as f64 / 1000.0;
        table.row(vec![
            edge_count.to_string(),
            count(plan.invalidation_changes as f64),
            ms(q(0.5)),
            ms(q(0.9)),
            ms(q(0.99)),
            ms(q(0.999)),
            ms(all_edges.max() as f64 / 1000.0),
            count(missed as f64),
        ]);
        section.goal(
            &format!("p99 < 50 ms through {edge_count} edge process(es)"),
            format!("{} ms", ms(q(0.99))),
            q(0.99) < 50.0 && missed == 0,
        );
        series.push(Series {
            name: format!("{edge_count} edge(s)"),
            points: [0.5, 0.9, 0.99, 0.999]
                .iter()
                .map(|&p| (p * 100.0, q(p)))
                .collect(),
        });
        results.push(json!({"edges": edge_count, "changes": plan.invalidation_changes, "missed": missed,
            "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": all_edges.max() as f64 / 1000.0}));
    }
    // The edges saw every change by push: they should not have refetched from the ledger.
    let refetches =
        ledger_reads(env, &ledger).await? - reads_before - EDGE_COUNTS.iter().sum::<usize>() as f64;
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
    for edge in edges {
        edge.stop().await;
    }
    ledger.stop().await?;
    Ok(section)
}

/// Availability reads the ledger served to edges.
async fn ledger_reads(env: &Env, ledger: &Ledger) -> anyhow::Result<f64> {
    ledger
        .metric(
            env,
            "http_requests_total",
            &[
                ("route", "/v1/shows/{show_id}/availability"),
                ("origin", "edge"),
            ],
        )
        .await
}
