//! Request extractors whose rejections are problem+json with stable codes, instead of
//! axum's plain-text defaults: a client always learns which field was wrong.

use std::str::FromStr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use tessera_domain::ids::IdError;
use tessera_domain::{ErrorCode, FieldError, IdempotencyKey};

use crate::error::{ApiError, ApiResult};

/// A JSON body. Syntax errors → 400 `malformed_json`, shape errors (missing, unknown or
/// mistyped fields) → 422 `validation_failed`, too large → 413, wrong media type → 415.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::client(ErrorCode::PayloadTooLarge, "the request body is too large");
    }
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // axum reports the failing path (e.g. `shows[0].starts_at: …`) in the source.
            let message =
                std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string());
            // serde_path_to_error's form is `path.to.field: what went wrong`.
            let (field, message) = match message.split_once(": ") {
                Some((path, rest)) if !path.contains(' ') && path != "." => {
                    (path.to_owned(), rest.to_owned())
                }
                _ => ("body".to_owned(), message),
            };
            ApiError::Validation(vec![FieldError::new(field, message)])
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::client(ErrorCode::MalformedJson, "the body is not valid JSON")
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::client(
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ),
        other => ApiError::client(ErrorCode::MalformedJson, other.body_text()),
    }
}

/// Query parameters; bad ones → 422 `validation_failed`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
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
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The required `Idempotency-Key` header: missing → 400 `idempotency_key_required`,
/// malformed → 422 `validation_failed`.
pub struct IdempotencyKeyHeader(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY_HEADER) else {
            return Err(ApiError::client(
                ErrorCode::IdempotencyKeyRequired,
                "send an Idempotency-Key header (a UUID is a good key) so retries are safe",
            ));
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::field("Idempotency-Key", "must be ASCII"))?;
        IdempotencyKey::parse(text)
            .map(Self)
            .map_err(|e| ApiError::field("Idempotency-Key", e))
    }
}
