//! Scenario 11: webhooks during a flash sale (`webhooks.throughput`). 128 closed-loop
//! buyers each hold one ticket and confirm it, straight at a ledger, in slices that
//! alternate between two ledgers: one with no webhook endpoint (the baseline) and one with
//! an endpoint that wants every event type, served by a local receiver (the test kit's,
//! which verifies every signature). Reported:
//! the sale's holds per second with and without webhooks (goal: at most 10% slower with
//! them), the deliveries per second the receiver got meanwhile, and how long the backlog
//! took to drain after the sale (goal `webhooks.delivery_lag`: deliveries keep pace with
//! the sale, so the last arrives within [`GOAL_DRAIN`] of its end). Checks: every
//! confirmed order's `order.confirmed` delivered once, each signature valid.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tessera_testkit::webhook_receiver::WebhookReceiver;

use crate::load::Figures;
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{add_slice, slice_on};
use crate::stack::{Env, EventIds, Ledger};
use crate::workloads::Checkout;
use crate::{Plan, Progress};

const CLIENTS: usize = 128;
/// At most this much slower with webhooks on.
const GOAL_SLOWDOWN: f64 = 0.10;
/// At most this long from the sale's end until its last confirmation is delivered.
const GOAL_DRAIN: Duration = Duration::from_secs(2);
/// How long the backlog may take to drain after the sale before the check fails.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// Far more stock than any slice sells.
const ZONE_STOCK: i32 = 1_000_000;

/// One mode's slices.
#[derive(Default)]
struct Mode {
    figures: Option<Figures>,
    holds: u64,
    seconds: f64,
    delivered: usize,
}

impl Mode {
    fn holds_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.holds as f64 / self.seconds
        } else {
            0.0
        }
    }
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("webhooks", "11. Webhooks during a flash sale");
    progress.step("webhooks: starting two ledgers and a receiver");
    let private = [("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")];
    let without = Ledger::start(env, "webhooks-off", &private).await?;
    let with = Ledger::start(env, "webhooks-on", &private).await?;
    let receiver = WebhookReceiver::start().await;
    register(env, &with, &receiver).await?;
    let buyers = [
        buyers_of(
            without
                .create_event(env, "webhooks-off", 1, ZONE_STOCK)
                .await?,
        ),
        buyers_of(with.create_event(env, "webhooks-on", 1, ZONE_STOCK).await?),
    ];
    let sale_started = Instant::now();
    let (off, on) = sell(plan, progress, [&without, &with], &buyers, &receiver).await?;
    let owed = confirmed_with_endpoint(&with).await?;
    let drained = drain(&receiver, owed).await;
    let span = sale_started.elapsed();
    report(&mut section, &off, &on, &receiver, (owed, span), drained);
    without.stop().await?;
    with.stop().await?;
    Ok(section)
}

fn buyers_of(ids: EventIds) -> Arc<Checkout> {
    Arc::new(Checkout::new(ids, CLIENTS))
}

/// Slices taking turns between the ledger without an endpoint and the one with it.
async fn sell(
    plan: &Plan,
    progress: &Progress,
    ledgers: [&Ledger; 2],
    buyers: &[Arc<Checkout>; 2],
    receiver: &WebhookReceiver,
) -> anyhow::Result<(Mode, Mode)> {
    let mut modes = [Mode::default(), Mode::default()];
    for slice in 0..plan.slices * 2 {
        let which = (slice % 2) as usize;
        progress.step(&format!(
            "webhooks: slice {} of {} ({})",
            slice + 1,
            plan.slices * 2,
            ["without an endpoint", "with an endpoint"][which]
        ));
        let holds_before = buyers[which].holds.load(Ordering::Relaxed);
        let delivered_before = receiver.count_accepted(|_| true);
        let started = Instant::now();
        let figures = slice_on(
            &ledgers[which].authority,
            buyers[which].clone(),
            CLIENTS,
            plan.warmup,
            plan.flash_slice,
        )
        .await?;
        let mode = &mut modes[which];
        mode.holds += buyers[which].holds.load(Ordering::Relaxed) - holds_before;
        mode.seconds += started.elapsed().as_secs_f64();
        if which == 1 {
            mode.delivered += receiver.count_accepted(|_| true) - delivered_before;
        }
        add_slice(&mut mode.figures, figures)?;
    }
    let [off, on] = modes;
    Ok((off, on))
}

