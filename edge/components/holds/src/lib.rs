//! `tessera-holds`: hold, confirm and release at the edge, and the order they make
//! (`GET /v1/orders/{hold_id}`, forwarded: never cached).
//!
//! Each request is validated with the ledger's own rules from `tessera-domain` (header,
//! media type, size, JSON shape, fields; for a new hold also the zone's hold rules against
//! the cached catalog) so bad requests never cross to the ledger. A hold for a zone whose
//! `available == 0` was confirmed within `sold_out_shed_window_ms` while the invalidation
//! stream is fresh (`stream_freshness_ms`: a zero a silent stream cannot vouch for may have
//! been released meanwhile), or that the ledger answered `sold_out` that recently, is
//! refused `sold_out` here ("shed"); so is a hold naming seats that the cached seat map,
//! confirmed as recently while the stream is fresh, shows taken (`seat_unavailable`, naming
//! them). A retry of a hold this node forwarded is never shed: it reaches the ledger, which
//! replays its answer. The cached availability serves whatever the stream's state: besides
//! shedding, a hold needs only the show's event and zones from it. Everything else is
//! forwarded with its original body, `Idempotency-Key`
//! and `Content-Type`, and the ledger's answer relayed unchanged. Hold results are never
//! cached (`Cache-Control: no-store`).

use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;
use tessera_domain::body;
use tessera_domain::catalog::EventDetail;
use tessera_domain::holds::{ConfirmRequest, HoldRequest, NewHold, SeatPick};
use tessera_domain::{queue, ErrorCode, HoldId, Problem};
use tessera_edge_cache::cas::Updated;
use tessera_edge_cache::entry::AvailEntry;
use tessera_edge_cache::freshness::Trust;
use tessera_edge_cache::hold::{self, HoldCheck, HoldVerdict};
use tessera_edge_cache::keys::PrefixedId;
use tessera_edge_cache::problem::{edge, has_code};
use tessera_edge_cache::spin::ratelimit::{self, Class};
use tessera_edge_cache::spin::vars::{self, Settings};
use tessera_edge_cache::spin::{incoming, kv, ledger, now_ms, reads, respond};
use tessera_edge_cache::stored::Kind;
use tessera_edge_cache::{forwarded, keys};

enum Route {
    Create,
    Get(String),
    Confirm(String),
    Release(String),
    /// `GET /v1/orders/{hold_id}`: forwarded (an order's tickets change at the door).
    Order(String),
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    // `/v1/holds/` is no route (as at the ledger), not an empty id.
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(match segments.as_slice() {
        ["v1", "holds"] => Route::Create,
        ["v1", "holds", id] => Route::Get((*id).to_owned()),
        ["v1", "holds", id, "confirm"] => Route::Confirm((*id).to_owned()),
        ["v1", "holds", id, "release"] => Route::Release((*id).to_owned()),
        ["v1", "orders", id] => Route::Order((*id).to_owned()),
        _ => return None,
    })
}

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    match serve(request).await {
        Ok(response) | Err(response) => respond::send_response(out, &response),
    }
}

async fn serve(request: IncomingRequest) -> Result<Response, Response> {
    ratelimit::check(
        &request,
        Class::Holds.for_write(request.method() == Method::Post),
    )?;
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
    let route = route(path).ok_or_else(respond::no_route)?;
    let method = request.method();
    match (&route, &method) {
        (Route::Get(_) | Route::Order(_), Method::Get | Method::Head) => {}
        (Route::Get(_) | Route::Order(_), _) => {
            return Err(respond::method_not_allowed("GET, HEAD"))
        }
        (_, Method::Post) => {}
        _ => return Err(respond::method_not_allowed("POST")),
    }
    let settings = vars::load()?;
    let answer = match route {
        Route::Create => create(request, &settings).await?,
        Route::Confirm(raw) => confirm(request, &settings, &raw).await?,
        Route::Release(raw) => {
            let hold_id: HoldId = respond::path_id("hold_id", &raw)?;
            // Release needs no key; pass one on if the client sent it.
            let headers = optional_header(&request, body::IDEMPOTENCY_KEY_HEADER);
            ledger::call(
                &settings,
                Method::Post,
                &format!("/v1/holds/{hold_id}/release"),
                &headers,
                Vec::new(),
            )
            .await?
        }
        Route::Get(raw) => read(&settings, method, "holds", &raw).await?,
        Route::Order(raw) => read(&settings, method, "orders", &raw).await?,
    };
    Ok(relay(&answer))
}

