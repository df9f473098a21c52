//! Cancelling a confirmed order (the organizer refunds it) and completing its refund.
//!
//! One transaction, in the order every mover keeps (hold row, zone row, then its seats):
//! the hold becomes `cancelled`, its tickets `void` (a checked-in ticket keeps its entry),
//! its stock goes `sold → available` and its seats back on sale, the announcement goes to
//! the outbox, and one refund of the order's total is recorded `due`. Cancelling again
//! answers the same order and refund (idempotent by the order itself).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::holds::HoldStatus;
use tessera_domain::money::line_total_minor;
use tessera_domain::refunds::{CancelledOrder, CompleteRefund, RefundStatus, RefundView};
use tessera_domain::seats::SeatStatus;
use tessera_domain::{Currency, ErrorCode, EventId, HoldId, TenantId, TicketId, ZoneId};
use uuid::Uuid;

use super::settle::{fetch_hold, HoldRow};
use super::stock::{move_stock, Movement};
use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::openapi::problems;
use crate::outbox;
use crate::tickets::revocations::{self, Voided};

/// Cancel a confirmed order: its tickets void, its stock and seats back on sale, a refund due.
#[utoipa::path(post, path = "/admin/v1/orders/{hold_id}/cancel", tag = "admin",
    security(("bearer" = [])),
    params(("hold_id" = String, Path, format = Uuid)),
    responses((status = 200, body = CancelledOrder),
        (status = 409, body = tessera_domain::Problem, content_type = "application/problem+json", description = "conflict: the hold is not a confirmed order"),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(hold_id): PathParams<String>,
) -> ApiResult<Json<CancelledOrder>> {
    let hold_id: HoldId = path_id("hold_id", &hold_id)?;
    let mut tx = state.pool.begin().await?;
    let hold = fetch_hold(&mut tx, hold_id, true)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let owner: Uuid = sqlx::query_scalar("select tenant_id from events where id = $1")
        .bind(hold.event_id)
        .fetch_one(&mut *tx)
        .await?;
    tenant.owns(TenantId(owner))?;
    let cancelled = match hold.status {
        HoldStatus::Cancelled => order(&mut tx, &hold).await?,
        HoldStatus::Confirmed => {
            let cancelled = cancel(&mut tx, &hold).await?;
            metrics::counter!("orders_cancelled_total").increment(1);
            cancelled
        }
        _ => {
            return Err(ApiError::client(
                ErrorCode::Conflict,
                "only a confirmed order can be cancelled (release a live hold instead)",
            ))
        }
    };
    tx.commit().await?;
    state.outbox_wake.notify();
    Ok(Json(cancelled))
}

