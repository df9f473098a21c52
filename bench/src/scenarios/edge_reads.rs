//! Scenario 3: cached reads through the wasm edge host, against the same hit path compiled
//! natively into a plain axum server (the ceiling) and the ledger's uncached read from
//! PostgreSQL (the floor). Throughput closed-loop at 32 connections, the three taking
//! turns in slices; latency open-loop at a fixed rate.

use std::sync::Arc;

use serde_json::json;
use tessera_testkit::metrics::sum_metric;

use crate::load::{self, Call, Figures, Targets};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::stack::{start_edge, Edge, Env, Ledger, Native};
use crate::workloads::Reads;
use crate::{Plan, Progress};

const CLIENTS: usize = 32;
const SERVERS: [&str; 4] = [
    "edge (wasm)",
    "edge, instance reused ×16",
    "native axum",
    "ledger (uncached)",
];
/// Indices into `SERVERS`.
const EDGE: usize = 0;
const NATIVE: usize = 2;
const LEDGER: usize = 3;
/// Requests one instance serves in the "reused" edge (EDGE_INSTANCE_REUSE_MAX): shows what
/// the fresh instance per request costs. Spin's model, and the default, is 1.
const REUSE: &str = "16";

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("edge-reads", "3. Edge cached reads");
    progress.step("edge reads: starting ledger, edge, native baseline");
    let ledger = Ledger::start(env, "reads", &[]).await?;
    let ids = ledger.create_event(env, "reads", 8, 10_000).await?;
    let edge = start_edge(env, "reads-edge", &ledger, &[]).await?;
    let reusing = start_edge(
        env,
        "reads-edge-reuse",
        &ledger,
        &[("EDGE_INSTANCE_REUSE_MAX", REUSE)],
    )
    .await?;
    let native = Native::start(env, &ledger, &ids.show_id, &ids.event_id).await?;
    let paths = [
        (
            "availability",
            format!("/v1/shows/{}/availability", ids.show_id),
        ),
        ("event", format!("/v1/events/{}", ids.event_id)),
    ];
    let authorities = [
        edge.authority.clone(),
        reusing.authority.clone(),
        native.authority.clone(),
        ledger.authority.clone(),
    ];
    // Fill the edges' caches.
    for (_, path) in &paths {
        for authority in &authorities[..NATIVE] {
            load::once(authority, &Call::get(0, path.clone())).await?;
        }
    }
    let instantiation_before = instantiation(&edge).await?;

    let mut throughput: Vec<Vec<Option<Figures>>> = vec![vec![None; SERVERS.len()]; paths.len()];
    for slice in 0..plan.slices {
        for (p, (name, path)) in paths.iter().enumerate() {
            for (s, authority) in authorities.iter().enumerate() {
                progress.step(&format!(
                    "edge reads: {name} from {}, slice {}/{}",
                    SERVERS[s],
                    slice + 1,
                    plan.slices
                ));
                let workload = Arc::new(Reads::one(path));
                let figures = load::closed_loop(
                    &Targets::new(vec![authority.clone()]),
                    workload,
                    CLIENTS,
                    plan.warmup,
                    plan.read_slice,
                )
                .await?;
                throughput[p][s] = Some(match throughput[p][s].take() {
                    Some(total) => total.absorb(&figures)?,
                    None => figures,
                });
            }
        }
    }
    let mut latency: Vec<Vec<Figures>> = Vec::new();
    for (name, path) in &paths {
        let mut row = Vec::new();
        for (s, authority) in authorities.iter().enumerate() {
            progress.step(&format!(
                "edge reads: {name} latency from {} at {}/s",
                SERVERS[s],
                count(plan.read_latency_rate_per_s)
            ));
            let workload = Arc::new(Reads::one(path));
            row.push(
                load::open_loop(
                    &Targets::new(vec![authority.clone()]),
                    workload,
                    plan.read_latency_rate_per_s,
                    plan.read_latency_window,
                    64,
                )
                .await?,
            );
        }
        latency.push(row);
    }
    let (inst_sum, inst_count) = instantiation(&edge).await?;
    let instantiation_us = (inst_count > instantiation_before.1)
        .then(|| (inst_sum - instantiation_before.0) / (inst_count - instantiation_before.1) * 1e6);
    let edge_metrics = edge.scrape().await?;
    let hits = sum_metric(&edge_metrics, "edge_cache_total", &[("result", "hit")]);
    let misses = sum_metric(&edge_metrics, "edge_cache_total", &[("result", "miss")]);

    section.notes.push(format!(
        "Throughput: {CLIENTS} closed-loop connections per server, the servers taking turns in {} slices of {:.1} s per path. \
         Latency: open loop at {}/s for {:.0} s per server (latency from when each request was due). \
         The edge runs spin.toml's catalog component with a fresh instance per request (Spin's model, the default); \
         the reused row is the same node serving up to {REUSE} requests per instance (EDGE_INSTANCE_REUSE_MAX), to show what instantiation costs; the native server runs the same \
         cache-entry parsing, freshness, rendering and ETag code (tessera-edge-cache) from an in-memory map; the ledger reads PostgreSQL every time.",
        plan.slices,
        plan.read_slice.as_secs_f64(),
        count(plan.read_latency_rate_per_s),
        plan.read_latency_window.as_secs_f64()
    ));
    section.notes.push(format!(
        "The fresh-instance edge's cache since it started (fill included): {} hits, {} misses. Component instantiation: {} µs per request on average (edge_instantiation_seconds).",
        count(hits),
        count(misses),
        instantiation_us.map_or("n/a".to_owned(), |us| format!("{us:.0}"))
    ));
    let mut table = Table::new(
        "Reads: requests/s (closed loop) and latency at a fixed rate (ms)",
        &[
            "path",
            "server",
            "req/s",
            "% of native",
            "× ledger",
            "p50",
            "p99",
            "p99.9",
            "late",
            "errors",
        ],
    );
    let mut charts_series: Vec<Series> = SERVERS
        .iter()
        .map(|s| Series {
            name: (*s).to_owned(),
            points: Vec::new(),
        })
        .collect();
    let mut data = Vec::new();
    for (p, (name, _)) in paths.iter().enumerate() {
        let rate = |s: usize| throughput[p][s].as_ref().map_or(0.0, |f| f.ok_per_s);
        let (native_rate, ledger_rate) = (rate(NATIVE), rate(LEDGER));
        for s in 0..SERVERS.len() {
            let lat = &latency[p][s];
            let errors = throughput[p][s].as_ref().map_or(0, |f| f.failed) + lat.failed;
            table.row(vec![
                (*name).to_owned(),
                SERVERS[s].to_owned(),
                count(rate(s)),
                if native_rate > 0.0 {
                    format!("{:.0}%", rate(s) / native_rate * 100.0)
                } else {
                    String::new()
                },
                if ledger_rate > 0.0 {
                    format!("{:.1}×", rate(s) / ledger_rate)
                } else {
                    String::new()
                },
                ms(lat.p50_ms),
                ms(lat.p99_ms),
                ms(lat.p999_ms),
                count(lat.late as f64),
                count(errors as f64),
            ]);
            charts_series[s].points.push((p as f64, rate(s)));
            data.push(json!({"path": name, "server": SERVERS[s], "throughput": throughput[p][s], "latency": lat}));
        }
        if native_rate > 0.0 && ledger_rate > 0.0 {
            let (of_native, of_ledger) = (rate(EDGE) / native_rate, rate(EDGE) / ledger_rate);
            section.goal(
                &format!("{name}: edge ≥ 50% of native"),
                format!("{:.0}%", of_native * 100.0),
                of_native >= 0.5,
            );
            section.goal(
                &format!("{name}: edge ≥ 10× the ledger read"),
                format!("{of_ledger:.1}×"),
                of_ledger >= 10.0,
            );
        }
        let p99 = latency[p][EDGE].p99_ms;
        section.goal(
            &format!(
                "{name}: edge p99 < 5 ms at {}/s",
                count(plan.read_latency_rate_per_s)
            ),
            format!("{} ms", ms(p99)),
            p99 < 5.0 && latency[p][EDGE].ok > 0,
        );
    }
    section.tables.push(table);
    section.charts.push(Chart {
        file: "edge-reads-throughput.svg".to_owned(),
        title: "Cached reads: requests/s (log scale)".to_owned(),
        x_label: "path".to_owned(),
        y_label: "requests/s".to_owned(),
        log_y: true,
        kind: ChartKind::Bars {
            categories: paths.iter().map(|(n, _)| (*n).to_owned()).collect(),
        },
        series: charts_series,
    });
    section.data = json!({"runs": data, "instantiation_us_mean": instantiation_us, "cache_hits": hits, "cache_misses": misses});
    native.stop().await;
    edge.stop().await;
    reusing.stop().await;
    ledger.stop().await?;
    Ok(section)
}

/// `edge_instantiation_seconds` of the catalog component: (sum in s, count).
async fn instantiation(edge: &Edge) -> anyhow::Result<(f64, f64)> {
    let text = edge.scrape().await?;
    let labels = [("component", "catalog")];
    Ok((
        sum_metric(&text, "edge_instantiation_seconds_sum", &labels),
        sum_metric(&text, "edge_instantiation_seconds_count", &labels),
    ))
}
