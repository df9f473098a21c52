//! Scenario 1: a flash sale on one hot zone of 50,000 tickets. For each number of
//! concurrent buyers, three paths take turns in short slices (so a drift in the machine's
//! speed weighs on all alike), each slice on a fresh zone: the naive strategy straight at
//! its ledger (the baseline), the batched strategy straight at its ledger, and the batched
//! ledger through an edge node. Every zone is audited afterwards.

use std::sync::Arc;

use serde_json::json;

use crate::audit::ZoneAudit;
use crate::load::{self, Figures, Targets};
use crate::report::{count, ms, Chart, ChartKind, Section, Series, Table};
use crate::stack::{start_edge, Env, Ledger};
use crate::workloads::Holds;
use crate::{Plan, Progress};

const ZONE_STOCK: i32 = 50_000;

const PATHS: [&str; 3] = ["naive, direct", "batched, direct", "batched, via edge"];

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("flash-sale", "1. Flash sale on one hot zone");
    section.notes.push(format!(
        "Closed loop: each client sends its next hold (1–4 tickets, a new customer and Idempotency-Key each) when the last is answered. \
         Per client count, the three paths take turns in {} slices of {:.1} s (after {} ms of warm-up each), every slice on a fresh zone of {} tickets; \
         a slice ends early when its zone sells out (then its time runs to the last 201). holds/s counts 201s only.",
        plan.slices,
        plan.flash_slice.as_secs_f64(),
        plan.warmup.as_millis(),
        count(ZONE_STOCK.into())
    ));
    section.notes.push("Each client count starts fresh ledgers and databases (naive and batched), and an edge node in front of the batched ledger.".to_owned());
    let mut results: Vec<(usize, usize, Figures)> = Vec::new();
    let mut audits = Vec::new();
    let mut failures = Vec::new();
    let mut run_no = 0u64;
    for &clients in &plan.flash_clients {
        progress.step(&format!("flash sale: {clients} clients, starting ledgers"));
        let naive = Ledger::start(
            env,
            &format!("flash-naive-{clients}"),
            &[("HOLD_STRATEGY", "naive")],
        )
        .await?;
        let batched = Ledger::start(
            env,
            &format!("flash-batched-{clients}"),
            &[("HOLD_STRATEGY", "batched")],
        )
        .await?;
        let edge = start_edge(env, &format!("flash-edge-{clients}"), &batched, &[]).await?;
        let stands: [(&Ledger, String); 3] = [
            (&naive, naive.authority.clone()),
            (&batched, batched.authority.clone()),
            (&batched, edge.authority.clone()),
        ];
        let mut totals: [Option<Figures>; 3] = [None, None, None];
        for slice in 0..plan.slices {
            for (path, (ledger, authority)) in stands.iter().enumerate() {
                progress.step(&format!(
                    "flash sale: {clients} clients, {}, slice {}/{}",
                    PATHS[path],
                    slice + 1,
                    plan.slices
                ));
                run_no += 1;
                let ids = ledger
                    .create_event(
                        env,
                        &format!("flash-{clients}-{slice}-{path}"),
                        1,
                        ZONE_STOCK,
                    )
                    .await?;
                let workload = Arc::new(Holds::new(&ids.show_id, &ids.zone_ids[0], 1, run_no));
                let figures = load::closed_loop(
                    &Targets::new(vec![authority.clone()]),
                    workload.clone(),
                    clients,
                    plan.warmup,
                    plan.flash_slice,
                )
                .await?;
                let audit = ZoneAudit::read(&ledger.pool, &ids.zone_ids[0]).await?;
                let granted = workload.granted.load(std::sync::atomic::Ordering::Relaxed);
                let tickets = workload.tickets.load(std::sync::atomic::Ordering::Relaxed);
                if let Some(error) = audit.holds_error(granted, tickets) {
                    failures.push(format!("{clients} clients, {}: {error}", PATHS[path]));
                }
                audits.push(json!({"clients": clients, "path": PATHS[path], "granted": granted, "tickets": tickets, "zone": audit}));
                totals[path] = Some(match totals[path].take() {
                    Some(total) => total.absorb(&figures)?,
                    None => figures,
                });
            }
        }
        for (path, total) in totals.into_iter().enumerate() {
            if let Some(total) = total {
                progress.line(&format!(
                    "flash sale {clients:>4} clients {:<18} {:>8.0} holds/s  p99 {:>8.2} ms",
                    PATHS[path], total.ok_per_s, total.p99_ms
                ));
                results.push((clients, path, total));
            }
        }
        edge.stop().await;
        naive.stop().await?;
        batched.stop().await?;
    }

    let zones = audits.len();
    section.check(
        "zero oversell: every zone's counters = its rows = the 201s answered",
        failures.is_empty(),
        if failures.is_empty() {
            format!("{zones} zones audited: available + held + sold = capacity, held = tickets of held rows, rows = 201s")
        } else {
            failures.join("; ")
        },
    );

    let ratio = |clients: usize, path: usize| -> Option<f64> {
        let of = |p: usize| {
            results
                .iter()
                .find(|(c, q, _)| *c == clients && *q == p)
                .map(|r| r.2.ok_per_s)
        };
        match (of(path), of(0)) {
            (Some(x), Some(naive)) if naive > 0.0 => Some(x / naive),
            _ => None,
        }
    };
    let mut table = Table::new(
        "Holds per second and latency (ms) by path",
        &[
            "clients",
            "path",
            "holds/s",
            "p50",
            "p99",
            "p99.9",
            "refused (409)",
            "503 / errors",
            "÷ naive",
        ],
    );
    for (clients, path, f) in &results {
        let shed = f.by_status.get(&503).copied().unwrap_or(0);
        table.row(vec![
            clients.to_string(),
            PATHS[*path].to_owned(),
            count(f.ok_per_s),
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms),
            count(f.refused as f64),
            format!(
                "{} / {}",
                count(shed as f64),
                count(f.failed.saturating_sub(shed) as f64)
            ),
            ratio(*clients, *path)
                .filter(|_| *path > 0)
                .map_or(String::new(), |r| format!("{r:.1}×")),
        ]);
    }
    section.tables.push(table);
    if let Some(r) = ratio(128, 1) {
        section.goal(
            "batched ≥ 20× naive holds/s at 128 clients",
            format!("{r:.1}×"),
            r >= 20.0,
        );
    }
    let categories: Vec<String> = plan
        .flash_clients
        .iter()
        .map(|c| format!("{c} clients"))
        .collect();
    let series = |pick: fn(&Figures) -> f64| -> Vec<Series> {
        PATHS
            .iter()
            .enumerate()
            .map(|(path, name)| Series {
                name: (*name).to_owned(),
                points: results
                    .iter()
                    .filter(|r| r.1 == path)
                    .filter_map(|r| {
                        Some((
                            plan.flash_clients.iter().position(|c| *c == r.0)? as f64,
                            pick(&r.2),
                        ))
                    })
                    .collect(),
            })
            .collect()
    };
    section.charts.push(Chart {
        file: "flash-sale-throughput.svg".to_owned(),
        title: "Flash sale: holds/s (log scale)".to_owned(),
        x_label: "concurrent clients".to_owned(),
        y_label: "holds/s".to_owned(),
        log_y: true,
        kind: ChartKind::Bars {
            categories: categories.clone(),
        },
        series: series(|f| f.ok_per_s),
    });
    section.charts.push(Chart {
        file: "flash-sale-p99.svg".to_owned(),
        title: "Flash sale: p99 latency of granted holds (ms, log scale)".to_owned(),
        x_label: "concurrent clients".to_owned(),
        y_label: "p99 ms".to_owned(),
        log_y: true,
        kind: ChartKind::Bars { categories },
        series: series(|f| f.p99_ms),
    });
    section.data = json!({
        "runs": results.iter().map(|(c, p, f)| json!({"clients": c, "path": PATHS[*p], "figures": f})).collect::<Vec<_>>(),
        "audits": audits,
    });
    Ok(section)
}