/// The moves of a cancellation, in the caller's transaction (the hold row locked).
async fn cancel(conn: &mut PgConnection, hold: &HoldRow) -> ApiResult<CancelledOrder> {
    let zone_id = ZoneId(hold.core.zone_id);
    let counters = move_stock(conn, zone_id, hold.core.quantity, Movement::Return).await?;
    let voided: Vec<Uuid> = sqlx::query_scalar(
        "update tickets set status = 'void', voided_at = now()
         where hold_id = $1 and status <> 'void' returning id",
    )
    .bind(hold.core.id)
    .fetch_all(&mut *conn)
    .await?;
    let seats = hold.core.seat_indexes.as_deref().unwrap_or_default();
    if !seats.is_empty() {
        let freed = crate::seats::free_sold(conn, &[hold.core.id]).await?;
        if freed != seats.len() as u64 {
            return Err(anyhow::anyhow!(
                "order {}: {freed} of its {} seats were sold to it",
                hold.core.id,
                seats.len()
            )
            .into());
        }
    }
    sqlx::query("update holds set status = 'cancelled' where id = $1")
        .bind(hold.core.id)
        .execute(&mut *conn)
        .await?;
    let amount_minor = line_total_minor(hold.core.unit_price_minor, hold.core.quantity)
        .map_err(anyhow::Error::new)?;
    sqlx::query(
        "insert into refunds (id, hold_id, amount_minor, currency) values ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(hold.core.id)
    .bind(amount_minor)
    .bind(hold.core.currency)
    .execute(&mut *conn)
    .await?;
    let change = counters.change_with_seats(zone_id, seats, SeatStatus::Available);
    outbox::enqueue(conn, &change).await?;
    let voided: Vec<TicketId> = voided.into_iter().map(TicketId).collect();
    revocations::announce(conn, EventId(hold.event_id), Voided::Tickets(&voided)).await?;
    crate::webhooks::emit::orders_cancelled(conn, &[hold.core.id]).await?;
    order(conn, hold).await
}

/// The cancelled order as it stands: its view, its void tickets, its refund.
async fn order(conn: &mut PgConnection, hold: &HoldRow) -> ApiResult<CancelledOrder> {
    let voided: Vec<Uuid> = sqlx::query_scalar(
        "select id from tickets where hold_id = $1 and status = 'void' order by id",
    )
    .bind(hold.core.id)
    .fetch_all(&mut *conn)
    .await?;
    let refund: RefundRow = sqlx::query_as(&format!("{REFUND_COLUMNS} where hold_id = $1"))
        .bind(hold.core.id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(CancelledOrder {
        order: hold.core.view(HoldStatus::Cancelled)?,
        voided_tickets: voided.into_iter().map(TicketId).collect(),
        refund: refund.view(),
    })
}

pub(super) const REFUND_COLUMNS: &str =
    "select id, hold_id, amount_minor, currency, status, reference,
                                     created_at, completed_at from refunds";

#[derive(sqlx::FromRow)]
pub(super) struct RefundRow {
    id: Uuid,
    hold_id: Uuid,
    amount_minor: i64,
    currency: Currency,
    status: RefundStatus,
    reference: Option<String>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl RefundRow {
    pub(super) fn view(self) -> RefundView {
        RefundView {
            refund_id: self.id,
            hold_id: HoldId(self.hold_id),
            amount_minor: self.amount_minor,
            currency: self.currency,
            status: self.status,
            reference: self.reference,
            created_at: self.created_at,
            completed_at: self.completed_at,
        }
    }
}

/// Mark a refund paid back, with the payment provider's reference (idempotent for the same
/// reference).
#[utoipa::path(post, path = "/admin/v1/refunds/{refund_id}/complete", tag = "admin",
    request_body = CompleteRefund, security(("bearer" = [])),
    params(("refund_id" = String, Path, format = Uuid)),
    responses((status = 200, body = RefundView),
        (status = 409, body = tessera_domain::Problem, content_type = "application/problem+json", description = "conflict: already refunded with another reference"),
        problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn complete_refund(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(refund_id): PathParams<String>,
    JsonBody(complete): JsonBody<CompleteRefund>,
) -> ApiResult<Json<RefundView>> {
    let refund_id: Uuid = refund_id
        .parse()
        .map_err(|_| ApiError::field("refund_id", "a UUID"))?;
    let reference = complete.parse().map_err(ApiError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let found: Option<(RefundStatus, Option<String>, Uuid)> = sqlx::query_as(
        "select r.status, r.reference, e.tenant_id from refunds r
         join holds h on h.id = r.hold_id join events e on e.id = h.event_id
         where r.id = $1 for update of r",
    )
    .bind(refund_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (status, stored, owner) = found.ok_or_else(|| ApiError::not_found("refund"))?;
    tenant.owns(TenantId(owner))?;
    match (status, stored) {
        (RefundStatus::Due, _) => {
            sqlx::query(
                "update refunds set status = 'refunded', reference = $2, completed_at = now()
                 where id = $1",
            )
            .bind(refund_id)
            .bind(&reference)
            .execute(&mut *tx)
            .await?;
            crate::webhooks::emit::refund_completed(&mut tx, refund_id).await?;
        }
        (RefundStatus::Refunded, Some(stored)) if stored == reference => {}
        (RefundStatus::Refunded, _) => {
            return Err(ApiError::client(
                ErrorCode::Conflict,
                "this refund was completed with another reference",
            ))
        }
    }
    let refund: RefundRow = sqlx::query_as(&format!("{REFUND_COLUMNS} where id = $1"))
        .bind(refund_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(refund.view()))
}
