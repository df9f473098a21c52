//! Scenario 5: does the ledger stay flat as the catalog grows? One database per size,
//! filled with that many published events (one show and one zone each, inserted in bulk),
//! plus one hot zone created through the API. Holds on the hot zone, the sizes taking turns
//! in slices; then `GET /v1/events?q=…` at a fixed rate against each (uncached: straight
//! at the ledger).

use std::ops::RangeInclusive;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::load::{self, quantile_ms, Figures, Targets};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{Env, EventIds, Ledger};
use crate::workloads::{Holds, Reads};
use crate::{Plan, Progress};

const CLIENTS: usize = 32;
const SEARCH_RATE_PER_S: f64 = 100.0;
/// Open-loop connections for the searches: a bound on what the generator opens; a search
/// that finds none free waits and counts as late.
const CONNECTIONS_MAX: usize = 32;
/// Tickets of the hot zone: ample, so the slices measure holds on a large catalog, not a
/// sell-out.
const HOT_STOCK: i32 = 1_000_000;
/// The goal: holds/s with the largest catalog as a share of those with the smallest.
const GOAL_FLAT: RangeInclusive<f64> = 0.75..=1.25;
/// Title words: each matches ~1/20 of the events, so a search has many hits to rank.
const WORDS: [&str; 20] = [
    "rock", "jazz", "opera", "techno", "folk", "blues", "swing", "ballet", "comedy", "indie",
    "metal", "soul", "gospel", "reggae", "salsa", "tango", "piano", "choir", "circus", "poetry",
];

/// A ledger on a database of `size` events, and its hot event created through the API.
struct Catalog {
    size: usize,
    ledger: Ledger,
    ids: EventIds,
}

/// Holds on each catalog's hot zone (slices absorbed), and its searches, in catalog order.
struct Measured {
    holds: Vec<Option<Figures>>,
    searches: Vec<Figures>,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("scale", "5. Scale");
    let catalogs = start_catalogs(env, plan, progress).await?;
    let measured = Measured {
        holds: measure_holds(plan, progress, &catalogs).await?,
        searches: measure_searches(plan, progress, &catalogs).await?,
    };

    section.notes.push(note(plan));
    let (table, data) = rows(&catalogs, &measured);
    section.tables.push(table);
    goals(&mut section, &catalogs, &measured);
    section.charts.extend(charts(&catalogs, &measured));
    section.data = json!({"runs": data});
    for catalog in catalogs {
        catalog.ledger.stop().await?;
    }
    Ok(section)
}

/// A ledger per size of the plan, its database filled, with a hot event.
async fn start_catalogs(
    env: &Env,
    plan: &Plan,
    progress: &Progress,
) -> anyhow::Result<Vec<Catalog>> {
    let mut catalogs = Vec::new();
    for &size in &plan.scale_sizes {
        progress.step(&format!(
            "scale: {} events/zones, filling",
            count(size as f64)
        ));
        let ledger = Ledger::start(env, &format!("scale-{size}"), &[]).await?;
        fill(&ledger, size).await?;
        let ids = ledger
            .create_event(env, &format!("scale-hot-{size}"), 1, HOT_STOCK)
            .await?;
        catalogs.push(Catalog { size, ledger, ids });
    }
    Ok(catalogs)
}

/// Closed-loop holds on each hot zone, the sizes taking turns in slices.
async fn measure_holds(
    plan: &Plan,
    progress: &Progress,
    catalogs: &[Catalog],
) -> anyhow::Result<Vec<Option<Figures>>> {
    let mut holds: Vec<Option<Figures>> = catalogs.iter().map(|_| None).collect();
    let mut run_no = 0;
    for slice in 0..plan.slices {
        for (i, Catalog { size, ledger, ids }) in catalogs.iter().enumerate() {
            progress.step(&format!(
                "scale: holds with {} zones, slice {}/{}",
                count(*size as f64),
                slice + 1,
                plan.slices
            ));
            run_no += 1;
            let workload = Arc::new(Holds::new(&ids.show_id, &ids.zone_ids[0], 1, run_no));
            let figures = slice_on(
                &ledger.authority,
                workload,
                CLIENTS,
                plan.warmup,
                plan.scale_slice,
            )
            .await?;
            add_slice(&mut holds[i], figures)?;
        }
    }
    Ok(holds)
}

/// Open-loop searches for the title words against each ledger.
async fn measure_searches(
    plan: &Plan,
    progress: &Progress,
    catalogs: &[Catalog],
) -> anyhow::Result<Vec<Figures>> {
    let mut searches = Vec::new();
    for Catalog { size, ledger, .. } in catalogs {
        progress.step(&format!(
            "scale: search with {} events",
            count(*size as f64)
        ));
        let workload = Arc::new(Reads {
            paths: WORDS.iter().map(|w| format!("/v1/events?q={w}")).collect(),
        });
        searches.push(
            load::open_loop(
                &Targets::new(vec![ledger.authority.clone()]),
                workload,
                SEARCH_RATE_PER_S,
                plan.search_window,
                CONNECTIONS_MAX,
            )
            .await?,
        );
    }
    Ok(searches)
}

fn note(plan: &Plan) -> String {
    format!(
        "Each size is its own database with that many published events, each with one show and one zone (so N events = N zones), inserted in bulk, then ANALYZE. \
         Holds: {CLIENTS} closed-loop clients on one hot zone, the sizes taking turns in {} slices of {:.1} s. \
         Search: `GET /v1/events?q=<word>` at {}/s open loop for {:.0} s, straight at the ledger (the edge would cache repeated queries), \
         each word matching ~5% of the events.",
        plan.slices,
        plan.scale_slice.as_secs_f64(),
        count(SEARCH_RATE_PER_S),
        plan.search_window.as_secs_f64()
    )
}

