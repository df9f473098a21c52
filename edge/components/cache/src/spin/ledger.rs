//! The outbound client to the ledger. Every request carries `Tessera-Edge-Key` so the
//! ledger knows it comes from an edge.

use spin_sdk::http::{Method, Response, Scheme};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    Fields, FutureIncomingResponse, IncomingResponse, OutgoingBody, OutgoingRequest,
};

use super::vars::{Ledger, Variables};
use super::{respond, streams};

use tessera_domain::EDGE_KEY_HEADER;

/// The most one `blocking-write-and-flush` may carry (WASI 0.2 `output-stream`); a body
/// this small is written whole before the request is sent (see [`exchange`]).
const WRITE_CHUNK_BYTES_MAX: usize = 4096;

/// The largest ledger answer a component reads. Its largest answers (a big venue's seat
/// map, a full listing page, the OpenAPI document) are well under 1 MiB; an answer past
/// this is a fault upstream, refused (503) rather than buffered into the instance's
/// memory (`EDGE_MEMORY_MAX_MIB`).
const LEDGER_ANSWER_BYTES_MAX: u64 = 8 * 1024 * 1024;

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
    exchange(ledger, &method, path_and_query, headers, &body).map_err(|e| {
        eprintln!("tessera edge: ledger request {path_and_query} failed: {e}");
        respond::unavailable("the ledger is unreachable, retry shortly")
    })
}

/// One exchange with the ledger in the fewest host calls wasi-http allows: the headers in
/// one list, a small body written and finished *before* the request is handed over (so the
/// host sends head and body in one write and the ledger reads them in one), the answer's
/// body read in blocking reads. (spin-sdk's `send` hands the request over first and then
/// writes the body through a sink asking `check-write`, `write`, `flush` and a poll per
/// chunk: the ledger got the head and the body in two segments.) The guest has nothing
/// else to do meanwhile, so it blocks on the answer.
fn exchange(
    ledger: &Ledger,
    method: &Method,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Response, String> {
    let request = outgoing_request(ledger, method, path_and_query, headers, body.len())?;
    let outgoing = request
        .body()
        .map_err(|()| "the request body was taken twice")?;
    let sent = if body.len() <= WRITE_CHUNK_BYTES_MAX {
        write_body(outgoing, body)?;
        outgoing_handler::handle(request, None)
    } else {
        let sent = outgoing_handler::handle(request, None);
        write_body(outgoing, body)?;
        sent
    };
    let response = wait(sent.map_err(|e| format!("{e:?}"))?)?;
    read_response(response)
}

/// The request, its head complete: `content-length` is declared for every method but GET
/// and HEAD (the body is whole, and every HTTP/1.1 server accepts a declared length).
fn outgoing_request(
    ledger: &Ledger,
    method: &Method,
    path_and_query: &str,
    headers: &[(&str, String)],
    body_len: usize,
) -> Result<OutgoingRequest, String> {
    let url = &ledger.url;
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let mut list: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len() + 2);
    list.push((
        EDGE_KEY_HEADER.to_owned(),
        ledger.edge_key.as_bytes().to_vec(),
    ));
    for (name, value) in headers {
        list.push(((*name).to_owned(), value.as_bytes().to_vec()));
    }
    if !matches!(method, Method::Get | Method::Head) {
        list.push((
            "content-length".to_owned(),
            body_len.to_string().into_bytes(),
        ));
    }
    let fields = Fields::from_list(&list).map_err(|e| format!("invalid headers: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    // A new request is a GET already (wasi:http/types): one call fewer on every read.
    if !matches!(method, Method::Get) {
        request.set_method(method).map_err(|()| "invalid method")?;
    }
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme")?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| format!("invalid authority {:?}", url.authority))?;
    request
        .set_path_with_query(Some(&format!("{}{path_and_query}", url.base_path)))
        .map_err(|()| format!("invalid path {path_and_query:?}"))?;
    Ok(request)
}

/// Writes `body` whole and finishes it.
fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    if !body.is_empty() {
        let stream = outgoing
            .write()
            .map_err(|()| "the request body stream was taken twice")?;
        for chunk in body.chunks(WRITE_CHUNK_BYTES_MAX) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the request body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("finishing the request body: {e:?}"))
}

/// Blocks until the ledger's answer head arrives.
fn wait(sent: FutureIncomingResponse) -> Result<IncomingResponse, String> {
    loop {
        match sent.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(format!("{code:?}")),
            Some(Err(())) => return Err("the answer was taken twice".to_owned()),
            None => sent.subscribe().block(),
        }
    }
}

/// Status, headers and the whole body of the ledger's answer.
fn read_response(response: IncomingResponse) -> Result<Response, String> {
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response
        .consume()
        .map_err(|()| "the answer body was taken twice")?;
    let body = streams::read_all(incoming, LEDGER_ANSWER_BYTES_MAX)
        .map_err(|e| format!("reading the answer: {e}"))?;
    let mut builder = Response::builder();
    builder.status(status);
    for (name, value) in headers {
        if let Ok(value) = String::from_utf8(value) {
            builder.header(name, value);
        }
    }
    Ok(builder.body(body).build())
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
