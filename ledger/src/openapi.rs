//! `GET /openapi.json`, generated from the handlers' annotations and the domain types.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::AppState;
use crate::{catalog, health, holds, organizers, queue, sales, seats, tickets, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera ledger", description = "Catalog, inventory and holds for high-demand ticket sales. Errors are RFC 9457 problem+json with a stable `code`."),
    paths(
        catalog::public::list_events, catalog::public::get_event, catalog::public::list_categories,
        catalog::public::show_availability, seats::map::show_seats,
        tickets::checkin_keys::checkin_keys, tickets::checkin::checkin,
        tickets::gates::create_gate, tickets::gates::revoke_gate,
        holds::cancel::cancel_order, holds::cancel::complete_refund,
        holds::create_hold, holds::get_hold, holds::confirm_hold, holds::release_hold,
        holds::order::get_order, sales::event_sales,
        webhooks::endpoints::create_webhook, webhooks::endpoints::list_webhooks,
        webhooks::endpoints::delete_webhook, webhooks::endpoints::list_deliveries,
        webhooks::endpoints::redeliver,
        catalog::admin::create_event, catalog::admin::get_owned_event, catalog::admin::publish_event,
        catalog::admin::cancel_event, catalog::admin::patch_event, catalog::admin::patch_show,
        catalog::admin::patch_zone, catalog::admin::block_seats, catalog::admin::unblock_seats,
        organizers::tokens::create_token, organizers::tokens::list_tokens,
        organizers::tokens::revoke_token,
        queue::join, queue::poll, queue::state_of,
        queue::settings::get_settings, queue::settings::put_settings,
        health::live, health::ready,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "Public catalog and live availability"),
        (name = "holds", description = "Holding, confirming and releasing tickets"),
        (name = "checkin", description = "Verifying tickets at the door"),
        (name = "queue", description = "The front door: a fair queue for an on-sale, and its admission passes"),
        (name = "admin", description = "Tenant-scoped event management (bearer token)"),
        (name = "operations", description = "Health and readiness (metrics are on the operations listener, METRICS_ADDR)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A door's gate credential (POST /v1/checkin), not an admin token.
        components.add_security_scheme(
            "gate",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a gate credential from POST /admin/v1/events/{event_id}/gates",
                    ))
                    .build(),
            ),
        );
    }
}

/// The problem answers many operations share, for their `responses(...)`: each type adds
/// its statuses, so an operation lists every status it can return (the test in
/// `tests/operations.rs` holds the table).
pub mod problems {
    use tessera_domain::Problem;

    /// Every route, behind the ledger's load shedding and in front of its database.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 503,
        content_type = "application/problem+json",
        description = "overloaded (shedding load) or unavailable (database down): retry after Retry-After",
        headers(("Retry-After" = u32, description = "seconds to wait before retrying"))
    )]
    pub struct Unavailable(pub Problem);

    /// Routes with a path id or query parameters.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 422,
        content_type = "application/problem+json",
        description = "validation_failed: a malformed id or query parameter, named in `errors`"
    )]
    pub struct Invalid(pub Problem);

    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 404,
        content_type = "application/problem+json",
        description = "not_found"
    )]
    pub struct NotFound(pub Problem);

    /// Routes that read a JSON body (the shared rules of `tessera_domain::body`).
    #[derive(utoipa::IntoResponses)]
    pub enum JsonBody {
        #[response(
            status = 400,
            content_type = "application/problem+json",
            description = "malformed_json; idempotency_key_required where the route takes an Idempotency-Key"
        )]
        Malformed(Problem),
        #[response(
            status = 408,
            content_type = "application/problem+json",
            description = "request_timeout: the body did not arrive within BODY_READ_TIMEOUT_MS (the connection is closed)"
        )]
        Slow(Problem),
        #[response(
            status = 413,
            content_type = "application/problem+json",
            description = "payload_too_large"
        )]
        TooLarge(Problem),
        #[response(
            status = 415,
            content_type = "application/problem+json",
            description = "unsupported_media_type: send application/json"
        )]
        MediaType(Problem),
        #[response(
            status = 422,
            content_type = "application/problem+json",
            description = "validation_failed: missing, unknown, mistyped or invalid fields, named in `errors`"
        )]
        Invalid(Problem),
    }

    /// Admin routes: a bearer token of a tenant.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 401,
        content_type = "application/problem+json",
        description = "unauthorized: missing, unknown, expired or revoked bearer token",
        headers(("WWW-Authenticate" = String))
    )]
    pub struct Unauthorized(pub Problem);

    /// Admin routes on an event: the token's tenant must own it.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 403,
        content_type = "application/problem+json",
        description = "forbidden: another tenant's event"
    )]
    pub struct Forbidden(pub Problem);
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
