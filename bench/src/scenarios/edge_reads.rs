//! Scenario 3: cached reads through the wasm edge host, against the same hit path compiled
//! natively into a plain axum server (the ceiling) and the ledger's uncached read from
//! PostgreSQL (the floor). Throughput closed-loop at 32 connections, the three taking
//! turns in slices; latency open-loop at a fixed rate.

use std::sync::Arc;

use serde_json::{json, Value};
use tessera_testkit::metrics::sum_metric;

use crate::load::{self, Call, Figures, Targets};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{start_edge, Edge, Env, EventIds, Ledger, Native};
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
/// Zones of the event read, and tickets in each.
const ZONES: usize = 8;
const ZONE_STOCK: i32 = 10_000;
/// Open-loop connections per server in the latency runs: a bound on what the generator
/// opens; a request that finds none free waits and counts as late.
const CONNECTIONS_MAX: usize = 64;
/// The goals: the edge at least this share of native's requests/s, this many times the
/// ledger's, and its p99 under this many ms at the plan's rate.
const GOAL_OF_NATIVE: f64 = 0.5;
const GOAL_OF_LEDGER: f64 = 5.0;
const GOAL_P99_MS: f64 = 5.0;

/// The four servers, in `SERVERS`' order, on one ledger and one event.
struct Servers {
    ledger: Ledger,
    edge: Edge,
    reusing: Edge,
    native: Native,
    ids: EventIds,
}

/// Throughput per path and server (slices absorbed), latency per path and server.
struct Measured {
    throughput: Vec<Vec<Option<Figures>>>,
    latency: Vec<Vec<Figures>>,
}

/// The fresh-instance edge's own figures: instantiation (µs per request), host calls per
/// request, cache hits, misses and bypasses (availability read through to the ledger
/// because the invalidation stream had been silent past `stream_freshness_ms`).
struct EdgeFigures {
    instantiation_us: Option<f64>,
    host_calls_per_request: Option<f64>,
    hits: f64,
    misses: f64,
    bypasses: f64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("edge-reads", "3. Edge cached reads");
    progress.step("edge reads: starting ledger, edge, native baseline");
    let servers = Servers::start(env).await?;
    let paths = servers.paths();
    let authorities = servers.authorities();
    // Fill the edges' caches.
    for (_, path) in &paths {
        for authority in &authorities[..NATIVE] {
            load::once(authority, &Call::get(0, path.clone())).await?;
        }
    }
    let instantiation_before = instantiation(&servers.edge).await?;
    let measured = Measured {
        throughput: throughput(plan, progress, &paths, &authorities).await?,
        latency: latency(plan, progress, &paths, &authorities).await?,
    };
    let edge = edge_figures(&servers.edge, instantiation_before).await?;

    section.notes.extend(notes(plan, &edge));
    let (table, series, data) = rows(&paths, &measured);
    for (p, (name, _)) in paths.iter().enumerate() {
        goals(&mut section, plan, name, &measured, p);
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
        series,
    });
    section.data = json!({"runs": data, "instantiation_us_mean": edge.instantiation_us, "host_calls_per_request": edge.host_calls_per_request, "cache_hits": edge.hits, "cache_misses": edge.misses, "cache_bypasses": edge.bypasses});
    servers.stop().await?;
    Ok(section)
}

impl Servers {
    async fn start(env: &Env) -> anyhow::Result<Self> {
        let ledger = Ledger::start(env, "reads", &[]).await?;
        let ids = ledger.create_event(env, "reads", ZONES, ZONE_STOCK).await?;
        let edge = start_edge(env, "reads-edge", &ledger, &[]).await?;
        let reusing = start_edge(
            env,
            "reads-edge-reuse",
            &ledger,
            &[("EDGE_INSTANCE_REUSE_MAX", REUSE)],
        )
        .await?;
        let native = Native::start(env, &ledger, &ids.show_id, &ids.event_id).await?;
        Ok(Self {
            ledger,
            edge,
            reusing,
            native,
            ids,
        })
    }

