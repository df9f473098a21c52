//! `tessera-bench chaos`: the fault campaign. For each fault it starts a sale on its own
//! database (a ledger, an edge node where buyers come through one), sends a crowd of
//! retrying clients at it, injects the fault mid-sale, and audits what is left: counters =
//! rows = the 201s answered, no key with two holds, no confirm after expiry, the outbox
//! drained gap-free and in order, the edge back in step, and every client answered
//! definitively within [`clients::ANSWER_BOUND`]. A negative control then shows that the
//! audit does catch an oversell. `cargo xtask chaos` provides the PostgreSQL cluster it
//! may stop; it starts its own Redis. Writes `<out>/summary.json`, prints a summary, and
//! fails if any audit did.

mod audit;
mod clients;
mod faults;
mod subscriber;
mod summary;

use std::time::{Duration, Instant};

use anyhow::Context;
use tessera_testkit::services::own_redis::OwnRedis;

use crate::stack::{self, Env, Ledger};
use audit::Findings;
use clients::{Crowd, Tally, Told};
use faults::{Durations, Fault, Postgres, Targets};
use subscriber::Subscriber;
use summary::{Outcome, Summary};

/// The campaign's size: `--short` inside `cargo xtask test` (about two minutes), the full
/// form for the README's figures.
pub struct Form {
    pub short: bool,
    /// Run only the fault with this id (`--only`).
    pub only: Option<String>,
    clients: usize,
    /// Tickets in the zone on sale.
    capacity: i32,
    /// How long the crowd buys (a fault lands inside it).
    window: Duration,
    durations: Durations,
}

impl Form {
    pub fn new(short: bool) -> Self {
        let durations = |postgres_immediate| Durations {
            ledger_down: Duration::from_millis(500),
            postgres_down: Duration::from_secs(3),
            redis_down: Duration::from_secs(10),
            postgres_immediate,
        };
        if short {
            Self {
                short,
                only: None,
                clients: 24,
                capacity: 3_000,
                window: Duration::from_secs(8),
                durations: durations(false),
            }
        } else {
            Self {
                short,
                only: None,
                clients: 64,
                capacity: 25_000,
                window: Duration::from_secs(30),
                durations: durations(true),
            }
        }
    }

    /// Redis stays down 10 s: the sale goes on around it, with time to drain after.
    fn window_for(&self, fault: Fault) -> Duration {
        match fault {
            Fault::RedisDown => self.window.max(self.durations.redis_down * 3 / 2),
            _ => self.window,
        }
    }
}

/// Hold settings every ledger of the campaign runs with: short TTLs, so expiry and the
/// sweeper are part of every fault, not only the race.
const LEDGER_SETTINGS: [(&str, &str); 2] =
    [("HOLD_TTL_SECONDS", "3"), ("SWEEP_INTERVAL_MS", "200")];
const RACE_SETTINGS: [(&str, &str); 2] = [("HOLD_TTL_SECONDS", "2"), ("SWEEP_INTERVAL_MS", "100")];
/// In the race, confirms wait up to this after their hold: past the 2 s TTL, some expire.
const RACE_CONFIRM_DELAY_MAX: Duration = Duration::from_secs(4);
/// Granted holds whose request is sent again after the audit, to see each replayed.
const REPLAY_SAMPLE: usize = 50;
/// A wait this long for an answer means a client felt the PostgreSQL outage (3 s).
const FELT_OUTAGE: Duration = Duration::from_secs(1);
/// How long the edge gets to serve the ledger's final counters after the sale.
const EDGE_CATCH_UP: Duration = Duration::from_secs(15);

pub async fn run(env: &mut Env, form: &Form) -> anyhow::Result<()> {
    let started = Instant::now();
    let postgres = Postgres::from_env()?;
    let mut redis = OwnRedis::start().await;
    env.redis_url = redis.url();
    let mut outcomes = Vec::new();
    let selected = Fault::ALL
        .into_iter()
        .filter(|f| form.only.as_deref().is_none_or(|id| id == f.id()));
    for fault in selected {
        eprintln!("chaos: {} …", fault.id());
        let outcome = run_fault(env, form, fault, &mut redis, &postgres)
            .await
            .with_context(|| format!("fault {}", fault.id()))?;
        eprintln!("chaos: {}", outcome.line());
        outcomes.push(outcome);
    }
    let negative_control = negative_control(env).await?;
    let summary = Summary::new(form, outcomes, negative_control, started.elapsed());
    summary.write(&env.out_dir)?;
    println!("{}", summary.table());
    summary.verdict()
}

