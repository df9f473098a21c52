//! Configuration from the environment, read once through the shared
//! [`Settings`] parser. Every variable is documented in `.env.example`; every default is
//! stated once, here where it is read, and is what a single-machine deployment wants.
//! Values are parsed into the types the ledger uses (a hold TTL that cannot be zero, a
//! queue depth that cannot be zero), so nothing downstream re-checks or falls back.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use tessera_domain::settings::{ConfigError, Settings};

use crate::origin::EdgeKeys;

/// How holds reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStrategy {
    /// Requests for a zone queue in-process; one writer commits everything waiting in one
    /// transaction (the production strategy).
    Batched,
    /// One transaction per hold (`SELECT … FOR UPDATE`, `UPDATE`, `INSERT`): the baseline
    /// the benchmark compares against.
    Naive,
}

#[derive(Debug, thiserror::Error)]
#[error("expected `batched` or `naive`, got {0:?}")]
pub struct UnknownStrategy(String);

impl FromStr for HoldStrategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, UnknownStrategy> {
        match s {
            "batched" => Ok(Self::Batched),
            "naive" => Ok(Self::Naive),
            other => Err(UnknownStrategy(other.to_owned())),
        }
    }
}

/// How long a hold lasts: between one second and [`HoldTtl::MAX_SECONDS`], so adding it
/// to a timestamp cannot overflow and no hold is born expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTtl(chrono::TimeDelta);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoldTtlError {
    #[error("not a whole number of seconds")]
    NotANumber,
    #[error("a hold must last at least one second")]
    Zero,
    #[error("at most {} seconds (one day)", HoldTtl::MAX_SECONDS)]
    TooLong,
}

impl HoldTtl {
    /// A day: a hold is a checkout's reservation; anything longer is a mistake, and the
    /// bound keeps `now + ttl` far from chrono's limits.
    pub const MAX_SECONDS: u64 = 86_400;

    pub fn from_secs(seconds: u64) -> Result<Self, HoldTtlError> {
        match seconds {
            0 => Err(HoldTtlError::Zero),
            s if s > Self::MAX_SECONDS => Err(HoldTtlError::TooLong),
            // In range by the arms above, so `try_seconds` cannot refuse it.
            s => chrono::TimeDelta::try_seconds(s as i64)
                .map(Self)
                .ok_or(HoldTtlError::TooLong),
        }
    }

    /// The TTL to add to a database timestamp.
    pub fn as_delta(self) -> chrono::TimeDelta {
        self.0
    }

    pub fn as_secs(self) -> u64 {
        self.0.num_seconds().unsigned_abs()
    }
}

impl FromStr for HoldTtl {
    type Err = HoldTtlError;
    fn from_str(s: &str) -> Result<Self, HoldTtlError> {
        let seconds: u64 = s.parse().map_err(|_| HoldTtlError::NotANumber)?;
        Self::from_secs(seconds)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The public API.
    pub addr: SocketAddr,
    /// The operations listener (`GET /metrics`): loopback by default, so metrics are not
    /// on the public port; a scraper on the host (or a sidecar) reads them.
    pub metrics_addr: SocketAddr,
    pub database_url: String,
    pub database_pool_max: u32,
    pub redis_url: String,
    pub holds: HoldsConfig,
    pub outbox: OutboxConfig,
    /// Largest request body accepted, in bytes.
    pub request_body_max_bytes: usize,
    /// Requests still running after this are answered 503 (the work already committed stays).
    pub request_timeout: Duration,
    /// Requests in flight at once before new ones are shed with 503.
    pub requests_in_flight_max: NonZeroUsize,
    /// A request body must arrive whole within this, or the request is answered 408: it is
    /// read before the request counts as in flight, so a stalled client holds a
    /// connection, never a request slot.
    pub body_read_timeout: Duration,
    /// A connection without a complete request head for this long (new, or kept alive
    /// between requests) is closed.
    pub idle_timeout: Duration,
    /// Connections open at once on the public listener; past it a new one is accepted and
    /// closed at once. A few thousand below a 20,000 file-descriptor limit (`ulimit -n`),
    /// leaving descriptors for the database pool, Redis and the operations listener.
    pub connections_max: NonZeroUsize,
    /// How long shutdown waits for in-flight requests and commits.
    pub shutdown_grace: Duration,
    /// Stored idempotent results are kept this long, then pruned.
    pub idempotency_retention: Duration,
    pub log_json: bool,
    /// Digests of the edge keys accepted (`EDGE_KEY`, and `EDGE_KEY_PREVIOUS` during a
    /// rotation); `None` = no edge is trusted.
    pub edge_keys: Option<EdgeKeys>,
    pub webhooks: WebhooksConfig,
    pub queue: QueueConfig,
}

/// The front door's queues (`crate::queue`).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `QUEUE_KEY` and, while rotating, `QUEUE_KEY_PREVIOUS` (the edges' `queue_key`):
    /// signs queue tickets and verifies admission passes. `None`: no queue can be turned on.
    pub keys: Option<tessera_domain::queue::QueueKeys>,
    /// How often the ledger moves every open queue's `serving` on.
    pub tick: Duration,
    /// Most joins taken in one transaction.
    pub join_batch_max: NonZeroUsize,
    /// Joins waiting for their batch; beyond it, 503 + Retry-After.
    pub join_queue_depth_max: NonZeroUsize,
}

