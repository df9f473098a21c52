//! Endpoints: host/port out of connection URLs, TCP reachability probes, free ports.

use std::fmt;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long one TCP connect attempt may take; loopback answers in microseconds,
/// a remote server in well under this.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port,
        }
    }

    /// True if something accepts TCP connections there.
    pub fn reachable(&self) -> bool {
        let Ok(addrs) = (self.host.as_str(), self.port).to_socket_addrs() else {
            return false;
        };
        addrs
            .into_iter()
            .any(|addr| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok())
    }

    /// Waits until the endpoint accepts connections. `still_starting` is asked on every
    /// round so that a server which died while starting fails fast with its own error.
    pub fn wait_reachable(
        &self,
        timeout: Duration,
        mut still_starting: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.reachable() {
                return Ok(());
            }
            still_starting()?;
            if Instant::now() >= deadline {
                bail!("{self} did not accept TCP connections within {timeout:?}");
            }
            sleep(PROBE_INTERVAL);
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A port that was free a moment ago. Another process could grab it before the
/// server binds it; that race is accepted (the server then fails to start, loudly).
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the port bound on 127.0.0.1:0")?
        .port())
}

/// The TCP endpoint named by a `postgres://` or `redis://` style URL, or `None` when the
/// URL points at a Unix socket (nothing to probe over TCP then).
pub fn url_endpoint(url: &str, default_port: u16) -> Result<Option<HostPort>> {
    let (scheme, rest) = url.split_once("://").with_context(|| {
        format!(
            "`{}` is not a URL (expected scheme://host:port/...)",
            redact(url)
        )
    })?;
    if scheme.contains("unix") {
        return Ok(None); // redis+unix://, unix://
    }
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let hostspec = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    // libpq allows a list of hosts; the first is the one tried first.
    let first = hostspec.split(',').next().unwrap_or_default();
    let (host, port) = match first.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .with_context(|| format!("unterminated IPv6 address in `{}`", redact(url)))?;
            (host, after.strip_prefix(':'))
        }
        None => match first.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (first, None),
        },
    };
    // libpq also takes host and port as query parameters.
    let query_param = |name: &str| {
        tail.split_once('?')
            .into_iter()
            .flat_map(|(_, query)| query.split('&'))
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let port = match port
        .filter(|p| !p.is_empty())
        .or_else(|| query_param("port"))
    {
        Some(p) => p
            .parse()
            .with_context(|| format!("bad port `{p}` in `{}`", redact(url)))?,
        None => default_port,
    };
    if !host.is_empty() {
        return Ok(Some(HostPort::new(host, port)));
    }
    // No host, or a directory path as host, means a Unix socket.
    Ok(match query_param("host") {
        Some(h)
            if !h.is_empty()
                && !h.starts_with('/')
                && !h.to_ascii_lowercase().starts_with("%2f") =>
        {
            Some(HostPort::new(h, port))
        }
        _ => None,
    })
}

/// The URL with any password replaced, for messages (one rule, shared with the ledger).
pub use tessera_domain::settings::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, default_port: u16) -> Option<HostPort> {
        url_endpoint(url, default_port).ok().flatten()
    }

    #[test]
    fn postgres_urls() {
        let want = |h: &str, p| Some(HostPort::new(h, p));
        assert_eq!(
            endpoint("postgres://postgres@127.0.0.1:5432/tessera", 5432),
            want("127.0.0.1", 5432)
        );
        assert_eq!(
            endpoint("postgresql://u:p%40ss@db.local/x?sslmode=disable", 5432),
            want("db.local", 5432)
        );
        assert_eq!(
            endpoint("postgres://u:pw@[::1]:6000/x", 5432),
            want("::1", 6000)
        );
        assert_eq!(
            endpoint("postgres://h1:5433,h2:5434/x", 5432),
            want("h1", 5433)
        );
        assert_eq!(
            endpoint("postgres://u@/x?host=/var/run/postgresql", 5432),
            None
        );
        assert_eq!(
            endpoint("postgres:///x?host=db&port=5433", 5432),
            want("db", 5433)
        );
        assert!(url_endpoint("localhost:5432", 5432).is_err());
        assert!(url_endpoint("postgres://h:notaport/x", 5432).is_err());
    }

    #[test]
    fn redis_urls() {
        let want = |h: &str, p| Some(HostPort::new(h, p));
        assert_eq!(
            endpoint("redis://127.0.0.1:6379", 6379),
            want("127.0.0.1", 6379)
        );
        assert_eq!(
            endpoint("redis://:secret@cache/2", 6379),
            want("cache", 6379)
        );
        assert_eq!(endpoint("redis+unix:///run/redis.sock", 6379), None);
    }

    #[test]
    fn display_brackets_ipv6() {
        assert_eq!(HostPort::new("::1", 5).to_string(), "[::1]:5");
        assert_eq!(HostPort::new("localhost", 5).to_string(), "localhost:5");
    }
}
