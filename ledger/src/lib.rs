//! Tessera's central ledger: the one service that commits inventory.
//!
//! Layout, by what each part does:
//! - [`catalog`]: public reads (events, search, categories, availability) and the
//!   tenant-scoped admin writes; [`auth`] resolves admin bearer tokens to tenants.
//! - [`holds`]: the inventory engine. [`holds::engine`] queues hold requests per zone and
//!   commits them in batches ([`holds::commit`]); [`holds::settle`] confirms and releases;
//!   [`holds::sweeper`] expires lapsed holds; [`holds::cancel`] cancels confirmed orders
//!   and completes their refunds, [`holds::event_cancel`] a cancelled event's whole sale;
//!   [`holds::order`] is the buyer's order page.
//! - [`seats`]: assigned seating: a zone's seats stored with it, the public seat map.
//! - [`tickets`]: the ticket's life after the sale: each event's signing keys, signed
//!   codes, the public keys and revoked set scanners verify them with, gate credentials
//!   and check-in.
//! - [`sales`]: an organizer's sales figures per show, zone and currency.
//! - [`webhooks`]: integration events, written with their changes and delivered signed to
//!   organizers' endpoints.
//! - [`idempotency`]: stored results for `Idempotency-Key` replays.
//! - [`outbox`]: every change's message, written in its transaction and relayed to Redis.
//! - [`app`]: startup, routing, middleware and graceful shutdown; [`config`] reads the
//!   environment; [`db`] connects and migrates; [`error`] and [`extract`] make every
//!   failure RFC 9457 problem+json; [`metrics`] (served on its own operations listener,
//!   `METRICS_ADDR`), [`health`] and [`openapi`] are operations.
//! - [`origin`]: tells edge traffic (it presents the edge key) from direct clients.
//! - [`organizers`]: tenants and their admin tokens (issued, listed, revoked), for
//!   [`cli`] (the binary's commands) and `/admin/v1/tokens`.
//! - [`seed`]: demo data for `cargo xtask up`.
//!
//! The invariants of DESIGN.md are enforced by CHECK constraints in `migrations/` as well
//! as by this code, so a bug here aborts a commit instead of overselling.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod health;
pub mod holds;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod organizers;
pub mod origin;
pub mod outbox;
pub mod queue;
pub mod sales;
pub mod seats;
pub mod seed;
pub mod tickets;
pub mod webhooks;

pub use app::{AppState, Ledger};
pub use config::Config;
pub use db::MIGRATOR;
