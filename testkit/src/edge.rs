//! Edge nodes: each a `tessera-edge` process running a Spin manifest's components with its
//! own cache, Redis subscription and ports (public and operations, both port 0: the node
//! prints where it listens). Killed when dropped.
//!
//! [`EdgeNode::start`] and the operations reads ([`EdgeNode::scrape`],
//! [`EdgeNode::health`]) return errors (the bench reports them); the request helpers below
//! them panic, as a test's assertion would.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::ledger::TestApp;

/// The secret the tests' edge nodes and ledgers share.
pub const EDGE_KEY: &str = "test-edge-key-5d1c";
/// The queue key the tests' edge nodes (`queue_key`) and ledgers (`QUEUE_KEY`) share: key
/// id 1, a 32-byte secret.
pub const QUEUE_KEY: &str = "1:dGVzc2VyYSB0ZXN0IHF1ZXVlIGtleSwgMzIgYnl0ZXM";
/// The node's first stdout line: `tessera-edge listening on http://127.0.0.1:PORT`.
const LISTENING_PREFIX: &str = "tessera-edge listening on ";
/// The rate limits (spin.toml's `rate_limit_*_per_s`), all off in the kit's nodes: every
/// test and bench client comes from 127.0.0.1, so production limits would refuse them.
/// A test of the limits sets them with [`EdgeOptions::env`] (later settings win).
pub const RATE_LIMITS_OFF: [&str; 4] = [
    "SPIN_VARIABLE_RATE_LIMIT_READS_PER_S",
    "SPIN_VARIABLE_RATE_LIMIT_JOINS_PER_S",
    "SPIN_VARIABLE_RATE_LIMIT_HOLDS_PER_S",
    "SPIN_VARIABLE_RATE_LIMIT_CHECKIN_PER_S",
];
/// Its second: `tessera-edge metrics on http://127.0.0.1:PORT` (the operations listener).
const METRICS_PREFIX: &str = "tessera-edge metrics on ";
/// Until the node prints its addresses: it compiles every component first, a few seconds
/// in a debug build, longer while parallel tests compile theirs.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Until every Redis subscription of a started node is live.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest any request to a node may take: a hung node fails the test instead of hanging
/// it (the slowest test request, a guest held to a 3 s deadline behind others, is far
/// below).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start {bin}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tessera-edge exited before printing both addresses (see its stderr)")]
    Exited,
    #[error("tessera-edge printed no addresses within {START_TIMEOUT:?}")]
    Timeout,
    #[error("reading tessera-edge's stdout")]
    Stdout(#[from] std::io::Error),
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("tessera-edge's Redis subscriptions were not all live within {SUBSCRIBE_TIMEOUT:?}: {health}")]
    NotSubscribed { health: String },
}

/// How to start a node. [`EdgeOptions::new`] gives `spin.toml`, the tests' [`EDGE_KEY`] and
/// the shared Redis; the builder methods change one thing each.
pub struct EdgeOptions {
    bin: PathBuf,
    manifest: PathBuf,
    ledger_url: String,
    channel: String,
    edge_key: String,
    redis_url: Option<String>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
}

impl EdgeOptions {
    /// A node of `bin` in front of the ledger at `ledger_url`, listening on `channel`.
    pub fn new(bin: impl Into<PathBuf>, ledger_url: &str, channel: &str) -> Self {
        Self {
            bin: bin.into(),
            manifest: crate::repo_root().join("spin.toml"),
            ledger_url: ledger_url.to_owned(),
            channel: channel.to_owned(),
            edge_key: EDGE_KEY.to_owned(),
            redis_url: Some(crate::services::redis_url()),
            env: Vec::new(),
            log: None,
        }
    }

    /// A node in front of an in-process test ledger, on that ledger's Redis and channel.
    pub fn for_app(bin: impl Into<PathBuf>, ledger: &TestApp) -> Self {
        Self::new(bin, &ledger.base, &ledger.channel).redis(&ledger.redis_url)
    }

    pub fn manifest(mut self, manifest: impl Into<PathBuf>) -> Self {
        self.manifest = manifest.into();
        self
    }

    pub fn edge_key(mut self, key: &str) -> Self {
        self.edge_key = key.to_owned();
        self
    }

    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_owned());
        self
    }

    /// For manifests without a Redis trigger: no subscription to wait for.
    pub fn without_redis(mut self) -> Self {
        self.redis_url = None;
        self
    }

    /// One more environment variable (`EDGE_*`, `SPIN_VARIABLE_*`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The node's stderr (and the rest of its stdout) into `path` instead of the caller's
    /// stderr.
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .env("EDGE_ADDR", "127.0.0.1:0")
            .env("EDGE_METRICS_ADDR", "127.0.0.1:0")
            .env("EDGE_MANIFEST", &self.manifest)
            .env("SPIN_VARIABLE_LEDGER_URL", &self.ledger_url)
            .env("SPIN_VARIABLE_EDGE_KEY", &self.edge_key)
            .env("SPIN_VARIABLE_QUEUE_KEY", QUEUE_KEY)
            .env("SPIN_VARIABLE_INVALIDATION_CHANNEL", &self.channel)
            .env("RUST_LOG", "warn")
            .envs(RATE_LIMITS_OFF.map(|name| (name, "0")))
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = &self.redis_url {
            command.env("SPIN_VARIABLE_REDIS_ADDRESS", url);
        }
        command
    }
}

