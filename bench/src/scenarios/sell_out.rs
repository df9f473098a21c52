//! Scenario 2: a zone of 1,000 tickets against 10,000 buyers arriving at a fixed rate
//! through two edge nodes. How long it takes to sell out, how many buyers the edges turned
//! away themselves (`sold_out` without asking the ledger), and how long after the last
//! ticket sold every edge showed 0 available.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::audit::ZoneAudit;
use crate::load::{self, Call, Targets};
use crate::report::{count, ms, Section, Table};
use crate::stack::{start_edges, Env, Ledger};
use crate::workloads::Holds;
use crate::{Plan, Progress};

const ZONE_STOCK: i32 = 1_000;
const EDGES: usize = 2;
/// Pause between a watcher's polls: the lag figure's resolution, and the read load the
/// watchers add (~1 request per pause per edge).
const WATCH_PAUSE: Duration = Duration::from_millis(2);
/// How long the watchers keep polling for 0 after the load ends.
const WATCH_GRACE: Duration = Duration::from_secs(5);

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("sell-out", "2. Sell-out behaviour");
    progress.step("sell-out: starting a ledger and two edges");
    let ledger = Ledger::start(env, "sellout", &[]).await?;
    let edges = start_edges(env, "sellout-edge", &ledger, EDGES).await?;
    let ids = ledger.create_event(env, "sellout", 1, ZONE_STOCK).await?;
    let avail_path = format!("/v1/shows/{}/availability", ids.show_id);
    // Buyers look at the show first: every edge has it cached when the sale opens.
    for edge in &edges {
        load::once(&edge.authority, &Call::get(0, avail_path.clone())).await?;
    }
    let ledger_holds_before = ledger
        .metric(
            env,
            "http_requests_total",
            &[("route", "/v1/holds"), ("origin", "edge")],
        )
        .await?;

    // One watcher per edge: polls availability until the zone shows 0.
    let started = Instant::now();
    let watchers: Vec<_> = edges
        .iter()
        .map(|edge| {
            let (authority, path, zone) = (
                edge.authority.clone(),
                avail_path.clone(),
                ids.zone_ids[0].clone(),
            );
            tokio::spawn(async move {
                let mut client = load::Client::new(&authority);
                let deadline = Instant::now() + Duration::from_secs(120);
                while Instant::now() < deadline {
                    if let Ok(answer) = client.send(&Call::get(0, path.clone())).await {
                        if zone_available(&answer.body, &zone) == Some(0) {
                            return Some(started.elapsed());
                        }
                    }
                    tokio::time::sleep(WATCH_PAUSE).await;
                }
                None
            })
        })
        .collect();

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
    let targets = Targets::new(edges.iter().map(|e| e.authority.clone()).collect());
    let window = Duration::from_secs_f64(plan.sellout_clients as f64 / plan.sellout_rate_per_s);
    let figures = load::open_loop(
        &targets,
        workload.clone(),
        plan.sellout_rate_per_s,
        window,
        512,
    )
    .await?;

    let mut zero_seen = Vec::new();
    for mut watcher in watchers {
        let seen = tokio::time::timeout(WATCH_GRACE, &mut watcher).await;
        // One that never saw 0 must not keep polling a node that is about to stop.
        watcher.abort();
        zero_seen.push(seen.ok().and_then(Result::ok).flatten());
    }
    let ledger_holds = ledger
        .metric(
            env,
            "http_requests_total",
            &[("route", "/v1/holds"), ("origin", "edge")],
        )
        .await?
        - ledger_holds_before;
    let granted = workload.granted.load(Ordering::Relaxed);
    let tickets = workload.tickets.load(Ordering::Relaxed);
    let sold_out_at = Duration::from_micros(workload.last_granted_us.load(Ordering::Relaxed));
    let audit = ZoneAudit::read(&ledger.pool, &ids.zone_ids[0]).await?;
    let error = audit.holds_error(granted, tickets);
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
    let all_zero = zero_seen.iter().all(Option::is_some);
    let last_zero = zero_seen.iter().flatten().max().copied();
    // Positive: after the buyer of the last ticket had its 201; negative: the edges knew first.
    let lag_ms = last_zero.map(|z| z.as_secs_f64() * 1000.0 - sold_out_at.as_secs_f64() * 1000.0);
    section.check(
        "every edge reports 0 available after the sell-out",
        all_zero && audit.available == 0,
        format!(
            "zone available {} at the ledger; the edges showed 0 at {} ms after the sale opened",
            audit.available,
            zero_seen
                .iter()
                .map(|seen| seen.map_or("never".to_owned(), |at| format!(
                    "{:.0}",
                    at.as_secs_f64() * 1000.0
                )))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    );

    section.notes.push(format!(
        "{} buyers arrive open-loop at {}/s, alternating between {EDGES} edge nodes (fresh instance per request), each asking once for 1–4 tickets. \
         The edges had the show cached before the sale. A watcher per edge polls its availability every ~2 ms; the lag is when a watcher's poll came back with 0 (so it includes up to one pause and one read's round trip).",
        count(plan.sellout_clients as f64),
        count(plan.sellout_rate_per_s)
    ));
    let mut table = Table::new("Sell-out of 1,000 tickets", &["figure", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("buyers (requests due)", count(figures.due as f64)),
        (
            "holds granted (tickets)",
            format!("{} ({})", count(granted as f64), count(tickets as f64)),
        ),
        (
            "time to sell out (first buyer due → last 201)",
            format!("{} ms", ms(sold_out_at.as_secs_f64() * 1000.0)),
        ),
        (
            "answered `sold_out` by the edge without the ledger",
            count(figures.edge_answered as f64),
        ),
        ("hold requests that reached the ledger", count(ledger_holds)),
        (
            "refused by the ledger (409)",
            count(figures.refused.saturating_sub(figures.edge_answered) as f64),
        ),
        ("other errors", count(figures.failed as f64)),
        (
            "sent late (generator could not keep the rate)",
            count(figures.late as f64),
        ),
        (
            "granted holds p50 / p99 (ms)",
            format!("{} / {}", ms(figures.p50_ms), ms(figures.p99_ms)),
        ),
        (
            "last edge showing 0, after the last 201",
            lag_ms.map_or("never".to_owned(), |l| format!("{} ms", ms(l))),
        ),
    ];
    for (name, value) in rows {
        table.row(vec![name.to_owned(), value]);
    }
    section.tables.push(table);
    section.data = json!({
        "figures": figures, "granted": granted, "tickets": tickets, "ledger_hold_requests": ledger_holds,
        "sold_out_after_ms": sold_out_at.as_secs_f64() * 1000.0, "edges_zero_lag_ms": lag_ms, "zone": audit,
    });
    for edge in edges {
        edge.stop().await;
    }
    ledger.stop().await?;
    Ok(section)
}

/// `available` of `zone_id` in an availability document.
pub fn zone_available(body: &[u8], zone_id: &str) -> Option<i64> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc["zones"]
        .as_array()?
        .iter()
        .find(|z| z["zone_id"] == zone_id)?["available"]
        .as_i64()
}
