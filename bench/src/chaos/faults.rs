//! The faults: what is broken, when in the sale, and for how long. PostgreSQL is the
//! campaign's own cluster (started by `cargo xtask chaos`, which says where it lives), so
//! stopping it disturbs nothing else; Redis is the campaign's own `redis-server`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use tessera_testkit::services::own_redis::OwnRedis;
use tokio::process::Command;

use crate::stack::{Env, Ledger};

/// The faults, in the order the campaign runs them. `id`s are stable (summary.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    LedgerKillThroughEdge,
    LedgerKillDirect,
    PostgresRestart,
    RedisDown,
    SweeperRace,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Self::LedgerKillThroughEdge,
        Self::LedgerKillDirect,
        Self::PostgresRestart,
        Self::RedisDown,
        Self::SweeperRace,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::LedgerKillThroughEdge => "ledger_kill_through_edge",
            Self::LedgerKillDirect => "ledger_kill_direct",
            Self::PostgresRestart => "postgres_restart",
            Self::RedisDown => "redis_down",
            Self::SweeperRace => "sweeper_race",
        }
    }

    /// Buyers reach the ledger through an edge node (else directly).
    pub fn through_edge(self) -> bool {
        matches!(
            self,
            Self::LedgerKillThroughEdge | Self::PostgresRestart | Self::RedisDown
        )
    }
}

/// Where the faults are injected, and the handles to inject them.
pub struct Targets<'a> {
    pub env: &'a Env,
    pub ledger: &'a mut Ledger,
    pub redis: &'a mut OwnRedis,
    pub postgres: &'a Postgres,
}

/// How long each fault lasts.
pub struct Durations {
    /// Between a ledger's `kill -9` and its restart.
    pub ledger_down: Duration,
    pub postgres_down: Duration,
    pub redis_down: Duration,
    /// Also stop PostgreSQL in `immediate` mode (a crash: recovery on start).
    pub postgres_immediate: bool,
}

/// Injects `fault` into a sale that lasts `window`; returns a line per fault injected.
pub async fn inject(
    fault: Fault,
    targets: Targets<'_>,
    window: Duration,
    durations: &Durations,
) -> anyhow::Result<Vec<String>> {
    let at = |fraction: f64| window.mul_f64(fraction);
    let mut injected = Vec::new();
    let started = tokio::time::Instant::now();
    let wait_until = |offset: Duration| tokio::time::sleep_until(started + offset);
    match fault {
        Fault::LedgerKillThroughEdge | Fault::LedgerKillDirect => {
            let kills: &[f64] = if fault == Fault::LedgerKillDirect {
                &[0.25, 0.6]
            } else {
                &[0.3]
            };
            for &fraction in kills {
                wait_until(at(fraction)).await;
                targets.ledger.kill().await?;
                tokio::time::sleep(durations.ledger_down).await;
                targets.ledger.restart(targets.env).await?;
                injected.push(format!(
                    "ledger kill -9, restarted after {:?}",
                    durations.ledger_down
                ));
            }
        }
        Fault::PostgresRestart => {
            let mut modes = vec![(0.25, "fast")];
            if durations.postgres_immediate {
                modes.push((0.6, "immediate"));
            }
            for (fraction, mode) in modes {
                wait_until(at(fraction)).await;
                targets.postgres.stop(mode).await?;
                tokio::time::sleep(durations.postgres_down).await;
                targets.postgres.start().await?;
                injected.push(format!(
                    "PostgreSQL {mode} shutdown, {:?} down",
                    durations.postgres_down
                ));
            }
        }
        Fault::RedisDown => {
            wait_until(at(0.2)).await;
            targets.redis.stop();
            tokio::time::sleep(durations.redis_down).await;
            targets.redis.restart().await;
            injected.push(format!("Redis down {:?}", durations.redis_down));
        }
        Fault::SweeperRace => {
            injected.push("two ledgers, 2 s hold TTL, sweeping every 100 ms".to_owned());
        }
    }
    Ok(injected)
}

/// The campaign's PostgreSQL cluster, from `CHAOS_PG_CTL` (the `pg_ctl` binary),
/// `CHAOS_PG_DATA` (its data directory, whose postgresql.conf holds its port) and
/// `CHAOS_PG_USER` (the user its tools run as; empty for the current one).
pub struct Postgres {
    pg_ctl: PathBuf,
    data: PathBuf,
    user: Option<String>,
}

impl Postgres {
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run the campaign with `cargo xtask chaos`, which starts its own PostgreSQL")
            })
        };
        Ok(Self {
            pg_ctl: var("CHAOS_PG_CTL")?.into(),
            data: var("CHAOS_PG_DATA")?.into(),
            user: std::env::var("CHAOS_PG_USER")
                .ok()
                .filter(|u| !u.is_empty()),
        })
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(&self.pg_ctl);
                cmd
            }
            None => Command::new(&self.pg_ctl),
        };
        // PostgreSQL's tools fail when they cannot read the working directory.
        cmd.current_dir("/").arg("-D").arg(&self.data);
        cmd
    }

    /// `pg_ctl stop -m <mode>`: `fast` disconnects every session (57P01), `immediate`
    /// kills the server outright (crash recovery at the next start).
    pub async fn stop(&self, mode: &str) -> anyhow::Result<()> {
        let mut cmd = self.pg_ctl();
        cmd.args(["-m", mode, "-w", "stop"]);
        run(cmd, "pg_ctl stop").await
    }

    pub async fn start(&self) -> anyhow::Result<()> {
        let mut cmd = self.pg_ctl();
        cmd.arg("-l")
            .arg(self.data.join("log"))
            .args(["-w", "start"]);
        run(cmd, "pg_ctl start").await
    }
}

async fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let output = cmd
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
