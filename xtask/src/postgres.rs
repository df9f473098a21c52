//! A throwaway PostgreSQL cluster: `initdb` into a fresh directory, `pg_ctl start` on a
//! free port, and on drop `pg_ctl stop -m fast` and delete the directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::unistd::{geteuid, User};

use crate::net::{free_port, HostPort};
use crate::process::{run_captured, succeeds};

pub const NOT_INSTALLED: &str =
    "PostgreSQL is not running and not installed: apt-get install -y postgresql";
/// Where Debian's packages put the server binaries (not on PATH there).
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// `pg_ctl -w` already waits for "ready"; this only bounds the extra TCP check.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Unix socket paths are limited to 107 bytes; the socket lives in the data directory.
const MAX_SOCKET_PATH: usize = 107;

pub struct PgCluster {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    /// PostgreSQL refuses to run as root, so as root its tools run as `postgres`.
    as_postgres: bool,
}

impl PgCluster {
    /// Starts a cluster under the first usable directory of `bases` (each gets `pg-<pid>`).
    pub fn start(bases: &[PathBuf]) -> Result<Self> {
        let (initdb, pg_ctl) = find_binaries().with_context(|| {
            format!("{NOT_INSTALLED}\n(or set DATABASE_URL to a running PostgreSQL server)")
        })?;
        let as_postgres = geteuid().is_root();
        if as_postgres {
            ensure_postgres_user()?;
        }
        let mut cluster = Self {
            initdb,
            pg_ctl,
            dir: PathBuf::new(),
            port: 0,
            as_postgres,
        };
        cluster.dir = cluster.make_data_dir(bases)?;
        // From here on, Drop cleans up the directory (and the server, once it runs).
        cluster.init()?;
        cluster.port = free_port()?;
        cluster.launch()?;
        HostPort::new("127.0.0.1", cluster.port).wait_reachable(READY_TIMEOUT, || Ok(()))?;
        Ok(cluster)
    }

    /// A fresh, empty data directory that PostgreSQL's user can write to. The target
    /// directory comes first; it is skipped when the postgres user can't reach it (a
    /// checkout under /root) or its path is too long for the socket.
    fn make_data_dir(&self, bases: &[PathBuf]) -> Result<PathBuf> {
        let name = format!("pg-{}", std::process::id());
        for base in bases {
            self.reap_stale(base);
        }
        let mut problems = Vec::new();
        for base in bases {
            let dir = base.join(&name);
            if dir.as_os_str().len() + "/.s.PGSQL.65535".len() > MAX_SOCKET_PATH {
                problems.push(format!(
                    "{}: path too long for a Unix socket",
                    dir.display()
                ));
                continue;
            }
            let attempt = (|| {
                if dir.exists() {
                    fs::remove_dir_all(&dir)
                        .with_context(|| format!("removing {}", dir.display()))?;
                }
                fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                if self.as_postgres {
                    run_captured(Command::new("chown").args(["-R", "postgres"]).arg(&dir))?;
                    if !succeeds(self.tool("test").arg("-w").arg(&dir)) {
                        bail!("{}: not writable by the postgres user", dir.display());
                    }
                }
                Ok(())
            })();
            match attempt {
                Ok(()) => return Ok(dir),
                Err(err) => {
                    let _ = fs::remove_dir_all(&dir);
                    problems.push(format!("{err:#}"));
                }
            }
        }
        bail!(
            "no usable directory for a throwaway PostgreSQL cluster:\n  {}",
            problems.join("\n  ")
        )
    }

    fn init(&self) -> Result<()> {
        // --locale=C: LANG may name a locale that isn't generated on this machine, which
        // initdb rejects; C always exists and sorts deterministically.
        let mut initdb = self.tool(&self.initdb);
        initdb.arg("-D").arg(&self.dir);
        initdb.args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run_captured(&mut initdb).context("initdb failed")?;
        Ok(())
    }

    fn launch(&self) -> Result<()> {
        self.write_settings()?;
        let log = self.dir.join("log");
        let mut pg_ctl = self.tool(&self.pg_ctl);
        pg_ctl.arg("-D").arg(&self.dir).arg("-l").arg(&log);
        pg_ctl.args(["-w", "start"]);
        if let Err(err) = run_captured(&mut pg_ctl) {
            let log = fs::read_to_string(&log).unwrap_or_default();
            return Err(err.context(format!("PostgreSQL did not start; its log:\n{log}")));
        }
        Ok(())
    }

