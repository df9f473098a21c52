//! The Redis trigger: subscribe to the channel, hand each message to a fresh instance of
//! the component, in order. If Redis goes away the subscription is re-established with
//! backoff; on every (re)subscription the node's cache entries are dropped, because
//! messages published while it was not listening are lost (pub/sub keeps nothing) and a
//! cache that missed one cannot know what is stale. What is not cache stays (the
//! components' bookkeeping and the holds this node forwarded: see
//! [`crate::kv::KvStore::drop_cache_entries`]). The components also check the messages'
//! `seq` for gaps, which covers a gap this host cannot see.
//!
//! Having emptied the cache, the host also starts the freshness lease (DESIGN.md) and a
//! new count: nothing cached predates the subscription, so it records the subscription as
//! the stream speaking (`invalidation/stream_heard_at_ms`), forgets `last_seq` and marks
//! `invalidation/subscribed_at_ms`, so the first message needs no second flush
//! (`tessera_edge_cache::seq::Last::Subscribed`). Spin has no such hook: there the lease
//! starts with the first heartbeat, within a second. Losing the subscription ends nothing
//! here: the lease lapses by itself after the components' `stream_freshness_ms`, as under
//! Spin, and `/health` says `degraded` at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tessera_edge_cache::keys;
use tokio_util::sync::CancellationToken;

use crate::kv::KvStore;
use crate::runtime::{is_deadline, App, Entry};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A subscribed connection is pinged this often; no answer within [`PING_TIMEOUT`] counts
/// as a lost connection. Without it a half-open connection (a peer that vanished without
/// closing) would look subscribed for ever while the node heard nothing.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// One `[[trigger.redis]]`, resolved.
#[derive(Debug)]
pub struct Subscription {
    pub address: String,
    pub channel: String,
    pub component: String,
    /// Whether the subscription is live (reported by `/health`).
    pub connected: AtomicBool,
}

pub async fn run(app: Arc<App>, subscription: Arc<Subscription>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    let channel = subscription.channel.clone();
    loop {
        match subscribe(&subscription).await {
            Ok(pubsub) => {
                backoff = BACKOFF_MIN;
                let dropped = start_afresh(&app.kv);
                subscription.connected.store(true, Ordering::Relaxed);
                metrics::gauge!("edge_redis_connected", "channel" => channel.clone()).set(1.0);
                metrics::counter!("edge_redis_resubscriptions_total", "channel" => channel.clone())
                    .increment(1);
                tracing::info!(channel = %channel, dropped, "subscribed; node cache entries dropped");
                let (mut sink, mut messages) = pubsub.split();
                let mut ping = tokio::time::interval_at(
                    tokio::time::Instant::now() + PING_INTERVAL,
                    PING_INTERVAL,
                );
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        message = messages.next() => match message {
                            Some(message) => deliver(&app, &subscription, message.get_payload_bytes()).await,
                            None => break,
                        },
                        _ = ping.tick() => {
                            let answered = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(answered, Ok(Ok(_))) {
                                tracing::warn!(channel = %channel, "Redis did not answer a ping");
                                break;
                            }
                        }
                    }
                }
                subscription.connected.store(false, Ordering::Relaxed);
                // The freshness lease is left to lapse (`stream_freshness_ms`), as under Spin,
                // which cannot see the subscription: both hosts bound staleness the same way.
                metrics::gauge!("edge_redis_connected", "channel" => channel.clone()).set(0.0);
                tracing::warn!(channel = %channel, "Redis subscription lost; reconnecting");
            }
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, retry_in_ms = backoff.as_millis(), "cannot subscribe to Redis");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// On (re)subscribing: drop the cache entries (messages may have been missed), then start
/// the freshness lease and a new count (see the module docs). Returns how many entries
/// were dropped.
fn start_afresh(kv: &KvStore) -> usize {
    let dropped = kv.drop_cache_entries();
    kv.delete(keys::LAST_SEQ);
    // The components' clock (WASI's wall clock is the system's): wall-clock ms.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string();
    for key in [keys::SUBSCRIBED_AT, keys::STREAM_HEARD_AT] {
        // Only a full store refuses, and the cache was just emptied; without these marks
        // the node reads through until the first heartbeat and flushes once more.
        if let Err(e) = kv.set(key.to_owned(), now_ms.clone().into_bytes()) {
            tracing::warn!(key, error = ?e, "cannot record the subscription");
        }
    }
    dropped
}

async fn subscribe(subscription: &Subscription) -> redis::RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(subscription.address.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&subscription.channel).await?;
    Ok(pubsub)
}

/// Run one message through a fresh instance; failures are counted, never fatal.
async fn deliver(app: &App, subscription: &Subscription, payload: &[u8]) {
    let id = subscription.component.as_str();
    let started = Instant::now();
    let outcome = match handle(app, id, payload).await {
        Ok(Ok(())) => "applied",
        Ok(Err(())) => "rejected",
        Err(e) if is_deadline(&e) => "deadline",
        Err(e) => {
            tracing::warn!(component = id, error = ?e, "Redis message handler trapped");
            "trap"
        }
    };
    metrics::counter!("edge_invalidations_total", "component" => id.to_owned(), "outcome" => outcome)
        .increment(1);
    // Instantiation included: what one message costs the node.
    metrics::histogram!("edge_invalidation_seconds", "component" => id.to_owned())
        .record(started.elapsed().as_secs_f64());
}

async fn handle(app: &App, id: &str, payload: &[u8]) -> wasmtime::Result<Result<(), ()>> {
    let component = app
        .components
        .get(id)
        .ok_or_else(|| wasmtime::format_err!("component `{id}` is not loaded"))?;
    let Entry::Redis(pre) = &component.entry else {
        wasmtime::bail!("component `{id}` is not a Redis component");
    };
    let started = Instant::now();
    let mut store = app.store(component);
    let instance = pre.instantiate_async(&mut store).await?;
    metrics::histogram!("edge_instantiation_seconds", "component" => id.to_owned())
        .record(started.elapsed().as_secs_f64());
    let result = tokio::time::timeout(
        app.guest_wall_clock(),
        instance
            .fermyon_spin_inbound_redis()
            .call_handle_message(&mut store, &payload.to_vec()),
    )
    .await
    .unwrap_or_else(|_| Err(app.deadline_error()))?;
    Ok(result.map_err(|_| ()))
}
