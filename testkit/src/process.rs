//! Stopping the server processes the tests and the bench start, as an orchestrator would.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;

/// How long [`stop`] lets a process drain and exit after SIGTERM before killing it: an idle
/// server exits at once; one still serving slow clients is not waited on longer.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Sends SIGTERM (through `kill`: no unsafe code here).
pub fn terminate(child: &Child) -> std::io::Result<()> {
    let pid = child.id().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the process has already exited",
        )
    })?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -TERM {pid}: {status}")))
    }
}

/// SIGTERM, then SIGKILL if `child` has not exited within [`STOP_GRACE`]. Exiting on its
/// own also lets an instrumented build write its profile (`cargo xtask bench` trains its
/// profile-guided build this way).
pub async fn stop(child: &mut Child) {
    if terminate(child).is_ok() && exited_within(child, STOP_GRACE).await.is_some() {
        return;
    }
    let _ = child.kill().await;
}

/// `child`'s exit status, if it exits within `limit`.
pub async fn exited_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    tokio::time::timeout(limit, child.wait())
        .await
        .ok()
        .and_then(Result::ok)
}
