//! Scenario 1: a flash sale on one hot zone of 50,000 tickets. For each number of
//! concurrent buyers, three paths take turns in short slices (so a drift in the machine's
//! speed weighs on all alike), each slice on a fresh zone: the naive strategy straight at
//! its ledger (the baseline), the batched strategy straight at its ledger, and the batched
//! ledger through an edge node. Every zone is audited afterwards.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::audit::ZoneAudit;
use crate::load::Figures;
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{start_edge, Env, Ledger};
use crate::workloads::Holds;
use crate::{Plan, Progress};

const ZONE_STOCK: i32 = 50_000;

const PATHS: [&str; 3] = ["naive, direct", "batched, direct", "batched, via edge"];
/// Indices into `PATHS`. Naive is the baseline every path is divided by; batched, direct
/// is the path of the goal.
const NAIVE: usize = 0;
const BATCHED: usize = 1;
const VIA_EDGE: usize = 2;
/// The client count the batched-vs-naive goal is stated at.
const GOAL_CLIENTS: usize = 128;
/// Batched must sell at least this many times as many holds per second as naive.
const GOAL_RATIO: f64 = 20.0;
/// And at least this many holds per second on this machine, whatever naive does (a faster
/// naive baseline lowers the ratio without the hot zone selling any slower).
const GOAL_HOLDS_PER_S: f64 = 10_000.0;
/// Holds through one edge must reach this share of the same ledger direct, by client count
/// (each forwarded hold costs an instance and a pooled connection's round trip).
const EDGE_GOALS: [(usize, f64); 2] = [(128, 0.8), (512, 0.7)];

/// One path at one client count, its slices absorbed.
struct Run {
    clients: usize,
    path: usize,
    figures: Figures,
}

/// Where a path's slices run: its ledger (which creates and audits the zones) and the
/// server the buyers talk to (the ledger itself or the edge in front of it).
struct Path<'a> {
    index: usize,
    ledger: &'a Ledger,
    authority: &'a str,
}

/// Everything the sale has measured so far.
#[derive(Default)]
struct Sale {
    runs: Vec<Run>,
    /// One entry per zone sold (per slice): what the generator was granted and the rows.
    audits: Vec<Value>,
    /// Zones whose counters, rows and 201s disagree.
    failures: Vec<String>,
    /// Numbers the slices, so no two share a customer id.
    run_no: u64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("flash-sale", "1. Flash sale on one hot zone");
    section.notes.extend(notes(plan));
    let mut sale = Sale::default();
    for &clients in &plan.flash_clients {
        sale.at_clients(env, plan, progress, clients).await?;
    }

    let zones = sale.audits.len();
    section.check_failures(
        "zero oversell: every zone's counters = its rows = the 201s answered",
        &sale.failures,
        format!("{zones} zones audited: available + held + sold = capacity, held = tickets of held rows, rows = 201s"),
    );
    section.tables.push(table(&sale.runs));
    if let Some(r) = ratio(&sale.runs, GOAL_CLIENTS, BATCHED) {
        section.goal(
            "flash.batched_vs_naive_128",
            "batched ≥ 20× naive holds/s at 128 clients",
            format!("{r:.1}×"),
            r >= GOAL_RATIO,
        );
    }
    if let Some(batched) = holds_per_s(&sale.runs, GOAL_CLIENTS, BATCHED) {
        section.goal(
            "flash.batched_128_abs",
            "batched ≥ 10,000 holds/s at 128 clients",
            format!("{} holds/s", count(batched)),
            batched >= GOAL_HOLDS_PER_S,
        );
    }
    edge_goals(&mut section, &sale.runs);
    section.charts.extend(charts(plan, &sale.runs));
    section.data = json!({
        "runs": sale.runs.iter().map(|r| json!({"clients": r.clients, "path": PATHS[r.path], "figures": r.figures})).collect::<Vec<_>>(),
        "audits": sale.audits,
    });
    Ok(section)
}

fn notes(plan: &Plan) -> [String; 2] {
    [
        format!(
            "Closed loop: each client sends its next hold (1–4 tickets, a new customer and Idempotency-Key each) when the last is answered. \
             Per client count, the three paths take turns in {} slices of {:.1} s (after {} ms of warm-up each), every slice on a fresh zone of {} tickets; \
             a slice ends early when its zone sells out (then its time runs to the last 201). holds/s counts 201s only.",
            plan.slices,
            plan.flash_slice.as_secs_f64(),
            plan.warmup.as_millis(),
            count(ZONE_STOCK.into())
        ),
        "Each client count starts fresh ledgers and databases (naive and batched), and an edge node in front of the batched ledger.".to_owned(),
    ]
}

