//! The front door's requests, for tests against a ledger or an edge (`base`): turning an
//! event's queue on, joining, polling until admitted, holding with a pass.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ledger::TestApp;

/// How often [`wait_admitted`] polls.
const POLL_EVERY: Duration = Duration::from_millis(50);

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl TestApp {
    /// Turns `event_id`'s queue on at `admit_per_minute` (sessions of 10 minutes).
    pub async fn queue_on(&self, event_id: &str, admit_per_minute: i64) -> Value {
        let body =
            json!({"enabled": true, "admit_per_minute": admit_per_minute, "session_minutes": 10});
        let (status, queue) = answer(
            self.admin(
                reqwest::Method::PUT,
                &format!("/admin/v1/events/{event_id}/queue"),
                &body,
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{queue}");
        queue
    }
}

/// `POST {base}/v1/events/{event_id}/queue`, with an `Idempotency-Key` if given.
pub async fn join(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = client.post(format!("{base}/v1/events/{event_id}/queue"));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    answer(request.send().await.expect("join")).await
}

/// `POST {base}/v1/events/{event_id}/queue` with a ticket already held (any bytes, so a
/// test can send one that is not text): the same place, or a refusal.
pub async fn rejoin(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    ticket: &[u8],
) -> (u16, Value) {
    let ticket = reqwest::header::HeaderValue::from_bytes(ticket).expect("a header value");
    let request = client
        .post(format!("{base}/v1/events/{event_id}/queue"))
        .header("tessera-queue-ticket", ticket);
    answer(request.send().await.expect("rejoin")).await
}

/// `GET {base}/v1/events/{event_id}/queue` with `ticket`.
pub async fn poll(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    ticket: &str,
) -> (u16, Value) {
    let request = client
        .get(format!("{base}/v1/events/{event_id}/queue"))
        .header("tessera-queue-ticket", ticket);
    answer(request.send().await.expect("poll")).await
}

/// Polls until the ticket's holder is admitted (within `limit`); the answer with its pass.
pub async fn wait_admitted(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    ticket: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, answer) = poll(client, base, event_id, ticket).await;
        assert_eq!(status, 200, "{answer}");
        if answer["state"] == "admitted" {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "not admitted within {limit:?}: {answer}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `POST {base}/v1/holds` with `body`, a fresh key and the pass (`Tessera-Pass`) if given.
pub async fn hold(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
    pass: Option<&str>,
) -> (u16, Value) {
    let mut request = client
        .post(format!("{base}/v1/holds"))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(body);
    if let Some(pass) = pass {
        request = request.header("tessera-pass", pass);
    }
    answer(request.send().await.expect("hold")).await
}
