//! The ticket's life after the sale: the events' signing keys and signed codes
//! ([`keys`]), and the public key set scanners verify codes with ([`checkin_keys`]).

pub mod checkin_keys;
pub mod keys;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    checkin_keys::router()
}
