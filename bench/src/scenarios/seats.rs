//! Scenario 9: the hot section of an assigned zone (`seats.*`). One zone of 50,000 seats,
//! 128 closed-loop buyers: half ask for the best 1–4 seats, half name 1–4 seats side by
//! side in the front rows' centre (so they conflict). Three paths take turns in slices,
//! each on a fresh zone: the naive strategy (one transaction per hold) straight at its
//! ledger (the baseline), the batched engine straight, and through an edge (which has the
//! zone's seat map cached, as after a buyer's first page, so it patches it from every batch's
//! message and sheds holds for seats it shows taken). After every
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
use crate::stack::{start_edge, Edge, Env, EventIds, Ledger};
use crate::workloads::{SeatHolds, SeatLayout};
use crate::{Plan, Progress};
use redis::AsyncCommands;
use tessera_domain::invalidation::{Change, Invalidation, ZoneCounters};
use tessera_domain::seats::{decode_status_map, SeatStatus};
use tessera_testkit::metrics::sum_metric;

const PATHS: [&str; 3] = ["naive, direct", "batched, direct", "batched, via edge"];
const NAIVE: usize = 0;
const BATCHED: usize = 1;
const VIA_EDGE: usize = 2;
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
    /// Holds the edge refused itself (`seat_unavailable` from its cached map).
    shed: u64,
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
    let mut slices = Slices::new();
    for slice in 0..plan.slices {
        for (path, &(ledger, authority)) in servers.iter().enumerate() {
            progress.step(&format!(
                "seats: {}, slice {}/{}",
                PATHS[path],
                slice + 1,
                plan.slices
            ));
            let on = SliceOn {
                path,
                ledger,
                authority,
                edge: &edge,
            };
            slices.run(env, plan, layout, &on, slice).await?;
        }
    }
    let Slices {
        runs,
        failures,
        not_adjacent,
        last_zone,
    } = slices;
    let map = match last_zone {
        Some((base, ids)) => Some(MapSize::read(env, &base, &ids.show_id).await?),
        None => None,
    };
    edge.stop().await;
    naive.stop().await?;
    batched.stop().await?;
    progress.step("seats: patching an edge's seat map");
    let patch = PatchTiming::measure(env, layout).await?;
    report(
        &mut section,
        plan,
        layout,
        &runs,
        &failures,
        not_adjacent,
        (map, patch),
    );
    Ok(section)
}

/// Where one path's slice sends its holds.
struct SliceOn<'a> {
    path: usize,
    ledger: &'a Ledger,
    authority: &'a str,
    /// The one edge (it sheds for [`VIA_EDGE`]).
    edge: &'a Edge,
}

/// What the slices measured and found, over every path.
struct Slices {
    runs: Vec<PathRun>,
    failures: Vec<String>,
    /// Holds whose seats were not side by side, and all holds audited.
    not_adjacent: (u64, u64),
    /// The last zone sold: its ledger's base URL and ids (its map is measured).
    last_zone: Option<(String, EventIds)>,
}

impl Slices {
    fn new() -> Self {
        Self {
            runs: (0..PATHS.len())
                .map(|_| PathRun {
                    figures: None,
                    holds: 0,
                    seats: 0,
                    shed: 0,
                })
                .collect(),
            failures: Vec::new(),
            not_adjacent: (0, 0),
            last_zone: None,
        }
    }

