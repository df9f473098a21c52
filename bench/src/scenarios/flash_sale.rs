//! Scenario 1: a flash sale on one hot zone of 50,000 tickets. For each number of
//! concurrent buyers, three paths take turns in short slices (so a drift in the machine's
//! speed weighs on all alike), each slice on a fresh zone: the naive strategy straight at
//! its ledger (the baseline), the batched strategy straight at its ledger, and the batched
//! ledger through an edge node. Every zone is audited afterwards.
//!
//! Each slice also counts the CPU time every tier spent per granted hold (generator, edge,
//! ledger, its PostgreSQL backends: [`crate::cpu`]). At the edge goals' client counts a
//! fourth path takes its turns: the batched ledger through a native reverse proxy that only
//! forwards (`tessera-bench serve-proxy`), the ceiling for any edge on these cores — what
//! one more HTTP hop costs when it does nothing else. And there the batched paths run once
//! more with the tiers on cores of their own — the ledger and its backends on one, the
//! generator and the edge on the other — as two machines would have them: on two shared
//! cores, a hold through the edge pays the edge's CPU out of the ledger's budget, which no
//! deployment does.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::audit::ZoneAudit;
use crate::cpu::{self, Tier, TierTimes};
use crate::load::Figures;
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{start_edge, Env, Ledger, Native};
use crate::workloads::Holds;
use crate::{Plan, Progress};

const ZONE_STOCK: i32 = 50_000;

const PATHS: [&str; 6] = [
    "naive, direct",
    "batched, direct",
    "batched, via edge",
    "batched, direct, split cores",
    "batched, via edge, split cores",
    "batched, via native proxy",
];
/// Indices into `PATHS`. Naive is the baseline every path is divided by; batched, direct
/// is the path of the goal. The split paths and the proxy run only at the edge goals'
/// client counts.
const NAIVE: usize = 0;
const BATCHED: usize = 1;
const VIA_EDGE: usize = 2;
const SPLIT_DIRECT: usize = 3;
const SPLIT_EDGE: usize = 4;
const VIA_PROXY: usize = 5;
/// Every path's total at one client count.
type Totals = [PathTotal; PATHS.len()];
/// With the tiers split: the ledger and its PostgreSQL backends run on this core...
const LEDGER_CORE: usize = 0;
/// ...the generator and the edge on this one.
const CLIENT_CORE: usize = 1;
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
    /// Microseconds of CPU per granted hold, by tier (every slice's holds, warm-up too).
    cpu_us: BTreeMap<Tier, f64>,
    /// Holds per batch the ledger committed (its `hold_batch_size`), if it batches.
    mean_batch: Option<f64>,
}

/// The ledger's batches so far (`hold_batch_size`): holds committed and batches.
#[derive(Clone, Copy, Default)]
struct Batches {
    holds: f64,
    batches: f64,
}

impl Batches {
    async fn read(env: &Env, ledger: &Ledger) -> anyhow::Result<Self> {
        let text = tessera_testkit::metrics::scrape(&env.http, &ledger.metrics_base).await?;
        let sum = |name| tessera_testkit::metrics::sum_metric(&text, name, &[]);
        Ok(Self {
            holds: sum("hold_batch_size_sum"),
            batches: sum("hold_batch_size_count"),
        })
    }

    fn since(self, before: Batches) -> Batches {
        Batches {
            holds: self.holds - before.holds,
            batches: self.batches - before.batches,
        }
    }
}

/// A path's slices so far at one client count.
#[derive(Default)]
struct PathTotal {
    figures: Option<Figures>,
    cpu: TierTimes,
    granted: u64,
    batches: Batches,
}

impl PathTotal {
    fn cpu_us(&self) -> BTreeMap<Tier, f64> {
        Tier::ALL
            .iter()
            .filter_map(|&tier| Some((tier, self.cpu.us_per(tier, self.granted)?)))
            .collect()
    }

    fn mean_batch(&self) -> Option<f64> {
        (self.batches.batches > 0.0).then(|| self.batches.holds / self.batches.batches)
    }

    /// Adds one slice's figures.
    fn absorb(&mut self, slice: SliceFigures) -> anyhow::Result<()> {
        add_slice(&mut self.figures, slice.figures)?;
        self.cpu.absorb(&slice.cpu);
        self.granted += slice.granted;
        self.batches.holds += slice.batches.holds;
        self.batches.batches += slice.batches.batches;
        Ok(())
    }
}

