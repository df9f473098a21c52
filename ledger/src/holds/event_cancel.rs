//! An event's sales undone when the event is cancelled: every confirmed order cancelled as
//! one order is ([`super::cancel`]: tickets void, stock and seats back, one refund due) and
//! every live hold released — together, in one transaction, in the lock order every mover
//! keeps (the holds in id order, then their zones in id order, then seats and tickets).
//!
//! The caller commits the event's `cancelled` status first, then [`wait_for_writers`], then
//! [`cancel_sales`]: a hold writer reads the event's status under its zone's lock, so once
//! the zones have been locked after the status committed, no writer can still place a hold
//! on the event, and a confirm either committed before (its order is cancelled here) or
//! finds the event cancelled. Running it again finds nothing left to undo.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool};
use tessera_domain::holds::HoldStatus;
use tessera_domain::money::line_total_minor;
use tessera_domain::seats::SeatStatus;
use tessera_domain::{Currency, EventId, ZoneId};
use uuid::Uuid;

use super::stock::{move_stock, Movement};
use crate::error::ApiResult;
use crate::outbox;
use crate::tickets::revocations::{self, Voided};

/// What cancelling an event's sales undid.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Undone {
    pub orders_cancelled: usize,
    pub holds_released: usize,
    pub tickets_voided: usize,
}

/// Returns once every hold writer that may have read the event as on sale has committed:
/// each keeps its zone's row locked until then, so this takes and drops those locks.
pub async fn wait_for_writers(pool: &PgPool, event_id: EventId) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "select z.id from zones z join shows s on s.id = z.show_id
         where s.event_id = $1 order by z.id for update of z",
    )
    .bind(event_id.as_uuid())
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await
}

/// One settled hold: what it took and how it ended here.
#[derive(sqlx::FromRow)]
struct Settled {
    id: Uuid,
    zone_id: Uuid,
    quantity: i32,
    seat_indexes: Option<Vec<i32>>,
    status: HoldStatus,
    unit_price_minor: i64,
    currency: Currency,
}

/// Per zone: the tickets going back and the seats freed, for one movement.
type ZoneMoves = BTreeMap<Uuid, (i32, Vec<i32>)>;

/// Cancels the confirmed orders and releases the live holds of `event_id` (already
/// cancelled), in the caller's transaction.
pub async fn cancel_sales(conn: &mut PgConnection, event_id: EventId) -> ApiResult<Undone> {
    let settled: Vec<Settled> = sqlx::query_as(
        "with live as (
             select id from holds where event_id = $1 and status in ('held', 'confirmed')
             order by id for update)
         update holds h
         set status = case h.status when 'held' then 'released' else 'cancelled' end,
             settled_at = coalesce(h.settled_at, now())
         from live where h.id = live.id
         returning h.id, h.zone_id, h.quantity, h.seat_indexes, h.status, h.unit_price_minor,
                   h.currency",
    )
    .bind(event_id.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    let (orders, released): (Vec<&Settled>, Vec<&Settled>) = settled
        .iter()
        .partition(|hold| hold.status == HoldStatus::Cancelled);
    let mut moves = [
        (Movement::Return, per_zone(&orders)),
        (Movement::Release, per_zone(&released)),
    ];
    move_zones(conn, &mut moves).await?;
    let order_ids: Vec<Uuid> = orders.iter().map(|hold| hold.id).collect();
    let voided = void_tickets(conn, &order_ids).await?;
    free_seats(conn, &orders, &released).await?;
    record_refunds(conn, &orders).await?;
    crate::webhooks::emit::orders_cancelled(conn, &order_ids).await?;
    revocations::announce(conn, event_id, Voided::WholeEvent { count: voided }).await?;
    metrics::counter!("orders_cancelled_total").increment(orders.len() as u64);
    metrics::counter!("holds_released_total").increment(released.len() as u64);
    Ok(Undone {
        orders_cancelled: orders.len(),
        holds_released: released.len(),
        tickets_voided: voided,
    })
}

