//! The component variables. Numbers are validated here so a misconfiguration becomes a
//! logged 500 `internal`, never a trap.

/// Every variable, its name in `spin.toml` and its default. The required ones have none.
pub const LEDGER_URL: &str = "ledger_url";
pub const EDGE_KEY: &str = "edge_key";
/// The queue's signing key (secret), and the previous one while rotating (may be empty).
pub const QUEUE_KEY: &str = "queue_key";
pub const QUEUE_KEY_PREVIOUS: &str = "queue_key_previous";
/// The defaults are `spin.toml`'s (a test holds them equal, and `.env.example` with them),
/// so a component run without that manifest's variables behaves as with them.
pub const AVAILABILITY_TTL_MS: (&str, u64) = ("availability_ttl_ms", 30_000);
pub const CATALOG_TTL_MS: (&str, u64) = ("catalog_ttl_ms", 300_000);
pub const SOLD_OUT_SHED_WINDOW_MS: (&str, u64) = ("sold_out_shed_window_ms", 1_000);
pub const REQUEST_BODY_MAX_BYTES: (&str, u64) = ("request_body_max_bytes", 65_536);
/// How recently the invalidation stream must have spoken for cached availability to be
/// served (and a cached zero shed): three of the ledger's one-second heartbeats
/// (`OUTBOX_HEARTBEAT_INTERVAL_MS`), so one late or lost heartbeat does not turn a
/// healthy node's hits into ledger reads ([`crate::freshness`]).
pub const STREAM_FRESHNESS_MS: (&str, u64) = ("stream_freshness_ms", 3_000);
/// Rate limits per client address ([`crate::ratelimit`]): requests per second of each
/// route class, 0 = off, counted in fixed windows of `rate_limit_window_s`. Production
/// defaults, generous for one person (a storefront page makes a handful of reads; a door
/// scanner one scan a second) and for a few behind one NAT, tight for a script: a window
/// allows `per_s × window_s` requests, so a ten-second window absorbs a page's burst.
pub const RATE_LIMIT_READS_PER_S: (&str, u64) = ("rate_limit_reads_per_s", 100);
pub const RATE_LIMIT_JOINS_PER_S: (&str, u64) = ("rate_limit_joins_per_s", 5);
pub const RATE_LIMIT_HOLDS_PER_S: (&str, u64) = ("rate_limit_holds_per_s", 10);
pub const RATE_LIMIT_CHECKIN_PER_S: (&str, u64) = ("rate_limit_checkin_per_s", 50);
pub const RATE_LIMIT_WINDOW_S: (&str, u64) = ("rate_limit_window_s", 10);
/// The forwarding header (e.g. `x-forwarded-for`) a trusted proxy in front of the node
/// sets; its rightmost entry is the client address. Empty (the default): the connection's
/// address counts and forwarding headers are ignored, since any client can send them.
pub const CLIENT_ADDR_HEADER: &str = "client_addr_header";
/// Every number variable with a default.
pub const NUMBERS: [(&str, u64); 10] = [
    AVAILABILITY_TTL_MS,
    CATALOG_TTL_MS,
    SOLD_OUT_SHED_WINDOW_MS,
    REQUEST_BODY_MAX_BYTES,
    STREAM_FRESHNESS_MS,
    RATE_LIMIT_READS_PER_S,
    RATE_LIMIT_JOINS_PER_S,
    RATE_LIMIT_HOLDS_PER_S,
    RATE_LIMIT_CHECKIN_PER_S,
    RATE_LIMIT_WINDOW_S,
];
/// The freshness window must outlast this many heartbeat intervals (a test holds the
/// defaults to it).
pub const HEARTBEATS_PER_WINDOW_MIN: u64 = 2;

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

/// The ledger's base URL, in the parts an outbound request is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerUrl {
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// What comes before every path (`/prefix`), without a trailing slash; often empty.
    pub base_path: String,
}

/// The ledger's base URL; must be `http://` or `https://`, a trailing slash dropped.
pub fn parse_ledger_url(raw: &str) -> Result<LedgerUrl, String> {
    let url = raw.trim().trim_end_matches('/');
    let parsed = match url.split_once("://") {
        Some(("http", rest)) => Some((false, rest)),
        Some(("https", rest)) => Some((true, rest)),
        _ => None,
    };
    match parsed {
        Some((https, rest)) if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            let (authority, base_path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            Ok(LedgerUrl {
                https,
                authority: authority.to_owned(),
                base_path: base_path.to_owned(),
            })
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

    /// `name = { default = "value" … }` lines of `spin.toml`'s `[variables]` table.
    fn spin_toml_defaults() -> Vec<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../spin.toml");
        let manifest = std::fs::read_to_string(path).expect("spin.toml at the repository root");
        let mut in_variables = false;
        let mut defaults = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_variables = line == "[variables]";
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let default = value
                .split_once("default")
                .and_then(|(_, rest)| rest.trim_start().strip_prefix('='))
                .and_then(|rest| rest.trim_start().strip_prefix('"'))
                .and_then(|rest| rest.split_once('"'))
                .map(|(default, _)| default.to_owned());
            if let (true, Some(default)) = (in_variables, default) {
                defaults.push((name.trim().to_owned(), default));
            }
        }
        defaults
    }

    #[test]
    fn defaults_are_the_manifests_and_the_env_examples() {
        let defaults = spin_toml_defaults();
        assert!(
            defaults.iter().any(|(name, _)| name == "ledger_url"),
            "the [variables] table was read: {defaults:?}"
        );
        let env_example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../.env.example");
        let env_example = std::fs::read_to_string(env_example).expect(".env.example");
        for (name, default) in NUMBERS {
            let in_manifest = defaults.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            assert_eq!(
                in_manifest,
                Some(&default.to_string()),
                "spin.toml's default for {name}"
            );
            let documented = format!("SPIN_VARIABLE_{}={default}", name.to_uppercase());
            assert!(
                env_example.lines().any(|line| line.trim() == documented),
                ".env.example must document {documented}"
            );
        }
        // The ledger's heartbeat keeps a healthy stream fresh with room for a late one.
        let heartbeat_ms: u64 = env_example
            .lines()
            .find_map(|line| line.trim().strip_prefix("OUTBOX_HEARTBEAT_INTERVAL_MS="))
            .and_then(|ms| ms.parse().ok())
            .expect(".env.example documents OUTBOX_HEARTBEAT_INTERVAL_MS");
        assert!(
            STREAM_FRESHNESS_MS.1 >= HEARTBEATS_PER_WINDOW_MIN * heartbeat_ms,
            "{} ({}) must outlast {HEARTBEATS_PER_WINDOW_MIN} heartbeats of {heartbeat_ms} ms",
            STREAM_FRESHNESS_MS.0,
            STREAM_FRESHNESS_MS.1
        );
    }

    #[test]
    fn ledger_url_loses_its_trailing_slash_and_parts_once() {
        let url = |https: bool, authority: &str, base_path: &str| LedgerUrl {
            https,
            authority: authority.to_owned(),
            base_path: base_path.to_owned(),
        };
        assert_eq!(
            parse_ledger_url("http://127.0.0.1:4000/"),
            Ok(url(false, "127.0.0.1:4000", ""))
        );
        assert_eq!(
            parse_ledger_url(" https://ledger.example/api/ "),
            Ok(url(true, "ledger.example", "/api"))
        );
        assert!(parse_ledger_url("127.0.0.1:4000").is_err());
        assert!(parse_ledger_url("http://").is_err());
        assert!(parse_ledger_url("ftp://ledger.example").is_err());
    }
}
