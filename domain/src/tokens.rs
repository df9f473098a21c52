//! Tenants and their admin tokens (DESIGN.md "Organizers and integrations"): the request
//! and response shapes of `/admin/v1/tokens` and the rules the ledger's CLI
//! (`tessera-ledger tenant …`, `token …`) parses its arguments with, so both refuse the
//! same things with the same words.
//!
//! A token is [`TOKEN_PREFIX`] and [`TOKEN_RANDOM_CHARS`] characters of URL-safe base64
//! (256 random bits). It is shown once; the ledger keeps only its SHA-256 and its first
//! [`TOKEN_SHOWN_CHARS`] characters ([`shown_prefix`]), which name it in listings: 48
//! random bits tell a tenant's tokens apart but leave 208 to guess, so the prefix never
//! grants anything.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::single_line;
use crate::problem::FieldError;
use crate::{TenantId, TokenId};

/// What every admin token starts with (and what the `Authorization` check looks for).
pub const TOKEN_PREFIX: &str = "tsk_";
/// Base64 characters after [`TOKEN_PREFIX`]: 32 random bytes, no padding.
pub const TOKEN_RANDOM_CHARS: usize = 43;
/// Characters of a token kept and listed: the prefix and 8 random characters.
pub const TOKEN_SHOWN_CHARS: usize = TOKEN_PREFIX.len() + 8;
/// Longest token label, in characters (the `api_tokens.label` CHECK says the same).
pub const TOKEN_LABEL_CHARS_MAX: usize = 64;
/// Longest tenant name, in characters (the `tenants.name` CHECK says the same).
pub const TENANT_NAME_CHARS_MAX: usize = 200;
/// Shortest lifetime a token may be given: anything shorter expires before it is pasted.
pub const TOKEN_EXPIRES_IN_SECONDS_MIN: i64 = 60;
/// Longest lifetime a token may be given (a year); tokens that should live longer are
/// made without an expiry, so that choice is explicit.
pub const TOKEN_EXPIRES_IN_SECONDS_MAX: i64 = 365 * 24 * 60 * 60;

/// `POST /admin/v1/tokens`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (`box office laptop`), shown in listings.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub label: String,
    /// Seconds until the token stops working (60 to 31536000, a year); absent: it works
    /// until revoked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 31536000))]
    pub expires_in_seconds: Option<i64>,
}

/// A checked [`NewToken`] (or `token create`'s arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub label: TokenLabel,
    pub expires_in: Option<ExpiresIn>,
}

