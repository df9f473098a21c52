//! The audit after each fault, from the database and from what the clients were told:
//! counters = rows = the 201s, no key with two holds, no confirm after expiry, the outbox
//! gap-free and drained in order, and the edge's cache back in step with the ledger.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::clients::Told;
use super::subscriber::Heard;
use crate::audit::ZoneAudit;

/// How long the relay gets to publish what piled up during a fault.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long abandoned holds get to expire after the sale (TTLs are 2-3 s, sweeps 0.1-0.2 s).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// What an audit found; empty when every check held.
#[derive(Debug, Default, serde::Serialize)]
pub struct Findings(pub Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, finding: impl FnOnce() -> String) {
        if !ok {
            self.0.push(finding());
        }
    }

    pub fn passed(&self) -> bool {
        self.0.is_empty()
    }
}

/// Counters against rows, and rows against the 201s, confirms and releases answered.
pub async fn inventory(pool: &PgPool, zone_id: &str, told: &Told) -> anyhow::Result<Findings> {
    let mut findings = Findings::default();
    let zone = ZoneAudit::read(pool, zone_id).await?;
    let granted = told.granted.len() as u64;
    let tickets = u64::try_from(told.tickets_granted())?;
    if let Some(error) = zone.holds_error(granted, tickets) {
        findings.0.push(format!("zone: {error}"));
    }
    rows_match_answers(pool, told, &mut findings).await?;
    let confirmed_late: i64 = sqlx::query_scalar(
        "select count(*) from holds where status = 'confirmed' and settled_at > expires_at",
    )
    .fetch_one(pool)
    .await?;
    findings.check(confirmed_late == 0, || {
        format!("{confirmed_late} holds confirmed after they expired")
    });
    let keys_twice: i64 = sqlx::query_scalar(
        "select count(*) from (select 1 from holds group by idempotency_key having count(*) > 1) k",
    )
    .fetch_one(pool)
    .await?;
    findings.check(keys_twice == 0, || {
        format!("{keys_twice} keys with two holds")
    });
    Ok(findings)
}

/// Every hold a client was granted is the row with its key, with its quantity; every
/// confirm and release answered 200 is the row's state.
async fn rows_match_answers(
    pool: &PgPool,
    told: &Told,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let rows: Vec<(String, uuid::Uuid, i32, String)> =
        sqlx::query_as("select idempotency_key, id, quantity, status from holds")
            .fetch_all(pool)
            .await?;
    let mut matched = 0;
    for (key, hold_id, quantity, status) in &rows {
        let hold_id = hold_id.to_string();
        let Some(granted) = told.granted.get(key) else {
            findings.0.push(format!(
                "hold {hold_id}: no client was answered 201 for key {key}"
            ));
            continue;
        };
        matched += 1;
        findings.check(
            granted.hold_id == hold_id && granted.quantity == i64::from(*quantity),
            || {
                format!(
                    "key {key}: answered hold {} x{}, stored {hold_id} x{quantity}",
                    granted.hold_id, granted.quantity
                )
            },
        );
        let told_state = if told.confirmed.contains(&hold_id) {
            Some("confirmed")
        } else if told.released.contains(&hold_id) {
            Some("released")
        } else if told.expired.contains(&hold_id) {
            Some("expired")
        } else {
            None
        };
        if let Some(state) = told_state {
            findings.check(state == status, || {
                format!("hold {hold_id}: answered {state}, stored {status}")
            });
        }
    }
    findings.check(matched == told.granted.len(), || {
        format!(
            "{} holds answered 201 have no row",
            told.granted.len() - matched
        )
    });
    Ok(())
}

/// Every hold left `held` (expired, with the sweeper's short TTL) within [`SETTLE_TIMEOUT`]:
/// after that nothing changes, and the audit reads the final state.
pub async fn holds_settled(pool: &PgPool) -> anyhow::Result<Findings> {
    let mut findings = Findings::default();
    let live = poll_count(
        pool,
        "select count(*) from holds where status = 'held'",
        SETTLE_TIMEOUT,
    )
    .await?;
    findings.check(live == 0, || {
        format!("{live} holds still held {SETTLE_TIMEOUT:?} after the sale")
    });
    Ok(findings)
}

/// Every outbox row published within [`DRAIN_TIMEOUT`].
pub async fn outbox_drained(pool: &PgPool) -> anyhow::Result<Findings> {
    let mut findings = Findings::default();
    let sql = "select count(*) from outbox where published_at is null";
    let unpublished = poll_count(pool, sql, DRAIN_TIMEOUT).await?;
    findings.check(unpublished == 0, || {
        format!("{unpublished} outbox rows unpublished after {DRAIN_TIMEOUT:?}")
    });
    Ok(findings)
}

/// Polls a `count(*)` until it is 0 or `limit` has passed; returns the last count.
async fn poll_count(pool: &PgPool, sql: &str, limit: Duration) -> anyhow::Result<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
        if count == 0 || Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The outbox's numbers gap-free up to the relay's counter, and what a subscriber heard in
/// order, up to the last number (call after [`outbox_drained`]).
pub async fn outbox(pool: &PgPool, heard: &Heard) -> anyhow::Result<Findings> {
    let mut findings = Findings::default();
    let (first, last, numbered): (Option<i64>, Option<i64>, i64) =
        sqlx::query_as("select min(seq), max(seq), count(seq) from outbox")
            .fetch_one(pool)
            .await?;
    let last_seq = relay_last_seq(pool).await?;
    if let (Some(first), Some(last)) = (first, last) {
        findings.check(last - first + 1 == numbered && last == last_seq, || {
            format!("outbox seqs {first}..={last}: {numbered} rows, relay counter {last_seq}")
        });
    }
    findings.0.extend(heard.order_errors());
    findings.check(heard.last_seq() == Some(last_seq) || last_seq == 0, || {
        format!(
            "subscriber's last seq {:?}, relay's {last_seq}",
            heard.last_seq()
        )
    });
    Ok(findings)
}

/// The relay's counter: the last sequence number it handed out.
pub async fn relay_last_seq(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select last_seq from outbox_relay")
        .fetch_one(pool)
        .await?)
}
