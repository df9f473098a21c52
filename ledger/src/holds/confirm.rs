//! Confirming holds, batched as placing them is ([`super::engine`]).
//!
//! A confirm moves its zone's counters (held → sold), so it takes the zone's row lock, and
//! one transaction per confirm would keep that lock through its commit's fsync: a hot zone
//! would confirm about one order per commit, its holds waiting behind each. So confirms
//! queue with their zone's holds and the zone's writer commits all that wait at once, in
//! one transaction: lock the batch's holds (ordered by id, holds before their zone as every
//! settler locks them), replay stored results, decide each confirm in arrival order, then
//! write the orders, their tickets (signed before the zone's lock is taken), the zone's
//! counters, the seats, the outbox row, the webhooks and the stored results — one
//! statement each, whatever the batch's size. The naive strategy commits a batch of one.

use std::collections::HashMap;
use std::time::Instant;

use sqlx::{Connection, PgConnection, PgPool};
use tessera_domain::buyer::Buyer;
use tessera_domain::holds::{Confirmation, ConfirmedHold, HoldStatus, TicketView};
use tessera_domain::money::line_total_minor;
use tessera_domain::seats::SeatStatus;
use tessera_domain::{ErrorCode, EventId, HoldId, IdempotencyKey, ShowId, TicketId, ZoneId};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::commit::{answer_failure, CommitContext, CommitError, WriterState, COMMIT_ATTEMPTS_MAX};
use super::settle::HoldRow;
use super::stock::{move_stock, Movement};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, NewRecord, Reply, Stored};
use crate::outbox;

/// What a confirm is answered with.
pub type Answer = Result<Reply, ApiError>;

/// One confirm waiting for its zone's batch.
pub struct ConfirmJob {
    pub hold_id: HoldId,
    /// The hold's zone (a hold never changes zone): whose writer commits it.
    pub zone_id: ZoneId,
    pub key: IdempotencyKey,
    pub payment_ref: String,
    /// Bound into the statement, never formatted into one or into a log line.
    pub buyer: Option<Buyer>,
    pub request_sha256: Vec<u8>,
    /// The idempotency scope, `confirm:{hold_id}`: each hold's confirms have their own keys.
    scope: String,
    pub reply: oneshot::Sender<Answer>,
    pub enqueued_at: Instant,
}

impl ConfirmJob {
    pub fn new(
        hold_id: HoldId,
        zone_id: ZoneId,
        key: IdempotencyKey,
        confirmation: Confirmation<'_>,
        reply: oneshot::Sender<Answer>,
    ) -> Self {
        Self {
            request_sha256: confirm_sha256(hold_id, &confirmation),
            scope: format!("confirm:{hold_id}"),
            hold_id,
            zone_id,
            key,
            payment_ref: confirmation.payment_ref.to_owned(),
            buyer: confirmation.buyer,
            reply,
            enqueued_at: Instant::now(),
        }
    }
}

/// The confirm's identity for its `Idempotency-Key`: the hold, the payment reference and,
/// when given, the buyer (the e-mail's domain compared lower-cased). Without a buyer it
/// hashes as before buyers existed, so results stored then still replay.
fn confirm_sha256(hold_id: HoldId, confirmation: &Confirmation<'_>) -> Vec<u8> {
    let payment_ref = confirmation.payment_ref;
    match &confirmation.buyer {
        None => idempotency::request_sha256(&(hold_id, payment_ref)),
        Some(buyer) => idempotency::request_sha256(&(hold_id, payment_ref, buyer.identity())),
    }
}

/// The zone `hold_id` took its tickets from: where its confirm queues. Read unlocked (a
/// hold's zone never changes); the batch locks the hold itself.
pub async fn zone_of(pool: &PgPool, hold_id: HoldId) -> ApiResult<ZoneId> {
    let zone_id: Option<Uuid> = sqlx::query_scalar("select zone_id from holds where id = $1")
        .bind(hold_id.as_uuid())
        .fetch_optional(pool)
        .await?;
    zone_id
        .map(ZoneId)
        .ok_or_else(|| ApiError::not_found("hold"))
}

