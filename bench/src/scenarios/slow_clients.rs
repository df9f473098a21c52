//! Scenario 7: cached reads through an edge node while slow-body clients are connected
//! (issue 10, finding 1). A request must not hold an instance slot while its body is
//! arriving, so a crowd of clients that announce a body and stall half-way must cost the
//! cached reads next to them nothing but the connections they hold.
//!
//! One warm edge; first a quiet phase (open-loop cached availability reads at the plan's
//! rate, p99), then the same reads while `plan.slow_clients` raw TCP connections each send
//! a hold's head with a declared `Content-Length` and half of its body, then stall; the
//! edge answers each `408` after its body-read timeout (shortened here), and the client
//! opens a new connection and stalls again. The goal is the loaded p99 against the quiet
//! one; the checks are that no request was shed (`503`, instance-wait failures) and that
//! the slow connections were answered `408`, every one of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_testkit::metrics::sum_metric;
use tessera_testkit::raw_http::post_json_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::load::{self, Call, Figures, Targets};
use crate::report::{count, ms, Section, Table};
use crate::stack::{start_edge, Edge, Env, Ledger};
use crate::workloads::Reads;
use crate::{Plan, Progress};

/// The goal's id in report.json, and its bound: loaded p99 at most this many times quiet.
const GOAL_ID: &str = "reads.slow_clients_p99";
const GOAL_P99_RATIO: f64 = 2.0;
/// Zones of the event read, and tickets in each (nothing is sold: the holds never end).
const ZONES: usize = 4;
const ZONE_STOCK: i32 = 1_000;
/// The edge's body-read timeout here (EDGE_BODY_READ_TIMEOUT_MS): shorter than the default
/// 5 s so that every slow connection is answered and reopened within a phase.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The body a slow client announces; it sends half of it.
const BODY_BYTES: usize = 1_000;
/// Open-loop connections for the reads (as in scenario 3).
const READ_CONNECTIONS_MAX: usize = 64;
/// Descriptors the generator keeps for everything but the slow clients: the reads' pool,
/// the HTTP client to the ledger and the edge's metrics, logs, stdio.
const FD_RESERVE: u64 = 512;
/// Slow connections being opened at once: under the listener's backlog (1,024), so the
/// kernel drops no SYN (a dropped SYN is retried a second later and stretches the ramp).
const CONNECTS_IN_FLIGHT_MAX: usize = 128;
/// Connecting and writing the partial request, per slow connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connect, a slow client waits this long before the next: a refused
/// connection would otherwise spin.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Longer than the body-read timeout by this, a slow connection's wait for its 408 ends and
/// it counts as unanswered.
const ANSWER_SLACK: Duration = Duration::from_secs(5);
/// How long the ramp (every slow client connected, its partial request sent) may take.
const RAMP_LIMIT: Duration = Duration::from_secs(30);
/// Connections one slow client opens at most: the phase ends them long before; this only
/// bounds the loop.
const CYCLES_MAX: u64 = 1_000;
/// The largest answer head a slow client reads (a 408 problem's head is a few hundred bytes).
const HEAD_MAX_BYTES: usize = 16 << 10;
/// How often the slow connections open are counted during the loaded phase.
const OPEN_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often the ramp and the wait for the 408s look at the counters.
const POLL: Duration = Duration::from_millis(20);

/// The ledger and the warm edge, the read's path.
struct Stand {
    ledger: Ledger,
    edge: Edge,
    path: String,
}

/// What the slow clients saw, counted as it happens.
#[derive(Default)]
struct Counts {
    /// Connections open with their partial request sent, waiting for an answer.
    open: AtomicU64,
    /// Connections opened (partial request sent) in all.
    opened: AtomicU64,
    /// Answered 408.
    timed_out: AtomicU64,
    /// Answered with another status, by status.
    other: Mutex<BTreeMap<u16, u64>>,
    /// Closed (or reset) with no answer.
    closed: AtomicU64,
    /// No answer and no close within the body-read timeout and `ANSWER_SLACK`.
    silent: AtomicU64,
    /// Connects (or writes of the partial request) that failed.
    connect_failed: AtomicU64,
}

