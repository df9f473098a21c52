//! Gate credentials: an organizer gives each door's devices a token, signed with the event's
//! key, naming the credential, tenant, event, gate and expiry, so an edge verifies it with
//! the event's public keys alone. Revoking it is a row here (`gate_credentials`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tessera_domain::catalog::EventStatus;
use tessera_domain::fields::single_line;
use tessera_domain::problem::FieldError;
use tessera_domain::tickets::{GateCredential, GATE_NAME_CHARS_MAX};
use tessera_domain::{ErrorCode, EventId};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::AdminTenant;
use crate::catalog::admin::lock_owned_event;
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::openapi::problems;

/// How long a credential lasts when the organizer names no time, and at most.
const VALID_HOURS_DEFAULT: i64 = 24;
const VALID_HOURS_MAX: i64 = 24 * 30;

/// `POST /admin/v1/events/{event_id}/gates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGate {
    /// The gate's name, as scanners send it (`North 1`).
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    gate: String,
    /// Hours the credential is valid (default 24, at most 720).
    #[schema(minimum = 1, maximum = 720)]
    valid_hours: Option<i64>,
}

/// A new credential. The token is shown once: the device keeps it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedGate {
    pub credential_id: Uuid,
    pub event_id: EventId,
    pub gate: String,
    pub expires_at: DateTime<Utc>,
    /// `Authorization: Bearer <token>` on `POST /v1/checkin`.
    pub token: String,
}

/// A revoked credential.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedGate {
    pub credential_id: Uuid,
    pub revoked_at: DateTime<Utc>,
}

impl NewGate {
    fn parse(&self) -> ApiResult<(String, Duration)> {
        let mut errors = Vec::new();
        let gate = single_line("gate", &self.gate, GATE_NAME_CHARS_MAX)
            .map_err(|e| errors.push(e))
            .ok();
        let hours = self.valid_hours.unwrap_or(VALID_HOURS_DEFAULT);
        if !(1..=VALID_HOURS_MAX).contains(&hours) {
            errors.push(FieldError::new(
                "valid_hours",
                format!("1 to {VALID_HOURS_MAX}"),
            ));
        }
        match gate {
            Some(gate) if errors.is_empty() => Ok((gate, Duration::hours(hours))),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// A credential for one gate of a published event.
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/gates", tag = "admin",
    request_body = NewGate, security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid)),
    responses((status = 201, body = IssuedGate),
        (status = 409, body = tessera_domain::Problem, content_type = "application/problem+json", description = "conflict: the event is not published"),
        problems::JsonBody, problems::NotFound, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn create_gate(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(event_id): PathParams<String>,
    JsonBody(new): JsonBody<NewGate>,
) -> ApiResult<(StatusCode, Json<IssuedGate>)> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let (gate, valid_for) = new.parse()?;
    let mut tx = state.pool.begin().await?;
    let issued = issue(&mut tx, tenant, event_id, gate, valid_for).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Issues a credential for `gate` of `tenant`'s published event `event_id`, valid for
/// `valid_for`, in the caller's transaction (the admin route; the demo data's door).
pub async fn issue(
    conn: &mut PgConnection,
    tenant: AdminTenant,
    event_id: EventId,
    gate: String,
    valid_for: Duration,
) -> ApiResult<IssuedGate> {
    if lock_owned_event(conn, tenant, event_id).await? != EventStatus::Published {
        return Err(ApiError::client(
            ErrorCode::Conflict,
            "gate credentials are for published events",
        ));
    }
    let credential_id = Uuid::now_v7();
    // Whole seconds: the token carries the expiry in seconds.
    let expires_at = DateTime::from_timestamp((Utc::now() + valid_for).timestamp(), 0)
        .ok_or_else(|| anyhow::anyhow!("expiry out of range"))?;
    sqlx::query(
        "insert into gate_credentials (id, event_id, gate, expires_at) values ($1, $2, $3, $4)",
    )
    .bind(credential_id)
    .bind(event_id.as_uuid())
    .bind(&gate)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    let signer = super::keys::signer(conn, event_id).await?;
    let token = signer
        .sign_credential(&GateCredential {
            credential_id,
            tenant_id: tenant.0,
            event_id,
            expires_at,
            gate: gate.clone(),
        })
        .map_err(anyhow::Error::new)?;
    Ok(IssuedGate {
        credential_id,
        event_id,
        gate,
        expires_at,
        token,
    })
}

/// Revokes a credential: its device's scans are refused from now on (idempotent).
#[utoipa::path(post, path = "/admin/v1/events/{event_id}/gates/{credential_id}/revoke", tag = "admin",
    security(("bearer" = [])),
    params(("event_id" = String, Path, format = Uuid), ("credential_id" = String, Path, format = Uuid)),
    responses((status = 200, body = RevokedGate),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn revoke_gate(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams((event_id, credential_id)): PathParams<(String, String)>,
) -> ApiResult<Json<RevokedGate>> {
    let event_id: EventId = path_id("event_id", &event_id)?;
    let credential_id: Uuid = credential_id
        .parse()
        .map_err(|_| ApiError::Validation(vec![FieldError::new("credential_id", "a UUID")]))?;
    let mut tx = state.pool.begin().await?;
    lock_owned_event(&mut tx, tenant, event_id).await?;
    let revoked_at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "update gate_credentials set revoked_at = coalesce(revoked_at, now())
         where id = $1 and event_id = $2 returning revoked_at",
    )
    .bind(credential_id)
    .bind(event_id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let revoked_at = revoked_at.ok_or_else(|| ApiError::not_found("gate credential"))?;
    tx.commit().await?;
    Ok(Json(RevokedGate {
        credential_id,
        revoked_at,
    }))
}
