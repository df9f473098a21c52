//! Money is an integer amount of minor units plus an ISO 4217 code (invariant 6): never
//! floating point, so sums and refunds are exact.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "EUR"))]
#[serde(into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an ISO 4217 code of three upper-case letters, e.g. EUR")]
pub struct CurrencyError;

impl Currency {
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII upper-case letters, so always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, CurrencyError> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(CurrencyError),
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Largest price of one ticket we accept, in minor units: 10 million major units. Bounds
/// `price × quantity` far below `i64::MAX`.
pub const PRICE_MINOR_MAX: i64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert_eq!(
            "EUR".parse::<Currency>().map(|c| c.to_string()),
            Ok("EUR".to_owned())
        );
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert_eq!(bad.parse::<Currency>(), Err(CurrencyError), "{bad}");
        }
        let json = serde_json::to_string(&"GBP".parse::<Currency>().expect("valid")).expect("ser");
        assert_eq!(json, "\"GBP\"");
    }
}
