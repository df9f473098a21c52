//! The Spin-facing half (wasm32 only): variables, the KV store, the ledger client, the
//! read-through cache shared by the catalog and holds components, the rate limits every
//! handler checks first ([`ratelimit::check`]), and response helpers.
//! Nothing here keeps request state in globals: an instance may serve one request or many.

pub mod incoming;
pub mod kv;
pub mod ledger;
pub mod ratelimit;
pub mod reads;
pub mod respond;
pub mod streams;
pub mod vars;

/// Milliseconds since the Unix epoch (WASI wall clock). Before 1970 reads as 0.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
