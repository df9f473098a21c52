//! A webhook receiver for tests and the bench: a real HTTP server on 127.0.0.1 that checks
//! every delivery's signature the way the README tells receivers to
//! (`tessera_domain::webhooks::verify`), records it, and can be told to misbehave — stop
//! listening (connections refused), answer 500, hang past the sender's timeout, or fail
//! from the nth delivery on — and come back on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tessera_domain::webhooks::{self, Delivered, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200, and the delivery counts as accepted.
    Accept,
    /// 500.
    Fail,
    /// Waits this long before answering 200: past the sender's timeout a timeout, under it
    /// a slow receiver (its attempts are not in [`WebhookReceiver::accepted`]).
    Hang(Duration),
    /// Accepts until this many deliveries have been accepted in all, then answers 500.
    AcceptFirst(usize),
}

/// One request that reached the receiver.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: Instant,
    pub event_id: Option<uuid::Uuid>,
    pub mode: Mode,
}

/// A delivery the receiver accepted (answered 200 at once).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub event: Delivered,
    pub body: Vec<u8>,
    pub signature: String,
    /// Whether the signature verified with the receiver's secret.
    pub verified: bool,
}

#[derive(Default)]
struct Shared {
    secret: String,
    mode: Option<Mode>,
    attempts: Vec<Attempt>,
    accepted: Vec<Accepted>,
}

pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<CancellationToken>,
}

impl WebhookReceiver {
    /// Listens on a free port of 127.0.0.1, accepting.
    pub async fn start() -> Self {
        let mut receiver = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            shared: Arc::new(Mutex::new(Shared {
                mode: Some(Mode::Accept),
                ..Shared::default()
            })),
            stop: None,
        };
        receiver.listen().await;
        receiver
    }

    async fn listen(&mut self) {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("bind the receiver's port");
        let listener = socket.listen(1024).expect("listen");
        self.addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.shared.clone());
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        self.stop = Some(stop);
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The secret deliveries are verified with (the one the ledger showed at registration).
    pub fn set_secret(&self, secret: &str) {
        self.lock().secret = secret.to_owned();
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = Some(mode);
    }

    /// Stops listening: connections are refused until [`Self::resume`].
    pub fn refuse(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        if self.stop.is_none() {
            self.listen().await;
        }
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.lock().accepted.clone()
    }

    /// How many accepted deliveries `keep` holds for, without copying them (a load polls it).
    pub fn count_accepted(&self, keep: impl Fn(&Accepted) -> bool) -> usize {
        self.lock().accepted.iter().filter(|a| keep(a)).count()
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.refuse();
    }
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let event: Option<Delivered> = serde_json::from_slice(&body).ok();
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mode = {
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mode = match shared.mode.unwrap_or(Mode::Accept) {
            Mode::AcceptFirst(count) if shared.accepted.len() >= count => Mode::Fail,
            Mode::AcceptFirst(_) => Mode::Accept,
            mode => mode,
        };
        shared.attempts.push(Attempt {
            at: Instant::now(),
            event_id: event.as_ref().map(|e| e.id),
            mode,
        });
        if let (Mode::Accept, Some(event)) = (mode, event) {
            let verified = webhooks::verify(
                &shared.secret,
                &signature,
                &body,
                chrono::Utc::now(),
                SIGNATURE_TOLERANCE_SECONDS,
            )
            .is_ok();
            shared.accepted.push(Accepted {
                event,
                body: body.to_vec(),
                signature,
                verified,
            });
        }
        mode
    };
    match mode {
        Mode::Accept => StatusCode::OK,
        Mode::Fail | Mode::AcceptFirst(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang(time) => {
            tokio::time::sleep(time).await;
            StatusCode::OK
        }
    }
}
