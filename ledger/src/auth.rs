//! Admin authentication: `Authorization: Bearer <token>`, where each token belongs to one
//! tenant. Only a SHA-256 of each token is stored, and a token is found by its hash.
//! Missing, unknown, revoked or expired token → 401 `unauthorized` (each with its own
//! detail); another tenant's event → 403 (checked by the handlers with
//! [`AdminTenant::owns`]). A token's use is recorded at most once per
//! [`LAST_USED_RESOLUTION`], so a busy token costs one write a minute, not one a request.
//! Tokens are issued and revoked in [`crate::organizers::tokens`].

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};
use tessera_domain::{ErrorCode, TenantId};

use crate::app::AppState;
use crate::error::ApiError;

/// Tokens look like `tsk_` + 43 base64url characters (256 random bits).
pub use tessera_domain::tokens::TOKEN_PREFIX;

/// How stale a token's `last_used_at` may get before a request records it again.
pub const LAST_USED_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a request waits for that record (a pool that is out of connections would
/// otherwise hold it up to the pool's acquire timeout): the record is not worth a slow
/// answer.
const LAST_USED_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The tenant the request's bearer token belongs to.
#[derive(Debug, Clone, Copy)]
pub struct AdminTenant(pub TenantId);

impl AdminTenant {
    /// 403 unless `owner` is this tenant.
    pub fn owns(&self, owner: TenantId) -> Result<(), ApiError> {
        if owner == self.0 {
            Ok(())
        } else {
            Err(ApiError::client(
                ErrorCode::Forbidden,
                "this resource belongs to another tenant",
            ))
        }
    }
}

pub fn token_sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token (shown once; only its hash is stored).
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl FromRequestParts<AppState> for AdminTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |detail: &str| ApiError::client(ErrorCode::Unauthorized, detail);
        let token = bearer_token(parts)?;
        let presented: Option<Presented> = sqlx::query_as(
            "select id, tenant_id, revoked_at is not null as revoked,
                    coalesce(expires_at <= now(), false) as expired,
                    coalesce(last_used_at < now() - make_interval(secs => $2), true) as stale
             from api_tokens where token_sha256 = $1",
        )
        .bind(token_sha256(token))
        .bind(LAST_USED_RESOLUTION.as_secs_f64())
        .fetch_optional(&state.pool)
        .await?;
        let presented = presented.ok_or_else(|| unauthorized("unknown token"))?;
        if presented.revoked {
            return Err(unauthorized("this token was revoked"));
        }
        if presented.expired {
            return Err(unauthorized("this token has expired"));
        }
        if presented.stale {
            record_use(&state.pool, presented.id).await;
        }
        Ok(Self(TenantId(presented.tenant_id)))
    }
}

/// The token of `Authorization: Bearer tsk_…`, or 401.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let unauthorized = |detail: &str| ApiError::client(ErrorCode::Unauthorized, detail);
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer tsk_…`"))
}

/// What the lookup of a presented token says about it.
#[derive(sqlx::FromRow)]
struct Presented {
    id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    revoked: bool,
    expired: bool,
    /// `last_used_at` is older than [`LAST_USED_RESOLUTION`] (or unset).
    stale: bool,
}

/// Records that token `id` was used now. Best effort, within [`LAST_USED_WRITE_TIMEOUT`]:
/// a failure is logged and the request goes on (the token was valid; only the record is
/// late). The staleness check is repeated under the row lock so concurrent requests with
/// one token write once, and `skip locked` makes a request whose token's row is busy
/// (another request recording it, a revocation) skip the record instead of waiting.
async fn record_use(pool: &sqlx::PgPool, id: uuid::Uuid) {
    let update = sqlx::query(
        "update api_tokens set last_used_at = now()
         where id = (select id from api_tokens where id = $1
                       and (last_used_at is null or last_used_at < now() - make_interval(secs => $2))
                     for update skip locked)",
    )
    .bind(id)
    .bind(LAST_USED_RESOLUTION.as_secs_f64())
    .execute(pool);
    match tokio::time::timeout(LAST_USED_WRITE_TIMEOUT, update).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(token_id = %id, error = %e, "could not record the admin token's use")
        }
        Err(_) => tracing::warn!(token_id = %id, "recording the admin token's use timed out"),
    }
}

/// Creates a tenant and its first admin token; returns both (the token is shown once).
pub async fn create_tenant(
    conn: &mut sqlx::PgConnection,
    name: &str,
) -> Result<(TenantId, String), sqlx::Error> {
    let (tenant_id, issued) = crate::organizers::tenants::create(conn, name).await?;
    Ok((tenant_id, issued.token))
}

/// Issues another admin token for `tenant_id`, without an expiry.
pub async fn issue_token(
    conn: &mut sqlx::PgConnection,
    tenant_id: TenantId,
    label: &str,
) -> Result<String, sqlx::Error> {
    let issued = crate::organizers::tokens::insert(conn, tenant_id, label, None).await?;
    Ok(issued.token)
}
