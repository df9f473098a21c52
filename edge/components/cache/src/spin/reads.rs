//! The read-through cache shared by the catalog component (which serves these documents)
//! and the holds component (which validates against them): a fresh entry is a hit; a miss
//! or an expired entry is fetched from the ledger, stored, and returned. Ledger answers
//! other than 200 are relayed unchanged and never cached (see `README.md` on 404s).
//!
//! Entries come back as stored ([`Stored`]): a hit is served from the bytes the store
//! returned, checked in place, never parsed; a fetch encodes its entry once, stores those
//! bytes and serves them. Writers that need the fields decode them ([`availability`]).
//!
//! What is stored is findable by the invalidator without a scan: an availability entry is
//! listed in its event's show index before it is stored; listings and the categories are
//! stamped with the catalog epoch they were fetched under and serve only under it.
//! A fetched availability or seat map is merged into the entry as it is when written and
//! written over exactly that ([`crate::cas`]), so a message applied meanwhile is merged,
//! never overwritten, and the invalidator's writes cannot undo a fetch's either.
//!
//! Availability and seat maps ([`Live`]) are served from the cache only while the
//! invalidation stream is fresh ([`crate::freshness`]); otherwise [`live_stored`] reads through to the ledger
//! (coalesced by the same fill lease as misses) and the answer is a `bypass`.

use spin_sdk::http::Response;
use spin_sdk::key_value::Store;
use tessera_domain::catalog::{Availability, EventDetail};
use tessera_domain::seats::SeatMap;
use tessera_domain::{EventId, ShowId};

use super::vars::{Settings, Variables};
use super::{kv, ledger, now_ms, respond};
use crate::cas::Updated;
use crate::entry::{self, AvailEntry, DocEntry, Entry};
use crate::freshness::{self, Served, Trust};
use crate::keys::{self, PrefixedId};
use crate::seat_map::SeatMapEntry;
use crate::show_index::{Insert, ShowIndex};
use crate::stored::{Kind, Stored};

/// A value and how it was served (the `Tessera-Cache` header).
pub struct Read<T> {
    pub value: T,
    pub served: Served,
}

/// A ledger answer that is not a 200: relayed as is, marked as fetched (`served`).
fn relay_fetched(answer: &Response, served: Served) -> Response {
    let mut response = ledger::relay(answer);
    response.set_header(respond::CACHE, served.header_value());
    response
}

/// How far cached availability may be trusted now: by when the invalidation stream last
/// spoke.
pub fn trust(store: &Store, settings: &Settings) -> Trust {
    stream_trust(store, settings.stream_freshness_ms).0
}

/// The trust cached availability deserves, and the instant it was judged at. The clock is
/// read after the store, so a heartbeat recorded meanwhile does not look like one from the
/// future.
fn stream_trust(store: &Store, window_ms: u64) -> (Trust, i64) {
    let heard_at = kv::get_raw(store, keys::STREAM_HEARD_AT);
    let now = now_ms();
    let trust = freshness::trust(
        freshness::parse_heard_at(heard_at.as_deref()),
        now,
        window_ms,
    );
    (trust, now)
}

/// The catalog epoch before a fetch; storing is skipped if it moved during the fetch. An
/// absent epoch is created, so that emptying the store (which removes it) also counts as
/// a move.
fn epoch(store: &Store) -> Option<Vec<u8>> {
    kv::get_raw(store, keys::CATALOG_EPOCH).or_else(|| {
        let fresh = format!("start-{}", now_ms()).into_bytes();
        kv::set_raw(store, keys::CATALOG_EPOCH, &fresh).then_some(fresh)
    })
}

/// The epochs a fetch's entry depends on, as they were when the fetch began: an eviction
/// moves one, and then what the fetch read must not be stored.
struct Epochs {
    /// The catalog epoch (created if absent, [`epoch`]).
    catalog: Option<Vec<u8>>,
    /// A show's availability epoch (its key and value), for the show's live entries.
    show: Option<(String, Option<Vec<u8>>)>,
}

impl Epochs {
    /// What a catalog document depends on: the catalog epoch, as it is now.
    fn catalog(store: &Store) -> Self {
        Self {
            catalog: epoch(store),
            show: None,
        }
    }

