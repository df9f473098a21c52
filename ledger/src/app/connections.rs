//! The ledger's listeners on the shared accept loop ([`tessera_serving::serve`]: HTTP/1.1
//! only, each connection bounded in head size and header-read time, the connections of a
//! listener bounded in number, one past the bound accepted and closed at once), with the
//! ledger's metrics and logs: `http_connections_open` and `http_connections_refused_total`
//! by `listener`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::service::TowerToHyperService;
use tessera_serving::{ConnectionPolicy, OnShutdown, Report};
use tokio::net::TcpListener;

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
    let policy = ConnectionPolicy {
        header_read_timeout: limits.idle_timeout,
        head_max_bytes: HEAD_MAX_BYTES,
        connections_max: limits.connections_max,
        nodelay: false,
        on_shutdown: OnShutdown::Drain,
        report: Counted {
            listener: limits.listener,
        },
    };
    tessera_serving::serve(listener, policy, shutdown, |_| {
        TowerToHyperService::new(app.clone())
    })
    .await
    .finish()
    .await;
}

/// The ledger's connection metrics and logs, labelled by listener.
#[derive(Debug, Clone, Copy)]
struct Counted {
    listener: &'static str,
}

impl Report for Counted {
    fn accept_failed(&self, error: &std::io::Error) {
        tracing::warn!(error = %error, listener = self.listener, "accept failed");
    }

    fn opened(&self) {
        metrics::gauge!("http_connections_open", "listener" => self.listener).increment(1.0);
    }

    fn refused(&self, peer: SocketAddr) {
        let listener = self.listener;
        tracing::debug!(%peer, listener, "at the connection limit: connection closed");
        metrics::counter!("http_connections_refused_total", "listener" => listener).increment(1);
    }

    fn closed(&self, error: Option<&hyper::Error>) {
        if let Some(e) = error {
            tracing::debug!(error = %e, "connection closed with an error");
        }
        metrics::gauge!("http_connections_open", "listener" => self.listener).decrement(1.0);
    }
}
