//! Organizers (tenants) and their admin tokens, managed without SQL (DESIGN.md
//! "Organizers and integrations"): [`tenants`] creates and lists tenants (the CLI's
//! `tenant create` / `tenant list`); [`tokens`] issues, lists and revokes a tenant's
//! tokens, for the CLI (`token …`) and for the tenant itself over `/admin/v1/tokens`.
//! The check of a presented token (expired, revoked, last used) is [`crate::auth`].

pub mod tenants;
pub mod tokens;

use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/v1/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route(
            "/admin/v1/tokens/{token_id}/revoke",
            post(tokens::revoke_token),
        )
}
