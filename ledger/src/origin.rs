//! Which tier sent a request. Edge nodes present the shared edge key (a secret Spin
//! variable on their side, `EDGE_KEY` here) in `Tessera-Edge-Key`; requests without it
//! come straight from clients. The origin labels the request metrics, so operators (and
//! the tests) can see what the edge answered itself and what reached the ledger; a wrong
//! key is refused, so a client cannot pass itself off as an edge.
//!
//! Rotation: the ledger accepts `EDGE_KEY` and, while edges switch over,
//! `EDGE_KEY_PREVIOUS`, so a key changes without a moment where either side refuses the
//! other (README, "Rotating the edge key").

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_domain::settings::{ConfigError, Settings};
use tessera_domain::ErrorCode;

use crate::app::AppState;
use crate::error::ApiError;

pub use tessera_domain::EDGE_KEY_HEADER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Edge,
    Direct,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Direct => "direct",
        }
    }
}

/// The SHA-256 digests of the accepted edge keys. Digests, not the keys: the comparison
/// then works on fixed-length values, so its time says nothing about a guess's length.
#[derive(Clone)]
pub struct EdgeKeys {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for EdgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeKeys(<redacted>)")
    }
}

impl EdgeKeys {
    pub fn new(current: &str, previous: Option<&str>) -> Self {
        Self {
            current: digest(current),
            previous: previous.map(digest),
        }
    }

    /// `EDGE_KEY` and `EDGE_KEY_PREVIOUS`; `None` when no edge key is set. A previous key
    /// without a current one is a mistake in the rotation, not a configuration.
    pub fn read<F: Fn(&str) -> Option<String>>(
        s: &Settings<F>,
    ) -> Result<Option<Self>, ConfigError> {
        match (s.secret("EDGE_KEY"), s.secret("EDGE_KEY_PREVIOUS")) {
            (Some(current), previous) => Ok(Some(Self::new(&current, previous.as_deref()))),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ConfigError {
                name: "EDGE_KEY_PREVIOUS".to_owned(),
                value: "<secret>".to_owned(),
                reason: "set only while rotating, together with EDGE_KEY".to_owned(),
            }),
        }
    }

    /// Whether `presented` is one of the keys. Constant time (`subtle`): every digest is
    /// compared in full and the results combined without branching, so the answer's timing
    /// reveals neither which byte of a guess was wrong nor which key matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest_bytes(presented);
        let current = presented.ct_eq(&self.current);
        let previous = self.previous.map_or(subtle::Choice::from(0), |previous| {
            presented.ct_eq(&previous)
        });
        (current | previous).into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    digest_bytes(key.as_bytes())
}

fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let origin = match request.headers().get(EDGE_KEY_HEADER) {
        None => Origin::Direct,
        Some(presented) => match &state.config.edge_keys {
            Some(keys) if keys.accepts(presented.as_bytes()) => Origin::Edge,
            _ => {
                metrics::counter!("edge_key_rejected_total").increment(1);
                return ApiError::client(ErrorCode::Unauthorized, "the edge key is not valid")
                    .into_response();
            }
        },
    };
    request.extensions_mut().insert(origin);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_and_the_previous_key_are_accepted_nothing_else() {
        let keys = EdgeKeys::new("new-key", Some("old-key"));
        assert!(keys.accepts(b"new-key"));
        assert!(keys.accepts(b"old-key"));
        assert!(!keys.accepts(b"new-kez"));
        assert!(!keys.accepts(b""));
        let single = EdgeKeys::new("only", None);
        assert!(single.accepts(b"only"));
        assert!(!single.accepts(b"old-key"));
    }
}
