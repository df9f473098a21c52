//! Scenario 2: a zone of 1,000 tickets against 10,000 buyers arriving at a fixed rate
//! through two edge nodes. How long it takes to sell out, how many buyers the edges turned
//! away themselves (`sold_out` without asking the ledger), and how long after the last
//! ticket sold every edge showed 0 available.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::audit::ZoneAudit;
use crate::load::{self, Call, Figures};
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{edge_requests, watch_zone, Stand};
use crate::stack::{Env, EventIds};
use crate::workloads::Holds;
use crate::{Plan, Progress};

const ZONE_STOCK: i32 = 1_000;
const EDGES: usize = 2;
/// Pause between a watcher's polls: the lag figure's resolution, and the read load the
/// watchers add (~1 request per pause per edge).
const WATCH_PAUSE: Duration = Duration::from_millis(2);
/// How long the watchers keep polling for 0 after the load ends.
const WATCH_GRACE: Duration = Duration::from_secs(5);
/// The most a watcher polls in all: far beyond any sale of the plan, it only bounds a
/// broken run.
const WATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Open-loop connections per edge: a bound on what the generator opens; a buyer that
/// finds none free waits and counts as late.
const CONNECTIONS_MAX: usize = 512;
/// The route whose ledger requests show how many buyers the edges let through.
const HOLDS_ROUTE: &str = "/v1/holds";

/// What the sale came to.
struct Outcome {
    figures: Figures,
    /// 201s, and their tickets, as the buyers were answered.
    granted: u64,
    tickets: u64,
    /// From the sale's opening to the last 201.
    sold_out_at: Duration,
    /// Hold requests the edges passed on to the ledger.
    ledger_holds: f64,
    /// Per edge, when its watcher saw 0 available (since the sale opened).
    zero_seen: Vec<Option<Duration>>,
    audit: ZoneAudit,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("sell-out", "2. Sell-out behaviour");
    progress.step("sell-out: starting a ledger and two edges");
    let stand = Stand::start(env, "sellout", EDGES).await?;
    let ids = stand
        .ledger
        .create_event(env, "sellout", 1, ZONE_STOCK)
        .await?;
    let avail_path = format!("/v1/shows/{}/availability", ids.show_id);
    // Buyers look at the show first: every edge has it cached when the sale opens.
    for edge in &stand.edges {
        load::once(&edge.authority, &Call::get(0, avail_path.clone())).await?;
    }
    let ledger_holds_before = edge_requests(env, &stand.ledger, HOLDS_ROUTE).await?;

    let started = Instant::now();
    let watchers = spawn_watchers(&stand, &avail_path, &ids.zone_ids[0], started);
    let (figures, workload) = sell(plan, progress, &stand, &ids, started).await?;
    let zero_seen = zero_seen(watchers).await;
    let ledger_holds = edge_requests(env, &stand.ledger, HOLDS_ROUTE).await? - ledger_holds_before;
    let outcome = Outcome {
        figures,
        granted: workload.granted.load(Ordering::Relaxed),
        tickets: workload.tickets.load(Ordering::Relaxed),
        sold_out_at: Duration::from_micros(workload.last_granted_us.load(Ordering::Relaxed)),
        ledger_holds,
        zero_seen,
        audit: ZoneAudit::read(&stand.ledger.pool, &ids.zone_ids[0]).await?,
    };

    checks(&mut section, &outcome);
    section.notes.push(note(plan));
    section.tables.push(table(&outcome));
    section.data = data(&outcome);
    stand.stop().await?;
    Ok(section)
}

/// One watcher per edge: polls availability until the zone shows 0.
fn spawn_watchers(
    stand: &Stand,
    avail_path: &str,
    zone_id: &str,
    started: Instant,
) -> Vec<JoinHandle<Option<Duration>>> {
    stand
        .edges
        .iter()
        .map(|edge| {
            let (authority, path, zone) = (
                edge.authority.clone(),
                avail_path.to_owned(),
                zone_id.to_owned(),
            );
            tokio::spawn(async move {
                let mut client = load::Client::new(&authority);
                let deadline = Instant::now() + WATCH_TIMEOUT;
                let sold_out = |available| available == 0;
                watch_zone(
                    &mut client,
                    &path,
                    &zone,
                    sold_out,
                    started,
                    deadline,
                    WATCH_PAUSE,
                )
                .await
            })
        })
        .collect()
}

/// The sale: every buyer arrives once, open loop at the plan's rate, the edges in turn.
async fn sell(
    plan: &Plan,
    progress: &Progress,
    stand: &Stand,
    ids: &EventIds,
    started: Instant,
) -> anyhow::Result<(Figures, Arc<Holds>)> {
    progress.step(&format!(
        "sell-out: {} buyers at {}/s through {EDGES} edges",
        count(plan.sellout_clients as f64),
        count(plan.sellout_rate_per_s)
    ));
    let mut workload = Holds::new(&ids.show_id, &ids.zone_ids[0], EDGES, 1);
    // Every buyer tries once: sold-out answers do not stop the arrivals.
    workload.stop_when_sold_out = false;
    workload.started = started;
    let workload = Arc::new(workload);
    let window = Duration::from_secs_f64(plan.sellout_clients as f64 / plan.sellout_rate_per_s);
    let figures = load::open_loop(
        &stand.edge_targets(),
        workload.clone(),
        plan.sellout_rate_per_s,
        window,
        CONNECTIONS_MAX,
    )
    .await?;
    Ok((figures, workload))
}

