//! `tessera-bench`: measures the ledger's hold throughput and latency on one hot zone,
//! the batched strategy and the naive one side by side in one run, through the HTTP API.
//!
//! ```text
//! cargo run -p tessera-bench --release -- holds [--seconds 10] [--clients 1,32,128]
//! ```
//!
//! Both ledgers run in this process on port 0 against one fresh database (dropped at the
//! end), each with the same pool size; every run gets its own zone. After each run the
//! zone's counters are reconciled against its hold rows: any oversell fails the bench.

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
/// Warm-up before measuring (connections, pools, writer tasks).
const WARMUP: Duration = Duration::from_secs(1);

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
    let database_url = bench_database_url(&base);
    if Postgres::database_exists(&database_url).await? {
        Postgres::force_drop_database(&database_url).await?;
    }
    let result = run(&args, &database_url).await;
    Postgres::force_drop_database(&database_url)
        .await
        .context("dropping the bench database")?;
    result
}

/// The same server as `base`, database `tessera_bench`.
fn bench_database_url(base: &str) -> String {
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/tessera_bench"),
        None => format!("{base}/tessera_bench"),
    }
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let env = |strategy: &str| -> HashMap<&'static str, String> {
        HashMap::from([
            ("LEDGER_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", database_url.to_owned()),
            ("HOLD_STRATEGY", strategy.to_owned()),
            // Stay quiet on the real channel: a bench must not invalidate real edges.
            ("OUTBOX_CHANNEL", "tessera.bench".to_owned()),
            ("REQUESTS_IN_FLIGHT_MAX", "100000".to_owned()),
        ])
    };
    let mut targets = Vec::new();
    for strategy in &args.strategies {
        let vars = env(strategy);
        let config =
            Config::from_lookup(|k| vars.get(k).cloned().or_else(|| std::env::var(k).ok()))?;
        let ledger = Ledger::build(config).await?;
        let addr = ledger.local_addr()?;
        tokio::spawn(ledger.run_until_stopped(std::future::pending()));
        targets.push((strategy.as_str(), format!("http://{addr}")));
    }
    let pool = PgPool::connect(database_url).await?;
    let sync: String = sqlx::query_scalar("show synchronous_commit")
        .fetch_one(&pool)
        .await?;
    let fsync: String = sqlx::query_scalar("show fsync").fetch_one(&pool).await?;
    println!(
        "PostgreSQL synchronous_commit={sync} fsync={fsync}; {} s per run after {} s warm-up",
        args.seconds,
        WARMUP.as_secs()
    );
    let token = {
        let mut conn = pool.acquire().await?;
        tessera_ledger::auth::create_tenant(&mut conn, "Bench")
            .await?
            .1
    };

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let mut results: Vec<(usize, &str, LoadResult)> = Vec::new();
    for &clients in &args.clients {
        for (strategy, base) in &targets {
            let target =
                create_zone(&client, base, &token, &format!("{strategy}-{clients}")).await?;
            let zone_id = target.zone_id.clone();
            let result =
                load::run(target, clients, WARMUP, Duration::from_secs(args.seconds)).await?;
            reconcile(&pool, &zone_id, result.created_total).await?;
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