/// Where a path's slices run: its ledger (which creates and audits the zones) and the
/// server the buyers talk to (the ledger itself, or the edge or the proxy in front of it).
struct Path<'a> {
    index: usize,
    ledger: &'a Ledger,
    authority: &'a str,
    /// The process in front of the ledger, counted as the edge tier (and pinned with the
    /// generator when the tiers are split): the edge node, whether or not the buyers talk
    /// to it, or the native proxy on its own path.
    front: Option<u32>,
}

impl<'a> Path<'a> {
    fn new(index: usize, ledger: &'a Ledger, authority: &'a str, front: Option<u32>) -> Self {
        Self {
            index,
            ledger,
            authority,
            front,
        }
    }

    fn split(&self) -> bool {
        matches!(self.index, SPLIT_DIRECT | SPLIT_EDGE)
    }

    /// The processes whose CPU the slice counts (the generator and the backends are added
    /// by the meter).
    fn processes(&self) -> Vec<(Tier, u32)> {
        let ledger = self.ledger.pid().map(|pid| (Tier::Ledger, pid));
        let front = self.front.map(|pid| (Tier::Edge, pid));
        ledger.into_iter().chain(front).collect()
    }

    /// The ledger and its backends on [`LEDGER_CORE`], the edge and the generator on
    /// [`CLIENT_CORE`]; again before every slice, for backends connected since.
    async fn pin_split(&self) -> anyhow::Result<()> {
        let backends = cpu::backend_pids(&self.ledger.pool, self.ledger.database_name()).await?;
        for pid in self.ledger.pid().into_iter().chain(backends) {
            cpu::pin(pid, &[LEDGER_CORE])?;
        }
        if let Some(pid) = self.front {
            cpu::pin(pid, &[CLIENT_CORE])?;
        }
        cpu::pin(std::process::id(), &[CLIENT_CORE])
    }
}

/// What one slice measured.
struct SliceFigures {
    figures: Figures,
    cpu: TierTimes,
    /// 201s in the whole slice (warm-up too: the CPU is counted over it).
    granted: u64,
    batches: Batches,
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
    section.tables.push(cpu_table(&sale.runs));
    edge_goals(&mut section, &sale.runs);
    proxy_goals(&mut section, &sale.runs);
    cpu_goal(&mut section, &sale.runs);
    section.charts.extend(charts(plan, &sale.runs));
    section.data = json!({
        "runs": sale.runs.iter().map(|r| json!({"clients": r.clients, "path": PATHS[r.path], "figures": r.figures, "cpu_us_per_hold": r.cpu_us, "holds_per_batch": r.mean_batch})).collect::<Vec<_>>(),
        "audits": sale.audits,
    });
    Ok(section)
}

fn notes(plan: &Plan) -> [String; 3] {
    let goal_clients = EDGE_GOALS.map(|(c, _)| c.to_string()).join(" and ");
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
        format!(
            "At {goal_clients} clients a fourth path takes its turns: the batched ledger through a native reverse proxy (`tessera-bench serve-proxy`: \
             hyper's pooled client, as the edge's host uses, forwarding each request and its answer and nothing else) — the ceiling for any edge on these cores. \
             Then the two batched paths take turns again with the tiers on cores of their own (\"split cores\"): the ledger and its PostgreSQL backends pinned to core {LEDGER_CORE}, \
             the generator and the edge to core {CLIENT_CORE} (PostgreSQL's shared processes and Redis are not pinned). CPU per hold is each process's user + system time over the slice (/proc), \
             divided by the holds granted in it.",
        ),
    ]
}

