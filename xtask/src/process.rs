//! Child processes: Ctrl-C bookkeeping, supervised long-running children, short commands.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How often supervised children are checked.
pub const POLL: Duration = Duration::from_millis(100);

/// Number of SIGINT/SIGTERM received so far.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Makes Ctrl-C (and SIGTERM) only set a counter: the main thread then stops children and
/// drops [`crate::services::Services`], so nothing started by xtask outlives it.
pub fn install_signal_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!("\nxtask: stopping (Ctrl-C again to kill at once)");
        }
    })
    .context("installing the Ctrl-C handler")
}

pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

pub fn bail_if_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// A child running in its own process group. The group matters: a terminal Ctrl-C then
/// reaches only xtask, which forwards exactly one SIGINT (a second one would turn the
/// ledger's graceful shutdown into an abort), and `kill -INT <xtask>` reaches the child
/// and all its descendants (cargo's test binaries) the same way.
pub struct Supervised {
    child: Child,
    group: Pid,
    what: String,
    grace: Duration,
    sigint_sent: Option<Instant>,
}

impl Supervised {
    /// Starts `cmd`. After a forwarded SIGINT the child gets `grace` to exit before SIGKILL.
    pub fn spawn(cmd: &mut Command, grace: Duration) -> Result<Self> {
        let what = describe(cmd);
        let child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting `{what}`"))?;
        let group = Pid::from_raw(i32::try_from(child.id()).context("child pid out of range")?);
        Ok(Self {
            child,
            group,
            what,
            grace,
            sigint_sent: None,
        })
    }

    /// The exit status once the child has exited; forwards Ctrl-C to it meanwhile.
    pub fn poll(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self
            .child
            .try_wait()
            .with_context(|| format!("waiting for `{}`", self.what))?
        {
            return Ok(Some(status));
        }
        let signals = SIGNALS.load(Ordering::SeqCst);
        match self.sigint_sent {
            _ if signals == 0 => {}
            None => {
                self.signal(Signal::SIGINT);
                self.sigint_sent = Some(Instant::now());
            }
            Some(sent) if signals > 1 || sent.elapsed() >= self.grace => {
                eprintln!("xtask: killing `{}`", self.what);
                self.signal(Signal::SIGKILL);
                let status = self
                    .child
                    .wait()
                    .with_context(|| format!("waiting for `{}`", self.what))?;
                return Ok(Some(status));
            }
            Some(_) => {}
        }
        Ok(None)
    }

    pub fn wait(mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.poll()? {
                return Ok(status);
            }
            sleep(POLL);
        }
    }

    fn signal(&self, signal: Signal) {
        // ESRCH just means the group is already gone.
        let _ = killpg(self.group, signal);
    }
}

impl Drop for Supervised {
    /// Only reached with the child still running on an error path: don't leave it behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` supervised to completion and fails unless it exits successfully.
pub fn run_checked(cmd: &mut Command, grace: Duration) -> Result<()> {
    let what = describe(cmd);
    let status = Supervised::spawn(cmd, grace)?.wait()?;
    bail_if_interrupted()?;
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(())
}

/// Runs a long command supervised with its stdout and stderr in the file `log_path` (so it
/// can be read while it runs), announces it, and returns its status and what it logged.
pub fn run_logged(
    cmd: &mut Command,
    log_path: &Path,
    grace: Duration,
) -> Result<(ExitStatus, String)> {
    let log = File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    cmd.stdout(log.try_clone().context("sharing the log")?)
        .stderr(log);
    eprintln!("\n==> {} (log: {})", describe(cmd), log_path.display());
    let status = Supervised::spawn(cmd, grace)?.wait()?;
    bail_if_interrupted()?;
    let output =
        fs::read_to_string(log_path).with_context(|| format!("reading {}", log_path.display()))?;
    Ok((status, output))
}

/// Runs a short command with its output captured; on failure the error carries the output.
pub fn run_captured(cmd: &mut Command) -> Result<String> {
    let what = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{what}`"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("`{what}` failed ({}):\n{}{}", out.status, stdout, stderr);
    }
    Ok(stdout)
}

/// True if the command runs and exits 0; its output is discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The command line, shell-quoted, for messages; the program without its directory
/// (`cargo`, not the full path cargo puts in $CARGO).
pub fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    std::iter::once(program.file_name().unwrap_or(program.as_os_str()))
        .chain(cmd.get_args())
        .map(|arg| shell_quote(&arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` as one shell word, quoted only when needed.
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote("postgres://u@127.0.0.1:5/db"),
            "postgres://u@127.0.0.1:5/db"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("x?a=1&b=2"), "'x?a=1&b=2'");
    }

    #[test]
    fn describes_commands() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["test", "--", "a b"]);
        assert_eq!(describe(&cmd), "cargo test -- 'a b'");
    }
}
