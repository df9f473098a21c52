//! RFC 9457 problem details (`application/problem+json`) with Tessera's stable `code`s.
//! Clients branch on `code`; `title` and `detail` are for people and may change.

use serde::{Deserialize, Serialize};

/// The media type of every error response (RFC 9457 §3).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Every error a client can receive, edge or ledger. The string form is the stable API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or a parameter failed validation (422).
    ValidationFailed,
    /// The body is not JSON or not an object (400).
    MalformedJson,
    /// The body exceeds the size limit (413).
    PayloadTooLarge,
    /// The body is not `application/json` (415).
    UnsupportedMediaType,
    /// `Idempotency-Key` missing where required (400).
    IdempotencyKeyRequired,
    /// The same `Idempotency-Key` was used with another body (422).
    IdempotencyConflict,
    /// A request with this key is still being processed (409).
    IdempotencyInProgress,
    NotFound,
    MethodNotAllowed,
    /// The zone has no stock left (409).
    SoldOut,
    /// The zone has stock, but less than requested (409).
    InsufficientStock,
    /// Quantity outside the zone's min/max per order (422).
    QuantityOutOfRange,
    /// The customer would exceed the event's per-customer limit (409).
    CustomerLimitExceeded,
    /// The show's sale has not opened yet (409).
    SaleNotStarted,
    /// The show's sale has closed (409).
    SaleEnded,
    /// The event is not on sale (draft or cancelled) (409).
    EventNotOnSale,
    /// The hold lapsed before it was confirmed (409).
    HoldExpired,
    /// The hold is not in a state that allows this (409), e.g. confirming a released hold.
    HoldNotActive,
    /// Edit conflicts with current state, e.g. capacity below held + sold (409).
    Conflict,
    /// Missing or invalid bearer token (401).
    Unauthorized,
    /// The token's tenant does not own this resource (403).
    Forbidden,
    /// Too many requests from this client (429).
    RateLimited,
    /// The ledger is shedding load; retry after `Retry-After` (503).
    Overloaded,
    /// A dependency is down (503).
    Unavailable,
    /// A bug or an unexpected failure; details are in the server log, never here (500).
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson | IdempotencyKeyRequired => 400,
            Unauthorized => 401,
            Forbidden => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            SoldOut
            | InsufficientStock
            | CustomerLimitExceeded
            | SaleNotStarted
            | SaleEnded
            | EventNotOnSale
            | HoldExpired
            | HoldNotActive
            | Conflict
            | IdempotencyInProgress => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            ValidationFailed | IdempotencyConflict | QuantityOutOfRange => 422,
            RateLimited => 429,
            Internal => 500,
            Overloaded | Unavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            ValidationFailed => "validation_failed",
            MalformedJson => "malformed_json",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            IdempotencyKeyRequired => "idempotency_key_required",
            IdempotencyConflict => "idempotency_conflict",
            IdempotencyInProgress => "idempotency_in_progress",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            SoldOut => "sold_out",
            InsufficientStock => "insufficient_stock",
            QuantityOutOfRange => "quantity_out_of_range",
            CustomerLimitExceeded => "customer_limit_exceeded",
            SaleNotStarted => "sale_not_started",
            SaleEnded => "sale_ended",
            EventNotOnSale => "event_not_on_sale",
            HoldExpired => "hold_expired",
            HoldNotActive => "hold_not_active",
            Conflict => "conflict",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            RateLimited => "rate_limited",
            Overloaded => "overloaded",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }

    /// A short, stable, human summary (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        use ErrorCode::*;
        match self {
            ValidationFailed => "The request is not valid",
            MalformedJson => "The body is not valid JSON",
            PayloadTooLarge => "The body is too large",
            UnsupportedMediaType => "The body must be application/json",
            IdempotencyKeyRequired => "An Idempotency-Key header is required",
            IdempotencyConflict => "The Idempotency-Key was used with a different request",
            IdempotencyInProgress => "A request with this Idempotency-Key is in progress",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            SoldOut => "Sold out",
            InsufficientStock => "Not enough tickets left",
            QuantityOutOfRange => "Quantity outside the allowed range",
            CustomerLimitExceeded => "Ticket limit per customer reached",
            SaleNotStarted => "The sale has not started",
            SaleEnded => "The sale has ended",
            EventNotOnSale => "The event is not on sale",
            HoldExpired => "The hold has expired",
            HoldNotActive => "The hold is no longer active",
            Conflict => "The change conflicts with the current state",
            Unauthorized => "Authentication required",
            Forbidden => "Not allowed for this tenant",
            RateLimited => "Too many requests",
            Overloaded => "Too busy, retry shortly",
            Unavailable => "A dependency is unavailable",
            Internal => "Internal error",
        }
    }
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON pointer-ish path of the field, e.g. `quantity` or `shows[0].zones[1].capacity`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// An RFC 9457 problem details object with Tessera's extension members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type; `about:blank`-style tag URIs keyed by `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code (extension member).
    pub code: ErrorCode,
    /// Per-field validation errors (extension member).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Which tier answered: `ledger` or `edge` (extension member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

impl Problem {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            type_uri: format!(
                "https://tessera.dev/problems/{}",
                code.as_str().replace('_', "-")
            ),
            title: code.title().to_owned(),
            status: code.status(),
            detail: None,
            code,
            errors: Vec::new(),
            served_by: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// 422 `validation_failed` listing `errors`, with a detail naming the fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("invalid fields: {}", fields.join(", "));
        Self::new(ErrorCode::ValidationFailed)
            .with_detail(detail)
            .with_errors(errors)
    }

    /// Marks which tier answered (`edge` or `ledger`).
    pub fn with_served_by(mut self, tier: &str) -> Self {
        self.served_by = Some(tier.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_strings() {
        for code in [
            ErrorCode::SoldOut,
            ErrorCode::IdempotencyConflict,
            ErrorCode::ValidationFailed,
        ] {
            let json = serde_json::to_value(code).expect("ser");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
        let p = Problem::new(ErrorCode::InsufficientStock).with_detail("2 left");
        let json = serde_json::to_value(&p).expect("ser");
        assert_eq!(json["status"], 409);
        assert_eq!(json["code"], "insufficient_stock");
        assert_eq!(
            json["type"],
            "https://tessera.dev/problems/insufficient-stock"
        );
        assert!(json.get("errors").is_none());
    }
}