    /// What a show's availability or seat map depends on: the catalog epoch and the show's
    /// own, as they are now.
    fn of_show(store: &Store, show_id: ShowId) -> Self {
        let catalog = epoch(store);
        let key = keys::availability_epoch(show_id);
        let before = kv::get_raw(store, &key);
        Self {
            catalog,
            show: Some((key, before)),
        }
    }

    fn unmoved(&self, store: &Store) -> bool {
        kv::get_raw(store, keys::CATALOG_EPOCH) == self.catalog
            && self
                .show
                .as_ref()
                .is_none_or(|(key, before)| kv::get_raw(store, key) == *before)
    }
}

/// Stores `bytes` under `key` unless one of the `epochs` moved; checks again after
/// writing, because an eviction may land between the check and the write — then the entry
/// just written is deleted (the next read refetches). Returns whether it stayed.
fn store_unless_moved(store: &Store, key: &str, bytes: &[u8], epochs: &Epochs) -> bool {
    if !(epochs.unmoved(store) && kv::set_raw(store, key, bytes)) {
        return false;
    }
    if epochs.unmoved(store) {
        return true;
    }
    kv::delete(store, key);
    false
}

/// Whether `show_id` is listed in `event_id`'s show index, adding it if not — over exactly
/// the index it read, so two fetches adding different shows cannot drop each other's
/// ([`kv::update_entry`]). `false`: the index is full, or kept changing under this writer,
/// or could not be written; the caller must not cache the show.
fn index_show(event_id: EventId, show_id: ShowId) -> bool {
    let key = keys::event_shows(event_id);
    let mut full = false;
    let updated = kv::update_entry(&key, |index: Option<ShowIndex>| {
        match index.unwrap_or_default().insert(show_id) {
            Insert::Present => None,
            Insert::Full => {
                full = true;
                None
            }
            Insert::Added(index) => Some(index),
        }
    });
    match updated {
        Ok(Updated::Written(..)) => true,
        Ok(Updated::Kept) => !full,
        Ok(Updated::Contended) => false,
        Err(e) => {
            eprintln!("tessera edge: cannot list show {show_id} in {key}: {e}");
            false
        }
    }
}

/// Whether `show_id` is listed in `event_id`'s show index (read only). A writer updating an
/// `avail/` entry in place checks it after writing: if a catalog message evicted the entry
/// between the writer's read and write, the index is gone too, and the resurrected copy
/// must go (no later catalog message would find it).
pub fn is_indexed(store: &Store, event_id: EventId, show_id: ShowId) -> bool {
    let stored = kv::get_raw(store, &keys::event_shows(event_id));
    ShowIndex::decode(stored.as_deref()).is_ok_and(|index| index.contains(show_id))
}

/// Stores a fetched entry of a show where a catalog message will find it: listed in its
/// event's index first; then `merge` is given the entry as it is now and its result written
/// over exactly that ([`kv::update_entry`]: an invalidator writing meanwhile makes it merge
/// again, never lose the newer zone), unless an epoch moved since the fetch began; checked
/// again after writing — an eviction between the last look and the write, or an index
/// rewrite that dropped the listing — and deleted if so (the next read refetches). Returns
/// the stored bytes; `None` if nothing was stored (the caller serves its merge anyway).
fn store_live<T: Entry>(
    store: &Store,
    (event_id, show_id): (EventId, ShowId),
    key: &str,
    epochs: &Epochs,
    mut merge: impl FnMut(Option<T>) -> Option<T>,
) -> Option<Vec<u8>> {
    if !index_show(event_id, show_id) {
        return None;
    }
    let updated = kv::update_entry(key, |cached| {
        if !epochs.unmoved(store) {
            return None;
        }
        merge(cached)
    });
    let bytes = match updated {
        Ok(Updated::Written(_, bytes)) => bytes,
        Ok(Updated::Kept | Updated::Contended) => return None,
        Err(e) => {
            eprintln!("tessera edge: cannot store {key}: {e}");
            return None;
        }
    };
    if epochs.unmoved(store) && index_show(event_id, show_id) {
        return Some(bytes);
    }
    kv::delete(store, key);
    None
}

