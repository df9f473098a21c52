//! Identifiers. Entity ids are UUIDs wrapped in their own type so a `ZoneId` can never be
//! passed where a `ShowId` is expected; customer ids and idempotency keys are client-chosen
//! strings with a bounded length and alphabet (they end up in indexes and logs).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be a UUID (e.g. 0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01)")]
    NotUuid,
    #[error("must be 1 to {max} characters")]
    Length { max: usize },
    #[error("may contain only letters, digits and - _ . : @")]
    Alphabet,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                // Only the hyphenated form: ids appear in URLs and must have one spelling,
                // or caches keyed by them would split.
                if s.len() != 36 {
                    return Err(IdError::NotUuid);
                }
                Uuid::parse_str(s).map(Self).map_err(|_| IdError::NotUuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A tenant: an organiser that owns venues and events.
    TenantId
);
uuid_id!(
    /// A venue.
    VenueId
);
uuid_id!(
    /// An event (a concert, a match): owns shows.
    EventId
);
uuid_id!(
    /// One performance of an event, with its own sale window.
    ShowId
);
uuid_id!(
    /// A priced area of a show with its own stock.
    ZoneId
);
uuid_id!(
    /// A hold: stock taken for a customer until it is confirmed, released or expires.
    HoldId
);
uuid_id!(
    /// An issued ticket.
    TicketId
);
uuid_id!(
    /// An admin token's public id (for listing and revoking; never the token itself).
    TokenId
);

/// Longest customer id we accept; fits any external account id or email.
pub const CUSTOMER_ID_LEN_MAX: usize = 64;
/// Longest idempotency key; a UUID is 36, this leaves room for prefixed keys.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

fn check_token(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() || s.len() > max {
        return Err(IdError::Length { max });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@');
    if !s.chars().all(allowed) {
        return Err(IdError::Alphabet);
    }
    Ok(())
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_token(s, $max)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_id!(
    /// The buyer, as identified by the storefront (account id, email, …).
    CustomerId,
    CUSTOMER_ID_LEN_MAX
);
token_id!(
    /// The client's `Idempotency-Key` header: same key and body → same result.
    IdempotencyKey,
    IDEMPOTENCY_KEY_LEN_MAX
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_parse_only_the_hyphenated_form() {
        let text = "0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01";
        let id: ZoneId = text.parse().expect("valid");
        assert_eq!(id.to_string(), text);
        assert_eq!(
            "0192f0c47d3e7b6a9c1e3f5a2b8c9d01".parse::<ZoneId>(),
            Err(IdError::NotUuid)
        );
        assert_eq!("zone-1".parse::<ZoneId>(), Err(IdError::NotUuid));
        assert_eq!("".parse::<ZoneId>(), Err(IdError::NotUuid));
    }

    #[test]
    fn tokens_bound_length_and_alphabet() {
        assert!(CustomerId::parse("cust_42@example.com").is_ok());
        assert_eq!(
            CustomerId::parse(""),
            Err(IdError::Length {
                max: CUSTOMER_ID_LEN_MAX
            })
        );
        assert_eq!(
            CustomerId::parse(&"a".repeat(65)),
            Err(IdError::Length {
                max: CUSTOMER_ID_LEN_MAX
            })
        );
        assert_eq!(CustomerId::parse("a b"), Err(IdError::Alphabet));
        assert_eq!(IdempotencyKey::parse("ключ"), Err(IdError::Alphabet));
        let key: Result<IdempotencyKey, _> = serde_json::from_str("\"k 1\"");
        assert!(key.is_err());
    }
}