    /// The two reads measured: (name, path).
    fn paths(&self) -> [(&'static str, String); 2] {
        [
            (
                "availability",
                format!("/v1/shows/{}/availability", self.ids.show_id),
            ),
            ("event", format!("/v1/events/{}", self.ids.event_id)),
        ]
    }

    /// `host:port` of each server, in `SERVERS`' order.
    fn authorities(&self) -> [String; 4] {
        [
            self.edge.authority.clone(),
            self.reusing.authority.clone(),
            self.native.authority.clone(),
            self.ledger.authority.clone(),
        ]
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.native.stop().await;
        self.edge.stop().await;
        self.reusing.stop().await;
        self.ledger.stop().await
    }
}

/// Closed-loop requests/s per path and server, the servers taking turns in slices.
async fn throughput(
    plan: &Plan,
    progress: &Progress,
    paths: &[(&str, String)],
    authorities: &[String],
) -> anyhow::Result<Vec<Vec<Option<Figures>>>> {
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
                let figures =
                    slice_on(authority, workload, CLIENTS, plan.warmup, plan.read_slice).await?;
                add_slice(&mut throughput[p][s], figures)?;
            }
        }
    }
    Ok(throughput)
}

/// Open-loop latency at the plan's fixed rate, per path and server.
async fn latency(
    plan: &Plan,
    progress: &Progress,
    paths: &[(&str, String)],
    authorities: &[String],
) -> anyhow::Result<Vec<Vec<Figures>>> {
    let mut latency: Vec<Vec<Figures>> = Vec::new();
    for (name, path) in paths {
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
                    CONNECTIONS_MAX,
                )
                .await?,
            );
        }
        latency.push(row);
    }
    Ok(latency)
}

/// The edge's instantiation time since `before` (its (sum, count) then), and its host calls
/// per request and cache results since it started (the fill's few misses included).
async fn edge_figures(edge: &Edge, before: (f64, f64)) -> anyhow::Result<EdgeFigures> {
    let (inst_sum, inst_count) = instantiation(edge).await?;
    let instantiation_us =
        (inst_count > before.1).then(|| (inst_sum - before.0) / (inst_count - before.1) * 1e6);
    let edge_metrics = edge.scrape().await?;
    let catalog = [("component", "catalog")];
    let calls = |series: &str| sum_metric(&edge_metrics, series, &catalog);
    let requests = calls("edge_host_calls_per_request_count");
    let cache = |result: &str| sum_metric(&edge_metrics, "edge_cache_total", &[("result", result)]);
    Ok(EdgeFigures {
        instantiation_us,
        host_calls_per_request: (requests > 0.0)
            .then(|| calls("edge_host_calls_per_request_sum") / requests),
        hits: cache("hit"),
        misses: cache("miss"),
        bypasses: cache("bypass"),
    })
}

fn notes(plan: &Plan, edge: &EdgeFigures) -> [String; 2] {
    [
        format!(
            "Throughput: {CLIENTS} closed-loop connections per server, the servers taking turns in {} slices of {:.1} s per path. \
             Latency: open loop at {}/s for {:.0} s per server (latency from when each request was due). \
             The edge runs spin.toml's catalog component with a fresh instance per request (Spin's model, the default); \
             the reused row is the same node serving up to {REUSE} requests per instance (EDGE_INSTANCE_REUSE_MAX), to show what instantiation costs; the native server runs the same \
             hit path (tessera-edge-cache: the stored entry checked in place, its freshness, its stored ETag and body) from an in-memory map; the ledger reads PostgreSQL every time.",
            plan.slices,
            plan.read_slice.as_secs_f64(),
            count(plan.read_latency_rate_per_s),
            plan.read_latency_window.as_secs_f64()
        ),
        format!(
            "The fresh-instance edge's cache since it started (fill included): {} hits, {} misses, {} bypasses (availability read through to the ledger: the invalidation stream had been silent past stream_freshness_ms). \
             Component instantiation: {} µs per request on average (edge_instantiation_seconds); calls into the host: {} per request (edge_host_calls_per_request).",
            count(edge.hits),
            count(edge.misses),
            count(edge.bypasses),
            edge.instantiation_us.map_or("n/a".to_owned(), |us| format!("{us:.0}")),
            edge.host_calls_per_request.map_or("n/a".to_owned(), |calls| format!("{calls:.1}"))
        ),
    ]
}

