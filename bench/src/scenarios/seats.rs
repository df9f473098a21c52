//! Scenario 9: the hot section of an assigned zone (`seats.*`). One zone of 50,000 seats,
//! 128 closed-loop buyers: half ask for the best 1–4 seats, half name 1–4 seats side by
//! side in the front rows' centre (so they conflict). Three paths take turns in slices,
//! each on a fresh zone: the naive strategy (one transaction per hold) straight at its
//! ledger (the baseline), the batched engine straight, and through an edge. After every
//! slice: no seat in two holds, every hold complete, counters = seats = rows = the 201s
//! answered, and every hold's seats side by side.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::audit::ZoneAudit;
use crate::load::Figures;
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{start_edge, Env, EventIds, Ledger};
use crate::workloads::{SeatHolds, SeatLayout};
use crate::{Plan, Progress};

const PATHS: [&str; 3] = ["naive, direct", "batched, direct", "batched, via edge"];
const NAIVE: usize = 0;
const BATCHED: usize = 1;
/// The full run's zone: 100 rows of 500 (the 50,000 seats), an aisle after seat
/// 125 of each row; the quick run's is smaller (its debug builds read whole rows slowly).
const LAYOUT_FULL: SeatLayout = SeatLayout {
    rows: 100,
    seats_per_row: 500,
    aisle_after: 125,
};
const LAYOUT_QUICK: SeatLayout = SeatLayout {
    rows: 20,
    seats_per_row: 250,
    aisle_after: 62,
};
const CLIENTS: usize = 128;
/// Batched must hold at least this many times the naive holds per second…
const GOAL_RATIO: f64 = 10.0;
/// …and at least this many seats per second on this machine.
const GOAL_SEATS_PER_S: f64 = 5_000.0;

/// One path's slices and what the buyers were granted.
struct PathRun {
    figures: Option<Figures>,
    holds: u64,
    seats: u64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("seats", "9. The hot section of an assigned zone");
    let layout = if plan.quick {
        LAYOUT_QUICK
    } else {
        LAYOUT_FULL
    };
    progress.step("seats: starting ledgers and an edge");
    let naive = Ledger::start(env, "seats-naive", &[("HOLD_STRATEGY", "naive")]).await?;
    let batched = Ledger::start(env, "seats-batched", &[("HOLD_STRATEGY", "batched")]).await?;
    let edge = start_edge(env, "seats-edge", &batched, &[]).await?;
    let servers = [
        (&naive, naive.authority.as_str()),
        (&batched, batched.authority.as_str()),
        (&batched, edge.authority.as_str()),
    ];
    let mut runs: Vec<PathRun> = (0..PATHS.len())
        .map(|_| PathRun {
            figures: None,
            holds: 0,
            seats: 0,
        })
        .collect();
    let mut failures = Vec::new();
    let mut not_adjacent = (0, 0);
    let mut last_zone = None;
    for slice in 0..plan.slices {
        for (path, &(ledger, authority)) in servers.iter().enumerate() {
            progress.step(&format!(
                "seats: {}, slice {}/{}",
                PATHS[path],
                slice + 1,
                plan.slices
            ));
            let ids = seated_event(env, ledger, &format!("seats-{slice}-{path}"), layout).await?;
            let run_no = u64::from(slice) * PATHS.len() as u64 + path as u64;
            let workload = Arc::new(SeatHolds::new(
                &ids.show_id,
                &ids.zone_ids[0],
                layout,
                run_no,
            ));
            let figures = slice_on(
                authority,
                workload.clone(),
                CLIENTS,
                plan.warmup,
                plan.flash_slice,
            )
            .await?;
            add_slice(&mut runs[path].figures, figures)?;
            let (holds, seats) = (
                workload.granted.load(Ordering::Relaxed),
                workload.seats.load(Ordering::Relaxed),
            );
            runs[path].holds += holds;
            runs[path].seats += seats;
            let audit = SeatAudit::read(&ledger.pool, &ids.zone_ids[0]).await?;
            if let Some(error) = audit.error(holds, seats) {
                failures.push(format!("{}, slice {slice}: {error}", PATHS[path]));
            }
            not_adjacent.0 += audit.not_adjacent;
            not_adjacent.1 += audit.holds;
            last_zone = Some((ledger.base.clone(), ids));
        }
    }
    let map = match last_zone {
        Some((base, ids)) => Some(MapSize::read(env, &base, &ids.show_id).await?),
        None => None,
    };
    edge.stop().await;
    naive.stop().await?;
    batched.stop().await?;
    report(
        &mut section,
        plan,
        layout,
        &runs,
        &failures,
        not_adjacent,
        map,
    );
    Ok(section)
}

