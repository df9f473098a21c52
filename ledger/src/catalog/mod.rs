//! The catalog: public reads (listing, search, one event, categories, availability) and
//! the tenant-scoped admin writes that create and edit events.

pub mod admin;
mod detail;
pub mod public;

pub use detail::load_event_detail;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    public::router().merge(admin::router())
}
