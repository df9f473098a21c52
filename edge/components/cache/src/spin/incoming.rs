//! Reading the incoming request: headers by name, a size-limited body, a JSON body.

use futures::StreamExt;
use spin_sdk::http::{IncomingRequest, Response};
use tessera_domain::body;

use super::respond;
use crate::problem;

/// A header's first value if present: the same value the ledger's extractors (`HeaderMap::get`)
/// judge, so a repeated header gets the same verdict at the edge as at the ledger.
pub fn header(request: &IncomingRequest, name: &str) -> Option<Vec<u8>> {
    request.headers().get(name).into_iter().next()
}

/// A header's lines as one list (RFC 9110 §5.3: as if joined with commas); lines that are
/// not text are left out. `None` when the request has no such header.
pub fn header_list(request: &IncomingRequest, name: &str) -> Option<String> {
    let lines = request.headers().get(name);
    if lines.is_empty() {
        return None;
    }
    let text: Vec<&str> = lines
        .iter()
        .filter_map(|line| std::str::from_utf8(line).ok())
        .collect();
    Some(text.join(", "))
}

/// The body, at most `max` bytes: a larger declared `Content-Length` is refused before
/// reading, and reading stops as soon as the limit is passed (413 `payload_too_large`).
pub async fn body(request: IncomingRequest, max: u64) -> Result<Vec<u8>, Response> {
    let too_large = || respond::rules_problem(body::payload_too_large());
    let declared = header(&request, "content-length")
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let mut stream = request.into_body_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            eprintln!("tessera edge: reading the request body failed: {e:?}");
            respond::problem(&problem::from_rules(
                body::malformed_json().with_detail("the request body could not be read"),
            ))
        })?;
        bytes.extend_from_slice(&chunk);
        if u64::try_from(bytes.len()).map_or(true, |len| len > max) {
            return Err(too_large());
        }
    }
    Ok(bytes)
}

/// A JSON body as the ledger's extractor judges it, after the caller's header checks: the
/// media type (415), then the size (413). Returns the media type to forward (checked
/// visible ASCII) and the bytes, unparsed.
pub async fn json_body(request: IncomingRequest, max: u64) -> Result<(String, Vec<u8>), Response> {
    let content_type = header(&request, "content-type");
    if !body::is_json_content_type(content_type.as_deref()) {
        return Err(respond::rules_problem(body::unsupported_media_type()));
    }
    // `is_json_content_type` accepted it, so it is visible ASCII.
    let content_type = content_type
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| "application/json".to_owned());
    let bytes = self::body(request, max).await?;
    Ok((content_type, bytes))
}
