//! The one error type of the HTTP API. Every failure becomes RFC 9457 problem+json with a
//! stable `code`; unexpected failures become a generic 500 whose detail goes to the log,
//! never to the client.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_domain::holds::Rejection;
use tessera_domain::{ErrorCode, FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error with a stable code and a sentence for people.
    #[error("{code:?}: {detail}")]
    Client { code: ErrorCode, detail: String },
    /// A hold rule's refusal, with whatever it names (the seats not free).
    #[error("{0:?}")]
    Rejected(Rejection),
    /// Field-level validation failures (422 `validation_failed`).
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// Too busy: 503 with `Retry-After`.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A problem the shared rules decided (`tessera_domain`), answered as it is.
impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        match problem.code {
            ErrorCode::ValidationFailed => Self::Validation(problem.errors),
            code => Self::client(code, problem.detail.unwrap_or_default()),
        }
    }
}

impl ApiError {
    pub fn client(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Client {
            code,
            detail: detail.into(),
        }
    }

    /// 503 for a transient database failure: the client should retry (with the same key).
    pub fn database_unavailable() -> Self {
        Self::client(
            ErrorCode::Unavailable,
            "the database is unavailable, retry shortly",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::client(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn problem(&self) -> Problem {
        match self {
            Self::Client { code, detail } => Problem::new(*code).with_detail(detail.clone()),
            Self::Rejected(rejection) => rejection.clone().problem(),
            Self::Validation(errors) => Problem::new(ErrorCode::ValidationFailed)
                .with_detail(summarise(errors))
                .with_errors(errors.clone()),
            Self::Overloaded(what) => Problem::new(ErrorCode::Overloaded).with_detail(*what),
            Self::Unexpected(_) => Problem::new(ErrorCode::Internal),
        }
    }
}

fn summarise(errors: &[FieldError]) -> String {
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    format!("invalid fields: {}", fields.join(", "))
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return Self::database_unavailable();
        }
        Self::Unexpected(anyhow::Error::new(e).context("database query failed"))
    }
}

/// Pool exhaustion, lost connections and a server shutting down or starting up are
/// transient: answer 503 `unavailable` (with `Retry-After`), not 500. The retry, with the
/// same idempotency key, is safe: the failed transaction wrote nothing.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs (PostgreSQL Appendix A) that say the connection or the server went away,
/// not that the statement was wrong.
const TRANSIENT_SQLSTATES: [&str; 4] = [
    "57P01", // admin_shutdown: "terminating connection due to administrator command"
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now: the server is starting up or shutting down
    "53300", // too_many_connections
];
/// Class 08, connection exception (08000, 08003, 08006, 08001, 08004, …).
const CONNECTION_EXCEPTION_CLASS: &str = "08";

/// Whether `code` is a SQLSTATE of [`is_unavailable`]'s kind.
pub fn is_transient_sqlstate(code: &str) -> bool {
    TRANSIENT_SQLSTATES.contains(&code) || code.starts_with(CONNECTION_EXCEPTION_CLASS)
}

/// Renders a problem with its status and the headers every tier sends with it.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    insert_problem_headers(response.headers_mut(), problem);
    response
}

/// [`Problem::headers`] (media type, `Retry-After`, `WWW-Authenticate`): the one rule for
/// which headers a problem carries, shared with the edge.
pub fn insert_problem_headers(headers: &mut HeaderMap, problem: &Problem) {
    for (name, value) in problem.headers() {
        // Static lower-case names; values are a media type, digits or a scheme.
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unexpected(e) = &self {
            tracing::error!(error = ?e, "request failed unexpectedly");
        }
        problem_response(&self.problem())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_loss_and_shutdown_sqlstates_are_transient() {
        for code in [
            "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006", "08001", "08004",
            "08P01",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        // Client mistakes, constraint violations, conflicts the engine retries itself, and
        // query cancellation are not outages.
        for code in [
            "22021", "23505", "23514", "40001", "40P01", "57014", "42P01", "XX000", "0A000", "",
            "8",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn transient_failures_answer_503_unavailable_with_retry_after() {
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            assert!(is_unavailable(&e));
            let problem = ApiError::from(e).problem();
            assert_eq!(
                (problem.status, problem.code),
                (503, ErrorCode::Unavailable)
            );
            let headers = problem_response(&problem).headers().clone();
            assert!(headers.contains_key("retry-after"));
        }
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }
}
