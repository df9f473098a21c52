//! A subscriber on the ledger's invalidation channel, as an edge is: it records every
//! sequence number it hears, per subscription, so the audit can tell that messages came in
//! order and gap-free while it was subscribed (a gap across a Redis outage is expected:
//! that is what the edge's flush on resubscribe is for).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tessera_domain::invalidation::Received;
use tokio::sync::watch;

/// How long the subscriber gets to hear what the relay has published.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before subscribing again after the connection was lost.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(100);

/// Sequence numbers heard, one list per subscription (a new one after each reconnect);
/// heartbeats are left out (they repeat the last number).
#[derive(Debug, Default, Clone)]
pub struct Heard {
    sessions: Vec<Vec<i64>>,
    /// Messages whose `seq` could not be read.
    unreadable: u64,
}

impl Heard {
    /// How many times it subscribed (1 + reconnects).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn last_seq(&self) -> Option<i64> {
        self.sessions.iter().flatten().copied().max()
    }

    /// New numbers must come in order: within a subscription each one past the highest so
    /// far is exactly the next (a re-send after a crash repeats an old number, allowed).
    pub fn order_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut highest = 0;
        for (n, session) in self.sessions.iter().enumerate() {
            let mut first_in_session = true;
            for &seq in session {
                if seq > highest {
                    if !first_in_session && seq != highest + 1 {
                        errors.push(format!("subscription {n}: seq {seq} after {highest} (gap)"));
                    }
                    highest = seq;
                }
                first_in_session = false;
            }
        }
        if self.unreadable > 0 {
            errors.push(format!(
                "{} messages without a readable seq",
                self.unreadable
            ));
        }
        errors
    }
}

/// A running subscriber; [`Subscriber::finish`] stops it and returns what it heard.
pub struct Subscriber {
    heard: Arc<Mutex<Heard>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn start(redis_url: &str, channel: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url)?;
        // The first subscription before the sale starts, so nothing is missed.
        let first = client.get_async_pubsub().await?;
        let heard = Arc::new(Mutex::new(Heard::default()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(listen(
            client,
            channel.to_owned(),
            first,
            heard.clone(),
            stopped,
        ));
        let subscriber = Self { heard, stop, task };
        Ok(subscriber)
    }

    /// Waits (bounded) until it has heard the relay's last number, then stops: call once
    /// the outbox is drained.
    pub async fn finish_after(self, pool: &sqlx::PgPool) -> anyhow::Result<Heard> {
        let last_seq = super::audit::relay_last_seq(pool).await?;
        let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            let heard = self.heard.lock().map(|h| h.last_seq()).unwrap_or_default();
            if heard.unwrap_or(0) >= last_seq {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(self.finish().await)
    }

    pub async fn finish(self) -> Heard {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let heard = self.heard.lock().map(|h| h.clone());
        heard.unwrap_or_default()
    }
}

async fn listen(
    client: redis::Client,
    channel: String,
    first: redis::aio::PubSub,
    heard: Arc<Mutex<Heard>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next = Some(first);
    while !*stopped.borrow() {
        let pubsub = match next.take() {
            Some(pubsub) => Ok(pubsub),
            None => client.get_async_pubsub().await,
        };
        if let Ok(mut pubsub) = pubsub {
            if pubsub.subscribe(&channel).await.is_ok() {
                if let Ok(mut heard) = heard.lock() {
                    heard.sessions.push(Vec::new());
                }
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        message = messages.next() => match message {
                            Some(message) => record(&heard, message.get_payload_bytes()),
                            None => break,
                        },
                    }
                }
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
        }
    }
}

fn record(heard: &Mutex<Heard>, payload: &[u8]) {
    let Ok(mut heard) = heard.lock() else {
        return;
    };
    match Received::parse(payload) {
        Ok(Received::Heartbeat(_)) => {}
        Ok(received) => {
            if let Some(session) = heard.sessions.last_mut() {
                session.push(received.seq());
            }
        }
        Err(_) => heard.unreadable += 1,
    }
}