impl Sale {
    /// `clients` buyers on fresh naive and batched ledgers and an edge in front of the
    /// batched one, the three paths (and at the edge goals' client counts the native
    /// proxy's) taking turns in slices; then, at those client counts, the two batched paths
    /// again with the tiers split.
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
        let proxy = match edge_goal_clients(clients) {
            true => Some(Native::proxy(env, &format!("flash-proxy-{clients}"), &batched).await?),
            false => None,
        };
        let path = |index, ledger, authority| Path::new(index, ledger, authority, edge.pid());
        let mut totals: Totals = Default::default();
        let mut shared = vec![
            path(NAIVE, &naive, &naive.authority),
            path(BATCHED, &batched, &batched.authority),
            path(VIA_EDGE, &batched, &edge.authority),
        ];
        if let Some(proxy) = &proxy {
            shared.push(Path::new(
                VIA_PROXY,
                &batched,
                &proxy.authority,
                proxy.pid(),
            ));
        }
        let run = self
            .take_turns(env, plan, progress, clients, &shared, &mut totals)
            .await;
        let run = match run {
            Ok(()) if splits_tiers(clients) => {
                let split = [
                    path(SPLIT_DIRECT, &batched, &batched.authority),
                    path(SPLIT_EDGE, &batched, &edge.authority),
                ];
                self.split_turns(env, plan, progress, clients, &split, &mut totals)
                    .await
            }
            other => other,
        };
        self.record(progress, clients, totals);
        if let Some(proxy) = proxy {
            proxy.stop().await;
        }
        edge.stop().await;
        naive.stop().await?;
        batched.stop().await?;
        run
    }

    /// The split paths take turns, the tiers pinned to their cores; the generator gets
    /// every core back afterwards, whatever happened. Where pinning is not allowed (not
    /// root: the backends are PostgreSQL's processes) the split run is left out, said.
    async fn split_turns(
        &mut self,
        env: &Env,
        plan: &Plan,
        progress: &Progress,
        clients: usize,
        split: &[Path<'_>],
        totals: &mut Totals,
    ) -> anyhow::Result<()> {
        let every_core: Vec<usize> = (0..cpu::cores_online()).collect();
        let turns = match split[0].pin_split().await {
            Ok(()) => {
                self.take_turns(env, plan, progress, clients, split, totals)
                    .await
            }
            Err(e) => {
                progress.line(&format!(
                    "flash sale {clients:>4} clients: the split-cores run is left out: {e:#}"
                ));
                Ok(())
            }
        };
        turns.and(cpu::pin(std::process::id(), &every_core))
    }

    /// `paths` take turns, one slice each, `plan.slices` times.
    async fn take_turns(
        &mut self,
        env: &Env,
        plan: &Plan,
        progress: &Progress,
        clients: usize,
        paths: &[Path<'_>],
        totals: &mut Totals,
    ) -> anyhow::Result<()> {
        for slice in 0..plan.slices {
            for path in paths {
                progress.step(&format!(
                    "flash sale: {clients} clients, {}, slice {}/{}",
                    PATHS[path.index],
                    slice + 1,
                    plan.slices
                ));
                let measured = self.slice(env, plan, path, clients, slice).await?;
                totals[path.index].absorb(measured)?;
            }
        }
        Ok(())
    }

    /// Each path's total at `clients`, shown as it is kept.
    fn record(&mut self, progress: &Progress, clients: usize, totals: Totals) {
        for (path, total) in totals.into_iter().enumerate() {
            let cpu_us = total.cpu_us();
            let mean_batch = total.mean_batch();
            if let Some(figures) = total.figures {
                progress.line(&format!(
                    "flash sale {clients:>4} clients {:<30} {:>8.0} holds/s  p99 {:>8.2} ms  edge {:>5.0} µs/hold",
                    PATHS[path], figures.ok_per_s, figures.p99_ms,
                    cpu_us.get(&Tier::Edge).copied().unwrap_or(0.0)
                ));
                self.runs.push(Run {
                    clients,
                    path,
                    figures,
                    cpu_us,
                    mean_batch,
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
    ) -> anyhow::Result<SliceFigures> {
        self.run_no += 1;
        let slug = format!("flash-{clients}-{slice}-{}", path.index);
        let ids = path.ledger.create_event(env, &slug, 1, ZONE_STOCK).await?;
        let workload = Arc::new(Holds::new(&ids.show_id, &ids.zone_ids[0], 1, self.run_no));
        if path.split() {
            path.pin_split().await?;
        }
        let pool = &path.ledger.pool;
        let batches = Batches::read(env, path.ledger).await?;
        let meter = cpu::Meter::start(pool, path.ledger.database_name(), path.processes()).await?;
        let figures = slice_on(
            path.authority,
            workload.clone(),
            clients,
            plan.warmup,
            plan.flash_slice,
        )
        .await?;
        let cpu = meter.finish(pool).await?;
        let batches = Batches::read(env, path.ledger).await?.since(batches);
        self.audit(path, &ids.zone_ids[0], &workload, clients)
            .await?;
        Ok(SliceFigures {
            figures,
            cpu,
            granted: workload.granted.load(Ordering::Relaxed),
            batches,
        })
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

/// Whether an edge goal is stated at `clients`.
fn edge_goal_clients(clients: usize) -> bool {
    EDGE_GOALS.iter().any(|(c, _)| *c == clients)
}

/// Whether the batched paths run again with the tiers on cores of their own at `clients`
/// (the edge goals' client counts, on a machine with two cores or more).
fn splits_tiers(clients: usize) -> bool {
    edge_goal_clients(clients) && cpu::cores_online() >= 2
}

/// `flash.edge_vs_direct_N`: holds/s through the edge over batched direct at N clients.
fn edge_goals(section: &mut Section, runs: &[Run]) {
    /// The edge path, its direct baseline, the id's suffix and how the goal names the run.
    const TOPOLOGIES: [(usize, usize, &str, &str); 2] = [
        (VIA_EDGE, BATCHED, "", ""),
        (
            SPLIT_EDGE,
            SPLIT_DIRECT,
            "_split",
            ", the tiers on cores of their own",
        ),
    ];
    for (clients, share) in EDGE_GOALS {
        for (via, baseline, suffix, topology) in TOPOLOGIES {
            let (Some(edge), Some(direct)) = (
                holds_per_s(runs, clients, via),
                holds_per_s(runs, clients, baseline),
            ) else {
                continue;
            };
            if direct <= 0.0 {
                continue;
            }
            let of_direct = edge / direct;
            section.goal(
                &format!("flash.edge_vs_direct_{clients}{suffix}"),
                &format!(
                    "holds through one edge ≥ {:.0}% of direct at {clients} clients{topology}",
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
}

/// `flash.proxy_vs_direct_N` (reported): holds/s through the native proxy over batched
/// direct at N clients — the share an extra HTTP hop that does nothing else leaves on these
/// cores, the ceiling of `flash.edge_vs_direct_N` — and the edge's holds/s against it.
fn proxy_goals(section: &mut Section, runs: &[Run]) {
    for (clients, _) in EDGE_GOALS {
        let (Some(proxy), Some(direct), Some(edge)) = (
            holds_per_s(runs, clients, VIA_PROXY),
            holds_per_s(runs, clients, BATCHED),
            holds_per_s(runs, clients, VIA_EDGE),
        ) else {
            continue;
        };
        if direct <= 0.0 || proxy <= 0.0 {
            continue;
        }
        section.goal(
            &format!("flash.proxy_vs_direct_{clients}"),
            &format!(
                "holds through a native reverse proxy that only forwards, of direct at {clients} clients: the ceiling for any edge on these cores (reported)"
            ),
            format!(
                "{:.0}% ({proxy:.0} vs {direct:.0} holds/s); the edge reaches {:.0}% of the proxy",
                proxy / direct * 100.0,
                edge / proxy * 100.0
            ),
            true,
        );
    }
}

/// `flash.edge_cpu_per_hold_128` (reported): what a hold costs the edge, beside what it
/// costs the ledger tier straight at it — the figure that sizes a deployment's edges.
fn cpu_goal(section: &mut Section, runs: &[Run]) {
    let cpu = |path: usize, tier: Tier| {
        run_of(runs, GOAL_CLIENTS, path).and_then(|r| r.cpu_us.get(&tier).copied())
    };
    let (Some(edge), Some(ledger), Some(postgres)) = (
        cpu(VIA_EDGE, Tier::Edge),
        cpu(BATCHED, Tier::Ledger),
        cpu(BATCHED, Tier::Postgres),
    ) else {
        return;
    };
    section.goal(
        "flash.edge_cpu_per_hold_128",
        "CPU per granted hold at 128 clients: the edge's, beside the ledger tier's straight at it (reported)",
        format!(
            "{edge:.0} µs at the edge; {:.0} µs for the ledger tier direct (ledger {ledger:.0} + PostgreSQL {postgres:.0})",
            ledger + postgres
        ),
        true,
    );
}

/// CPU per granted hold by tier, every path at every client count.
fn cpu_table(runs: &[Run]) -> Table {
    let mut columns = vec!["clients", "path"];
    columns.extend(Tier::ALL.map(Tier::label));
    columns.extend(["all four", "holds per batch"]);
    let mut table = Table::new(
        "CPU time per granted hold (µs) by tier, from /proc (warm-up included; on the native proxy's path its CPU is in the edge column)",
        &columns,
    );
    for run in runs {
        let us = |tier: Tier| run.cpu_us.get(&tier).copied().unwrap_or(0.0);
        let mut row = vec![run.clients.to_string(), PATHS[run.path].to_owned()];
        row.extend(Tier::ALL.iter().map(|&tier| format!("{:.0}", us(tier))));
        row.push(format!(
            "{:.0}",
            Tier::ALL.iter().map(|&t| us(t)).sum::<f64>()
        ));
        row.push(run.mean_batch.map_or(String::new(), |b| format!("{b:.1}")));
        table.row(row);
    }
    table
}

/// `path`'s run at `clients`, if it ran.
fn run_of(runs: &[Run], clients: usize, path: usize) -> Option<&Run> {
    runs.iter().find(|r| r.clients == clients && r.path == path)
}

/// `path`'s holds/s at `clients`, if it ran.
fn holds_per_s(runs: &[Run], clients: usize, path: usize) -> Option<f64> {
    run_of(runs, clients, path).map(|r| r.figures.ok_per_s)
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
