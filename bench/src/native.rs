//! The ceiling for the edge read benchmark: the catalog component's cache-hit path compiled
//! natively into a plain axum server. It keeps the same entries the edge keeps in its
//! key-value store (their stored bytes under the same keys, filled by one ledger fetch at
//! start) and answers as the component does on a hit: copy the entry out of the store,
//! check it in place, check its freshness, answer with its stored ETag and body, honour
//! If-None-Match. What it lacks is exactly what the edge pays for: a wasm instance per
//! request and the host's KV calls.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tessera_domain::catalog::Availability;
use tessera_domain::{EventId, ShowId};
use tessera_edge_cache::entry::{self, AvailEntry, DocEntry};
use tessera_edge_cache::stored::{Kind, Stored};
use tessera_edge_cache::{etag, keys};

/// Entries never expire during a run (the edge's TTLs are a safety net, not exercised).
const ENTRY_TTL_MS: u64 = 24 * 3600 * 1000;

type Store = Arc<HashMap<String, Vec<u8>>>;

pub struct Args {
    pub addr: String,
    pub ledger: String,
    pub show_id: ShowId,
    pub event_id: EventId,
}

pub async fn serve(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let now = now_ms();
    let availability: Availability = http
        .get(format!(
            "{}/v1/shows/{}/availability",
            args.ledger, args.show_id
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("reading availability from the ledger")?;
    let avail = AvailEntry::merge_fetch(None, availability, now, ENTRY_TTL_MS);
    let event_path = format!("/v1/events/{}", args.event_id);
    let event_body = http
        .get(format!("{}{event_path}", args.ledger))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let event_etag = etag::for_event_body(event_body.as_bytes());
    let event = DocEntry::new(event_path, event_body, event_etag, now, ENTRY_TTL_MS);
    let store: Store = Arc::new(HashMap::from([
        (keys::availability(args.show_id), avail.encode()?),
        (keys::event(args.event_id), event.encode()?),
    ]));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/shows/{show_id}/availability", get(availability_hit))
        .route("/v1/events/{event_id}", get(event_hit))
        .with_state(store);
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    // Stopped with SIGTERM by the bench: exiting on its own lets an instrumented build
    // write its profile (`cargo xtask bench`'s profile-guided build).
    axum::serve(listener, app)
        .with_graceful_shutdown(tessera_serving::shutdown_signal())
        .await?;
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn availability_hit(
    State(store): State<Store>,
    Path(show_id): Path<ShowId>,
    headers: HeaderMap,
) -> Response {
    // The copy stands for the KV get, which hands the guest a copy too.
    let Some(entry) = store
        .get(&keys::availability(show_id))
        .and_then(|raw| Stored::parse(raw.clone(), Kind::Availability).ok())
        .filter(|e| e.is_fresh(now_ms()))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    answer(
        entry.etag(),
        entry.body().to_vec(),
        etag::CACHE_CONTROL_AVAILABILITY,
        &headers,
    )
}

async fn event_hit(
    State(store): State<Store>,
    Path(event_id): Path<EventId>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/events/{event_id}");
    match store
        .get(&keys::event(event_id))
        .and_then(|raw| Stored::parse(raw.clone(), Kind::Document).ok())
        .filter(|e| entry::serves_request(e, &path, now_ms()))
    {
        Some(doc) => answer(
            doc.etag(),
            doc.body().to_vec(),
            etag::CACHE_CONTROL_EVENT,
            &headers,
        ),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The component's `answer`: 200 with the document, or 304 when If-None-Match matches.
fn answer(etag: &str, body: Vec<u8>, cache_control: &'static str, headers: &HeaderMap) -> Response {
    let if_none_match = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = if !if_none_match.is_empty() && etag::if_none_match(&if_none_match, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        tessera_domain::CACHE_HEADER,
        HeaderValue::from_static("hit"),
    );
    h.insert("tessera-served-by", HeaderValue::from_static("edge"));
    response
}
