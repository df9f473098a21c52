//! The ledger's accept loop, for both listeners (instead of `axum::serve`, which times out
//! nothing and bounds nothing): a connection must send a whole request head within the
//! idle timeout of opening or of its previous response, or it is closed; at most
//! `connections_max` are open at once per listener, and one past the bound is accepted and
//! closed at once. HTTP/1.1 only: what the edges and the clients speak (the auto builder's
//! HTTP/2 sniffing waits for a first byte with no timeout at all).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Back-off after a failed accept (out of file descriptors and the like), instead of
/// spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The largest request head (request line and headers) read from a client; past it hyper
/// answers `431` and closes. Unset, hyper's bound is its read buffer (~400 KB, more than
/// any real client sends), which every open connection could be made to hold.
const HEAD_MAX_BYTES: usize = 64 << 10;

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Without a complete request head for this long, a connection is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; past it a new one is closed on accepting it.
    pub connections_max: usize,
    /// The `listener` label of the connection metrics (`public`, `operations`).
    pub listener: &'static str,
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets each
/// open connection finish the request it is on (idle ones close at once) and returns when
/// all have closed. The caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let builder = connection_builder(limits.idle_timeout);
    let open = Arc::new(Semaphore::new(limits.connections_max));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, listener = limits.listener, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some(permit) = admit(&open, limits.listener, peer) else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            closed(permit, limits.listener);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// HTTP/1.1 connections whose request head must arrive whole within `idle_timeout` of the
/// connection opening or of the previous response (hyper restarts the timer when a
/// kept-alive connection goes idle): silent, idle and slowloris connections are closed.
fn connection_builder(idle_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .max_header_size(HEAD_MAX_BYTES);
    builder
}

/// A permit for one more open connection, or `None` at the bound: the new connection is
/// then closed at once (the caller drops it). Closing, not leaving it in the kernel's
/// backlog: the client learns at once and can retry or go elsewhere, instead of waiting
/// for an idle connection to time out; its descriptor is held for an instant only.
fn admit(
    open: &Arc<Semaphore>,
    listener: &'static str,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    match open.clone().try_acquire_owned() {
        Ok(permit) => {
            metrics::gauge!("http_connections_open", "listener" => listener).increment(1.0);
            Some(permit)
        }
        Err(_) => {
            tracing::debug!(%peer, listener, "at the connection limit: connection closed");
            metrics::counter!("http_connections_refused_total", "listener" => listener)
                .increment(1);
            None
        }
    }
}

/// The connection's slot is free again.
fn closed(permit: OwnedSemaphorePermit, listener: &'static str) {
    drop(permit);
    metrics::gauge!("http_connections_open", "listener" => listener).decrement(1.0);
}
