//! Which tier sent a request. Edge nodes present the shared edge key (a secret Spin
//! variable on their side, `EDGE_KEY` here) in `Tessera-Edge-Key`; requests without it
//! come straight from clients. The origin labels the request metrics, so operators (and
//! the tests) can see what the edge answered itself and what reached the ledger; a wrong
//! key is refused, so a client cannot pass itself off as an edge.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
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

/// The digest kept in memory instead of the key: comparing digests takes the same time
/// whichever byte of a guess is wrong.
pub fn edge_key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let origin = match request.headers().get(EDGE_KEY_HEADER) {
        None => Origin::Direct,
        Some(presented) => match &state.config.edge_key_sha256 {
            Some(expected) if Sha256::digest(presented.as_bytes()).as_slice() == expected => {
                Origin::Edge
            }
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