/// A published event with one assigned zone of `layout`.
async fn seated_event(
    env: &Env,
    ledger: &Ledger,
    slug: &str,
    layout: SeatLayout,
) -> anyhow::Result<EventIds> {
    let rows: Vec<Value> = (0..layout.rows)
        .map(|r| json!({"row": format!("R{r}"), "seats": layout.seats_per_row, "gaps_after": [layout.aisle_after]}))
        .collect();
    let zone = json!({"name": "Stalls", "price_minor": 6000, "currency": "EUR", "max_per_order": 4,
                      "seating": "assigned", "seats": {"rows": rows}});
    ledger.create_event_with(env, slug, vec![zone]).await
}

/// A zone after its slice, as the database holds it.
struct SeatAudit {
    zone: ZoneAudit,
    /// Counters that differ from the seats' states, seats in two holds, incomplete holds.
    seat_errors: Vec<String>,
    holds: u64,
    /// Holds whose seats are not side by side in one row (read through the seats' own
    /// `hold_id`, indexed: every hold of a slice is still held).
    not_adjacent: u64,
}

impl SeatAudit {
    async fn read(pool: &PgPool, zone_id: &str) -> anyhow::Result<Self> {
        let zone = ZoneAudit::read(pool, zone_id).await?;
        let id: uuid::Uuid = zone_id.parse()?;
        let seat_errors: Vec<String> = sqlx::query_scalar(
            "select 'counters ' || z.available || '/' || z.held || '/' || z.sold || ' but seats '
                    || count(*) filter (where s.status = 'available') || '/'
                    || count(*) filter (where s.status = 'held') || '/'
                    || count(*) filter (where s.status = 'sold')
             from zones z join seats s on s.zone_id = z.id where z.id = $1
             group by z.id
             having z.available <> count(*) filter (where s.status = 'available')
                 or z.held <> count(*) filter (where s.status = 'held')
                 or z.sold <> count(*) filter (where s.status = 'sold')
             union all
             select 'hold ' || h.id || ' has ' || count(s.seat_index) || ' of its '
                    || h.quantity || ' seats'
             from holds h left join seats s on s.zone_id = h.zone_id and s.hold_id = h.id
             where h.zone_id = $1 and h.status = 'held'
             group by h.id, h.quantity having count(s.seat_index) <> h.quantity",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .context("seat audit")?;
        let (not_adjacent, holds): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where not adjacent), count(*) from (
                 select count(distinct s.row_order) = 1
                        and max(s.position) - min(s.position) = count(*) - 1 as adjacent
                 from holds h join seats s on s.zone_id = h.zone_id and s.hold_id = h.id
                 where h.zone_id = $1 group by h.id) t",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .context("adjacency audit")?;
        Ok(Self {
            zone,
            seat_errors,
            holds: u64::try_from(holds).unwrap_or(0),
            not_adjacent: u64::try_from(not_adjacent).unwrap_or(0),
        })
    }

    fn error(&self, granted: u64, seats: u64) -> Option<String> {
        self.zone
            .holds_error(granted, seats)
            .or_else(|| (!self.seat_errors.is_empty()).then(|| self.seat_errors.join("; ")))
    }
}

/// The served seat map of a zone: the whole answer and its status map.
struct MapSize {
    body_bytes: usize,
    status_chars: usize,
    seat_count: u64,
}

impl MapSize {
    async fn read(env: &Env, base: &str, show_id: &str) -> anyhow::Result<Self> {
        let body = env
            .http
            .get(format!("{base}/v1/shows/{show_id}/seats"))
            .send()
            .await?
            .bytes()
            .await?;
        let map: Value = serde_json::from_slice(&body)?;
        let zone = &map["zones"][0];
        Ok(Self {
            body_bytes: body.len(),
            status_chars: zone["status"].as_str().map_or(0, str::len),
            seat_count: zone["seat_count"].as_u64().unwrap_or(0),
        })
    }
}

