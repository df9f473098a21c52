//! Component variables, read per request (cheap host calls; nothing cached in globals).

use spin_sdk::http::Response;
use spin_sdk::variables;

use crate::config;

use super::respond;

/// Everything a component needs from `spin.toml`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ledger_url: String,
    pub edge_key: String,
    pub availability_ttl_ms: u64,
    pub catalog_ttl_ms: u64,
    pub sold_out_shed_window_ms: u64,
    pub request_body_max_bytes: u64,
    pub stream_freshness_ms: u64,
}

/// A variable's value; `None` if it is not defined for this component.
fn get(name: &str) -> Result<Option<String>, String> {
    match variables::get(name) {
        Ok(value) => Ok(Some(value)),
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(e) => Err(format!("variable {name}: {e}")),
    }
}

fn number((name, default): (&str, u64)) -> Result<u64, String> {
    config::parse_number(name, get(name)?.as_deref(), default)
}

fn load_inner() -> Result<Settings, String> {
    let ledger_url = get(config::LEDGER_URL)?
        .ok_or_else(|| format!("variable {} is required", config::LEDGER_URL))?;
    Ok(Settings {
        ledger_url: config::parse_ledger_url(&ledger_url)?,
        edge_key: get(config::EDGE_KEY)?
            .ok_or_else(|| format!("variable {} is required", config::EDGE_KEY))?,
        availability_ttl_ms: number(config::AVAILABILITY_TTL_MS)?,
        catalog_ttl_ms: number(config::CATALOG_TTL_MS)?,
        sold_out_shed_window_ms: number(config::SOLD_OUT_SHED_WINDOW_MS)?,
        request_body_max_bytes: number(config::REQUEST_BODY_MAX_BYTES)?,
        stream_freshness_ms: number(config::STREAM_FRESHNESS_MS)?,
    })
}

/// All settings, or the 500 to answer (logged) if any is missing or malformed.
pub fn load() -> Result<Settings, Response> {
    load_inner().map_err(|e| respond::internal(&e))
}
