//! Retrying clients, as a careful buyer's app behaves: every logical request has its own
//! `Idempotency-Key`, and the same key and body are sent again until a definitive answer
//! (anything but a transport error, 408, 429 or 5xx). Each client records what it was
//! told, so the audit can hold the database to it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

/// One attempt may take this long before it counts as lost (the client retries).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff between attempts: doubling from the first, capped, with full jitter.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// A logical request with no definitive answer after this long is "stuck": the campaign
/// fails. Faults last at most 10 s; a ledger restart adds a few seconds.
pub const ANSWER_BOUND: Duration = Duration::from_secs(30);
/// Pause between a client's logical requests (random in this range): a paced crowd (about
/// 20 holds/s per client), so the sale is still going when the faults land, on any machine.
const THINK: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(40)..=Duration::from_millis(60);
/// Bound on logical requests per client, whatever the window.
const REQUESTS_PER_CLIENT_MAX: u64 = 100_000;

/// What the clients do and where.
#[derive(Clone)]
pub struct Crowd {
    /// Base URLs; client `i` uses `targets[i % len]` (an edge, or ledgers directly).
    pub targets: Vec<String>,
    pub clients: usize,
    pub window: Duration,
    pub show_id: String,
    pub zone_id: String,
    /// A confirm waits a random time up to this after its hold (past the TTL, some expire).
    pub confirm_delay_max: Duration,
}

/// Counts of what happened on the wire.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Tally {
    pub logical_requests: u64,
    pub attempts: u64,
    /// Logical requests that needed more than one attempt.
    pub retried: u64,
    pub transport_errors: u64,
    /// Every status seen, on every attempt.
    pub statuses: BTreeMap<u16, u64>,
    pub longest_answer_ms: u64,
    /// Logical requests with no definitive answer within [`ANSWER_BOUND`].
    pub stuck: u64,
    /// Definitive answers no buyer should get (e.g. a 422 for a valid request).
    pub unexpected: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.logical_requests += other.logical_requests;
        self.attempts += other.attempts;
        self.retried += other.retried;
        self.transport_errors += other.transport_errors;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.longest_answer_ms = self.longest_answer_ms.max(other.longest_answer_ms);
        self.stuck += other.stuck;
        self.unexpected.extend(other.unexpected);
    }

    pub fn count(&self, status: std::ops::RangeInclusive<u16>) -> u64 {
        self.statuses.range(status).map(|(_, n)| n).sum()
    }
}

/// A hold the clients were granted (answered 201).
#[derive(Debug, Clone)]
pub struct Granted {
    pub hold_id: String,
    pub quantity: i64,
    pub body: Value,
}

/// What the clients were told, by key and hold.
#[derive(Debug, Default)]
pub struct Told {
    pub granted: HashMap<String, Granted>,
    pub confirmed: HashSet<String>,
    pub released: HashSet<String>,
    /// Holds the ledger said had expired (a confirm refused, or a release too late).
    pub expired: HashSet<String>,
    /// Confirms refused because the hold had expired (409 `hold_expired`).
    pub expired_at_confirm: u64,
    pub sold_out: u64,
}

impl Told {
    fn merge(&mut self, other: Told) {
        self.granted.extend(other.granted);
        self.confirmed.extend(other.confirmed);
        self.released.extend(other.released);
        self.expired.extend(other.expired);
        self.expired_at_confirm += other.expired_at_confirm;
        self.sold_out += other.sold_out;
    }

    pub fn tickets_granted(&self) -> i64 {
        self.granted.values().map(|g| g.quantity).sum()
    }
}

/// Runs the crowd for its window; every client finishes its logical request in flight.
pub async fn run(crowd: &Crowd) -> anyhow::Result<(Tally, Told)> {
    let http = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .build()?;
    let deadline = Instant::now() + crowd.window;
    let workers: Vec<_> = (0..crowd.clients)
        .map(|i| {
            let client = Client {
                http: http.clone(),
                target: crowd.targets[i % crowd.targets.len()].clone(),
                crowd: crowd.clone(),
                id: i,
                tally: Tally::default(),
                told: Told::default(),
            };
            tokio::spawn(client.run(deadline))
        })
        .collect();
    let (mut tally, mut told) = (Tally::default(), Told::default());
    for worker in workers {
        let (t, r) = worker.await?;
        tally.merge(t);
        told.merge(r);
    }
    Ok((tally, told))
}

struct Client {
    http: reqwest::Client,
    target: String,
    crowd: Crowd,
    id: usize,
    tally: Tally,
    told: Told,
}

/// An answer: status and JSON body (`Null` when not JSON).
type Answer = (u16, Value);

impl Client {
    async fn run(mut self, deadline: Instant) -> (Tally, Told) {
        let mut n = 0;
        while Instant::now() < deadline && n < REQUESTS_PER_CLIENT_MAX {
            n += 1;
            let key = format!("chaos-{}-{n}-{}", self.id, uuid::Uuid::new_v4().simple());
            if let Some(hold_id) = self.hold(&key, n).await {
                self.settle(&key, &hold_id).await;
            }
            let think = rand::rng().random_range(THINK);
            tokio::time::sleep(think).await;
        }
        (self.tally, self.told)
    }

