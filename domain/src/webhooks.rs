//! Webhooks (DESIGN.md "Organizers and integrations", invariant 11): the integration events
//! Tessera tells organizers' systems about, the registration request, and the signature a
//! receiver checks.
//!
//! A delivery is `POST <url>` with `{"id", "type", "created_at", "data"}` and the header
//! `Tessera-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
//! as Stripe signs: the receiver recomputes it over the raw bytes with the endpoint's secret
//! and refuses a timestamp outside its tolerance, so a captured delivery cannot be replayed
//! later. [`verify`] is exactly that check (the tests' receiver uses it).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::problem::FieldError;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Tessera-Signature";
/// The header naming the event (the receiver deduplicates by it: delivery is at least once).
pub const EVENT_ID_HEADER: &str = "Tessera-Event-Id";
/// Longest endpoint URL.
pub const URL_CHARS_MAX: usize = 2_048;
/// A receiver's default tolerance for the signature's timestamp.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;
/// Bytes of random secret per endpoint (hex-encoded when shown).
pub const SECRET_BYTES: usize = 32;

/// What happened: each integration event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "refund.due")]
    RefundDue,
    #[serde(rename = "refund.completed")]
    RefundCompleted,
    #[serde(rename = "ticket.checked_in")]
    TicketCheckedIn,
    #[serde(rename = "hold.expired")]
    HoldExpired,
    #[serde(rename = "event.published")]
    EventPublished,
    #[serde(rename = "event.cancelled")]
    EventCancelled,
}

impl EventType {
    pub const ALL: [Self; 8] = [
        Self::OrderConfirmed,
        Self::OrderCancelled,
        Self::RefundDue,
        Self::RefundCompleted,
        Self::TicketCheckedIn,
        Self::HoldExpired,
        Self::EventPublished,
        Self::EventCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderConfirmed => "order.confirmed",
            Self::OrderCancelled => "order.cancelled",
            Self::RefundDue => "refund.due",
            Self::RefundCompleted => "refund.completed",
            Self::TicketCheckedIn => "ticket.checked_in",
            Self::HoldExpired => "hold.expired",
            Self::EventPublished => "event.published",
            Self::EventCancelled => "event.cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

crate::catalog::stored_as_text!(EventType, "integration event type", |text| {
    EventType::parse(text)
});

/// What a receiver gets (the body it verifies byte for byte).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// `POST /admin/v1/webhooks`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST: `http` or `https`, no credentials or fragment in it; it must
    /// resolve to a public address (unless the operator allows private ones).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 2048,
            pattern = r"^https?://[^\s@#/?\u0000-\u001F\u007F-\u009F]+([/?][^\s#\u0000-\u001F\u007F-\u009F]*)?$"
        )
    )]
    pub url: String,
    /// The event types it wants (at least one).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 8))]
    pub events: Vec<EventType>,
}

/// A registration as parsed: the URL's scheme, host and port checked, the types deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidWebhook {
    pub url: String,
    pub host: String,
    pub events: Vec<EventType>,
}

