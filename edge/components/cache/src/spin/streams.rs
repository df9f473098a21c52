//! Reading a whole incoming body (a request's or the ledger's answer's) in blocking reads:
//! one host call per chunk that arrived, where spin-sdk's body stream asks for a pollable,
//! a poll and a read for each. A guest that needs the whole body has nothing else to do
//! while it waits.

use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::StreamError;

/// The most one `blocking-read` asks for.
const READ_CHUNK_BYTES: u64 = 64 << 10;

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Failed(String),
}

/// The whole body, at most `max` bytes: reading stops as soon as the limit is passed.
pub fn read_all(incoming: IncomingBody, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| ReadError::Failed("the body stream was taken twice".to_owned()))?;
        loop {
            match stream.blocking_read(READ_CHUNK_BYTES) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(ReadError::Failed(e.to_debug_string()))
                }
            }
            if u64::try_from(body.len()).map_or(true, |len| len > max) {
                return Err(ReadError::TooLarge(max));
            }
        }
    }
    // Trailers are not read: dropping their future is enough.
    drop(IncomingBody::finish(incoming));
    Ok(body)
}
