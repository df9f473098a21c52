//! `tessera-catalog`: the edge's public reads, served from the edge key-value cache and
//! filled from the ledger on a miss.
//!
//! | route | cache key | `Cache-Control` |
//! | --- | --- | --- |
//! | `GET /v1/events?…` | `events/{slot of the sorted query}` | `public, max-age=5` |
//! | `GET /v1/events/{event_id}` | `event/{event_id}` | `public, max-age=10` |
//! | `GET /v1/categories` | `categories` | `public, max-age=60` |
//! | `GET /v1/shows/{show_id}/availability` | `avail/{show_id}` | `public, max-age=1` |
//!
//! Every answer carries `Tessera-Cache: hit|miss|bypass` (the host counts them), an `ETag`,
//! and honours `If-None-Match` with a bodiless 304. `HEAD` is served like `GET` without a
//! body, as the ledger (axum) does.
//!
//! Availability is served from the cache only while the invalidation stream is fresh
//! (`stream_freshness_ms`, DESIGN.md's freshness lease); otherwise it is read through to
//! the ledger, coalesced, and marked `bypass`. The catalog documents are not gated: they
//! change rarely, a catalog message evicts them, and their TTL bounds a missed eviction.

use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use tessera_domain::{EventId, ShowId};
use tessera_edge_cache::entry::DocEntry;
use tessera_edge_cache::etag::{
    self, CACHE_CONTROL_AVAILABILITY, CACHE_CONTROL_CATEGORIES, CACHE_CONTROL_EVENT,
    CACHE_CONTROL_LIST,
};
use tessera_edge_cache::keys;
use tessera_edge_cache::spin::kv;
use tessera_edge_cache::spin::reads::{self, Read};
use tessera_edge_cache::spin::respond::{self, CACHE, SERVED_BY};
use tessera_edge_cache::spin::vars::{self, Settings};

enum Route {
    Events,
    Event(String),
    Categories,
    Availability(String),
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    // `/v1/events/` is no route (as at the ledger), not an empty id.
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(match segments.as_slice() {
        ["v1", "events"] => Route::Events,
        ["v1", "events", id] => Route::Event((*id).to_owned()),
        ["v1", "categories"] => Route::Categories,
        ["v1", "shows", id, "availability"] => Route::Availability((*id).to_owned()),
        _ => return None,
    })
}

/// A path id, parsed with the domain's parser; malformed → 422 on that field.
#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    match serve(&request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn serve(request: &IncomingRequest) -> Result<Response, Response> {
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
    let if_none_match = request
        .headers()
        .get("if-none-match")
        .into_iter()
        .filter_map(|v| String::from_utf8(v).ok())
        .collect::<Vec<_>>()
        .join(", ");
    let settings = vars::load()?;
    let store = kv::open()?;
    let (read, cache_control) = read_route(route, query, &store, &settings).await?;
    Ok(answer(read, cache_control, &if_none_match, head))
}

/// The route's document, from the cache or the ledger, and its `Cache-Control`.
async fn read_route(
    route: Route,
    query: &str,
    store: &Store,
    settings: &Settings,
) -> Result<(Read<DocEntry>, &'static str), Response> {
    match route {
        Route::Availability(raw) => {
            let show_id: ShowId = respond::path_id("show_id", &raw)?;
            let read = availability_document(store, settings, show_id).await?;
            Ok((read, CACHE_CONTROL_AVAILABILITY))
        }
        Route::Event(raw) => {
            let event_id: EventId = respond::path_id("event_id", &raw)?;
            let read = reads::event_document(store, settings, event_id).await?;
            Ok((read, CACHE_CONTROL_EVENT))
        }
        Route::Categories => {
            let categories = Some(keys::CATEGORIES);
            let read = reads::document(
                store,
                settings,
                categories,
                "/v1/categories",
                etag::for_body,
            )
            .await?;
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
            let read =
                reads::document(store, settings, key.as_deref(), &upstream, etag::for_body).await?;
            Ok((read, CACHE_CONTROL_LIST))
        }
    }
}

/// The show's structured availability entry, rendered as the public document.
async fn availability_document(
    store: &Store,
    settings: &Settings,
    show_id: ShowId,
) -> Result<Read<DocEntry>, Response> {
    let trust = reads::trust(store, settings);
    let read = reads::availability(store, settings, show_id, trust).await?;
    let body = serde_json::to_string(&read.value.to_availability())
        .map_err(|e| respond::internal(&format!("serialising availability: {e}")))?;
    let doc = DocEntry {
        stored_at_ms: read.value.stored_at_ms,
        expires_at_ms: read.value.expires_at_ms,
        etag: read.value.etag(),
        body,
        source: String::new(),
        catalog_epoch: None,
    };
    Ok(Read {
        value: doc,
        served: read.served,
    })
}

/// 200 with the document, or 304 when `If-None-Match` matches.
fn answer(read: Read<DocEntry>, cache_control: &str, if_none_match: &str, head: bool) -> Response {
    let doc = read.value;
    let not_modified = !if_none_match.is_empty() && etag::if_none_match(if_none_match, &doc.etag);
    let mut builder = Response::builder();
    builder
        .header("etag", doc.etag.as_str())
        .header("cache-control", cache_control)
        .header(CACHE, read.served.header_value())
        .header(SERVED_BY, "edge");
    if not_modified {
        return builder.status(304).body(Vec::new()).build();
    }
    builder
        .status(200)
        .header("content-type", "application/json");
    let body = if head {
        Vec::new()
    } else {
        doc.body.into_bytes()
    };
    builder.body(body).build()
}
