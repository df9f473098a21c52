//! `GET /admin/v1/events/{event_id}/sales` (the owning tenant): per show and zone —
//! capacity, live holds, tickets sold, checked in and void, gross, refunds due and paid —
//! and the same per currency, counted from the rows in one snapshot (a repeatable-read
//! transaction), so every figure is of the same moment.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::sales::{totals, SalesFigures, SalesReport, ShowSales, ZoneSales};
use tessera_domain::{Currency, EventId, ShowId, TenantId, ZoneId};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, PathParams};
use crate::openapi::problems;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/admin/v1/events/{event_id}/sales",
        axum::routing::get(event_sales),
    )
}

/// How the event's sale went, per show, zone and currency.
#[utoipa::path(get, path = "/admin/v1/events/{event_id}/sales", tag = "admin",
    security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = SalesReport),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn event_sales(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
) -> ApiResult<Json<SalesReport>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let mut tx = state.pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let owner: Option<Uuid> = sqlx::query_scalar("select tenant_id from events where id = $1")
        .bind(event_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    tenant.owns(TenantId(owner.ok_or_else(|| ApiError::not_found("event"))?))?;
    let (generated_at, rows) = zone_rows(&mut tx, event_id).await?;
    tx.commit().await?;
    let shows = group_by_show(rows);
    let totals = totals(shows.iter().flat_map(|show| &show.zones));
    Ok(Json(SalesReport {
        event_id,
        generated_at,
        shows,
        totals,
    }))
}

#[derive(sqlx::FromRow)]
struct ZoneRow {
    show_id: Uuid,
    show_starts_at: DateTime<Utc>,
    zone_id: Uuid,
    name: String,
    currency: Currency,
    capacity: i64,
    held: i64,
    sold: i64,
    checked_in: i64,
    void: i64,
    gross_minor: i64,
    refund_due_minor: i64,
    refunded_minor: i64,
}

/// Every zone of the event with its figures, counted from holds, tickets and refunds (each
/// read through an index on the event or zone), shows by start then zones in their order.
async fn zone_rows(
    conn: &mut PgConnection,
    event_id: EventId,
) -> Result<(DateTime<Utc>, Vec<ZoneRow>), sqlx::Error> {
    let now: DateTime<Utc> = sqlx::query_scalar("select now()")
        .fetch_one(&mut *conn)
        .await?;
    let rows = sqlx::query_as(
        "with h as (
             select zone_id,
                    sum(quantity) filter (where status = 'held') as held,
                    sum(unit_price_minor * quantity)
                        filter (where status in ('confirmed', 'cancelled')) as gross
             from holds where event_id = $1 and status in ('held', 'confirmed', 'cancelled')
             group by zone_id),
         r as (
             select h.zone_id,
                    sum(r.amount_minor) filter (where r.status = 'due') as due,
                    sum(r.amount_minor) filter (where r.status = 'refunded') as refunded
             from refunds r join holds h on h.id = r.hold_id
             where h.event_id = $1 and h.status = 'cancelled' group by h.zone_id)
         select s.id as show_id, s.starts_at as show_starts_at, z.id as zone_id, z.name,
                z.currency, z.capacity::int8 as capacity,
                coalesce(h.held, 0)::int8 as held,
                coalesce(t.sold, 0)::int8 as sold, coalesce(t.checked_in, 0)::int8 as checked_in,
                coalesce(t.void, 0)::int8 as void,
                coalesce(h.gross, 0)::int8 as gross_minor,
                coalesce(r.due, 0)::int8 as refund_due_minor,
                coalesce(r.refunded, 0)::int8 as refunded_minor
         from shows s join zones z on z.show_id = s.id
              left join h on h.zone_id = z.id
              left join r on r.zone_id = z.id
              left join lateral (
                  select count(*) filter (where status <> 'void') as sold,
                         count(*) filter (where status = 'checked_in') as checked_in,
                         count(*) filter (where status = 'void') as void
                  from tickets where zone_id = z.id) t on true
         where s.event_id = $1
         order by s.starts_at, s.id, z.sort_order, z.name, z.id",
    )
    .bind(event_id.as_uuid())
    .fetch_all(&mut *conn)
    .await?;
    Ok((now, rows))
}

fn group_by_show(rows: Vec<ZoneRow>) -> Vec<ShowSales> {
    let mut shows: Vec<ShowSales> = Vec::new();
    for row in rows {
        let zone = ZoneSales {
            zone_id: ZoneId(row.zone_id),
            name: row.name,
            currency: row.currency,
            figures: SalesFigures {
                capacity: row.capacity,
                held: row.held,
                sold: row.sold,
                checked_in: row.checked_in,
                void: row.void,
                gross_minor: row.gross_minor,
                refund_due_minor: row.refund_due_minor,
                refunded_minor: row.refunded_minor,
            },
        };
        match shows.last_mut() {
            Some(show) if show.show_id.as_uuid() == row.show_id => show.zones.push(zone),
            _ => shows.push(ShowSales {
                show_id: ShowId(row.show_id),
                starts_at: row.show_starts_at,
                zones: vec![zone],
            }),
        }
    }
    shows
}
