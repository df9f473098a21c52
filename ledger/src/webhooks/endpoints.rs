//! The admin API for a tenant's webhook endpoints: register (the signing secret shown
//! once), list, delete, and look at and redeliver an endpoint's deliveries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use tessera_domain::webhooks::{
    new_secret, DeliveryStatus, DeliveryView, EventType, NewWebhook, WebhookCreated, WebhookView,
};
use tessera_domain::TenantId;
use uuid::Uuid;

use super::egress::SendError;
use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::openapi::problems;

/// Deliveries one listing shows, newest first.
const DELIVERIES_LISTED_MAX: i64 = 100;
/// Endpoints one tenant may register.
const ENDPOINTS_PER_TENANT_MAX: i64 = 16;

/// Register an endpoint for some event types; its signing secret is in this answer only.
#[utoipa::path(post, path = "/admin/v1/webhooks", tag = "admin", request_body = NewWebhook,
    security(("bearer" = [])),
    responses((status = 201, body = WebhookCreated),
        problems::JsonBody, problems::Unauthorized, problems::Unavailable))]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    tenant: AdminTenant,
    JsonBody(request): JsonBody<NewWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    let valid = request.parse().map_err(ApiError::Validation)?;
    match state.egress.check_host(&valid.host).await {
        Ok(()) => {}
        Err(SendError::Blocked) => {
            return Err(ApiError::field(
                "url",
                "resolves to a loopback, private, link-local or metadata address",
            ))
        }
        Err(e) => return Err(ApiError::field("url", format!("does not resolve ({e})"))),
    }
    let mut tx = state.pool.begin().await?;
    let registered: i64 = sqlx::query_scalar(
        "select count(*) from webhook_endpoints where tenant_id = $1 and deleted_at is null",
    )
    .bind(tenant.0.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    if registered >= ENDPOINTS_PER_TENANT_MAX {
        return Err(ApiError::field(
            "url",
            format!("a tenant has at most {ENDPOINTS_PER_TENANT_MAX} endpoints"),
        ));
    }
    let secret = new_secret(rand::random());
    let types: Vec<&str> = valid.events.iter().map(|t| t.as_str()).collect();
    let row: EndpointRow = sqlx::query_as(
        "insert into webhook_endpoints (id, tenant_id, url, event_types, secret)
         values ($1, $2, $3, $4, $5)
         returning id, url, event_types, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.0.as_uuid())
    .bind(&valid.url)
    .bind(&types)
    .bind(&secret)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let webhook = row.view()?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated { webhook, secret }),
    ))
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: Uuid,
    url: String,
    event_types: Vec<String>,
    created_at: DateTime<Utc>,
}

impl EndpointRow {
    fn view(self) -> ApiResult<WebhookView> {
        let events = self
            .event_types
            .iter()
            .map(|t| EventType::parse(t).ok_or_else(|| anyhow::anyhow!("stored event type {t:?}")))
            .collect::<Result<_, _>>()?;
        Ok(WebhookView {
            webhook_id: self.id,
            url: self.url,
            events,
            created_at: self.created_at,
        })
    }
}

const ENDPOINT_COLUMNS: &str = "select id, url, event_types, created_at
                                from webhook_endpoints";

/// The tenant's endpoints (never their secrets).
#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [WebhookView]), problems::Unauthorized, problems::Unavailable))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    tenant: AdminTenant,
) -> ApiResult<Json<Vec<WebhookView>>> {
    let rows: Vec<EndpointRow> = sqlx::query_as(&format!(
        "{ENDPOINT_COLUMNS} where tenant_id = $1 and deleted_at is null order by created_at, id"
    ))
    .bind(tenant.0.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(EndpointRow::view)
            .collect::<ApiResult<_>>()?,
    ))
}

