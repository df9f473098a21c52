//! Scenario 15: checkout on one hot zone (`checkout.batched_vs_naive_128`). 128
//! closed-loop buyers each hold one ticket and confirm it, straight at a ledger, in slices
//! that alternate between the naive strategy (one transaction per hold and per confirm:
//! the baseline) and the batched one (the zone's writer commits the waiting holds in one
//! transaction and the waiting confirms in another). A confirm moves the zone's counters,
//! so unbatched it holds the zone's row lock through its commit: every buyer who pays
//! waits for one commit per buyer ahead. Reported: orders confirmed per second by each,
//! their ratio, p99 of a request, and the batched engine's mean confirms per commit.
//! Checks: on each ledger the zone's sold count, its tickets and the confirmed orders agree
//! with the confirms the buyers were answered.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::load::Figures;
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{Env, Ledger};
use crate::workloads::Checkout;
use crate::{Plan, Progress};

const CLIENTS: usize = 128;
/// Batched must confirm at least this many times as many orders per second as naive.
const GOAL_RATIO: f64 = 10.0;
/// Far more stock than any slice sells.
const ZONE_STOCK: i32 = 1_000_000;
const MODES: [&str; 2] = ["naive", "batched"];

/// One strategy's ledger, its buyers and its slices' totals.
struct Mode {
    ledger: Ledger,
    buyers: Arc<Checkout>,
    figures: Option<Figures>,
    confirms: u64,
    seconds: f64,
}

impl Mode {
    async fn start(env: &Env, strategy: &str) -> anyhow::Result<Self> {
        let name = format!("checkout-{strategy}");
        let ledger = Ledger::start(env, &name, &[("HOLD_STRATEGY", strategy)]).await?;
        let ids = ledger.create_event(env, &name, 1, ZONE_STOCK).await?;
        Ok(Self {
            ledger,
            buyers: Arc::new(Checkout::new(ids, CLIENTS)),
            figures: None,
            confirms: 0,
            seconds: 0.0,
        })
    }

    fn confirms_per_s(&self) -> f64 {
        self.confirms as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("checkout", "15. Checkout: every buyer pays");
    progress.step("checkout: starting a naive and a batched ledger");
    let mut modes = [
        Mode::start(env, MODES[0]).await?,
        Mode::start(env, MODES[1]).await?,
    ];
    for slice in 0..plan.slices * 2 {
        let which = (slice % 2) as usize;
        progress.step(&format!(
            "checkout: slice {} of {} ({})",
            slice + 1,
            plan.slices * 2,
            MODES[which]
        ));
        let mode = &mut modes[which];
        let before = mode.buyers.confirms.load(Ordering::Relaxed);
        let started = Instant::now();
        let figures = slice_on(
            &mode.ledger.authority,
            mode.buyers.clone(),
            CLIENTS,
            plan.warmup,
            plan.flash_slice,
        )
        .await?;
        mode.seconds += started.elapsed().as_secs_f64();
        mode.confirms += mode.buyers.confirms.load(Ordering::Relaxed) - before;
        add_slice(&mut mode.figures, figures)?;
    }
    let batch_mean = mean_confirm_batch(env, &modes[1].ledger).await?;
    report(&mut section, &modes, batch_mean);
    for (name, mode) in MODES.iter().zip(&modes) {
        audit(&mut section, name, mode).await?;
    }
    for mode in modes {
        mode.ledger.stop().await?;
    }
    Ok(section)
}

/// Confirms per commit on the batched ledger, from its `confirm_batch_size` histogram.
async fn mean_confirm_batch(env: &Env, ledger: &Ledger) -> anyhow::Result<f64> {
    let sum = ledger.metric(env, "confirm_batch_size_sum", &[]).await?;
    let batches = ledger.metric(env, "confirm_batch_size_count", &[]).await?;
    Ok(sum / batches.max(1.0))
}

fn report(section: &mut Section, modes: &[Mode; 2], batch_mean: f64) {
    let [naive, batched] = modes;
    let ratio = batched.confirms_per_s() / naive.confirms_per_s().max(f64::MIN_POSITIVE);
    section.goal(
        "checkout.batched_vs_naive_128",
        "orders confirmed per second on one hot zone, 128 buyers each holding one ticket and confirming it: batched ≥ 10× naive",
        format!(
            "{ratio:.1}× ({:.0} vs {:.0} orders/s; {batch_mean:.1} confirms per batched commit)",
            batched.confirms_per_s(),
            naive.confirms_per_s()
        ),
        ratio >= GOAL_RATIO,
    );
    let mut table = Table::new(
        "Checkout on one hot zone, 128 buyers",
        &["strategy", "orders/s", "requests", "p50", "p99"],
    );
    for (name, mode) in MODES.iter().zip(modes) {
        let (p50, p99, requests) = mode
            .figures
            .as_ref()
            .map_or((0.0, 0.0, 0), |f| (f.p50_ms, f.p99_ms, f.ok));
        table.row(vec![
            (*name).to_owned(),
            format!("{:.0}", mode.confirms_per_s()),
            count(requests as f64),
            ms(p50),
            ms(p99),
        ]);
    }
    section.tables.push(table);
}

/// The zone's sold count, its tickets and its confirmed orders all equal the confirms
/// the buyers were answered (warm-up included: the database has those too).
async fn audit(section: &mut Section, strategy: &str, mode: &Mode) -> anyhow::Result<()> {
    let (sold, tickets, confirmed): (i64, i64, i64) = sqlx::query_as(
        "select z.sold::int8,
                (select count(*) from tickets t where t.zone_id = z.id),
                (select coalesce(sum(h.quantity), 0)::int8 from holds h
                 where h.zone_id = z.id and h.status = 'confirmed')
         from zones z",
    )
    .fetch_one(&mode.ledger.pool)
    .await?;
    let answered = i64::try_from(mode.buyers.confirms.load(Ordering::Relaxed)).unwrap_or(-1);
    section.check(
        &format!("{strategy}: sold, tickets and confirmed orders equal the confirms answered"),
        sold == answered && tickets == answered && confirmed == answered,
        format!("{answered} confirms answered; zone sold {sold}, {tickets} tickets, {confirmed} confirmed"),
    );
    Ok(())
}
