//! `cargo xtask`: Tessera's developer commands, so that a fresh machine with Rust needs no
//! other script. It provides PostgreSQL and Redis (what the environment names, what runs on
//! the default ports, or throwaway instances it starts and always stops), then:
//!
//! - `up`: builds the ledger, seeds demo data and serves it in the foreground;
//! - `test`: `cargo fmt --check`, `cargo clippy -D warnings`, every test, then the quick
//!   benchmark's correctness checks and the short fault campaign;
//! - `bench`: the benchmarks (release builds) and their report;
//! - `chaos`: the fault campaign (its own PostgreSQL and Redis; `--short` inside `test`);
//! - `services`: keeps the services up and prints the variables to reach them.

mod browser;
mod chaos;
mod fuzz;
mod net;
mod pgo;
mod postgres;
mod process;
mod schemathesis;
mod services;
mod tasks;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  up                 start PostgreSQL/Redis, seed demo data, serve the ledger and an edge node
                     running spin.toml's wasm components (Ctrl-C stops all)
  build-edge         build the edge components (wasm32-wasip2, release), as `spin build` does
  test [ARGS...]     fmt check, clippy, `cargo test --workspace --all-targets ARGS...`, then
                     the quick benchmark's correctness checks (oversell, conservation) and
                     the fault campaign's short form (`chaos --short`); installs Chromium
                     (apt-get, as root) and `npm ci --prefix storefront` when missing
  bench [--quick] [--only 1,2,..]
                     build release, start PostgreSQL/Redis, run the benchmark scenarios and
                     write target/bench/report.{md,json} with SVG charts (--quick: < 3 min);
                     the full run measures the ledger, the edge and the bench built with
                     profile-guided optimisation (trained on the quick run; rustup's
                     llvm-tools, else plain builds)
  chaos [--short]    the fault campaign: its own PostgreSQL and Redis, a ledger and an edge,
                     retrying clients; ledger kill -9, PostgreSQL restart, Redis down 10 s,
                     two ledgers racing the sweeper; audits after each (target/chaos/summary.json)
  conformance        schemathesis against the ledger's OpenAPI and the edge (as `test` runs it)
  services           start PostgreSQL/Redis and print DATABASE_URL/REDIS_URL until Ctrl-C

environment:
  DATABASE_URL, REDIS_URL   use these servers instead of local or throwaway ones
  LEDGER_ADDR               address for `up` to serve the ledger on (default 127.0.0.1:4000)
  EDGE_ADDR                 address for `up` to serve the edge on (default 127.0.0.1:3000)";

fn main() -> ExitCode {
    // Services are dropped (throwaway instances stopped) inside `run`, before exiting.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Not `{err:?}`: that adds a backtrace whenever RUST_BACKTRACE is set.
            eprintln!("xtask: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        bail!("no command given");
    };
    let no_args = || match rest {
        [] => Ok(()),
        _ => Err(anyhow::anyhow!("`{command}` takes no arguments\n\n{USAGE}")),
    };
    let paths = Paths::new()?;
    process::install_signal_handler()?;
    match command.as_str() {
        "up" => no_args().and_then(|()| tasks::up(&paths)),
        "test" => tasks::test(&paths, rest),
        "bench" => tasks::bench(&paths, rest),
        "chaos" => chaos::chaos(&paths, rest),
        "conformance" => no_args().and_then(|()| tasks::conformance(&paths)),
        "build-edge" => no_args().and_then(|()| tasks::build_edge_components(&paths)),
        "services" => no_args().and_then(|()| tasks::services(&paths)),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// Where the workspace and its build output are.
pub struct Paths {
    pub root: PathBuf,
    pub target_dir: PathBuf,
}

impl Paths {
    fn new() -> Result<Self> {
        // The workspace root is known at compile time: xtask/ sits right in it.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();
        let target_dir = match env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
            // Cargo resolves a relative CARGO_TARGET_DIR against the working directory.
            Some(dir) => env::current_dir()
                .context("reading the current directory")?
                .join(dir),
            None => root.join("target"),
        };
        Ok(Self { root, target_dir })
    }

    /// A cargo command run in the workspace root, with the cargo that runs xtask.
    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(&self.root);
        cmd
    }
}