#[derive(Debug, Clone)]
pub struct HoldsConfig {
    pub strategy: HoldStrategy,
    /// How long a hold lasts before the sweeper returns its stock.
    pub hold_ttl: HoldTtl,
    /// Most holds committed in one transaction.
    pub batch_size_max: NonZeroUsize,
    /// Requests waiting per zone; beyond it, 503 + Retry-After.
    pub zone_queue_depth_max: NonZeroUsize,
    /// Zones with a live writer task at once; beyond it, holds commit one per transaction.
    pub zone_writers_max: usize,
    /// A zone writer with nothing to do for this long exits (a new one starts on demand).
    pub zone_writer_idle: Duration,
    pub sweep_interval: Duration,
    /// Most expired holds released per sweeper transaction.
    pub sweep_batch_size_max: i64,
}

/// Webhook deliveries (`crate::webhooks`).
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// How often the dispatcher looks for new events and due retries.
    pub poll_interval: Duration,
    /// How long a receiver's acknowledgement may wait to be recorded with later ones
    /// (checked between sends): what a crash may send again, how stale the listing is.
    pub ack_record_delay: Duration,
    /// One attempt's whole time (connect, send, answer).
    pub timeout: Duration,
    /// The first retry's wait; each further one doubles, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a delivery is retried before it is dead.
    pub max_age: Duration,
    /// How long delivered rows are kept (for the deliveries listing).
    pub retention: Duration,
    /// Deliver to loopback, private and link-local addresses too (local development and
    /// tests only: it lets tenants reach the ledger's own network).
    pub allow_private_addresses: bool,
    /// Whether this process delivers at all (`WEBHOOK_DISPATCH=off`: events still pile up
    /// for the processes that do; the API conformance run sends nothing anywhere).
    pub dispatch: bool,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// The relay looks for new rows at least this often (commits in this process wake it
    /// at once; commits from other ledger processes are found by this poll).
    pub poll_interval: Duration,
    /// Most rows published per relay transaction.
    pub batch_size_max: i64,
    /// Published rows are pruned after this long.
    pub retention: Duration,
    /// The Redis channel (DESIGN.md: `tessera.invalidate`); tests use their own.
    pub channel: String,
    /// The leading relay publishes a heartbeat when the channel was silent this long, so
    /// edges can tell a live stream from a dead one (DESIGN.md, "Freshness lease"). Must
    /// stay well below the edges' `stream_freshness_ms`.
    pub heartbeat_interval: Duration,
}

/// `n` as a non-zero count; only for the literal defaults below.
const fn nonzero(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => panic!("a default count must not be zero"),
    }
}

