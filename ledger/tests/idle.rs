//! `/health` answers while 20,000 idle connections are open at the ledger (issue 10,
//! finding 2): a `tessera-ledger serve` process on a fresh database with its default
//! connection bound (16,384), below the crowd. It holds exactly its bound, closes every
//! connection past it on accepting it, answers `/health` on the operations listener
//! meanwhile, and closes the idle ones after its idle timeout, after which it serves new
//! connections again.
//!
//! Every end of the crowd has a process of its own: the ledger holds the server ends (its
//! bound fits its open-file limit), two child processes the 20,000 client ends (the kit's
//! [`SplitCrowd`], this binary again running [`crowd_share`]), so none needs more than a
//! usual hard limit of 20,000 open files.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use sqlx::Postgres;
use tessera_testkit::edge::EDGE_KEY;
use tessera_testkit::idle::{hold_share, SplitCrowd};
use tessera_testkit::metrics::{scrape, sum_metric};
use tessera_testkit::raw_http::RawConnection;
use tessera_testkit::services::{database_url, redis_url, unique_channel};
use tessera_testkit::wait_until;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const LEDGER_BIN: &str = env!("CARGO_BIN_EXE_tessera-ledger");
/// The crowd.
const IDLE_CONNECTIONS: usize = 20_000;
/// The ledger's bound (CONNECTIONS_MAX), its default: the crowd is past it.
const CONNECTIONS_MAX: usize = 16_384;
const _: () = assert!(CONNECTIONS_MAX < IDLE_CONNECTIONS);
/// The `#[ignore]`d test a crowd child runs: [`crowd_share`].
const CROWD_SHARE_TEST: &str = "crowd_share";
/// The idle timeout (IDLE_TIMEOUT_MS): longer than opening the crowd and the checks while
/// it is open take (a few seconds), so every admitted connection is still open for them;
/// short, so the test ends soon after.
const IDLE_TIMEOUT: Duration = Duration::from_secs(12);
/// Opening the crowd may take at most this: half the idle timeout, leaving the other half
/// for the checks while every admitted connection is open.
const OPEN_LIMIT: Duration = Duration::from_secs(6);
/// `/health` on the operations listener answers within this while the crowd is open.
const HEALTH_LIMIT: Duration = Duration::from_secs(2);
/// A connection past the bound is closed at once; waiting this long shows which were.
const CLOSED_AT_ONCE: Duration = Duration::from_secs(1);
/// Longest anything else here waits (metrics settling, the idle ones closing past their
/// timeout, one request).
const LIMIT: Duration = Duration::from_secs(20);
/// Until the ledger logs where it listens and answers `/health`: migrating a fresh
/// database takes a few seconds, longer on a machine busy compiling.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The ledger's log line that names its listeners (`addr`, `metrics_addr`).
const LISTENING: &str = "ledger listening";
/// The public listener's connection metrics.
const PUBLIC: [(&str, &str); 1] = [("listener", "public")];

#[tokio::test]
async fn health_answers_beside_20000_idle_connections_and_the_idle_ones_are_closed() {
    let ledger = LedgerProcess::start().await;

    let opened = Instant::now();
    let mut crowd = SplitCrowd::open(
        CROWD_SHARE_TEST,
        &ledger.authority,
        IDLE_CONNECTIONS,
        OPEN_LIMIT,
        || ledger.accepted(),
    )
    .await;
    the_bound_holds(&ledger, &mut crowd).await;
    health_answers(&ledger).await;
    a_new_connection_is_closed_unanswered(&ledger).await;
    assert!(
        opened.elapsed() < IDLE_TIMEOUT,
        "the checks ran past the idle timeout ({:?}): they saw connections it closed",
        opened.elapsed()
    );

    // The idle timeout closes every admitted one, and the ledger serves new connections.
    let (still_open, closed) = crowd.partition_closed(IDLE_TIMEOUT + LIMIT).await;
    assert_eq!((still_open, closed), (0, CONNECTIONS_MAX));
    wait_until("every connection slot is free", LIMIT, || async {
        ledger.public_metric("http_connections_open").await == 0.0
    })
    .await;
    let health = ledger
        .client
        .get(format!("http://{}/health", ledger.authority))
        .send()
        .await
        .expect("/health on the public listener");
    assert_eq!(health.status(), 200);
    crowd.close().await;
    ledger.stop().await;
}

/// A crowd child's part (started by the test above, with its order in the environment):
/// holds its share of the crowd until its stdin closes.
#[tokio::test]
#[ignore = "a crowd child: the idle test above runs it in a process of its own"]
async fn crowd_share() {
    hold_share().await;
}

/// The ledger has accepted the whole crowd: it holds exactly its bound, and has closed the
/// rest (seen from both ends). The crowd keeps the connections it holds.
async fn the_bound_holds(ledger: &LedgerProcess, crowd: &mut SplitCrowd) {
    wait_until(
        "the ledger has accepted every connection",
        LIMIT,
        || async { ledger.accepted().await >= IDLE_CONNECTIONS },
    )
    .await;
    assert_eq!(
        ledger.public_metric("http_connections_open").await,
        CONNECTIONS_MAX as f64
    );
    assert_eq!(
        ledger.public_metric("http_connections_refused_total").await,
        (IDLE_CONNECTIONS - CONNECTIONS_MAX) as f64
    );
    let (held, closed) = crowd.partition_closed(CLOSED_AT_ONCE).await;
    assert_eq!(
        (held, closed),
        (CONNECTIONS_MAX, IDLE_CONNECTIONS - CONNECTIONS_MAX),
        "(held open, closed at once)"
    );
}