/// Commits `jobs` (all for `zone_id`) on the writer's connection (or a pooled one, kept
/// in `writer` on success) and answers each one.
pub async fn commit_confirms(
    ctx: &CommitContext,
    writer: &mut WriterState,
    zone_id: ZoneId,
    jobs: Vec<ConfirmJob>,
) {
    metrics::histogram!("confirm_batch_size").record(jobs.len() as f64);
    let started = Instant::now();
    let mut attempt = 1;
    let result = loop {
        match confirm_once(ctx, writer, zone_id, &jobs).await {
            Err(CommitError::Retry(why)) if attempt < COMMIT_ATTEMPTS_MAX => {
                tracing::debug!(%zone_id, why, attempt, "retrying confirm batch");
                attempt += 1;
            }
            other => break other,
        }
    };
    metrics::histogram!("confirm_commit_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(answers) => {
            ctx.outbox_wake.notify();
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(answer);
            }
        }
        Err(e) => answer_failure(zone_id, "confirm", jobs.into_iter().map(|j| j.reply), &e),
    }
}

/// One attempt on the writer's connection, or a fresh one from the pool; a connection
/// that saw an error goes back to the pool instead of on to the next batch.
async fn confirm_once(
    ctx: &CommitContext,
    writer: &mut WriterState,
    zone_id: ZoneId,
    jobs: &[ConfirmJob],
) -> Result<Vec<Answer>, CommitError> {
    let mut conn = match writer.conn.take() {
        Some(conn) => conn,
        None => ctx.pool.acquire().await?,
    };
    let answers = try_confirm(&mut conn, zone_id, jobs).await?;
    writer.conn = Some(conn);
    Ok(answers)
}

/// One transaction: lock the holds, decide each confirm, write the confirmed, commit;
/// then answer the repeats of a key with its first result.
async fn try_confirm(
    conn: &mut PgConnection,
    zone_id: ZoneId,
    jobs: &[ConfirmJob],
) -> Result<Vec<Answer>, CommitError> {
    let mut tx = conn.begin().await?;
    let holds = lock_holds(&mut tx, jobs).await?;
    let stored = stored_results(&mut tx, jobs).await?;
    let Decided {
        mut answers,
        granted,
        repeats,
    } = decide(jobs, &holds, &stored);
    let orders: Vec<Order<'_>> = granted
        .into_iter()
        .filter_map(|index| {
            let job = &jobs[index];
            let hold = holds.get(&job.hold_id)?;
            Some(Order { index, job, hold })
        })
        .collect();
    if !orders.is_empty() {
        let replies = write_orders(&mut tx, zone_id, &orders).await?;
        for (order, reply) in orders.iter().zip(replies) {
            answers[order.index] = Some(Ok(reply));
        }
    }
    tx.commit().await?;
    metrics::counter!("holds_confirmed_total").increment(orders.len() as u64);
    for (i, first) in repeats {
        answers[i] = match &answers[first] {
            Some(Ok(reply)) => Some(Ok(Reply {
                replayed: true,
                ..reply.clone()
            })),
            _ => None,
        };
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(anyhow::anyhow!("a confirm was left undecided").into())))
        .collect())
}

/// The batch's holds, locked in id order (as every settler locks holds: no deadlocks).
async fn lock_holds(
    conn: &mut PgConnection,
    jobs: &[ConfirmJob],
) -> Result<HashMap<HoldId, HoldRow>, sqlx::Error> {
    let mut ids: Vec<Uuid> = jobs.iter().map(|j| j.hold_id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = super::settle::lock_holds(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| (HoldId(row.core.id), row))
        .collect())
}

