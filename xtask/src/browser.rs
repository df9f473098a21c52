//! The browser tests' tools: Debian's Chromium and the storefront's node packages
//! (playwright-core, jsqr, pngjs from `storefront/package-lock.json`), installed when
//! missing so `test` and `bench` work on a fresh machine. Node and npm themselves are the
//! one thing asked of the machine (`apt-get install -y nodejs npm`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use nix::unistd::geteuid;

use crate::process::{describe, run_checked};
use crate::tasks::header;
use crate::Paths;

/// Where the tests and the bench look for Chromium (`tessera_testkit::browser`).
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_CHROMIUM: [&str; 3] = ["install", "-y", "chromium"];
const INSTALL_NODE: &str = "apt-get install -y nodejs npm";
/// Time apt-get and npm get to exit after Ctrl-C (apt-get finishes unpacking a package).
const GRACE: Duration = Duration::from_secs(30);

/// Chromium and `storefront/node_modules` are there afterwards, or the error says how to
/// get them.
pub fn ensure_browser_tools(paths: &Paths) -> Result<()> {
    for tool in ["node", "npm"] {
        if which(tool).is_none() {
            bail!(
                "{tool} is not installed (the storefront's browser tests need it): {INSTALL_NODE}"
            );
        }
    }
    ensure_node_version()?;
    ensure_chromium()?;
    ensure_node_modules(paths)
}

/// playwright-core 1.65 needs Node 20 or newer (`engines` in its package.json); Debian
/// 12's own `nodejs` is 18, so say which one is needed rather than fail inside npm.
const NODE_MAJOR_MIN: u32 = 20;

fn ensure_node_version() -> Result<()> {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .context("node --version")?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= NODE_MAJOR_MIN => Ok(()),
        _ => bail!(
            "node {version:?} is too old for the storefront's browser tests (playwright-core needs {NODE_MAJOR_MIN} or newer): install Node {NODE_MAJOR_MIN} (e.g. from NodeSource) and npm"
        ),
    }
}

/// `apt-get install -y chromium` as root; once more after `apt-get update` if that failed
/// (a fresh machine's package lists may be missing or stale).
fn ensure_chromium() -> Result<()> {
    // The tests honour CHROMIUM (another browser binary) too.
    if let Some(other) = std::env::var_os("CHROMIUM").filter(|path| !path.is_empty()) {
        if !Path::new(&other).is_file() {
            bail!(
                "CHROMIUM names {}, which is missing",
                Path::new(&other).display()
            );
        }
        return Ok(());
    }
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    let command = format!("apt-get {}", INSTALL_CHROMIUM.join(" "));
    if !geteuid().is_root() || which("apt-get").is_none() {
        bail!("{CHROMIUM} is missing (the storefront's browser tests drive it): {command}");
    }
    eprintln!("xtask: {CHROMIUM} is missing; installing it ({command})");
    if let Err(first) = apt_get(&INSTALL_CHROMIUM) {
        eprintln!(
            "xtask: `{command}` failed ({first:#}); updating the package lists and trying again"
        );
        apt_get(&["update"])?;
        apt_get(&INSTALL_CHROMIUM)?;
    }
    if !Path::new(CHROMIUM).exists() {
        bail!("`{command}` succeeded but {CHROMIUM} is still missing");
    }
    Ok(())
}

fn apt_get(args: &[&str]) -> Result<()> {
    let mut apt = Command::new("apt-get");
    apt.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    header(&describe(&apt));
    run_checked(&mut apt, GRACE)
}

/// `npm ci` when `storefront/node_modules` is missing or older than the lock file (npm
/// writes `node_modules/.package-lock.json` at the end of every install).
fn ensure_node_modules(paths: &Paths) -> Result<()> {
    let storefront = paths.root.join("storefront");
    let lock = storefront.join("package-lock.json");
    let installed = storefront.join("node_modules").join(".package-lock.json");
    if !stale(&installed, &lock)? {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--prefix", "storefront", "--no-audit", "--no-fund"])
        .current_dir(&paths.root);
    header(&describe(&npm));
    run_checked(&mut npm, GRACE)
}

/// `installed` is missing or older than `source`.
fn stale(installed: &Path, source: &Path) -> Result<bool> {
    let modified = |path: &Path| -> Result<SystemTime> {
        fs::metadata(path)
            .and_then(|meta| meta.modified())
            .with_context(|| format!("reading the time of {}", path.display()))
    };
    if !installed.exists() {
        return Ok(true);
    }
    Ok(modified(installed)? < modified(source)?)
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_modules_older_than_the_lock_file_are_stale() {
        let dir = std::env::temp_dir().join(format!("xtask-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let (installed, lock) = (dir.join("installed"), dir.join("lock"));
        fs::write(&lock, "{}").expect("lock");
        assert!(stale(&installed, &lock).expect("missing"), "missing");
        fs::write(&installed, "{}").expect("installed");
        let earlier = SystemTime::now() - Duration::from_secs(60);
        let file = fs::File::options()
            .write(true)
            .open(&installed)
            .expect("open");
        file.set_modified(earlier).expect("set time");
        assert!(stale(&installed, &lock).expect("older"), "older");
        let file = fs::File::options().write(true).open(&lock).expect("open");
        file.set_modified(earlier - Duration::from_secs(60))
            .expect("set time");
        assert!(!stale(&installed, &lock).expect("newer"), "newer");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
