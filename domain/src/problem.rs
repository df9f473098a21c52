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
    /// Some requested seats are held, sold or blocked; `seats` lists them (409).
    SeatUnavailable,
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
    /// The client did not send its request body within the body-read timeout (408): the
    /// client's slowness, answered before any work was taken on.
    RequestTimeout,
    /// The event's on-sale is queued: a hold needs a valid admission pass for it
    /// (`Tessera-Pass`) (403).
    PassRequired,
    /// The admission pass already serves another buyer, or admitted as many holds as one
    /// pass may (403).
    PassUsedUp,
    /// The queue ticket is not one this deployment signed for this event (403).
    QueueTicketInvalid,
    /// The event has no queue on: buy directly (409).
    QueueOff,
}

/// Seconds a client told to come back (`Retry-After`, RFC 9110 §10.2.3) should wait.
/// One second: shedding and outages here are brief by design (bounded queues, reconnects
/// with backoff), and a client that retries sooner only lands in the same queue again.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 31] = {
        use ErrorCode::*;
        [
            ValidationFailed,
            MalformedJson,
            PayloadTooLarge,
            UnsupportedMediaType,
            IdempotencyKeyRequired,
            IdempotencyConflict,
            IdempotencyInProgress,
            NotFound,
            MethodNotAllowed,
            SoldOut,
            InsufficientStock,
            QuantityOutOfRange,
            CustomerLimitExceeded,
            SaleNotStarted,
            SaleEnded,
            EventNotOnSale,
            HoldExpired,
            HoldNotActive,
            Conflict,
            Unauthorized,
            Forbidden,
            RateLimited,
            Overloaded,
            Unavailable,
            Internal,
            RequestTimeout,
            SeatUnavailable,
            PassRequired,
            PassUsedUp,
            QueueTicketInvalid,
            QueueOff,
        ]
    };

    /// `Retry-After` seconds for the answers a client should simply retry: shed load (503
    /// `overloaded`), a dependency down (503 `unavailable`) and rate limits (429). Every
    /// tier renders problems through [`Problem::headers`], so the rule lives here once.
    pub fn retry_after_seconds(self) -> Option<u32> {
        use ErrorCode::*;
        match self {
            Overloaded | Unavailable | RateLimited => Some(RETRY_AFTER_SECONDS),
            _ => None,
        }
    }

    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson | IdempotencyKeyRequired => 400,
            Unauthorized => 401,
            Forbidden | PassRequired | PassUsedUp | QueueTicketInvalid => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            SoldOut
            | InsufficientStock
            | SeatUnavailable
            | QueueOff
            | CustomerLimitExceeded
            | SaleNotStarted
            | SaleEnded
            | EventNotOnSale
            | HoldExpired
            | HoldNotActive
            | Conflict
            | IdempotencyInProgress => 409,
            RequestTimeout => 408,
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
            SeatUnavailable => "seat_unavailable",
            PassRequired => "pass_required",
            PassUsedUp => "pass_used_up",
            QueueTicketInvalid => "queue_ticket_invalid",
            QueueOff => "queue_off",
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
            RequestTimeout => "request_timeout",
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
            SeatUnavailable => "Some of these seats are no longer available",
            PassRequired => "This on-sale is queued: join the queue for an admission pass",
            PassUsedUp => "This admission pass cannot admit another hold",
            QueueTicketInvalid => "This queue ticket is not valid for this event",
            QueueOff => "This event has no queue: buy directly",
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
            RequestTimeout => "The request body did not arrive in time",
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
    /// `seat_unavailable`: the requested seats (indexes in the zone's layout) that were
    /// not free (extension member).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<i32>,
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
            seats: Vec::new(),
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

    pub fn with_seats(mut self, seats: Vec<i32>) -> Self {
        self.seats = seats;
        self
    }

    /// Marks which tier answered (`edge` or `ledger`).
    pub fn with_served_by(mut self, tier: &str) -> Self {
        self.served_by = Some(tier.to_owned());
        self
    }

    /// The headers every rendering of this problem carries, edge or ledger: the media type
    /// (RFC 9457 §3), `Retry-After` for answers worth retrying, and the
    /// `WWW-Authenticate` challenge a 401 must send (RFC 9110 §11.6.1).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("content-type", PROBLEM_CONTENT_TYPE.to_owned())];
        if let Some(seconds) = self.code.retry_after_seconds() {
            headers.push(("retry-after", seconds.to_string()));
        }
        if self.code == ErrorCode::Unauthorized {
            headers.push(("www-authenticate", "Bearer".to_owned()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_strings() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("ser");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            let back: ErrorCode = serde_json::from_value(json).expect("de");
            assert_eq!(back, code, "{code:?} round-trips");
            assert!(seen.insert(code.as_str()), "{code:?}: duplicate string");
            assert!((400..600).contains(&code.status()), "{code:?}: status");
        }
        // The published API: these strings never change.
        let published = [
            "validation_failed",
            "malformed_json",
            "payload_too_large",
            "unsupported_media_type",
            "idempotency_key_required",
            "idempotency_conflict",
            "idempotency_in_progress",
            "not_found",
            "method_not_allowed",
            "sold_out",
            "insufficient_stock",
            "quantity_out_of_range",
            "customer_limit_exceeded",
            "sale_not_started",
            "sale_ended",
            "event_not_on_sale",
            "hold_expired",
            "hold_not_active",
            "conflict",
            "unauthorized",
            "forbidden",
            "rate_limited",
            "overloaded",
            "unavailable",
            "internal",
            "request_timeout",
            "seat_unavailable",
            "pass_required",
            "pass_used_up",
            "queue_ticket_invalid",
            "queue_off",
        ];
        let strings: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(strings, published);
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

    /// `ALL` must list every variant: a match with no wildcard fails to compile when a
    /// variant is added, and the count pins the array to it.
    #[test]
    fn all_lists_every_code() {
        fn ordinal(code: ErrorCode) -> usize {
            use ErrorCode::*;
            match code {
                ValidationFailed => 0,
                MalformedJson => 1,
                PayloadTooLarge => 2,
                UnsupportedMediaType => 3,
                IdempotencyKeyRequired => 4,
                IdempotencyConflict => 5,
                IdempotencyInProgress => 6,
                NotFound => 7,
                MethodNotAllowed => 8,
                SoldOut => 9,
                InsufficientStock => 10,
                QuantityOutOfRange => 11,
                CustomerLimitExceeded => 12,
                SaleNotStarted => 13,
                SaleEnded => 14,
                EventNotOnSale => 15,
                HoldExpired => 16,
                HoldNotActive => 17,
                Conflict => 18,
                Unauthorized => 19,
                Forbidden => 20,
                RateLimited => 21,
                Overloaded => 22,
                Unavailable => 23,
                Internal => 24,
                RequestTimeout => 25,
                SeatUnavailable => 26,
                PassRequired => 27,
                PassUsedUp => 28,
                QueueTicketInvalid => 29,
                QueueOff => 30,
            }
        }
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(ordinal(code), i, "{code:?} out of place in ALL");
        }
    }

    #[test]
    fn retry_after_goes_with_shedding_outages_and_rate_limits_only() {
        for code in ErrorCode::ALL {
            let headers = Problem::new(code).headers();
            let retry = headers.iter().find(|(name, _)| *name == "retry-after");
            let expected = matches!(code.status(), 429 | 503);
            assert_eq!(retry.is_some(), expected, "{code:?}");
            assert_eq!(
                headers[0],
                ("content-type", PROBLEM_CONTENT_TYPE.to_owned())
            );
            let challenge = headers.iter().any(|(name, _)| *name == "www-authenticate");
            assert_eq!(challenge, code == ErrorCode::Unauthorized, "{code:?}");
        }
    }
}