/// How long one instance's fetch of a missing entry may keep others waiting (well under
/// the guest deadline; a fetch taking longer than this is already failing).
const FILL_LEASE_MS: i64 = 3_000;
/// Longest a reader spends waiting for others' fetches before fetching itself.
const FILL_GIVE_UP_MS: i64 = 5_000;
const FILL_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a claimant waits before reading its claim back (other claims land meanwhile).
const FILL_CLAIM_SETTLE: std::time::Duration = std::time::Duration::from_millis(2);

/// A claim on fetching one missing entry, released when dropped (also on error paths).
struct FillLease<'a> {
    store: &'a Store,
    key: Option<String>,
}

impl Drop for FillLease<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            kv::delete(self.store, &key);
        }
    }
}

enum Fill<'a, T> {
    /// Another instance filled the entry while this one waited.
    Ready(T),
    /// Fetch it: this instance holds the lease (or gave up waiting for its holder).
    Fetch(FillLease<'a>),
}

/// Coalesces misses on a cold cache (a node just started or resubscribed, mid-sale): the
/// first instance to miss takes a lease and fetches; others that miss meanwhile wait for
/// its entry instead of all asking the ledger. A claim is a unique token written and read
/// back after a moment (not a compare-and-swap: Spin's store writes over an absent key
/// unconditionally): of instances claiming at once, the last writer keeps the lease and
/// the others wait. A few may still both fetch — an extra ledger read, never a wrong
/// answer. A holder that releases without an entry hands the lease to the next claimant;
/// nobody waits past `FILL_GIVE_UP_MS`.
fn fill_or_wait<'a, T>(store: &'a Store, key: &str, fresh: impl Fn() -> Option<T>) -> Fill<'a, T> {
    let lease = keys::fill_lease(key);
    let give_up_at = now_ms() + FILL_GIVE_UP_MS;
    let holder_until = |value: Option<Vec<u8>>| {
        value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.split_once('-')?.0.parse::<i64>().ok())
    };
    loop {
        let now = now_ms();
        if now >= give_up_at {
            return Fill::Fetch(FillLease { store, key: None });
        }
        let held = holder_until(kv::get_raw(store, &lease)).is_some_and(|until| until > now);
        if !held {
            // Free (never taken, released, or lapsed): claim it.
            let token = format!("{}-{:016x}", now + FILL_LEASE_MS, unique());
            if !kv::set_raw(store, &lease, token.as_bytes()) {
                return Fill::Fetch(FillLease { store, key: None });
            }
            std::thread::sleep(FILL_CLAIM_SETTLE);
            if kv::get_raw(store, &lease).as_deref() == Some(token.as_bytes()) {
                return Fill::Fetch(FillLease {
                    store,
                    key: Some(lease),
                });
            }
        }
        // Someone else holds it: wait for their entry. If they release without one (their
        // fetch failed, or an eviction undid their write), the next round claims again.
        std::thread::sleep(FILL_POLL);
        if let Some(value) = fresh() {
            return Fill::Ready(value);
        }
    }
}

/// A random token (WASI's random source, through std's hasher seeding).
fn unique() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(now_ms())
}

/// A show's documents that every hold moves, kept current by the invalidation stream and
/// so served from the cache only while it is fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// `avail/{show_id}`: `GET /v1/shows/{show_id}/availability`.
    Availability,
    /// `seats/{show_id}`: `GET /v1/shows/{show_id}/seats`.
    SeatMap,
}

impl Live {
    fn key(self, show_id: ShowId) -> PrefixedId {
        match self {
            Self::Availability => PrefixedId::availability(show_id),
            Self::SeatMap => PrefixedId::seat_map(show_id),
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Availability => Kind::Availability,
            Self::SeatMap => Kind::SeatMap,
        }
    }
}

/// The catalog's read of a live document: how far the cache may be trusted now, then the
/// entry as stored (a hit reads one variable and two keys).
pub async fn served_live(
    store: &Store,
    settings: &impl Variables,
    live: Live,
    show_id: ShowId,
) -> Result<Read<Stored>, Response> {
    let (trust, now) = stream_trust(store, settings.stream_freshness_ms()?);
    live_stored(store, settings, live, show_id, trust, now).await
}