/// Slow connections open during the loaded phase: the fewest and the mean of the samples.
struct OpenSamples {
    min: u64,
    mean: f64,
}

/// The edge's own counters at the end.
struct EdgeCounts {
    timeouts_408: f64,
    overloaded_503: f64,
    instance_waits: f64,
    refused_connections: f64,
    cache_hits: f64,
    cache_misses: f64,
    cache_bypasses: f64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("slow-clients", "7. Cached reads beside slow-body clients");
    let (clients, fd_limit) = clients_fitting(plan.slow_clients);
    progress.step("slow clients: starting ledger and edge");
    let stand = Stand::start(env).await?;
    progress.step(&format!(
        "slow clients: quiet reads at {}/s",
        count(plan.read_latency_rate_per_s)
    ));
    let quiet = reads(&stand, plan).await?;
    progress.step(&format!(
        "slow clients: opening {} slow clients",
        count(clients as f64)
    ));
    let counts = Arc::new(Counts::default());
    let mut swarm = start_swarm(&stand.edge.authority, clients, &counts);
    let ramp = wait_for(RAMP_LIMIT, || {
        counts.opened.load(Ordering::Relaxed) >= clients as u64
    })
    .await;
    progress.step(&format!(
        "slow clients: reads at {}/s beside {} slow clients",
        count(plan.read_latency_rate_per_s),
        count(clients as f64)
    ));
    let (loaded, open) = tokio::join!(reads(&stand, plan), sample_open(&counts, plan.slow_window));
    let loaded = loaded?;
    // Every slow client's first connection is answered before the swarm stops.
    let answers_limit = BODY_READ_TIMEOUT + ANSWER_SLACK;
    wait_for(answers_limit, || answered(&counts) >= clients as u64).await;
    swarm.shutdown().await;
    let edge = EdgeCounts::scrape(&stand.edge).await?;

    section
        .notes
        .extend(notes(plan, clients, fd_limit, ramp, &edge));
    goal(&mut section, clients, &quiet, &loaded);
    checks(&mut section, clients, &counts, &edge, [&quiet, &loaded]);
    section.tables.push(table(&quiet, &loaded, &open));
    section.data = json!({
        "slow_clients": clients, "fd_limit": fd_limit,
        "body_read_timeout_ms": BODY_READ_TIMEOUT.as_millis() as u64,
        "ramp_s": ramp.map(|d| d.as_secs_f64()),
        "quiet": quiet, "loaded": loaded,
        "slow_connections": counts.summary(),
        "open_min": open.min, "open_mean": open.mean,
        "edge": {"408": edge.timeouts_408, "503": edge.overloaded_503,
                 "instance_wait": edge.instance_waits, "connections_refused": edge.refused_connections,
                 "cache_hits": edge.cache_hits, "cache_misses": edge.cache_misses,
                 "cache_bypasses": edge.cache_bypasses},
    });
    stand.stop().await?;
    Ok(section)
}

/// `wanted` slow clients, or fewer if the generator's open-file limit (raised to its hard
/// limit first) cannot hold them beside [`FD_RESERVE`]; and that limit, if readable.
fn clients_fitting(wanted: usize) -> (usize, Option<u64>) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let room = usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
            (wanted.min(room), Some(limit))
        }
        Err(_) => (wanted, None),
    }
}

impl Stand {
    /// A ledger, an event, an edge with the short body-read timeout, its cache filled.
    async fn start(env: &Env) -> anyhow::Result<Self> {
        let ledger = Ledger::start(env, "slow", &[]).await?;
        let ids = ledger.create_event(env, "slow", ZONES, ZONE_STOCK).await?;
        let timeout_ms = BODY_READ_TIMEOUT.as_millis().to_string();
        let settings = [("EDGE_BODY_READ_TIMEOUT_MS", timeout_ms.as_str())];
        let edge = start_edge(env, "slow-edge", &ledger, &settings).await?;
        let path = format!("/v1/shows/{}/availability", ids.show_id);
        load::once(&edge.authority, &Call::get(0, path.clone())).await?;
        Ok(Self { ledger, edge, path })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.edge.stop().await;
        self.ledger.stop().await
    }
}

