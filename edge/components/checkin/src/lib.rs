//! `tessera-checkin`: `POST /v1/checkin` at the edge (the door's scanner talks to the
//! nearest node).
//!
//! In order: the gate credential (`Authorization: Bearer …`: signed by the event's key and
//! unexpired, else 401), the body (`tessera_domain::checkin`'s rules: 415/413/400/422), the
//! gate (the credential's, else 403), then the code: signed by the door's event and not in
//! its revoked set → forwarded with the credential and the original body, the ledger's
//! verdict relayed; in the revoked set → `revoked`; not signed by the door's keys →
//! `invalid`, or `wrong_event` when another event's keys signed it — each answered here
//! (409, `served_by: "edge"`) without reaching the ledger. The events' public keys and
//! revoked sets come from `GET /v1/events/{id}/checkin-keys` through the node's cache
//! (`checkin_keys/{id}`, evicted with the event, patched in place by `revocation`
//! messages). Scans are never cached (`Cache-Control: no-store`).
//!
//! Every verdict given here and every ledger answer relayed carries `Server-Timing:
//! verify;dur=<ms>` (W3C Server Timing): the time spent verifying the credential and the
//! code (signatures and the revoked-set look-up), without reading the keys from the cache.
//! The benchmark (scenario 10, `checkin.edge_verify`) reads it to set verification against
//! a whole edge request.

use std::time::{Duration, Instant};

use chrono::Utc;
use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use tessera_domain::checkin::{CheckinRequest, Verdict};
use tessera_domain::tickets::{credential_event, CheckinKeys};
use tessera_domain::{body, ErrorCode, EventId, Problem};
use tessera_edge_cache::checkin::{self, CodeCheck};
use tessera_edge_cache::problem::edge;
use tessera_edge_cache::spin::ratelimit::{self, Class};
use tessera_edge_cache::spin::vars::{self, Settings};
use tessera_edge_cache::spin::{incoming, kv, ledger, now_ms, reads, respond};
use tessera_edge_cache::{etag, keys};

#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    match serve(request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn serve(request: IncomingRequest) -> Result<Response, Response> {
    ratelimit::check(&request, Class::Checkin)?;
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
    if path != "/v1/checkin" {
        return Err(respond::no_route());
    }
    if request.method() != Method::Post {
        return Err(respond::method_not_allowed("POST"));
    }
    let headers = incoming::Headers::of(&request);
    let token = bearer(&headers)?;
    let unauthorized = |detail: &str| respond::problem(&edge(ErrorCode::Unauthorized, detail));
    let door = credential_event(&token)
        .ok_or_else(|| unauthorized("not a gate credential the ledger signed"))?;
    let settings = vars::load()?;
    let store = kv::open()?;
    let door_keys = event_keys(&store, &settings, door)
        .await?
        .ok_or_else(|| unauthorized("not a gate credential the ledger signed"))?;
    let started = Instant::now();
    let credential = checkin::credential(&token, &door_keys.keys, Utc::now())
        .map_err(|p| respond::problem(&p))?;
    let mut verify = started.elapsed();
    let (content_type, bytes) =
        incoming::json_body(request, &headers, settings.request_body_max_bytes).await?;
    let parsed: CheckinRequest = body::parse_json(&bytes).map_err(respond::rules_problem)?;
    let scan = parsed
        .parse(Utc::now())
        .map_err(|errors| respond::rules_problem(Problem::validation(errors)))?;
    checkin::gate(&scan, &credential).map_err(|p| respond::problem(&p))?;
    let started = Instant::now();
    let check = checkin::code(&scan, door, &door_keys);
    verify += started.elapsed();
    let verdict = match check {
        CodeCheck::Forward => None,
        CodeCheck::Answer(verdict) => Some(verdict),
        CodeCheck::OtherEvent(named) => {
            let keys = event_keys(&store, &settings, named)
                .await?
                .map(|document| document.keys)
                .unwrap_or_default();
            let started = Instant::now();
            let verdict = checkin::other_event(&scan.code, named, &keys);
            verify += started.elapsed();
            Some(verdict)
        }
    };
    if let Some(verdict) = verdict {
        let mut response = answer(&verdict);
        response.set_header(SERVER_TIMING, verify_timing(verify));
        return Ok(response);
    }
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", content_type),
    ];
    let answer = ledger::call(&settings, Method::Post, "/v1/checkin", &headers, bytes).await?;
    let mut response = ledger::relay(&answer);
    response.set_header("cache-control", "no-store");
    response.set_header(SERVER_TIMING, verify_timing(verify));
    Ok(response)
}

/// The W3C Server Timing header: how long this node spent verifying the scan.
const SERVER_TIMING: &str = "server-timing";

/// `verify;dur=0.042`: Server Timing's durations are milliseconds; three decimals keep
/// the microseconds a verification takes.
fn verify_timing(verify: Duration) -> String {
    format!("verify;dur={:.3}", verify.as_secs_f64() * 1_000.0)
}

/// The credential from `Authorization: Bearer …`, or 401.
fn bearer(headers: &incoming::Headers) -> Result<String, Response> {
    headers
        .first("authorization")
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
        .ok_or_else(|| {
            respond::problem(&edge(
                ErrorCode::Unauthorized,
                "send the gate's credential: Authorization: Bearer <token>",
            ))
        })
}

/// `event_id`'s public keys and revoked set through the node's cache; `None` if the ledger
/// has no public event by that id.
async fn event_keys(
    store: &Store,
    settings: &Settings,
    event_id: EventId,
) -> Result<Option<CheckinKeys>, Response> {
    let key = keys::checkin_keys(event_id);
    let path = format!("/v1/events/{event_id}/checkin-keys");
    let read = match reads::document(
        store,
        settings,
        Some(&key),
        &path,
        etag::for_checkin_keys_body,
        now_ms(),
    )
    .await
    {
        Ok(read) => read,
        Err(response) if *response.status() == 404 => return Ok(None),
        Err(response) => return Err(response),
    };
    let document: CheckinKeys = serde_json::from_slice(read.value.body()).map_err(|e| {
        kv::delete(store, &key);
        respond::internal(&format!("unreadable check-in keys of {event_id}: {e}"))
    })?;
    Ok(Some(document))
}

/// A verdict the edge gives itself.
fn answer(verdict: &Verdict) -> Response {
    let body = serde_json::to_vec(verdict).unwrap_or_default();
    let mut builder = Response::builder();
    builder
        .status(verdict.result.status())
        .header(respond::SERVED_BY, "edge")
        .header("content-type", "application/json")
        .header("cache-control", "no-store");
    builder.body(body).build()
}