/// `live`'s entry for `show_id` as stored, merged per zone with what is cached when
/// fetched. Under [`Trust::Cached`] an entry fresh at `now_ms` is a hit and a missing one a
/// miss; under [`Trust::ReadThrough`] only an entry fetched since the request arrived will
/// do (this instance's fetch or, coalesced, another's) and the answer is a bypass.
pub async fn live_stored(
    store: &Store,
    settings: &impl Variables,
    live: Live,
    show_id: ShowId,
    trust: Trust,
    now_ms_at_arrival: i64,
) -> Result<Read<Stored>, Response> {
    let key = live.key(show_id);
    let (cached, fetched) = match trust {
        Trust::Cached => (Served::Hit, Served::Miss),
        Trust::ReadThrough { .. } => (Served::Bypass, Served::Bypass),
    };
    let usable_at = |now: i64| {
        move |entry: &Stored| {
            entry.is_fresh(now)
                && match trust {
                    Trust::Cached => true,
                    Trust::ReadThrough { since_ms } => entry.fetched_since(since_ms),
                }
        }
    };
    let read = || kv::get_stored(store, key.as_str(), live.kind());
    if let Some(entry) = read().filter(usable_at(now_ms_at_arrival)) {
        return Ok(Read {
            value: entry,
            served: cached,
        });
    }
    let fresh = || read().filter(usable_at(now_ms()));
    let _lease = match fill_or_wait(store, key.as_str(), fresh) {
        Fill::Ready(entry) => {
            return Ok(Read {
                value: entry,
                served: cached,
            })
        }
        Fill::Fetch(lease) => lease,
    };
    let entry = match live {
        Live::Availability => fetch_availability(store, settings, show_id, fetched).await?,
        Live::SeatMap => fetch_seat_map(store, settings, show_id, fetched).await?,
    };
    Ok(Read {
        value: entry,
        served: fetched,
    })
}

/// `avail/{show_id}` decoded, for the hold checks (see [`live_stored`]).
pub async fn availability(
    store: &Store,
    settings: &impl Variables,
    show_id: ShowId,
    trust: Trust,
) -> Result<Read<AvailEntry>, Response> {
    let read = live_stored(
        store,
        settings,
        Live::Availability,
        show_id,
        trust,
        now_ms(),
    )
    .await?;
    let value = AvailEntry::decode(read.value.into_bytes())
        .map_err(|e| respond::internal(&format!("availability of {show_id}: {e}")))?;
    Ok(Read {
        value,
        served: read.served,
    })
}

/// Fetches the show's availability and stores it merged with the entry as it is when
/// written ([`store_live`]), where a catalog message will find it (unless an epoch moved
/// during the fetch).
async fn fetch_availability(
    store: &Store,
    settings: &impl Variables,
    show_id: ShowId,
    served: Served,
) -> Result<Stored, Response> {
    let key = PrefixedId::availability(show_id);
    let ttl_ms = settings.availability_ttl_ms()?;
    let now = now_ms();
    let epochs = Epochs::of_show(store, show_id);
    let answer = ledger::get(settings, &format!("/v1/shows/{show_id}/availability")).await?;
    if *answer.status() != 200 {
        return Err(relay_fetched(&answer, served));
    }
    let fresh: Availability = serde_json::from_slice(answer.body()).map_err(|e| {
        eprintln!("tessera edge: unreadable availability for {show_id} from the ledger: {e}");
        respond::unavailable("the ledger answered unreadably, retry shortly")
    })?;
    // The confirmation time is the fetch's start (conservative for shedding).
    let merge =
        |cached: Option<&AvailEntry>| AvailEntry::merge_fetch(cached, fresh.clone(), now, ttl_ms);
    let owner = (fresh.event_id, fresh.show_id);
    let unstorable =
        |e: &dyn std::fmt::Display| respond::internal(&format!("availability of {show_id}: {e}"));
    let bytes = match store_live(store, owner, key.as_str(), &epochs, |cached| {
        Some(merge(cached.as_ref()))
    }) {
        Some(bytes) => bytes,
        None => merge(kv::get_entry(store, key.as_str()).as_ref())
            .encode()
            .map_err(|e| unstorable(&e))?,
    };
    Stored::parse(bytes, Kind::Availability).map_err(|e| unstorable(&e))
}

