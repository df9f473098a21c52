//! The systems under test, each in its own process: ledgers (`tessera-ledger serve`, one
//! fresh database each), edge nodes (`tessera-edge` running spin.toml's components, started
//! by the test kit's launcher) and the native read baseline (`tessera-bench serve-native`).
//! Processes are stopped with SIGTERM (then killed, after a grace) and killed when dropped;
//! their output goes to `<out>/logs/`. What is
//! bench-only stays here: log files, databases named by this run's pid, the baseline.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use tessera_testkit::edge::{EdgeNode, EdgeOptions};
use tessera_testkit::metrics::{scrape, sum_metric};
use tokio::process::{Child, Command};

/// An edge node: the test kit's `tessera-edge` launcher, shared with the end-to-end tests.
pub type Edge = EdgeNode;

/// How long a process gets to answer `/health` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What every stand needs: binaries, servers, where to write.
pub struct Env {
    pub ledger_bin: PathBuf,
    pub edge_bin: PathBuf,
    pub manifest: PathBuf,
    /// This binary (for `serve-native`).
    pub bench_bin: PathBuf,
    /// A PostgreSQL URL; stands use other databases on the same server.
    pub database_url: String,
    pub redis_url: String,
    pub out_dir: PathBuf,
    /// The secret edges present to ledgers.
    pub edge_key: String,
    pub http: reqwest::Client,
}

impl Env {
    /// `name` on the same server as `database_url`.
    pub fn database(&self, name: &str) -> String {
        match self.database_url.rsplit_once('/') {
            Some((server, _)) if server.contains("://") && !server.ends_with('/') => {
                format!("{server}/{name}")
            }
            _ => format!("{}/{name}", self.database_url.trim_end_matches('/')),
        }
    }

    /// `<out>/logs/{name}.log` (the folder created).
    fn log_path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.out_dir.join("logs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir.join(format!("{name}.log")))
    }

    fn log(&self, name: &str) -> anyhow::Result<(Stdio, Stdio)> {
        let path = self.log_path(name)?;
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
    }
}

/// `N` distinct free ports on loopback (all bound at once, read, released): a process told
/// to listen on them may still lose one to another socket before it binds, hence
/// [`LAUNCH_ATTEMPTS`].
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// How many times a ledger is started on fresh ports when the ones picked were taken.
const LAUNCH_ATTEMPTS: usize = 3;

/// What the ledger's log says when its port was taken (`serve`'s bind error).
const BIND_FAILURE: &str = "failed to bind";

/// How many lines of a process's log an error about its start quotes.
const LOG_TAIL_LINES: usize = 12;

