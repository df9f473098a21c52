//! The bounded HTTP/1.1 accept loop ([`serve`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Back-off after a failed accept (out of file descriptors and the like), instead of
/// spinning.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one listener allows its clients, and how it treats them.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionPolicy<R> {
    /// Without a complete request head for this long after the connection opened or its
    /// previous response (hyper restarts the timer when a kept-alive connection goes
    /// idle), a connection is closed: silent, idle and slowloris connections go.
    pub header_read_timeout: Duration,
    /// The largest request head (request line and headers) read from a client; past it
    /// hyper answers `431` and closes. Unset, hyper's bound is its read buffer (~400 KB),
    /// which every open connection could be made to hold.
    pub head_max_bytes: usize,
    /// Connections open at once; one past it is accepted and closed at once.
    pub connections_max: usize,
    /// Set `TCP_NODELAY` on each accepted connection.
    pub nodelay: bool,
    /// What becomes of open connections when the listener stops.
    pub on_shutdown: OnShutdown,
    /// The listener's own metrics and log lines about its connections.
    pub report: R,
}

/// What becomes of a listener's open connections when it stops accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnShutdown {
    /// Each finishes the request it is on (idle ones close at once); [`Drain::finish`]
    /// waits for them.
    Drain,
    /// Each is closed at once, mid-request or not (operations listeners: a scrape cut
    /// short is simply retried).
    Cut,
}

/// What a listener tells about its connections. The loop is shared, the metric names,
/// labels and log lines are each listener's own.
pub trait Report: Clone + Send + Sync + 'static {
    /// `accept` failed; the loop backs off ([`ACCEPT_BACKOFF`]) and goes on.
    fn accept_failed(&self, error: &std::io::Error);
    /// A connection was admitted under the bound.
    fn opened(&self);
    /// A connection past the bound was closed at once.
    fn refused(&self, peer: SocketAddr);
    /// An admitted connection closed (its slot is already free again), with the error
    /// hyper ended it with, if any.
    fn closed(&self, error: Option<&hyper::Error>);
}

/// The open connections of a listener that stopped accepting.
pub struct Drain(GracefulShutdown);

impl Drain {
    /// Lets each open connection finish the request it is on (idle ones close at once)
    /// and returns when all have closed. Unbounded: the caller bounds the wait.
    pub async fn finish(self) {
        self.0.shutdown().await;
    }
}

/// Serves the connections of `listener` until `shutdown` resolves, each with the service
/// `service_for(peer)` makes, within `policy`'s bounds. Then stops accepting (the
/// listener is closed), treats open connections as `policy.on_shutdown` says, and
/// returns what is left to drain.
///
/// Closing a connection past the bound, not leaving it in the kernel's backlog: the
/// client (or its load balancer) learns at once and can retry or go elsewhere, instead of
/// waiting for an idle connection to time out; its descriptor is held for an instant only.
pub async fn serve<R, F, S, B>(
    listener: TcpListener,
    policy: ConnectionPolicy<R>,
    shutdown: impl Future<Output = ()>,
    mut service_for: F,
) -> Drain
where
    R: Report,
    F: FnMut(SocketAddr) -> S,
    S: HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let cut = CancellationToken::new();
    let builder = connection_builder(&policy);
    let open = Arc::new(Semaphore::new(policy.connections_max));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    policy.report.accept_failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some(permit) = admit(&open, &policy.report, peer) else {
            drop(stream);
            continue;
        };
        if policy.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let conn = builder.serve_connection(TokioIo::new(stream), service_for(peer));
        let conn = graceful.watch(conn);
        let (report, cut) = (policy.report.clone(), cut.clone());
        tokio::spawn(async move {
            let result = tokio::select! {
                () = cut.cancelled() => Ok(()),
                result = conn => result,
            };
            drop(permit);
            report.closed(result.as_ref().err());
        });
    }
    drop(listener);
    if policy.on_shutdown == OnShutdown::Cut {
        cut.cancel();
    }
    Drain(graceful)
}

/// HTTP/1.1 connections with the policy's head bound and header-read timeout.
fn connection_builder<R>(policy: &ConnectionPolicy<R>) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(policy.header_read_timeout)
        .max_header_size(policy.head_max_bytes);
    builder
}

