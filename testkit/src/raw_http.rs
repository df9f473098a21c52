//! Raw HTTP/1.1 over one TCP connection, for what a client library never does: stay silent,
//! stall mid-head or mid-body, wait for `100 Continue`, open connections past a server's
//! bound. Used by `tests/host.rs` and `ledger/tests/connections.rs`, so both tiers are tested
//! with the same client.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any single read here waits: a server that never answers fails the test instead
/// of hanging it.
pub const READ_LIMIT: Duration = Duration::from_secs(20);
/// A response head larger than this is not one these tests expect.
const HEAD_MAX_BYTES: usize = 16 << 10;

/// One answer: status, head (status line and headers) and body (by Content-Length).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

pub struct RawConnection {
    stream: TcpStream,
}

impl RawConnection {
    pub async fn open(authority: &str) -> Self {
        let stream = TcpStream::connect(authority).await.expect("connect");
        Self { stream }
    }

    /// Writes `bytes`; an error means the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next answer (an interim `100 Continue` too), or `None` if the connection closed
    /// (or was reset) before a whole head arrived.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let head = tokio::time::timeout(READ_LIMIT, self.head())
            .await
            .expect("an answer or a close within the read limit")?;
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 head: {head:?}"));
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        tokio::time::timeout(READ_LIMIT, self.stream.read_exact(&mut body))
            .await
            .expect("the body within the read limit")
            .ok()?;
        Some(RawResponse {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Byte by byte up to the blank line, so nothing of the body is read with it.
    async fn head(&mut self) -> Option<String> {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < HEAD_MAX_BYTES, "head too large");
            match self.stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(_) => return None,
            }
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    /// Waits until the server closes (or resets) the connection, at most `limit`; returns
    /// what arrived before. Panics if it stays open.
    pub async fn closed_within(&mut self, limit: Duration) -> String {
        let mut received = Vec::new();
        let read = tokio::time::timeout(limit, self.stream.read_to_end(&mut received)).await;
        assert!(read.is_ok(), "the connection is still open after {limit:?}");
        String::from_utf8_lossy(&received).into_owned()
    }

    /// The answer to a body the client stalled: 408 `request_timeout` problem+json with
    /// `Connection: close`, after which the server closes within `limit`.
    pub async fn expect_request_timeout(&mut self, limit: Duration) {
        let answer = self
            .response()
            .await
            .expect("an answer to the stalled body");
        assert_eq!(answer.status, 408, "{answer:?}");
        let problem: serde_json::Value = serde_json::from_str(&answer.body).expect("problem json");
        assert_eq!(problem["code"], "request_timeout", "{problem}");
        assert!(
            answer
                .head
                .to_ascii_lowercase()
                .contains("connection: close"),
            "{answer:?}"
        );
        self.closed_within(limit).await;
    }
}
