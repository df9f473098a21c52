//! Scenario 6: an ordinary busy day. Requests arrive at a fixed rate through two edge
//! nodes: 95% reads (availability and event pages), 3% new holds, 1% confirms and 1%
//! releases of holds granted earlier. Afterwards the conservation invariant is checked
//! against the rows, the load generator's own tally, and every edge's view.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::audit::ZoneAudit;
use crate::load::{self, histogram, quantile_ms, Answer, Call, Figures, Verdict, Workload};
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{zone_available, Stand};
use crate::stack::{Env, EventIds, Ledger};
use crate::workloads::{hold_call, mix};
use crate::{Plan, Progress};

const EDGES: usize = 2;
const ZONES: usize = 4;
const ZONE_STOCK: i32 = 100_000;
const OPS: [&str; 5] = ["availability", "event", "hold", "confirm", "release"];
/// How long the edges get to converge on the ledger's counters after the load.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two reads of an edge that has not converged yet.
const CONVERGE_PAUSE: Duration = Duration::from_millis(20);
/// Open-loop connections per edge: a bound on what the generator opens; a request that
/// finds none free waits and counts as late.
const CONNECTIONS_MAX: usize = 256;

struct Day {
    show_id: String,
    event_id: String,
    zone_ids: Vec<String>,
    /// Granted holds not yet settled: (hold id, tickets).
    pending: Mutex<VecDeque<(String, u64)>>,
    latency_us: Vec<Mutex<Histogram<u64>>>,
    granted: AtomicU64,
    granted_tickets: AtomicU64,
    confirmed_tickets: AtomicU64,
    released: AtomicU64,
}

impl Day {
    /// A day on `ids`' show, nothing granted yet.
    fn new(ids: &EventIds) -> Self {
        Self {
            show_id: ids.show_id.clone(),
            event_id: ids.event_id.clone(),
            zone_ids: ids.zone_ids.clone(),
            pending: Mutex::new(VecDeque::new()),
            latency_us: OPS.iter().map(|_| Mutex::new(histogram())).collect(),
            granted: AtomicU64::new(0),
            granted_tickets: AtomicU64::new(0),
            confirmed_tickets: AtomicU64::new(0),
            released: AtomicU64::new(0),
        }
    }

    fn op_of(call: &Call) -> usize {
        (call.tag / 16) as usize
    }
}

impl Workload for Day {
    fn next(&self, _client: usize, n: u64) -> Option<Call> {
        let roll = mix(n) % 100;
        let target = (n as usize) % EDGES;
        let settle = |op: u64| -> Option<Call> {
            let (hold_id, tickets) = self.pending.lock().ok()?.pop_front()?;
            let mut call = if op == 3 {
                Call::post_json(
                    target,
                    format!("/v1/holds/{hold_id}/confirm"),
                    &json!({"payment_ref": format!("pay-{n}")}),
                )
                .header("idempotency-key", uuid::Uuid::new_v4().simple().to_string())
            } else {
                Call::post_json(target, format!("/v1/holds/{hold_id}/release"), &json!({}))
            };
            call.tag = op * 16 + tickets;
            Some(call)
        };
        let read = |op: u64| {
            let path = if op == 0 {
                format!("/v1/shows/{}/availability", self.show_id)
            } else {
                format!("/v1/events/{}", self.event_id)
            };
            let mut call = Call::get(target, path);
            call.tag = op * 16;
            call
        };
        Some(match roll {
            0..75 => read(0),
            75..95 => read(1),
            95..98 => {
                let quantity = 1 + mix(n ^ 0x5eed) % 4;
                let zone = &self.zone_ids[(mix(n ^ 0x20e) % ZONES as u64) as usize];
                let mut call =
                    hold_call(target, &self.show_id, zone, quantity, &format!("day-{n}"));
                call.tag = 2 * 16 + quantity;
                call
            }
            98 => settle(3).unwrap_or_else(|| read(0)),
            _ => settle(4).unwrap_or_else(|| read(0)),
        })
    }

    fn judge(&self, call: &Call, answer: &Answer, latency: Duration, _measured: bool) -> Verdict {
        let op = Self::op_of(call);
        let tickets = call.tag % 16;
        let verdict = match (op, answer.status) {
            (0 | 1, 200) => Verdict::Ok,
            (2, 201) => {
                let hold_id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["hold_id"].as_str().map(str::to_owned));
                self.granted.fetch_add(1, Ordering::Relaxed);
                self.granted_tickets.fetch_add(tickets, Ordering::Relaxed);
                if let (Some(hold_id), Ok(mut pending)) = (hold_id, self.pending.lock()) {
                    pending.push_back((hold_id, tickets));
                }
                Verdict::Ok
            }
            (2, 409) => Verdict::Refused,
            (3, 200) => {
                self.confirmed_tickets.fetch_add(tickets, Ordering::Relaxed);
                Verdict::Ok
            }
            (4, 200) => {
                self.released.fetch_add(1, Ordering::Relaxed);
                Verdict::Ok
            }
            _ => Verdict::Failed,
        };
        if verdict == Verdict::Ok {
            if let Some(Ok(mut h)) = self.latency_us.get(op).map(Mutex::lock) {
                h.saturating_record(latency.as_micros().max(1) as u64);
            }
        }
        verdict
    }
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("mixed-day", "6. Mixed day");
    progress.step("mixed day: starting a ledger and two edges");
    let stand = Stand::start(env, "mixed", EDGES).await?;
    let ids = stand
        .ledger
        .create_event(env, "mixed-day", ZONES, ZONE_STOCK)
        .await?;
    let day = Arc::new(Day::new(&ids));
    progress.step(&format!(
        "mixed day: {}/s for {:.0} s",
        count(plan.mixed_rate_per_s),
        plan.mixed_window.as_secs_f64()
    ));
    let figures = load::open_loop(
        &stand.edge_targets(),
        day.clone(),
        plan.mixed_rate_per_s,
        plan.mixed_window,
        CONNECTIONS_MAX,
    )
    .await?;

    let audits = check_conservation(&mut section, &stand.ledger, &ids, &day).await?;
    // Every edge ends with the ledger's counters.
    progress.step("mixed day: waiting for the edges to converge");
    let stale = stale_edges(&stand, &ids, &audits).await?;
    section.check_failures(
        "every edge shows the ledger's counters afterwards",
        &stale,
        format!("{EDGES} edges converged"),
    );

    section.notes.push(note(plan));
    let (by_operation, per_op) = by_operation(&day);
    section.tables.push(by_operation);
    section.tables.push(totals(&figures));
    section.goal(
        "mixed.no_errors",
        "mixed day: no errors, no late sends",
        format!(
            "{} errors; of {} sent, late {}",
            figures.failed,
            count(figures.due as f64),
            figures.late_by_cause()
        ),
        figures.failed == 0 && figures.late == 0,
    );
    section.data = json!({"figures": figures, "by_operation": per_op, "zones": audits});
    stand.stop().await?;
    Ok(section)
}

