//! Webhooks (DESIGN.md "Organizers and integrations", invariant 11): what happened, told
//! to organizers' systems. Changes write integration events in their own transaction
//! ([`emit`]); the [`dispatcher`] fans them out to endpoints and delivers them, signed, in
//! order per endpoint, at least once, with backoff and a dead-letter state; [`egress`] is
//! the guarded HTTP client it sends with; [`endpoints`] is the tenant's admin API.

pub mod dispatcher;
pub mod egress;
pub mod emit;
pub mod endpoints;

use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/v1/webhooks",
            post(endpoints::create_webhook).get(endpoints::list_webhooks),
        )
        .route(
            "/admin/v1/webhooks/{webhook_id}",
            axum::routing::delete(endpoints::delete_webhook),
        )
        .route(
            "/admin/v1/webhooks/{webhook_id}/deliveries",
            get(endpoints::list_deliveries),
        )
        .route(
            "/admin/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
            post(endpoints::redeliver),
        )
}
