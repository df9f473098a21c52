//! `tessera-queue`: an event's queue at the edge (DESIGN.md "The front door").
//!
//! - `POST /v1/events/{event_id}/queue` (join; rate class `joins`): with a valid
//!   `Tessera-Queue-Ticket` for this event the holder keeps their place and is answered
//!   here; otherwise the join goes to the ledger — the one arbiter of places — with its
//!   `Idempotency-Key` (checked here first), and the ledger's answer (the signed ticket) is
//!   relayed.
//! - `GET /v1/events/{event_id}/queue` (poll; rate class `reads`): answered here alone. The
//!   ticket is verified with the shared `queue_key` (`queue_ticket_invalid` otherwise), the
//!   event's queue comes from the node's cache (`queue/{event_id}`: read from the ledger
//!   once, then moved on by `queue` messages), and an admitted holder's pass is signed
//!   here, with the same rule the ledger uses ([`QueueState::status`]).
//!
//! - `GET /v1/events/{event_id}/queue/state` (rate class `reads`): the cached queue, as the
//!   ledger answers it (how far it has let people in).
//!
//! Nothing here is cacheable by clients (`Cache-Control: no-store`): a poll's answer
//! changes as the line moves.

use chrono::Utc;
use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;
use tessera_domain::holds::Rejection;
use tessera_domain::queue::{self, QueueState, QueueTicket};
use tessera_domain::{body, EventId};
use tessera_edge_cache::problem::edge;
use tessera_edge_cache::spin::ratelimit::{self, Class};
use tessera_edge_cache::spin::vars::{self, OnDemand};
use tessera_edge_cache::spin::{incoming, kv, ledger, reads, respond};

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    match serve(request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn serve(request: IncomingRequest) -> Result<Response, Response> {
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
    let segments: Vec<&str> = path.split('/').collect();
    let (raw_id, state_only) = match segments.as_slice() {
        ["", "v1", "events", raw_id, "queue"] => (*raw_id, false),
        ["", "v1", "events", raw_id, "queue", "state"] => (*raw_id, true),
        _ => return Err(respond::no_route()),
    };
    let method = request.method();
    if state_only {
        if !matches!(method, Method::Get | Method::Head) {
            return Err(respond::method_not_allowed("GET, HEAD"));
        }
        ratelimit::check(&request, Class::Reads)?;
        let event_id: EventId = respond::path_id("event_id", raw_id)?;
        let store = kv::open()?;
        let state = reads::queue_state(&store, &OnDemand, event_id).await?;
        return json(&state);
    }
    match method {
        Method::Post => ratelimit::check(&request, Class::Joins)?,
        Method::Get | Method::Head => ratelimit::check(&request, Class::Reads)?,
        _ => return Err(respond::method_not_allowed("GET, HEAD, POST")),
    }
    let event_id: EventId = respond::path_id("event_id", raw_id)?;
    let ticket = ticket_header(&request);
    if method == Method::Post && ticket.is_none() {
        return join(&request, event_id).await;
    }
    poll(event_id, ticket.as_deref()).await
}

/// The `Tessera-Queue-Ticket` header's text, if it was sent. A value that is not text is
/// still a ticket sent (and no ticket any key signed: refused as one), never taken as none,
/// which would hand out a new place.
fn ticket_header(request: &IncomingRequest) -> Option<String> {
    incoming::header(request, queue::TICKET_HEADER)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn refusal(rejection: Rejection) -> Response {
    respond::problem(&edge(rejection.code, rejection.detail))
}

/// Where the ticket's holder stands, from the cached queue.
async fn poll(event_id: EventId, token: Option<&str>) -> Result<Response, Response> {
    let keys = vars::queue_keys()?;
    let token = token.ok_or_else(|| refusal(queue::missing_ticket()))?;
    // Then the event's queue, as at the ledger: an unknown event is 404 whatever the
    // ticket (a known one is cached, so forged tickets for it never reach the ledger).
    let store = kv::open()?;
    let state: QueueState = reads::queue_state(&store, &OnDemand, event_id).await?;
    if !state.enabled {
        return Err(respond::problem(&edge(
            tessera_domain::ErrorCode::QueueOff,
            queue::queue_off().detail.unwrap_or_default(),
        )));
    }
    let ticket: QueueTicket = queue::ticket(keys, Some(token), event_id).map_err(refusal)?;
    let token = token.trim().to_owned();
    json(&state.status(keys, &ticket, token, Utc::now()))
}

/// A 200 JSON answer made here; never cacheable (the line moves).
fn json<T: serde::Serialize>(value: &T) -> Result<Response, Response> {
    let body = serde_json::to_vec(value)
        .map_err(|e| respond::internal(&format!("cannot encode an answer: {e}")))?;
    let mut builder = Response::builder();
    builder
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header(respond::SERVED_BY, "edge");
    Ok(builder.body(body).build())
}

/// A new place, from the ledger.
async fn join(request: &IncomingRequest, event_id: EventId) -> Result<Response, Response> {
    let mut headers = Vec::new();
    if let Some(raw) = incoming::header(request, body::IDEMPOTENCY_KEY_HEADER) {
        let key = body::idempotency_key(Some(&raw)).map_err(respond::rules_problem)?;
        headers.push((body::IDEMPOTENCY_KEY_HEADER, key.as_str().to_owned()));
    }
    let answer = ledger::call(
        &OnDemand,
        Method::Post,
        &format!("/v1/events/{event_id}/queue"),
        &headers,
        Vec::new(),
    )
    .await?;
    let mut response = ledger::relay(&answer);
    response.set_header("cache-control", "no-store");
    Ok(response)
}
