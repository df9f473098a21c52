//! Reading the incoming request: headers by name, a size-limited body, a JSON body.

use spin_sdk::http::{IncomingRequest, Response};
use tessera_domain::body;

use super::respond;
use super::streams::{self, ReadError};
use crate::problem;

/// The request's headers, read from the host at once: a look-up on the request itself is
/// three calls (the fields resource, the get, its drop), this is three for all of them.
/// Names compare case-insensitively, as HTTP's do.
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    pub fn of(request: &IncomingRequest) -> Self {
        Self(request.headers().entries())
    }

    fn lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// A header's first value if present: the same value the ledger's extractors
    /// (`HeaderMap::get`) judge, so a repeated header gets the same verdict at the edge as
    /// at the ledger.
    pub fn first(&self, name: &str) -> Option<Vec<u8>> {
        self.lines(name).next().map(<[u8]>::to_vec)
    }

    /// A header's lines as one list (RFC 9110 §5.3: as if joined with commas); lines that
    /// are not text are left out. `None` when the request has no such header.
    pub fn list(&self, name: &str) -> Option<String> {
        join_lines(self.lines(name))
    }
}

/// Lines of one header as one list; `None` when there are none.
fn join_lines<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let mut lines = lines.peekable();
    lines.peek()?;
    let text: Vec<&str> = lines
        .filter_map(|line| std::str::from_utf8(line).ok())
        .collect();
    Some(text.join(", "))
}

/// One header's first value ([`Headers::first`]), for a handler that reads only one.
pub fn header(request: &IncomingRequest, name: &str) -> Option<Vec<u8>> {
    request.headers().get(name).into_iter().next()
}

/// One header's lines as one list ([`Headers::list`]), for a handler that reads only one:
/// only that header's values cross into the guest (a browser sends a dozen others).
pub fn header_list(request: &IncomingRequest, name: &str) -> Option<String> {
    join_lines(request.headers().get(name).iter().map(Vec::as_slice))
}

/// The body, at most `max` bytes: a larger declared `Content-Length` is refused before
/// reading, and reading stops as soon as the limit is passed (413 `payload_too_large`).
pub async fn body(
    request: IncomingRequest,
    headers: &Headers,
    max: u64,
) -> Result<Vec<u8>, Response> {
    let too_large = || respond::rules_problem(body::payload_too_large());
    let declared = headers
        .first("content-length")
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let unreadable = |e: String| {
        eprintln!("tessera edge: reading the request body failed: {e}");
        respond::problem(&problem::from_rules(
            body::malformed_json().with_detail("the request body could not be read"),
        ))
    };
    let incoming = request
        .consume()
        .map_err(|()| unreadable("the body was taken twice".to_owned()))?;
    let bytes = streams::read_all(incoming, max).map_err(|e| match e {
        ReadError::TooLarge(_) => too_large(),
        ReadError::Failed(e) => unreadable(e),
    })?;
    Ok(bytes)
}

/// A JSON body as the ledger's extractor judges it, after the caller's header checks: the
/// media type (415), then the size (413). Returns the media type to forward (checked
/// visible ASCII) and the bytes, unparsed.
pub async fn json_body(
    request: IncomingRequest,
    headers: &Headers,
    max: u64,
) -> Result<(String, Vec<u8>), Response> {
    let content_type = headers.first("content-type");
    if !body::is_json_content_type(content_type.as_deref()) {
        return Err(respond::rules_problem(body::unsupported_media_type()));
    }
    // `is_json_content_type` accepted it, so it is visible ASCII.
    let content_type = content_type
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| "application/json".to_owned());
    let bytes = self::body(request, headers, max).await?;
    Ok((content_type, bytes))
}
