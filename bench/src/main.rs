//! `tessera-bench`: Tessera's benchmarks, each figure side by side with a baseline measured
//! in the same run on the same machine. It is the load generator, in its own process; the
//! systems under test (ledgers, edge nodes, the native baseline) run as child processes.
//! `cargo xtask bench [--quick]` builds everything and runs it:
//!
//! ```text
//! DATABASE_URL=… REDIS_URL=… tessera-bench run [--quick] [--only 1,3] --out DIR \
//!     --ledger-bin P --edge-bin P --manifest P [--build release|debug] [--build-note TEXT]
//! tessera-bench serve-native --addr A --ledger URL --show ID --event ID
//! ```
//!
//! It writes `DIR/report.json`, `DIR/report.md` and SVG charts, and exits non-zero if a
//! correctness check (oversell, conservation) failed, never because of a throughput figure.

mod audit;
mod chaos;
mod charts;
mod cpu;
mod load;
mod native;
mod native_proxy;
mod report;
mod scenarios;
mod stack;
mod workloads;

/// mimalloc instead of the system allocator: the generator shares the cores with what it
/// measures, and glibc malloc/free was a visible share of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

use report::{Machine, Report};
use stack::Env;

/// Scenarios, numbered from 1 (`--only` picks by number; [`USAGE`] lists them).
const SCENARIOS: usize = 15;

const USAGE: &str = "usage:
  DATABASE_URL=... REDIS_URL=... tessera-bench run [--quick] [--only 1,3,...] --out DIR \\
      --ledger-bin PATH --edge-bin PATH --manifest PATH [--build release|debug] \\
      [--build-note TEXT (how the binaries were built beyond --build, for the report)]
  tessera-bench serve-native --addr HOST:PORT --ledger URL --show SHOW_ID --event EVENT_ID
  tessera-bench serve-proxy --addr HOST:PORT --ledger URL
  DATABASE_URL=... CHAOS_PG_CTL=... CHAOS_PG_DATA=... [CHAOS_PG_USER=...] tessera-bench chaos \\
      [--short] [--only FAULT_ID] --out DIR --ledger-bin PATH --edge-bin PATH --manifest PATH
--only picks scenarios by number: 1 flash sale, 2 sell-out, 3 edge reads, 4 invalidation,
  5 scale, 6 mixed day, 7 slow clients, 8 geo, 9 seats, 10 check-in at the door,
  11 webhooks during a flash sale, 12 rate limits (one address hammering),
  13 the queue (joins, admission, passes), 14 the storefront's first load in Chromium,
  15 checkout (every buyer holds and confirms)";

/// How long and how wide each scenario runs: `--quick` for a first look (and CI's
/// correctness run), the full plan for the figures in the README.
pub struct Plan {
    pub quick: bool,
    pub warmup: Duration,
    pub slices: u32,
    pub flash_clients: Vec<usize>,
    pub flash_slice: Duration,
    pub sellout_clients: u64,
    pub sellout_rate_per_s: f64,
    pub read_slice: Duration,
    pub read_latency_rate_per_s: f64,
    pub read_latency_window: Duration,
    pub invalidation_changes: usize,
    pub scale_sizes: Vec<usize>,
    pub scale_slice: Duration,
    pub search_window: Duration,
    pub mixed_window: Duration,
    pub mixed_rate_per_s: f64,
    /// Slow-body clients beside the cached reads (scenario 7), and each phase's window.
    pub slow_clients: usize,
    pub slow_window: Duration,
    /// Scenario 8 (a buyer far from the ledger): each browse and hold run's window, and
    /// the changes timed from the ledger's commit to the remote edge.
    pub geo_window: Duration,
    pub geo_changes: usize,
    /// Scenario 10 (check-in at the door): the tickets 32 doors scan twice each, the valid
    /// codes the ledger-redeem path may use up in its window (each is redeemed once), the
    /// orders voided one at a time, and each path's window in the edge-verify comparison.
    pub checkin_tickets: usize,
    pub checkin_redeem_tickets: usize,
    pub checkin_cancellations: usize,
    pub checkin_window: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                warmup: Duration::from_millis(200),
                slices: 2,
                flash_clients: vec![1, 128],
                flash_slice: Duration::from_millis(1500),
                sellout_clients: 10_000,
                sellout_rate_per_s: 2_500.0,
                read_slice: Duration::from_millis(1000),
                read_latency_rate_per_s: 500.0,
                read_latency_window: Duration::from_secs(2),
                invalidation_changes: 200,
                scale_sizes: vec![10, 1_000, 10_000],
                scale_slice: Duration::from_millis(1000),
                search_window: Duration::from_secs(2),
                mixed_window: Duration::from_secs(10),
                mixed_rate_per_s: 400.0,
                // The issue's 1,000 fit here (two descriptors each, one per process).
                slow_clients: 1_000,
                slow_window: Duration::from_secs(4),
                geo_window: Duration::from_millis(1500),
                geo_changes: 10,
                // Debug builds redeem a few hundred scans a second: CI stays fast.
                checkin_tickets: 500,
                checkin_redeem_tickets: 1_000,
                checkin_cancellations: 10,
                checkin_window: Duration::from_secs(1),
            }
        } else {
            Self {
                quick,
                warmup: Duration::from_millis(300),
                slices: 4,
                flash_clients: vec![1, 32, 128, 512],
                flash_slice: Duration::from_secs(2),
                sellout_clients: 10_000,
                sellout_rate_per_s: 2_500.0,
                read_slice: Duration::from_secs(2),
                read_latency_rate_per_s: 1_000.0,
                read_latency_window: Duration::from_secs(5),
                invalidation_changes: 1_000,
                scale_sizes: vec![10, 1_000, 100_000],
                scale_slice: Duration::from_secs(2),
                search_window: Duration::from_secs(5),
                mixed_window: Duration::from_secs(60),
                mixed_rate_per_s: 800.0,
                slow_clients: 1_000,
                slow_window: Duration::from_secs(10),
                geo_window: Duration::from_secs(10),
                geo_changes: 50,
                checkin_tickets: 5_000,
                // More than the ledger redeems in the window on this machine, so the path
                // runs the whole window (it ends early, and says so, if they run out).
                checkin_redeem_tickets: 10_000,
                checkin_cancellations: 50,
                checkin_window: Duration::from_secs(2),
            }
        }
    }
}

