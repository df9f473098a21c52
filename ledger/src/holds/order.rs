//! `GET /v1/orders/{hold_id}`: an order as its buyer sees it — the hold (its id is the
//! order reference), its total, who bought it (if the confirm said), its tickets with their
//! codes, seats and states at the door, and the refund a cancellation owes. Read from the
//! ledger on every request: the edge forwards it and never caches it.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::buyer::BuyerView;
use tessera_domain::holds::TicketView;
use tessera_domain::money::line_total_minor;
use tessera_domain::orders::{OrderTicket, OrderView};
use tessera_domain::tickets::TicketStatus;
use tessera_domain::{EventId, HoldId, TicketId, ZoneId};
use uuid::Uuid;

use super::cancel::{RefundRow, REFUND_COLUMNS};
use super::settle::fetch_hold;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, PathParams};
use crate::openapi::problems;

/// An order: its hold, total, tickets (with codes and states) and refund.
#[utoipa::path(get, path = "/v1/orders/{hold_id}", tag = "holds",
    params(("hold_id" = String, Path, format = Uuid, description = "the order reference: its hold's id")),
    responses((status = 200, body = OrderView), problems::NotFound, problems::Invalid, problems::Unavailable))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    PathParams(hold_id): PathParams<String>,
) -> ApiResult<Json<OrderView>> {
    let hold_id: HoldId = path_id("hold_id", &hold_id)?;
    let mut conn = state.pool.acquire().await?;
    let hold = fetch_hold(&mut conn, hold_id, false)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let paid: PaidRow =
        sqlx::query_as("select payment_ref, buyer_name, buyer_email from holds where id = $1")
            .bind(hold.core.id)
            .fetch_one(&mut *conn)
            .await?;
    let refund: Option<RefundRow> = sqlx::query_as(&format!("{REFUND_COLUMNS} where hold_id = $1"))
        .bind(hold.core.id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(Json(OrderView {
        hold: hold.core.view(hold.effective_status())?,
        event_id: EventId(hold.event_id),
        total_minor: line_total_minor(hold.core.unit_price_minor, hold.core.quantity)
            .map_err(anyhow::Error::new)?,
        buyer: paid.buyer(),
        payment_ref: paid.payment_ref,
        tickets: tickets(&mut conn, hold.core.id).await?,
        refund: refund.map(RefundRow::view),
    }))
}

/// What the confirm wrote: the payment reference and, if it named one, the buyer.
#[derive(sqlx::FromRow)]
struct PaidRow {
    payment_ref: Option<String>,
    buyer_name: Option<String>,
    buyer_email: Option<String>,
}

impl PaidRow {
    /// Both fields or none (the `hold_buyer_whole` check).
    fn buyer(&self) -> Option<BuyerView> {
        Some(BuyerView {
            name: self.buyer_name.clone()?,
            email: self.buyer_email.clone()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: Uuid,
    code: String,
    zone_id: Uuid,
    seat_index: Option<i32>,
    /// Decoded once: an unknown stored state fails the read.
    status: TicketStatus,
    checked_in_at: Option<DateTime<Utc>>,
    checked_in_gate: Option<String>,
    voided_at: Option<DateTime<Utc>>,
}

async fn tickets(conn: &mut PgConnection, hold_id: Uuid) -> ApiResult<Vec<OrderTicket>> {
    let rows: Vec<TicketRow> = sqlx::query_as(
        "select id, code, zone_id, seat_index, status, checked_in_at, checked_in_gate, voided_at
         from tickets where hold_id = $1 order by seat_index nulls last, id",
    )
    .bind(hold_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| OrderTicket {
            ticket: TicketView {
                ticket_id: TicketId(row.id),
                code: row.code,
                zone_id: ZoneId(row.zone_id),
                seat_index: row.seat_index,
            },
            status: row.status,
            checked_in_at: row.checked_in_at,
            checked_in_gate: row.checked_in_gate,
            voided_at: row.voided_at,
        })
        .collect())
}
