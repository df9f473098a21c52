//! Admin authentication: `Authorization: Bearer <token>`, where each token belongs to one
//! tenant. Only a SHA-256 of each token is stored. Missing or unknown token → 401;
//! another tenant's resource → 403 (checked by the handlers with [`AdminTenant::owns`]).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};
use tessera_domain::{ErrorCode, TenantId};

use crate::app::AppState;
use crate::error::ApiError;

/// Tokens look like `tsk_` + 43 base64url characters (256 random bits).
pub const TOKEN_PREFIX: &str = "tsk_";

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
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer tsk_…`"))?;
        let tenant: Option<uuid::Uuid> =
            sqlx::query_scalar("select tenant_id from api_tokens where token_sha256 = $1")
                .bind(token_sha256(token))
                .fetch_optional(&state.pool)
                .await?;
        tenant
            .map(|t| Self(TenantId(t)))
            .ok_or_else(|| unauthorized("unknown token"))
    }
}

/// Creates a tenant and its first admin token; returns both (the token is shown once).
pub async fn create_tenant(
    conn: &mut sqlx::PgConnection,
    name: &str,
) -> Result<(TenantId, String), sqlx::Error> {
    let tenant_id = TenantId(uuid::Uuid::now_v7());
    sqlx::query("insert into tenants (id, name) values ($1, $2)")
        .bind(tenant_id.as_uuid())
        .bind(name)
        .execute(&mut *conn)
        .await?;
    let token = issue_token(conn, tenant_id, "initial").await?;
    Ok((tenant_id, token))
}

/// Issues another admin token for `tenant_id`.
pub async fn issue_token(
    conn: &mut sqlx::PgConnection,
    tenant_id: TenantId,
    label: &str,
) -> Result<String, sqlx::Error> {
    let token = new_token();
    sqlx::query("insert into api_tokens (token_sha256, tenant_id, label) values ($1, $2, $3)")
        .bind(token_sha256(&token))
        .bind(tenant_id.as_uuid())
        .bind(label)
        .execute(conn)
        .await?;
    Ok(token)
}