/// `/health` on the operations listener answers `ok` within [`HEALTH_LIMIT`].
async fn health_answers(ledger: &LedgerProcess) {
    let started = Instant::now();
    let health = tokio::time::timeout(
        HEALTH_LIMIT,
        ledger
            .client
            .get(format!("{}/health", ledger.metrics_base))
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("no /health answer within {HEALTH_LIMIT:?}"))
    .expect("/health answered");
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.expect("health JSON");
    assert_eq!(body["status"], "ok", "{body}");
    assert!(started.elapsed() < HEALTH_LIMIT);
}

/// At the bound, a new connection to the public port is closed with nothing answered.
async fn a_new_connection_is_closed_unanswered(ledger: &LedgerProcess) {
    let mut conn = RawConnection::open(&ledger.authority).await;
    // The write may already fail: the ledger closed the connection on accepting it.
    let _ = conn
        .send(b"GET /health HTTP/1.1\r\nHost: ledger\r\n\r\n")
        .await;
    assert_eq!(conn.closed_within(LIMIT).await, "", "nothing answered");
    assert_eq!(
        ledger.public_metric("http_connections_refused_total").await,
        (IDLE_CONNECTIONS - CONNECTIONS_MAX + 1) as f64
    );
}

/// A `tessera-ledger serve` process on a database of its own, both ports chosen by the
/// system. Killed, and its database dropped, when dropped.
struct LedgerProcess {
    child: Child,
    /// `127.0.0.1:PORT`: the public listener.
    authority: String,
    /// `http://127.0.0.1:PORT`: the operations listener (`/metrics`, `/health`).
    metrics_base: String,
    client: reqwest::Client,
    /// Dropped after the process (fields drop in order).
    _database: TempDatabase,
}

impl LedgerProcess {
    async fn start() -> Self {
        let database = TempDatabase::new();
        let mut child = Command::new(LEDGER_BIN)
            .arg("serve")
            .env("LEDGER_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", &database.url)
            .env("REDIS_URL", redis_url())
            .env("OUTBOX_CHANNEL", unique_channel())
            .env("EDGE_KEY", EDGE_KEY)
            .env("CONNECTIONS_MAX", CONNECTIONS_MAX.to_string())
            .env("IDLE_TIMEOUT_MS", IDLE_TIMEOUT.as_millis().to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting tessera-ledger");
        let stdout = child.stdout.take().expect("the ledger's stdout is piped");
        let mut log = BufReader::new(stdout).lines();
        let (authority, metrics_authority) =
            tokio::time::timeout(START_TIMEOUT, listeners(&mut log))
                .await
                .unwrap_or_else(|_| {
                    panic!("the ledger logged no {LISTENING:?} within {START_TIMEOUT:?}")
                });
        tokio::spawn(forward(log));
        let ledger = Self {
            child,
            authority,
            metrics_base: format!("http://{metrics_authority}"),
            client: reqwest::Client::builder()
                .timeout(LIMIT)
                .build()
                .expect("HTTP client"),
            _database: database,
        };
        wait_until("the ledger answers /health", START_TIMEOUT, || async {
            let health = ledger.client.get(format!("{}/health", ledger.metrics_base));
            health.send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        ledger
    }

    /// A public-listener connection metric.
    async fn public_metric(&self, name: &str) -> f64 {
        let text = scrape(&self.client, &self.metrics_base)
            .await
            .expect("ledger metrics");
        sum_metric(&text, name, &PUBLIC)
    }

    /// Connections the ledger has accepted: the ones it holds and the ones it closed at
    /// once (one scrape).
    async fn accepted(&self) -> usize {
        let text = scrape(&self.client, &self.metrics_base)
            .await
            .expect("ledger metrics");
        let open = sum_metric(&text, "http_connections_open", &PUBLIC);
        let refused = sum_metric(&text, "http_connections_refused_total", &PUBLIC);
        (open + refused) as usize
    }

    /// Kills the process and waits for it; then its database goes.
    async fn stop(mut self) {
        self.child.kill().await.expect("stopping the ledger");
    }
}

/// Reads the ledger's (JSON) log up to the line naming its listeners: (public, operations).
async fn listeners(log: &mut Lines<BufReader<ChildStdout>>) -> (String, String) {
    while let Some(line) = log.next_line().await.expect("reading the ledger's log") {
        eprintln!("{line}");
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &entry["fields"];
        if fields["message"] == LISTENING {
            let field = |name: &str| {
                fields[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} in {line}"))
                    .to_owned()
            };
            return (field("addr"), field("metrics_addr"));
        }
    }
    panic!("the ledger exited before listening (see its log above)");
}

/// The rest of the ledger's log into the test's output (shown if it fails), so the ledger
/// never blocks on a full pipe.
async fn forward(mut log: Lines<BufReader<ChildStdout>>) {
    while let Ok(Some(line)) = log.next_line().await {
        eprintln!("{line}");
    }
}

/// A fresh database on the test server (`DATABASE_URL`'s), created by the ledger when it
/// starts and dropped (its connections ended first) when this is dropped, failed test or
/// not.
struct TempDatabase {
    url: String,
}

impl TempDatabase {
    fn new() -> Self {
        let name = format!("tessera_idle_test_{}", uuid::Uuid::new_v4().simple());
        let server_url = database_url();
        let url = match server_url.rsplit_once('/') {
            Some((server, _)) if server.contains("://") && !server.ends_with('/') => {
                format!("{server}/{name}")
            }
            _ => format!("{}/{name}", server_url.trim_end_matches('/')),
        };
        Self { url }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        // A runtime of its own on a thread of its own: `drop` cannot await, and it runs
        // inside the test's runtime.
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(Postgres::force_drop_database(&url))
                .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.url);
        }
    }
}