impl NewWebhook {
    pub fn parse(&self) -> Result<ValidWebhook, Vec<FieldError>> {
        let mut errors = Vec::new();
        let host = match endpoint_host(&self.url) {
            Ok(host) => host,
            Err(message) => {
                errors.push(FieldError::new("url", message));
                String::new()
            }
        };
        let mut events = self.events.clone();
        events.sort_unstable();
        events.dedup();
        if events.is_empty() {
            errors.push(FieldError::new("events", "name at least one event type"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ValidWebhook {
            url: self.url.clone(),
            host,
            events,
        })
    }
}

/// The host of an endpoint URL, or why it cannot be one: `http(s)://host[:port]/…`, no
/// user or password, no fragment, bounded, no control characters or spaces.
pub fn endpoint_host(url: &str) -> Result<String, &'static str> {
    if url.chars().count() > URL_CHARS_MAX {
        return Err("at most 2048 characters");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters");
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an http:// or https:// URL")?;
    if url.contains('#') {
        return Err("must not have a fragment");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry a user or password");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    if host.is_empty() {
        return Err("must name a host");
    }
    Ok(host.to_ascii_lowercase())
}

type HmacSha256 = Hmac<Sha256>;

/// The signature header for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex(&mac))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why a delivery does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no `t=…,v1=…` signature header")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance (a replay, or a clock off)")]
    Stale,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// A receiver's check: `header` signs `body` with `secret`, at a time within
/// `tolerance_seconds` of `now`. Compared in constant time.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v1)) => signatures.extend(unhex(v1)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now.timestamp() - timestamp).abs() > tolerance_seconds {
        return Err(SignatureError::Stale);
    }
    signatures
        .iter()
        .any(|signature| mac(secret, timestamp, body).verify_slice(signature).is_ok())
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

/// A new endpoint secret: `whsec_` and 64 hex digits from `random` (the caller's CSPRNG).
pub fn new_secret(random: [u8; SECRET_BYTES]) -> String {
    format!("whsec_{}", hex(&random))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_tampered_body_or_old_timestamp_does_not() {
        let secret = new_secret([9; SECRET_BYTES]);
        let now = DateTime::from_timestamp(2_000_000_000, 0).expect("t");
        let body = br#"{"id":"x","type":"order.confirmed"}"#;
        let header = sign(&secret, now.timestamp(), body);
        assert_eq!(verify(&secret, &header, body, now, 300), Ok(()));
        assert_eq!(
            verify(&secret, &header, b"{\"id\":\"y\"}", now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_other", &header, body, now, 300),
            Err(SignatureError::Mismatch)
        );
        let later = now + chrono::Duration::seconds(301);
        assert_eq!(
            verify(&secret, &header, body, later, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&secret, "v1=00", body, now, 300),
            Err(SignatureError::Malformed)
        );
        // A known vector: HMAC-SHA256 of "1.x" under "k" (Python's hmac module agrees).
        assert_eq!(
            sign("k", 1, b"x"),
            "t=1,v1=976cb87e4f568d1c0f03f32859e90af8597cf00b978ba37c229c97d3a15b8449"
        );
    }

    #[test]
    fn endpoints_are_http_urls_without_credentials() {
        assert_eq!(
            endpoint_host("https://Hooks.Example.com:8443/t?x=1"),
            Ok("hooks.example.com".into())
        );
        assert_eq!(endpoint_host("http://[::1]:9000/"), Ok("::1".into()));
        assert_eq!(
            endpoint_host("http://127.0.0.1:9000"),
            Ok("127.0.0.1".into())
        );
        for bad in [
            "ftp://x/",
            "https://user:pw@x/",
            "http:///x",
            "https://x/#f",
            "https://x y/",
            "x",
        ] {
            assert!(endpoint_host(bad).is_err(), "{bad}");
        }
        let parsed = NewWebhook {
            url: "https://x.example/hook".into(),
            events: vec![
                EventType::RefundDue,
                EventType::OrderConfirmed,
                EventType::RefundDue,
            ],
        }
        .parse()
        .expect("valid");
        assert_eq!(
            parsed.events,
            [EventType::OrderConfirmed, EventType::RefundDue]
        );
        assert!(NewWebhook {
            url: "https://x/".into(),
            events: vec![]
        }
        .parse()
        .is_err());
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).expect("ser"), t.as_str());
        }
    }
}

/// A delivery's state: `pending` until the receiver answers 2xx (`delivered`) or its
/// retries run past the endpoint's bounded age (`dead`, kept until redelivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

crate::catalog::stored_as_text!(DeliveryStatus, "webhook delivery status", |text| {
    DeliveryStatus::parse(text)
});

/// A registered endpoint, as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub webhook_id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
}

/// `POST /admin/v1/webhooks`' answer: the endpoint and its signing secret, shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Verify deliveries with it (see [`verify`]); it is not shown again.
    pub secret: String,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Past it, a failing delivery is dead instead of retried.
    pub give_up_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i16>,
    /// Why the last attempt failed (refused, timed out, blocked address, status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}