async fn register(
    env: &Env,
    ledger: &Ledger,
    receiver: &WebhookReceiver,
) -> anyhow::Result<String> {
    let events: Vec<&str> = tessera_domain::webhooks::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    let created = ledger
        .admin_post(
            env,
            "/admin/v1/webhooks",
            &json!({"url": receiver.url(), "events": events}),
        )
        .await?;
    receiver.set_secret(created["secret"].as_str().context("the webhook's secret")?);
    created["webhook_id"]
        .as_str()
        .map(str::to_owned)
        .context("the webhook's id")
}

/// `order.confirmed` deliveries owed by the ledger with the endpoint: one per such event
/// (its one endpoint wants every type). Counted from the events, not the deliveries: the
/// dispatcher fans events out to deliveries after their commit, so at the sale's end the
/// newest have none yet.
async fn confirmed_with_endpoint(ledger: &Ledger) -> anyhow::Result<usize> {
    let owed: i64 = sqlx::query_scalar(
        "select count(*) from integration_events where type = 'order.confirmed'",
    )
    .fetch_one(&ledger.pool)
    .await?;
    Ok(usize::try_from(owed).unwrap_or(0))
}

/// How long after the sale the receiver had every owed confirmation (`None`: not within the
/// deadline).
async fn drain(receiver: &WebhookReceiver, owed: usize) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < DRAIN_DEADLINE {
        if confirmations(receiver) >= owed {
            return Some(started.elapsed());
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    None
}

fn confirmations(receiver: &WebhookReceiver) -> usize {
    receiver.count_accepted(|a| {
        a.event.event_type == tessera_domain::webhooks::EventType::OrderConfirmed
    })
}

/// `owed`: the deliveries the sale made, and the time from its start until they were all
/// delivered (or the drain deadline).
fn report(
    section: &mut Section,
    off: &Mode,
    on: &Mode,
    receiver: &WebhookReceiver,
    (owed, span): (usize, Duration),
    drained: Option<Duration>,
) {
    let slowdown = 1.0 - on.holds_per_s() / off.holds_per_s().max(f64::MIN_POSITIVE);
    let delivered_per_s =
        confirmations(receiver) as f64 / span.as_secs_f64().max(f64::MIN_POSITIVE);
    section.goal(
        "webhooks.throughput",
        "holds/s of a flash sale (128 buyers holding and confirming) at most 10% lower with a webhook endpoint receiving every event; deliveries/s reported",
        format!(
            "{:.0} holds/s with webhooks vs {:.0} without ({:+.1}%); {owed} confirmations delivered at {delivered_per_s:.0}/s from the sale's start until the last arrived; backlog drained {} after the sale",
            on.holds_per_s(), off.holds_per_s(), -slowdown * 100.0,
            drained.map_or("not within 120 s".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        ),
        slowdown <= GOAL_SLOWDOWN,
    );
    section.goal(
        "webhooks.delivery_lag",
        &format!(
            "deliveries keep pace with the sale: its last confirmation delivered within {} s of its end",
            GOAL_DRAIN.as_secs()
        ),
        drained.map_or("not within 120 s".to_owned(), |d| {
            format!(
                "{:.2} s after the sale ({delivered_per_s:.0} deliveries/s)",
                d.as_secs_f64()
            )
        }),
        drained.is_some_and(|d| d <= GOAL_DRAIN),
    );
    let accepted = receiver.accepted();
    let mut ids: Vec<uuid::Uuid> = accepted.iter().map(|a| a.event.id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    let unsigned = accepted.iter().filter(|a| !a.verified).count();
    section.check(
        "every confirmation made with an endpoint delivered once, signed",
        drained.is_some()
            && confirmations(receiver) == owed
            && unsigned == 0
            && before == ids.len(),
        format!(
            "{} of {owed} owed order.confirmed delivered; {} duplicates; {unsigned} bad signatures",
            confirmations(receiver),
            before - ids.len()
        ),
    );
    let mut table = Table::new(
        "Webhooks during the sale",
        &["mode", "holds/s", "requests", "p99", "deliveries"],
    );
    for (name, mode) in [("without an endpoint", off), ("with an endpoint", on)] {
        let p99 = mode.figures.as_ref().map_or(0.0, |f| f.p99_ms);
        let requests = mode.figures.as_ref().map_or(0, |f| f.ok);
        table.row(vec![
            name.to_owned(),
            format!("{:.0}", mode.holds_per_s()),
            count(requests as f64),
            ms(p99),
            count(mode.delivered as f64),
        ]);
    }
    section.tables.push(table);
}