    /// `POST /v1/holds`; the hold id when granted.
    async fn hold(&mut self, key: &str, n: u64) -> Option<String> {
        let quantity = rand::rng().random_range(1..=2);
        let body = json!({
            "show_id": self.crowd.show_id, "zone_id": self.crowd.zone_id,
            "quantity": quantity, "customer_id": format!("chaos-{}-{n}", self.id),
        });
        let (status, answer) = self
            .until_definitive(Method::POST, "/v1/holds", Some(key), Some(&body))
            .await?;
        match (status, code(&answer)) {
            (201, _) => {
                let hold_id = answer["hold_id"].as_str()?.to_owned();
                let granted = Granted {
                    hold_id: hold_id.clone(),
                    quantity,
                    body,
                };
                self.told.granted.insert(key.to_owned(), granted);
                Some(hold_id)
            }
            // Less left than asked for is sold out for this buyer.
            (409, "sold_out" | "insufficient_stock") => {
                self.told.sold_out += 1;
                None
            }
            (status, code) => {
                self.tally.unexpected.push(format!("hold: {status} {code}"));
                None
            }
        }
    }

    /// Half the holds are confirmed, a quarter released, a quarter left to expire.
    async fn settle(&mut self, key: &str, hold_id: &str) {
        let choice = rand::rng().random_range(0..4);
        if choice == 3 {
            return;
        }
        if choice == 2 {
            let path = format!("/v1/holds/{hold_id}/release");
            if let Some(answer) = self.until_definitive(Method::POST, &path, None, None).await {
                self.record_settlement(answer, hold_id, "release");
            }
            return;
        }
        let delay_max = self.crowd.confirm_delay_max;
        if !delay_max.is_zero() {
            let delay = rand::rng().random_range(Duration::ZERO..=delay_max);
            tokio::time::sleep(delay).await;
        }
        let path = format!("/v1/holds/{hold_id}/confirm");
        let body = json!({ "payment_ref": format!("pay-{key}") });
        let confirm_key = format!("{key}-confirm");
        if let Some(answer) = self
            .until_definitive(Method::POST, &path, Some(&confirm_key), Some(&body))
            .await
        {
            self.record_settlement(answer, hold_id, "confirm");
        }
    }

    /// A 200 carries the hold's state: a release of a hold that expired meanwhile (its
    /// retries outlasted the TTL) answers `expired`, and that is what the row must say.
    fn record_settlement(&mut self, (status, answer): Answer, hold_id: &str, what: &str) {
        let state = answer["status"].as_str().unwrap_or("");
        match (status, code(&answer), state) {
            (200, _, "confirmed") => {
                self.told.confirmed.insert(hold_id.to_owned());
            }
            (200, _, "released") => {
                self.told.released.insert(hold_id.to_owned());
            }
            (200, _, "expired") if what == "release" => {
                self.told.expired.insert(hold_id.to_owned());
            }
            (409, "hold_expired", _) => {
                self.told.expired_at_confirm += 1;
                self.told.expired.insert(hold_id.to_owned());
            }
            (status, code, state) => self
                .tally
                .unexpected
                .push(format!("{what}: {status} {code} {state}")),
        }
    }

    /// Sends until a definitive answer; `None` (counted as stuck) past [`ANSWER_BOUND`].
    async fn until_definitive(
        &mut self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Option<Answer> {
        let started = Instant::now();
        self.tally.logical_requests += 1;
        for attempt in 0u32.. {
            if attempt == 1 {
                self.tally.retried += 1;
            }
            if let Some(answer) = self.attempt(method.clone(), path, key, body).await {
                let took = started.elapsed().as_millis() as u64;
                self.tally.longest_answer_ms = self.tally.longest_answer_ms.max(took);
                return Some(answer);
            }
            if started.elapsed() > ANSWER_BOUND {
                break;
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        self.tally.stuck += 1;
        None
    }

    /// One attempt; `None` when it must be retried.
    async fn attempt(
        &mut self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Option<Answer> {
        self.tally.attempts += 1;
        let mut request = self.http.request(method, format!("{}{path}", self.target));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let Ok(response) = request.send().await else {
            self.tally.transport_errors += 1;
            return None;
        };
        let status = response.status().as_u16();
        *self.tally.statuses.entry(status).or_default() += 1;
        // A body cut off by a dying server is a lost attempt too.
        let Ok(bytes) = response.bytes().await else {
            self.tally.transport_errors += 1;
            return None;
        };
        let retryable = matches!(status, 408 | 429) || status >= 500;
        (!retryable).then(|| {
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }
}

fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_FIRST
        .saturating_mul(1 << attempt.min(16))
        .min(RETRY_MAX);
    rand::rng().random_range(Duration::ZERO..=ceiling)
}

fn code(answer: &Value) -> &str {
    answer["code"].as_str().unwrap_or("")
}

/// Sends each granted hold's request again, same key and body: every one must replay the
/// same hold (no key ever gets two). Returns the mismatches.
pub async fn replay_probe(target: &str, told: &Told, sample: usize) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .build()?;
    let mut mismatches = Vec::new();
    for (key, granted) in told.granted.iter().take(sample) {
        let response = http
            .post(format!("{target}/v1/holds"))
            .header("Idempotency-Key", key)
            .json(&granted.body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status != 201 || answer["hold_id"].as_str() != Some(granted.hold_id.as_str()) {
            mismatches.push(format!(
                "key {key}: answered {} first, now {status} {} {}",
                granted.hold_id, answer["hold_id"], answer["detail"]
            ));
        }
    }
    Ok(mismatches)
}
