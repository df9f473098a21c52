//! Configuration from the environment. Every variable is documented in `.env.example`;
//! every default is what a single-machine deployment wants.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

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

impl FromStr for HoldStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batched" => Ok(Self::Batched),
            "naive" => Ok(Self::Naive),
            other => Err(format!("expected `batched` or `naive`, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
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
    pub requests_in_flight_max: usize,
    /// How long shutdown waits for in-flight requests and commits.
    pub shutdown_grace: Duration,
    /// Stored idempotent results are kept this long, then pruned.
    pub idempotency_retention: Duration,
    pub log_json: bool,
    /// SHA-256 of `EDGE_KEY`, the secret edge nodes present; unset = no edge is trusted.
    pub edge_key_sha256: Option<[u8; 32]>,
}

#[derive(Debug, Clone)]
pub struct HoldsConfig {
    pub strategy: HoldStrategy,
    /// How long a hold lasts before the sweeper returns its stock.
    pub hold_ttl: Duration,
    /// Most holds committed in one transaction.
    pub batch_size_max: usize,
    /// Requests waiting per zone; beyond it, 503 + Retry-After.
    pub zone_queue_depth_max: usize,
    /// Zones with a live writer task at once; beyond it, holds commit one per transaction.
    pub zone_writers_max: usize,
    /// A zone writer with nothing to do for this long exits (a new one starts on demand).
    pub zone_writer_idle: Duration,
    pub sweep_interval: Duration,
    /// Most expired holds released per sweeper transaction.
    pub sweep_batch_size_max: i64,
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
}

#[derive(Debug, thiserror::Error)]
#[error("invalid environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tessera";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can pass their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str, default: &str| -> String {
            lookup(name).unwrap_or_else(|| default.to_owned())
        };
        fn parse<T: FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError {
                name,
                value,
                reason: e.to_string(),
            })
        }
        let ms = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            parse::<u64>(name, get(name, default)).map(Duration::from_millis)
        };
        let secs = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            parse::<u64>(name, get(name, default)).map(Duration::from_secs)
        };
        Ok(Self {
            addr: parse("LEDGER_ADDR", get("LEDGER_ADDR", "127.0.0.1:4000"))?,
            database_url: get("DATABASE_URL", DEFAULT_DATABASE_URL),
            database_pool_max: parse("DATABASE_POOL_MAX", get("DATABASE_POOL_MAX", "16"))?,
            redis_url: get("REDIS_URL", DEFAULT_REDIS_URL),
            holds: HoldsConfig {
                strategy: parse("HOLD_STRATEGY", get("HOLD_STRATEGY", "batched"))?,
                hold_ttl: secs("HOLD_TTL_SECONDS", "600")?,
                batch_size_max: parse("HOLD_BATCH_SIZE_MAX", get("HOLD_BATCH_SIZE_MAX", "256"))?,
                zone_queue_depth_max: parse(
                    "HOLD_ZONE_QUEUE_DEPTH_MAX",
                    get("HOLD_ZONE_QUEUE_DEPTH_MAX", "4096"),
                )?,
                zone_writers_max: parse(
                    "HOLD_ZONE_WRITERS_MAX",
                    get("HOLD_ZONE_WRITERS_MAX", "1024"),
                )?,
                zone_writer_idle: secs("HOLD_ZONE_WRITER_IDLE_SECONDS", "30")?,
                sweep_interval: ms("SWEEP_INTERVAL_MS", "1000")?,
                sweep_batch_size_max: parse(
                    "SWEEP_BATCH_SIZE_MAX",
                    get("SWEEP_BATCH_SIZE_MAX", "500"),
                )?,
            },
            outbox: OutboxConfig {
                poll_interval: ms("OUTBOX_POLL_INTERVAL_MS", "100")?,
                batch_size_max: parse(
                    "OUTBOX_BATCH_SIZE_MAX",
                    get("OUTBOX_BATCH_SIZE_MAX", "500"),
                )?,
                retention: secs("OUTBOX_RETENTION_SECONDS", "3600")?,
                channel: get(
                    "OUTBOX_CHANNEL",
                    tessera_domain::invalidation::INVALIDATION_CHANNEL,
                ),
            },
            request_body_max_bytes: parse(
                "REQUEST_BODY_MAX_BYTES",
                get("REQUEST_BODY_MAX_BYTES", "65536"),
            )?,
            request_timeout: ms("REQUEST_TIMEOUT_MS", "10000")?,
            requests_in_flight_max: parse(
                "REQUESTS_IN_FLIGHT_MAX",
                get("REQUESTS_IN_FLIGHT_MAX", "8192"),
            )?,
            shutdown_grace: secs("SHUTDOWN_GRACE_SECONDS", "30")?,
            idempotency_retention: secs("IDEMPOTENCY_RETENTION_SECONDS", "86400")?,
            log_json: get("LOG_FORMAT", "text") == "json",
            edge_key_sha256: lookup("EDGE_KEY")
                .filter(|k| !k.is_empty())
                .map(|k| crate::origin::edge_key_digest(&k)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let config = Config::from_lookup(|_| None).expect("defaults parse");
        assert_eq!(config.addr.to_string(), "127.0.0.1:4000");
        assert_eq!(config.holds.hold_ttl, Duration::from_secs(600));
        assert_eq!(config.holds.strategy, HoldStrategy::Batched);
        assert_eq!(config.outbox.channel, "tessera.invalidate");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::from_lookup(|n| (n == "HOLD_TTL_SECONDS").then(|| "ten".to_owned()))
            .expect_err("invalid");
        assert!(err.to_string().contains("HOLD_TTL_SECONDS"), "{err}");
        let err = Config::from_lookup(|n| (n == "HOLD_STRATEGY").then(|| "fast".to_owned()))
            .expect_err("invalid");
        assert!(err.to_string().contains("batched"), "{err}");
    }
}
