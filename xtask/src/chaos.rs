//! `cargo xtask chaos [--short]`: the fault campaign (`tessera-bench chaos`) on debug
//! builds, against a PostgreSQL cluster of its own (it stops and restarts it mid-sale, so
//! never the shared one) and a Redis it starts itself; then the fuzzers, for a bounded time.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::fuzz::Budget;
use crate::postgres::PgCluster;
use crate::process::{describe, run_checked};
use crate::tasks::{bench_command, header, Profile, CARGO_GRACE};
use crate::Paths;

/// `cargo xtask chaos [--short]`.
pub fn chaos(paths: &Paths, args: &[String]) -> Result<()> {
    let short = match args {
        [] => false,
        [flag] if flag == "--short" => true,
        _ => bail!("`chaos` takes only --short"),
    };
    run_campaign(paths, short)?;
    run_fuzzers(paths, short)
}

/// Each fuzz target's budget: the short form (CI) replays a fixed seed for a fixed number
/// of inputs from the committed seeds (the same inputs every run: red only when the code
/// changed); the full form searches afresh for a minute and includes the manifest parser.
const FUZZ_SHORT: Budget = Budget::Runs {
    runs: 200_000,
    seed: 1,
};
const FUZZ_FULL: Budget = Budget::Time(Duration::from_secs(60));

/// The fuzzers, bounded; the short form leaves out the manifest target (see
/// [`crate::fuzz::MANIFEST_TARGET`]).
pub fn run_fuzzers(paths: &Paths, short: bool) -> Result<()> {
    let budget = if short { FUZZ_SHORT } else { FUZZ_FULL };
    crate::fuzz::run_fuzzers(paths, budget, !short).map(drop)
}
/// Builds what the campaign runs, starts its PostgreSQL, runs it; the cluster is stopped
/// and removed when this returns.
pub fn run_campaign(paths: &Paths, short: bool) -> Result<()> {
    let mut run = bench_command(paths, Profile::Debug, "chaos", "chaos")?;
    // Its own base directory: `Services` may run a throwaway cluster named by the same pid.
    let cluster = PgCluster::start(&[
        paths.target_dir.join("chaos-postgres"),
        std::env::temp_dir().join("tessera-chaos"),
    ])?;
    let database_url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    run.args(short.then_some("--short"))
        .env("DATABASE_URL", database_url)
        .envs(cluster.control_env());
    header(&describe(&run));
    run_checked(&mut run, CARGO_GRACE)
}
