//! `tessera-invalidator`: applies the ledger's invalidation messages (Redis channel
//! `tessera.invalidate`) to this edge node's cache.
//!
//! - `availability`: updates the zone in `avail/{show_id}` in place if the message's
//!   `version` is newer (and refreshes its "confirmed at" time for shedding); for a show
//!   that is not cached it moves the show's availability epoch, so a fetch in flight (which
//!   may have read older counters) does not keep what it read.
//! - `seats`: as `availability` for the zone's counters, and patches the zone's seats in
//!   `seats/{show_id}` by `version`; a map it cannot patch (`changes: null`, more than a
//!   message carries; a seat or zone it does not know) is deleted, and the next read
//!   fetches it.
//! - `catalog`: moves the catalog epoch, which evicts every event listing and the categories
//!   (they serve only under the epoch they were fetched under) and stops in-flight fetches
//!   from storing what they read before the change; deletes the event detail, its
//!   check-in keys, and the availability and seat maps of the event's shows, found in the event's show index and its cached
//!   detail. No key listing: a catalog message costs a bounded number of KV calls (at most
//!   `SHOWS_PER_EVENT_MAX` plus the detail's shows), however full the store is.
//! - `revocation`: adds the voided tickets to the event's cached check-in keys
//!   (`checkin_keys/{event_id}`) by the event's revocation count, re-rendering the body and
//!   ETag, so the check-in component refuses them without the ledger; a set it cannot extend
//!   (a missed message, `ticket_ids: null`) is deleted and refetched.
//! - `heartbeat` (`{"kind": "heartbeat", "seq": <last published>}`): changes nothing but
//!   the bookkeeping below; a `seq` above the last applied means a missed message.
//! - `seq`: a jump past last+1 (for a heartbeat: past last) means a message was missed, so
//!   every cached entry is dropped; `invalidation/last_seq` never moves backwards;
//!   duplicates are harmless. A message of an unknown `kind` is skipped but still counts in
//!   the sequence. The first message a store sees flushes too, unless the native host
//!   emptied the cache when it subscribed (`invalidation/subscribed_at_ms`). The flush is
//!   the one operation that lists every key (Spin's KV has no prefix delete); it happens
//!   only when messages were missed (a node's first message, a Redis outage), not per
//!   message.
//! - Every message handled, heartbeats included, renews the freshness lease: it records
//!   when the stream last spoke (`invalidation/stream_heard_at_ms`, wall-clock ms), and
//!   the catalog serves cached availability only while that is recent
//!   (`tessera_edge_cache::freshness`).
//!
//! Every change to an entry is written over exactly the entry it read (compare-and-swap,
//! `tessera_edge_cache::cas`): a fetch storing meanwhile makes the message apply again, to
//! the fetch's entry, rather than be overwritten by it or overwrite it. An entry that keeps
//! changing under the message (`cas::ATTEMPTS_MAX`) is dropped and its show's epoch moved.
//!
//! A malformed payload or a failing store returns `Err` (the host counts it); nothing here
//! traps. When applying fails, `last_seq` is not advanced (the next message sees a gap and
//! flushes) and the lease is not renewed.

use anyhow::Context as _;
use spin_sdk::key_value::Store;
use spin_sdk::redis_component;
use tessera_domain::catalog::EventDetail;
use tessera_domain::invalidation::{Change, Received, ZoneCounters};
use tessera_domain::seats::SeatStatus;
use tessera_domain::tickets::{CheckinKeys, Revoking};
use tessera_domain::{EventId, ShowId, TicketId, ZoneId};
use tessera_edge_cache::cas::Updated;
use tessera_edge_cache::entry::{AvailEntry, DocEntry, Entry};
use tessera_edge_cache::keys;
use tessera_edge_cache::queue::QueueEntry;
use tessera_edge_cache::seat_map::{Patch, SeatMapEntry};
use tessera_edge_cache::seq::{self, Numbered};
use tessera_edge_cache::show_index::ShowIndex;
use tessera_edge_cache::spin::{kv, now_ms};

#[redis_component]
fn on_message(message: Vec<u8>) -> anyhow::Result<()> {
    // The cause goes into the message itself: the trigger logs only the error's top line.
    let received = Received::parse(&message)
        .map_err(|e| anyhow::anyhow!("malformed invalidation message: {e}"))?;
    let store = Store::open(kv::STORE).context("cannot open KV store")?;
    let last = seq::parse_last(
        store.get(keys::LAST_SEQ)?.as_deref(),
        store.exists(keys::SUBSCRIBED_AT)?,
    );
    let numbered = match &received {
        Received::Heartbeat(heartbeat) => Numbered::Heartbeat(heartbeat.seq),
        other => Numbered::Change(other.seq()),
    };
    let decision = seq::decide(last, numbered);
    if last == seq::Last::Subscribed {
        // The host's mark covers the first message after it subscribed, once: consumed
        // before applying, so if applying fails neither the mark nor `last_seq` is left and
        // the next message flushes, as after any failed apply.
        store.delete(keys::SUBSCRIBED_AT)?;
    }
    if decision.flush {
        flush(&store)?;
        bump_epoch(&store, received.seq())?;
    }
    match received {
        Received::Change(invalidation) => apply(&store, invalidation.seq, invalidation.change)?,
        Received::Heartbeat(_) => {}
        Received::Unknown { seq, reason } => {
            eprintln!("tessera invalidator: ignoring message {seq} of an unknown shape: {reason}");
        }
    }
    if last != seq::Last::Applied(decision.new_last) {
        store.set(keys::LAST_SEQ, decision.new_last.to_string().as_bytes())?;
    }
    // Last: the lease is renewed only once the message is applied and counted.
    store.set(keys::STREAM_HEARD_AT, now_ms().to_string().as_bytes())?;
    Ok(())
}

