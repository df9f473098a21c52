//! The host's own settings, from the environment (the application's settings are Spin
//! variables in `spin.toml`), read with the workspace's one settings parser. Every variable
//! is listed in `.env.example`; every default is a named constant here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use tessera_domain::settings::{ConfigError, Settings};

/// Where the node serves the application: `spin up`'s default.
pub const ADDR_DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);
/// Where the operations listener serves `/metrics` (and `/health`): loopback, next to the
/// public port, so metrics are not published with the API.
pub const METRICS_ADDR_DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3001);
pub const MANIFEST_DEFAULT: &str = "spin.toml";
/// A fresh instance per request, as Spin does.
pub const INSTANCE_REUSE_MAX_DEFAULT: u32 = 1;
pub const INSTANCE_WAIT_DEFAULT: Duration = Duration::from_millis(1000);
pub const KV_ENTRIES_MAX_DEFAULT: usize = 100_000;
/// 1 MiB: well above what any component accepts (they apply their own, smaller limit).
pub const REQUEST_BODY_MAX_BYTES_DEFAULT: u64 = 1 << 20;
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);
/// 5 s: a hold body is a few hundred bytes; a client that cannot send it in 5 s is stalled,
/// not slow.
pub const BODY_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// 10 s without a complete request head (a new connection, or a kept-alive one between
/// requests) and the connection is closed: the header timeout the node always had.
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// A few thousand below a 20,000 file-descriptor limit (`ulimit -n`), leaving descriptors
/// for components, Redis, outbound calls and the operations listener.
pub const CONNECTIONS_MAX_DEFAULT: usize = 16_384;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub addr: SocketAddr,
    /// The operations listener (`/metrics`, `/health`); never the public port.
    pub metrics_addr: SocketAddr,
    pub manifest: PathBuf,
    pub limits: GuestLimits,
    /// Requests one instance may serve before it is dropped; 1 = a fresh instance per
    /// request, as Spin does. Reuse skips instantiation but keeps guest memory between
    /// requests, so components must not keep request state in globals.
    pub instance_reuse_max: u32,
    /// How long a request waits for a free instance slot (all `instances_max` busy) before
    /// it is answered 503 + Retry-After: a spike queues briefly instead of failing at once.
    pub instance_wait: Duration,
    /// Entries one node's key-value store holds before `set` fails (the guest treats that
    /// as "not cached").
    pub kv_entries_max: usize,
    /// Request bodies larger than this are refused with 413: at once when the
    /// Content-Length says so, as they stream in otherwise (chunked).
    pub request_body_max_bytes: u64,
    /// A request body must have arrived whole within this, or the request is answered 408:
    /// it is read before the request takes an instance slot, so a stalled client holds a
    /// connection, never an instance.
    pub body_read_timeout: Duration,
    /// A connection without a complete request head for this long (new, or kept alive
    /// between requests) is closed: idle and slowloris connections give their descriptor back.
    pub idle_timeout: Duration,
    /// Connections open at once on the public listener; past it a new one is accepted and
    /// closed at once (see `server::serve`). The operations listener is apart.
    pub connections_max: NonZeroUsize,
    pub shutdown_grace: Duration,
    pub log_json: bool,
}

/// What one guest instance may consume.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Wall-clock budget of one request or message, enforced by epoch interruption.
    pub request_timeout: Duration,
    /// Linear memory per instance.
    pub memory_max_bytes: usize,
    /// Instances alive at once across the node (the pooling allocator's slots).
    pub instances_max: u32,
    /// Keep-alive connections the node holds open to one upstream host (the ledger), idle
    /// or busy; a forwarded request that finds all busy waits for one.
    pub outbound_connections_max: NonZeroUsize,
}

impl GuestLimits {
    pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
    pub const MEMORY_MAX_MIB_DEFAULT: usize = 64;
    pub const INSTANCES_MAX_DEFAULT: u32 = 256;
    /// As many as there are instance slots: every instance can be forwarding at once, so
    /// the pool adds no wait the instance bound does not; lower it to spare the ledger.
    pub const OUTBOUND_CONNECTIONS_MAX_DEFAULT: usize = Self::INSTANCES_MAX_DEFAULT as usize;
    const BYTES_PER_MIB: usize = 1 << 20;

    fn from_settings<F>(settings: &Settings<F>) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let memory_max_mib = settings.parse(
            "EDGE_MEMORY_MAX_MIB",
            non_zero_usize(Self::MEMORY_MAX_MIB_DEFAULT),
        )?;
        let memory_max_bytes = memory_max_mib
            .get()
            .checked_mul(Self::BYTES_PER_MIB)
            .ok_or_else(|| ConfigError {
                name: "EDGE_MEMORY_MAX_MIB".to_owned(),
                value: memory_max_mib.to_string(),
                reason: "too large for this machine's address space".to_owned(),
            })?;
        Ok(Self {
            request_timeout: settings
                .millis("EDGE_REQUEST_TIMEOUT_MS", Self::REQUEST_TIMEOUT_DEFAULT)?,
            memory_max_bytes,
            instances_max: settings
                .parse(
                    "EDGE_INSTANCES_MAX",
                    non_zero_u32(Self::INSTANCES_MAX_DEFAULT),
                )?
                .get(),
            outbound_connections_max: settings.parse(
                "EDGE_OUTBOUND_CONNECTIONS_MAX",
                non_zero_usize(Self::OUTBOUND_CONNECTIONS_MAX_DEFAULT),
            )?,
        })
    }
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            request_timeout: Self::REQUEST_TIMEOUT_DEFAULT,
            memory_max_bytes: Self::MEMORY_MAX_MIB_DEFAULT * Self::BYTES_PER_MIB,
            instances_max: Self::INSTANCES_MAX_DEFAULT,
            outbound_connections_max: non_zero_usize(Self::OUTBOUND_CONNECTIONS_MAX_DEFAULT),
        }
    }
}