impl Measured {
    /// Requests/s of server `s` on path `p` (0 if it never ran).
    fn rate(&self, p: usize, s: usize) -> f64 {
        self.throughput[p][s].as_ref().map_or(0.0, |f| f.ok_per_s)
    }
}

/// The table, the chart's series (one per server) and the runs for report.json.
fn rows(paths: &[(&str, String)], measured: &Measured) -> (Table, Vec<Series>, Vec<Value>) {
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
    let mut series: Vec<Series> = SERVERS
        .iter()
        .map(|s| Series {
            name: (*s).to_owned(),
            points: Vec::new(),
        })
        .collect();
    let mut data = Vec::new();
    for (p, (name, _)) in paths.iter().enumerate() {
        let rate = |s: usize| measured.rate(p, s);
        let (native_rate, ledger_rate) = (rate(NATIVE), rate(LEDGER));
        for s in 0..SERVERS.len() {
            let (throughput, lat) = (&measured.throughput[p][s], &measured.latency[p][s]);
            let errors = throughput.as_ref().map_or(0, |f| f.failed) + lat.failed;
            table.row(vec![
                (*name).to_owned(),
                SERVERS[s].to_owned(),
                count(rate(s)),
                divided(rate(s), native_rate, |r| format!("{:.0}%", r * 100.0)),
                divided(rate(s), ledger_rate, |r| format!("{r:.1}×")),
                ms(lat.p50_ms),
                ms(lat.p99_ms),
                ms(lat.p999_ms),
                lat.late_by_cause(),
                count(errors as f64),
            ]);
            series[s].points.push((p as f64, rate(s)));
            data.push(json!({"path": name, "server": SERVERS[s], "throughput": throughput, "latency": lat}));
        }
    }
    (table, series, data)
}

/// `render(x / of)`, or nothing when there is nothing to divide by.
fn divided(x: f64, of: f64, render: impl Fn(f64) -> String) -> String {
    if of > 0.0 {
        render(x / of)
    } else {
        String::new()
    }
}

/// Path `p`'s goals: the edge against native and the ledger, and its p99.
fn goals(section: &mut Section, plan: &Plan, name: &str, measured: &Measured, p: usize) {
    // The ids the issue gave these goals: `reads.avail_…` and `reads.event_…`.
    let id = match name {
        "availability" => "avail",
        other => other,
    };
    let rate = |s: usize| measured.rate(p, s);
    let (native_rate, ledger_rate) = (rate(NATIVE), rate(LEDGER));
    if native_rate > 0.0 && ledger_rate > 0.0 {
        let (of_native, of_ledger) = (rate(EDGE) / native_rate, rate(EDGE) / ledger_rate);
        section.goal(
            &format!("reads.{id}_vs_native"),
            &format!("{name}: edge ≥ 50% of native"),
            format!("{:.0}%", of_native * 100.0),
            of_native >= GOAL_OF_NATIVE,
        );
        section.goal(
            &format!("reads.{id}_vs_ledger"),
            &format!("{name}: edge ≥ 5× the ledger read"),
            format!("{of_ledger:.1}×"),
            of_ledger >= GOAL_OF_LEDGER,
        );
    }
    let edge = &measured.latency[p][EDGE];
    section.goal(
        &format!("reads.{id}_p99"),
        &format!(
            "{name}: edge p99 < 5 ms at {}/s",
            count(plan.read_latency_rate_per_s)
        ),
        format!("{} ms", ms(edge.p99_ms)),
        edge.p99_ms < GOAL_P99_MS && edge.ok > 0,
    );
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