/// `GET /v1/{collection}/{hold_id}` at the ledger, the id checked first.
async fn read(
    settings: &Settings,
    method: Method,
    collection: &str,
    raw: &str,
) -> Result<Response, Response> {
    let hold_id: HoldId = respond::path_id("hold_id", raw)?;
    ledger::call(
        settings,
        method,
        &format!("/v1/{collection}/{hold_id}"),
        &[],
        Vec::new(),
    )
    .await
}

/// The ledger's answer for the client; hold state is never cacheable.
fn relay(answer: &Response) -> Response {
    let mut response = ledger::relay(answer);
    response.set_header("cache-control", "no-store");
    response
}

fn optional_header(request: &IncomingRequest, name: &'static str) -> Vec<(&'static str, String)> {
    incoming::header(request, name)
        .and_then(|v| String::from_utf8(v).ok())
        .map(|v| vec![(name, v)])
        .unwrap_or_default()
}

/// The checks every keyed JSON write shares, in the ledger's order: `Idempotency-Key`,
/// media type, size, JSON. Returns the headers to forward and the original body bytes.
async fn keyed_json_body<T: serde::de::DeserializeOwned>(
    request: IncomingRequest,
    request_headers: &incoming::Headers,
    settings: &Settings,
) -> Result<(Vec<(&'static str, String)>, Vec<u8>, T), Response> {
    let key = body::idempotency_key(
        request_headers
            .first(body::IDEMPOTENCY_KEY_HEADER)
            .as_deref(),
    )
    .map_err(respond::rules_problem)?;
    let (content_type, bytes) =
        incoming::json_body(request, request_headers, settings.request_body_max_bytes).await?;
    let parsed: T = body::parse_json(&bytes).map_err(respond::rules_problem)?;
    let headers = vec![
        (body::IDEMPOTENCY_KEY_HEADER, key.as_str().to_owned()),
        ("content-type", content_type),
    ];
    Ok((headers, bytes, parsed))
}

async fn confirm(
    request: IncomingRequest,
    settings: &Settings,
    raw_id: &str,
) -> Result<Response, Response> {
    let request_headers = incoming::Headers::of(&request);
    let (headers, bytes, confirm) =
        keyed_json_body::<ConfirmRequest>(request, &request_headers, settings).await?;
    let hold_id: HoldId = respond::path_id("hold_id", raw_id)?;
    confirm
        .parse()
        .map_err(|errors| respond::rules_problem(Problem::validation(errors)))?;
    ledger::call(
        settings,
        Method::Post,
        &format!("/v1/holds/{hold_id}/confirm"),
        &headers,
        bytes,
    )
    .await
}

async fn create(request: IncomingRequest, settings: &Settings) -> Result<Response, Response> {
    let request_headers = incoming::Headers::of(&request);
    let pass = request_headers
        .first(queue::PASS_HEADER)
        .and_then(|v| String::from_utf8(v).ok());
    let (mut headers, bytes, request) =
        keyed_json_body::<HoldRequest>(request, &request_headers, settings).await?;
    let hold = request
        .parse()
        .map_err(|errors| respond::rules_problem(Problem::validation(errors)))?;
    let store = kv::open()?;
    // Counters are trusted for shedding only if the stream is fresh (the check below).
    let stream_fresh = reads::trust(&store, settings) == Trust::Cached;
    let availability = reads::availability(&store, settings, hold.show_id, Trust::Cached)
        .await
        .map_err(|r| not_found_as_zone(r, "show not found"))?
        .value;
    let detail = reads::event_detail(&store, settings, availability.event_id)
        .await
        .map_err(|r| not_found_as_zone(r, "event not found"))?;
    let pass_timing = check_pass(&detail, pass.as_deref())?;
    if let Some(pass) = pass {
        headers.push((queue::PASS_HEADER, pass));
    }
    // Only a hold that names seats reads the seat map, and only as cached: fetching a map
    // to refuse a hold would cost the ledger more than the hold.
    let seat_map = matches!(hold.pick, SeatPick::Seats(_))
        .then(|| {
            let key = PrefixedId::seat_map(hold.show_id);
            kv::get_stored(&store, key.as_str(), Kind::SeatMap)
        })
        .flatten();
    let verdict = hold::check(
        &hold,
        &HoldCheck {
            detail: &detail,
            availability: &availability,
            seat_map: seat_map.as_ref(),
            now: chrono::Utc::now(),
            now_ms: now_ms(),
            shed_window_ms: settings.sold_out_shed_window_ms,
            stream_fresh,
        },
    );
    forward_or_refuse(&store, &headers, verdict)?;
    let seen_version = availability.zone(hold.zone_id).map(|z| z.zone.version);
    let mut answer = ledger::call(settings, Method::Post, "/v1/holds", &headers, bytes).await?;
    if let Some(timing) = pass_timing {
        answer.set_header("server-timing", timing);
    }
    if let Some(seen_version) = seen_version {
        note_sold_out(&store, &hold, seen_version, &answer);
    }
    Ok(answer)
}

/// Whether a hold goes on to the ledger: refused or shed here, unless this node forwarded
/// a hold under the same Idempotency-Key before (its retry goes to the ledger, which
/// replays its answer). One that goes on is remembered first: if its answer is lost
/// (timeout, 5xx) the hold may still have been granted, and the retry must reach the
/// ledger to get its replay.
fn forward_or_refuse(
    store: &spin_sdk::key_value::Store,
    headers: &[(&'static str, String)],
    verdict: HoldVerdict,
) -> Result<(), Response> {
    let idempotency_key = headers
        .iter()
        .find(|(name, _)| *name == body::IDEMPOTENCY_KEY_HEADER)
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let bucket_key = keys::forwarded(idempotency_key);
    // Read only to refuse: a hold that goes on reads its bucket in the swap below.
    if let HoldVerdict::Refuse(problem) | HoldVerdict::Shed(problem) = verdict {
        let forwarded_before = kv::get_raw(store, &bucket_key)
            .is_some_and(|bucket| forwarded::contains(&bucket, idempotency_key));
        if !forwarded_before {
            return Err(respond::problem(&problem));
        }
    }
    let remembered = kv::update_entry(&bucket_key, |bucket: Option<Vec<u8>>| {
        Some(forwarded::remember(bucket.as_deref(), idempotency_key))
    });
    if let Err(e) = remembered {
        eprintln!("tessera edge: cannot remember a forwarded hold in {bucket_key}: {e}");
    }
    Ok(())
}

/// A fresh `sold_out` from the ledger (not a replay) marks the zone sold out in this node's
/// counters, so the next holds are shed here.
fn note_sold_out(
    store: &spin_sdk::key_value::Store,
    hold: &NewHold,
    seen_version: i64,
    answer: &Response,
) {
    let replayed = answer
        .header("idempotent-replayed")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if *answer.status() == 409 && !replayed && has_code(answer.body(), ErrorCode::SoldOut) {
        record_sold_out(store, hold, seen_version);
    }
}

/// A queued on-sale: no pass for this event, no hold (and no request to the ledger). The
/// check's cost, as `Server-Timing: pass;dur=<ms>` (the bench reads it), for the answer;
/// `None` when the event is not queued.
fn check_pass(detail: &EventDetail, pass: Option<&str>) -> Result<Option<String>, Response> {
    if detail.queue.is_none() {
        return Ok(None);
    }
    let keys = vars::queue_keys()?;
    let started = std::time::Instant::now();
    let admitted = queue::admit(keys, pass, detail.event_id, chrono::Utc::now());
    let timing = server_timing(started.elapsed());
    if let Err(r) = admitted {
        let mut refused = respond::problem(&edge(r.code, r.detail));
        refused.set_header("server-timing", timing);
        return Err(refused);
    }
    Ok(Some(timing))
}

/// A lookup's 404 (unknown or unpublished show) is the hold's 404, answered by the edge.
fn not_found_as_zone(response: Response, detail: &str) -> Response {
    if *response.status() == 404 {
        respond::problem(&edge(ErrorCode::NotFound, detail))
    } else {
        response
    }
}

/// The ledger says the zone is sold out: note it, if the zone is still at the version this
/// hold was checked against, so the next holds are shed for a while. Written over exactly
/// the entry it read ([`kv::update_entry`]), so a message applied meanwhile is not lost; a
/// catalog eviction landing between the read and the write took the show's index listing
/// with it, so the rewritten entry is deleted again rather than left where no catalog
/// message would find it.
fn record_sold_out(store: &spin_sdk::key_value::Store, hold: &NewHold, seen_version: i64) {
    let key = keys::availability(hold.show_id);
    let now = now_ms();
    let updated = kv::update_entry(&key, |entry: Option<AvailEntry>| {
        let mut entry = entry?;
        entry
            .record_sold_out(hold.zone_id, seen_version, now)
            .then_some(entry)
    });
    match updated {
        Ok(Updated::Written(entry, _)) => {
            if !reads::is_indexed(store, entry.event_id, hold.show_id) {
                kv::delete(store, &key);
            }
        }
        Ok(Updated::Kept | Updated::Contended) => {}
        Err(e) => eprintln!("tessera edge: cannot note {key} sold out: {e}"),
    }
}

/// `pass;dur=<ms>` (W3C Server Timing), to the microsecond.
fn server_timing(spent: std::time::Duration) -> String {
    format!("pass;dur={:.3}", spent.as_secs_f64() * 1_000.0)
}
