//! Settling a hold: confirm (held → sold, tickets issued) or release (held → available),
//! each exactly once (invariant 4). Both lock the hold row first, then its zone; the
//! sweeper skips locked holds, so a hold is never settled twice.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::buyer::Buyer;
use tessera_domain::catalog::EventStatus;
use tessera_domain::holds::{Confirmation, ConfirmedHold, HoldStatus, HoldView, TicketView};
use tessera_domain::money::line_total_minor;
use tessera_domain::seats::SeatStatus;
use tessera_domain::{
    Currency, CustomerId, ErrorCode, EventId, HoldId, IdempotencyKey, ShowId, TicketId, ZoneId,
};
use uuid::Uuid;

use super::stock::{move_stock, Movement};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, NewRecord, Reply};
use crate::outbox;

/// The columns of a hold that make up its API view.
#[derive(sqlx::FromRow)]
pub(super) struct StoredHold {
    pub(super) id: Uuid,
    pub(super) zone_id: Uuid,
    pub(super) show_id: Uuid,
    pub(super) customer_id: String,
    pub(super) quantity: i32,
    pub(super) unit_price_minor: i64,
    pub(super) currency: Currency,
    pub(super) created_at: DateTime<Utc>,
    pub(super) expires_at: DateTime<Utc>,
    /// A seat hold's seats; `None` for general admission.
    pub(super) seat_indexes: Option<Vec<i32>>,
}

