//! Request extractors whose rejections are problem+json with stable codes, instead of
//! axum's plain-text defaults: a client always learns which field was wrong.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use tessera_domain::body;
use tessera_domain::ids::IdError;
use tessera_domain::{ErrorCode, FieldError, IdempotencyKey, Problem};

use crate::error::{ApiError, ApiResult};

/// A JSON body, judged by the shared rules in [`tessera_domain::body`] (the edge applies
/// the same ones): wrong media type → 415, too large → 413, syntax errors → 400
/// `malformed_json`, shape errors (missing, unknown or mistyped fields) → 422
/// `validation_failed`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes());
        if !body::is_json_content_type(content_type) {
            return Err(from_problem(body::unsupported_media_type()));
        }
        // `Bytes` honours the router's `DefaultBodyLimit`.
        let bytes = match Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(from_problem(body::payload_too_large()))
            }
            Err(other) => {
                return Err(ApiError::client(
                    ErrorCode::MalformedJson,
                    other.body_text(),
                ))
            }
        };
        body::parse_json(&bytes).map(Self).map_err(from_problem)
    }
}

/// A problem from the shared rules as the ledger's error type (which renders it back
/// unchanged: validation problems keep their field errors).
fn from_problem(problem: Problem) -> ApiError {
    ApiError::from(problem)
}

/// Query parameters; bad ones → 422 `validation_failed`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(|raw| !query_is_utf8(raw)) {
            return Err(ApiError::field("query", "not valid percent-encoded UTF-8"));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::Validation(
                vec![FieldError::new("query", e.body_text())],
            )),
            Err(other) => Err(ApiError::Validation(vec![FieldError::new(
                "query",
                other.body_text(),
            )])),
        }
    }
}

/// Whether the raw query decodes to UTF-8. axum's `Query` decodes lossily (`%FF` becomes
/// U+FFFD), so without this a malformed filter would silently become another filter.
fn query_is_utf8(raw: &str) -> bool {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .is_ok()
}

/// Path parameters; a segment that is not valid percent-encoded UTF-8 → 422 (axum's own
/// rejection would be plain text).
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::field("path", rejection.body_text())),
        }
    }
}

/// Parses a path segment into a typed id; a malformed id is 422, not 404 or 500.
pub fn path_id<T: FromStr<Err = IdError>>(field: &str, raw: &str) -> ApiResult<T> {
    raw.parse().map_err(|e: IdError| ApiError::field(field, e))
}

/// The name of the header (RFC draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY_HEADER: &str = body::IDEMPOTENCY_KEY_HEADER;

/// The required `Idempotency-Key` header ([`body::idempotency_key`]): missing → 400
/// `idempotency_key_required`, malformed → 422 `validation_failed`.
pub struct IdempotencyKeyHeader(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(IDEMPOTENCY_KEY_HEADER)
            .map(|v| v.as_bytes());
        body::idempotency_key(value).map(Self).map_err(from_problem)
    }
}

/// Whether the request's `If-None-Match` names `etag` (or is `*`), comparing weakly
/// (`W/"x"` matches `"x"`): then the answer is a bodiless 304. An unreadable header
/// matches nothing (the full answer is always safe).
pub fn if_none_match(headers: &axum::http::HeaderMap, etag: &axum::http::HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes())
}
