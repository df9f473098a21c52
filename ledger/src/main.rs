//! The `tessera-ledger` binary: `serve` (default), `migrate`, or `seed`.

use anyhow::Context;

/// mimalloc instead of the system allocator: request handling is allocation-heavy and
/// glibc malloc/free measured ~10% of the ledger's CPU under the hold benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tessera_domain::settings::redact_url;
use tessera_ledger::{Config, Ledger};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: tessera-ledger [serve|migrate|seed]
  serve    run the ledger (default)
  migrate  create the database if needed and apply migrations
  seed     migrate, then add demo events and print an admin token
Configuration comes from the environment; see .env.example.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    init_tracing(config.log_json);
    config.connections_max =
        tessera_serving::fit_to_open_files(config.connections_max, "CONNECTIONS_MAX");
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    match command.as_str() {
        "serve" => serve(config).await,
        "migrate" => {
            tessera_ledger::db::connect(&config).await?;
            // The URL may carry a password: never print it.
            println!("migrations applied to {}", redact_url(&config.database_url));
            Ok(())
        }
        "seed" => {
            let pool = tessera_ledger::db::connect(&config).await?;
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
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    }
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
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

fn init_tracing(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