/// Conservation per zone, and the rows against what the generator was told.
async fn check_conservation(
    section: &mut Section,
    ledger: &Ledger,
    ids: &EventIds,
    day: &Day,
) -> anyhow::Result<Vec<ZoneAudit>> {
    let mut audits = Vec::new();
    let mut errors = Vec::new();
    for zone in &ids.zone_ids {
        let audit = ZoneAudit::read(&ledger.pool, zone).await?;
        if let Some(error) = audit.conservation_error() {
            errors.push(error);
        }
        audits.push(audit);
    }
    let rows: i64 = audits.iter().map(|a| a.hold_rows).sum();
    let sold: i64 = audits.iter().map(|a| a.sold).sum();
    let granted = day.granted.load(Ordering::Relaxed);
    let confirmed = day.confirmed_tickets.load(Ordering::Relaxed);
    if rows != granted as i64 || sold != confirmed as i64 {
        errors.push(format!("{rows} hold rows and {sold} tickets sold, but the generator was granted {granted} holds and confirmed {confirmed} tickets"));
    }
    section.check_failures(
        "conservation: available + held + sold = capacity per zone; counters = rows = answers",
        &errors,
        format!(
            "{ZONES} zones; {granted} holds, {confirmed} tickets sold, {} released",
            day.released.load(Ordering::Relaxed)
        ),
    );
    Ok(audits)
}

/// Edges still not showing every zone's counters (`audits`) when the time is up.
async fn stale_edges(
    stand: &Stand,
    ids: &EventIds,
    audits: &[ZoneAudit],
) -> anyhow::Result<Vec<String>> {
    let avail_path = format!("/v1/shows/{}/availability", ids.show_id);
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut stale = Vec::new();
    for (e, edge) in stand.edges.iter().enumerate() {
        loop {
            let answer = load::once(&edge.authority, &Call::get(0, avail_path.clone())).await?;
            let behind: Vec<String> = ids
                .zone_ids
                .iter()
                .zip(audits)
                .filter(|(zone, audit)| zone_available(&answer.body, zone) != Some(audit.available))
                .map(|(zone, _)| zone.clone())
                .collect();
            if behind.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                stale.push(format!("edge {e}: zones {behind:?}"));
                break;
            }
            tokio::time::sleep(CONVERGE_PAUSE).await;
        }
    }
    Ok(stale)
}

fn note(plan: &Plan) -> String {
    format!(
        "Open loop at {}/s for {:.0} s through {EDGES} edge nodes: 75% availability, 20% event pages, 3% holds (1–4 tickets on one of {ZONES} zones), \
         1% confirms and 1% releases of granted holds (a read when none is pending). Latency from when each request was due.",
        count(plan.mixed_rate_per_s),
        plan.mixed_window.as_secs_f64()
    )
}

/// Latency by operation: the table, and its rows for report.json.
fn by_operation(day: &Day) -> (Table, Vec<Value>) {
    let mut table = Table::new(
        "Mixed day by operation (ms)",
        &["operation", "answered", "p50", "p99", "p99.9"],
    );
    let mut per_op = Vec::new();
    for (op, name) in OPS.iter().enumerate() {
        let Some(Ok(h)) = day.latency_us.get(op).map(Mutex::lock) else {
            continue;
        };
        let q = |p: f64| quantile_ms(&h, p);
        table.row(vec![
            (*name).to_owned(),
            count(h.len() as f64),
            ms(q(0.5)),
            ms(q(0.99)),
            ms(q(0.999)),
        ]);
        per_op.push(json!({"op": name, "answered": h.len(), "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999)}));
    }
    (table, per_op)
}

fn totals(figures: &Figures) -> Table {
    let mut totals = Table::new(
        "Mixed day totals",
        &["due", "answered ok", "refused (409)", "errors", "late"],
    );
    totals.row(vec![
        count(figures.due as f64),
        count(figures.ok as f64),
        count(figures.refused as f64),
        count(figures.failed as f64),
        figures.late_by_cause(),
    ]);
    totals
}
