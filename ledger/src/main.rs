//! The `tessera-ledger` binary: `serve` (default), `migrate`, `seed`, and the tenant and
//! token commands (`tessera_ledger::cli`).

use std::process::ExitCode;

use anyhow::Context;

/// mimalloc instead of the system allocator: request handling is allocation-heavy and
/// glibc malloc/free measured ~10% of the ledger's CPU under the hold benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tessera_domain::settings::redact_url;
use tessera_ledger::cli::{self, Command, USAGE};
use tessera_ledger::{Config, Ledger};
use tracing_subscriber::EnvFilter;

/// Exit status for arguments that make no command (as sysexits' EX_USAGE family and most
/// CLIs do); a command that fails exits 1.
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("tessera-ledger: {e}\n\n{USAGE}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if command == Command::Help {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = Config::from_env()?;
    // The tenant and token commands print their results on stdout: logs go to stderr.
    init_tracing(config.log_json, matches!(command, Command::Admin(_)));
    config.connections_max =
        tessera_serving::fit_to_open_files(config.connections_max, "CONNECTIONS_MAX");
    match command {
        Command::Serve => serve(config).await?,
        Command::Migrate => {
            tessera_ledger::db::connect(&config).await?;
            // The URL may carry a password: never print it.
            println!("migrations applied to {}", redact_url(&config.database_url));
        }
        Command::Seed => seed(&config).await?,
        Command::Admin(command) => {
            let pool = tessera_ledger::db::connect(&config).await?;
            let mut conn = pool.acquire().await?;
            match cli::run_admin(&mut conn, command).await {
                Ok(output) => print!("{output}"),
                Err(e) => {
                    eprintln!("tessera-ledger: {e:#}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Help => println!("{USAGE}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn seed(config: &Config) -> anyhow::Result<()> {
    let pool = tessera_ledger::db::connect(config).await?;
    let seeded = tessera_ledger::seed::run(&pool)
        .await
        .context("seeding demo data failed")?;
    println!("demo tenant:  {}", seeded.tenant_id);
    println!("admin token:  {}", seeded.admin_token);
    println!("demo events:  {} created", seeded.events_created);
    println!(
        "gate token:   {} (door {:?} of event {}, until {})",
        seeded.gate.token, seeded.gate.gate, seeded.gate.event_id, seeded.gate.expires_at
    );
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let database = redact_url(&config.database_url);
    let ledger = Ledger::build(config).await?;
    tracing::info!(
        addr = %ledger.local_addr()?,
        metrics_addr = %ledger.metrics_addr()?,
        %database,
        "ledger listening"
    );
    ledger.run_until_stopped(shutdown_signal()).await
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    tessera_serving::shutdown_signal().await;
    tracing::info!("shutdown requested: finishing in-flight requests");
}

fn init_tracing(json: bool, to_stderr: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (json, to_stderr) {
        (true, true) => builder.json().with_writer(std::io::stderr).init(),
        (true, false) => builder.json().init(),
        (false, true) => builder.with_writer(std::io::stderr).init(),
        (false, false) => builder.init(),
    }
}
