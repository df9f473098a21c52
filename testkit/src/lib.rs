//! `tessera-testkit`: what Tessera's tests and benchmarks run against, in one place.
//!
//! - [`services`]: the PostgreSQL and Redis URLs (`DATABASE_URL`, `REDIS_URL`, with the
//!   local defaults), fresh Redis channels, and [`services::own_redis`], a throwaway
//!   `redis-server` for tests that stop and restart Redis.
//! - [`ledger`]: a real ledger in the test's process ([`ledger::TestApp`]) on the test's own
//!   `sqlx::test` database, Redis channel and ports (public and operations), plus fixtures
//!   (events, zones) and the conservation check.
//! - [`edge`]: an edge node ([`edge::EdgeNode`]), a `tessera-edge` process running a Spin
//!   manifest's components. The binary is an argument: `CARGO_BIN_EXE_tessera-edge` exists
//!   only in the host package's tests, and the bench passes its `--edge-bin`.
//! - [`browser`]: the storefront's browser scenarios (`storefront/tests/scenarios/*.mjs`,
//!   node + playwright-core + Chromium) run as child processes, with what to install when a
//!   tool is missing.
//! - [`delay_proxy`]: a TCP proxy that delays each direction by a fixed one-way time
//!   ([`delay_proxy::DelayProxy`]): distance between processes on one machine.
//! - [`logs`]: capturing everything the test's code logs, to assert a secret is not there.
//! - [`metrics`]: fetching a Prometheus scrape and summing its series.
//! - [`process`]: stopping a server process as an orchestrator would (SIGTERM, then kill).
//! - [`webhook_receiver`]: a webhook receiver that verifies signatures as the README says
//!   and can refuse, fail or hang on request.
//! - [`wait_until`]: waiting on a condition with a deadline, the one way tests wait.
//! - [`settings_not_utf8_are_refused`]: a server binary refusing a setting that is not
//!   UTF-8.
//!
//! Used by the ledger's tests, the end-to-end tests (`tests/`) and the bench. The
//! [`ledger`] helpers and the edge node's request helpers panic on failure, as an assertion
//! would; starting a node and scraping return errors, since the bench reports those.

// The test helpers' `expect`s are their assertions: the message is the failure report.
#![allow(clippy::expect_used)]

pub mod browser;
pub mod delay_proxy;
pub mod edge;
pub mod idle;
pub mod ledger;
pub mod logs;
pub mod metrics;
pub mod process;
pub mod queue;
pub mod raw_http;
pub mod services;
pub mod webhook_receiver;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often [`wait_until`] looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The repository's root (where `spin.toml` and `tests/fixtures/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds; fails the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_every(POLL_INTERVAL, what, limit, condition).await;
}

/// [`wait_until`], looking again every `poll`.
pub async fn wait_until_every<F, Fut>(poll: Duration, what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(poll).await;
    }
}

/// How long a server refusing its configuration may take to exit.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);
/// What [`settings_not_utf8_are_refused`] sets each variable to: readable text, so a leak
/// would show it, then a byte that is not UTF-8.
const NOT_UTF8_VALUE: &[u8] = b"hunter2\xff";
const NOT_UTF8_TEXT: &str = "hunter2";

/// Starts the server `command` builds once for each of `names`, with that variable set to
/// bytes that are not UTF-8, and asserts each start is refused: exit 1, an error naming the
/// variable, and not its bytes (a variable may be a secret).
pub async fn settings_not_utf8_are_refused(
    names: &[&str],
    command: impl Fn() -> tokio::process::Command,
) {
    use std::os::unix::ffi::OsStrExt as _;
    for name in names {
        let mut server = command();
        server.env(name, std::ffi::OsStr::from_bytes(NOT_UTF8_VALUE));
        let (code, stderr) = refused_start(&mut server).await;
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(stderr.contains("not valid UTF-8"), "{name}: {stderr}");
        assert!(!stderr.contains(NOT_UTF8_TEXT), "{name}: {stderr}");
    }
}

/// Runs `command` (a server that must refuse to start: stdin closed, output captured) and
/// returns its exit code and stderr; fails the test if it is still running after
/// [`REFUSAL_DEADLINE`] (it started instead) and kills it.
async fn refused_start(command: &mut tokio::process::Command) -> (Option<i32>, String) {
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary runs");
    let output = tokio::time::timeout(REFUSAL_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("still running after {REFUSAL_DEADLINE:?}: it started"))
        .expect("its output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}
