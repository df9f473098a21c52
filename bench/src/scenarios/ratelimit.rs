//! Scenario 12: one address hammering one edge node (`ratelimit.*`). A ledger and one edge
//! node with the rate limits on (spin.toml's production reads limit, 100/s in 10-second
//! windows; every other scenario runs with them off). Each client binds its own loopback
//! address (all of 127/8 is loopback), so the node sees distinct client addresses:
//!
//! - **normal clients**: [`NORMAL_CLIENTS`] addresses (`127.0.0.10`, `.11`, …), each
//!   reading the cached event detail open-loop at [`NORMAL_RATE_PER_S`] (well under the
//!   limit), latency measured from when each request was due;
//! - **the hammer**: `127.0.0.2`, [`HAMMER_RATE_PER_S`] reads/s open-loop over
//!   [`HAMMER_CONNECTIONS`] connections.
//!
//! Two phases of the same length on the same node: quiet (normal clients alone), then
//! hammered (both at once). Reported: the share of the hammer's requests answered 429,
//! and the normal clients' p99 in the hammered phase against the quiet one
//! (`ratelimit.hammer_p99_ratio`, goal ≤ 2×). Checks: no normal request refused or
//! failed, and the hammer answered only 200 or 429.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::load::{histogram, quantile_ms};
use crate::report::{count, ms, Section, Table};
use crate::stack::{start_edge, Edge, Env, Ledger};
use crate::{Plan, Progress};

/// Readers at their own addresses, each well under the limit…
const NORMAL_CLIENTS: u8 = 16;
const NORMAL_RATE_PER_S: f64 = 20.0;
/// …and the one address that is not (the 5,000 requests/s).
const HAMMER_RATE_PER_S: f64 = 5_000.0;
const HAMMER_CONNECTIONS: usize = 32;
/// The hammer's address, and the first normal client's last octet.
const HAMMER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const NORMAL_FIRST_OCTET: u8 = 10;
/// The limits the node runs with: spin.toml's production defaults for reads.
const READS_PER_S: &str = "100";
const WINDOW_S: &str = "10";
/// Each phase's length.
const PHASE_QUICK: Duration = Duration::from_secs(3);
const PHASE_FULL: Duration = Duration::from_secs(10);
/// The goals: normal p99 hammered within this many times the quiet one, and at least this
/// share of the hammer's requests refused (100/s allowed of 5,000/s sent: ~98%).
const GOAL_P99_RATIO: f64 = 2.0;
const GOAL_REFUSED_SHARE: f64 = 0.9;
/// No request may stall the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A stream whose connection failed waits this long before reconnecting.
const RECONNECT_PAUSE: Duration = Duration::from_millis(5);

/// What one stream of requests got.
struct Tally {
    ok: u64,
    limited: u64,
    failed: u64,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            ok: 0,
            limited: 0,
            failed: 0,
            latency_us: histogram(),
        }
    }

    fn absorb(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.ok += other.ok;
        self.limited += other.limited;
        self.failed += other.failed;
        self.latency_us
            .add(&other.latency_us)
            .context("merging histograms")
    }

    fn sent(&self) -> u64 {
        self.ok + self.limited + self.failed
    }
}

/// One phase: the normal clients' tally, and the hammer's if it ran.
struct Phase {
    normal: Tally,
    hammer: Option<Tally>,
    elapsed_s: f64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("ratelimit", "12. Rate limits: one address hammering");
    progress.step("ratelimit: starting a ledger and an edge with the limits on");
    let ledger = Ledger::start(env, "ratelimit", &[]).await?;
    let measured = measure(env, plan, progress, &ledger).await;
    let stopped = ledger.stop().await;
    let (quiet, hammered) = measured?;
    stopped?;
    report(&mut section, &quiet, &hammered)?;
    Ok(section)
}

async fn measure(
    env: &Env,
    plan: &Plan,
    progress: &Progress,
    ledger: &Ledger,
) -> anyhow::Result<(Phase, Phase)> {
    let ids = ledger.create_event(env, "ratelimit", 1, 1_000).await?;
    let settings = [
        ("SPIN_VARIABLE_RATE_LIMIT_READS_PER_S", READS_PER_S),
        ("SPIN_VARIABLE_RATE_LIMIT_WINDOW_S", WINDOW_S),
    ];
    let edge = start_edge(env, "ratelimit-edge", ledger, &settings).await?;
    let measured = phases(plan, progress, &edge, &ids.event_id).await;
    edge.stop().await;
    measured
}

