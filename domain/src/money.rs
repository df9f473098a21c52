//! Money is an integer amount of minor units plus an ISO 4217 code (invariant 6): never
//! floating point, so sums and refunds are exact.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, pattern = "^[A-Z]{3}$", example = "EUR")
)]
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

crate::catalog::stored_as_text!(Currency, "currency", |text| text.parse().ok());

/// Largest price of one ticket we accept, in minor units: 10 million major units. Bounds
/// `price × quantity` far below `i64::MAX`. The database holds the same bound as a `CHECK`
/// (`zone_price_max`, `hold_unit_price_max`); a ledger test keeps the two equal.
pub const PRICE_MINOR_MAX: i64 = 1_000_000_000;

/// An amount that does not fit in `i64` minor units. Unreachable with prices within
/// [`PRICE_MINOR_MAX`], so meeting it means a stored price broke that bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{unit_minor} × {quantity} minor units overflows an amount")]
pub struct AmountOverflow {
    pub unit_minor: i64,
    pub quantity: i32,
}

/// The price of `quantity` tickets at `unit_minor` each, checked: never a wrapped total.
pub fn line_total_minor(unit_minor: i64, quantity: i32) -> Result<i64, AmountOverflow> {
    unit_minor
        .checked_mul(i64::from(quantity))
        .ok_or(AmountOverflow {
            unit_minor,
            quantity,
        })
}

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

    #[test]
    fn line_totals_are_checked() {
        let most = crate::holds::QUANTITY_PER_ORDER_MAX;
        assert_eq!(
            line_total_minor(PRICE_MINOR_MAX, most),
            Ok(PRICE_MINOR_MAX * i64::from(most))
        );
        assert_eq!(line_total_minor(2500, 4), Ok(10_000));
        assert_eq!(
            line_total_minor(i64::MAX / 2 + 1, 2),
            Err(AmountOverflow {
                unit_minor: i64::MAX / 2 + 1,
                quantity: 2
            })
        );
    }
}