impl Sale {
    /// `clients` buyers on fresh naive and batched ledgers and an edge in front of the
    /// batched one, the three paths taking turns in slices.
    async fn at_clients(
        &mut self,
        env: &Env,
        plan: &Plan,
        progress: &Progress,
        clients: usize,
    ) -> anyhow::Result<()> {
        progress.step(&format!("flash sale: {clients} clients, starting ledgers"));
        let naive = Ledger::start(
            env,
            &format!("flash-naive-{clients}"),
            &[("HOLD_STRATEGY", "naive")],
        )
        .await?;
        let batched = Ledger::start(
            env,
            &format!("flash-batched-{clients}"),
            &[("HOLD_STRATEGY", "batched")],
        )
        .await?;
        let edge = start_edge(env, &format!("flash-edge-{clients}"), &batched, &[]).await?;
        let paths = [
            Path {
                index: NAIVE,
                ledger: &naive,
                authority: &naive.authority,
            },
            Path {
                index: BATCHED,
                ledger: &batched,
                authority: &batched.authority,
            },
            Path {
                index: VIA_EDGE,
                ledger: &batched,
                authority: &edge.authority,
            },
        ];
        let mut totals: [Option<Figures>; 3] = [None, None, None];
        for slice in 0..plan.slices {
            for path in &paths {
                progress.step(&format!(
                    "flash sale: {clients} clients, {}, slice {}/{}",
                    PATHS[path.index],
                    slice + 1,
                    plan.slices
                ));
                let figures = self.slice(env, plan, path, clients, slice).await?;
                add_slice(&mut totals[path.index], figures)?;
            }
        }
        self.record(progress, clients, totals);
        edge.stop().await;
        naive.stop().await?;
        batched.stop().await?;
        Ok(())
    }

    /// Each path's total at `clients`, shown as it is kept.
    fn record(&mut self, progress: &Progress, clients: usize, totals: [Option<Figures>; 3]) {
        for (path, total) in totals.into_iter().enumerate() {
            if let Some(figures) = total {
                progress.line(&format!(
                    "flash sale {clients:>4} clients {:<18} {:>8.0} holds/s  p99 {:>8.2} ms",
                    PATHS[path], figures.ok_per_s, figures.p99_ms
                ));
                self.runs.push(Run {
                    clients,
                    path,
                    figures,
                });
            }
        }
    }

    /// One slice on a fresh zone: buyers until the window ends or the zone sells out,
    /// then the zone's audit.
    async fn slice(
        &mut self,
        env: &Env,
        plan: &Plan,
        path: &Path<'_>,
        clients: usize,
        slice: u32,
    ) -> anyhow::Result<Figures> {
        self.run_no += 1;
        let slug = format!("flash-{clients}-{slice}-{}", path.index);
        let ids = path.ledger.create_event(env, &slug, 1, ZONE_STOCK).await?;
        let workload = Arc::new(Holds::new(&ids.show_id, &ids.zone_ids[0], 1, self.run_no));
        let figures = slice_on(
            path.authority,
            workload.clone(),
            clients,
            plan.warmup,
            plan.flash_slice,
        )
        .await?;
        self.audit(path, &ids.zone_ids[0], &workload, clients)
            .await?;
        Ok(figures)
    }

    /// The zone's counters and rows against the 201s the buyers were answered.
    async fn audit(
        &mut self,
        path: &Path<'_>,
        zone_id: &str,
        workload: &Holds,
        clients: usize,
    ) -> anyhow::Result<()> {
        let audit = ZoneAudit::read(&path.ledger.pool, zone_id).await?;
        let granted = workload.granted.load(Ordering::Relaxed);
        let tickets = workload.tickets.load(Ordering::Relaxed);
        if let Some(error) = audit.holds_error(granted, tickets) {
            self.failures
                .push(format!("{clients} clients, {}: {error}", PATHS[path.index]));
        }
        self.audits.push(json!({"clients": clients, "path": PATHS[path.index], "granted": granted, "tickets": tickets, "zone": audit}));
        Ok(())
    }
}

