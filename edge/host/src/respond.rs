//! Responses the host writes itself: problem+json when no component answered (no route,
//! shed, a body past the limit or too slow, a failed guest), and the operations endpoints'
//! text.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tessera_domain::{ErrorCode, Problem};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::body::full;

// Who answered, in the header the components also set (`edge` or `ledger`).
use tessera_domain::SERVED_BY_HEADER as SERVED_BY;

pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    response
}

/// A problem+json answered by the host itself (no component ran, or it failed), with the
/// headers every tier sends with it ([`Problem::headers`]).
pub fn problem(mut problem: Problem) -> Response<HyperOutgoingBody> {
    problem.served_by = Some("edge".into());
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in problem.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers.insert(SERVED_BY, HeaderValue::from_static("edge"));
    response
}

/// 503 + Retry-After: every instance slot is busy.
pub fn at_instance_limit() -> Response<HyperOutgoingBody> {
    problem(
        Problem::new(ErrorCode::Overloaded)
            .with_detail("the edge node is at its instance limit; retry shortly"),
    )
}

/// 413: the request body is larger than the node accepts.
pub fn payload_too_large(max_bytes: u64) -> Response<HyperOutgoingBody> {
    problem(
        Problem::new(ErrorCode::PayloadTooLarge)
            .with_detail(format!("request bodies are limited to {max_bytes} bytes")),
    )
}

/// 408: the client did not send its body in time. The connection closes after the answer
/// (RFC 9110 §15.5.9): the rest of the body may still be on its way.
pub fn request_timeout(timeout: std::time::Duration) -> Response<HyperOutgoingBody> {
    let mut response = problem(Problem::new(ErrorCode::RequestTimeout).with_detail(format!(
        "the request body did not arrive within {} ms",
        timeout.as_millis()
    )));
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 400: the client broke its body off (a reset, a malformed chunk).
pub fn body_unreadable() -> Response<HyperOutgoingBody> {
    problem(
        Problem::new(ErrorCode::MalformedJson).with_detail("the request body could not be read"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_problems_carry_the_shared_problem_headers() {
        for code in ErrorCode::ALL {
            let response = problem(Problem::new(code));
            assert_eq!(response.status().as_u16(), code.status(), "{code:?}");
            for (name, value) in Problem::new(code).headers() {
                assert_eq!(response.headers()[name], value.as_str(), "{code:?}: {name}");
            }
            assert_eq!(
                response.headers().contains_key(hyper::header::RETRY_AFTER),
                code.retry_after_seconds().is_some(),
                "{code:?}"
            );
            assert_eq!(response.headers()[SERVED_BY], "edge");
        }
    }
}