/// `127.0.0.1:port`: both listeners default to loopback.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Config {
    /// Reads the process environment (a variable set to bytes that are not UTF-8 is an
    /// error, never read as unset).
    pub fn from_env() -> Result<Self, ConfigError> {
        tessera_serving::read_env(|lookup| Self::from_lookup(lookup))
    }

    /// Reads configuration through `lookup`, so tests can pass their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let s = Settings::new(lookup);
        Ok(Self {
            addr: s.parse("LEDGER_ADDR", loopback(4000))?,
            metrics_addr: s.parse("METRICS_ADDR", loopback(4001))?,
            database_url: s.string("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tessera"),
            database_pool_max: s.parse("DATABASE_POOL_MAX", 16)?,
            redis_url: s.string("REDIS_URL", "redis://127.0.0.1:6379"),
            holds: HoldsConfig::read(&s)?,
            outbox: OutboxConfig::read(&s)?,
            request_body_max_bytes: s.parse("REQUEST_BODY_MAX_BYTES", 65_536)?,
            request_timeout: s.millis("REQUEST_TIMEOUT_MS", Duration::from_secs(10))?,
            requests_in_flight_max: s.parse("REQUESTS_IN_FLIGHT_MAX", nonzero(8192))?,
            body_read_timeout: s.millis("BODY_READ_TIMEOUT_MS", Duration::from_secs(5))?,
            idle_timeout: s.millis("IDLE_TIMEOUT_MS", Duration::from_secs(10))?,
            connections_max: s.parse("CONNECTIONS_MAX", nonzero(16_384))?,
            shutdown_grace: s.seconds("SHUTDOWN_GRACE_SECONDS", Duration::from_secs(30))?,
            idempotency_retention: s
                .seconds("IDEMPOTENCY_RETENTION_SECONDS", Duration::from_secs(86_400))?,
            log_json: s.choice("LOG_FORMAT", "text", &["text", "json"])? == "json",
            edge_keys: EdgeKeys::read(&s)?,
            webhooks: WebhooksConfig::read(&s)?,
            queue: QueueConfig::read(&s)?,
        })
    }
}

impl HoldsConfig {
    fn read<F: Fn(&str) -> Option<String>>(s: &Settings<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            strategy: s.parse("HOLD_STRATEGY", HoldStrategy::Batched)?,
            hold_ttl: s.parse("HOLD_TTL_SECONDS", HoldTtl(chrono::TimeDelta::minutes(10)))?,
            batch_size_max: s.parse("HOLD_BATCH_SIZE_MAX", nonzero(256))?,
            zone_queue_depth_max: s.parse("HOLD_ZONE_QUEUE_DEPTH_MAX", nonzero(4096))?,
            zone_writers_max: s.parse("HOLD_ZONE_WRITERS_MAX", 1024)?,
            zone_writer_idle: s
                .seconds("HOLD_ZONE_WRITER_IDLE_SECONDS", Duration::from_secs(30))?,
            sweep_interval: s.millis("SWEEP_INTERVAL_MS", Duration::from_secs(1))?,
            sweep_batch_size_max: s.parse("SWEEP_BATCH_SIZE_MAX", 500)?,
        })
    }
}

impl WebhooksConfig {
    fn read<F: Fn(&str) -> Option<String>>(s: &Settings<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            poll_interval: s.millis("WEBHOOK_POLL_INTERVAL_MS", Duration::from_millis(250))?,
            ack_record_delay: s.millis("WEBHOOK_ACK_RECORD_DELAY_MS", Duration::from_secs(1))?,
            timeout: s.millis("WEBHOOK_TIMEOUT_MS", Duration::from_secs(10))?,
            backoff_base: s.millis("WEBHOOK_BACKOFF_BASE_MS", Duration::from_secs(1))?,
            backoff_max: s.millis("WEBHOOK_BACKOFF_MAX_MS", Duration::from_secs(3600))?,
            max_age: s.seconds("WEBHOOK_MAX_AGE_SECONDS", Duration::from_secs(3 * 86_400))?,
            retention: s.seconds("WEBHOOK_RETENTION_SECONDS", Duration::from_secs(7 * 86_400))?,
            allow_private_addresses: s.choice(
                "WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
                "false",
                &["true", "false"],
            )? == "true",
            dispatch: s.choice("WEBHOOK_DISPATCH", "on", &["on", "off"])? == "on",
        })
    }
}

