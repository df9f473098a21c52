//! Admission passes on holds for an event whose on-sale is queued (DESIGN.md "The front
//! door"). The edge checks a pass before forwarding; the ledger checks it again here, under
//! the zone's lock, because a client can reach the ledger directly and because only the
//! ledger sees every hold a pass placed: one pass admits one buyer (the customer of its
//! first hold) and at most [`HOLDS_PER_PASS_MAX`] holds, so a pass shared with a crowd
//! admits nobody else.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::holds::Rejection;
use tessera_domain::queue::{self, QueueKeys, HOLDS_PER_PASS_MAX};
use tessera_domain::{ErrorCode, EventId};
use uuid::Uuid;

use super::engine::Job;

/// What a pass has admitted so far.
struct Usage {
    holds: i64,
    customer: Option<String>,
}

/// Each job's pass id (admitted) or its refusal, in the jobs' order. Locks each pass id
/// until commit (advisory), so two zones' batches cannot both take a pass's last hold.
pub(super) async fn admit<'a>(
    conn: &mut PgConnection,
    keys: Option<&QueueKeys>,
    event_id: EventId,
    now: DateTime<Utc>,
    jobs: impl Iterator<Item = &'a Job>,
) -> Result<Vec<Result<Uuid, Rejection>>, sqlx::Error> {
    let jobs: Vec<&Job> = jobs.collect();
    let signed: Vec<Result<Uuid, Rejection>> = jobs
        .iter()
        .map(|job| match keys {
            Some(keys) => {
                queue::admit(keys, job.pass.as_deref(), event_id, now).map(|pass| pass.pass_id)
            }
            None => Err(Rejection::new(
                ErrorCode::PassRequired,
                "the ledger has no QUEUE_KEY to check passes with",
            )),
        })
        .collect();
    let mut ids: Vec<Uuid> = signed
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    if ids.is_empty() {
        return Ok(signed);
    }
    ids.sort_unstable();
    ids.dedup();
    let mut usage = lock_and_count(conn, &ids).await?;
    Ok(signed
        .into_iter()
        .zip(jobs)
        .map(|(pass, job)| {
            let pass_id = pass?;
            let used = usage.entry(pass_id).or_insert(Usage {
                holds: 0,
                customer: None,
            });
            let customer = job.hold.customer_id.as_str();
            if used.customer.as_deref().is_some_and(|c| c != customer) {
                return Err(used_up("this pass already admits another buyer"));
            }
            if used.holds >= HOLDS_PER_PASS_MAX {
                return Err(used_up(&format!(
                    "this pass admitted {HOLDS_PER_PASS_MAX} holds already"
                )));
            }
            used.holds += 1;
            used.customer = Some(customer.to_owned());
            Ok(pass_id)
        })
        .collect())
}

fn used_up(detail: &str) -> Rejection {
    Rejection::new(ErrorCode::PassUsedUp, detail)
}

async fn lock_and_count(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Usage>, sqlx::Error> {
    let lock_keys: Vec<i64> = ids.iter().map(|id| lock_key(*id)).collect();
    // In `ids` order (sorted): two batches cannot deadlock on them.
    sqlx::query("select pg_advisory_xact_lock(k) from unnest($1::bigint[]) as t(k)")
        .bind(&lock_keys)
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(Uuid, i64, String)> = sqlx::query_as(
        "select pass_id, count(*)::bigint, min(customer_id) from holds
         where pass_id = any($1) group by pass_id",
    )
    .bind(ids)
    .persistent(false)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, holds, customer)| {
            let usage = Usage {
                holds,
                customer: Some(customer),
            };
            (id, usage)
        })
        .collect())
}

/// An advisory lock key for a pass, apart from the customer locks' (those hash the event
/// and customer; these take the pass id's last 8 bytes with the top bit flipped, and a
/// collision only serialises two batches).
fn lock_key(pass_id: Uuid) -> i64 {
    let bytes = pass_id.as_bytes();
    let mut last = [0u8; 8];
    last.copy_from_slice(&bytes[8..]);
    i64::from_be_bytes(last) ^ i64::MIN
}
