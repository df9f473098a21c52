//! `tessera-bench`: measures the ledger's hold throughput and latency on one hot zone,
//! the batched strategy and the naive one side by side in one run, through the HTTP API.
//!
//! ```text
//! cargo run -p tessera-bench --release -- holds [--seconds 10] [--clients 1,32,128]
//! ```
//!
//! Every strategy gets the same fresh start for each client count: a new database on the
//! `DATABASE_URL` server, a ledger with that strategy (in this process, port 0, default
//! pool size) and one hot zone. The strategies then take turns in short slices of
//! `clients` closed-loop clients, so both see the same machine. After each run the
//! zone's counters are reconciled against its hold rows and the count of 201 answers:
//! any oversell fails the bench. The database is dropped afterwards. It refuses to run
//! with `synchronous_commit` or `fsync` off: the figures are for durable holds.

mod load;

/// mimalloc instead of the system allocator: request handling is allocation-heavy and
/// glibc malloc/free measured ~10% of the ledger's CPU under the hold benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use tessera_ledger::{Config, Ledger};

use load::{LoadResult, Target};

/// Each run's zone: far more stock than any run can sell, so every request can succeed.
const ZONE_CAPACITY: i32 = 1_000_000;
/// Warm-up before each measured slice (connections, pools, writer tasks).
const WARMUP: Duration = Duration::from_millis(500);
/// Each strategy's measured time is split into this many slices, alternating strategies.
const SLICES: u32 = 5;

struct Args {
    seconds: u64,
    clients: Vec<usize>,
    strategies: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        seconds: 10,
        clients: vec![1, 32, 128],
        strategies: vec!["naive".to_owned(), "batched".to_owned()],
    };
    match args.next().as_deref() {
        Some("holds") => {}
        other => {
            bail!("usage: tessera-bench holds [--seconds N] [--clients 1,32,128] [--strategies naive,batched] (got {other:?})")
        }
    }
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => parsed.seconds = value.parse().context("--seconds")?,
            "--clients" => {
                parsed.clients = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--clients")?
            }
            "--strategies" => parsed.strategies = value.split(',').map(str::to_owned).collect(),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| tessera_ledger::config::DEFAULT_DATABASE_URL.to_owned());
    println!(
        "{}",
        describe_postgres(&database_url(&base, "postgres")).await?
    );
    println!(
        "{} s measured per strategy and client count, in {SLICES} alternating slices (each after a {} ms warm-up); \
         each strategy: a fresh database, its own ledger, one hot zone",
        args.seconds,
        WARMUP.as_millis()
    );
    let client = reqwest::Client::new();
    let mut results: Vec<(usize, &str, LoadResult)> = Vec::new();
    let slice = Duration::from_secs(args.seconds).div_f64(SLICES as f64);
    for &clients in &args.clients {
        let mut stands = Vec::new();
        for strategy in &args.strategies {
            stands.push(Stand::start(&client, &base, strategy, clients).await?);
        }
        // Alternate the strategies in short slices so a drift in the machine's speed
        // (a shared VM) weighs on both alike.
        let mut totals: Vec<Option<LoadResult>> = stands.iter().map(|_| None).collect();
        for _ in 0..SLICES {
            for (stand, total) in stands.iter().zip(totals.iter_mut()) {
                let result = load::run(stand.target.clone(), clients, WARMUP, slice).await?;
                match total {
                    Some(total) => total.absorb(result)?,
                    None => *total = Some(result),
                }
            }
        }
        for (stand, total) in stands.into_iter().zip(totals) {
            let strategy = args
                .strategies
                .iter()
                .find(|s| **s == stand.strategy)
                .map_or("?", String::as_str);
            let result = total.context("no slices ran")?;
            stand.finish(result.created_total).await?;
            eprintln!(
                "{strategy:>8} {clients:>4} clients: {:>9.0} holds/s  p99 {:>7.2} ms  ({} failed)",
                result.holds_per_s(),
                result.p99_ms(),
                result.failed
            );
            results.push((clients, strategy, result));
        }
    }
    print_table(&results);
    Ok(())
}

/// The durability settings the figures were measured with (they must stay on).
async fn describe_postgres(url: &str) -> anyhow::Result<String> {
    let pool = PgPool::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let sync: String = sqlx::query_scalar("show synchronous_commit")
        .fetch_one(&pool)
        .await?;
    let fsync: String = sqlx::query_scalar("show fsync").fetch_one(&pool).await?;
    let version: String = sqlx::query_scalar("show server_version")
        .fetch_one(&pool)
        .await?;
    if sync == "off" || fsync == "off" {
        bail!("refusing to benchmark with synchronous_commit={sync} fsync={fsync}: holds must be durable");
    }
    Ok(format!(
        "PostgreSQL {version}, synchronous_commit={sync}, fsync={fsync}"
    ))
}

/// The same server as `base`, database `name`.
fn database_url(base: &str, name: &str) -> String {
    match base.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && !server.ends_with('/') => {
            format!("{server}/{name}")
        }
        _ => format!("{}/{name}", base.trim_end_matches('/')),
    }
}

