//! CPU time by tier, read from Linux's `/proc`: the generator (this process), a ledger,
//! the PostgreSQL backends serving its database, an edge node. On two shared cores a
//! throughput ratio between two paths mixes what every tier costs; CPU time per request
//! says what each tier costs on its own, which is what a deployment with the tiers on
//! machines of their own pays.
//!
//! Also where the tiers run: [`pin`] restricts a process (every thread) to some cores, so a
//! run can give the ledger tier and the rest a core each ("machines" of one core).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::{sysconf, Pid, SysconfVar};
use serde::Serialize;
use sqlx::PgPool;

/// The tiers a request crosses, in the order tables show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Generator,
    Edge,
    Ledger,
    Postgres,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Generator, Tier::Edge, Tier::Ledger, Tier::Postgres];

    pub fn label(self) -> &'static str {
        match self {
            Tier::Generator => "generator",
            Tier::Edge => "edge",
            Tier::Ledger => "ledger",
            Tier::Postgres => "PostgreSQL",
        }
    }
}

/// The processes of each tier, and the CPU time each had used when sampled.
pub struct Meter {
    ticks_per_s: u64,
    database: String,
    fixed: Vec<(Tier, u32)>,
    start: HashMap<u32, u64>,
}

/// CPU time each tier used between [`Meter::start`] and [`Meter::finish`].
#[derive(Clone, Debug, Default)]
pub struct TierTimes(pub HashMap<Tier, Duration>);

impl TierTimes {
    pub fn get(&self, tier: Tier) -> Duration {
        self.0.get(&tier).copied().unwrap_or_default()
    }

    /// Adds another window's times (slices of one configuration).
    pub fn absorb(&mut self, other: &TierTimes) {
        for (tier, time) in &other.0 {
            *self.0.entry(*tier).or_default() += *time;
        }
    }

    /// Microseconds of `tier`'s CPU per request, over `requests`.
    pub fn us_per(&self, tier: Tier, requests: u64) -> Option<f64> {
        (requests > 0).then(|| self.get(tier).as_secs_f64() * 1e6 / requests as f64)
    }
}

impl Meter {
    /// Starts counting: the generator, the processes in `fixed` (ledger, edge) and the
    /// backends connected to `database` now (ones that connect later count from zero).
    pub async fn start(
        pool: &PgPool,
        database: &str,
        fixed: Vec<(Tier, u32)>,
    ) -> anyhow::Result<Self> {
        let ticks_per_s = sysconf(SysconfVar::CLK_TCK)
            .context("reading the clock tick")?
            .and_then(|t| u64::try_from(t).ok())
            .context("the clock tick is unknown")?;
        let mut meter = Self {
            ticks_per_s,
            database: database.to_owned(),
            fixed: [(Tier::Generator, std::process::id())]
                .into_iter()
                .chain(fixed)
                .collect(),
            start: HashMap::new(),
        };
        meter.start = meter.sample(pool).await?;
        Ok(meter)
    }

    /// The tiers' CPU time since [`Meter::start`].
    pub async fn finish(self, pool: &PgPool) -> anyhow::Result<TierTimes> {
        let end = self.sample_tiers(pool).await?;
        let mut times = TierTimes::default();
        for (tier, pid, ticks) in end {
            let used = ticks.saturating_sub(self.start.get(&pid).copied().unwrap_or(0));
            *times.0.entry(tier).or_default() +=
                Duration::from_secs_f64(used as f64 / self.ticks_per_s as f64);
        }
        Ok(times)
    }

    async fn sample(&self, pool: &PgPool) -> anyhow::Result<HashMap<u32, u64>> {
        Ok(self
            .sample_tiers(pool)
            .await?
            .into_iter()
            .map(|(_, pid, ticks)| (pid, ticks))
            .collect())
    }

    /// Every process of every tier with its CPU ticks so far; a process gone meanwhile
    /// is left out (a backend that disconnected).
    async fn sample_tiers(&self, pool: &PgPool) -> anyhow::Result<Vec<(Tier, u32, u64)>> {
        let backends = backend_pids(pool, &self.database).await?;
        let processes = self
            .fixed
            .iter()
            .copied()
            .chain(backends.into_iter().map(|pid| (Tier::Postgres, pid)));
        Ok(processes
            .filter_map(|(tier, pid)| cpu_ticks(pid).map(|ticks| (tier, pid, ticks)))
            .collect())
    }
}

/// The server processes serving connections to `database`.
pub async fn backend_pids(pool: &PgPool, database: &str) -> anyhow::Result<Vec<u32>> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(pool)
    .await
    .context("listing the database's backends")?;
    Ok(pids
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect())
}

/// User + system CPU ticks of every thread of `pid`, living or exited (`/proc/PID/stat`,
/// fields 14 and 15); `None` if the process is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Restricts every thread of `pid` to `cores` (threads it starts later inherit it).
pub fn pin(pid: u32, cores: &[usize]) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    for &core in cores {
        set.set(core).with_context(|| format!("core {core}"))?;
    }
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("listing the threads of {pid}"))?;
    for thread in threads {
        let tid: i32 = thread?
            .file_name()
            .to_string_lossy()
            .parse()
            .context("a thread id")?;
        // A thread that exited meanwhile has nothing left to pin.
        match sched_setaffinity(Pid::from_raw(tid), &set) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).with_context(|| format!("pinning thread {tid} of {pid}")),
        }
    }
    Ok(())
}

/// How many cores the machine has online (whatever this process is pinned to now).
pub fn cores_online() -> usize {
    sysconf(SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_shows_cpu_time() {
        let spin_until = std::time::Instant::now() + Duration::from_millis(100);
        let mut x = 0_u64;
        while std::time::Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ticks(std::process::id()).is_some_and(|t| t > 0));
        assert_eq!(cpu_ticks(u32::MAX), None, "no such process");
    }

    #[test]
    fn a_pinned_process_runs_only_on_its_cores() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("starting sleep");
        pin(child.id(), &[0]).expect("pinning to core 0");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let allowed = nix::sched::sched_getaffinity(pid).expect("reading its cores");
        let _ = child.kill();
        let _ = child.wait();
        assert!(allowed.is_set(0).expect("core 0"));
        for core in 1..CpuSet::count() {
            assert!(
                !allowed.is_set(core).expect("a core"),
                "core {core} allowed"
            );
        }
    }
}
