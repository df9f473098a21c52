//! Tenants: an organizer that owns venues and events, and authenticates with its tokens.
//! Created with a first token (`tenant create`, the demo seed, tests), listed by the CLI.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::tokens::IssuedToken;
use tessera_domain::TenantId;
use uuid::Uuid;

/// The label of the token a tenant is created with.
pub const FIRST_TOKEN_LABEL: &str = "initial";

/// A tenant, as `tenant list` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Its tokens that work now (neither expired nor revoked).
    pub live_tokens: i64,
}

/// Creates a tenant named `name` (1 to 200 characters: `TenantName` checks, the table's
/// CHECK insists) and its first admin token, which is returned once.
pub async fn create(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(TenantId, IssuedToken), sqlx::Error> {
    let tenant_id = TenantId(Uuid::now_v7());
    sqlx::query("insert into tenants (id, name) values ($1, $2)")
        .bind(tenant_id.as_uuid())
        .bind(name)
        .execute(&mut *conn)
        .await?;
    tracing::info!(tenant_id = %tenant_id, "tenant created");
    let token = super::tokens::insert(conn, tenant_id, FIRST_TOKEN_LABEL, None).await?;
    Ok((tenant_id, token))
}

/// Tenants, oldest first, with their live token counts; at most `limit`.
pub async fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<TenantSummary>, sqlx::Error> {
    let live = super::tokens::LIVE;
    sqlx::query_as(&format!(
        "select t.id, t.name, t.created_at,
                (select count(*) from api_tokens where tenant_id = t.id and {live}) as live_tokens
         from tenants t order by t.created_at, t.id limit $1"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await
}
