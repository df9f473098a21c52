//! The host's own settings, from the environment (the application's settings are Spin
//! variables in `spin.toml`). Every variable is listed in `.env.example`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub addr: SocketAddr,
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
    /// Request bodies larger than this are refused with 413 before a guest runs.
    pub request_body_max_bytes: u64,
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
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            memory_max_bytes: 64 << 20,
            instances_max: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl HostConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parse<T: FromStr>(
            lookup: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            default: &str,
        ) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            let value = lookup(name).unwrap_or_else(|| default.to_owned());
            value.parse().map_err(|e: T::Err| ConfigError {
                name,
                value,
                reason: e.to_string(),
            })
        }
        let reuse: u32 = parse(&lookup, "EDGE_INSTANCE_REUSE_MAX", "1")?;
        Ok(Self {
            addr: parse(&lookup, "EDGE_ADDR", "127.0.0.1:3000")?,
            manifest: parse(&lookup, "EDGE_MANIFEST", "spin.toml")?,
            limits: GuestLimits {
                request_timeout: Duration::from_millis(parse(
                    &lookup,
                    "EDGE_REQUEST_TIMEOUT_MS",
                    "10000",
                )?),
                memory_max_bytes: parse::<usize>(&lookup, "EDGE_MEMORY_MAX_MIB", "64")? << 20,
                instances_max: parse(&lookup, "EDGE_INSTANCES_MAX", "256")?,
            },
            instance_reuse_max: reuse.max(1),
            instance_wait: Duration::from_millis(parse(&lookup, "EDGE_INSTANCE_WAIT_MS", "1000")?),
            kv_entries_max: parse(&lookup, "EDGE_KV_ENTRIES_MAX", "100000")?,
            request_body_max_bytes: parse(&lookup, "EDGE_REQUEST_BODY_MAX_BYTES", "1048576")?,
            shutdown_grace: Duration::from_secs(parse(
                &lookup,
                "EDGE_SHUTDOWN_GRACE_SECONDS",
                "10",
            )?),
            log_json: lookup("LOG_FORMAT").as_deref() == Some("json"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_spin_like() {
        let c = HostConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(
            c.instance_reuse_max, 1,
            "fresh instance per request by default"
        );
        assert_eq!(c.limits.memory_max_bytes, 64 << 20);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = HostConfig::from_lookup(|n| (n == "EDGE_INSTANCES_MAX").then(|| "many".into()))
            .expect_err("invalid");
        assert!(err.to_string().contains("EDGE_INSTANCES_MAX"), "{err}");
    }
}