/// Progress on the terminal (indicatif); plain lines on stderr when it is not one (CI).
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
}

impl Progress {
    fn new(scenarios: u64) -> Self {
        let bar = ProgressBar::new(scenarios);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] scenario {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            started: Instant::now(),
        }
    }

    pub fn step(&self, message: &str) {
        if self.bar.is_hidden() {
            eprintln!(
                "[{:>5.0} s] {message}",
                self.started.elapsed().as_secs_f64()
            );
        }
        self.bar.set_message(message.to_owned());
    }

    pub fn line(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    fn scenario_done(&self) {
        self.bar.inc(1);
    }
}

struct RunArgs {
    quick: bool,
    out: PathBuf,
    build: String,
    build_note: Option<String>,
    only: Option<Vec<usize>>,
    env: Env,
}

fn flag_values(args: &[String]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut values = std::collections::HashMap::new();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument {flag:?}\n{USAGE}");
        };
        if name == "quick" || name == "short" {
            values.insert(name.to_owned(), String::new());
            continue;
        }
        let value = iter
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        values.insert(name.to_owned(), value.clone());
    }
    Ok(values)
}

fn take(
    values: &mut std::collections::HashMap<String, String>,
    name: &str,
) -> anyhow::Result<String> {
    values
        .remove(name)
        .with_context(|| format!("--{name} is required\n{USAGE}"))
}

/// The binaries, servers and output folder every stand needs, from the flags.
fn stand_env(
    values: &mut std::collections::HashMap<String, String>,
    out: &std::path::Path,
    redis_url: String,
) -> anyhow::Result<Env> {
    Ok(Env {
        ledger_bin: take(values, "ledger-bin")?.into(),
        edge_bin: take(values, "edge-bin")?.into(),
        manifest: take(values, "manifest")?.into(),
        bench_bin: std::env::current_exe().context("locating this binary")?,
        database_url: std::env::var("DATABASE_URL")
            .context("DATABASE_URL must name a PostgreSQL server")?,
        redis_url,
        out_dir: out.to_path_buf(),
        edge_key: uuid::Uuid::new_v4().simple().to_string(),
        // Setup and probes only; a stalled server must not hang the run.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?,
    })
}

/// `tessera-bench chaos [--short] --out DIR --ledger-bin P --edge-bin P --manifest P`.
async fn chaos_command(args: &[String]) -> anyhow::Result<()> {
    let mut values = flag_values(args)?;
    let out = PathBuf::from(take(&mut values, "out")?);
    // The campaign starts its own Redis (it stops it mid-sale).
    let mut env = stand_env(&mut values, &out, String::new())?;
    let mut form = chaos::Form::new(values.remove("short").is_some());
    form.only = values.remove("only");
    if let Some(unknown) = values.keys().next() {
        bail!("unknown flag --{unknown}\n{USAGE}");
    }
    let ran = chaos::run(&mut env, &form).await;
    if let Err(e) = stack::drop_databases(&env).await {
        eprintln!("warning: leftover chaos databases not dropped: {e:#}");
    }
    ran
}