async fn run_fault(
    env: &Env,
    form: &Form,
    fault: Fault,
    redis: &mut OwnRedis,
    postgres: &Postgres,
) -> anyhow::Result<Outcome> {
    let mut stand = Stand::start(env, form, fault).await?;
    let crowd = stand.crowd(form, fault);
    let subscriber = Subscriber::start(&env.redis_url, &stand.ledger.channel).await?;
    let sale_task = tokio::spawn({
        let crowd = crowd.clone();
        async move { clients::run(&crowd).await }
    });
    let targets = Targets {
        env,
        ledger: &mut stand.ledger,
        redis,
        postgres,
    };
    let injected = faults::inject(fault, targets, crowd.window, &form.durations).await?;
    let (tally, told) = sale_task.await??;
    let (mut findings, subscriptions) = stand.audit(env, &told, subscriber).await?;
    // The ledger is the authority on keys (invariant 3). An edge forwards a retry of a hold
    // it remembers forwarding; its memory is bounded (buckets of the latest keys), so long
    // after the sale it may shed an old key instead: counted, not judged (retries within
    // the sale are, above).
    let edge_forgot = match &stand.edge {
        Some(edge) => clients::replay_probe(&edge.base, &told, REPLAY_SAMPLE)
            .await?
            .len(),
        None => 0,
    };
    findings
        .0
        .extend(expectations(fault, &tally, &told, subscriptions));
    stand.stop().await?;
    Ok(Outcome::new(fault, injected, tally, &told, findings).with_edge_forgot(edge_forgot))
}

/// One fault's sale: its ledger (two in the sweeper race), the event, and the edge node
/// buyers come through (if they do).
struct Stand {
    ledger: Ledger,
    sibling: Option<Ledger>,
    edge: Option<stack::Edge>,
    show_id: String,
    zone_id: String,
}

impl Stand {
    async fn start(env: &Env, form: &Form, fault: Fault) -> anyhow::Result<Self> {
        let settings: &[(&str, &str)] = match fault {
            Fault::SweeperRace => &RACE_SETTINGS,
            _ => &LEDGER_SETTINGS,
        };
        let ledger = Ledger::start(env, &format!("chaos-{}", fault.id()), settings).await?;
        let sibling = match fault {
            Fault::SweeperRace => Some(
                ledger
                    .sibling(env, "chaos-sweeper-race-2", settings)
                    .await?,
            ),
            _ => None,
        };
        let slug = format!("chaos-{}", fault.id().replace('_', "-"));
        let sale = ledger.create_event(env, &slug, 1, form.capacity).await?;
        let edge = match fault.through_edge() {
            true => {
                let name = format!("chaos-{}-edge", fault.id());
                Some(stack::start_edge(env, &name, &ledger, &[]).await?)
            }
            false => None,
        };
        Ok(Self {
            ledger,
            sibling,
            edge,
            show_id: sale.show_id,
            zone_id: sale.zone_ids[0].clone(),
        })
    }

    /// Buyers come through the edge, else to the ledger(s) directly.
    fn crowd(&self, form: &Form, fault: Fault) -> Crowd {
        let front = self.edge.as_ref().map_or(&self.ledger.base, |e| &e.base);
        let mut targets = vec![front.clone()];
        targets.extend(self.sibling.as_ref().map(|s| s.base.clone()));
        Crowd {
            targets,
            clients: form.clients,
            window: form.window_for(fault),
            show_id: self.show_id.clone(),
            zone_id: self.zone_id.clone(),
            confirm_delay_max: match fault {
                Fault::SweeperRace => RACE_CONFIRM_DELAY_MAX,
                _ => Duration::ZERO,
            },
        }
    }

    /// The audit, once the sale's state is final; also how often the subscriber subscribed.
    async fn audit(
        &self,
        env: &Env,
        told: &Told,
        subscriber: Subscriber,
    ) -> anyhow::Result<(Findings, usize)> {
        let pool = &self.ledger.pool;
        // Abandoned holds expire after the sale; the audit reads the final state.
        let mut findings = audit::holds_settled(pool).await?;
        findings.0.extend(audit::outbox_drained(pool).await?.0);
        let heard = subscriber.finish_after(pool).await?;
        findings
            .0
            .extend(audit::inventory(pool, &self.zone_id, told).await?.0);
        findings.0.extend(audit::outbox(pool, &heard).await?.0);
        let replays = clients::replay_probe(&self.ledger.base, told, REPLAY_SAMPLE).await?;
        findings.0.extend(replays);
        if let Some(edge) = &self.edge {
            let in_step = edge_in_step(env, &self.ledger, edge, &self.show_id, &self.zone_id);
            findings.0.extend(in_step.await?);
        }
        Ok((findings, heard.sessions()))
    }

    async fn stop(self) -> anyhow::Result<()> {
        if let Some(sibling) = self.sibling {
            sibling.stop_process().await;
        }
        if let Some(edge) = self.edge {
            edge.stop().await;
        }
        self.ledger.stop().await
    }
}