impl HostConfig {
    /// Reads the process environment (a variable set to bytes that are not UTF-8 is an
    /// error, never read as unset).
    pub fn from_env() -> Result<Self, ConfigError> {
        tessera_serving::read_env(|lookup| Self::from_lookup(lookup))
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::new(lookup);
        Ok(Self {
            addr: settings.parse("EDGE_ADDR", ADDR_DEFAULT)?,
            metrics_addr: settings.parse("EDGE_METRICS_ADDR", METRICS_ADDR_DEFAULT)?,
            manifest: settings.string("EDGE_MANIFEST", MANIFEST_DEFAULT).into(),
            limits: GuestLimits::from_settings(&settings)?,
            instance_reuse_max: settings
                .parse(
                    "EDGE_INSTANCE_REUSE_MAX",
                    non_zero_u32(INSTANCE_REUSE_MAX_DEFAULT),
                )?
                .get(),
            instance_wait: settings.millis("EDGE_INSTANCE_WAIT_MS", INSTANCE_WAIT_DEFAULT)?,
            kv_entries_max: settings.parse("EDGE_KV_ENTRIES_MAX", KV_ENTRIES_MAX_DEFAULT)?,
            request_body_max_bytes: settings.parse(
                "EDGE_REQUEST_BODY_MAX_BYTES",
                REQUEST_BODY_MAX_BYTES_DEFAULT,
            )?,
            body_read_timeout: settings
                .millis("EDGE_BODY_READ_TIMEOUT_MS", BODY_READ_TIMEOUT_DEFAULT)?,
            idle_timeout: settings.millis("EDGE_IDLE_TIMEOUT_MS", IDLE_TIMEOUT_DEFAULT)?,
            connections_max: settings.parse(
                "EDGE_CONNECTIONS_MAX",
                non_zero_usize(CONNECTIONS_MAX_DEFAULT),
            )?,
            shutdown_grace: settings
                .seconds("EDGE_SHUTDOWN_GRACE_SECONDS", SHUTDOWN_GRACE_DEFAULT)?,
            log_json: settings.choice("LOG_FORMAT", "text", &["text", "json"])? == "json",
        })
    }
}

/// The defaults above are non-zero; the fallback only satisfies the type.
fn non_zero_u32(default: u32) -> NonZeroU32 {
    NonZeroU32::new(default).unwrap_or(NonZeroU32::MIN)
}

fn non_zero_usize(default: usize) -> NonZeroUsize {
    NonZeroUsize::new(default).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_spin_like() {
        let c = HostConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:3001");
        assert_eq!(
            c.instance_reuse_max, 1,
            "fresh instance per request by default"
        );
        assert_eq!(c.limits.memory_max_bytes, 64 << 20);
        assert_eq!(c.request_body_max_bytes, 1 << 20);
        assert_eq!(c.body_read_timeout, Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Duration::from_secs(10));
        assert_eq!(c.connections_max.get(), 16_384);
        assert!(!c.log_json);
    }

    #[test]
    fn the_environment_defaults_are_the_guest_limits_defaults() {
        let from_env = HostConfig::from_lookup(|_| None).expect("defaults").limits;
        let default = GuestLimits::default();
        assert_eq!(from_env.request_timeout, default.request_timeout);
        assert_eq!(from_env.memory_max_bytes, default.memory_max_bytes);
        assert_eq!(from_env.instances_max, default.instances_max);
    }

    #[test]
    fn values_are_read_in_their_units() {
        let c = HostConfig::from_lookup(|n| {
            Some(
                match n {
                    "EDGE_METRICS_ADDR" => "127.0.0.1:0",
                    "EDGE_MEMORY_MAX_MIB" => "8",
                    "EDGE_REQUEST_TIMEOUT_MS" => "250",
                    "EDGE_SHUTDOWN_GRACE_SECONDS" => "3",
                    "LOG_FORMAT" => "json",
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .expect("valid");
        assert_eq!(c.metrics_addr.port(), 0);
        assert_eq!(c.limits.memory_max_bytes, 8 << 20);
        assert_eq!(c.limits.request_timeout, Duration::from_millis(250));
        assert_eq!(c.shutdown_grace, Duration::from_secs(3));
        assert!(c.log_json);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("EDGE_INSTANCES_MAX", "many"),
            ("EDGE_INSTANCES_MAX", "0"),
            ("EDGE_INSTANCE_REUSE_MAX", "0"),
            ("EDGE_MEMORY_MAX_MIB", "0"),
            ("EDGE_CONNECTIONS_MAX", "0"),
            ("EDGE_BODY_READ_TIMEOUT_MS", "soon"),
            ("EDGE_METRICS_ADDR", "localhost"),
            ("LOG_FORMAT", "xml"),
        ] {
            let err = HostConfig::from_lookup(|n| (n == name).then(|| value.into()))
                .expect_err("invalid");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