/// `  12: some::function` or `      at src/file.rs:1:2`.
fn is_backtrace_frame(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("at ")
        || line.split_once(": ").is_some_and(|(frame, _)| {
            !frame.is_empty() && frame.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The last lines of `path` that are not a backtrace's frames, to quote in an error.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !is_backtrace_frame(line))
        .collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn spawn(env: &Env, name: &str, mut cmd: Command) -> anyhow::Result<Child> {
    let (stdout, stderr) = env.log(name)?;
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {name}"))
}

/// Polls `GET {base}/health` until `ready` accepts the JSON body, or the process exits.
async fn wait_ready(
    env: &Env,
    child: &mut Child,
    name: &str,
    base: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = env.log_path(name)?;
            bail!(
                "{name} exited during start ({status}); {} ends:\n{}",
                log.display(),
                log_tail(&log)
            );
        }
        if let Ok(response) = env.http.get(format!("{base}/health")).send().await {
            if response.status().is_success()
                && ready(&response.json().await.unwrap_or(Value::Null))
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not become ready in {READY_TIMEOUT:?}; see {}/logs/{name}.log",
                env.out_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Drops every database this run created (`tessera_bench_*_<pid>`) that is still there.
pub async fn drop_databases(env: &Env) -> anyhow::Result<()> {
    let pool = PgPool::connect(&env.database_url).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "select datname from pg_database where datname like 'tessera\\_bench\\_%\\_' || $1",
    )
    .bind(std::process::id().to_string())
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    for name in names {
        Postgres::force_drop_database(&env.database(&name)).await?;
    }
    Ok(())
}

/// A ledger process on a fresh database, publishing on its own Redis channel.
pub struct Ledger {
    pub base: String,
    pub authority: String,
    /// `http://` + the operations listener (`METRICS_ADDR`: `/metrics`).
    pub metrics_base: String,
    pub channel: String,
    pub database_url: String,
    pub pool: PgPool,
    admin_token: String,
    /// How to start the process again (after [`Ledger::kill`]): its name and environment.
    name: String,
    process_env: Vec<(String, String)>,
    child: Child,
}

impl Ledger {
    /// `settings` are extra environment variables (e.g. `HOLD_STRATEGY`).
    pub async fn start(env: &Env, name: &str, settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        // The pid keeps two runs on one server (a developer's and CI's) apart.
        let database_url = env.database(&format!(
            "tessera_bench_{}_{}",
            name.replace('-', "_"),
            std::process::id()
        ));
        if Postgres::database_exists(&database_url).await? {
            Postgres::force_drop_database(&database_url).await?;
        }
        let channel = format!("tessera.bench.{name}.{}", std::process::id());
        let mut ledger = Self::launch(env, name, &database_url, &channel, settings).await?;
        ledger.admin_token = {
            let mut conn = ledger.pool.acquire().await?;
            tessera_ledger::auth::create_tenant(&mut conn, &format!("Bench {name}"))
                .await?
                .1
        };
        Ok(ledger)
    }

    /// A second ledger process on this one's database and channel (as a second instance of
    /// one deployment), with its own ports and `settings`.
    pub async fn sibling(
        &self,
        env: &Env,
        name: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut sibling =
            Self::launch(env, name, &self.database_url, &self.channel, settings).await?;
        sibling.admin_token.clone_from(&self.admin_token);
        Ok(sibling)
    }

    async fn launch(
        env: &Env,
        name: &str,
        database_url: &str,
        channel: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::launch_on_free_ports(env, name, database_url, channel, settings).await {
                Err(e) if attempt < LAUNCH_ATTEMPTS && format!("{e:#}").contains(BIND_FAILURE) => {
                    eprintln!("{name}: its port was taken before it bound; starting it again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn launch_on_free_ports(
        env: &Env,
        name: &str,
        database_url: &str,
        channel: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        // A metrics port of its own: scenarios run two ledgers at once.
        let [port, metrics_port] = free_ports()?;
        let authority = format!("127.0.0.1:{port}");
        let metrics_authority = format!("127.0.0.1:{metrics_port}");
        let process_env: Vec<(String, String)> = [
            ("LEDGER_ADDR", authority.as_str()),
            ("METRICS_ADDR", metrics_authority.as_str()),
            ("DATABASE_URL", database_url),
            ("REDIS_URL", env.redis_url.as_str()),
            ("OUTBOX_CHANNEL", channel),
            ("EDGE_KEY", env.edge_key.as_str()),
            ("QUEUE_KEY", tessera_testkit::edge::QUEUE_KEY),
            ("RUST_LOG", "warn"),
        ]
        .iter()
        .chain(settings)
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
        let child = Self::spawn_ready(env, name, &authority, &process_env).await?;
        Ok(Self {
            base: format!("http://{authority}"),
            authority,
            metrics_base: format!("http://{metrics_authority}"),
            channel: channel.to_owned(),
            database_url: database_url.to_owned(),
            pool: PgPool::connect(database_url).await?,
            admin_token: String::new(),
            name: name.to_owned(),
            process_env,
            child,
        })
    }

    async fn spawn_ready(
        env: &Env,
        name: &str,
        authority: &str,
        process_env: &[(String, String)],
    ) -> anyhow::Result<Child> {
        let mut cmd = Command::new(&env.ledger_bin);
        cmd.arg("serve").envs(process_env.iter().cloned());
        let mut child = spawn(env, name, cmd)?;
        let base = format!("http://{authority}");
        wait_ready(env, &mut child, name, &base, |_| true).await?;
        Ok(child)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The database's name (the last segment of its URL), as PostgreSQL lists it.
    pub fn database_name(&self) -> &str {
        self.database_url
            .rsplit_once('/')
            .map_or(self.database_url.as_str(), |(_, name)| name)
    }

    /// `kill -9`: the process ends at once, mid-request, mid-transaction.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing the ledger")
    }

    /// Starts the process again, on the same ports and database, and waits until it serves.
    /// Its log restarts too (`<name>-restarted.log`).
    pub async fn restart(&mut self, env: &Env) -> anyhow::Result<()> {
        let name = format!("{}-restarted", self.name);
        self.child = Self::spawn_ready(env, &name, &self.authority, &self.process_env).await?;
        Ok(())
    }

    /// A published event with one show of `zones` zones (`capacity` each, up to 4 per
    /// order), created through the admin API as an organiser would.
    pub async fn create_event(
        &self,
        env: &Env,
        slug: &str,
        zones: usize,
        capacity: i32,
    ) -> anyhow::Result<EventIds> {
        let zone_specs: Vec<Value> = (0..zones)
            .map(|i| {
                json!({"name": format!("Zone {i}"), "price_minor": 5000, "currency": "EUR",
                            "capacity": capacity, "max_per_order": 4})
            })
            .collect();
        self.create_event_with(env, slug, zone_specs).await
    }

    /// A published event with one show of the zones `zone_specs` describe (as
    /// `POST /admin/v1/events` takes them).
    pub async fn create_event_with(
        &self,
        env: &Env,
        slug: &str,
        zone_specs: Vec<Value>,
    ) -> anyhow::Result<EventIds> {
        let body = json!({
            "slug": slug, "title": format!("Bench {slug}"), "category": "concerts",
            "venue": {"name": "Arena", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
            "shows": [{"starts_at": "2030-01-01T19:00:00Z", "zones": zone_specs}]
        });
        let created = env
            .http
            .post(format!("{}/admin/v1/events", self.base))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await?;
        if !created.status().is_success() {
            bail!(
                "creating event {slug}: {} {}",
                created.status(),
                created.text().await.unwrap_or_default()
            );
        }
        let created: Value = created.json().await?;
        let event_id = created["event_id"].as_str().context("event_id")?.to_owned();
        let published = env
            .http
            .post(format!("{}/admin/v1/events/{event_id}/publish", self.base))
            .bearer_auth(&self.admin_token)
            .send()
            .await?;
        if !published.status().is_success() {
            bail!("publishing {slug}: {}", published.status());
        }
        let show = &created["shows"][0];
        let zone_ids = show["zones"]
            .as_array()
            .context("zones")?
            .iter()
            .map(|z| z["zone_id"].as_str().map(str::to_owned).context("zone_id"))
            .collect::<anyhow::Result<_>>()?;
        Ok(EventIds {
            event_id,
            show_id: show["show_id"].as_str().context("show_id")?.to_owned(),
            zone_ids,
        })
    }

    /// `POST {path}` on the admin API as this ledger's tenant (e.g. a gate credential, an
    /// order's cancellation): the JSON answer, or an error naming the status.
    pub async fn admin_post(&self, env: &Env, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = env
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("POST {path}: reading the answer"))?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path}: not JSON: {text}"))
    }

    /// A counter from the ledger's `/metrics` (summed over the series that have every
    /// pair of `labels`, e.g. `("origin", "edge")`).
    pub async fn metric(
        &self,
        env: &Env,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<f64> {
        let text = scrape(&env.http, &self.metrics_base).await?;
        Ok(sum_metric(&text, name, labels))
    }

    /// Stops the process (SIGTERM, then kill) and drops its database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.pool.close().await;
        tessera_testkit::process::stop(&mut self.child).await;
        Postgres::force_drop_database(&self.database_url)
            .await
            .with_context(|| format!("dropping {}", self.database_url))
    }

    /// Stops the process only: for a [`Ledger::sibling`], whose database is the first's.
    pub async fn stop_process(mut self) {
        self.pool.close().await;
        tessera_testkit::process::stop(&mut self.child).await;
    }
}

/// Ids of an event created by [`Ledger::create_event`].
#[derive(Debug, Clone)]
pub struct EventIds {
    pub event_id: String,
    pub show_id: String,
    pub zone_ids: Vec<String>,
}

/// An edge node (`tessera-edge`) in front of `ledger`, its output in `<out>/logs/{name}.log`.
/// `settings`: extra environment (e.g. `EDGE_INSTANCE_REUSE_MAX`). Ready once every Redis
/// subscription is up: before that, pushes would be missed.
pub async fn start_edge(
    env: &Env,
    name: &str,
    ledger: &Ledger,
    settings: &[(&str, &str)],
) -> anyhow::Result<Edge> {
    start_edge_via(env, name, ledger, &ledger.base, &env.redis_url, settings).await
}

/// [`start_edge`], reaching `ledger` at `ledger_url` and Redis at `redis_url` instead of
/// their own addresses (scenario 8 puts delaying proxies in between).
pub async fn start_edge_via(
    env: &Env,
    name: &str,
    ledger: &Ledger,
    ledger_url: &str,
    redis_url: &str,
    settings: &[(&str, &str)],
) -> anyhow::Result<Edge> {
    let log = env.log_path(name)?;
    let options = settings.iter().fold(
        EdgeOptions::new(&env.edge_bin, ledger_url, &ledger.channel)
            .manifest(&env.manifest)
            .edge_key(&env.edge_key)
            .redis(redis_url)
            .log_to(&log),
        |options, (key, value)| options.env(key, value),
    );
    EdgeNode::start(options)
        .await
        .with_context(|| format!("starting {name}; see {}", log.display()))
}

/// `count` nodes in front of `ledger`, named `{name}-0`, `{name}-1`, …
pub async fn start_edges(
    env: &Env,
    name: &str,
    ledger: &Ledger,
    count: usize,
) -> anyhow::Result<Vec<Edge>> {
    let mut edges = Vec::with_capacity(count);
    for i in 0..count {
        edges.push(start_edge(env, &format!("{name}-{i}"), ledger, &[]).await?);
    }
    Ok(edges)
}

/// A native baseline server: the read baseline (`tessera-bench serve-native`) or the
/// forwarding proxy (`tessera-bench serve-proxy`).
pub struct Native {
    pub authority: String,
    child: Child,
}

impl Native {
    /// The read baseline, its cache filled from `ledger` for one show and event.
    pub async fn start(
        env: &Env,
        ledger: &Ledger,
        show_id: &str,
        event_id: &str,
    ) -> anyhow::Result<Self> {
        let ids = ["--show", show_id, "--event", event_id];
        Self::spawn(env, "native", "serve-native", ledger, &ids).await
    }

    /// The proxy in front of `ledger`, its log under `name`.
    pub async fn proxy(env: &Env, name: &str, ledger: &Ledger) -> anyhow::Result<Self> {
        Self::spawn(env, name, "serve-proxy", ledger, &[]).await
    }

    async fn spawn(
        env: &Env,
        name: &str,
        command: &str,
        ledger: &Ledger,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let [port] = free_ports()?;
        let authority = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(&env.bench_bin);
        cmd.args([command, "--addr", &authority, "--ledger", &ledger.base])
            .args(args);
        let mut child = spawn(env, name, cmd)?;
        wait_ready(
            env,
            &mut child,
            name,
            &format!("http://{authority}"),
            |_| true,
        )
        .await?;
        Ok(Self { authority, child })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        tessera_testkit::process::stop(&mut self.child).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_picked_together_are_distinct() {
        let ports: [u16; 16] = free_ports().unwrap();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }

    #[test]
    fn a_log_tail_quotes_the_error_without_the_backtrace() {
        let dir = std::env::temp_dir().join(format!("tessera-bench-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.log");
        let frames: String = (0..40)
            .map(|i| format!("  {i}: frame\n      at x.rs:1\n"))
            .collect();
        std::fs::write(
            &path,
            format!(
                "Error: failed to bind LEDGER_ADDR 127.0.0.1:1\n\nCaused by:\n    in use\n{frames}"
            ),
        )
        .unwrap();
        let tail = log_tail(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(tail.contains(BIND_FAILURE), "{tail}");
        assert!(tail.contains("in use"), "{tail}");
        assert!(!tail.contains("frame"), "{tail}");
    }
}