/// One strategy under test: a fresh database, a ledger on it (in this process, port 0),
/// and one hot zone.
struct Stand {
    strategy: String,
    database_url: String,
    pool: PgPool,
    target: Target,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Stand {
    async fn start(
        client: &reqwest::Client,
        base: &str,
        strategy: &str,
        clients: usize,
    ) -> anyhow::Result<Self> {
        let database_url = database_url(base, &format!("tessera_bench_{strategy}_{clients}"));
        if Postgres::database_exists(&database_url).await? {
            Postgres::force_drop_database(&database_url).await?;
        }
        let vars: HashMap<&str, String> = HashMap::from([
            ("LEDGER_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", database_url.clone()),
            ("HOLD_STRATEGY", strategy.to_owned()),
            // Stay off the real channel: a bench must not invalidate real edges.
            ("OUTBOX_CHANNEL", "tessera.bench".to_owned()),
            ("REQUESTS_IN_FLIGHT_MAX", "100000".to_owned()),
        ]);
        let config =
            Config::from_lookup(|k| vars.get(k).cloned().or_else(|| std::env::var(k).ok()))?;
        let ledger = Ledger::build(config).await?;
        let ledger_url = format!("http://{}", ledger.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ledger.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let pool = PgPool::connect(&database_url).await?;
        let token = {
            let mut conn = pool.acquire().await?;
            tessera_ledger::auth::create_tenant(&mut conn, "Bench")
                .await?
                .1
        };
        let target = create_zone(
            client,
            &ledger_url,
            &token,
            &format!("{strategy}-{clients}"),
        )
        .await?;
        Ok(Self {
            strategy: strategy.to_owned(),
            database_url,
            pool,
            target,
            stop,
            server,
        })
    }

    /// Reconciles the zone against `created` holds, stops the ledger, drops the database.
    async fn finish(self, created: u64) -> anyhow::Result<()> {
        let reconciled = reconcile(&self.pool, &self.target.zone_id, created).await;
        self.pool.close().await;
        let _ = self.stop.send(());
        self.server.await??;
        Postgres::force_drop_database(&self.database_url)
            .await
            .context("dropping the bench database")?;
        reconciled
    }
}

/// A published event with one zone of `ZONE_CAPACITY`, created through the admin API.
async fn create_zone(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    slug: &str,
) -> anyhow::Result<Target> {
    let body = json!({
        "slug": slug, "title": format!("Bench {slug}"), "category": "concerts",
        "venue": {"name": "Arena", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
        "shows": [{"starts_at": "2030-01-01T19:00:00Z", "zones": [
            {"name": "Hot zone", "price_minor": 5000, "currency": "EUR", "capacity": ZONE_CAPACITY, "max_per_order": 4}]}]
    });
    let created: Value = client
        .post(format!("{base}/admin/v1/events"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let event_id = created["event_id"].as_str().context("event_id")?;
    let published = client
        .post(format!("{base}/admin/v1/events/{event_id}/publish"))
        .bearer_auth(token)
        .send()
        .await?;
    if !published.status().is_success() {
        bail!("publish failed: {}", published.status());
    }
    let show = &created["shows"][0];
    Ok(Target {
        authority: base.trim_start_matches("http://").to_owned(),
        show_id: show["show_id"].as_str().context("show_id")?.to_owned(),
        zone_id: show["zones"][0]["zone_id"]
            .as_str()
            .context("zone_id")?
            .to_owned(),
    })
}

/// The zone's counters must equal its rows and the number of 201s: zero oversell.
async fn reconcile(pool: &PgPool, zone_id: &str, created: u64) -> anyhow::Result<()> {
    let zone: uuid::Uuid = zone_id.parse()?;
    let (available, held, sold, capacity): (i32, i32, i32, i32) =
        sqlx::query_as("select available, held, sold, capacity from zones where id = $1")
            .bind(zone)
            .fetch_one(pool)
            .await?;
    let (rows, quantity): (i64, i64) =
        sqlx::query_as("select count(*), coalesce(sum(quantity), 0)::bigint from holds where zone_id = $1 and status = 'held'")
            .bind(zone)
            .fetch_one(pool)
            .await?;
    if available + held + sold != capacity || i64::from(held) != quantity || rows as u64 != created
    {
        bail!("reconciliation failed on zone {zone}: available {available} held {held} sold {sold} capacity {capacity}, {rows} hold rows totalling {quantity}, {created} holds answered 201");
    }
    Ok(())
}

fn print_table(results: &[(usize, &str, LoadResult)]) {
    println!("\n| clients | strategy | holds/s | p50 ms | p99 ms | shed (503) | batched ÷ naive |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for (clients, strategy, result) in results {
        let naive = results
            .iter()
            .find(|(c, s, _)| c == clients && *s == "naive")
            .map(|r| r.2.holds_per_s());
        let ratio = match (*strategy, naive) {
            ("batched", Some(n)) if n > 0.0 => format!("{:.1}×", result.holds_per_s() / n),
            _ => String::new(),
        };
        println!(
            "| {clients} | {strategy} | {:.0} | {:.2} | {:.2} | {} | {ratio} |",
            result.holds_per_s(),
            result.p50_ms(),
            result.p99_ms(),
            result.shed
        );
    }
    println!("\nzero oversell: every run's counters matched its hold rows and its 201 count");
}
