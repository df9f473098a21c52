//! The node's outbound connection pool: keep-alive HTTP/1.1 connections to each upstream
//! host (in practice, the ledger), shared by every instance of every component on the node
//! and bounded per host. wasmtime-wasi-http's default sender opens a TCP connection per
//! request (a connect round trip on every forwarded hold, and a socket in TIME_WAIT after
//! it); Spin's host keeps a pool per application (hyper-util's client), and so does this.
//!
//! The bound is a semaphore per `scheme://host:port` taken by the connector: a connection
//! holds its permit from connect to close, so open connections never exceed
//! `connections_max` per host, idle or busy. A request that finds every connection busy
//! waits for one (hyper hands it the next connection returned to the pool) or for a permit,
//! within the connect timeout; those waits are counted.
//!
//! Metrics: `edge_outbound_connections{host}` (open now), `edge_outbound_connections_opened_total{host}`,
//! `edge_outbound_pool_waits_total{host}` (connects that found the host's bound reached).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// An idle connection is closed after this: below the ledger's own idle timeout (10 s), so
/// the pool drops a connection before the server does and a request rarely meets one that
/// is closing (hyper retries those it had not sent).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The pooled client every outbound request of the node goes through.
#[derive(Clone)]
pub struct OutboundPool {
    client: Client<BoundedConnector, WasiBody>,
}

impl std::fmt::Debug for OutboundPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPool").finish_non_exhaustive()
    }
}

impl OutboundPool {
    /// At most `connections_max` connections per host; connecting (including the wait for
    /// a free connection) gives up after `connect_timeout`.
    pub fn new(connections_max: usize, connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(IDLE_TIMEOUT));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let connector = BoundedConnector {
            inner: tls,
            hosts: Arc::new(Mutex::new(HashMap::new())),
            connections_max,
            connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(connections_max)
            .build(connector);
        Self { client }
    }

    /// Sends `request` on a pooled connection; the response head must arrive within
    /// `first_byte_timeout` (connecting included), then each body chunk within
    /// `between_bytes_timeout` of the last.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        first_byte_timeout: Duration,
        between_bytes_timeout: Duration,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        use http_body_util::BodyExt;
        let response = tokio::time::timeout(first_byte_timeout, self.client.request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(client_error)?;
        Ok(response
            .map(|incoming| BetweenBytes::new(incoming, between_bytes_timeout).boxed_unsync()))
    }
}

/// hyper-util's error as wasi-http's: connect failures and timeouts by kind, hyper's own
/// errors as wasi-http maps them.
fn client_error(error: hyper_util::client::legacy::Error) -> HttpError {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(bound) = cause.downcast_ref::<BoundError>() {
            return match bound {
                BoundError::Timeout => HttpError::ConnectionTimeout,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => HttpError::ConnectionTimeout,
                _ => HttpError::ConnectionTerminated,
            };
        }
        source = cause.source();
    }
    if error.is_connect() {
        return HttpError::ConnectionRefused;
    }
    HttpError::InternalError(Some(error.to_string()))
}

#[derive(Debug, thiserror::Error)]
enum BoundError {
    #[error("no connection to the host became free within the connect timeout")]
    Timeout,
}

/// Opens connections for the pool, at most `connections_max` per host at once.
#[derive(Clone)]
struct BoundedConnector {
    inner: HttpsConnector<HttpConnector>,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    connections_max: usize,
    connect_timeout: Duration,
}

impl BoundedConnector {
    /// The host's permits (made on first use; the set of hosts is the manifest's
    /// `allowed_outbound_hosts`, so it stays small).
    fn permits(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.connections_max)))
            .clone()
    }
}

/// `scheme://host:port` of `uri`: the key connections are bounded and labelled by.
fn host_key(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    format!("{scheme}://{host}:{port}")
}

impl tower_service::Service<Uri> for BoundedConnector {
    type Response = Counted;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = host_key(&uri);
        let permits = self.permits(&host);
        let mut inner = self.inner.clone();
        let connect_timeout = self.connect_timeout;
        Box::pin(async move {
            let connect = async {
                let permit = take_permit(permits, &host).await;
                let stream = inner.call(uri).await?;
                Ok::<_, BoxError>(Counted::opened(stream, permit, host.clone()))
            };
            tokio::time::timeout(connect_timeout, connect)
                .await
                .map_err(|_| Box::new(BoundError::Timeout) as BoxError)?
        })
    }
}

/// A permit for one more connection to `host`, waiting (and counting the wait) when the
/// host's bound is reached.
async fn take_permit(permits: Arc<Semaphore>, host: &str) -> OwnedSemaphorePermit {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return permit;
    }
    metrics::counter!("edge_outbound_pool_waits_total", "host" => host.to_owned()).increment(1);
    // The semaphore is never closed, so acquiring fails only if it were.
    match permits.acquire_owned().await {
        Ok(permit) => permit,
        Err(_) => std::future::pending().await,
    }
}

/// A pooled connection: its stream, the permit it holds, and the gauge it keeps true.
pub struct Counted {
    stream: Stream,
    _permit: OwnedSemaphorePermit,
    host: String,
}

impl Counted {
    fn opened(stream: Stream, permit: OwnedSemaphorePermit, host: String) -> Self {
        metrics::counter!("edge_outbound_connections_opened_total", "host" => host.clone())
            .increment(1);
        metrics::gauge!("edge_outbound_connections", "host" => host.clone()).increment(1.0);
        Self {
            stream,
            _permit: permit,
            host,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::gauge!("edge_outbound_connections", "host" => self.host.clone()).decrement(1.0);
    }
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
}

/// A response body that fails with `ConnectionReadTimeout` when `timeout` passes without a
/// frame, as wasi-http's default sender does: a stalled upstream cannot hold the instance
/// reading it (and its pooled connection) until the request deadline.
struct BetweenBytes {
    incoming: hyper::body::Incoming,
    timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl BetweenBytes {
    fn new(incoming: hyper::body::Incoming, timeout: Duration) -> Self {
        Self {
            incoming,
            timeout,
            idle: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for BetweenBytes {
    type Data = bytes::Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.timeout;
                self.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_keyed_with_their_default_ports() {
        let key = |u: &str| host_key(&u.parse().expect("uri"));
        assert_eq!(
            key("http://127.0.0.1:4000/v1/holds"),
            "http://127.0.0.1:4000"
        );
        assert_eq!(key("http://ledger.test/v1"), "http://ledger.test:80");
        assert_eq!(key("https://ledger.test/v1"), "https://ledger.test:443");
    }
}