    /// One slice of `on.path` on a fresh zone, measured, then audited.
    async fn run(
        &mut self,
        env: &Env,
        plan: &Plan,
        layout: SeatLayout,
        on: &SliceOn<'_>,
        slice: u32,
    ) -> anyhow::Result<()> {
        let path = on.path;
        let ids = seated_event(env, on.ledger, &format!("seats-{slice}-{path}"), layout).await?;
        if path == VIA_EDGE {
            // As a buyer's page does before anyone picks a seat: the edge caches the map,
            // patches it from every batch's message, and sheds holds for seats it shows
            // taken.
            let map = format!("http://{}/v1/shows/{}/seats", on.authority, ids.show_id);
            env.http.get(map).send().await?.error_for_status()?;
        }
        let run_no = u64::from(slice) * PATHS.len() as u64 + path as u64;
        let workload = Arc::new(SeatHolds::new(
            &ids.show_id,
            &ids.zone_ids[0],
            layout,
            run_no,
        ));
        let shed_before = edge_sheds(on.edge).await?;
        let figures = slice_on(
            on.authority,
            workload.clone(),
            CLIENTS,
            plan.warmup,
            plan.flash_slice,
        )
        .await?;
        let run = &mut self.runs[path];
        add_slice(&mut run.figures, figures)?;
        let holds = workload.granted.load(Ordering::Relaxed);
        let seats = workload.seats.load(Ordering::Relaxed);
        run.holds += holds;
        run.seats += seats;
        if path == VIA_EDGE {
            run.shed += (edge_sheds(on.edge).await? - shed_before) as u64;
        }
        let audit = SeatAudit::read(&on.ledger.pool, &ids.zone_ids[0]).await?;
        if let Some(error) = audit.error(holds, seats) {
            self.failures
                .push(format!("{}, slice {slice}: {error}", PATHS[path]));
        }
        self.not_adjacent.0 += audit.not_adjacent;
        self.not_adjacent.1 += audit.holds;
        self.last_zone = Some((on.ledger.base.clone(), ids));
        Ok(())
    }
}