/// The endpoint, if it exists and is the tenant's (another tenant's: 403).
async fn owned_endpoint(
    conn: &mut PgConnection,
    tenant: AdminTenant,
    raw_id: &str,
) -> ApiResult<Uuid> {
    let id: Uuid = raw_id
        .parse()
        .map_err(|_| ApiError::field("webhook_id", "a UUID"))?;
    let owner: Option<Uuid> = sqlx::query_scalar(
        "select tenant_id from webhook_endpoints where id = $1 and deleted_at is null",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    tenant.owns(TenantId(
        owner.ok_or_else(|| ApiError::not_found("webhook"))?,
    ))?;
    Ok(id)
}

/// Stop delivering to an endpoint (its pending deliveries are not sent).
#[utoipa::path(delete, path = "/admin/v1/webhooks/{webhook_id}", tag = "admin",
    security(("bearer" = [])), params(("webhook_id" = String, Path, format = Uuid)),
    responses((status = 204, description = "deleted"),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(webhook_id): PathParams<String>,
) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    let id = owned_endpoint(&mut conn, tenant, &webhook_id).await?;
    sqlx::query("update webhook_endpoints set deleted_at = now() where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/deliveries?status=dead`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    status: Option<DeliveryStatus>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    event_id: Uuid,
    event_type: EventType,
    status: DeliveryStatus,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    give_up_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_status: Option<i16>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    fn view(self) -> DeliveryView {
        DeliveryView {
            delivery_id: self.id,
            event_id: self.event_id,
            event_type: self.event_type,
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            give_up_at: self.give_up_at,
            last_attempt_at: self.last_attempt_at,
            last_status: self.last_status,
            last_error: self.last_error,
            delivered_at: self.delivered_at,
        }
    }
}

const DELIVERY_COLUMNS: &str = "select d.id, e.id as event_id, e.type as event_type, d.status,
        d.attempts, d.next_attempt_at, d.give_up_at, d.last_attempt_at, d.last_status,
        d.last_error, d.delivered_at
    from webhook_deliveries d join integration_events e on e.seq = d.event_seq";

/// An endpoint's deliveries, newest event first (at most 100).
#[utoipa::path(get, path = "/admin/v1/webhooks/{webhook_id}/deliveries", tag = "admin",
    security(("bearer" = [])),
    params(("webhook_id" = String, Path, format = Uuid), DeliveriesQuery),
    responses((status = 200, body = [DeliveryView]),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(webhook_id): PathParams<String>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let status = query.status;
    let mut conn = state.pool.acquire().await?;
    let id = owned_endpoint(&mut conn, tenant, &webhook_id).await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
        "{DELIVERY_COLUMNS} where d.endpoint_id = $1 and ($2::text is null or d.status = $2)
         order by d.event_seq desc limit $3"
    ))
    .bind(id)
    .bind(status)
    .bind(DELIVERIES_LISTED_MAX)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows.into_iter().map(DeliveryRow::view).collect()))
}

/// Send a delivery again (a dead one, or a delivered one the receiver lost): pending now,
/// with a fresh bounded age. It goes out in its event's place in the endpoint's order.
#[utoipa::path(post, path = "/admin/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    tag = "admin", security(("bearer" = [])),
    params(("webhook_id" = String, Path, format = Uuid), ("delivery_id" = String, Path, format = Uuid)),
    responses((status = 200, body = DeliveryView),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn redeliver(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams((webhook_id, delivery_id)): PathParams<(String, String)>,
) -> ApiResult<Json<DeliveryView>> {
    let delivery_id: Uuid = delivery_id
        .parse()
        .map_err(|_| ApiError::field("delivery_id", "a UUID"))?;
    let mut conn = state.pool.acquire().await?;
    let id = owned_endpoint(&mut conn, tenant, &webhook_id).await?;
    let updated = sqlx::query(
        "update webhook_deliveries set status = 'pending', delivered_at = null,
             next_attempt_at = now(), give_up_at = now() + $3 * interval '1 millisecond'
         where id = $1 and endpoint_id = $2",
    )
    .bind(delivery_id)
    .bind(id)
    .bind(state.config.webhooks.max_age.as_secs_f64() * 1_000.0)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found("delivery"));
    }
    let row: DeliveryRow = sqlx::query_as(&format!("{DELIVERY_COLUMNS} where d.id = $1"))
        .bind(delivery_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Json(row.view()))
}
