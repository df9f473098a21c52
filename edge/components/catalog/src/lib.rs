//! `tessera-catalog`: the edge's public reads, served from the edge key-value cache and
//! filled from the ledger on a miss.
//!
//! | route | cache key | `Cache-Control` |
//! | --- | --- | --- |
//! | `GET /v1/events?…` | `events/{slot of the sorted query}` | `public, max-age=5` |
//! | `GET /v1/events/{event_id}` | `event/{event_id}` | `public, max-age=10` |
//! | `GET /v1/events/{event_id}/checkin-keys` | `checkin_keys/{event_id}` | `public, max-age=10` |
//! | `GET /v1/categories` | `categories` | `public, max-age=60` |
//! | `GET /v1/shows/{show_id}/availability` | `avail/{show_id}` | `public, max-age=1` |
//! | `GET /v1/shows/{show_id}/seats` | `seats/{show_id}` | `public, max-age=1` |
//!
//! Every answer carries `Tessera-Cache: hit|miss|bypass` (the host counts them), an `ETag`,
//! and honours `If-None-Match` with a bodiless 304. `HEAD` is served like `GET` without a
//! body, as the ledger (axum) does.
//!
//! A hit is answered from the entry's stored bytes ([`tessera_edge_cache::stored`]): the
//! ETag and body as they were rendered when the entry was written, read in place. On a hit
//! the component reads one variable at most (`stream_freshness_ms`, for availability) and
//! opens the store once; everything else it needs is read only on a miss.
//!
//! Availability and the seat map are served from the cache only while the invalidation stream is fresh
//! (`stream_freshness_ms`, DESIGN.md's freshness lease); otherwise it is read through to
//! the ledger, coalesced, and marked `bypass`. The catalog documents are not gated: they
//! change rarely, a catalog message evicts them, and their TTL bounds a missed eviction.

use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use tessera_domain::{EventId, ShowId};
use tessera_edge_cache::etag::{
    self, CACHE_CONTROL_AVAILABILITY, CACHE_CONTROL_CATEGORIES, CACHE_CONTROL_EVENT,
    CACHE_CONTROL_LIST, CACHE_CONTROL_SEAT_MAP,
};
use tessera_edge_cache::keys;
use tessera_edge_cache::spin::ratelimit::{self, Class};
use tessera_edge_cache::spin::reads::{self, Live, Read};
use tessera_edge_cache::spin::respond::{self, CACHE, SERVED_BY};
use tessera_edge_cache::spin::vars::OnDemand;
use tessera_edge_cache::spin::{incoming, kv, now_ms};
use tessera_edge_cache::stored::Stored;

enum Route<'a> {
    Events,
    Event(&'a str),
    CheckinKeys(&'a str),
    Categories,
    Availability(&'a str),
    SeatMap(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let mut segments = path.strip_prefix('/')?.split('/');
    // `/v1/events/` is no route (as at the ledger), not an empty id.
    if segments.clone().any(str::is_empty) {
        return None;
    }
    let mut next = || segments.next();
    Some(match (next()?, next()?, next(), next(), next()) {
        ("v1", "events", None, ..) => Route::Events,
        ("v1", "events", Some(id), None, _) => Route::Event(id),
        ("v1", "events", Some(id), Some("checkin-keys"), None) => Route::CheckinKeys(id),
        ("v1", "categories", None, ..) => Route::Categories,
        ("v1", "shows", Some(id), Some("availability"), None) => Route::Availability(id),
        ("v1", "shows", Some(id), Some("seats"), None) => Route::SeatMap(id),
        _ => return None,
    })
}

/// Every answer leaves through [`respond::send`]; a cached one as slices of its entry.
#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    match serve(&request).await {
        Ok(answer) => answer.send(out),
        Err(response) => respond::send_response(out, &response),
    }
}

/// A document to answer with, and how.
struct Answer {
    read: Read<Stored>,
    cache_control: &'static str,
    /// Every `If-None-Match` line as one list.
    if_none_match: Option<String>,
    head: bool,
}

async fn serve(request: &IncomingRequest) -> Result<Answer, Response> {
    ratelimit::check(request, Class::Reads)?;
    let path_and_query = request.path_with_query().unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query.as_str(), ""));
    let route = route(path).ok_or_else(respond::no_route)?;
    let head = match request.method() {
        Method::Get => false,
        Method::Head => true,
        _ => return Err(respond::method_not_allowed("GET, HEAD")),
    };
    let if_none_match = incoming::header_list(request, "if-none-match");
    let (read, cache_control) = read_route(route, query).await?;
    Ok(Answer {
        read,
        cache_control,
        if_none_match,
        head,
    })
}

