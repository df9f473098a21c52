//! Request bodies are read whole before a request counts as in flight: a client that
//! stalls its body holds its connection (bounded, see [`super::connections`]), never one
//! of the `REQUESTS_IN_FLIGHT_MAX` slots, and is answered `408 request_timeout` after
//! `BODY_READ_TIMEOUT_MS` (its slowness is its own fault, not the ledger's load).

use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tessera_domain::{body, ErrorCode};

use crate::error::ApiError;

/// How much of a body the ledger reads, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Middleware: the request with its body read whole, or the answer that refuses it (413
/// past the limit, the shared rule's problem; 408 past the timeout). A request without a
/// body (a GET) goes straight on.
pub async fn read_whole(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    // A declared length past the limit is refused before any of the body is read (or a
    // `100 Continue` invites it).
    if declared_length(&request).is_some_and(|length| length > limits.max_bytes as u64) {
        return payload_too_large();
    }
    let (parts, incoming) = request.into_parts();
    let limited = Limited::new(incoming, limits.max_bytes);
    match tokio::time::timeout(limits.read_timeout, limited.collect()).await {
        Ok(Ok(collected)) => {
            let body = Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => payload_too_large(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body broken off");
            ApiError::client(
                ErrorCode::MalformedJson,
                "the request body could not be read",
            )
            .into_response()
        }
        Err(_) => request_timeout(limits.read_timeout),
    }
}

/// The `Content-Length` the client declared, if any (hyper has checked it is a number).
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// 413 with the shared rule's problem (the one the edge answers too).
fn payload_too_large() -> Response {
    let problem = body::payload_too_large();
    ApiError::client(problem.code, problem.detail.unwrap_or_default()).into_response()
}

/// 408, closing the connection (RFC 9110 §15.5.9): the rest of the body may still be on
/// its way.
fn request_timeout(timeout: Duration) -> Response {
    let detail = format!(
        "the request body did not arrive within {} ms",
        timeout.as_millis()
    );
    let mut response = ApiError::client(ErrorCode::RequestTimeout, detail).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
