//! End-to-end support: a real ledger (in this process, on a fresh `sqlx::test` database
//! and its own Redis channel) and real edge nodes — each a separate `tessera-edge` process
//! running the wasm components of `spin.toml` — talking HTTP.

#![allow(dead_code)] // not every test uses every helper

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ledger::TestApp;

/// The secret edges and ledger share in these tests.
pub const EDGE_KEY: &str = "test-edge-key-5d1c";

/// The ledger's metrics are process-wide, so tests that count ledger requests take turns.
/// (An async mutex: each `#[sqlx::test]` has its own runtime, and the turn is held across
/// awaits.)
static LEDGER_METRICS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    LEDGER_METRICS.lock().await
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One edge node: a `tessera-edge` process with its own cache and subscription.
pub struct EdgeNode {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

pub struct EdgeOptions<'a> {
    pub manifest: PathBuf,
    pub redis_url: String,
    pub env: Vec<(&'a str, String)>,
}

impl EdgeOptions<'_> {
    pub fn for_ledger(ledger: &TestApp) -> Self {
        Self {
            manifest: repo_root().join("spin.toml"),
            redis_url: ledger.redis_url.clone(),
            env: Vec::new(),
        }
    }
}

impl EdgeNode {
    pub async fn start(ledger: &TestApp) -> Self {
        Self::start_with(ledger, EdgeOptions::for_ledger(ledger)).await
    }

    /// Starts a node and waits until it serves and its Redis subscription is live.
    pub async fn start_with(ledger: &TestApp, options: EdgeOptions<'_>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera-edge"));
        command
            .env("EDGE_ADDR", "127.0.0.1:0")
            .env("EDGE_MANIFEST", &options.manifest)
            .env("SPIN_VARIABLE_LEDGER_URL", &ledger.base)
            .env("SPIN_VARIABLE_EDGE_KEY", EDGE_KEY)
            .env("SPIN_VARIABLE_REDIS_ADDRESS", &options.redis_url)
            .env("SPIN_VARIABLE_INVALIDATION_CHANNEL", &ledger.channel)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("tessera-edge starts");
        let stdout = child.stdout.take().expect("stdout");
        // Compiling the components takes a few seconds in a debug build.
        let base = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let line = lines.next().and_then(Result::ok).unwrap_or_default();
            // Keep draining so the node never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            line.rsplit(' ').next().unwrap_or_default().to_owned()
        })
        .await
        .expect("reader");
        assert!(
            base.starts_with("http://"),
            "tessera-edge did not start: {base:?}"
        );
        let node = Self {
            child,
            base,
            client: reqwest::Client::new(),
        };
        if !options.redis_url.is_empty() {
            node.wait_subscribed(Duration::from_secs(20)).await;
        }
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn health(&self) -> Value {
        self.client
            .get(self.url("/health"))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("health json")
    }

    pub async fn wait_subscribed(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let health = self.health().await;
            if health["redis"]
                .as_array()
                .is_some_and(|subs| subs.iter().all(|s| s["subscribed"] == true))
            {
                return;
            }
            assert!(Instant::now() < deadline, "edge never subscribed: {health}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/holds` through this node: status, body and headers.
    pub async fn post_hold(
        &self,
        body: &Value,
        key: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self.client.post(self.url("/v1/holds")).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("hold request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            headers,
        )
    }

    /// `available` of the first zone of `show_id` as this node serves it.
    pub async fn available(&self, show_id: &str, zone_id: &str) -> i64 {
        let (status, body) = self
            .get_json(&format!("/v1/shows/{show_id}/availability"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["zones"]
            .as_array()
            .and_then(|zones| zones.iter().find(|z| z["zone_id"] == zone_id))
            .and_then(|z| z["available"].as_i64())
            .unwrap_or_else(|| panic!("zone {zone_id} missing in {body}"))
    }

    /// Polls until the node serves `expected` available, returning how long it took.
    pub async fn wait_available(
        &self,
        show_id: &str,
        zone_id: &str,
        expected: i64,
        limit: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let available = self.available(show_id, zone_id).await;
            if available == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "edge {} still serves {available} available, expected {expected}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A value of this node's Prometheus metrics (summed over series matching `labels`).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        sum_metric(&text, name, labels)
    }
}

impl Drop for EdgeNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the samples of `name` whose labels include every pair of `labels`.
pub fn sum_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// Requests the ledger has answered on `route` from `origin` (`edge` or `direct`).
pub async fn ledger_requests(ledger: &TestApp, method: &str, route: &str, origin: &str) -> f64 {
    let text = ledger
        .client
        .get(ledger.url("/metrics"))
        .send()
        .await
        .expect("ledger metrics")
        .text()
        .await
        .expect("text");
    sum_metric(
        &text,
        "http_requests_total",
        &[("method", method), ("route", route), ("origin", origin)],
    )
}