/// `flash.edge_vs_direct_N`: holds/s through the edge over batched direct at N clients.
fn edge_goals(section: &mut Section, runs: &[Run]) {
    let rate = |clients: usize, path: usize| {
        runs.iter()
            .find(|r| r.clients == clients && r.path == path)
            .map(|r| r.figures.ok_per_s)
    };
    for (clients, share) in EDGE_GOALS {
        let (Some(edge), Some(direct)) = (rate(clients, VIA_EDGE), rate(clients, BATCHED)) else {
            continue;
        };
        if direct <= 0.0 {
            continue;
        }
        let of_direct = edge / direct;
        section.goal(
            &format!("flash.edge_vs_direct_{clients}"),
            &format!(
                "holds through one edge ≥ {:.0}% of direct at {clients} clients",
                share * 100.0
            ),
            format!(
                "{:.0}% ({edge:.0} vs {direct:.0} holds/s)",
                of_direct * 100.0
            ),
            of_direct >= share,
        );
    }
}

/// `path`'s holds/s at `clients`, if it ran.
fn holds_per_s(runs: &[Run], clients: usize, path: usize) -> Option<f64> {
    runs.iter()
        .find(|r| r.clients == clients && r.path == path)
        .map(|r| r.figures.ok_per_s)
}

/// `path`'s holds/s over naive's at `clients`, if both ran and naive sold any.
fn ratio(runs: &[Run], clients: usize, path: usize) -> Option<f64> {
    match (
        holds_per_s(runs, clients, path),
        holds_per_s(runs, clients, NAIVE),
    ) {
        (Some(x), Some(naive)) if naive > 0.0 => Some(x / naive),
        _ => None,
    }
}

fn table(runs: &[Run]) -> Table {
    let mut table = Table::new(
        "Holds per second and latency (ms) by path",
        &[
            "clients",
            "path",
            "holds/s",
            "p50",
            "p99",
            "p99.9",
            "refused (409)",
            "503 / errors",
            "÷ naive",
        ],
    );
    for run in runs {
        let f = &run.figures;
        let shed = f.by_status.get(&503).copied().unwrap_or(0);
        table.row(vec![
            run.clients.to_string(),
            PATHS[run.path].to_owned(),
            count(f.ok_per_s),
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms),
            count(f.refused as f64),
            format!(
                "{} / {}",
                count(shed as f64),
                count(f.failed.saturating_sub(shed) as f64)
            ),
            ratio(runs, run.clients, run.path)
                .filter(|_| run.path > NAIVE)
                .map_or(String::new(), |r| format!("{r:.1}×")),
        ]);
    }
    table
}

/// Holds/s and p99 by client count, one bar per path.
fn charts(plan: &Plan, runs: &[Run]) -> [Chart; 2] {
    let categories: Vec<String> = plan
        .flash_clients
        .iter()
        .map(|c| format!("{c} clients"))
        .collect();
    let chart = |file: &str, title: &str, y_label: &str, pick: fn(&Figures) -> f64| Chart {
        file: file.to_owned(),
        title: title.to_owned(),
        x_label: "concurrent clients".to_owned(),
        y_label: y_label.to_owned(),
        log_y: true,
        kind: ChartKind::Bars {
            categories: categories.clone(),
        },
        series: series(plan, runs, pick),
    };
    [
        chart(
            "flash-sale-throughput.svg",
            "Flash sale: holds/s (log scale)",
            "holds/s",
            |f| f.ok_per_s,
        ),
        chart(
            "flash-sale-p99.svg",
            "Flash sale: p99 latency of granted holds (ms, log scale)",
            "p99 ms",
            |f| f.p99_ms,
        ),
    ]
}

/// One series per path: `pick` of each run, at its client count's category.
fn series(plan: &Plan, runs: &[Run], pick: fn(&Figures) -> f64) -> Vec<Series> {
    PATHS
        .iter()
        .enumerate()
        .map(|(path, name)| Series {
            name: (*name).to_owned(),
            points: runs
                .iter()
                .filter(|r| r.path == path)
                .filter_map(|r| {
                    Some((
                        plan.flash_clients.iter().position(|c| *c == r.clients)? as f64,
                        pick(&r.figures),
                    ))
                })
                .collect(),
        })
        .collect()
}
