//! The one way the ledger calls out: webhook deliveries over HTTP(S), with the rules a
//! server that POSTs to addresses its tenants choose must keep. No redirects followed; a
//! connect and a total timeout; at most [`ANSWER_BYTES_MAX`] of the answer read; and no
//! request to a loopback, private, link-local, shared, multicast or metadata address
//! unless the operator allows them (local development, the tests). The check is on the
//! resolved address at send time — the resolver hands the connector only addresses that
//! pass — so a name that resolved to a public address at registration and to 127.0.0.1
//! later (DNS rebinding) is still refused; an address literal in the URL is checked itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Bytes of a receiver's answer kept (for the delivery's `last_error`); the rest is not read.
pub const ANSWER_BYTES_MAX: usize = 4_096;

/// Why a delivery attempt failed before a status came back.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the endpoint's address is not allowed (loopback, private, link-local or metadata)")]
    Blocked,
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

/// What the receiver answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The first bytes of its body (lossy UTF-8).
    pub body: String,
}

#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    allow_private: bool,
}

impl Egress {
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("Tessera-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    /// Whether `host` (a name or an address literal) may be called now: resolved here, each
    /// address checked. `Err` with why not.
    pub async fn check_host(&self, host: &str) -> Result<(), SendError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check_ip(ip);
        }
        let addrs = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| SendError::Connect(format!("{host} does not resolve: {e}")))?;
        addrs
            .into_iter()
            .find(|addr| self.check_ip(addr.ip()).is_ok())
            .map(|_| ())
            .ok_or(SendError::Blocked)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), SendError> {
        (self.allow_private || is_public(ip))
            .then_some(())
            .ok_or(SendError::Blocked)
    }

    /// POSTs `body` as JSON with `headers`; the status and the answer's first bytes.
    pub async fn post(
        &self,
        url: &str,
        host: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, SendError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            // A literal never reaches the resolver: check it here.
            self.check_ip(ip)?;
        }
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < ANSWER_BYTES_MAX {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        kept.truncate(ANSWER_BYTES_MAX);
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&kept).into_owned(),
        })
    }
}

fn classify(error: reqwest::Error) -> SendError {
    let blocked = std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.to_string() == BLOCKED);
    if blocked {
        SendError::Blocked
    } else if error.is_timeout() {
        SendError::Timeout
    } else if error.is_connect() {
        SendError::Connect(error.to_string())
    } else {
        SendError::Other(error.to_string())
    }
}

const BLOCKED: &str = "no allowed address";

/// Resolves names for the client, passing on only addresses that may be called.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(BLOCKED.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local —
/// which holds the cloud metadata address 169.254.169.254 — shared, documentation,
/// benchmarking, multicast, reserved or unspecified; for IPv6 also unique-local, and IPv4
/// addresses embedded in IPv6 judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let nat64 = ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if nat64 {
        let [.., a, b, c, d] = ip.octets();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (incl. fd00:ec2::254, a metadata address)
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(blocked.parse().expect("ip")), "{blocked}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_by_name_and_by_literal_unless_allowed() {
        let strict = Egress::new(Duration::from_secs(1), false).expect("client");
        assert!(matches!(
            strict.check_host("localhost").await,
            Err(SendError::Blocked)
        ));
        assert!(matches!(
            strict.check_host("127.0.0.1").await,
            Err(SendError::Blocked)
        ));
        // Sending: the resolver refuses the name, the literal is checked before.
        for (url, host) in [
            ("http://localhost:9/", "localhost"),
            ("http://127.0.0.1:9/", "127.0.0.1"),
        ] {
            let sent = strict.post(url, host, &[], Vec::new()).await;
            assert!(matches!(sent, Err(SendError::Blocked)), "{url}: {sent:?}");
        }
        let open = Egress::new(Duration::from_secs(1), true).expect("client");
        assert!(open.check_host("localhost").await.is_ok());
    }
}