/// Stored results of earlier confirms with the batch's keys, by scope and key.
async fn stored_results(
    conn: &mut PgConnection,
    jobs: &[ConfirmJob],
) -> Result<HashMap<(String, String), Stored>, sqlx::Error> {
    let scopes: Vec<&str> = jobs.iter().map(|j| j.scope.as_str()).collect();
    let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
    let stored = idempotency::lookup_pairs(conn, &scopes, &keys).await?;
    Ok(stored
        .into_iter()
        .map(|s| ((s.scope.clone(), s.key.clone()), s))
        .collect())
}

/// What deciding a batch left to do.
struct Decided {
    /// One per job; `None` for those granted (answered once written) and repeats.
    answers: Vec<Option<Answer>>,
    /// The confirms to write, in arrival order.
    granted: Vec<usize>,
    /// A repeat of a granted confirm's key and body, with the first's index: it replays
    /// the first's result.
    repeats: Vec<(usize, usize)>,
}

/// Each confirm in arrival order, as one transaction per confirm would have answered it:
/// a stored result replayed, else the hold's state decides. A hold confirmed earlier in
/// the batch is confirmed for the later confirms of it.
fn decide(
    jobs: &[ConfirmJob],
    holds: &HashMap<HoldId, HoldRow>,
    stored: &HashMap<(String, String), Stored>,
) -> Decided {
    let mut decided = Decided {
        answers: (0..jobs.len()).map(|_| None).collect(),
        granted: Vec::new(),
        repeats: Vec::new(),
    };
    let mut confirmed_here: HashMap<HoldId, usize> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let answer = if let Some(&first) = confirmed_here.get(&job.hold_id) {
            let answer = repeat_of(&jobs[first], job);
            if answer.is_none() {
                decided.repeats.push((i, first));
            }
            answer
        } else if let Some(found) = stored.get(&(job.scope.clone(), job.key.as_str().to_owned())) {
            Some(Ok(found.replay_for(&job.request_sha256)))
        } else {
            match holds.get(&job.hold_id).map(confirmable) {
                None => Some(Err(ApiError::not_found("hold"))),
                Some(Err(refusal)) => Some(Err(refusal)),
                Some(Ok(())) => {
                    confirmed_here.insert(job.hold_id, i);
                    decided.granted.push(i);
                    None
                }
            }
        };
        decided.answers[i] = answer;
    }
    decided
}

/// A later confirm of a hold this batch confirms: with another key it is refused (the
/// hold is confirmed), with the first's key and another body it conflicts; `None` when it
/// repeats the first exactly (it replays the first's result).
fn repeat_of(first: &ConfirmJob, repeat: &ConfirmJob) -> Option<Answer> {
    if first.key != repeat.key {
        return Some(Err(not_live(HoldStatus::Confirmed)));
    }
    if first.request_sha256 != repeat.request_sha256 {
        return Some(Ok(Reply::conflict()));
    }
    None
}

/// Why a hold that is not live cannot be confirmed.
fn not_live(status: HoldStatus) -> ApiError {
    match status {
        HoldStatus::Expired => ApiError::client(
            ErrorCode::HoldExpired,
            "the hold expired before it was confirmed",
        ),
        HoldStatus::Confirmed => {
            ApiError::client(ErrorCode::HoldNotActive, "the hold is already confirmed")
        }
        HoldStatus::Cancelled => {
            ApiError::client(ErrorCode::HoldNotActive, "the order was cancelled")
        }
        HoldStatus::Held | HoldStatus::Released => {
            ApiError::client(ErrorCode::HoldNotActive, "the hold was released")
        }
    }
}

/// A live hold of an event still on sale, or why it cannot be confirmed.
fn confirmable(hold: &HoldRow) -> ApiResult<()> {
    let status = hold.effective_status();
    if status != HoldStatus::Held {
        return Err(not_live(status));
    }
    if !hold.event_on_sale() {
        return Err(ApiError::client(
            ErrorCode::EventNotOnSale,
            "the event is no longer on sale",
        ));
    }
    Ok(())
}

/// A confirm the batch grants, with its locked hold.
struct Order<'a> {
    /// The confirm's place in the batch.
    index: usize,
    job: &'a ConfirmJob,
    hold: &'a HoldRow,
}