fn parse_run(args: &[String]) -> anyhow::Result<RunArgs> {
    let mut values = flag_values(args)?;
    let out = PathBuf::from(take(&mut values, "out")?);
    let redis_url = std::env::var("REDIS_URL").context("REDIS_URL must name a Redis server")?;
    let env = stand_env(&mut values, &out, redis_url)?;
    let only = match values.remove("only") {
        Some(list) => Some(
            list.split(',')
                .map(str::parse)
                .collect::<Result<Vec<usize>, _>>()
                .context("--only")?,
        ),
        None => None,
    };
    let parsed = RunArgs {
        quick: values.remove("quick").is_some(),
        out,
        build: values
            .remove("build")
            .unwrap_or_else(|| "release".to_owned()),
        build_note: values.remove("build-note"),
        only,
        env,
    };
    if let Some(unknown) = values.keys().next() {
        bail!("unknown flag --{unknown}\n{USAGE}");
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((command, rest)) if command == "run" => run(parse_run(rest)?).await,
        Some((command, rest)) if command == "chaos" => chaos_command(rest).await,
        Some((command, rest)) if command == "serve-native" => {
            let mut values = flag_values(rest)?;
            let mut take = |name: &str| take(&mut values, name);
            native::serve(native::Args {
                addr: take("addr")?,
                ledger: take("ledger")?,
                show_id: take("show")?.parse().context("--show")?,
                event_id: take("event")?.parse().context("--event")?,
            })
            .await
        }
        Some((command, rest)) if command == "serve-proxy" => {
            let mut values = flag_values(rest)?;
            let mut take = |name: &str| take(&mut values, name);
            native_proxy::serve(native_proxy::Args {
                addr: take("addr")?,
                ledger: take("ledger")?,
            })
            .await
        }
        _ => bail!("{USAGE}"),
    }
}

/// The durability settings the figures were measured with (they must stay on).
async fn describe_postgres(url: &str) -> anyhow::Result<String> {
    let pool = PgPool::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let setting = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(&format!("show {name}"))
                .fetch_one(&pool)
                .await
        }
    };
    let (sync, fsync, version) = (
        setting("synchronous_commit").await?,
        setting("fsync").await?,
        setting("server_version").await?,
    );
    pool.close().await;
    if sync == "off" || fsync == "off" {
        bail!("refusing to benchmark with synchronous_commit={sync} fsync={fsync}: holds must be durable");
    }
    Ok(format!(
        "PostgreSQL {version} (synchronous_commit={sync}, fsync={fsync})"
    ))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(args.quick);
    let postgres = describe_postgres(&args.env.database_url).await?;
    let selected = |n: usize| args.only.as_ref().is_none_or(|only| only.contains(&n));
    let progress = Progress::new((1..=SCENARIOS).filter(|n| selected(*n)).count() as u64);
    let env = &args.env;
    let ran = run_scenarios(env, &plan, &progress, &selected).await;
    // Stands drop their databases when they stop; after an error some may not have.
    if let Err(e) = stack::drop_databases(env).await {
        eprintln!("warning: leftover bench databases not dropped: {e:#}");
    }
    let sections = ran?;
    progress.bar.finish_and_clear();
    let report = Report {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        mode: if plan.quick { "quick" } else { "full" }.to_owned(),
        build_note: args.build_note.unwrap_or_default(),
        build: args.build,
        machine: Machine::describe(),
        postgres,
        duration_s: started.elapsed().as_secs_f64(),
        sections,
    };
    report.write(&args.out)?;
    println!("{}", report.goals_table());
    println!("report: {}", args.out.join("report.md").display());
    if !report.checks_passed() {
        bail!(
            "a correctness check failed; see {}",
            args.out.join("report.md").display()
        );
    }
    Ok(())
}

async fn run_scenarios(
    env: &Env,
    plan: &Plan,
    progress: &Progress,
    selected: &dyn Fn(usize) -> bool,
) -> anyhow::Result<Vec<report::Section>> {
    let mut sections = Vec::new();
    for n in (1..=SCENARIOS).filter(|n| selected(*n)) {
        let section = match n {
            1 => scenarios::flash_sale::run(env, plan, progress).await,
            2 => scenarios::sell_out::run(env, plan, progress).await,
            3 => scenarios::edge_reads::run(env, plan, progress).await,
            4 => scenarios::invalidation::run(env, plan, progress).await,
            5 => scenarios::scale::run(env, plan, progress).await,
            6 => scenarios::mixed_day::run(env, plan, progress).await,
            7 => scenarios::slow_clients::run(env, plan, progress).await,
            8 => scenarios::geo::run(env, plan, progress).await,
            9 => scenarios::seats::run(env, plan, progress).await,
            10 => scenarios::checkin::run(env, plan, progress).await,
            11 => scenarios::webhooks::run(env, plan, progress).await,
            12 => scenarios::ratelimit::run(env, plan, progress).await,
            13 => scenarios::queue::run(env, plan, progress).await,
            14 => scenarios::storefront::run(env, plan, progress).await,
            _ => scenarios::checkout::run(env, plan, progress).await,
        }
        .with_context(|| format!("scenario {n}"))?;
        if let Some(reason) = &section.skipped {
            progress.line(&format!("  skipped: {reason}"));
        }
        for goal in &section.goals {
            let met = if goal.met { "met" } else { "NOT met" };
            progress.line(&format!(
                "  goal: {} — measured {} ({met})",
                goal.goal, goal.measured
            ));
        }
        for check in &section.checks {
            let passed = if check.passed { "passed" } else { "FAILED" };
            progress.line(&format!("  check: {} — {passed}", check.name));
        }
        sections.push(section);
        progress.scenario_done();
    }
    Ok(sections)
}
