//! The connection pool and migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};
use tessera_domain::settings::redact_url;

use crate::config::Config;

/// The migrations in the repository's `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A request waits at most this long for a pooled connection before failing with 503.
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the database if it does not exist, connects, and applies migrations.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.database_url.as_str();
    // The URL may carry a password: messages and logs get it redacted.
    let shown = redact_url(url);
    if !Postgres::database_exists(url)
        .await
        .with_context(|| format!("failed to reach PostgreSQL at {shown}"))?
    {
        Postgres::create_database(url)
            .await
            .with_context(|| format!("failed to create the database {shown}"))?;
        tracing::info!(url = %shown, "created database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.database_pool_max)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to {shown}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .context("failed to apply migrations")?;
    // The re-issue step of `20261128000003_ticket_codes.sql`: codes made before signing.
    let reissued = crate::tickets::keys::reissue_unsigned_codes(&pool)
        .await
        .context("failed to sign the codes of earlier tickets")?;
    if reissued > 0 {
        tracing::info!(
            reissued,
            "signed the codes of tickets issued before signing"
        );
    }
    Ok(pool)
}