/// Applies one change to the cache.
fn apply(store: &Store, seq: i64, change: Change) -> anyhow::Result<()> {
    if let Change::Catalog { event_id } = change {
        // Move the epoch first: a fetch that completes after this point will not store.
        bump_epoch(store, seq)?;
        return evict_event(store, event_id);
    }
    if let Change::Revocation {
        event_id,
        version,
        ticket_ids,
    } = change
    {
        return revoke_codes(store, event_id, version, ticket_ids.as_deref());
    }
    if let Change::Queue {
        event_id,
        serving,
        version,
    } = change
    {
        return advance_queue(store, event_id, serving, version);
    }
    // A `seats` message also patches the cached seat map. Seat states change only with a
    // `seats` message (an `availability` message for an assigned zone is an edit of its
    // name or price), so the map is read only for these.
    if let Change::Seats { counters, changes } = &change {
        patch_seat_map(
            store,
            seq,
            (counters.show_id, counters.zone_id),
            counters.version,
            changes.as_deref(),
        )?;
    }
    // `availability` and `seats` messages both carry the zone's counters.
    match change.zone_counters() {
        Some(zone) => apply_counters(store, seq, zone),
        None => Ok(()),
    }
}

/// A zone's new counters into its show's cached availability, by version, written over
/// exactly the entry it read (a fetch storing meanwhile makes it apply again to the newer
/// entry, where an older message changes nothing).
fn apply_counters(store: &Store, seq: i64, zone: ZoneCounters) -> anyhow::Result<()> {
    let key = keys::availability(zone.show_id);
    let now = now_ms();
    let mut cached = false;
    let updated = kv::update_entry(&key, |entry: Option<AvailEntry>| {
        cached = entry.is_some();
        let mut entry = entry?;
        let ZoneCounters {
            zone_id,
            available,
            held,
            sold,
            version,
            ..
        } = zone;
        // Re-rendered: what hits serve is the body and ETag stored here.
        entry
            .apply_message(zone_id, available, held, sold, version, now)
            .then_some(entry)
    })?;
    match updated {
        Updated::Contended => drop_live(store, seq, zone.show_id, &key),
        // Not cached: nothing to update, but a fetch of this show may be in flight with
        // counters older than this message; tell it not to keep them.
        Updated::Kept if !cached => bump_show_epoch(store, seq, zone.show_id),
        Updated::Written(..) | Updated::Kept => Ok(()),
    }
}

/// A `seats` message's changed seats into the show's cached seat map, by version, written
/// over exactly the map it read; a map the message cannot patch (too many changes to
/// carry, a seat or zone it does not know) is dropped, and the next read fetches it.
fn patch_seat_map(
    store: &Store,
    seq: i64,
    (show_id, zone_id): (ShowId, ZoneId),
    version: i64,
    changes: Option<&[(i32, SeatStatus)]>,
) -> anyhow::Result<()> {
    let key = keys::seat_map(show_id);
    let now = now_ms();
    let (mut cached, mut refetch) = (false, false);
    let updated = kv::update_entry(&key, |entry: Option<SeatMapEntry>| {
        cached = entry.is_some();
        let mut entry = entry?;
        match entry.apply(zone_id, version, changes, now) {
            Patch::Applied => Some(entry),
            Patch::Unchanged => None,
            Patch::Refetch => {
                refetch = true;
                None
            }
        }
    })?;
    match updated {
        Updated::Contended => drop_live(store, seq, show_id, &key),
        Updated::Kept if refetch => drop_live(store, seq, show_id, &key),
        // As for availability: a fetch in flight may have read older states.
        Updated::Kept if !cached => bump_show_epoch(store, seq, show_id),
        Updated::Written(..) | Updated::Kept => Ok(()),
    }
}

/// Drops a show's live entry this message could not apply (other writers kept changing it,
/// or the message cannot patch it): the show's epoch moves first, so a fetch in flight,
/// which may have read older counters, does not store them again; the next read fetches.
fn drop_live(store: &Store, seq: i64, show_id: ShowId, key: &str) -> anyhow::Result<()> {
    bump_show_epoch(store, seq, show_id)?;
    store.delete(key)?;
    Ok(())
}

