//! Rate limits, the Spin half ([`crate::ratelimit`] has the rules): one call at the start of
//! each handler, [`check`]. It reads the class's limit (a variable, once per instance);
//! with the class off (0) that is all, with no key-value call. Otherwise it counts the
//! request in the node's store with one `wasi:keyvalue/atomics` `increment` of the client
//! address's counter for the current window (`ratelimit/…`, [`crate::keys::rate_limit`]),
//! which is atomic under both hosts, and refuses the request past the allowance with 429
//! `rate_limited` and `Retry-After` = the seconds left in the window.
//!
//! Fails open: a store that cannot count (its counters full under a flood of distinct
//! addresses, or an error) lets the request through and logs, since refusing everyone
//! would do the flood's work for it. A request with no client address (a host that passes
//! none) is not counted either.

use std::sync::OnceLock;

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::variables;
use spin_sdk::wit::wasi::keyvalue::{atomics, store};
use tessera_domain::ErrorCode;

pub use crate::ratelimit::Class;
use crate::ratelimit::{self, Verdict, Window};
use crate::{config, keys, problem};

use super::{now_ms, respond};

/// The header Spin (and `tessera-edge`) set to the connection's peer, `ip:port`.
const CLIENT_ADDR: &str = "spin-client-addr";

/// `Err(429)` if this request is one too many for its client address in `class`'s current
/// window; `Err(500)` if the limits are misconfigured. Call it first in a handler:
/// `ratelimit::check(&request, Class::Reads)?;`
pub fn check(request: &IncomingRequest, class: Class) -> Result<(), Response> {
    let Some(per_s) = limit_per_s(class)? else {
        return Ok(());
    };
    let window_s = window_s()?;
    let Some(allowance) = ratelimit::allowance(per_s, window_s) else {
        return Ok(());
    };
    let Some(addr) = client_addr(request)? else {
        return Ok(());
    };
    let now_ms = now_ms();
    let window = Window::containing(now_ms, window_s);
    let key = keys::rate_limit(window, class, &addr);
    let Some(count) = count(&key) else {
        return Ok(());
    };
    match ratelimit::judge(count, allowance, window, now_ms) {
        Verdict::Allowed => Ok(()),
        Verdict::Limited { retry_after_s } => Err(limited(class, retry_after_s)),
    }
}

/// The class's limit per second, `None` when off; read once per instance.
fn limit_per_s(class: Class) -> Result<Option<u64>, Response> {
    static LIMITS: [OnceLock<Result<u64, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = match class {
        Class::Reads => 0,
        Class::Joins => 1,
        Class::Holds => 2,
        Class::Checkin => 3,
    };
    let (name, default) = class.limit_variable();
    let per_s = LIMITS[slot]
        .get_or_init(|| number(name, default))
        .clone()
        .map_err(|e| respond::internal(&e))?;
    Ok((per_s > 0).then_some(per_s))
}

fn window_s() -> Result<u64, Response> {
    static WINDOW_S: OnceLock<Result<u64, String>> = OnceLock::new();
    let (name, default) = config::RATE_LIMIT_WINDOW_S;
    WINDOW_S
        .get_or_init(|| number(name, default))
        .clone()
        .map_err(|e| respond::internal(&e))
}

/// A number variable; undefined → the default.
fn number(name: &str, default: u64) -> Result<u64, String> {
    let raw = optional(name)?;
    config::parse_number(name, raw.as_deref(), default)
}

/// A variable's value; `None` if this component does not define it.
fn optional(name: &str) -> Result<Option<String>, String> {
    match variables::get(name) {
        Ok(value) => Ok(Some(value)),
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(e) => Err(format!("variable {name}: {e}")),
    }
}

/// The trusted forwarding header (lower case), `None` when the connection counts.
fn trusted_header() -> Result<Option<&'static str>, Response> {
    static HEADER: OnceLock<Result<Option<String>, String>> = OnceLock::new();
    HEADER
        .get_or_init(|| {
            let name = optional(config::CLIENT_ADDR_HEADER)?.unwrap_or_default();
            let name = name.trim().to_ascii_lowercase();
            Ok((!name.is_empty()).then_some(name))
        })
        .as_ref()
        .map(Option::as_deref)
        .map_err(|e| respond::internal(e))
}

/// The address this request counts under ([`ratelimit::client_addr`]).
fn client_addr(request: &IncomingRequest) -> Result<Option<String>, Response> {
    let trusted = trusted_header()?;
    let headers = request.headers();
    let connection = headers
        .get(CLIENT_ADDR)
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok());
    let forwarded = trusted.map(|name| headers.get(name));
    Ok(ratelimit::client_addr(
        connection.as_deref(),
        forwarded.as_deref(),
    ))
}

/// The window's count after this request; `None` (logged) if the store could not count.
fn count(key: &str) -> Option<i64> {
    let bucket = store::open(super::kv::STORE)
        .map_err(|e| eprintln!("tessera edge: rate limit: cannot open the store: {e:?}"))
        .ok()?;
    atomics::increment(&bucket, key, 1)
        .map_err(|e| eprintln!("tessera edge: rate limit: cannot count {key}: {e:?}"))
        .ok()
}

/// 429 `rate_limited`, `Retry-After` until the window ends.
fn limited(class: Class, retry_after_s: u64) -> Response {
    let detail = format!(
        "too many {} requests from this address; retry in {retry_after_s} s",
        class.name()
    );
    let mut response = respond::problem(&problem::edge(ErrorCode::RateLimited, detail));
    response.set_header("retry-after", retry_after_s.to_string());
    response
}
