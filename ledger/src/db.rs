//! The connection pool and migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use crate::config::Config;

/// The migrations in the repository's `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A request waits at most this long for a pooled connection before failing with 503.
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the database if it does not exist, connects, and applies migrations.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.database_url.as_str();
    if !Postgres::database_exists(url)
        .await
        .with_context(|| format!("failed to reach PostgreSQL at {url}"))?
    {
        Postgres::create_database(url)
            .await
            .with_context(|| format!("failed to create the database {url}"))?;
        tracing::info!(url, "created database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.database_pool_max)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .with_context(|| format!("failed to connect to {url}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .context("failed to apply migrations")?;
    Ok(pool)
}
