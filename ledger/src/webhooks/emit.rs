//! Writing integration events, each in the transaction of its change (invariant 5): built
//! from the rows the change just wrote, one statement per kind, so a batch (a cancelled
//! event's orders, a sweep's expired holds) costs what one does. Nothing here waits for a
//! receiver; the dispatcher delivers later.

use sqlx::PgConnection;
use tessera_domain::webhooks::EventType;
use tessera_domain::EventId;
use uuid::Uuid;

/// The columns an order's events describe it with.
const ORDER_FIELDS: &str = "'hold_id', h.id, 'event_id', h.event_id, 'show_id', h.show_id,
    'zone_id', h.zone_id, 'customer_id', h.customer_id, 'quantity', h.quantity,
    'seats', coalesce(to_jsonb(h.seat_indexes), '[]'::jsonb),
    'total_minor', h.unit_price_minor::int8 * h.quantity, 'currency', h.currency";

/// `order.confirmed` for confirmed holds, with their tickets.
pub async fn orders_confirmed(
    conn: &mut PgConnection,
    hold_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    insert_for_holds(
        conn,
        EventType::OrderConfirmed,
        &format!(
            "jsonb_build_object({ORDER_FIELDS}, 'payment_ref', h.payment_ref,
                'ticket_ids', (select coalesce(jsonb_agg(t.id order by t.seat_index nulls last, t.id), '[]')
                               from tickets t where t.hold_id = h.id))"
        ),
        hold_ids,
    )
    .await
}

/// `order.cancelled` (with the voided tickets) and `refund.due` for cancelled orders.
pub async fn orders_cancelled(
    conn: &mut PgConnection,
    hold_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    insert_for_holds(
        conn,
        EventType::OrderCancelled,
        &format!(
            "jsonb_build_object({ORDER_FIELDS},
                'ticket_ids', (select coalesce(jsonb_agg(t.id order by t.seat_index nulls last, t.id), '[]')
                               from tickets t where t.hold_id = h.id))"
        ),
        hold_ids,
    )
    .await?;
    sqlx::query(&format!(
        "insert into integration_events (id, tenant_id, type, data)
         select gen_random_uuid(), e.tenant_id, $2, {REFUND_DATA}
         from refunds r join holds h on h.id = r.hold_id join events e on e.id = h.event_id
         where r.hold_id = any($1) order by h.id"
    ))
    .bind(hold_ids)
    .bind(EventType::RefundDue)
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(())
}

const REFUND_DATA: &str = "jsonb_build_object('refund_id', r.id, 'hold_id', r.hold_id,
    'event_id', h.event_id, 'amount_minor', r.amount_minor, 'currency', r.currency,
    'status', r.status, 'reference', r.reference)";

/// `refund.completed` for a refund just marked paid back.
pub async fn refund_completed(conn: &mut PgConnection, refund_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "insert into integration_events (id, tenant_id, type, data)
         select gen_random_uuid(), e.tenant_id, $2, {REFUND_DATA}
         from refunds r join holds h on h.id = r.hold_id join events e on e.id = h.event_id
         where r.id = $1"
    ))
    .bind(refund_id)
    .bind(EventType::RefundCompleted)
    .execute(conn)
    .await?;
    Ok(())
}

/// `hold.expired` for holds the sweeper expired.
pub async fn holds_expired(conn: &mut PgConnection, hold_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    insert_for_holds(
        conn,
        EventType::HoldExpired,
        &format!("jsonb_build_object({ORDER_FIELDS}, 'expires_at', h.expires_at)"),
        hold_ids,
    )
    .await
}

/// `ticket.checked_in` for a ticket that just entered (`offline`: a scanner's late upload).
pub async fn ticket_checked_in(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    offline: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into integration_events (id, tenant_id, type, data)
         select gen_random_uuid(), e.tenant_id, $2, jsonb_build_object(
             'ticket_id', t.id, 'hold_id', t.hold_id, 'event_id', h.event_id,
             'show_id', h.show_id, 'zone_id', t.zone_id, 'seat_index', t.seat_index,
             'gate', t.checked_in_gate, 'checked_in_at', t.checked_in_at, 'offline', $3)
         from tickets t join holds h on h.id = t.hold_id join events e on e.id = h.event_id
         where t.id = $1",
    )
    .bind(ticket_id)
    .bind(EventType::TicketCheckedIn)
    .bind(offline)
    .execute(conn)
    .await?;
    Ok(())
}

/// `event.published` or `event.cancelled`.
pub async fn event_status(
    conn: &mut PgConnection,
    event_id: EventId,
    event_type: EventType,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into integration_events (id, tenant_id, type, data)
         select gen_random_uuid(), tenant_id, $2, jsonb_build_object(
             'event_id', id, 'slug', slug, 'title', title, 'status', status)
         from events where id = $1",
    )
    .bind(event_id.as_uuid())
    .bind(event_type)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_for_holds(
    conn: &mut PgConnection,
    event_type: EventType,
    data: &str,
    hold_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if hold_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "insert into integration_events (id, tenant_id, type, data)
         select gen_random_uuid(), e.tenant_id, $2, {data}
         from holds h join events e on e.id = h.event_id
         where h.id = any($1) order by h.id"
    ))
    .bind(hold_ids)
    .bind(event_type)
    .persistent(false) // planned per call: see `idempotency::lookup`
    .execute(conn)
    .await?;
    Ok(())
}