/// A permit for one more open connection, or `None` at the bound (the caller closes it).
fn admit<R: Report>(
    open: &Arc<Semaphore>,
    report: &R,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    match open.clone().try_acquire_owned() {
        Ok(permit) => {
            report.opened();
            Some(permit)
        }
        Err(_) => {
            report.refused(peer);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper::Response;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    /// Longest a test waits for the server to act.
    const DEADLINE: Duration = Duration::from_secs(10);
    /// The servers' header-read timeout: long enough that a connection it closes is told
    /// apart from one closed at once.
    const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);

    #[derive(Clone, Default)]
    struct Counts {
        opened: Arc<AtomicUsize>,
        refused: Arc<AtomicUsize>,
        closed: Arc<AtomicUsize>,
    }

    impl Report for Counts {
        fn accept_failed(&self, _: &std::io::Error) {}
        fn opened(&self) {
            self.opened.fetch_add(1, Ordering::SeqCst);
        }
        fn refused(&self, _: SocketAddr) {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        fn closed(&self, _: Option<&hyper::Error>) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Server {
        addr: SocketAddr,
        counts: Counts,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Drain>,
    }

    async fn start(on_shutdown: OnShutdown, connections_max: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let counts = Counts::default();
        let policy = ConnectionPolicy {
            header_read_timeout: HEADER_READ_TIMEOUT,
            head_max_bytes: 1 << 10,
            connections_max,
            nodelay: true,
            on_shutdown,
            report: counts.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            policy,
            async move {
                let _ = stopped.await;
            },
            |_| {
                hyper::service::service_fn(|_| async {
                    Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
                })
            },
        ));
        Server {
            addr,
            counts,
            stop,
            task,
        }
    }

    /// Everything the server sends until it closes (or resets) the connection.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut received = Vec::new();
        let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received)).await;
        assert!(read.is_ok(), "still open after {DEADLINE:?}");
        String::from_utf8_lossy(&received).into_owned()
    }

    async fn wait_for(count: &AtomicUsize, expected: usize) {
        tokio::time::timeout(DEADLINE, async {
            while count.load(Ordering::SeqCst) != expected {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("count reached before the deadline");
    }

    #[tokio::test]
    async fn one_past_the_bound_is_closed_and_reported() {
        let server = start(OnShutdown::Drain, 1).await;
        let _first = TcpStream::connect(server.addr).await.expect("connect");
        wait_for(&server.counts.opened, 1).await;
        let mut second = TcpStream::connect(server.addr).await.expect("connect");
        assert_eq!(until_closed(&mut second).await, "");
        assert_eq!(server.counts.refused.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn heads_are_bounded_in_size_and_time() {
        let server = start(OnShutdown::Drain, 4).await;
        let mut large = TcpStream::connect(server.addr).await.expect("connect");
        let filler = format!("X-Filler: {}\r\n", "x".repeat(2 << 10));
        let head = format!("GET / HTTP/1.1\r\nHost: t\r\n{filler}\r\n");
        large.write_all(head.as_bytes()).await.expect("write");
        assert!(until_closed(&mut large).await.starts_with("HTTP/1.1 431"));
        let mut silent = TcpStream::connect(server.addr).await.expect("connect");
        silent
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        assert_eq!(until_closed(&mut silent).await, "", "timed out");
        wait_for(&server.counts.closed, 2).await;
    }

    #[tokio::test]
    async fn cut_closes_open_connections_at_shutdown() {
        let server = start(OnShutdown::Cut, 4).await;
        let mut answered = TcpStream::connect(server.addr).await.expect("connect");
        answered
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        assert!(until_closed(&mut answered)
            .await
            .starts_with("HTTP/1.1 200"));
        let mut mid_head = TcpStream::connect(server.addr).await.expect("connect");
        mid_head.write_all(b"GET / HT").await.expect("write");
        wait_for(&server.counts.opened, 2).await;
        let started = tokio::time::Instant::now();
        let _ = server.stop.send(());
        let drain = server.task.await.expect("server task");
        assert_eq!(until_closed(&mut mid_head).await, "");
        drain.finish().await;
        assert!(started.elapsed() < HEADER_READ_TIMEOUT / 2, "not timed out");
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "listener closed"
        );
    }

    #[tokio::test]
    async fn drain_waits_for_open_connections() {
        let server = start(OnShutdown::Drain, 4).await;
        let mut idle = TcpStream::connect(server.addr).await.expect("connect");
        idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write");
        let mut first = [0u8; 12];
        tokio::time::timeout(DEADLINE, idle.read_exact(&mut first))
            .await
            .expect("answered before the deadline")
            .expect("read");
        assert_eq!(&first, b"HTTP/1.1 200");
        let _ = server.stop.send(());
        let drain = server.task.await.expect("server task");
        tokio::time::timeout(DEADLINE, drain.finish())
            .await
            .expect("the idle connection closed");
        let _ = until_closed(&mut idle).await;
        wait_for(&server.counts.closed, 1).await;
    }
}