/// Open-loop cached reads at the plan's rate for the phase's window.
async fn reads(stand: &Stand, plan: &Plan) -> anyhow::Result<Figures> {
    load::open_loop(
        &Targets::new(vec![stand.edge.authority.clone()]),
        Arc::new(Reads::one(&stand.path)),
        plan.read_latency_rate_per_s,
        plan.slow_window,
        READ_CONNECTIONS_MAX,
    )
    .await
}

/// Polls `done` every [`POLL`] for at most `limit`: how long it took to hold, or `None`.
async fn wait_for(limit: Duration, done: impl Fn() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    done().then(|| started.elapsed())
}

/// Slow connections whose wait has ended, one way or another.
fn answered(counts: &Counts) -> u64 {
    let other: u64 = counts.other.lock().map_or(0, |o| o.values().sum());
    counts.timed_out.load(Ordering::Relaxed)
        + other
        + counts.closed.load(Ordering::Relaxed)
        + counts.silent.load(Ordering::Relaxed)
}

/// The slow connections open, every [`OPEN_SAMPLE_EVERY`] for `window`.
async fn sample_open(counts: &Counts, window: Duration) -> OpenSamples {
    let samples_max = (window.as_millis() / OPEN_SAMPLE_EVERY.as_millis()).max(1) as u64;
    let (mut min, mut sum) = (u64::MAX, 0u64);
    let mut ticks = tokio::time::interval(OPEN_SAMPLE_EVERY);
    for _ in 0..samples_max {
        ticks.tick().await;
        let open = counts.open.load(Ordering::Relaxed);
        min = min.min(open);
        sum += open;
    }
    OpenSamples {
        min,
        mean: sum as f64 / samples_max as f64,
    }
}

/// `clients` slow clients against `authority`, each in its own task (stopped by shutting
/// the set down).
fn start_swarm(authority: &str, clients: usize, counts: &Arc<Counts>) -> JoinSet<()> {
    let filler = " ".repeat(BODY_BYTES);
    let mut body = json!({"show_id": "slow", "zone_id": "slow", "quantity": 1}).to_string();
    body.push_str(&filler[body.len().min(BODY_BYTES)..]);
    let request = post_json_request("/v1/holds", "slow-client", body.as_bytes());
    // The head and half the body: the rest never comes.
    let partial: Arc<[u8]> = request[..request.len() - body.len() / 2].into();
    let gate = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT_MAX));
    let authority: Arc<str> = authority.into();
    let mut swarm = JoinSet::new();
    for _ in 0..clients {
        swarm.spawn(slow_client(
            authority.clone(),
            partial.clone(),
            gate.clone(),
            counts.clone(),
        ));
    }
    swarm
}

