//! Bodies through the host. A request body is read whole, cut at the node's limit as it
//! streams in (a chunked body has no Content-Length to refuse up front) and within the
//! body-read timeout, before the request takes an instance slot: a client that stalls its
//! body holds its connection, never an instance. Small response bodies are collected so
//! their head and body leave in one write.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::Response;
use tessera_domain::{ErrorCode, Problem};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::Error as HttpError;

use crate::metrics::guest_failure;
use crate::respond::problem;

/// Set once a request body went past the limit.
#[derive(Debug, Clone, Default)]
pub struct Overflow(Arc<AtomicBool>);

impl Overflow {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request body that fails once more than `max_bytes` arrived, and keeps failing: a cut
/// body is never mistaken for a complete one.
#[derive(Debug)]
pub struct LimitedBody {
    inner: Incoming,
    max_bytes: u64,
    received_bytes: u64,
    overflow: Overflow,
}

impl LimitedBody {
    pub fn new(inner: Incoming, max_bytes: u64) -> (Self, Overflow) {
        let overflow = Overflow::default();
        let body = Self {
            inner,
            max_bytes,
            received_bytes: 0,
            overflow: overflow.clone(),
        };
        (body, overflow)
    }

    fn too_large(&self) -> HttpError {
        HttpError::HttpRequestBodySize(Some(self.received_bytes))
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.overflow.happened() {
            return Poll::Ready(Some(Err(this.too_large())));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            this.received_bytes = this.received_bytes.saturating_add(len);
            if this.received_bytes > this.max_bytes {
                this.overflow.0.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(this.too_large())));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a guest reads as its request body: the body, read whole by the host.
pub type GuestBody = UnsyncBoxBody<Bytes, HttpError>;

/// Why a request body was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the body did not arrive within {0:?}")]
    TimedOut(Duration),
    /// The client broke the body off (a reset, a malformed chunk).
    #[error("the body could not be read")]
    Broken(#[source] HttpError),
}

/// The request body, read whole: at most `max_bytes`, all of it within `timeout`. A request
/// without a body (a GET) is not waited on at all.
pub async fn read_request_body(
    body: Incoming,
    max_bytes: u64,
    timeout: Duration,
) -> Result<GuestBody, BodyReadError> {
    if body.is_end_stream() {
        return Ok(guest_body(Bytes::new()));
    }
    let (limited, overflow) = LimitedBody::new(body, max_bytes);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(guest_body(collected.to_bytes())),
        Ok(Err(_)) if overflow.happened() => Err(BodyReadError::TooLarge(max_bytes)),
        Ok(Err(e)) => Err(BodyReadError::Broken(e)),
        Err(_) => Err(BodyReadError::TimedOut(timeout)),
    }
}

fn guest_body(bytes: Bytes) -> GuestBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Bodies up to this size are collected before the head is written.
const COALESCE_BODY_MAX_BYTES: usize = 64 * 1024;
/// How long to wait for the body's next frame before streaming instead: a component that
/// writes its body at once is never this slow; one that streams or polls must not be held.
const COALESCE_FRAME_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// A component sends its response head before it writes the body, so hyper would write the
/// head, then each body chunk, in separate system calls: measured as ~14% of the node's CPU
/// under the edge read benchmark. A small body written at once (all of ours) is collected
/// first, so head and body leave in one write with a Content-Length; anything larger or
/// slower streams on after the part collected.
pub async fn coalesce_small_body(
    component_id: &str,
    response: Response<HyperOutgoingBody>,
) -> Response<HyperOutgoingBody> {
    let (parts, mut body) = response.into_parts();
    let mut collected = bytes::BytesMut::new();
    loop {
        let Ok(frame) = tokio::time::timeout(COALESCE_FRAME_WAIT, body.frame()).await else {
            return streamed(parts, collected, None, body);
        };
        match frame {
            None => return Response::from_parts(parts, full(collected.freeze())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if collected.len() + data.len() <= COALESCE_BODY_MAX_BYTES => {
                    collected.extend_from_slice(&data);
                }
                // Too large to hold, or trailers: stream from here on.
                Ok(data) => return streamed(parts, collected, Some(Frame::data(data)), body),
                Err(trailers) => return streamed(parts, collected, Some(trailers), body),
            },
            Some(Err(e)) => {
                // Nothing was sent yet, so the client gets a clean error, not a cut body.
                tracing::warn!(component = component_id, error = %e, "the component's response body failed");
                guest_failure(component_id, "body");
                return problem(
                    Problem::new(ErrorCode::Internal).with_detail("the component failed"),
                );
            }
        }
    }
}

/// `collected`, then `next`, then the rest of `body`.
fn streamed(
    parts: hyper::http::response::Parts,
    collected: bytes::BytesMut,
    next: Option<Frame<Bytes>>,
    body: HyperOutgoingBody,
) -> Response<HyperOutgoingBody> {
    use futures_util::StreamExt as _;
    let head = std::iter::once(Frame::data(collected.freeze()))
        .chain(next)
        .map(Ok);
    let frames = futures_util::stream::iter(head).chain(http_body_util::BodyStream::new(body));
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

/// A body that is all there at once.
pub fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
