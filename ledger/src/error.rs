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
    /// Field-level validation failures (422 `validation_failed`).
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// Too busy: 503 with `Retry-After`.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
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
        Self::Client {
            code: r.code,
            detail: r.detail,
        }
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

/// Pool exhaustion and lost connections are transient: answer 503, not 500.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
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
