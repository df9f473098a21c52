//! Building responses. Every edge-made response carries `Tessera-Served-By: edge`; answers
//! relayed from the ledger carry `ledger`.

use spin_sdk::http::Response;
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
