//! A tenant's admin tokens: issued (shown once), listed (never the token or its hash) and
//! revoked, by the CLI for any tenant and over `/admin/v1/tokens` by the tenant itself.
//!
//! Bounds: a tenant has at most [`LIVE_TOKENS_PER_TENANT_MAX`] live tokens (neither
//! expired nor revoked), so a listing of [`TOKENS_LISTED_MAX`], live ones first, always
//! shows every token that works. Another tenant's token id is answered 404 like an
//! unknown one: its existence is not revealed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::tokens::{
    shown_prefix, IssuedToken, NewToken, TokenInfo, TokenList, TokenRequest,
};
use tessera_domain::{ErrorCode, TenantId, TokenId};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{new_token, token_sha256, AdminTenant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, JsonBody, PathParams};
use crate::openapi::problems;

/// Tokens of one tenant that work at once: more than any organizer's devices and
/// integrations need, few enough that one listing shows them all.
pub const LIVE_TOKENS_PER_TENANT_MAX: i64 = 100;
/// Tokens one listing shows: every live one, then the most recent expired and revoked.
pub const TOKENS_LISTED_MAX: i64 = 2 * LIVE_TOKENS_PER_TENANT_MAX;

/// What a listing reads of a token: never `token_sha256`.
const INFO_COLUMNS: &str =
    "id, tenant_id, label, prefix, created_at, last_used_at, expires_at, revoked_at";
/// Works now: not revoked, not expired (SQL, over `api_tokens`).
pub(super) const LIVE: &str = "revoked_at is null and (expires_at is null or expires_at > now())";