/// Writes the batch's orders and answers: each hold confirmed, its tickets signed and
/// stored, then (under the zone's lock from here to the commit) the zone's counters, the
/// seats sold, the outbox row, the webhooks and the stored results.
async fn write_orders(
    conn: &mut PgConnection,
    zone_id: ZoneId,
    orders: &[Order<'_>],
) -> Result<Vec<Reply>, CommitError> {
    mark_confirmed(conn, orders).await?;
    let tickets = issue_tickets(conn, zone_id, orders).await?;
    let quantity = orders.iter().map(|o| o.hold.core.quantity).sum();
    let seats: Vec<i32> = orders
        .iter()
        .flat_map(|o| o.seats().iter().copied())
        .collect();
    let change = move_stock(conn, zone_id, quantity, Movement::Confirm)
        .await?
        .change_with_seats(zone_id, &seats, SeatStatus::Sold);
    sell_seats(conn, zone_id, orders, &tickets).await?;
    // Neither carries the buyer: both are built from named columns, never the whole row.
    outbox::enqueue(conn, &change).await?;
    let hold_ids: Vec<Uuid> = orders.iter().map(|o| o.hold.core.id).collect();
    crate::webhooks::emit::orders_confirmed(conn, &hold_ids).await?;
    let replies = orders
        .iter()
        .zip(tickets)
        .map(|(order, tickets)| order.reply(tickets))
        .collect::<ApiResult<Vec<Reply>>>()?;
    store_results(conn, orders, &replies).await?;
    Ok(replies)
}

/// The holds become orders: each paid with its `payment_ref`, bought by its buyer if one
/// was named (bound, never formatted into the statement or a log line).
async fn mark_confirmed(conn: &mut PgConnection, orders: &[Order<'_>]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.hold.core.id).collect();
    let payment_refs: Vec<&str> = orders.iter().map(|o| o.job.payment_ref.as_str()).collect();
    let buyers = orders.iter().map(|o| o.job.buyer.as_ref());
    let names: Vec<Option<&str>> = buyers.clone().map(|b| b.map(|b| b.name.as_str())).collect();
    let emails: Vec<Option<&str>> = buyers.map(|b| b.map(|b| b.email.as_str())).collect();
    sqlx::query(
        "update holds h set status = 'confirmed', settled_at = now(), payment_ref = t.payment_ref,
                buyer_name = t.buyer_name, buyer_email = t.buyer_email
         from unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
              as t(id, payment_ref, buyer_name, buyer_email)
         where h.id = t.id",
    )
    .bind(&ids)
    .bind(&payment_refs)
    .bind(&names)
    .bind(&emails)
    .execute(conn)
    .await?;
    Ok(())
}

/// One ticket per place held (for a seat hold, one per seat), signed with the event's
/// newest key so that any door verifies them with its public key; one insert for all.
async fn issue_tickets(
    conn: &mut PgConnection,
    zone_id: ZoneId,
    orders: &[Order<'_>],
) -> Result<Vec<Vec<TicketView>>, CommitError> {
    let Some(first) = orders.first() else {
        return Ok(Vec::new());
    };
    // A zone's holds share its show and event.
    let event_id = EventId(first.hold.event_id);
    let show_id = ShowId(first.hold.core.show_id);
    let signer = crate::tickets::keys::signer(conn, event_id).await?;
    let mut rows = TicketRows::default();
    let mut issued = Vec::with_capacity(orders.len());
    for order in orders {
        let count = usize::try_from(order.hold.core.quantity).unwrap_or(0);
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
        let codes = crate::tickets::keys::sign_codes(&signer, event_id, show_id, &ids);
        let seats = order.seats();
        let views: Vec<TicketView> = ids
            .into_iter()
            .zip(codes)
            .enumerate()
            .map(|(i, (id, code))| TicketView {
                ticket_id: TicketId(id),
                code,
                zone_id,
                seat_index: seats.get(i).copied(),
            })
            .collect();
        rows.add(order.hold.core.id, &views);
        issued.push(views);
    }
    rows.insert(conn, zone_id).await?;
    Ok(issued)
}

/// The columns of one insert of tickets.
#[derive(Default)]
struct TicketRows {
    ids: Vec<Uuid>,
    hold_ids: Vec<Uuid>,
    codes: Vec<String>,
    seat_indexes: Vec<Option<i32>>,
}

impl TicketRows {
    fn add(&mut self, hold_id: Uuid, tickets: &[TicketView]) {
        for ticket in tickets {
            self.ids.push(ticket.ticket_id.0);
            self.hold_ids.push(hold_id);
            self.codes.push(ticket.code.clone());
            self.seat_indexes.push(ticket.seat_index);
        }
    }

    async fn insert(&self, conn: &mut PgConnection, zone_id: ZoneId) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into tickets (id, hold_id, zone_id, code, seat_index)
             select t.id, t.hold_id, $3, t.code, t.seat_index
             from unnest($1::uuid[], $2::uuid[], $4::text[], $5::int4[])
                  as t(id, hold_id, code, seat_index)",
        )
        .bind(&self.ids)
        .bind(&self.hold_ids)
        .bind(zone_id.as_uuid())
        .bind(&self.codes)
        .bind(&self.seat_indexes)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The orders' seats go from `held` to `sold`, each to its ticket: all of them, or the
/// batch fails (a seat not held by its hold would be a bug).
async fn sell_seats(
    conn: &mut PgConnection,
    zone_id: ZoneId,
    orders: &[Order<'_>],
    tickets: &[Vec<TicketView>],
) -> Result<(), CommitError> {
    let (mut holds, mut seats, mut ticket_ids) = (Vec::new(), Vec::new(), Vec::new());
    for (order, tickets) in orders.iter().zip(tickets) {
        for ticket in tickets {
            if let Some(seat) = ticket.seat_index {
                holds.push(order.hold.core.id);
                seats.push(seat);
                ticket_ids.push(ticket.ticket_id.0);
            }
        }
    }
    if seats.is_empty() {
        return Ok(());
    }
    let sold =
        crate::seats::sell_held(conn, zone_id.as_uuid(), &holds, &seats, &ticket_ids).await?;
    if sold != seats.len() as u64 {
        return Err(CommitError::Seats {
            zone_id,
            expected: seats.len(),
            moved: sold,
        });
    }
    Ok(())
}

impl Order<'_> {
    /// A seat hold's seats (none for general admission).
    fn seats(&self) -> &[i32] {
        self.hold.seats()
    }

    /// The order as the confirm answers it.
    fn reply(&self, tickets: Vec<TicketView>) -> ApiResult<Reply> {
        let core = &self.hold.core;
        let confirmed = ConfirmedHold {
            hold: core.view(HoldStatus::Confirmed)?,
            payment_ref: self.job.payment_ref.clone(),
            buyer: self.job.buyer.as_ref().map(Buyer::view),
            total_minor: line_total_minor(core.unit_price_minor, core.quantity)
                .map_err(anyhow::Error::new)?,
            tickets,
        };
        Ok(Reply::ok(axum::http::StatusCode::OK, &confirmed))
    }
}

/// Stores each order's result for replay. Under the holds' locks no other confirm of them
/// can have stored these keys, so fewer rows than orders is a bug.
async fn store_results(
    conn: &mut PgConnection,
    orders: &[Order<'_>],
    replies: &[Reply],
) -> Result<(), CommitError> {
    let records: Vec<NewRecord<'_>> = orders
        .iter()
        .zip(replies)
        .map(|(order, reply)| NewRecord {
            scope: &order.job.scope,
            key: &order.job.key,
            request_sha256: &order.job.request_sha256,
            reply,
        })
        .collect();
    let stored = idempotency::store(conn, &records).await?;
    if stored != records.len() {
        return Err(anyhow::anyhow!("{stored} of {} confirm results stored", records.len()).into());
    }
    Ok(())
}
