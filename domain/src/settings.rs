//! Settings read from name → value pairs (the process environment for the ledger and the
//! edge host): the one parser both binaries use, so a bad value is reported the same way
//! everywhere and every default is stated once, where the setting is read.
//!
//! The lookup is a function, not `std::env`, so this stays free of I/O (the crate builds
//! for wasm) and tests pass their own values.

use std::str::FromStr;
use std::time::Duration;

/// A setting that is present but does not parse. Names the variable and the value (never
/// print a secret through this: [`Settings::secret`] does not parse, so it cannot fail).
#[derive(Debug, thiserror::Error)]
#[error("invalid environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Typed access to settings through `lookup`; an unset (or empty) variable takes the
/// default given at the call.
pub struct Settings<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The raw value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// A string setting.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A secret: never echoed in errors or logs by this helper.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.get(name)
    }

    /// Any `FromStr` setting (numbers, addresses, paths, enums).
    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|e: T::Err| ConfigError {
                name: name.to_owned(),
                reason: e.to_string(),
                value,
            }),
        }
    }

    /// A duration in whole milliseconds (`…_MS`).
    pub fn millis(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse(name, duration_u64(default.as_millis()))
            .map(Duration::from_millis)
    }

    /// A duration in whole seconds (`…_SECONDS`).
    pub fn seconds(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse(name, default.as_secs()).map(Duration::from_secs)
    }

    /// A flag: `true`/`1`/`yes` or `false`/`0`/`no`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ConfigError {
                name: name.to_owned(),
                value: other.to_owned(),
                reason: "expected true or false".to_owned(),
            }),
        }
    }

    /// A value that must be one of `choices` (e.g. `LOG_FORMAT`).
    pub fn choice(
        &self,
        name: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|c| **c == value.trim())
            .copied()
            .ok_or_else(|| ConfigError {
                name: name.to_owned(),
                reason: format!("expected one of {}", choices.join(", ")),
                value,
            })
    }
}

/// Open files a server keeps free of client connections: its operations listener, database
/// and Redis connections, outbound calls, logs. A connection bound above the process's
/// open-file limit minus this would never trigger: `accept` would fail first, for the
/// operations listener (`/health`) too.
pub const FD_RESERVE: u64 = 512;

/// The client-connection bound that fits `fd_limit` open files with [`FD_RESERVE`] to
/// spare, when `wanted` does not (`None`: it fits as it is).
pub fn connections_fitting(wanted: usize, fd_limit: u64) -> Option<usize> {
    let room = usize::try_from(fd_limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    (wanted > room).then_some(room.max(1))
}

/// Milliseconds of a configured default; defaults are far below `u64::MAX` ms.
fn duration_u64(ms: u128) -> u64 {
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`: a URL fit for logs.
/// A `password=` query parameter (libpq and sqlx accept one) is masked too. Anything
/// without a password comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query_password(tail))
}

/// `/db?sslmode=require&password=x` → `/db?sslmode=require&password=***`.
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = query
        .split_once('#')
        .map_or((query, None), |(q, f)| (q, Some(f)));
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    format!("{path}?{}{fragment}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::new(move |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let s = settings(&[("EMPTY", "")]);
        assert_eq!(s.parse("UNSET", 7u32).expect("default"), 7);
        assert_eq!(s.parse("EMPTY", 7u32).expect("default"), 7);
        assert_eq!(s.string("EMPTY", "x"), "x");
        assert_eq!(
            s.millis("UNSET", Duration::from_millis(250))
                .expect("default"),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_the_reason() {
        let s = settings(&[
            ("HOLD_TTL_SECONDS", "ten"),
            ("LOG_FORMAT", "xml"),
            ("F", "maybe"),
        ]);
        let err = s
            .seconds("HOLD_TTL_SECONDS", Duration::from_secs(600))
            .expect_err("not a number");
        assert!(
            err.to_string().contains("HOLD_TTL_SECONDS=\"ten\""),
            "{err}"
        );
        let err = s
            .choice("LOG_FORMAT", "text", &["text", "json"])
            .expect_err("not a choice");
        assert!(err.to_string().contains("text, json"), "{err}");
        assert!(s.flag("F", false).is_err());
    }

    #[test]
    fn values_parse_trimmed() {
        let s = settings(&[("N", " 42 "), ("B", "yes"), ("C", "json")]);
        assert_eq!(s.parse("N", 0u64).expect("number"), 42);
        assert!(s.flag("B", false).expect("flag"));
        assert_eq!(
            s.choice("C", "text", &["text", "json"]).expect("choice"),
            "json"
        );
    }

    #[test]
    fn the_connection_bound_fits_the_open_file_limit() {
        assert_eq!(connections_fitting(16_384, 20_000), None);
        assert_eq!(connections_fitting(16_384, 1_024), Some(512));
        assert_eq!(connections_fitting(100, 100), Some(1), "never zero");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.internal:5432/tessera?sslmode=require"),
            "postgres://app:***@db.internal:5432/tessera?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/tessera"),
            "postgres://postgres@127.0.0.1:5432/tessera"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("postgres://app@db/tessera?sslmode=require&password=s3cret&x=1"),
            "postgres://app@db/tessera?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact_url("postgres://app:pw@db/tessera?PASSWORD=two#frag"),
            "postgres://app:***@db/tessera?PASSWORD=***#frag"
        );
    }
}
