//! How a request's JSON body and `Idempotency-Key` header are judged. The ledger's axum
//! extractors and the edge's components both call these functions, so a bad request gets
//! the same status, `code` and field errors from either tier:
//!
//! - content type not `application/json` (or `…+json`) → 415 `unsupported_media_type`
//! - body over the limit → 413 `payload_too_large`
//! - JSON syntax error or truncated body → 400 `malformed_json`
//! - well-formed JSON of the wrong shape (missing, unknown or mistyped fields) → 422
//!   `validation_failed` with the failing field's path (`shows[0].starts_at`)
//! - `Idempotency-Key` missing → 400 `idempotency_key_required`; not visible ASCII or not
//!   a valid key → 422 `validation_failed` on field `Idempotency-Key`

use serde::de::DeserializeOwned;

use crate::ids::IdempotencyKey;
use crate::problem::{ErrorCode, FieldError, Problem};

/// The header's name, lower-case as HTTP/2 and the WASI host spell it.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// 415: the body is not declared as JSON.
pub fn unsupported_media_type() -> Problem {
    Problem::new(ErrorCode::UnsupportedMediaType).with_detail("send the body as application/json")
}

/// 413: the body exceeds the configured limit.
pub fn payload_too_large() -> Problem {
    Problem::new(ErrorCode::PayloadTooLarge).with_detail("the request body is too large")
}

/// 400: the body is not JSON at all.
pub fn malformed_json() -> Problem {
    Problem::new(ErrorCode::MalformedJson).with_detail("the body is not valid JSON")
}

/// Whether a `Content-Type` value declares JSON: `application/json` or any
/// `application/…+json`, parameters allowed. Absent or unparsable → no (axum's rule, which
/// the ledger applied before this function existed).
pub fn is_json_content_type(value: Option<&[u8]>) -> bool {
    let Some(text) = value.and_then(visible_ascii) else {
        return false;
    };
    let Ok(mime) = text.parse::<mime::Mime>() else {
        return false;
    };
    mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
}

/// Parses a JSON body into `T`, classifying failures as the module doc describes. Trailing
/// non-whitespace after the value is a syntax error.
// A `Problem` is what every caller renders on the (cold) error path; boxing it would only
// add an allocation.
#[allow(clippy::result_large_err)]
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(err) => {
            return match err.inner().classify() {
                serde_json::error::Category::Data => {
                    with_integral_floats(bytes).ok_or_else(|| data_error(&err.to_string()))
                }
                // Io cannot happen on a slice; treat it like a syntax error.
                _ => Err(malformed_json()),
            };
        }
    };
    deserializer.end().map_err(|_| malformed_json())?;
    Ok(value)
}

/// Largest float magnitude taken as an integer: up to 2^53 every integer is exactly a
/// float, beyond it `1e300` would only look like one.
const INTEGRAL_FLOAT_MAX: f64 = 9_007_199_254_740_992.0;

/// The body again with every integral float (`2.0`, `1e2`) read as the integer it equals:
/// JSON has one number type and JSON Schema's `integer` is any number without a fraction,
/// so the document's integer fields accept them. Tried only after the strict parse failed
/// on the body's shape (the common path pays nothing); `None` if it fails too, and the
/// caller reports the strict parse's error.
fn with_integral_floats<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    integral_floats_to_integers(&mut value);
    serde_json::from_value(value).ok()
}

fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() <= INTEGRAL_FLOAT_MAX {
                    // Exact: |f| <= 2^53 and integral, so the cast loses nothing.
                    #[allow(clippy::cast_possible_truncation)]
                    let integer = f as i64;
                    *value = Value::from(integer);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// A shape error as one field error. serde_path_to_error renders `path.to.field: what went
/// wrong`; the path becomes the field, or `body` when the error is about the whole value.
fn data_error(message: &str) -> Problem {
    let (field, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && path != "." => {
            (path.to_owned(), rest.to_owned())
        }
        _ => ("body".to_owned(), message.to_owned()),
    };
    Problem::validation(vec![FieldError::new(field, message)])
}

/// The required `Idempotency-Key` header, given its raw value if present.
#[allow(clippy::result_large_err)] // as `parse_json`
pub fn idempotency_key(value: Option<&[u8]>) -> Result<IdempotencyKey, Problem> {
    let Some(raw) = value else {
        return Err(Problem::new(ErrorCode::IdempotencyKeyRequired).with_detail(
            "send an Idempotency-Key header (a UUID is a good key) so retries are safe",
        ));
    };
    let field =
        |message: String| Problem::validation(vec![FieldError::new("Idempotency-Key", message)]);
    let text = visible_ascii(raw).ok_or_else(|| field("must be ASCII".to_owned()))?;
    IdempotencyKey::parse(text).map_err(|e| field(e.to_string()))
}

/// The header value as text if every byte is visible ASCII or a tab (what
/// `http::HeaderValue::to_str` accepts).
fn visible_ascii(raw: &[u8]) -> Option<&str> {
    if raw.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        std::str::from_utf8(raw).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holds::HoldRequest;

    #[test]
    fn content_types_follow_the_json_rule() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=utf-8",
            "application/problem+json",
        ] {
            assert!(is_json_content_type(Some(ok.as_bytes())), "{ok}");
        }
        for bad in [
            "text/json",
            "application/xml",
            "",
            "json",
            "application/json\u{1}",
        ] {
            assert!(!is_json_content_type(Some(bad.as_bytes())), "{bad}");
        }
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_are_422_with_the_field() {
        let code = |body: &str| parse_json::<HoldRequest>(body.as_bytes()).map_err(|p| p.code);
        assert_eq!(code("{").err(), Some(ErrorCode::MalformedJson));
        assert_eq!(code("").err(), Some(ErrorCode::MalformedJson));
        assert_eq!(
            code(r#"{"show_id":"a","zone_id":"b","quantity":1,"customer_id":"c"} x"#).err(),
            Some(ErrorCode::MalformedJson)
        );
        let p = parse_json::<HoldRequest>(
            br#"{"show_id":"a","zone_id":"b","quantity":"two","customer_id":"c"}"#,
        )
        .expect_err("mistyped");
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "quantity");
        let p = parse_json::<HoldRequest>(b"[]").expect_err("not an object");
        assert_eq!(p.code, ErrorCode::ValidationFailed);
        assert_eq!(p.errors[0].field, "body");
        assert!(parse_json::<HoldRequest>(
            br#"{"show_id":"a","zone_id":"b","quantity":1,"customer_id":"c"}"#
        )
        .is_ok());
    }

    #[test]
    #[allow(clippy::result_large_err)] // as `parse_json`
    fn integral_floats_are_integers_and_fractions_are_not() {
        let quantity = |q: &str| {
            let body =
                format!(r#"{{"show_id":"a","zone_id":"b","quantity":{q},"customer_id":"c"}}"#);
            parse_json::<HoldRequest>(body.as_bytes()).map(|r| r.quantity.unwrap_or(-1))
        };
        assert_eq!(quantity("2.0").ok(), Some(2));
        assert_eq!(quantity("1e2").ok(), Some(100));
        assert_eq!(quantity("-0.0").ok(), Some(0));
        // Read exactly (serde_json's `float_roundtrip`): the default fast path reads
        // 1849632650968169.0 as ...168.8, which no longer looks integral (schemathesis found it).
        assert_eq!(
            quantity("-1849632650968169.0").ok(),
            Some(-1_849_632_650_968_169)
        );
        let seats = br#"{"show_id":"a","zone_id":"b","seats":[290164.0,-1849632650968169.0],"customer_id":"c"}"#;
        assert_eq!(
            parse_json::<HoldRequest>(seats).ok().and_then(|r| r.seats),
            Some(vec![290_164, -1_849_632_650_968_169])
        );
        for bad in ["2.5", "1e300"] {
            let p = quantity(bad).expect_err(bad);
            assert_eq!(
                (p.status, p.errors[0].field.as_str()),
                (422, "quantity"),
                "{bad}"
            );
            assert!(p.errors[0].message.contains("floating point"), "{bad}");
        }
    }

    #[test]
    fn idempotency_key_missing_is_400_malformed_is_422() {
        assert_eq!(
            idempotency_key(None).map_err(|p| p.code).err(),
            Some(ErrorCode::IdempotencyKeyRequired)
        );
        let p = idempotency_key(Some("ключ".as_bytes())).expect_err("non-ascii");
        assert_eq!(
            (p.status, p.errors[0].message.as_str()),
            (422, "must be ASCII")
        );
        let p = idempotency_key(Some(b"a b")).expect_err("space");
        assert_eq!(p.errors[0].field, "Idempotency-Key");
        assert_eq!(
            idempotency_key(Some(b"k-1")).map(|k| k.as_str().to_owned()),
            Ok("k-1".to_owned())
        );
    }
}