fn per_zone(holds: &[&Settled]) -> ZoneMoves {
    let mut zones = ZoneMoves::new();
    for hold in holds {
        let zone = zones.entry(hold.zone_id).or_default();
        zone.0 += hold.quantity;
        zone.1.extend(hold.seat_indexes.iter().flatten());
    }
    zones
}

/// Each zone's counters moved once per movement, zones in id order (as the sweeper), and
/// each move announced.
async fn move_zones(
    conn: &mut PgConnection,
    moves: &mut [(Movement, ZoneMoves)],
) -> Result<(), sqlx::Error> {
    let mut zones: Vec<Uuid> = moves.iter().flat_map(|(_, z)| z.keys().copied()).collect();
    zones.sort_unstable();
    zones.dedup();
    for zone_id in zones {
        for (movement, per_zone) in moves.iter_mut() {
            let Some((quantity, seats)) = per_zone.remove(&zone_id) else {
                continue;
            };
            let zone = ZoneId(zone_id);
            let change = move_stock(conn, zone, quantity, *movement)
                .await?
                .change_with_seats(zone, &seats, SeatStatus::Available);
            outbox::enqueue(conn, &change).await?;
        }
    }
    Ok(())
}

/// The orders' tickets void (a checked-in ticket keeps its entry); how many were voided.
async fn void_tickets(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<usize, sqlx::Error> {
    let voided = sqlx::query(
        "update tickets set status = 'void', voided_at = now()
         where hold_id = any($1) and status <> 'void'",
    )
    .bind(order_ids)
    .persistent(false) // planned per call: see `idempotency::lookup`
    .execute(conn)
    .await?;
    Ok(usize::try_from(voided.rows_affected()).unwrap_or(usize::MAX))
}

/// Sold seats of the orders and held seats of the holds back on sale — every one, or the
/// transaction fails (a seat owned otherwise would be a bug).
async fn free_seats(
    conn: &mut PgConnection,
    orders: &[&Settled],
    released: &[&Settled],
) -> ApiResult<()> {
    let seats = |holds: &[&Settled]| -> (Vec<Uuid>, u64) {
        let with_seats: Vec<&&Settled> =
            holds.iter().filter(|h| h.seat_indexes.is_some()).collect();
        let count = with_seats
            .iter()
            .flat_map(|h| h.seat_indexes.iter().flatten())
            .count();
        (with_seats.iter().map(|h| h.id).collect(), count as u64)
    };
    let (sold_by, sold) = seats(orders);
    let (held_by, held) = seats(released);
    let freed_sold = crate::seats::free_sold(conn, &sold_by).await?;
    let freed_held = crate::seats::free_held(conn, &held_by).await?;
    if (freed_sold, freed_held) != (sold, held) {
        return Err(anyhow::anyhow!(
            "freed {freed_sold} of {sold} sold and {freed_held} of {held} held seats"
        )
        .into());
    }
    Ok(())
}

/// One refund due per cancelled order, of its total.
async fn record_refunds(conn: &mut PgConnection, orders: &[&Settled]) -> ApiResult<()> {
    let refund_ids: Vec<Uuid> = orders.iter().map(|_| Uuid::now_v7()).collect();
    let mut ids = Vec::with_capacity(orders.len());
    let mut amounts = Vec::with_capacity(orders.len());
    let mut currencies = Vec::with_capacity(orders.len());
    for order in orders {
        ids.push(order.id);
        amounts.push(
            line_total_minor(order.unit_price_minor, order.quantity).map_err(anyhow::Error::new)?,
        );
        currencies.push(order.currency.as_str().to_owned());
    }
    sqlx::query(
        "insert into refunds (id, hold_id, amount_minor, currency)
         select o.id, o.hold_id, o.amount_minor, o.currency
         from unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[])
              as o(id, hold_id, amount_minor, currency)",
    )
    .bind(&refund_ids)
    .bind(&ids)
    .bind(&amounts)
    .bind(&currencies)
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(())
}
