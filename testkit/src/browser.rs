//! The storefront's browser scenarios, run from Rust: `storefront/tests/scenarios/<name>.mjs`
//! (plain node scripts driving Debian's Chromium through playwright-core, see
//! `storefront/tests/README.md`) started as a child process with the storefront's URL and
//! the test's fixture, bounded by [`SCENARIO_TIMEOUT`]. A failed scenario is an error that
//! carries everything the script printed.
//!
//! [`NodeScript`] is the general form (the bench's first-load script reads its stdout);
//! [`check_prerequisites`] says exactly what to install when a tool is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// A scenario's whole run: launching Chromium takes a second or two, a page on loopback
/// well under one; the bound only stops a hung browser or page from hanging the test.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// After SIGTERM (on a timeout) node gets this long to close Chromium (playwright-core's
/// SIGTERM handler does) before SIGKILL: a killed node would leave the browser behind.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long the output pipes may stay open after node exited (they close with it).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Output kept per stream (stdout, stderr); past it the rest is counted, not kept.
const OUTPUT_MAX_BYTES: usize = 1 << 20;
/// Debian's Chromium (`apt-get install -y chromium`); [`CHROMIUM_ENV`] names another.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMIUM_ENV: &str = "CHROMIUM";

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{} is missing: install it: apt-get install -y chromium (or run cargo xtask test, which does)", path.display())]
    NoChromium { path: PathBuf },
    #[error("node is missing: apt-get install -y nodejs npm")]
    NoNode,
    #[error("{} is missing: run: npm ci --prefix storefront", path.display())]
    NoPlaywright { path: PathBuf },
    #[error("no such script: {}", path.display())]
    NoScript { path: PathBuf },
    #[error("cannot start node {}", script.display())]
    Spawn {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for node {}", script.display())]
    Wait {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node {} ran past {limit:?} and was stopped; its output:\n{output}", script.display())]
    Timeout {
        script: PathBuf,
        limit: Duration,
        output: String,
    },
    #[error("node {} failed ({status}); its output:\n{output}", script.display())]
    Failed {
        script: PathBuf,
        status: ExitStatus,
        output: String,
    },
}

/// `storefront/` in the repository.
pub fn storefront_dir() -> PathBuf {
    crate::repo_root().join("storefront")
}

/// Where scenarios write their screenshots: `<workspace>/target/storefront-screenshots`.
pub fn screenshots_dir() -> PathBuf {
    crate::repo_root()
        .join("target")
        .join("storefront-screenshots")
}

/// The Chromium the scripts launch: [`CHROMIUM_ENV`] or [`DEFAULT_CHROMIUM`].
pub fn chromium_path() -> PathBuf {
    std::env::var_os(CHROMIUM_ENV)
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from)
}

/// Chromium, node and the storefront's node_modules (playwright-core) are there, or the
/// error names the command that installs the first one missing.
pub fn check_prerequisites() -> Result<(), BrowserError> {
    let chromium = chromium_path();
    if !is_executable(&chromium) {
        return Err(BrowserError::NoChromium { path: chromium });
    }
    if find_on_path("node").is_none() {
        return Err(BrowserError::NoNode);
    }
    let playwright = storefront_dir()
        .join("node_modules")
        .join("playwright-core");
    if !playwright.join("package.json").is_file() {
        return Err(BrowserError::NoPlaywright { path: playwright });
    }
    Ok(())
}

/// Runs the scenario `storefront/tests/scenarios/<name>.mjs` against `storefront_url` with
/// `fixture` (its `FIXTURE`), its output on stderr as it comes (the test's output).
pub async fn run_scenario(
    name: &str,
    storefront_url: &str,
    fixture: &serde_json::Value,
) -> Result<(), BrowserError> {
    let script = storefront_dir()
        .join("tests")
        .join("scenarios")
        .join(format!("{name}.mjs"));
    NodeScript::new(script)
        .env("STOREFRONT_URL", storefront_url)
        .env("FIXTURE", &fixture.to_string())
        .env("SCREENSHOTS", &screenshots_dir().to_string_lossy())
        .limit(SCENARIO_TIMEOUT)
        .echo()
        .run()
        .await
        .map(drop)
}

/// What a script printed.
#[derive(Debug, Default)]
pub struct NodeOutput {
    pub stdout: String,
    pub stderr: String,
}

impl NodeOutput {
    fn quoted(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// `node <script>` in the repository root, with the browser's environment.
pub struct NodeScript {
    script: PathBuf,
    env: Vec<(String, String)>,
    limit: Duration,
    echo: bool,
}

impl NodeScript {
    pub fn new(script: impl Into<PathBuf>) -> Self {
        Self {
            script: script.into(),
            env: Vec::new(),
            limit: SCENARIO_TIMEOUT,
            echo: false,
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Longest the script may run before it is stopped (an error).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Each output line also on stderr as it comes.
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// Runs the script to its end: its output if it exited 0, else an error quoting it.
    pub async fn run(self) -> Result<NodeOutput, BrowserError> {
        check_prerequisites()?;
        if !self.script.is_file() {
            return Err(BrowserError::NoScript { path: self.script });
        }
        let mut child = self.spawn()?;
        let stdout = child.stdout.take().map(|s| collect(s, self.echo));
        let stderr = child.stderr.take().map(|s| collect(s, self.echo));
        let waited = tokio::time::timeout(self.limit, child.wait()).await;
        if waited.is_err() {
            stop(&mut child).await;
        }
        let output = NodeOutput {
            stdout: drained(stdout).await,
            stderr: drained(stderr).await,
        };
        let script = self.script;
        match waited {
            Err(_) => Err(BrowserError::Timeout {
                script,
                limit: self.limit,
                output: output.quoted(),
            }),
            Ok(Err(source)) => Err(BrowserError::Wait { script, source }),
            Ok(Ok(status)) if !status.success() => Err(BrowserError::Failed {
                script,
                status,
                output: output.quoted(),
            }),
            Ok(Ok(_)) => Ok(output),
        }
    }

    fn spawn(&self) -> Result<Child, BrowserError> {
        Command::new("node")
            .arg(&self.script)
            .current_dir(crate::repo_root())
            .env(CHROMIUM_ENV, chromium_path())
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BrowserError::Spawn {
                script: self.script.clone(),
                source,
            })
    }
}

/// SIGTERM (node closes Chromium), then SIGKILL after [`TERM_GRACE`].
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // Through `kill`: no unsafe code here (as `EdgeNode::terminate`).
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Reads `stream` to its end, line by line, keeping up to [`OUTPUT_MAX_BYTES`].
fn collect(stream: impl AsyncRead + Unpin + Send + 'static, echo: bool) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let (mut kept, mut dropped) = (String::new(), 0_u64);
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("{line}");
            }
            if kept.len() + line.len() < OUTPUT_MAX_BYTES {
                kept.push_str(&line);
                kept.push('\n');
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            kept.push_str(&format!("({dropped} more lines not kept)\n"));
        }
        kept
    })
}

async fn drained(reader: Option<JoinHandle<String>>) -> String {
    let Some(reader) = reader else {
        return String::new();
    };
    match tokio::time::timeout(DRAIN_TIMEOUT, reader).await {
        Ok(Ok(text)) => text,
        _ => format!("(the output was not closed within {DRAIN_TIMEOUT:?})\n"),
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}