/// One edge node (a `tessera-edge` process).
pub struct EdgeNode {
    child: Child,
    /// `http://127.0.0.1:PORT`: the public listener.
    pub base: String,
    /// `127.0.0.1:PORT`: the public listener, for raw HTTP clients.
    pub authority: String,
    /// `http://127.0.0.1:PORT`: the operations listener (`/metrics`, `/health`).
    pub metrics_base: String,
    pub client: reqwest::Client,
}

impl EdgeNode {
    /// Starts a node and waits until it serves and (with Redis) every subscription is live.
    pub async fn start(options: EdgeOptions) -> Result<Self, StartError> {
        let mut command = options.command();
        let log_error = |path: &PathBuf| {
            let path = path.clone();
            move |source| StartError::Log { path, source }
        };
        let (log, stderr) = match &options.log {
            Some(path) => {
                let file = File::create(path).map_err(log_error(path))?;
                let stderr = Stdio::from(file.try_clone().map_err(log_error(path))?);
                (Some(file), stderr)
            }
            None => (None, Stdio::inherit()),
        };
        let mut child = command
            .stderr(stderr)
            .spawn()
            .map_err(|source| StartError::Spawn {
                bin: options.bin.clone(),
                source,
            })?;
        let stdout = child.stdout.take().ok_or(StartError::Exited)?;
        let (base, metrics_base) = tokio::time::timeout(START_TIMEOUT, read_addresses(stdout, log))
            .await
            .map_err(|_| StartError::Timeout)??;
        let node = Self {
            child,
            authority: base.trim_start_matches("http://").to_owned(),
            base,
            metrics_base,
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .map_err(StartError::Client)?,
        };
        if options.redis_url.is_some() {
            node.wait_subscribed(SUBSCRIBE_TIMEOUT).await?;
        }
        Ok(node)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The node's `/metrics` text.
    pub async fn scrape(&self) -> Result<String, reqwest::Error> {
        crate::metrics::scrape(&self.client, &self.metrics_base).await
    }

    /// The node's `/health` JSON (from the operations listener).
    pub async fn health(&self) -> Result<Value, reqwest::Error> {
        self.client
            .get(format!("{}/health", self.metrics_base))
            .send()
            .await?
            .json()
            .await
    }

    /// Whether `health` reports every Redis subscription live.
    pub fn all_subscribed(health: &Value) -> bool {
        health["redis"]
            .as_array()
            .is_some_and(|subs| subs.iter().all(|s| s["subscribed"] == true))
    }

    /// Polls `/health` until every Redis subscription is live, at most `limit`.
    pub async fn wait_subscribed(&self, limit: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + limit;
        loop {
            let health = self.health().await.unwrap_or(Value::Null);
            if Self::all_subscribed(&health) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::NotSubscribed {
                    health: health.to_string(),
                });
            }
            tokio::time::sleep(crate::POLL_INTERVAL).await;
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the node as an orchestrator would ([`crate::process::stop`]): SIGTERM, then
    /// SIGKILL if it has not exited within the grace.
    pub async fn stop(mut self) {
        crate::process::stop(&mut self.child).await;
    }

    /// Asks the node to stop as an orchestrator would (SIGTERM): it stops accepting and lets
    /// in-flight requests finish.
    pub fn terminate(&self) -> std::io::Result<()> {
        crate::process::terminate(&self.child)
    }

    /// The process's exit status, if it exits within `limit`.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        crate::process::exited_within(&mut self.child, limit).await
    }
}

/// Reads the node's two address lines, then hands the rest of its stdout to `log` (or
/// drops it) so the node never blocks on a full pipe.
async fn read_addresses(
    stdout: ChildStdout,
    mut log: Option<File>,
) -> Result<(String, String), StartError> {
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(url) = line.strip_prefix(LISTENING_PREFIX) {
            base = Some(url.to_owned());
        } else if let (Some(url), Some(base)) = (line.strip_prefix(METRICS_PREFIX), &base) {
            let addresses = (base.clone(), url.to_owned());
            tokio::spawn(drain(lines, log));
            return Ok(addresses);
        } else if let Some(file) = &mut log {
            let _ = writeln!(file, "{line}");
        }
    }
    Err(StartError::Exited)
}

async fn drain(mut lines: Lines<BufReader<ChildStdout>>, mut log: Option<File>) {
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(file) = &mut log {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Test helpers: requests to the node that panic on failure, as an assertion would.
impl EdgeNode {
    /// Starts a node for a test, panicking if it does not come up.
    pub async fn start_for_test(options: EdgeOptions) -> Self {
        match Self::start(options).await {
            Ok(node) => node,
            Err(e) => panic!("edge node did not start: {e:#?}"),
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

    /// `available` of `zone_id` of `show_id` as this node serves it.
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
            tokio::time::sleep(crate::POLL_INTERVAL).await;
        }
    }

    /// A value of this node's metrics, summed over the series that have all of `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.scrape().await.expect("edge metrics");
        crate::metrics::sum_metric(&text, name, labels)
    }

    /// Outbound requests this node's guests made (`edge_outbound_requests_total`) from
    /// `component` (any with `None`) with `method`: what this node caused at the ledger.
    pub async fn outbound(&self, component: Option<&str>, method: &str) -> f64 {
        let mut labels = vec![("method", method)];
        labels.extend(component.map(|c| ("component", c)));
        self.metric("edge_outbound_requests_total", &labels).await
    }
}

/// The tests' fixture manifests (`tests/fixtures/<name>`).
pub fn fixture_manifest(name: &str) -> PathBuf {
    crate::repo_root().join("tests/fixtures").join(name)
}
