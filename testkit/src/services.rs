//! The services tests run against: PostgreSQL and Redis, from the environment with the
//! local defaults (the README's), and a Redis of a test's own ([`own_redis`]).

pub mod own_redis;

use tessera_domain::settings::Settings;

pub const DATABASE_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL_DEFAULT: &str = "redis://127.0.0.1:6379";

/// `DATABASE_URL`, or the local server's default database.
pub fn database_url() -> String {
    env_settings().string("DATABASE_URL", DATABASE_URL_DEFAULT)
}

/// `REDIS_URL`, or the local server.
pub fn redis_url() -> String {
    env_settings().string("REDIS_URL", REDIS_URL_DEFAULT)
}

/// A fresh invalidation channel name, so parallel tests never hear each other.
pub fn unique_channel() -> String {
    format!("tessera.invalidate.test.{}", uuid::Uuid::new_v4())
}

fn env_settings() -> Settings<impl Fn(&str) -> Option<String>> {
    Settings::new(|name: &str| std::env::var(name).ok())
}