/// The edge serves the zone's final availability (from the database) within
/// [`EDGE_CATCH_UP`]: after the fault, its cache is back in step.
async fn edge_in_step(
    env: &Env,
    ledger: &Ledger,
    edge: &stack::Edge,
    show_id: &str,
    zone_id: &str,
) -> anyhow::Result<Vec<String>> {
    let zone: uuid::Uuid = zone_id.parse()?;
    let stored: i32 = sqlx::query_scalar("select available from zones where id = $1")
        .bind(zone)
        .fetch_one(&ledger.pool)
        .await?;
    let deadline = Instant::now() + EDGE_CATCH_UP;
    let mut served = None;
    while Instant::now() < deadline {
        let answer = env
            .http
            .get(edge.url(&format!("/v1/shows/{show_id}/availability")))
            .send()
            .await;
        if let Ok(answer) = answer {
            served = crate::scenarios::zone_available(
                &answer.bytes().await.unwrap_or_default(),
                zone_id,
            );
            if served == Some(i64::from(stored)) {
                return Ok(Vec::new());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(vec![format!(
        "edge still serves {served:?} available after {EDGE_CATCH_UP:?}; the ledger has {stored}"
    )])
}

/// What each fault must show besides the audit: every client answered in time, no 500,
/// nothing a buyer should not be told, and the fault visibly exercised.
fn expectations(fault: Fault, tally: &Tally, told: &Told, subscriptions: usize) -> Vec<String> {
    let mut findings = Findings::default();
    let mut check = |ok: bool, finding: String| {
        if !ok {
            findings.0.push(finding);
        }
    };
    check(
        tally.stuck == 0,
        format!(
            "{} requests without a definitive answer within {:?}",
            tally.stuck,
            clients::ANSWER_BOUND
        ),
    );
    check(
        tally.count(500..=500) == 0,
        format!("{} answers were 500 internal", tally.count(500..=500)),
    );
    check(
        tally.unexpected.is_empty(),
        format!(
            "unexpected answers: {:?}",
            tally.unexpected.iter().take(5).collect::<Vec<_>>()
        ),
    );
    check(!told.granted.is_empty(), "no hold was granted".to_owned());
    match fault {
        Fault::LedgerKillThroughEdge | Fault::LedgerKillDirect => check(
            tally.retried > 0,
            "the fault made no client retry: it did not land mid-sale".to_owned(),
        ),
        // The ledger may wait out a short outage for a connection instead of answering 503:
        // then the clients waited instead of retrying.
        Fault::PostgresRestart => check(
            tally.retried > 0 || tally.longest_answer_ms >= FELT_OUTAGE.as_millis() as u64,
            "no client retried or waited: the outage did not land mid-sale".to_owned(),
        ),
        Fault::RedisDown => check(
            subscriptions >= 2,
            "the subscriber never lost Redis".to_owned(),
        ),
        Fault::SweeperRace => check(
            told.expired_at_confirm > 0 && !told.confirmed.is_empty(),
            format!(
                "no race: {} confirmed, {} refused as expired",
                told.confirmed.len(),
                told.expired_at_confirm
            ),
        ),
    }
    findings.0
}

/// The audit must fail when the inventory is wrong. A zone of 2 is oversold by hand (a
/// confirmed hold of 3 with its tickets): first with the constraints in place, which must
/// refuse it, then with `zone_counters_nonnegative` dropped, which lets it through and the
/// audit must report it.
async fn negative_control(env: &Env) -> anyhow::Result<String> {
    let ledger = Ledger::start(env, "chaos-negative-control", &LEDGER_SETTINGS).await?;
    let sale = ledger
        .create_event(env, "chaos-negative-control", 1, 2)
        .await?;
    let zone_id = &sale.zone_ids[0];
    let refused = oversell(&ledger.pool, zone_id).await.is_err();
    sqlx::query("alter table zones drop constraint zone_counters_nonnegative")
        .execute(&ledger.pool)
        .await?;
    oversell(&ledger.pool, zone_id).await?;
    let findings = audit::inventory(&ledger.pool, zone_id, &Told::default()).await?;
    ledger.stop().await?;
    match (refused, findings.0.first()) {
        (true, Some(finding)) => Ok(format!("the database refused the oversell; with its constraint dropped, the audit caught it: {finding}")),
        (false, _) => anyhow::bail!("negative control: the database accepted an oversell with its constraints in place"),
        (true, None) => anyhow::bail!("negative control: the audit passed an oversold zone"),
    }
}

/// Writes a confirmed hold of 3 tickets into a zone of 2, counters moved to match.
async fn oversell(pool: &sqlx::PgPool, zone_id: &str) -> anyhow::Result<()> {
    let zone: uuid::Uuid = zone_id.parse()?;
    let hold = uuid::Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into holds (id, zone_id, show_id, event_id, customer_id, quantity, unit_price_minor,
                            currency, status, expires_at, settled_at, payment_ref, idempotency_key, request_sha256)
         select $1, z.id, z.show_id, s.event_id, 'oversold', 3, z.price_minor, z.currency, 'confirmed',
                now() + interval '1 hour', now(), 'forged', 'negative-control', sha256('forged'::bytea)
         from zones z join shows s on s.id = z.show_id where z.id = $2",
    )
    .bind(hold)
    .bind(zone)
    .execute(&mut *tx)
    .await?;
    // 12-character codes, as before signing (`ticket_code_length` allows those or signed ones).
    sqlx::query(
        "insert into tickets (id, hold_id, zone_id, code)
         select gen_random_uuid(), $1, $2, 'FORGEDCODE0' || n from generate_series(1, 3) n",
    )
    .bind(hold)
    .bind(zone)
    .execute(&mut *tx)
    .await?;
    sqlx::query("update zones set available = available - 3, sold = sold + 3 where id = $1")
        .bind(zone)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
