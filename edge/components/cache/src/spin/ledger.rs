//! The outbound client to the ledger. Every request carries `Tessera-Edge-Key` so the
//! ledger knows it comes from an edge.

use spin_sdk::http::{send, Method, Request, Response};

use super::respond;
use super::vars::Variables;

use tessera_domain::EDGE_KEY_HEADER;

/// Sends `method path_and_query` with `headers` and `body`. Any transport failure is
/// logged and becomes the edge's 503 `unavailable` (as the `Err`).
pub async fn call(
    settings: &impl Variables,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Response, Response> {
    let ledger = settings.ledger()?;
    let url = format!("{}{}", ledger.url, path_and_query);
    let mut builder = Request::builder();
    let with_length = !matches!(method, Method::Get | Method::Head);
    builder
        .method(method)
        .uri(url.as_str())
        .header(EDGE_KEY_HEADER, ledger.edge_key.as_str());
    for (name, value) in headers {
        builder.header(*name, value.as_str());
    }
    // A declared length instead of a chunked body: the request is fully buffered anyway,
    // and every HTTP/1.1 server accepts it.
    if with_length {
        builder.header("content-length", body.len().to_string());
    }
    let request = builder.body(body).build();
    match send::<_, Response>(request).await {
        Ok(response) => Ok(response),
        Err(e) => {
            eprintln!("tessera edge: ledger request {path_and_query} failed: {e}");
            Err(respond::unavailable(
                "the ledger is unreachable, retry shortly",
            ))
        }
    }
}

pub async fn get(settings: &impl Variables, path_and_query: &str) -> Result<Response, Response> {
    call(settings, Method::Get, path_and_query, &[], Vec::new()).await
}

/// The ledger's answer relayed to the client: status, body and the headers that matter.
pub fn relay(answer: &Response) -> Response {
    let mut builder = Response::builder();
    builder
        .status(*answer.status())
        .header(respond::SERVED_BY, "ledger");
    for name in [
        "content-type",
        "location",
        "retry-after",
        "idempotent-replayed",
        "www-authenticate",
        // The edge's own timings set on the answer before it is relayed.
        "server-timing",
    ] {
        if let Some(value) = answer.header(name).and_then(|v| v.as_str()) {
            builder.header(name, value);
        }
    }
    builder.body(answer.body().to_vec()).build()
}