impl QueueConfig {
    fn read<F: Fn(&str) -> Option<String>>(s: &Settings<F>) -> Result<Self, ConfigError> {
        use tessera_domain::queue::{QueueKey, QueueKeys};
        let key = |name: &str| {
            s.secret(name)
                .map(|value| {
                    QueueKey::parse(&value).map_err(|e| ConfigError {
                        name: name.to_owned(),
                        value: "<secret>".to_owned(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        let keys = match (key("QUEUE_KEY")?, key("QUEUE_KEY_PREVIOUS")?) {
            (Some(current), previous) => Some(QueueKeys { current, previous }),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError {
                    name: "QUEUE_KEY_PREVIOUS".to_owned(),
                    value: "<secret>".to_owned(),
                    reason: "set only while rotating, together with QUEUE_KEY".to_owned(),
                })
            }
        };
        Ok(Self {
            keys,
            tick: s.millis("QUEUE_TICK_MS", Duration::from_secs(1))?,
            join_batch_max: s.parse("QUEUE_JOIN_BATCH_MAX", nonzero(1024))?,
            join_queue_depth_max: s.parse("QUEUE_JOIN_QUEUE_DEPTH_MAX", nonzero(16_384))?,
        })
    }
}

impl OutboxConfig {
    fn read<F: Fn(&str) -> Option<String>>(s: &Settings<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            poll_interval: s.millis("OUTBOX_POLL_INTERVAL_MS", Duration::from_millis(100))?,
            batch_size_max: s.parse("OUTBOX_BATCH_SIZE_MAX", 500)?,
            retention: s.seconds("OUTBOX_RETENTION_SECONDS", Duration::from_secs(3600))?,
            channel: s.string(
                "OUTBOX_CHANNEL",
                tessera_domain::invalidation::INVALIDATION_CHANNEL,
            ),
            // Not zero: the relay would publish a heartbeat on every round.
            heartbeat_interval: s
                .parse("OUTBOX_HEARTBEAT_INTERVAL_MS", nonzero(1000))
                .map(|ms| Duration::from_millis(ms.get() as u64))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_match_the_design() {
        let config = Config::from_lookup(|_| None).expect("defaults parse");
        assert_eq!(config.addr.to_string(), "127.0.0.1:4000");
        assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:4001");
        assert_eq!(config.holds.hold_ttl.as_secs(), 600);
        assert_eq!(config.holds.strategy, HoldStrategy::Batched);
        assert_eq!(config.outbox.channel, "tessera.invalidate");
        assert!(config.edge_keys.is_none());
        assert_eq!(config.body_read_timeout, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(10));
        assert_eq!(config.connections_max.get(), 16_384);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("HOLD_TTL_SECONDS", "ten")]).expect_err("invalid");
        assert!(err.to_string().contains("HOLD_TTL_SECONDS"), "{err}");
        let err = config(&[("HOLD_STRATEGY", "fast")]).expect_err("invalid");
        assert!(err.to_string().contains("batched"), "{err}");
        let err = config(&[("LOG_FORMAT", "xml")]).expect_err("invalid");
        assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
        let err = config(&[("HOLD_ZONE_QUEUE_DEPTH_MAX", "0")]).expect_err("zero");
        assert!(
            err.to_string().contains("HOLD_ZONE_QUEUE_DEPTH_MAX"),
            "{err}"
        );
    }

    #[test]
    fn a_hold_ttl_of_zero_or_over_a_day_is_refused_by_name() {
        for (value, reason) in [
            ("0", HoldTtlError::Zero),
            ("86401", HoldTtlError::TooLong),
            ("18446744073709551615", HoldTtlError::TooLong),
        ] {
            let err = config(&[("HOLD_TTL_SECONDS", value)]).expect_err(value);
            assert_eq!(err.name, "HOLD_TTL_SECONDS");
            assert_eq!(err.reason, reason.to_string(), "{value}");
        }
        let longest = config(&[("HOLD_TTL_SECONDS", "86400")]).expect("a day is allowed");
        assert_eq!(
            longest.holds.hold_ttl.as_delta(),
            chrono::TimeDelta::days(1)
        );
    }

    #[test]
    fn a_previous_edge_key_needs_a_current_one() {
        let err = config(&[("EDGE_KEY_PREVIOUS", "old")]).expect_err("no current key");
        assert_eq!(err.name, "EDGE_KEY_PREVIOUS");
        assert!(!err.to_string().contains("old"), "secrets are not echoed");
        let both = config(&[("EDGE_KEY", "new"), ("EDGE_KEY_PREVIOUS", "old")]).expect("both");
        assert!(both.edge_keys.is_some());
    }
}
