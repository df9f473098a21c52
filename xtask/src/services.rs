//! PostgreSQL and Redis for the ledger: whatever the environment names, else what runs on
//! the default ports, else throwaway instances that [`Services`] stops when dropped.

use std::env;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::net::{free_port, redact, url_endpoint, HostPort};
use crate::postgres::PgCluster;

const PG_DEFAULT_PORT: u16 = 5432;
const REDIS_DEFAULT_PORT: u16 = 6379;
/// Bounded wait for a throwaway redis-server to accept connections.
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Hidden switch: skip the probe of the default ports, to exercise the throwaway path on
/// a machine that already runs PostgreSQL and Redis.
const THROWAWAY_ENV: &str = "TESSERA_THROWAWAY_SERVICES";

/// PostgreSQL and Redis endpoints; owns (and stops on drop) the instances it started.
pub struct Services {
    postgres: Postgres,
    pub redis_url: String,
    // Dropped in declaration order: Redis, then PostgreSQL.
    redis_server: Option<RedisServer>,
    pg_cluster: Option<PgCluster>,
}

enum Postgres {
    /// `DATABASE_URL` from the environment, used unchanged.
    Given(String),
    /// A server on 127.0.0.1 that trusts the `postgres` user.
    Local(u16),
}

impl Services {
    /// `target_dir` hosts throwaway data (`tessera-services/`).
    pub fn ensure(target_dir: &Path) -> Result<Self> {
        let force_throwaway = env::var_os(THROWAWAY_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        let services_dir = target_dir.join("tessera-services");
        let mut services = Self {
            postgres: Postgres::Local(PG_DEFAULT_PORT),
            redis_url: String::new(),
            redis_server: None,
            pg_cluster: None,
        };

        if let Some(url) = env_var("DATABASE_URL") {
            check_reachable("DATABASE_URL", &url, PG_DEFAULT_PORT)?;
            eprintln!("xtask: postgres: using DATABASE_URL ({})", redact(&url));
            services.postgres = Postgres::Given(url);
        } else if !force_throwaway && HostPort::new("127.0.0.1", PG_DEFAULT_PORT).reachable() {
            eprintln!("xtask: postgres: using the server on 127.0.0.1:{PG_DEFAULT_PORT}");
        } else {
            // Prefer the target directory; /tmp is the fallback for when PostgreSQL's user
            // can't reach it or the socket path would be too long.
            let bases = [
                services_dir.clone(),
                env::temp_dir().join("tessera-services"),
            ];
            let cluster = PgCluster::start(&bases)?;
            eprintln!(
                "xtask: postgres: started a throwaway cluster on 127.0.0.1:{} (data in {})",
                cluster.port,
                cluster.dir.display()
            );
            services.postgres = Postgres::Local(cluster.port);
            services.pg_cluster = Some(cluster);
        }

        if let Some(url) = env_var("REDIS_URL") {
            check_reachable("REDIS_URL", &url, REDIS_DEFAULT_PORT)?;
            eprintln!("xtask: redis: using REDIS_URL ({})", redact(&url));
            services.redis_url = url;
        } else if !force_throwaway && HostPort::new("127.0.0.1", REDIS_DEFAULT_PORT).reachable() {
            eprintln!("xtask: redis: using the server on 127.0.0.1:{REDIS_DEFAULT_PORT}");
            services.redis_url = format!("redis://127.0.0.1:{REDIS_DEFAULT_PORT}");
        } else {
            let server = RedisServer::start(&services_dir)?;
            eprintln!(
                "xtask: redis: started a throwaway redis-server on 127.0.0.1:{}",
                server.port
            );
            services.redis_url = format!("redis://127.0.0.1:{}", server.port);
            services.redis_server = Some(server);
        }
        Ok(services)
    }

    /// The `DATABASE_URL` for database `db`; a URL given in the environment is returned
    /// unchanged (its database included): `cargo xtask up` runs on the developer's own.
    pub fn database_url(&self, db: &str) -> String {
        match &self.postgres {
            Postgres::Given(url) => url.clone(),
            Postgres::Local(port) => format!("postgres://postgres@127.0.0.1:{port}/{db}"),
        }
    }

    /// The URL of database `db` on the same server, also when `DATABASE_URL` was given:
    /// for runs that make a database of their own (and drop it), never the developer's.
    pub fn named_database_url(&self, db: &str) -> String {
        match &self.postgres {
            Postgres::Given(url) => with_database(url, db),
            Postgres::Local(_) => self.database_url(db),
        }
    }

    /// Fails if a throwaway Redis died (a throwaway PostgreSQL is detached; not watched).
    pub fn check_alive(&mut self) -> Result<()> {
        match &mut self.redis_server {
            Some(server) => server.check_alive(),
            None => Ok(()),
        }
    }
}

/// `url` (`postgres://user@host:port/name?options`) naming database `db` instead.
fn with_database(url: &str, db: &str) -> String {
    let authority_at = url.find("://").map_or(0, |i| i + 3);
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let server = match head[authority_at..].find('/') {
        Some(slash) => &head[..authority_at + slash],
        None => head,
    };
    format!("{server}/{db}{query}")
}

fn env_var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn check_reachable(var: &str, url: &str, default_port: u16) -> Result<()> {
    let endpoint = url_endpoint(url, default_port).with_context(|| format!("parsing {var}"))?;
    match endpoint {
        Some(endpoint) if !endpoint.reachable() => bail!(
            "{var} is set ({}) but nothing accepts TCP connections on {endpoint}; \
             start that server or unset {var} to let xtask provide one",
            redact(url)
        ),
        Some(_) => Ok(()),
        None => {
            eprintln!("xtask: {var} names a Unix socket; not checked");
            Ok(())
        }
    }
}

/// A `redis-server` child without persistence, logging to `redis-<pid>.log`. Its pid goes
/// to `redis-<pid>.pid` so that a later run can stop it if xtask was killed outright.
struct RedisServer {
    child: Child,
    port: u16,
    log: PathBuf,
    pid_file: PathBuf,
}

impl RedisServer {
    fn start(services_dir: &Path) -> Result<Self> {
        fs::create_dir_all(services_dir)
            .with_context(|| format!("creating {}", services_dir.display()))?;
        reap_stale(services_dir);
        let log = services_dir.join(format!("redis-{}.log", std::process::id()));
        let pid_file = log.with_extension("pid");
        let stdout = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .context("duplicating the redis log handle")?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(services_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Own process group: a terminal Ctrl-C must not take Redis down while the
            // ledger is still shutting down; Drop stops it afterwards.
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let _ = fs::remove_file(&log);
                bail!("Redis is not running and not installed: apt-get install -y redis-server\n(or set REDIS_URL to a running Redis server)");
            }
            Err(err) => return Err(err).context("starting redis-server"),
        };
        let mut server = Self {
            child,
            port,
            log,
            pid_file,
        };
        fs::write(&server.pid_file, server.child.id().to_string())
            .with_context(|| format!("writing {}", server.pid_file.display()))?;
        HostPort::new("127.0.0.1", port)
            .wait_reachable(REDIS_READY_TIMEOUT, || server.check_alive())?;
        Ok(server)
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking on redis-server")? {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            bail!("the throwaway redis-server exited ({status}); its log:\n{log}");
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Nothing is persisted (--save ""), so SIGKILL loses nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
        let _ = fs::remove_file(&self.pid_file);
        eprintln!("xtask: stopped the throwaway redis-server");
    }
}

/// Kills redis-servers (and removes their files) left by an xtask that was killed outright:
/// the xtask pid in the file name is gone. The comm check guards against a recycled pid.
fn reap_stale(services_dir: &Path) {
    let Ok(entries) = fs::read_dir(services_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("redis-")?.strip_suffix(".pid"))
        else {
            continue;
        };
        if owner.parse::<u32>().is_err() || Path::new("/proc").join(owner).exists() {
            continue;
        }
        let server = fs::read_to_string(&path)
            .ok()
            .and_then(|pid| pid.trim().parse::<i32>().ok());
        if let Some(pid) = server {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.starts_with("redis-server") {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = fs::remove_file(&path);
        let _ = fs::remove_file(path.with_extension("log"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_database_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "tessera_x"),
            "postgres://postgres@127.0.0.1:5432/tessera_x"
        );
        assert_eq!(
            with_database("postgres://u:p@db:6543/app?sslmode=require", "t"),
            "postgres://u:p@db:6543/t?sslmode=require"
        );
        assert_eq!(with_database("postgres://db", "t"), "postgres://db/t");
    }
}
