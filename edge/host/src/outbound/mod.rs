//! `allowed_outbound_hosts`: a component may only call the hosts its manifest entry names
//! (Spin's syntax: `scheme://host[:port]`, `*` for any scheme, host or port, `*.domain`
//! for subdomains). Everything else fails inside the guest with `HTTP-request-denied`.
//! What is allowed goes out through the node's connection pool ([`pool`]).

pub mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use pool::OutboundPool;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: Host,
    port: Option<u16>,
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
            format!("allowed outbound host `{entry}` needs a scheme, e.g. `http://`")
        })?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(format!(
                "allowed outbound host `{entry}` must not have a path"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, "*")) => (host, None),
            Some((host, port)) => (
                host,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| format!("allowed outbound host `{entry}`: bad port"))?,
                ),
            ),
            None => (
                rest,
                match scheme {
                    "http" => Some(80),
                    "https" => Some(443),
                    _ => None,
                },
            ),
        };
        let host = match host {
            "*" => Host::Any,
            h if h.starts_with("*.") => Host::Subdomains(h[1..].to_ascii_lowercase()),
            "" => return Err(format!("allowed outbound host `{entry}` has no host")),
            h => Host::Exact(h.to_ascii_lowercase()),
        };
        Ok(Self {
            scheme: (scheme != "*").then(|| scheme.to_owned()),
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                Host::Any => true,
                Host::Subdomains(suffix) => host.ends_with(suffix.as_str()),
                Host::Exact(h) => *h == host,
            }
    }
}

/// The hooks a component's outgoing requests pass through.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// The component whose requests these are (the metrics' `component` label).
    pub component: String,
    pub allowed: Vec<AllowedHost>,
    /// Connect, first-byte and between-bytes timeouts when the guest sets none, so a dead
    /// upstream cannot hold an instance (and its pool slot) for wasi-http's default of ten
    /// minutes.
    pub timeout: Duration,
    /// The node's keep-alive connections, shared by every instance of every component.
    pub pool: Arc<OutboundPool>,
}

impl OutboundPolicy {
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.allowed.iter().any(|a| a.allows(scheme, host, port))
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        _ = fut;
        if !self.allows(request.uri()) {
            tracing::warn!(uri = %request.uri(), "outbound request denied by allowed_outbound_hosts");
            metrics::counter!("edge_outbound_denied_total").increment(1);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        metrics::counter!(
            "edge_outbound_requests_total",
            "component" => self.component.clone(),
            "method" => method_label(request.method()),
        )
        .increment(1);
        // Connecting happens inside the pool (its connector has the node's connect
        // timeout); the guest's own first-byte and between-bytes timeouts apply per request.
        let options = options.unwrap_or_default();
        let first_byte = options.first_byte_timeout.unwrap_or(self.timeout);
        let between_bytes = options.between_bytes_timeout.unwrap_or(self.timeout);
        let pool = self.pool.clone();
        Box::new(async move {
            let response = pool.send(request, first_byte, between_bytes).await?;
            // The pool's own task drives the connection: nothing is left for the caller.
            let io = async { Ok(()) };
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// The method as a metrics label: the standard ones by name, anything else as `OTHER`, so
/// a guest cannot grow the label set without bound.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy {
            component: "test".into(),
            allowed: entries
                .iter()
                .map(|e| AllowedHost::parse(e).expect("entry"))
                .collect(),
            timeout: Duration::from_secs(1),
            pool: Arc::new(OutboundPool::new(1, Duration::from_secs(1))),
        }
    }

    fn allows(p: &OutboundPolicy, uri: &str) -> bool {
        p.allows(&uri.parse().expect("uri"))
    }

    #[test]
    fn only_listed_hosts_schemes_and_ports_pass() {
        let p = policy(&[
            "http://127.0.0.1:4000",
            "https://*.example.com",
            "*://api.test:*",
        ]);
        assert!(allows(&p, "http://127.0.0.1:4000/v1/events"));
        assert!(!allows(&p, "http://127.0.0.1:4001/v1/events"));
        assert!(!allows(&p, "https://127.0.0.1:4000/"));
        assert!(allows(&p, "https://a.example.com/x"));
        assert!(!allows(&p, "https://example.org/x"));
        assert!(!allows(&p, "http://a.example.com/x"));
        assert!(allows(&p, "http://api.test:9/x"));
        assert!(!allows(&policy(&[]), "http://127.0.0.1:4000/"));
    }

    #[test]
    fn methods_label_by_name_and_extensions_share_one_label() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::POST), "POST");
        let custom = http::Method::from_bytes(b"PURGE").expect("extension method");
        assert_eq!(method_label(&custom), "OTHER");
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(AllowedHost::parse("127.0.0.1:4000").is_err());
        assert!(AllowedHost::parse("http://h/path").is_err());
        assert!(AllowedHost::parse("http://h:port").is_err());
    }
}