/// When each watcher saw 0, waiting up to the grace period for those still polling.
async fn zero_seen(watchers: Vec<JoinHandle<Option<Duration>>>) -> Vec<Option<Duration>> {
    let mut zero_seen = Vec::new();
    for mut watcher in watchers {
        let seen = tokio::time::timeout(WATCH_GRACE, &mut watcher).await;
        // One that never saw 0 must not keep polling a node that is about to stop.
        watcher.abort();
        zero_seen.push(seen.ok().and_then(Result::ok).flatten());
    }
    zero_seen
}

impl Outcome {
    /// The last edge showing 0, after the last 201. Positive: after the buyer of the last
    /// ticket had its 201; negative: the edges knew first.
    fn lag_ms(&self) -> Option<f64> {
        let last_zero = self.zero_seen.iter().flatten().max().copied();
        last_zero.map(|z| z.as_secs_f64() * 1000.0 - self.sold_out_at.as_secs_f64() * 1000.0)
    }
}

/// No oversell, and every edge ends showing the sell-out.
fn checks(section: &mut Section, outcome: &Outcome) {
    let Outcome {
        granted,
        tickets,
        audit,
        ..
    } = outcome;
    let error = audit.holds_error(*granted, *tickets);
    section.check(
        "zero oversell: 1,000 tickets, counters = rows = 201s",
        error.is_none() && audit.hold_tickets <= i64::from(ZONE_STOCK),
        error.unwrap_or_else(|| {
            format!(
                "{granted} holds for {tickets} tickets; zone available {}",
                audit.available
            )
        }),
    );
    let all_zero = outcome.zero_seen.iter().all(Option::is_some);
    section.check(
        "every edge reports 0 available after the sell-out",
        all_zero && audit.available == 0,
        format!(
            "zone available {} at the ledger; the edges showed 0 at {} ms after the sale opened",
            audit.available,
            outcome
                .zero_seen
                .iter()
                .map(|seen| seen.map_or("never".to_owned(), |at| format!(
                    "{:.0}",
                    at.as_secs_f64() * 1000.0
                )))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    );
}

fn note(plan: &Plan) -> String {
    format!(
        "{} buyers arrive open-loop at {}/s, alternating between {EDGES} edge nodes (fresh instance per request), each asking once for 1–4 tickets. \
         The edges had the show cached before the sale. A watcher per edge polls its availability every ~2 ms; the lag is when a watcher's poll came back with 0 (so it includes up to one pause and one read's round trip).",
        count(plan.sellout_clients as f64),
        count(plan.sellout_rate_per_s)
    )
}

fn table(outcome: &Outcome) -> Table {
    let Outcome {
        figures,
        granted,
        tickets,
        sold_out_at,
        ledger_holds,
        ..
    } = outcome;
    let mut table = Table::new("Sell-out of 1,000 tickets", &["figure", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("buyers (requests due)", count(figures.due as f64)),
        (
            "holds granted (tickets)",
            format!("{} ({})", count(*granted as f64), count(*tickets as f64)),
        ),
        (
            "time to sell out (first buyer due → last 201)",
            format!("{} ms", ms(sold_out_at.as_secs_f64() * 1000.0)),
        ),
        (
            "answered `sold_out` by the edge without the ledger",
            count(figures.edge_answered as f64),
        ),
        (
            "hold requests that reached the ledger",
            count(*ledger_holds),
        ),
        (
            "refused by the ledger (409)",
            count(figures.refused.saturating_sub(figures.edge_answered) as f64),
        ),
        ("other errors", count(figures.failed as f64)),
        ("sent late", figures.late_by_cause()),
        (
            "granted holds p50 / p99 (ms)",
            format!("{} / {}", ms(figures.p50_ms), ms(figures.p99_ms)),
        ),
        (
            "last edge showing 0, after the last 201",
            outcome
                .lag_ms()
                .map_or("never".to_owned(), |l| format!("{} ms", ms(l))),
        ),
    ];
    for (name, value) in rows {
        table.row(vec![name.to_owned(), value]);
    }
    table
}

fn data(outcome: &Outcome) -> Value {
    json!({
        "figures": outcome.figures, "granted": outcome.granted, "tickets": outcome.tickets,
        "ledger_hold_requests": outcome.ledger_holds,
        "sold_out_after_ms": outcome.sold_out_at.as_secs_f64() * 1000.0,
        "edges_zero_lag_ms": outcome.lag_ms(), "zone": outcome.audit,
    })
}
