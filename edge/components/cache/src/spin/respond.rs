//! Building and sending responses. Every edge-made response carries `Tessera-Served-By:
//! edge`; answers relayed from the ledger carry `ledger`.

use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse, Response, ResponseOutparam};
use tessera_domain::{ErrorCode, Problem};

use crate::problem;

pub use tessera_domain::CACHE_HEADER as CACHE;
pub use tessera_domain::SERVED_BY_HEADER as SERVED_BY;

/// A problem answered by the edge, with the headers every tier's problems carry
/// ([`Problem::headers`]: media type, `Retry-After`, the 401 challenge).
pub fn problem(problem: &Problem) -> Response {
    let mut builder = Response::builder();
    builder.status(problem.status).header(SERVED_BY, "edge");
    for (name, value) in problem.headers() {
        builder.header(name, value);
    }
    builder.body(problem::body(problem)).build()
}

/// A problem from the shared rules, marked as the edge's.
pub fn rules_problem(p: Problem) -> Response {
    problem(&problem::from_rules(p))
}

/// 500 `internal` after logging why (a misconfiguration or an impossible state).
pub fn internal(log: &str) -> Response {
    eprintln!("tessera edge: {log}");
    problem(&problem::edge(
        ErrorCode::Internal,
        "the edge is misconfigured; see its log",
    ))
}

/// 405 with the methods the route accepts.
pub fn method_not_allowed(allow: &str) -> Response {
    let mut response = problem(&problem::edge(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    ));
    response.set_header("allow", allow);
    response
}

/// 404 for a path no component route matches.
pub fn no_route() -> Response {
    problem(&problem::edge(ErrorCode::NotFound, "no such route"))
}

/// The ledger could not be reached (or answered unreadably).
pub fn unavailable(detail: &str) -> Response {
    problem(&problem::edge(ErrorCode::Unavailable, detail))
}

/// A path segment parsed into a typed id; a malformed id is 422 `validation_failed` naming
/// `field` (as at the ledger), not 404.
pub fn path_id<T: std::str::FromStr<Err = tessera_domain::ids::IdError>>(
    field: &str,
    raw: &str,
) -> Result<T, Response> {
    raw.parse().map_err(|e: tessera_domain::ids::IdError| {
        rules_problem(Problem::validation(vec![tessera_domain::FieldError::new(
            field, e,
        )]))
    })
}

/// The most one `blocking-write-and-flush` may carry (WASI 0.2 `output-stream`).
const WRITE_CHUNK_BYTES_MAX: usize = 4096;

/// Sends `status`, `headers` and `body` through `out` in the fewest host calls wasi-http
/// allows: the fields in one list, the body in one blocking write per 4 KiB. (spin-sdk's
/// own path for a returned `Response` writes through a sink that asks `check-write`,
/// `write`, `flush` and the poll per chunk.) Cache hits pass slices of the stored entry.
pub fn send(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
        .collect();
    let response = match Fields::from_list(&fields) {
        Ok(fields) => OutgoingResponse::new(fields),
        Err(e) => {
            // Only a bug here makes a header invalid: answer 500 without them.
            eprintln!("tessera edge: invalid response headers: {e:?}");
            return send(out, 500, &[], &[]);
        }
    };
    // A new response is 200 already (wasi:http/types): one call fewer on every hit.
    if status != 200 && response.set_status_code(status).is_err() {
        eprintln!("tessera edge: invalid response status {status}");
        return send(out, 500, &[], &[]);
    }
    let Ok(outgoing) = response.body() else {
        eprintln!("tessera edge: the response body was taken twice");
        return;
    };
    out.set(response);
    write_body(&outgoing, body);
    if let Err(e) = OutgoingBody::finish(outgoing, None) {
        eprintln!("tessera edge: finishing the response body: {e:?}");
    }
}

/// Writes `body` whole, or stops at the first error (the client went away: nothing to
/// answer any more).
fn write_body(outgoing: &OutgoingBody, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    let Ok(stream) = outgoing.write() else {
        eprintln!("tessera edge: the response body stream was taken twice");
        return;
    };
    for chunk in body.chunks(WRITE_CHUNK_BYTES_MAX) {
        if let Err(e) = stream.blocking_write_and_flush(chunk) {
            eprintln!("tessera edge: writing the response body: {e:?}");
            return;
        }
    }
}

/// Sends a built [`Response`] (problems, relayed answers) as [`send`] does.
pub fn send_response(out: ResponseOutparam, response: &Response) {
    let headers: Vec<(&str, &[u8])> = response
        .headers()
        .map(|(name, value)| (name, value.as_bytes()))
        .collect();
    send(out, *response.status(), &headers, response.body());
}
