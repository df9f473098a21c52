//! Component variables, each read from the host at most once per instance and only when a
//! request needs it: a cached event is served with no variable read, cached availability
//! with one (`stream_freshness_ms`); a miss adds the ledger's address and key and the TTL
//! it stores with. The values are the component's configuration, fixed for the
//! application's lifetime under both hosts, not request state, so keeping them for the
//! instance's life (one request, or many when the host reuses instances) is safe.
//!
//! Two ways to ask, one trait ([`Variables`]): [`OnDemand`] reads each variable on first
//! use; [`Settings`] holds all of them, read at once by [`load`] (for callers that use most
//! of them anyway).

use std::sync::OnceLock;

use spin_sdk::http::Response;
use spin_sdk::variables;

use crate::config;

use super::respond;

/// The ledger's base URL and the key the edge presents to it.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub url: config::LedgerUrl,
    pub edge_key: String,
}

/// What the read-through cache and the ledger client ask for, whoever answers.
pub trait Variables {
    fn ledger(&self) -> Result<&Ledger, Response>;
    fn availability_ttl_ms(&self) -> Result<u64, Response>;
    fn catalog_ttl_ms(&self) -> Result<u64, Response>;
    fn stream_freshness_ms(&self) -> Result<u64, Response>;
}

/// Everything a component needs from `spin.toml`, read at once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ledger: Ledger,
    pub availability_ttl_ms: u64,
    pub catalog_ttl_ms: u64,
    pub sold_out_shed_window_ms: u64,
    pub request_body_max_bytes: u64,
    pub stream_freshness_ms: u64,
}

impl Variables for Settings {
    fn ledger(&self) -> Result<&Ledger, Response> {
        Ok(&self.ledger)
    }

    fn availability_ttl_ms(&self) -> Result<u64, Response> {
        Ok(self.availability_ttl_ms)
    }

    fn catalog_ttl_ms(&self) -> Result<u64, Response> {
        Ok(self.catalog_ttl_ms)
    }

    fn stream_freshness_ms(&self) -> Result<u64, Response> {
        Ok(self.stream_freshness_ms)
    }
}

/// Each variable read on first use and kept for the instance.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnDemand;

impl Variables for OnDemand {
    fn ledger(&self) -> Result<&Ledger, Response> {
        static LEDGER: OnceLock<Result<Ledger, String>> = OnceLock::new();
        LEDGER
            .get_or_init(load_ledger)
            .as_ref()
            .map_err(|e| respond::internal(e))
    }

    fn availability_ttl_ms(&self) -> Result<u64, Response> {
        static VALUE: OnceLock<Result<u64, String>> = OnceLock::new();
        memo_number(&VALUE, config::AVAILABILITY_TTL_MS)
    }

    fn catalog_ttl_ms(&self) -> Result<u64, Response> {
        static VALUE: OnceLock<Result<u64, String>> = OnceLock::new();
        memo_number(&VALUE, config::CATALOG_TTL_MS)
    }

    fn stream_freshness_ms(&self) -> Result<u64, Response> {
        static VALUE: OnceLock<Result<u64, String>> = OnceLock::new();
        memo_number(&VALUE, config::STREAM_FRESHNESS_MS)
    }
}

impl OnDemand {
    pub fn sold_out_shed_window_ms(&self) -> Result<u64, Response> {
        static VALUE: OnceLock<Result<u64, String>> = OnceLock::new();
        memo_number(&VALUE, config::SOLD_OUT_SHED_WINDOW_MS)
    }

    pub fn request_body_max_bytes(&self) -> Result<u64, Response> {
        static VALUE: OnceLock<Result<u64, String>> = OnceLock::new();
        memo_number(&VALUE, config::REQUEST_BODY_MAX_BYTES)
    }
}

/// A number variable, read once into `cell`; a misconfiguration is the 500 to answer
/// (logged each time it is answered).
fn memo_number(
    cell: &'static OnceLock<Result<u64, String>>,
    (name, default): (&str, u64),
) -> Result<u64, Response> {
    cell.get_or_init(|| config::parse_number(name, get(name)?.as_deref(), default))
        .clone()
        .map_err(|e| respond::internal(&e))
}

/// A variable's value; `None` if it is not defined for this component.
fn get(name: &str) -> Result<Option<String>, String> {
    match variables::get(name) {
        Ok(value) => Ok(Some(value)),
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(e) => Err(format!("variable {name}: {e}")),
    }
}

fn required(name: &str) -> Result<String, String> {
    get(name)?.ok_or_else(|| format!("variable {name} is required"))
}

fn load_ledger() -> Result<Ledger, String> {
    Ok(Ledger {
        url: config::parse_ledger_url(&required(config::LEDGER_URL)?)?,
        edge_key: required(config::EDGE_KEY)?,
    })
}

/// The queue's signing keys (`queue_key`, and `queue_key_previous` while rotating), read
/// once per instance and only by requests that sign or check queue tokens; a missing or
/// malformed key is the 500 to answer (logged).
pub fn queue_keys() -> Result<&'static tessera_domain::queue::QueueKeys, Response> {
    static KEYS: OnceLock<Result<tessera_domain::queue::QueueKeys, String>> = OnceLock::new();
    KEYS.get_or_init(load_queue_keys)
        .as_ref()
        .map_err(|e| respond::internal(e))
}

fn load_queue_keys() -> Result<tessera_domain::queue::QueueKeys, String> {
    use tessera_domain::queue::{QueueKey, QueueKeys};
    let parse = |name: &str, value: &str| {
        QueueKey::parse(value).map_err(|e| format!("variable {name}: {e}"))
    };
    let current = parse(config::QUEUE_KEY, &required(config::QUEUE_KEY)?)?;
    let previous = match get(config::QUEUE_KEY_PREVIOUS)? {
        Some(value) if !value.trim().is_empty() => Some(parse(config::QUEUE_KEY_PREVIOUS, &value)?),
        _ => None,
    };
    Ok(QueueKeys { current, previous })
}

/// All settings (each read once per instance), or the 500 to answer (logged) if any is
/// missing or malformed.
pub fn load() -> Result<Settings, Response> {
    let vars = OnDemand;
    Ok(Settings {
        ledger: vars.ledger()?.clone(),
        availability_ttl_ms: vars.availability_ttl_ms()?,
        catalog_ttl_ms: vars.catalog_ttl_ms()?,
        sold_out_shed_window_ms: vars.sold_out_shed_window_ms()?,
        request_body_max_bytes: vars.request_body_max_bytes()?,
        stream_freshness_ms: vars.stream_freshness_ms()?,
    })
}