impl StoredHold {
    pub(super) fn view(&self, status: HoldStatus) -> ApiResult<HoldView> {
        Ok(HoldView {
            hold_id: HoldId(self.id),
            status,
            show_id: ShowId(self.show_id),
            zone_id: ZoneId(self.zone_id),
            customer_id: CustomerId::parse(&self.customer_id)
                .map_err(|e| anyhow::anyhow!("stored customer id: {e}"))?,
            quantity: self.quantity,
            seats: self.seat_indexes.clone().unwrap_or_default(),
            unit_price_minor: self.unit_price_minor,
            currency: self.currency,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

/// A hold with its state, as confirm, release and reads see it.
#[derive(sqlx::FromRow)]
pub(super) struct HoldRow {
    #[sqlx(flatten)]
    pub(super) core: StoredHold,
    /// Decoded once (`tessera_domain`'s stored enums): an unknown value fails the read.
    pub(super) status: HoldStatus,
    event_status: EventStatus,
    pub(super) event_id: Uuid,
    now: DateTime<Utc>,
}

impl HoldRow {
    /// The status a client should see: a live hold past its expiry is expired, even if
    /// the sweeper has not returned its stock yet.
    pub(super) fn effective_status(&self) -> HoldStatus {
        match self.status {
            HoldStatus::Held if self.now >= self.core.expires_at => HoldStatus::Expired,
            status => status,
        }
    }

    fn view(&self, status: HoldStatus) -> ApiResult<HoldView> {
        self.core.view(status)
    }

    /// A seat hold's seats (none for general admission).
    fn seats(&self) -> &[i32] {
        self.core.seat_indexes.as_deref().unwrap_or_default()
    }
}

pub(super) async fn fetch_hold(
    conn: &mut PgConnection,
    hold_id: HoldId,
    lock: bool,
) -> Result<Option<HoldRow>, sqlx::Error> {
    let sql = format!(
        "select h.id, h.zone_id, h.show_id, h.customer_id, h.quantity, h.unit_price_minor, h.currency,
                h.status, h.created_at, h.expires_at, h.seat_indexes, e.status as event_status,
                h.event_id, now() as now
         from holds h join events e on e.id = h.event_id where h.id = $1 {}",
        if lock { "for update of h" } else { "" }
    );
    sqlx::query_as(&sql)
        .bind(hold_id.as_uuid())
        .fetch_optional(conn)
        .await
}

pub async fn get(pool: &sqlx::PgPool, hold_id: HoldId) -> ApiResult<HoldView> {
    let mut conn = pool.acquire().await?;
    let hold = fetch_hold(&mut conn, hold_id, false)
        .await?
        .ok_or_else(|| ApiError::not_found("hold"))?;
    hold.view(hold.effective_status())
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
    if hold.event_status != EventStatus::Published {
        return Err(ApiError::client(
            ErrorCode::EventNotOnSale,
            "the event is no longer on sale",
        ));
    }
    Ok(())
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

pub async fn confirm(
    state: &crate::app::AppState,
    hold_id: HoldId,
    key: &IdempotencyKey,
    confirmation: &Confirmation<'_>,
) -> ApiResult<Reply> {
    let scope = format!("confirm:{hold_id}");
    let request_sha256 = confirm_sha256(hold_id, confirmation);
    let mut tx = state.pool.begin().await?;
    // Lock first, then look for a stored result: every confirm of this hold (the scope
    // names it) waits here, so a retry racing its original sees the original's result
    // instead of the `confirmed` status it left behind.
    let hold = fetch_hold(&mut tx, hold_id, true)
        .await?
        .ok_or_else(|| ApiError::not_found("hold"))?;
    if let Some(stored) = idempotency::lookup(&mut tx, &scope, &[key.as_str()])
        .await?
        .first()
    {
        return Ok(stored.replay_for(&request_sha256));
    }
    confirmable(&hold)?;
    mark_confirmed(&mut tx, &hold, confirmation).await?;
    let change = move_stock(
        &mut tx,
        ZoneId(hold.core.zone_id),
        hold.core.quantity,
        Movement::Confirm,
    )
    .await?
    .change_with_seats(ZoneId(hold.core.zone_id), hold.seats(), SeatStatus::Sold);
    let tickets = issue_tickets(&mut tx, &hold).await?;
    // Neither carries the buyer: both are built from named columns, never the whole row.
    outbox::enqueue(&mut tx, &change).await?;
    crate::webhooks::emit::orders_confirmed(&mut tx, &[hold.core.id]).await?;
    let confirmed = ConfirmedHold {
        hold: hold.view(HoldStatus::Confirmed)?,
        payment_ref: confirmation.payment_ref.to_owned(),
        buyer: confirmation.buyer.as_ref().map(Buyer::view),
        total_minor: line_total_minor(hold.core.unit_price_minor, hold.core.quantity)
            .map_err(anyhow::Error::new)?,
        tickets,
    };
    let reply = Reply::ok(axum::http::StatusCode::OK, &confirmed);
    let record = NewRecord {
        key,
        request_sha256: &request_sha256,
        reply: &reply,
    };
    // Under the hold's lock no other confirm can have stored this key.
    if idempotency::store(&mut tx, &scope, &[record]).await? != 1 {
        return Err(anyhow::anyhow!("confirm result for {hold_id} was stored concurrently").into());
    }
    tx.commit().await?;
    state.outbox_wake.notify();
    metrics::counter!("holds_confirmed_total").increment(1);
    Ok(reply)
}

/// The hold becomes an order: paid with `payment_ref`, bought by the buyer if one was
/// named (bound, never formatted into the statement or a log line).
async fn mark_confirmed(
    conn: &mut PgConnection,
    hold: &HoldRow,
    confirmation: &Confirmation<'_>,
) -> Result<(), sqlx::Error> {
    let buyer = confirmation.buyer.as_ref();
    sqlx::query(
        "update holds set status = 'confirmed', settled_at = now(), payment_ref = $2,
                buyer_name = $3, buyer_email = $4
         where id = $1",
    )
    .bind(hold.core.id)
    .bind(confirmation.payment_ref)
    .bind(buyer.map(|b| b.name.as_str()))
    .bind(buyer.map(|b| b.email.as_str()))
    .execute(conn)
    .await?;
    Ok(())
}

/// One ticket per place held; for a seat hold, one per seat, each seat then `sold` to its
/// ticket (after the zone's counters moved: zone row first, then its seats).
async fn issue_tickets(conn: &mut PgConnection, hold: &HoldRow) -> ApiResult<Vec<TicketView>> {
    let count = usize::try_from(hold.core.quantity).unwrap_or(0);
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    // Signed with the event's newest key: any door verifies them with its public key.
    let event_id = EventId(hold.event_id);
    let signer = crate::tickets::keys::signer(conn, event_id).await?;
    let codes =
        crate::tickets::keys::sign_codes(&signer, event_id, ShowId(hold.core.show_id), &ids);
    let seats = hold.seats();
    sqlx::query(
        "insert into tickets (id, hold_id, zone_id, code, seat_index)
         select t.id, $2, $3, t.code, s.seat_index
         from unnest($1::uuid[], $4::text[]) with ordinality as t(id, code, n)
              left join unnest($5::int4[]) with ordinality as s(seat_index, n) using (n)",
    )
    .bind(&ids)
    .bind(hold.core.id)
    .bind(hold.core.zone_id)
    .bind(&codes)
    .bind(seats)
    .execute(&mut *conn)
    .await?;
    if !seats.is_empty() {
        sell_seats(conn, hold, seats, &ids).await?;
    }
    Ok(ids
        .into_iter()
        .zip(codes)
        .enumerate()
        .map(|(i, (id, code))| TicketView {
            ticket_id: TicketId(id),
            code,
            zone_id: ZoneId(hold.core.zone_id),
            seat_index: seats.get(i).copied(),
        })
        .collect())
}

/// The hold's seats go from `held` to `sold`, each to its ticket: all of them, or the
/// confirm fails (a seat not held by this hold would be a bug).
async fn sell_seats(
    conn: &mut PgConnection,
    hold: &HoldRow,
    seats: &[i32],
    tickets: &[Uuid],
) -> ApiResult<()> {
    let sold =
        crate::seats::sell_held(conn, hold.core.zone_id, hold.core.id, seats, tickets).await?;
    if sold != seats.len() as u64 {
        return Err(anyhow::anyhow!(
            "hold {}: {sold} of its {} seats were held by it",
            hold.core.id,
            seats.len()
        )
        .into());
    }
    Ok(())
}

/// Releases a live hold; releasing a released or expired hold changes nothing and
/// answers the same (idempotent); a confirmed hold cannot be released.
pub async fn release(state: &crate::app::AppState, hold_id: HoldId) -> ApiResult<HoldView> {
    let mut tx = state.pool.begin().await?;
    let hold = fetch_hold(&mut tx, hold_id, true)
        .await?
        .ok_or_else(|| ApiError::not_found("hold"))?;
    match hold.status {
        // Also a lapsed hold the sweeper has not reached: its stock returns exactly once.
        HoldStatus::Held => {}
        HoldStatus::Confirmed => {
            return Err(ApiError::client(
                ErrorCode::HoldNotActive,
                "a confirmed hold cannot be released",
            ))
        }
        _ => return hold.view(hold.effective_status()),
    }
    sqlx::query("update holds set status = 'released', settled_at = now() where id = $1")
        .bind(hold.core.id)
        .execute(&mut *tx)
        .await?;
    let change = move_stock(
        &mut tx,
        ZoneId(hold.core.zone_id),
        hold.core.quantity,
        Movement::Release,
    )
    .await?
    .change_with_seats(
        ZoneId(hold.core.zone_id),
        hold.seats(),
        SeatStatus::Available,
    );
    crate::seats::free_held(&mut tx, &[hold.core.id]).await?;
    outbox::enqueue(&mut tx, &change).await?;
    tx.commit().await?;
    state.outbox_wake.notify();
    metrics::counter!("holds_released_total").increment(1);
    hold.view(HoldStatus::Released)
}
