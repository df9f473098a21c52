//! Scenario 5: does the ledger stay flat as the catalog grows? One database per size,
//! filled with that many published events (one show and one zone each, inserted in bulk),
//! plus one hot zone created through the API. Holds on the hot zone, the sizes taking turns
//! in slices; then `GET /v1/events?q=…` at a fixed rate against each (uncached: straight
//! at the ledger).

use std::sync::Arc;

use serde_json::json;

use crate::load::{self, Figures, Targets};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::stack::{Env, Ledger};
use crate::workloads::{Holds, Reads};
use crate::{Plan, Progress};

const CLIENTS: usize = 32;
const SEARCH_RATE_PER_S: f64 = 100.0;
/// Title words: each matches ~1/20 of the events, so a search has many hits to rank.
const WORDS: [&str; 20] = [
    "rock", "jazz", "opera", "techno", "folk", "blues", "swing", "ballet", "comedy", "indie",
    "metal", "soul", "gospel", "reggae", "salsa", "tango", "piano", "choir", "circus", "poetry",
];

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("scale", "5. Scale");
    let mut stands = Vec::new();
    for &size in &plan.scale_sizes {
        progress.step(&format!(
            "scale: {} events/zones, filling",
            count(size as f64)
        ));
        let ledger = Ledger::start(env, &format!("scale-{size}"), &[]).await?;
        fill(&ledger, size).await?;
        let ids = ledger
            .create_event(env, &format!("scale-hot-{size}"), 1, 1_000_000)
            .await?;
        stands.push((size, ledger, ids));
    }
    let mut holds: Vec<Option<Figures>> = stands.iter().map(|_| None).collect();
    let mut run_no = 0;
    for slice in 0..plan.slices {
        for (i, (size, ledger, ids)) in stands.iter().enumerate() {
            progress.step(&format!(
                "scale: holds with {} zones, slice {}/{}",
                count(*size as f64),
                slice + 1,
                plan.slices
            ));
            run_no += 1;
            let workload = Arc::new(Holds::new(&ids.show_id, &ids.zone_ids[0], 1, run_no));
            let figures = load::closed_loop(
                &Targets::new(vec![ledger.authority.clone()]),
                workload,
                CLIENTS,
                plan.warmup,
                plan.scale_slice,
            )
            .await?;
            holds[i] = Some(match holds[i].take() {
                Some(total) => total.absorb(&figures)?,
                None => figures,
            });
        }
    }
    let mut searches = Vec::new();
    for (size, ledger, _) in &stands {
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
                32,
            )
            .await?,
        );
    }

    section.notes.push(format!(
        "Each size is its own database with that many published events, each with one show and one zone (so N events = N zones), inserted in bulk, then ANALYZE. \
         Holds: {CLIENTS} closed-loop clients on one hot zone, the sizes taking turns in {} slices of {:.1} s. \
         Search: `GET /v1/events?q=<word>` at {}/s open loop for {:.0} s, straight at the ledger (the edge would cache repeated queries), \
         each word matching ~5% of the events.",
        plan.slices,
        plan.scale_slice.as_secs_f64(),
        count(SEARCH_RATE_PER_S),
        plan.search_window.as_secs_f64()
    ));
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
    for (i, (size, _, _)) in stands.iter().enumerate() {
        let h = holds[i].as_ref();
        let s = &searches[i];
        table.row(vec![
            count(*size as f64),
            count(h.map_or(0.0, |f| f.ok_per_s)),
            ms(h.map_or(0.0, |f| f.p50_ms)),
            ms(h.map_or(0.0, |f| f.p99_ms)),
            ms(s.p50_ms),
            ms(s.latency_us.value_at_quantile(0.95) as f64 / 1000.0),
            ms(s.p99_ms),
            count(s.failed as f64),
        ]);
        data.push(json!({"size": size, "holds": h, "search": s, "search_p95_ms": s.latency_us.value_at_quantile(0.95) as f64 / 1000.0}));
    }
    section.tables.push(table);
    let rate = |i: usize| holds[i].as_ref().map_or(0.0, |f| f.ok_per_s);
    let last = stands.len() - 1;
    if rate(0) > 0.0 {
        let ratio = rate(last) / rate(0);
        section.goal(
            &format!(
                "holds/s flat: {} zones within 25% of {}",
                count(stands[last].0 as f64),
                count(stands[0].0 as f64)
            ),
            format!("{:.0}%", ratio * 100.0),
            (0.75..=1.25).contains(&ratio),
        );
    }
    for (i, (size, _, _)) in stands.iter().enumerate().skip(1) {
        let p95 = searches[i].latency_us.value_at_quantile(0.95) as f64 / 1000.0;
        section.goal(
            &format!("search p95 with {} events (reported)", count(*size as f64)),
            format!("{} ms", ms(p95)),
            searches[i].failed == 0,
        );
    }
    let categories: Vec<String> = stands
        .iter()
        .map(|(size, _, _)| count(*size as f64))
        .collect();
    section.charts.push(Chart {
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
            points: (0..stands.len()).map(|i| (i as f64, rate(i))).collect(),
        }],
    });
    section.charts.push(Chart {
        file: "scale-search.svg".to_owned(),
        title: "GET /v1/events?q= latency by catalog size (ms)".to_owned(),
        x_label: "events in the database".to_owned(),
        y_label: "ms".to_owned(),
        log_y: false,
        kind: ChartKind::Bars { categories },
        series: vec![
            Series {
                name: "p50".to_owned(),
                points: searches
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64, s.p50_ms))
                    .collect(),
            },
            Series {
                name: "p95".to_owned(),
                points: searches
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        (
                            i as f64,
                            s.latency_us.value_at_quantile(0.95) as f64 / 1000.0,
                        )
                    })
                    .collect(),
            },
        ],
    });
    section.data = json!({"runs": data});
    for (_, ledger, _) in stands {
        ledger.stop().await?;
    }
    Ok(section)
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