/// Fetches the show's seat map and stores it merged (per zone by version) with the entry
/// as it is when written ([`store_live`]), where a catalog message will find it (unless an
/// epoch moved during the fetch). It lives as long as availability: both are kept current
/// by messages.
async fn fetch_seat_map(
    store: &Store,
    settings: &impl Variables,
    show_id: ShowId,
    served: Served,
) -> Result<Stored, Response> {
    let key = PrefixedId::seat_map(show_id);
    let ttl_ms = settings.availability_ttl_ms()?;
    let now = now_ms();
    let epochs = Epochs::of_show(store, show_id);
    let answer = ledger::get(settings, &format!("/v1/shows/{show_id}/seats")).await?;
    if *answer.status() != 200 {
        return Err(relay_fetched(&answer, served));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        eprintln!("tessera edge: unreadable seat map for {show_id} from the ledger: {e}");
        respond::unavailable("the ledger answered unreadably, retry shortly")
    };
    let fresh: SeatMap = serde_json::from_slice(answer.body()).map_err(|e| unreadable(&e))?;
    let owner = (fresh.event_id, fresh.show_id);
    let merge = |cached: Option<&SeatMapEntry>| {
        SeatMapEntry::merge_fetch(cached, fresh.clone(), now, ttl_ms)
    };
    let mut corrupt = None;
    let stored = store_live(store, owner, key.as_str(), &epochs, |cached| {
        merge(cached.as_ref()).map_err(|e| corrupt = Some(e)).ok()
    });
    if let Some(e) = corrupt {
        return Err(unreadable(&e));
    }
    let unstorable =
        |e: &dyn std::fmt::Display| respond::internal(&format!("seat map of {show_id}: {e}"));
    let bytes = match stored {
        Some(bytes) => bytes,
        None => merge(kv::get_entry(store, key.as_str()).as_ref())
            .map_err(|e| unreadable(&e))?
            .encode()
            .map_err(|e| unstorable(&e))?,
    };
    Stored::parse(bytes, Kind::SeatMap).map_err(|e| unstorable(&e))
}

/// A catalog document at `path_and_query`, cached under `key` (`None`: never cached), as
/// stored; `now_ms_at_arrival` judges the first look at the cache.
pub async fn document(
    store: &Store,
    settings: &impl Variables,
    key: Option<&str>,
    path_and_query: &str,
    etag_of: fn(&[u8]) -> String,
    now_ms_at_arrival: i64,
) -> Result<Read<Stored>, Response> {
    let fresh_at = |now: i64| key.and_then(|k| cached_document(store, k, path_and_query, now));
    if let Some(entry) = fresh_at(now_ms_at_arrival) {
        return Ok(Read {
            value: entry,
            served: Served::Hit,
        });
    }
    let _lease = match key.map(|k| fill_or_wait(store, k, || fresh_at(now_ms()))) {
        Some(Fill::Ready(entry)) => {
            return Ok(Read {
                value: entry,
                served: Served::Hit,
            })
        }
        Some(Fill::Fetch(lease)) => Some(lease),
        None => None,
    };
    let ttl_ms = settings.catalog_ttl_ms()?;
    let now = now_ms();
    let epochs = Epochs::catalog(store);
    let answer = ledger::get(settings, path_and_query).await?;
    if *answer.status() != 200 {
        return Err(relay_fetched(&answer, Served::Miss));
    }
    let body = String::from_utf8(answer.into_body()).map_err(|_| {
        eprintln!("tessera edge: non-UTF-8 body from the ledger for {path_and_query}");
        respond::unavailable("the ledger answered unreadably, retry shortly")
    })?;
    let etag = etag_of(body.as_bytes());
    let entry = DocEntry::new(path_and_query.to_owned(), body, etag, now, ttl_ms);
    let value = store_document(store, key, entry, &epochs)?;
    Ok(Read {
        value,
        served: Served::Miss,
    })
}

/// The entry under `key` if it may answer `path_and_query` at `now_ms`: fresh, fetched for
/// that very request (listing slots are shared by hash), and for entries evicted by epoch,
/// fetched under the current catalog epoch.
fn cached_document(store: &Store, key: &str, path_and_query: &str, now_ms: i64) -> Option<Stored> {
    let entry = kv::get_stored(store, key, Kind::Document)
        .filter(|e| entry::serves_request(e, path_and_query, now_ms))?;
    if keys::evicted_by_epoch(key)
        && !entry::is_current(&entry, kv::get_raw(store, keys::CATALOG_EPOCH).as_deref())
    {
        return None;
    }
    Some(entry)
}