impl NewToken {
    /// The request, or every field that breaks a rule.
    pub fn parse(&self) -> Result<TokenRequest, Vec<FieldError>> {
        let label = TokenLabel::parse("label", &self.label);
        let expires_in = self
            .expires_in_seconds
            .map(|s| ExpiresIn::from_seconds("expires_in_seconds", s))
            .transpose();
        match (label, expires_in) {
            (Ok(label), Ok(expires_in)) => Ok(TokenRequest { label, expires_in }),
            (label, expires_in) => Err([label.err(), expires_in.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }
}

/// A token's label: one line, 1 to [`TOKEN_LABEL_CHARS_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLabel(String);

impl TokenLabel {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        single_line(field, text, TOKEN_LABEL_CHARS_MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's name: one line, 1 to [`TENANT_NAME_CHARS_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        single_line(field, text, TENANT_NAME_CHARS_MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a new token works: [`TOKEN_EXPIRES_IN_SECONDS_MIN`] to
/// [`TOKEN_EXPIRES_IN_SECONDS_MAX`] seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresIn(Duration);

/// The units `--expires-in` takes, in seconds.
const DURATION_UNITS: [(char, i64); 4] = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];

impl ExpiresIn {
    pub fn from_seconds(field: &str, seconds: i64) -> Result<Self, FieldError> {
        if (TOKEN_EXPIRES_IN_SECONDS_MIN..=TOKEN_EXPIRES_IN_SECONDS_MAX).contains(&seconds) {
            Ok(Self(Duration::seconds(seconds)))
        } else {
            Err(FieldError::new(
                field,
                format!(
                    "must be {TOKEN_EXPIRES_IN_SECONDS_MIN} to {TOKEN_EXPIRES_IN_SECONDS_MAX} seconds (1m to 365d)"
                ),
            ))
        }
    }

    /// A whole number and one unit, as people write it: `90m`, `12h`, `30d` (or `45s`).
    pub fn parse_human(field: &str, text: &str) -> Result<Self, FieldError> {
        let shape = || {
            FieldError::new(
                field,
                format!("expected a whole number and a unit s, m, h or d (e.g. 30d, 12h, 90m), got {text:?}"),
            )
        };
        let unit = text.chars().last().ok_or_else(shape)?;
        let number = &text[..text.len() - unit.len_utf8()];
        let per_unit = DURATION_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, seconds)| *seconds)
            .ok_or_else(shape)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(shape());
        }
        // Too many digits for an i64 is past the maximum too.
        let seconds = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .unwrap_or(i64::MAX);
        Self::from_seconds(field, seconds)
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

/// The part of `token` that is kept and listed ([`TOKEN_SHOWN_CHARS`] characters).
pub fn shown_prefix(token: &str) -> &str {
    // Tokens are ASCII; `get` keeps a malformed one from panicking.
    token.get(..TOKEN_SHOWN_CHARS).unwrap_or(token)
}

/// Whether `text` has the shape of a listed prefix (`tsk_` and 8 base64url characters).
pub fn is_shown_prefix(text: &str) -> bool {
    text.len() == TOKEN_SHOWN_CHARS
        && text.starts_with(TOKEN_PREFIX)
        && text[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A token, as listings show it: never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub token_id: TokenId,
    pub tenant_id: TenantId,
    pub label: String,
    /// The token's first 12 characters (`tsk_` and 8 more), to recognise it by; null for
    /// tokens made before prefixes were kept.
    pub prefix: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request (to the minute: recorded at most once a
    /// minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working; null: never (until revoked).
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Whether a token works at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenInfo {
    /// Revoked wins over expired: it is the organizer's own decision.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// `GET /admin/v1/tokens`: live tokens first, then the most recent expired and revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// A new token: shown here once, then only its [`TokenInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    /// `Authorization: Bearer <token>`. Store it now: it cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> Result<i64, FieldError> {
        ExpiresIn::parse_human("expires_in", text).map(|e| e.as_duration().num_seconds())
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(seconds("90m"), Ok(5_400));
        assert_eq!(seconds("12h"), Ok(43_200));
        assert_eq!(seconds("30d"), Ok(2_592_000));
        assert_eq!(seconds("60s"), Ok(60));
        assert_eq!(seconds("365d"), Ok(TOKEN_EXPIRES_IN_SECONDS_MAX));
    }

    #[test]
    fn durations_out_of_bounds_or_malformed_are_refused() {
        for text in [
            "",
            "d",
            "30",
            "30x",
            "-5m",
            "+5m",
            "1.5h",
            "5 m",
            "30D",
            "1m1s",
            "3é",
            "59s",
            "0m",
            "366d",
            "99999999999999999999d",
            "9223372036854775807d",
        ] {
            let error = seconds(text).expect_err(text);
            assert_eq!(error.field, "expires_in", "{text}");
        }
    }

    #[test]
    fn a_new_token_names_every_bad_field() {
        let bad = NewToken {
            label: " ".into(),
            expires_in_seconds: Some(TOKEN_EXPIRES_IN_SECONDS_MAX + 1),
        };
        let fields: Vec<String> = bad
            .parse()
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["label", "expires_in_seconds"]);
        let long = NewToken {
            label: "é".repeat(TOKEN_LABEL_CHARS_MAX),
            expires_in_seconds: None,
        };
        let parsed = long.parse().expect("64 characters, 128 bytes");
        assert_eq!(parsed.expires_in, None);
        let longer = NewToken {
            label: "é".repeat(TOKEN_LABEL_CHARS_MAX + 1),
            expires_in_seconds: None,
        };
        assert!(longer.parse().is_err());
    }

    #[test]
    fn the_shown_prefix_is_the_token_s_first_twelve_characters() {
        let token = format!("{TOKEN_PREFIX}{}", "A".repeat(TOKEN_RANDOM_CHARS));
        assert_eq!(shown_prefix(&token), "tsk_AAAAAAAA");
        assert!(is_shown_prefix(shown_prefix(&token)));
        assert!(!is_shown_prefix(&token));
        assert!(!is_shown_prefix("tsk_AAAAAAA"));
        assert!(!is_shown_prefix("tsk_AAAA/AAA"));
        assert!(!is_shown_prefix("xsk_AAAAAAAA"));
    }

    #[test]
    fn revoked_wins_over_expired() {
        let now = Utc::now();
        let mut info = TokenInfo {
            token_id: TokenId(uuid::Uuid::nil()),
            tenant_id: TenantId(uuid::Uuid::nil()),
            label: "l".into(),
            prefix: None,
            created_at: now,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        assert_eq!(info.state(now), TokenState::Active);
        info.expires_at = Some(now);
        assert_eq!(info.state(now), TokenState::Expired);
        info.revoked_at = Some(now);
        assert_eq!(info.state(now), TokenState::Revoked);
    }
}