/// One slow client: opens a connection, sends `partial`, waits for the answer, counts it,
/// and opens the next, at most [`CYCLES_MAX`] times.
async fn slow_client(
    authority: Arc<str>,
    partial: Arc<[u8]>,
    gate: Arc<Semaphore>,
    counts: Arc<Counts>,
) {
    for _ in 0..CYCLES_MAX {
        let Some(mut stream) = open_stalled(&authority, &partial, &gate).await else {
            counts.connect_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        counts.opened.fetch_add(1, Ordering::Relaxed);
        counts.open.fetch_add(1, Ordering::Relaxed);
        let answer =
            tokio::time::timeout(BODY_READ_TIMEOUT + ANSWER_SLACK, read_status(&mut stream)).await;
        counts.open.fetch_sub(1, Ordering::Relaxed);
        match answer {
            Ok(Some(408)) => counts.timed_out.fetch_add(1, Ordering::Relaxed),
            Ok(Some(status)) => {
                if let Ok(mut other) = counts.other.lock() {
                    *other.entry(status).or_default() += 1;
                }
                0
            }
            Ok(None) => counts.closed.fetch_add(1, Ordering::Relaxed),
            Err(_) => counts.silent.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A connection to `authority` with `partial` written, within [`CONNECT_TIMEOUT`], at most
/// [`CONNECTS_IN_FLIGHT_MAX`] being opened at once.
async fn open_stalled(authority: &str, partial: &[u8], gate: &Semaphore) -> Option<TcpStream> {
    let _permit = gate.acquire().await.ok()?;
    tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut stream = TcpStream::connect(authority).await.ok()?;
        stream.write_all(partial).await.ok()?;
        Some(stream)
    })
    .await
    .ok()?
}

/// The status of the answer's head, or `None` if the connection closed before a status
/// line (or sent something else).
async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < HEAD_MAX_BYTES {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

impl Counts {
    fn summary(&self) -> serde_json::Value {
        let other = self.other.lock().map(|o| o.clone()).unwrap_or_default();
        json!({
            "opened": self.opened.load(Ordering::Relaxed),
            "answered_408": self.timed_out.load(Ordering::Relaxed),
            "answered_other": other,
            "closed_unanswered": self.closed.load(Ordering::Relaxed),
            "silent": self.silent.load(Ordering::Relaxed),
            "connect_failed": self.connect_failed.load(Ordering::Relaxed),
        })
    }
}

impl EdgeCounts {
    async fn scrape(edge: &Edge) -> anyhow::Result<Self> {
        let text = edge.scrape().await?;
        let sum = |name: &str, labels: &[(&str, &str)]| sum_metric(&text, name, labels);
        Ok(Self {
            timeouts_408: sum("edge_requests_total", &[("status", "408")]),
            overloaded_503: sum("edge_requests_total", &[("status", "503")]),
            instance_waits: sum("edge_guest_failures_total", &[("reason", "instance_wait")]),
            refused_connections: sum("edge_connections_refused_total", &[]),
            cache_hits: sum("edge_cache_total", &[("result", "hit")]),
            cache_misses: sum("edge_cache_total", &[("result", "miss")]),
            cache_bypasses: sum("edge_cache_total", &[("result", "bypass")]),
        })
    }
}

fn notes(
    plan: &Plan,
    clients: usize,
    fd_limit: Option<u64>,
    ramp: Option<Duration>,
    edge: &EdgeCounts,
) -> [String; 2] {
    let fitted = if clients < plan.slow_clients {
        format!(
            " (lowered from {} to fit the generator's open-file limit)",
            count(plan.slow_clients as f64)
        )
    } else {
        String::new()
    };
    [
        format!(
            "Cached availability reads, open loop at {}/s for {:.0} s, first on a quiet edge, then beside {} slow clients{fitted} \
             (open-file limit {}): raw TCP connections that each send a hold's head announcing {BODY_BYTES} bytes and half of them, then stall; \
             the edge answers 408 after its body-read timeout (EDGE_BODY_READ_TIMEOUT_MS={}, shortened for the bench) and the client reconnects and stalls again. \
             The slow connections were all open {} after the ramp began.",
            count(plan.read_latency_rate_per_s),
            plan.slow_window.as_secs_f64(),
            count(clients as f64),
            fd_limit.map_or("unknown".to_owned(), |l| count(l as f64)),
            BODY_READ_TIMEOUT.as_millis(),
            ramp.map_or("never (see the table)".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        ),
        format!(
            "The edge's counters over the run: {} answers 408, {} 503, {} instance-wait failures, {} connections refused at its bound; \
             cache {} hits, {} misses, {} bypasses.",
            count(edge.timeouts_408),
            count(edge.overloaded_503),
            count(edge.instance_waits),
            count(edge.refused_connections),
            count(edge.cache_hits),
            count(edge.cache_misses),
            count(edge.cache_bypasses),
        ),
    ]
}

/// Loaded p99 within [`GOAL_P99_RATIO`] of quiet.
fn goal(section: &mut Section, clients: usize, quiet: &Figures, loaded: &Figures) {
    let measured = quiet.ok > 0 && loaded.ok > 0 && quiet.p99_ms > 0.0;
    let ratio = if measured {
        loaded.p99_ms / quiet.p99_ms
    } else {
        f64::INFINITY
    };
    section.goal(
        GOAL_ID,
        &format!(
            "cached read p99 beside {} slow-body clients ≤ 2× quiet",
            count(clients as f64)
        ),
        format!(
            "{ratio:.2}× ({} vs {} ms)",
            ms(loaded.p99_ms),
            ms(quiet.p99_ms)
        ),
        measured && ratio <= GOAL_P99_RATIO,
    );
}

/// Nothing shed, every read answered; every slow connection answered 408.
fn checks(
    section: &mut Section,
    clients: usize,
    counts: &Counts,
    edge: &EdgeCounts,
    phases: [&Figures; 2],
) {
    let mut shed = Vec::new();
    for (name, figures) in ["quiet", "loaded"].iter().zip(phases) {
        let overloaded = figures.by_status.get(&503).copied().unwrap_or(0);
        if overloaded > 0 || figures.failed > 0 {
            shed.push(format!(
                "{name} reads: {overloaded} answered 503, {} failed in all",
                figures.failed
            ));
        }
    }
    if edge.overloaded_503 > 0.0 || edge.instance_waits > 0.0 {
        shed.push(format!(
            "the edge answered {} 503s and counted {} instance-wait failures",
            edge.overloaded_503, edge.instance_waits
        ));
    }
    section.check_failures(
        "no request shed beside slow clients (zero 503 overloaded, zero instance-wait failures, every read 200)",
        &shed,
        format!("{} reads answered 200; the edge answered no 503 and had no instance-wait failure", count((phases[0].ok + phases[1].ok) as f64)),
    );
    let timed_out = counts.timed_out.load(Ordering::Relaxed);
    let mut unanswered = Vec::new();
    if timed_out < clients as u64 {
        unanswered.push(format!(
            "{timed_out} answers 408 for {clients} slow clients"
        ));
    }
    let summary = counts.summary();
    let other_ends = answered(counts) - timed_out;
    if other_ends > 0 {
        unanswered.push(format!(
            "{other_ends} slow connections ended otherwise: {summary}"
        ));
    }
    if edge.timeouts_408 < timed_out as f64 {
        unanswered.push(format!(
            "the edge counted {} 408s, the clients {timed_out}",
            edge.timeouts_408
        ));
    }
    section.check_failures(
        "every slow connection answered 408 after the body-read timeout",
        &unanswered,
        format!(
            "{} 408s on {} slow connections opened by {} clients",
            count(timed_out as f64),
            count(counts.opened.load(Ordering::Relaxed) as f64),
            count(clients as f64)
        ),
    );
}

fn table(quiet: &Figures, loaded: &Figures, open: &OpenSamples) -> Table {
    let mut table = Table::new(
        "Cached availability reads at a fixed rate (ms), quiet and beside slow-body clients",
        &[
            "phase",
            "slow connections open (min / mean)",
            "reads",
            "p50",
            "p99",
            "p99.9",
            "late",
            "503",
            "errors",
        ],
    );
    let row = |phase: &str, open: String, f: &Figures| {
        vec![
            phase.to_owned(),
            open,
            count(f.ok as f64),
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms),
            f.late_by_cause(),
            count(f.by_status.get(&503).copied().unwrap_or(0) as f64),
            count(f.failed as f64),
        ]
    };
    table.row(row("quiet", "0".to_owned(), quiet));
    table.row(row(
        "loaded",
        format!("{} / {}", count(open.min as f64), count(open.mean)),
        loaded,
    ));
    table
}
