//! Raw HTTP/1.1 over one TCP connection, for what a client library never does: stay silent,
//! stall mid-head or mid-body, wait for `100 Continue`, open connections past a server's
//! bound. Used by `tests/host.rs` and `ledger/tests/connections.rs`, so both tiers are tested
//! with the same client.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ledger::Fixture;

/// Longest any single read here waits: a server that never answers fails the test instead
/// of hanging it.
pub const READ_LIMIT: Duration = Duration::from_secs(20);
/// A response head larger than this is not one these tests expect.
const HEAD_MAX_BYTES: usize = 16 << 10;
/// Connections [`slow_heads_closed_within`] leaves with a head that never ends: a few, so
/// one closed by chance does not pass the test.
const PARTIAL_HEADS: usize = 5;
/// How often [`slow_heads_closed_within`]'s slowloris sends a byte: well within any idle
/// timeout the tests set (500 ms), so only a bound on the whole head closes it.
const TRICKLE_EVERY: Duration = Duration::from_millis(200);

/// One answer: status, head (status line and headers) and body (by Content-Length, or
/// chunked).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

pub struct RawConnection {
    stream: TcpStream,
}

/// `GET target` with `extra` header lines (each ending in CRLF), as bytes: the target may
/// hold anything, valid or not.
pub fn get_request(target: &[u8], extra: &[u8]) -> Vec<u8> {
    [
        b"GET ",
        target,
        b" HTTP/1.1\r\nHost: tessera\r\n",
        extra,
        b"\r\n",
    ]
    .concat()
}

/// `POST path` with a JSON content type, idempotency key `key` and `body` as it is (valid or
/// not).
pub fn post_json_request(path: &str, key: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: tessera\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// A `POST /v1/holds` body for one ticket in the fixture's first zone whose `customer_id`
/// string holds `customer`, bytes as given (valid JSON or not: escapes, invalid UTF-8, NUL).
pub fn hold_body(fixture: &Fixture, customer: &[u8]) -> Vec<u8> {
    const MARK: &str = "CUSTOMER";
    let valid = json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0],
                       "quantity": 1, "customer_id": MARK})
    .to_string();
    let (before, after) = valid.split_once(MARK).expect("the mark is in the body");
    [before.as_bytes(), customer, after.as_bytes()].concat()
}

/// Slow heads at the server at `authority`, whose idle timeout is well under
/// `close_limit`: besides `idle` (connections already open and silent), a few that send
/// part of a head and stop must each be closed within `close_limit`; then a head trickled
/// a byte every 200 ms (each byte well within the timeout, but the whole head must be) is
/// closed all the same, long before it could end.
pub async fn slow_heads_closed_within(
    authority: &str,
    mut idle: Vec<RawConnection>,
    close_limit: Duration,
) {
    for _ in 0..PARTIAL_HEADS {
        let mut conn = RawConnection::open(authority).await;
        conn.send(b"GET /health HTTP/1.1\r\nHo")
            .await
            .expect("sent");
        idle.push(conn);
    }
    for conn in &mut idle {
        conn.closed_within(close_limit).await;
    }
    let trickled = [
        b"GET /health HTTP/1.1\r\nX-Slow: ".as_slice(),
        &[b'a'; 100],
        b"\r\n\r\n",
    ]
    .concat();
    let mut conn = RawConnection::open(authority).await;
    conn.trickle_until_closed(&trickled, TRICKLE_EVERY, close_limit)
        .await;
}

/// What a hostile request got, as the tests assert it.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This status with a problem+json body.
    Problem(u16),
    /// This error status with no body: the HTTP layer refused the request before the
    /// application saw it.
    Refused(u16),
    /// Any other answer with this status.
    Plain(u16),
}

/// Sends each `(name, request, expected)` on a connection of its own; returns a line per
/// case answered otherwise (or not at all), with what came instead.
pub async fn misanswered(authority: &str, cases: Vec<(&str, Vec<u8>, Outcome)>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, request, expected) in cases {
        let answer = RawConnection::exchange(authority, &request).await;
        if answer.as_ref().map(RawResponse::outcome) != Some(expected) {
            wrong.push(format!("{name}: {answer:?}"));
        }
    }
    wrong
}