fn report(
    section: &mut Section,
    plan: &Plan,
    layout: SeatLayout,
    runs: &[PathRun],
    failures: &[String],
    (not_adjacent, holds): (u64, u64),
    map: Option<MapSize>,
) {
    let seats = layout.rows * layout.seats_per_row;
    section.notes.push(format!(
        "Closed loop, {CLIENTS} clients: each sends its next hold when the last is answered, half asking for the best 1–4 seats, half naming 1–4 seats side by side \
         in the first 10 rows' 40 centre seats (so they conflict). The three paths take turns in {} slices of {:.1} s (after {} ms of warm-up), \
         each on a fresh zone of {} seats ({} rows of {}, an aisle after seat {}). seats/s counts the seats of the 201s.",
        plan.slices, plan.flash_slice.as_secs_f64(), plan.warmup.as_millis(),
        count(seats as f64), layout.rows, layout.seats_per_row, layout.aisle_after
    ));
    section.check_failures(
        "no seat sold twice: counters = seats = rows = the 201s answered, every hold complete",
        failures,
        format!("{} zones audited", plan.slices as usize * PATHS.len()),
    );
    section.check(
        "every hold's seats side by side in one row",
        not_adjacent == 0,
        format!("{not_adjacent} of {holds} holds were not"),
    );
    let seats_per_s = |path: usize| {
        let run = &runs[path];
        let f = run.figures.as_ref()?;
        (run.holds > 0).then(|| f.ok_per_s * run.seats as f64 / run.holds as f64)
    };
    let holds_per_s = |path: usize| runs[path].figures.as_ref().map(|f| f.ok_per_s);
    if let (Some(batched), Some(naive)) = (holds_per_s(BATCHED), holds_per_s(NAIVE)) {
        let ratio = if naive > 0.0 { batched / naive } else { 0.0 };
        section.goal(
            "seats.hot_section_vs_naive_128",
            "batched ≥ 10× naive seat holds/s at 128 clients",
            format!(
                "{ratio:.1}× ({} vs {} holds/s)",
                count(batched),
                count(naive)
            ),
            ratio >= GOAL_RATIO,
        );
    }
    if let Some(batched) = seats_per_s(BATCHED) {
        section.goal(
            "seats.held_per_s_128",
            "batched ≥ 5,000 seats held per second at 128 clients",
            format!("{} seats/s", count(batched)),
            batched >= GOAL_SEATS_PER_S,
        );
    }
    if let Some(map) = map {
        // Two bits a seat in base64: 4 seats a byte, 4 characters for 3 bytes.
        let bound = (map.seat_count.div_ceil(4) * 4).div_ceil(3);
        section.goal(
            "seats.map_bytes",
            "the seat map's status: two bits a seat",
            format!(
                "{} characters of status for {} seats; the whole answer (layout included) {} bytes",
                count(map.status_chars as f64),
                count(map.seat_count as f64),
                count(map.body_bytes as f64)
            ),
            map.status_chars as u64 <= bound,
        );
    }
    section.tables.push(table(runs, &seats_per_s));
    section.data = json!({
        "layout": {"rows": layout.rows, "seats_per_row": layout.seats_per_row},
        "runs": runs.iter().enumerate().map(|(i, r)| json!({"path": PATHS[i], "holds": r.holds, "seats": r.seats, "figures": r.figures})).collect::<Vec<_>>(),
        "not_adjacent": not_adjacent,
    });
}

fn table(runs: &[PathRun], seats_per_s: &dyn Fn(usize) -> Option<f64>) -> Table {
    let mut table = Table::new(
        "Seat holds per second and latency (ms) by path",
        &[
            "path",
            "holds/s",
            "seats/s",
            "p50",
            "p99",
            "refused (409)",
            "errors",
            "÷ naive",
        ],
    );
    let naive = runs[NAIVE].figures.as_ref().map(|f| f.ok_per_s);
    for (path, run) in runs.iter().enumerate() {
        let Some(f) = &run.figures else { continue };
        table.row(vec![
            PATHS[path].to_owned(),
            count(f.ok_per_s),
            seats_per_s(path).map_or(String::new(), count),
            ms(f.p50_ms),
            ms(f.p99_ms),
            count(f.refused as f64),
            count(f.failed as f64),
            naive
                .filter(|n| *n > 0.0 && path != NAIVE)
                .map_or(String::new(), |n| format!("{:.1}×", f.ok_per_s / n)),
        ]);
    }
    table
}
