//! The component variables. Numbers are validated here so a misconfiguration becomes a
//! logged 500 `internal`, never a trap.

/// Every variable, its name in `spin.toml` and its default (`None`: required).
pub const LEDGER_URL: &str = "ledger_url";
pub const EDGE_KEY: &str = "edge_key";
pub const AVAILABILITY_TTL_MS: (&str, u64) = ("availability_ttl_ms", 2_000);
pub const CATALOG_TTL_MS: (&str, u64) = ("catalog_ttl_ms", 60_000);
pub const SOLD_OUT_SHED_WINDOW_MS: (&str, u64) = ("sold_out_shed_window_ms", 1_000);
pub const REQUEST_BODY_MAX_BYTES: (&str, u64) = ("request_body_max_bytes", 65_536);

/// A number variable: `None` (undefined) → the default; anything but a non-negative
/// decimal integer → an error naming the variable.
pub fn parse_number(name: &str, raw: Option<&str>, default: u64) -> Result<u64, String> {
    match raw.map(str::trim) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("variable {name} must be a non-negative integer, got {text:?}")),
    }
}

/// The ledger's base URL without a trailing slash; must be `http://` or `https://`.
pub fn parse_ledger_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_owned())
        }
        _ => Err(format!(
            "variable {LEDGER_URL} must be an http(s) URL such as http://127.0.0.1:4000, got {raw:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_default_when_undefined_and_fail_clearly_when_bad() {
        assert_eq!(parse_number("x", None, 5), Ok(5));
        assert_eq!(parse_number("x", Some(" 250 "), 5), Ok(250));
        let err = parse_number("availability_ttl_ms", Some("2s"), 5).expect_err("bad");
        assert!(err.contains("availability_ttl_ms"), "{err}");
        assert!(parse_number("x", Some("-1"), 5).is_err());
        assert!(parse_number("x", Some(""), 5).is_err());
    }

    #[test]
    fn ledger_url_loses_its_trailing_slash() {
        assert_eq!(
            parse_ledger_url("http://127.0.0.1:4000/").as_deref(),
            Ok("http://127.0.0.1:4000")
        );
        assert!(parse_ledger_url("127.0.0.1:4000").is_err());
        assert!(parse_ledger_url("http://").is_err());
    }
}
