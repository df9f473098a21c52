//! Settling a hold: confirm (held → sold, tickets issued: batched, [`super::confirm`]) or
//! release (held → available), each exactly once (invariant 4). Both lock the hold row
//! first, then its zone; the sweeper skips locked holds, so a hold is never settled twice.
//! Here: a hold as settlers read it, and release.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::catalog::EventStatus;
use tessera_domain::holds::{HoldStatus, HoldView};
use tessera_domain::seats::SeatStatus;
use tessera_domain::{Currency, CustomerId, ErrorCode, HoldId, ShowId, ZoneId};
use uuid::Uuid;

use super::stock::{move_stock, Movement};
use crate::error::{ApiError, ApiResult};
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

    /// Whether the hold's event still sells (a confirm needs it to).
    pub(super) fn event_on_sale(&self) -> bool {
        self.event_status == EventStatus::Published
    }

    /// A seat hold's seats (none for general admission).
    pub(super) fn seats(&self) -> &[i32] {
        self.core.seat_indexes.as_deref().unwrap_or_default()
    }
}

/// A [`HoldRow`]'s columns, from `holds h` joined with its event `e`.
const HOLD_ROW_SELECT: &str = "select h.id, h.zone_id, h.show_id, h.customer_id, h.quantity,
        h.unit_price_minor, h.currency, h.status, h.created_at, h.expires_at, h.seat_indexes,
        e.status as event_status, h.event_id, now() as now
    from holds h join events e on e.id = h.event_id";

pub(super) async fn fetch_hold(
    conn: &mut PgConnection,
    hold_id: HoldId,
    lock: bool,
) -> Result<Option<HoldRow>, sqlx::Error> {
    let sql = format!(
        "{HOLD_ROW_SELECT} where h.id = $1 {}",
        if lock { "for update of h" } else { "" }
    );
    sqlx::query_as(&sql)
        .bind(hold_id.as_uuid())
        .fetch_optional(conn)
        .await
}

/// The holds `ids` (sorted), locked in that order until commit: every settler of several
/// holds locks them by id, so two never wait for each other.
pub(super) async fn lock_holds(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<HoldRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{HOLD_ROW_SELECT} where h.id = any($1) order by h.id for update of h"
    ))
    .bind(ids)
    .persistent(false) // planned per call: see `idempotency::lookup`
    .fetch_all(conn)
    .await
}

pub async fn get(pool: &sqlx::PgPool, hold_id: HoldId) -> ApiResult<HoldView> {
    let mut conn = pool.acquire().await?;
    let hold = fetch_hold(&mut conn, hold_id, false)
        .await?
        .ok_or_else(|| ApiError::not_found("hold"))?;
    hold.view(hold.effective_status())
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
