//! The ticket's life after the sale: the events' signing keys and signed codes
//! ([`keys`]), the public key set scanners verify codes with ([`checkin_keys`]), the
//! doors' credentials ([`gates`]), the scan that checks a ticket in ([`checkin`]) and
//! the codes refused since they were issued ([`revocations`]).

pub mod checkin;
pub mod checkin_keys;
pub mod gates;
pub mod keys;
pub mod revocations;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    use axum::routing::post;
    checkin_keys::router()
        .merge(checkin::router())
        .route(
            "/admin/v1/events/{event_id}/gates",
            post(gates::create_gate),
        )
        .route(
            "/admin/v1/events/{event_id}/gates/{credential_id}/revoke",
            post(gates::revoke_gate),
        )
}