async fn phases(
    plan: &Plan,
    progress: &Progress,
    edge: &Edge,
    event_id: &str,
) -> anyhow::Result<(Phase, Phase)> {
    let target: SocketAddr = edge
        .authority
        .parse()
        .with_context(|| format!("edge address {}", edge.authority))?;
    let path = Arc::new(format!("/v1/events/{event_id}"));
    let window = if plan.quick { PHASE_QUICK } else { PHASE_FULL };
    // Fill the cache: both phases read a hit.
    let mut warm = Stream::connect(target, normal_addr(0), path.clone()).await?;
    warm.read().await?;
    progress.step(&format!("ratelimit: quiet phase ({window:?})"));
    let quiet = phase(target, &path, window, false).await?;
    progress.step(&format!(
        "ratelimit: hammered phase ({window:?}, {} req/s from {HAMMER_ADDR})",
        count(HAMMER_RATE_PER_S)
    ));
    let hammered = phase(target, &path, window, true).await?;
    Ok((quiet, hammered))
}

fn normal_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, NORMAL_FIRST_OCTET + n)
}

/// The normal clients for `window`, beside the hammer if `hammer`.
async fn phase(
    target: SocketAddr,
    path: &Arc<String>,
    window: Duration,
    hammer: bool,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let normal: Vec<_> = (0..NORMAL_CLIENTS)
        .map(|n| {
            let pace = Pace::new(NORMAL_RATE_PER_S, window);
            tokio::spawn(paced(target, normal_addr(n), path.clone(), pace))
        })
        .collect();
    let hammers: Vec<_> = (0..if hammer { HAMMER_CONNECTIONS } else { 0 })
        .map(|_| {
            let pace = Pace::new(HAMMER_RATE_PER_S / HAMMER_CONNECTIONS as f64, window);
            tokio::spawn(paced(target, HAMMER_ADDR, path.clone(), pace))
        })
        .collect();
    let normal = join(normal).await?;
    let hammer = if hammer {
        Some(join(hammers).await?)
    } else {
        None
    };
    Ok(Phase {
        normal,
        hammer,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

async fn join(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>>) -> anyhow::Result<Tally> {
    let mut total = Tally::new();
    for task in tasks {
        total.absorb(&task.await.context("a client task panicked")??)?;
    }
    Ok(total)
}

/// Requests due every `interval` for `window`, open loop.
#[derive(Clone, Copy)]
struct Pace {
    interval: Duration,
    window: Duration,
}

impl Pace {
    fn new(rate_per_s: f64, window: Duration) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rate_per_s),
            window,
        }
    }
}

/// One connection from `from` reading `path` at `pace`; latency from when each request was
/// due, so a slow answer delays (and is charged to) the requests behind it.
async fn paced(
    target: SocketAddr,
    from: Ipv4Addr,
    path: Arc<String>,
    pace: Pace,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::new();
    let mut stream: Option<Stream> = None;
    let start = tokio::time::Instant::now();
    let end = start + pace.window;
    let mut due = start;
    while due < end {
        tokio::time::sleep_until(due).await;
        let conn = match stream.take() {
            Some(conn) => conn,
            None => match Stream::connect(target, from, path.clone()).await {
                Ok(conn) => conn,
                Err(_) => {
                    tally.failed += 1;
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    due += pace.interval;
                    continue;
                }
            },
        };
        let mut conn = conn;
        match conn.read().await {
            Ok(status) => {
                match status {
                    200 => tally.ok += 1,
                    429 => tally.limited += 1,
                    _ => tally.failed += 1,
                }
                if status == 200 {
                    let latency = due.elapsed().as_micros().max(1) as u64;
                    tally.latency_us.saturating_record(latency);
                }
                stream = Some(conn);
            }
            Err(_) => tally.failed += 1,
        }
        due += pace.interval;
    }
    Ok(tally)
}

/// A keep-alive HTTP/1.1 connection whose socket is bound to a client address of its own.
struct Stream {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    path: Arc<String>,
}

impl Stream {
    async fn connect(
        target: SocketAddr,
        from: Ipv4Addr,
        path: Arc<String>,
    ) -> anyhow::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::from((from, 0)))
            .with_context(|| format!("binding {from}"))?;
        let tcp = socket
            .connect(target)
            .await
            .with_context(|| format!("connecting to {target} from {from}"))?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            authority: target.to_string(),
            path,
        })
    }

    /// `GET path`, the body read to the end; the status.
    async fn read(&mut self) -> anyhow::Result<u16> {
        let request = hyper::Request::get(self.path.as_str())
            .header(hyper::header::HOST, self.authority.as_str())
            .body(Full::new(Bytes::new()))?;
        let answer = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, answer)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
    }
}