fn p95_ms(figures: &Figures) -> f64 {
    quantile_ms(&figures.latency_us, 0.95)
}

impl Measured {
    /// Holds/s on catalog `i`'s hot zone (0 if none ran).
    fn rate(&self, i: usize) -> f64 {
        self.holds[i].as_ref().map_or(0.0, |f| f.ok_per_s)
    }
}

/// The table, and the runs for report.json.
fn rows(catalogs: &[Catalog], measured: &Measured) -> (Table, Vec<Value>) {
    let mut table = Table::new(
        "Holds on a hot zone and event search, by catalog size",
        &[
            "events = zones",
            "holds/s",
            "hold p50",
            "hold p99",
            "search p50",
            "search p95",
            "search p99",
            "search errors",
        ],
    );
    let mut data = Vec::new();
    for (i, Catalog { size, .. }) in catalogs.iter().enumerate() {
        let h = measured.holds[i].as_ref();
        let s = &measured.searches[i];
        table.row(vec![
            count(*size as f64),
            count(h.map_or(0.0, |f| f.ok_per_s)),
            ms(h.map_or(0.0, |f| f.p50_ms)),
            ms(h.map_or(0.0, |f| f.p99_ms)),
            ms(s.p50_ms),
            ms(p95_ms(s)),
            ms(s.p99_ms),
            count(s.failed as f64),
        ]);
        data.push(json!({"size": size, "holds": h, "search": s, "search_p95_ms": p95_ms(s)}));
    }
    (table, data)
}

/// Holds/s flat from the smallest catalog to the largest; each larger catalog's search p95.
fn goals(section: &mut Section, catalogs: &[Catalog], measured: &Measured) {
    let last = catalogs.len() - 1;
    if measured.rate(0) > 0.0 {
        let ratio = measured.rate(last) / measured.rate(0);
        section.goal(
            "scale.holds_flat",
            &format!(
                "holds/s flat: {} zones within 25% of {}",
                count(catalogs[last].size as f64),
                count(catalogs[0].size as f64)
            ),
            format!("{:.0}%", ratio * 100.0),
            GOAL_FLAT.contains(&ratio),
        );
    }
    for (i, Catalog { size, .. }) in catalogs.iter().enumerate().skip(1) {
        let search = &measured.searches[i];
        section.goal(
            &format!("scale.search_p95_{size}"),
            &format!("search p95 with {} events (reported)", count(*size as f64)),
            format!("{} ms", ms(p95_ms(search))),
            search.failed == 0,
        );
    }
}

/// Holds/s by catalog size; search p50 and p95 by catalog size.
fn charts(catalogs: &[Catalog], measured: &Measured) -> [Chart; 2] {
    let categories: Vec<String> = catalogs.iter().map(|c| count(c.size as f64)).collect();
    let by_size = |pick: fn(&Figures) -> f64| -> Vec<(f64, f64)> {
        let searches = measured.searches.iter().enumerate();
        searches.map(|(i, s)| (i as f64, pick(s))).collect()
    };
    [
        Chart {
            file: "scale-holds.svg".to_owned(),
            title: "Holds/s on a hot zone by number of zones".to_owned(),
            x_label: "events = zones in the database".to_owned(),
            y_label: "holds/s".to_owned(),
            log_y: false,
            kind: ChartKind::Bars {
                categories: categories.clone(),
            },
            series: vec![Series {
                name: "holds/s".to_owned(),
                points: (0..catalogs.len())
                    .map(|i| (i as f64, measured.rate(i)))
                    .collect(),
            }],
        },
        Chart {
            file: "scale-search.svg".to_owned(),
            title: "GET /v1/events?q= latency by catalog size (ms)".to_owned(),
            x_label: "events in the database".to_owned(),
            y_label: "ms".to_owned(),
            log_y: false,
            kind: ChartKind::Bars { categories },
            series: vec![
                Series {
                    name: "p50".to_owned(),
                    points: by_size(|s| s.p50_ms),
                },
                Series {
                    name: "p95".to_owned(),
                    points: by_size(p95_ms),
                },
            ],
        },
    ]
}

/// `size` published events with one show and one zone each, in three set-based inserts.
async fn fill(ledger: &Ledger, size: usize) -> anyhow::Result<()> {
    let words = WORDS.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    let mut tx = ledger.pool.begin().await?;
    sqlx::query(
        "insert into venues (id, tenant_id, name, city, country, timezone)
         select gen_random_uuid(), id, 'Scale Hall', 'Berlin', 'DE', 'Europe/Berlin' from tenants limit 1",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into events (id, tenant_id, venue_id, category_slug, slug, title, status, starts_at)
         select gen_random_uuid(), v.tenant_id, v.id, 'concerts', 'scale-' || i,
                initcap($2[1 + i % 20]) || ' ' || $2[1 + (i / 20) % 20] || ' night ' || i, 'published',
                '2030-01-01T19:00:00Z'::timestamptz + make_interval(mins => i)
         from venues v, generate_series(1, $1) i where v.name = 'Scale Hall'",
    )
    .bind(size as i32)
    .bind(&words)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "with s as (insert into shows (id, event_id, starts_at)
                    select gen_random_uuid(), id, starts_at from events where slug like 'scale-%'
                    returning id)
         insert into zones (id, show_id, name, price_minor, currency, capacity, available)
         select gen_random_uuid(), s.id, 'Floor', 4500, 'EUR', 1000, 1000 from s",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("analyze").execute(&ledger.pool).await?;
    Ok(())
}