/// Stores a fetched document under `key` unless the catalog epoch moved during the fetch,
/// stamped with that epoch if a catalog message evicts it by epoch (an epoch that is not
/// text, which the components never write, leaves it uncached). Returns it as stored, to
/// serve.
fn store_document(
    store: &Store,
    key: Option<&str>,
    entry: DocEntry,
    epochs: &Epochs,
) -> Result<Stored, Response> {
    let stamp = epochs
        .catalog
        .clone()
        .and_then(|b| String::from_utf8(b).ok());
    let (entry, key) = match key {
        Some(key) if keys::evicted_by_epoch(key) => match stamp {
            Some(stamp) => (entry.under_epoch(stamp), Some(key)),
            None => (entry, None),
        },
        other => (entry, other),
    };
    let unstorable =
        |e: &dyn std::fmt::Display| respond::internal(&format!("document {}: {e}", entry.source));
    let bytes = entry.encode().map_err(|e| unstorable(&e))?;
    if let Some(key) = key {
        store_unless_moved(store, key, &bytes, epochs);
    }
    Stored::parse(bytes, Kind::Document).map_err(|e| unstorable(&e))
}

/// `GET /v1/events/{event_id}` through the cache.
pub async fn event_document(
    store: &Store,
    settings: &impl Variables,
    event_id: EventId,
    now_ms_at_arrival: i64,
) -> Result<Read<Stored>, Response> {
    let key = PrefixedId::event(event_id);
    let path = PrefixedId::event_path(event_id);
    document(
        store,
        settings,
        Some(key.as_str()),
        path.as_str(),
        crate::etag::for_event_body,
        now_ms_at_arrival,
    )
    .await
}

/// The event detail, parsed (for the hold rules).
pub async fn event_detail(
    store: &Store,
    settings: &impl Variables,
    event_id: EventId,
) -> Result<EventDetail, Response> {
    let read = event_document(store, settings, event_id, now_ms()).await?;
    serde_json::from_slice(read.value.body()).map_err(|e| {
        eprintln!("tessera edge: unreadable event {event_id}: {e}");
        kv::delete(store, &keys::event(event_id));
        respond::unavailable("the event could not be read, retry shortly")
    })
}

/// The event's queue: cached ([`crate::queue::QueueEntry`]) while fresh, else read from
/// the ledger (`GET /v1/events/{id}/queue/state`) and cached for `availability_ttl_ms`.
/// A ledger answer other than 200 (404: no such published event) is relayed.
pub async fn queue_state(
    store: &Store,
    settings: &impl Variables,
    event_id: EventId,
) -> Result<tessera_domain::queue::QueueState, Response> {
    use crate::queue::QueueEntry;
    let key = keys::queue(event_id);
    if let Some(entry) = kv::get_entry::<QueueEntry>(store, &key) {
        if entry.is_fresh(now_ms()) {
            return Ok(entry.state);
        }
    }
    let answer = ledger::get(settings, &format!("/v1/events/{event_id}/queue/state")).await?;
    if *answer.status() != 200 {
        return Err(relay_fetched(&answer, Served::Miss));
    }
    let state: tessera_domain::queue::QueueState = serde_json::from_slice(answer.body())
        .map_err(|e| respond::internal(&format!("the ledger's queue state is unreadable: {e}")))?;
    let ttl_ms = i64::try_from(settings.availability_ttl_ms()?).unwrap_or(i64::MAX);
    let fetched = QueueEntry {
        state,
        expires_at_ms: now_ms().saturating_add(ttl_ms),
    };
    // Written over exactly the entry it merged with: a message applied meanwhile makes it
    // merge again rather than be overwritten.
    match kv::update_entry(&key, |stored: Option<QueueEntry>| {
        Some(fetched.over(stored.as_ref()))
    }) {
        Ok(Updated::Written(entry, _)) => Ok(entry.state),
        Ok(Updated::Kept | Updated::Contended) => {
            Ok(fetched.over(kv::get_entry(store, &key).as_ref()).state)
        }
        Err(e) => {
            eprintln!("tessera edge: cannot store {key}: {e}");
            Ok(fetched.state)
        }
    }
}