#[derive(sqlx::FromRow)]
struct InfoRow {
    id: Uuid,
    tenant_id: Uuid,
    label: String,
    prefix: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<InfoRow> for TokenInfo {
    fn from(row: InfoRow) -> Self {
        Self {
            token_id: TokenId(row.id),
            tenant_id: TenantId(row.tenant_id),
            label: row.label,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// Why a token was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no tenant {0}")]
    UnknownTenant(TenantId),
    #[error("tenant {0} already has {LIVE_TOKENS_PER_TENANT_MAX} live tokens: revoke one first")]
    TooManyLive(TenantId),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Stores a new token for `tenant_id` without checking the tenant's bound (the demo seed
/// and new tenants' first tokens); returns it with its metadata.
pub async fn insert(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    label: &str,
    expires_in: Option<chrono::Duration>,
) -> Result<IssuedToken, sqlx::Error> {
    let token = new_token();
    let row: InfoRow = sqlx::query_as(&format!(
        "insert into api_tokens (id, token_sha256, prefix, tenant_id, label, expires_at)
         values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
         returning {INFO_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(token_sha256(&token))
    .bind(shown_prefix(&token))
    .bind(tenant_id.as_uuid())
    .bind(label)
    // Whole seconds (bounded by `ExpiresIn`): `make_interval(secs => null)` is null.
    .bind(expires_in.map(|d| d.num_seconds() as f64))
    .fetch_one(conn)
    .await?;
    let info = TokenInfo::from(row);
    tracing::info!(token_id = %info.token_id, tenant_id = %tenant_id, label, "admin token issued");
    Ok(IssuedToken { token, info })
}

/// Issues a token for `tenant_id` (the CLI's `token create`, `POST /admin/v1/tokens`),
/// within the tenant's bound of live tokens. The tenant's row is locked so two requests
/// at once cannot both take the last place.
pub async fn issue(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    request: &TokenRequest,
) -> Result<IssuedToken, IssueError> {
    let live: Option<i64> = sqlx::query_scalar(&format!(
        "select (select count(*) from api_tokens where tenant_id = tenants.id and {LIVE})
         from tenants where id = $1 for update"
    ))
    .bind(tenant_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    match live {
        None => return Err(IssueError::UnknownTenant(tenant_id)),
        Some(n) if n >= LIVE_TOKENS_PER_TENANT_MAX => {
            return Err(IssueError::TooManyLive(tenant_id))
        }
        Some(_) => {}
    }
    let expires_in = request.expires_in.map(|e| e.as_duration());
    Ok(insert(conn, tenant_id, request.label.as_str(), expires_in).await?)
}

/// Tokens of `tenant_id` (of every tenant if `None`), live ones first, then newest first;
/// at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: Option<TenantId>,
    limit: i64,
) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let rows: Vec<InfoRow> = sqlx::query_as(&format!(
        "select {INFO_COLUMNS} from api_tokens where $1::uuid is null or tenant_id = $1
         order by ({LIVE}) desc, created_at desc, id limit $2"
    ))
    .bind(tenant_id.map(|t| t.as_uuid()))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(TokenInfo::from).collect())
}

/// Revokes token `token_id` (only if it is `tenant_id`'s, when given): it stops working
/// at once. Idempotent: a revoked token keeps its first `revoked_at`. `None`: no such
/// token (for that tenant).
pub async fn revoke(
    conn: &mut PgConnection,
    tenant_id: Option<TenantId>,
    token_id: TokenId,
) -> Result<Option<TokenInfo>, sqlx::Error> {
    let row: Option<InfoRow> = sqlx::query_as(&format!(
        "update api_tokens set revoked_at = coalesce(revoked_at, now())
         where id = $1 and ($2::uuid is null or tenant_id = $2) returning {INFO_COLUMNS}"
    ))
    .bind(token_id.as_uuid())
    .bind(tenant_id.map(|t| t.as_uuid()))
    .fetch_optional(conn)
    .await?;
    if row.is_some() {
        tracing::info!(token_id = %token_id, "admin token revoked");
    }
    Ok(row.map(TokenInfo::from))
}

/// The ids of the tokens whose listed prefix is `prefix`: at most two, enough to tell
/// one from an ambiguous prefix.
pub async fn ids_with_prefix(
    conn: &mut PgConnection,
    prefix: &str,
) -> Result<Vec<TokenId>, sqlx::Error> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("select id from api_tokens where prefix = $1 order by id limit 2")
            .bind(prefix)
            .fetch_all(conn)
            .await?;
    Ok(ids.into_iter().map(TokenId).collect())
}

/// A new admin token for the caller's tenant. The token is in this answer only.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "admin",
    request_body = NewToken, security(("bearer" = [])),
    responses((status = 201, body = IssuedToken),
        (status = 409, body = tessera_domain::Problem, content_type = "application/problem+json",
            description = "conflict: the tenant already has 100 live tokens (revoke one first)"),
        problems::JsonBody, problems::Unauthorized, problems::Unavailable))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    tenant: AdminTenant,
    JsonBody(new): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let request = new.parse().map_err(ApiError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let issued = issue(&mut tx, tenant.0, &request)
        .await
        .map_err(|e| match e {
            IssueError::TooManyLive(_) => ApiError::client(ErrorCode::Conflict, e.to_string()),
            IssueError::Database(e) => ApiError::from(e),
            // The token that authenticated this request belongs to the tenant.
            IssueError::UnknownTenant(_) => ApiError::Unexpected(e.into()),
        })?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// The caller's tenant's tokens: live ones first, then the most recent expired and
/// revoked (at most 200). Never the tokens themselves.
#[utoipa::path(get, path = "/admin/v1/tokens", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = TokenList), problems::Unauthorized, problems::Unavailable))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    tenant: AdminTenant,
) -> ApiResult<Json<TokenList>> {
    let mut conn = state.pool.acquire().await?;
    let tokens = list(&mut conn, Some(tenant.0), TOKENS_LISTED_MAX).await?;
    Ok(Json(TokenList { tokens }))
}

/// Revokes one of the caller's tenant's tokens: it stops working at once (idempotent:
/// revoking again answers the same). Another tenant's token is answered 404, as if it did
/// not exist.
#[utoipa::path(post, path = "/admin/v1/tokens/{token_id}/revoke", tag = "admin",
    security(("bearer" = [])), params(("token_id" = String, Path, format = Uuid)),
    responses((status = 200, body = TokenInfo),
        problems::NotFound, problems::Invalid, problems::Unauthorized, problems::Unavailable))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    tenant: AdminTenant,
    PathParams(token_id): PathParams<String>,
) -> ApiResult<Json<TokenInfo>> {
    let token_id: TokenId = path_id("token_id", &token_id)?;
    let mut conn = state.pool.acquire().await?;
    revoke(&mut conn, Some(tenant.0), token_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("token"))
}