/// The route's document, from the cache or the ledger, and its `Cache-Control`. The store
/// is opened once the request is known to be valid; variables are read as needed.
async fn read_route(
    route: Route<'_>,
    query: &str,
) -> Result<(Read<Stored>, &'static str), Response> {
    match route {
        Route::Availability(raw) => {
            let show_id: ShowId = respond::path_id("show_id", raw)?;
            let store = kv::open()?;
            let read = reads::served_live(&store, &OnDemand, Live::Availability, show_id).await?;
            Ok((read, CACHE_CONTROL_AVAILABILITY))
        }
        Route::SeatMap(raw) => {
            let show_id: ShowId = respond::path_id("show_id", raw)?;
            let store = kv::open()?;
            let read = reads::served_live(&store, &OnDemand, Live::SeatMap, show_id).await?;
            Ok((read, CACHE_CONTROL_SEAT_MAP))
        }
        Route::Event(raw) => {
            let event_id: EventId = respond::path_id("event_id", raw)?;
            let store = kv::open()?;
            let read = reads::event_document(&store, &OnDemand, event_id, now_ms()).await?;
            Ok((read, CACHE_CONTROL_EVENT))
        }
        Route::CheckinKeys(raw) => {
            let event_id: EventId = respond::path_id("event_id", raw)?;
            let key = keys::checkin_keys(event_id);
            let path = format!("/v1/events/{event_id}/checkin-keys");
            let store = kv::open()?;
            let read = reads::document(
                &store,
                &OnDemand,
                Some(&key),
                &path,
                etag::for_checkin_keys_body,
                now_ms(),
            )
            .await?;
            // As the event detail: keys change only when rotated or revoked.
            Ok((read, CACHE_CONTROL_EVENT))
        }
        Route::Categories => {
            let store = kv::open()?;
            let read = document(&store, Some(keys::CATEGORIES), "/v1/categories").await?;
            Ok((read, CACHE_CONTROL_CATEGORIES))
        }
        Route::Events => {
            // Parameter order means nothing to the ledger: fetch and cache the normalised
            // form, so `a=1&b=2` and `b=2&a=1` share one entry.
            let query = keys::normalize_query(query);
            let key = keys::event_list(&query);
            let upstream = if query.is_empty() {
                "/v1/events".to_owned()
            } else {
                format!("/v1/events?{query}")
            };
            let store = kv::open()?;
            let read = document(&store, key.as_deref(), &upstream).await?;
            Ok((read, CACHE_CONTROL_LIST))
        }
    }
}

/// A listing or the categories: tagged by a hash of the body.
async fn document(
    store: &Store,
    key: Option<&str>,
    path_and_query: &str,
) -> Result<Read<Stored>, Response> {
    reads::document(
        store,
        &OnDemand,
        key,
        path_and_query,
        etag::for_body,
        now_ms(),
    )
    .await
}

impl Answer {
    /// 200 with the document, or 304 when `If-None-Match` matches.
    fn send(self, out: ResponseOutparam) {
        let doc = &self.read.value;
        let etag = doc.etag();
        let headers = [
            ("etag", etag.as_bytes()),
            ("cache-control", self.cache_control.as_bytes()),
            (CACHE, self.read.served.header_value().as_bytes()),
            (SERVED_BY, b"edge".as_slice()),
            ("content-type", b"application/json".as_slice()),
        ];
        if self.not_modified(etag) {
            // No content type: a 304 has no body.
            return respond::send(out, 304, &headers[..4], &[]);
        }
        let body = if self.head { &[][..] } else { doc.body() };
        respond::send(out, 200, &headers, body);
    }

    /// Whether `If-None-Match` matches `etag` (a value that is not text matches nothing).
    fn not_modified(&self, etag: &str) -> bool {
        self.if_none_match
            .as_deref()
            .is_some_and(|v| etag::if_none_match(v, etag))
    }
}