impl RawResponse {
    /// The answer in `bytes` as a server sent them (a whole head and its body, however it
    /// was framed), or `None` if they end before the head does.
    pub async fn parse(mut bytes: &[u8]) -> Option<RawResponse> {
        let mut reader = ResponseReader(&mut bytes);
        let head = reader.head().await?;
        let body = reader.body(&head).await?;
        Some(Self::new(head, &body))
    }

    fn new(head: String, body: &[u8]) -> Self {
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 head: {head:?}"));
        Self {
            status,
            head,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.header("content-type") == Some("application/problem+json") {
            Outcome::Problem(self.status)
        } else if self.body.is_empty() && self.status >= 400 {
            Outcome::Refused(self.status)
        } else {
            Outcome::Plain(self.status)
        }
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.head, name)
    }
}

/// The value of header `name` (case-insensitive) in a response head, if present.
fn header_in<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

impl RawConnection {
    pub async fn open(authority: &str) -> Self {
        let stream = TcpStream::connect(authority).await.expect("connect");
        Self { stream }
    }

    /// Sends `request` on a new connection and reads one answer; `None` if the server closed
    /// without one. A write error is not a failure: a server may answer a head it refuses
    /// and close before the client has written all of it.
    pub async fn exchange(authority: &str, request: &[u8]) -> Option<RawResponse> {
        let mut conn = Self::open(authority).await;
        let _refused_early = conn.send(request).await;
        conn.response().await
    }

    /// Writes `bytes`; an error means the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next answer (an interim `100 Continue` too), or `None` if the connection closed
    /// (or was reset) before a whole head arrived.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let mut reader = ResponseReader(&mut self.stream);
        let head = tokio::time::timeout(READ_LIMIT, reader.head())
            .await
            .expect("an answer or a close within the read limit")?;
        let body = tokio::time::timeout(READ_LIMIT, reader.body(&head))
            .await
            .expect("the body within the read limit")?;
        Some(RawResponse::new(head, &body))
    }

    /// Waits until the server closes (or resets) the connection, at most `limit`; returns
    /// what arrived before. Panics if it stays open.
    pub async fn closed_within(&mut self, limit: Duration) -> String {
        let mut received = Vec::new();
        let read = tokio::time::timeout(limit, self.stream.read_to_end(&mut received)).await;
        assert!(read.is_ok(), "the connection is still open after {limit:?}");
        String::from_utf8_lossy(&received).into_owned()
    }

    /// A slowloris client: writes `head` one byte every `every` until the server closes
    /// the connection (a read ends or fails, or a write fails). Panics if the connection is
    /// still open after `limit`, or the whole head was sent.
    pub async fn trickle_until_closed(&mut self, head: &[u8], every: Duration, limit: Duration) {
        let (mut reader, mut writer) = self.stream.split();
        let trickle = async {
            let mut ticks = tokio::time::interval(every);
            for byte in head {
                ticks.tick().await;
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
            panic!("the whole head was sent and the connection is still open");
        };
        let closed = async {
            let mut received = Vec::new();
            let _ = reader.read_to_end(&mut received).await;
        };
        tokio::time::timeout(limit, async {
            tokio::select! { () = trickle => {}, () = closed => {} }
        })
        .await
        .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"));
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

/// Reads one HTTP/1.1 answer from a connection or from bytes already received.
struct ResponseReader<R>(R);

impl<R: AsyncRead + Unpin> ResponseReader<R> {
    /// Byte by byte up to the blank line, so nothing of the body is read with it.
    async fn head(&mut self) -> Option<String> {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < HEAD_MAX_BYTES, "head too large");
            match self.0.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(_) => return None,
            }
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    /// The body after `head`: chunked, or by Content-Length (none: empty).
    async fn body(&mut self, head: &str) -> Option<Vec<u8>> {
        if header_in(head, "transfer-encoding") == Some("chunked") {
            return self.chunked_body().await;
        }
        let length = header_in(head, "content-length").map_or(0, |value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("content-length {value:?}"))
        });
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    /// Chunks up to the last (empty) one and the trailer's blank line.
    async fn chunked_body(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size, 16).unwrap_or_else(|_| panic!("chunk size {line:?}"));
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Some(body);
            }
            let mut chunk = vec![0; size + 2];
            self.0.read_exact(&mut chunk).await.ok()?;
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            assert!(line.len() < HEAD_MAX_BYTES, "line too long");
            line.push(self.0.read_u8().await.ok()?);
        }
        line.truncate(line.len() - 2);
        Some(String::from_utf8_lossy(&line).into_owned())
    }
}