/// A `revocation` message's tickets into the event's cached check-in keys, by version,
/// written over exactly the set it read, so the next scan of one is refused here; a set the
/// message cannot extend (a missed message, no list, unreadable) is dropped and refetched.
/// Not cached: nothing to do — a fetch in flight may keep an older set until its TTL, which
/// costs only a forward: the ledger refuses a void ticket from its row.
fn revoke_codes(
    store: &Store,
    event_id: EventId,
    version: i64,
    ticket_ids: Option<&[TicketId]>,
) -> anyhow::Result<()> {
    let key = keys::checkin_keys(event_id);
    let mut refetch = false;
    let updated = kv::update_entry(&key, |entry: Option<DocEntry>| {
        let mut entry = entry?;
        let Ok(mut document) = serde_json::from_str::<CheckinKeys>(&entry.body) else {
            refetch = true;
            return None;
        };
        match document.revoke(version, ticket_ids) {
            Revoking::Applied => match serde_json::to_string(&document) {
                Ok(body) => {
                    entry.body = body;
                    entry.etag = document.etag();
                    Some(entry)
                }
                Err(_) => {
                    refetch = true;
                    None
                }
            },
            Revoking::Stale => None,
            Revoking::Refetch => {
                refetch = true;
                None
            }
        }
    })?;
    if refetch || matches!(updated, Updated::Contended) {
        store.delete(&key)?;
    }
    Ok(())
}

/// Tells fetches of `show_id`'s live documents in flight not to keep what they read.
fn bump_show_epoch(store: &Store, seq: i64, show_id: ShowId) -> anyhow::Result<()> {
    store.set(
        &keys::availability_epoch(show_id),
        format!("{seq}-{}", now_ms()).as_bytes(),
    )?;
    Ok(())
}

/// An entry, decoded from its stored form; a corrupt one (an older version's JSON
/// included) is deleted and reads as absent.
fn get_entry<T: Entry>(store: &Store, key: &str) -> anyhow::Result<Option<T>> {
    let Some(bytes) = store.get(key)? else {
        return Ok(None);
    };
    match T::decode(bytes) {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            eprintln!("tessera invalidator: dropping corrupt KV entry {key}: {e}");
            store.delete(key)?;
            Ok(None)
        }
    }
}

/// The epoch must differ from every earlier value, also across a flush: the seq plus the
/// wall clock (a replayed old seq still yields a new value).
fn bump_epoch(store: &Store, seq: i64) -> anyhow::Result<()> {
    store.set(
        keys::CATALOG_EPOCH,
        format!("{seq}-{}", now_ms()).as_bytes(),
    )?;
    Ok(())
}

/// Drops every cache entry (bookkeeping under `invalidation/` stays).
fn flush(store: &Store) -> anyhow::Result<()> {
    for key in store.get_keys()? {
        if keys::is_cache_entry(&key) {
            store.delete(&key)?;
        }
    }
    Ok(())
}

/// Deletes the event detail, the event's cached availability and its show index. The
/// listings and categories were evicted by the epoch move that precedes this.
fn evict_event(store: &Store, event_id: EventId) -> anyhow::Result<()> {
    let event_key = keys::event(event_id);
    let index_key = keys::event_shows(event_id);
    // The detail's shows too: they cover a show whose index write a concurrent writer lost.
    let detail_shows: Vec<ShowId> = get_entry::<DocEntry>(store, &event_key)?
        .and_then(|doc| serde_json::from_str::<EventDetail>(&doc.body).ok())
        .map(|detail| detail.shows.iter().map(|s| s.show_id).collect())
        .unwrap_or_default();
    let index = ShowIndex::decode(store.get(&index_key)?.as_deref()).unwrap_or_else(|e| {
        eprintln!("tessera invalidator: {index_key}: {e}; evicting the detail's shows only");
        ShowIndex::default()
    });
    for show_id in index.union(detail_shows) {
        store.delete(&keys::availability(show_id))?;
        store.delete(&keys::seat_map(show_id))?;
    }
    store.delete(&index_key)?;
    store.delete(&event_key)?;
    store.delete(&keys::checkin_keys(event_id))?;
    // The queue's settings are part of the event: read them again with its state.
    store.delete(&keys::queue(event_id))?;
    Ok(())
}

/// A `queue` message: the cached queue moves on to `serving` if the message is newer,
/// written over exactly the entry it read. An event whose queue is not cached is left
/// alone: its first poll reads the state, which already includes this move.
fn advance_queue(
    store: &Store,
    event_id: EventId,
    serving: i64,
    version: i64,
) -> anyhow::Result<()> {
    let key = keys::queue(event_id);
    let updated = kv::update_entry(&key, |entry: Option<QueueEntry>| {
        let mut entry = entry?;
        entry.advance(serving, version).then_some(entry)
    })?;
    if matches!(updated, Updated::Contended) {
        store.delete(&key)?;
    }
    Ok(())
}
