//! What Tessera's edge components share.
//!
//! The pure rules live in modules that never touch spin-sdk, so they are unit-tested
//! natively (`cargo test -p tessera-edge-cache`):
//!
//! - [`keys`]: the key-value layout and the normalised cache key of an event listing.
//! - [`ttl`]: wall-clock expiry (the TTL is a safety net; invalidation keeps entries fresh).
//! - [`stored`]: the entries' binary stored form: a fixed head, the ETag and body a hit
//!   serves as they are, then the fields only writers read.
//! - [`entry`]: the cached documents (catalog documents verbatim; availability merged per
//!   zone by `version`, with the "confirmed at" times that sold-out shedding needs).
//! - [`seat_map`]: a show's seat map, patched in place by `seats` messages, and read in
//!   place by the hold checks.
//! - [`etag`]: ETags and `If-None-Match` matching.
//! - [`cas`]: read-modify-writes of an entry over exactly what was read (compare-and-swap,
//!   retried), so concurrent writers on a node never put an older copy over a newer one.
//! - [`seq`]: what an invalidation message's `seq` (a heartbeat's too) says about missed
//!   messages.
//! - [`freshness`]: the freshness lease: cached availability is trusted only while the
//!   invalidation stream speaks; otherwise reads go through to the ledger (`bypass`).
//! - [`show_index`]: the per-event index of cached shows that catalog messages evict.
//! - [`checkin`]: the edge's checks on a door's scan (credential, code) before it is
//!   forwarded.
//! - [`hold`]: the edge's checks before a hold is forwarded (shared domain rules + shedding).
//! - [`forwarded`]: the node's bounded memory of the holds it forwarded (their retries
//!   always reach the ledger).
//! - [`queue`]: an event's queue as the node caches it (`serving` moved on by messages).
//! - [`ratelimit`]: the rate limits per client address and route class (fixed windows,
//!   `Retry-After`, the client address).
//! - [`config`]: parsing the component variables.
//! - [`problem`]: problem+json bodies marked `served_by: "edge"`.
//! - [`storefront`]: the storefront's answers: the route decision (page, asset, 404, 405),
//!   `Accept-Encoding` negotiation, `If-None-Match` over its files' tags, security headers.
//!
//! [`spin`] (wasm32 only) is the I/O half: KV store, variables, the ledger client, the
//! read-through cache used by the catalog and holds components, HTTP response helpers.

#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a trapped guest.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cas;
pub mod checkin;
pub mod config;
pub mod entry;
pub mod etag;
pub mod forwarded;
pub mod freshness;
pub mod hold;
pub mod keys;
pub mod problem;
pub mod queue;
pub mod ratelimit;
pub mod seat_map;
pub mod seq;
pub mod show_index;
pub mod stored;
pub mod storefront;
pub mod ttl;

#[cfg(target_arch = "wasm32")]
pub mod spin;