/// Holds the edge answered 409 itself (shed), so far.
async fn edge_sheds(edge: &Edge) -> anyhow::Result<f64> {
    let labels = [
        ("component", "holds"),
        ("status", "409"),
        ("served_by", "edge"),
    ];
    Ok(sum_metric(
        &edge.scrape().await?,
        "edge_requests_total",
        &labels,
    ))
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

/// `seats` messages of this many changes each…
const PATCH_SEATS: usize = 100;
/// …this many of them.
const PATCH_MESSAGES: usize = 20;
/// How long one message may take to be applied.
const PATCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// What an edge's invalidator spends on a `seats` message of [`PATCH_SEATS`] changes to its
/// cached map of the zone: the host's `edge_invalidation_seconds` over [`PATCH_MESSAGES`]
/// messages. The ledger is quiet (no heartbeats, no sales) and the messages are the
/// ledger's own type, numbered on from its last and published on its channel, holding 100
/// seats each: admin blocks would also evict the map (they change the event's capacity),
/// and holds take at most four seats.
struct PatchTiming {
    mean_ms: f64,
    messages: usize,
    /// The map was still a cache hit showing the last message's seats held: patched in
    /// place, never dropped and refetched.
    still_cached: bool,
}

impl PatchTiming {
    async fn measure(env: &Env, layout: SeatLayout) -> anyhow::Result<Self> {
        let quiet = [("OUTBOX_HEARTBEAT_INTERVAL_MS", "600000")];
        let ledger = Ledger::start(env, "seats-patch", &quiet).await?;
        let ids = seated_event(env, &ledger, "seats-patch", layout).await?;
        // Without heartbeats the node trusts its cache for as long as the measurement.
        let edge = start_edge(
            env,
            "seats-patch-edge",
            &ledger,
            &[
                ("SPIN_VARIABLE_STREAM_FRESHNESS_MS", "600000"),
                ("SPIN_VARIABLE_AVAILABILITY_TTL_MS", "600000"),
            ],
        )
        .await?;
        let result = Self::patch(env, &ledger, &edge, &ids).await;
        edge.stop().await;
        ledger.stop().await?;
        result
    }

    async fn patch(
        env: &Env,
        ledger: &Ledger,
        edge: &crate::stack::Edge,
        ids: &EventIds,
    ) -> anyhow::Result<Self> {
        let path = format!("/v1/shows/{}/seats", ids.show_id);
        let map: Value = env.http.get(edge.url(&path)).send().await?.json().await?;
        let zone = &map["zones"][0];
        let (Some(mut version), Some(seat_count)) =
            (zone["version"].as_i64(), zone["seat_count"].as_i64())
        else {
            anyhow::bail!("no assigned zone in the edge's seat map: {map}");
        };
        let mut seq = last_published_seq(&ledger.pool).await?;
        let mut redis = redis::Client::open(env.redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let applied = || async {
            let text = edge.scrape().await?;
            anyhow::Ok((
                sum_metric(&text, "edge_invalidations_total", &[("outcome", "applied")]),
                sum_metric(&text, "edge_invalidation_seconds_sum", &[]),
                sum_metric(&text, "edge_invalidation_seconds_count", &[]),
            ))
        };
        let (mut count, sum_before, count_before) = applied().await?;
        let mut held = 0;
        for message in 0..PATCH_MESSAGES {
            let first = i32::try_from(message * PATCH_SEATS)?;
            let seats: Vec<i32> = (first..first + PATCH_SEATS as i32).collect();
            (seq, version, held) = (seq + 1, version + 1, held + PATCH_SEATS as i32);
            let counters = ZoneCounters {
                show_id: ids.show_id.parse()?,
                zone_id: ids.zone_ids[0].parse()?,
                available: i32::try_from(seat_count)? - held,
                held,
                sold: 0,
                version,
            };
            let change = Change::seats(counters, &seats, SeatStatus::Held);
            let payload = serde_json::to_string(&Invalidation { seq, change })?;
            let _: i64 = redis.publish(&ledger.channel, payload).await?;
            wait_for(|| async { Ok(applied().await?.0 > count) }, message).await?;
            count += 1.0;
        }
        let (_, sum_after, count_after) = applied().await?;
        let served = env.http.get(edge.url(&path)).send().await?;
        let hit = served
            .headers()
            .get("tessera-cache")
            .is_some_and(|v| v.as_bytes() == b"hit");
        let map: Value = served.json().await?;
        let last = i32::try_from(PATCH_MESSAGES * PATCH_SEATS)? - 1;
        let status = map["zones"][0]["status"].as_str().unwrap_or_default();
        let states = decode_status_map(status, usize::try_from(seat_count)?).unwrap_or_default();
        let messages = count_after - count_before;
        Ok(Self {
            mean_ms: if messages > 0.0 {
                (sum_after - sum_before) / messages * 1_000.0
            } else {
                0.0
            },
            messages: messages as usize,
            still_cached: hit && states.get(last as usize) == Some(&SeatStatus::Held),
        })
    }
}

/// The highest `seq` the ledger has published, once everything it wrote is published.
async fn last_published_seq(pool: &PgPool) -> anyhow::Result<i64> {
    wait_for(
        || async {
            let pending: i64 =
                sqlx::query_scalar("select count(*) from outbox where published_at is null")
                    .fetch_one(pool)
                    .await?;
            Ok(pending == 0)
        },
        0,
    )
    .await?;
    Ok(
        sqlx::query_scalar("select coalesce(max(seq), 0) from outbox")
            .fetch_one(pool)
            .await?,
    )
}

/// Polls `done` until it holds, for at most [`PATCH_DEADLINE`] (step `step` of the phase).
async fn wait_for<F, Fut>(mut done: F, step: usize) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = std::time::Instant::now() + PATCH_DEADLINE;
    while !done().await? {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "seat map patching, step {step}: not done within {PATCH_DEADLINE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    Ok(())
}

fn report(
    section: &mut Section,
    plan: &Plan,
    layout: SeatLayout,
    runs: &[PathRun],
    failures: &[String],
    (not_adjacent, holds): (u64, u64),
    (map, patch): (Option<MapSize>, PatchTiming),
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
    map_goals(section, map, &patch);
    section.tables.push(table(runs, &seats_per_s));
    section.data = json!({
        "layout": {"rows": layout.rows, "seats_per_row": layout.seats_per_row},
        "runs": runs.iter().enumerate().map(|(i, r)| json!({"path": PATHS[i], "holds": r.holds, "seats": r.seats, "shed_at_edge": r.shed, "figures": r.figures})).collect::<Vec<_>>(),
        "not_adjacent": not_adjacent,
    });
}

/// `seats.map_bytes` (when a map was read) and `seats.patch_100_ms`.
fn map_goals(section: &mut Section, map: Option<MapSize>, patch: &PatchTiming) {
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
    section.goal(
        "seats.patch_100_ms",
        "an edge patches its cached map with 100-seat messages (time reported)",
        format!(
            "{:.2} ms a message on average ({} messages, instantiation included); patched in place: {}",
            patch.mean_ms, patch.messages, patch.still_cached
        ),
        patch.still_cached,
    );
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
            "of them shed at the edge",
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
            if path == VIA_EDGE {
                count(run.shed as f64)
            } else {
                String::new()
            },
            count(f.failed as f64),
            naive
                .filter(|n| *n > 0.0 && path != NAIVE)
                .map_or(String::new(), |n| format!("{:.1}×", f.ok_per_s / n)),
        ]);
    }
    table
}