fn report(section: &mut Section, quiet: &Phase, hammered: &Phase) -> anyhow::Result<()> {
    let hammer = hammered
        .hammer
        .as_ref()
        .context("the hammered phase ran no hammer")?;
    section.notes.push(format!(
        "One edge node with the reads limit at {READS_PER_S}/s in {WINDOW_S}-second windows. \
         {NORMAL_CLIENTS} normal clients (127.0.0.{NORMAL_FIRST_OCTET}…) read the cached event \
         detail at {NORMAL_RATE_PER_S}/s each; in the hammered phase 127.0.0.2 sends {}/s over \
         {HAMMER_CONNECTIONS} connections (open loop: what it achieves depends on how fast the \
         node answers). Latency from when each request was due.",
        count(HAMMER_RATE_PER_S)
    ));
    section.tables.push(table(quiet, hammered));
    let figures = Figures::of(quiet, hammered, hammer);
    goals(section, &figures, hammer, hammered);
    checks(section, quiet, hammered, hammer);
    section.data = json!({
        "quiet": {"normal_ok": quiet.normal.ok, "normal_p99_ms": figures.quiet_p99},
        "hammered": {"normal_ok": hammered.normal.ok, "normal_p99_ms": figures.hammered_p99,
            "hammer_sent": hammer.sent(), "hammer_429": hammer.limited,
            "hammer_ok": hammer.ok, "hammer_failed": hammer.failed,
            "hammer_per_s": hammer.sent() as f64 / hammered.elapsed_s},
        "p99_ratio": figures.ratio,
        "refused_share": figures.refused_share,
    });
    Ok(())
}

/// The goals' figures.
struct Figures {
    quiet_p99: f64,
    hammered_p99: f64,
    ratio: f64,
    refused_share: f64,
}

impl Figures {
    fn of(quiet: &Phase, hammered: &Phase, hammer: &Tally) -> Self {
        let p99 = |phase: &Phase| quantile_ms(&phase.normal.latency_us, 0.99);
        let (quiet_p99, hammered_p99) = (p99(quiet), p99(hammered));
        let ratio = if quiet_p99 > 0.0 {
            hammered_p99 / quiet_p99
        } else {
            f64::INFINITY
        };
        Self {
            quiet_p99,
            hammered_p99,
            ratio,
            refused_share: hammer.limited as f64 / hammer.sent().max(1) as f64,
        }
    }
}

fn table(quiet: &Phase, hammered: &Phase) -> Table {
    let mut table = Table::new(
        "Normal clients, quiet and hammered",
        &[
            "phase",
            "normal ok",
            "normal p50",
            "normal p99",
            "normal 429",
            "normal failed",
            "hammer sent",
            "hammer req/s",
            "hammer 429",
            "hammer failed",
        ],
    );
    for (name, phase) in [("quiet", quiet), ("hammered", hammered)] {
        let normal = &phase.normal;
        let hammer = match &phase.hammer {
            Some(h) => [
                count(h.sent() as f64),
                count(h.sent() as f64 / phase.elapsed_s),
                format!("{:.1}%", h.limited as f64 / h.sent().max(1) as f64 * 100.0),
                count(h.failed as f64),
            ],
            None => [
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
            ],
        };
        let mut row = vec![
            name.to_owned(),
            count(normal.ok as f64),
            ms(quantile_ms(&normal.latency_us, 0.5)),
            ms(quantile_ms(&normal.latency_us, 0.99)),
            count(normal.limited as f64),
            count(normal.failed as f64),
        ];
        row.extend(hammer);
        table.row(row);
    }
    table
}

fn goals(section: &mut Section, figures: &Figures, hammer: &Tally, hammered: &Phase) {
    section.goal(
        "ratelimit.hammer_p99_ratio",
        "normal clients' p99 while one address hammers ≤ 2× the quiet p99",
        format!(
            "{:.2}× ({} ms vs {} ms)",
            figures.ratio,
            ms(figures.hammered_p99),
            ms(figures.quiet_p99)
        ),
        figures.ratio <= GOAL_P99_RATIO && hammered.normal.ok > 0,
    );
    section.goal(
        "ratelimit.hammer_refused_share",
        "the hammer's requests answered 429: ≥ 90%",
        format!(
            "{:.1}% of {}",
            figures.refused_share * 100.0,
            count(hammer.sent() as f64)
        ),
        figures.refused_share >= GOAL_REFUSED_SHARE,
    );
}

fn checks(section: &mut Section, quiet: &Phase, hammered: &Phase, hammer: &Tally) {
    let normal_refusals = [quiet, hammered]
        .iter()
        .map(|p| p.normal.limited + p.normal.failed)
        .sum::<u64>();
    section.check(
        "ratelimit: normal clients never refused",
        normal_refusals == 0 && quiet.normal.ok > 0,
        format!(
            "{} normal reads, {normal_refusals} answered 429 or failed",
            count((quiet.normal.sent() + hammered.normal.sent()) as f64)
        ),
    );
    section.check(
        "ratelimit: the hammer answered 200 or 429 only",
        hammer.failed == 0 && hammer.limited > 0,
        format!(
            "{} sent: {} ok, {} 429, {} failed",
            hammer.sent(),
            hammer.ok,
            hammer.limited,
            hammer.failed
        ),
    );
}
