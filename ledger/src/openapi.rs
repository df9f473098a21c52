//! `GET /openapi.json`, generated from the handlers' annotations and the domain types.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::AppState;
use crate::{catalog, health, holds};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera ledger", description = "Catalog, inventory and holds for high-demand ticket sales. Errors are RFC 9457 problem+json with a stable `code`."),
    paths(
        catalog::public::list_events, catalog::public::get_event, catalog::public::list_categories,
        catalog::public::show_availability,
        holds::create_hold, holds::get_hold, holds::confirm_hold, holds::release_hold,
        catalog::admin::create_event, catalog::admin::get_owned_event, catalog::admin::publish_event,
        catalog::admin::cancel_event, catalog::admin::patch_event, catalog::admin::patch_show,
        catalog::admin::patch_zone,
        health::live, health::ready,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "Public catalog and live availability"),
        (name = "holds", description = "Holding, confirming and releasing tickets"),
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
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