    /// Port, socket and durability go into the cluster's own postgresql.conf (the last
    /// setting wins), so a plain `pg_ctl start` brings it back as it was: the chaos
    /// campaign stops and starts it.
    fn write_settings(&self) -> Result<()> {
        use std::io::Write;
        let conf = self.dir.join("postgresql.conf");
        let settings = format!(
            "\n# tessera xtask\nport = {}\nunix_socket_directories = '{}'\nlisten_addresses = '127.0.0.1'\nfsync = on\n",
            self.port,
            self.dir.to_string_lossy().replace('\'', "''"),
        );
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .with_context(|| format!("writing {}", conf.display()))
    }

    /// What the chaos campaign needs to stop and start this cluster: `CHAOS_PG_CTL`,
    /// `CHAOS_PG_DATA` and `CHAOS_PG_USER` (empty unless the tools run as `postgres`).
    pub fn control_env(&self) -> [(&'static str, std::ffi::OsString); 3] {
        let user = if self.as_postgres { "postgres" } else { "" };
        [
            ("CHAOS_PG_CTL", self.pg_ctl.clone().into_os_string()),
            ("CHAOS_PG_DATA", self.dir.clone().into_os_string()),
            ("CHAOS_PG_USER", user.into()),
        ]
    }

    /// A command for PostgreSQL's tools, run as `postgres` when we are root. The working
    /// directory is `/`: PostgreSQL's tools fail when they can't read the current one.
    fn tool(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.current_dir("/");
        cmd
    }

    /// Stops the server if one runs in `dir`; true when nothing runs there any more.
    fn stop(&self, dir: &Path, mode: &str) -> bool {
        if !dir.join("postmaster.pid").exists() {
            return true;
        }
        let mut pg_ctl = self.tool(&self.pg_ctl);
        pg_ctl.arg("-D").arg(dir).args(["-m", mode, "-w", "stop"]);
        run_captured(&mut pg_ctl).is_ok() || !dir.join("postmaster.pid").exists()
    }

    /// Removes `pg-<pid>` directories left by an xtask that was killed outright (its pid
    /// is gone), stopping a server still running there first.
    fn reap_stale(&self, base: &Path) {
        let Ok(entries) = fs::read_dir(base) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("pg-")) else {
                continue;
            };
            if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
                continue;
            }
            let dir = entry.path();
            if self.stop(&dir, "immediate") {
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.dir.as_os_str().is_empty() {
            return;
        }
        if self.stop(&self.dir, "fast") {
            match fs::remove_dir_all(&self.dir) {
                Ok(()) => eprintln!(
                    "xtask: stopped the throwaway PostgreSQL and removed {}",
                    self.dir.display()
                ),
                Err(err) => eprintln!(
                    "xtask: warning: could not remove {}: {err}",
                    self.dir.display()
                ),
            }
        } else {
            eprintln!(
                "xtask: warning: could not stop the throwaway PostgreSQL; try: pg_ctl -D {} stop",
                self.dir.display()
            );
        }
    }
}

/// `initdb` and `pg_ctl`: from PATH if both are there, else from the newest version under
/// /usr/lib/postgresql.
fn find_binaries() -> Option<(PathBuf, PathBuf)> {
    if let (Some(initdb), Some(pg_ctl)) = (which("initdb"), which("pg_ctl")) {
        return Some((initdb, pg_ctl));
    }
    let newest = fs::read_dir(DEBIAN_PG_ROOT)
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| is_executable(&bin.join("initdb")) && is_executable(&bin.join("pg_ctl")))
        .max_by_key(|bin| version_key(bin))?;
    Some((newest.join("initdb"), newest.join("pg_ctl")))
}

/// `/usr/lib/postgresql/9.6/bin` -> [9, 6], so that 15 sorts above 9.6.
fn version_key(bin: &Path) -> Vec<u32> {
    let version = bin.parent().and_then(Path::file_name).unwrap_or_default();
    version
        .to_string_lossy()
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Debian's postgresql package creates this user; a hand-built install may not have.
fn ensure_postgres_user() -> Result<()> {
    if User::from_name("postgres").ok().flatten().is_some() {
        return Ok(());
    }
    eprintln!("xtask: creating the system user `postgres` (PostgreSQL refuses to run as root)");
    run_captured(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "postgres",
    ]))
    .context("PostgreSQL cannot run as root and there is no `postgres` user to run it as")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_higher() {
        let key = |v: &str| version_key(&Path::new(DEBIAN_PG_ROOT).join(v).join("bin"));
        assert!(key("15") > key("9.6"));
        assert!(key("16") > key("15"));
        assert!(key("9.6") > key("9.5"));
    }
}
