//! Tessera's shared domain: the types and rules that the edge (wasm32) and the ledger
//! (native) must agree on, written once.
//!
//! - [`ids`]: typed identifiers (`EventId`, `ZoneId`, …) that parse, never panic.
//! - [`money`]: integer minor units plus an ISO 4217 currency code (invariant 6).
//! - [`holds`]: the hold/confirm request shapes and the rules that validate them
//!   (quantity per order, sale window, customer ids, idempotency keys).
//! - [`buyer`]: who bought, as a confirm may say (name, e-mail): personal data.
//! - [`body`]: how JSON bodies and the `Idempotency-Key` header are judged (400/413/415/422).
//! - [`catalog`]: the public read models (events, shows, zones, availability).
//! - [`fields`]: rules for what clients type (text without control characters, instants
//!   in range, IANA time zones).
//! - [`problem`]: RFC 9457 problem details with Tessera's stable error codes.
//! - [`seats`]: assigned seating: layouts as organizers describe them, seat states, the
//!   compact status map readers receive.
//! - [`invalidation`]: the messages the ledger publishes on `tessera.invalidate`.
//! - [`checkin`]: a door's scan (`POST /v1/checkin`) and its verdict.
//! - [`refunds`]: cancelled orders and the refunds they owe.
//! - [`tickets`]: signed ticket codes and gate credentials (Ed25519), verified with the
//!   event's public keys alone.
//! - [`queue`]: the front door's signed queue tickets and admission passes (HMAC-SHA256).
//! - [`tokens`]: tenants' admin tokens: the token API's shapes, the CLI's argument rules.
//! - [`settings`]: typed settings from name → value pairs (the binaries' environment).
//!
//! Nothing here does I/O, so the crate builds for `wasm32-wasip2` unchanged.

pub mod body;
pub mod buyer;
pub mod catalog;
pub mod checkin;
pub mod fields;
pub mod holds;
pub mod ids;
pub mod invalidation;
pub mod money;
pub mod orders;
pub mod problem;
pub mod queue;
pub mod refunds;
pub mod sales;
pub mod seats;
pub mod settings;
pub mod tickets;
pub mod tokens;
pub mod webhooks;

pub use ids::{
    CustomerId, EventId, HoldId, IdempotencyKey, ShowId, TenantId, TicketId, TokenId, VenueId,
    ZoneId,
};
pub use money::Currency;

/// The header an edge node presents its credential in (the `edge_key` Spin variable); the
/// ledger recognises edge traffic by it (`EDGE_KEY`).
pub const EDGE_KEY_HEADER: &str = "tessera-edge-key";
/// Which tier made an answer: `edge` (cache hits, edge refusals, sheds) or `ledger`
/// (relayed). Set by the components and the host, counted by the host's metrics.
pub const SERVED_BY_HEADER: &str = "tessera-served-by";
/// `hit`, `miss` or `bypass` (availability read through while the invalidation stream is
/// silent) on every catalog read the edge answers.
pub const CACHE_HEADER: &str = "tessera-cache";
pub use problem::{ErrorCode, FieldError, Problem};
