//! The fuzz targets of `fuzz/` (cargo-fuzz, libFuzzer), each run for a bounded time.
//!
//! The only toolchain is stable Rust, so the targets are built with `--sanitizer none`:
//! cargo-fuzz's default AddressSanitizer needs `-Zsanitizer` (nightly). The coverage
//! instrumentation libFuzzer steers by (`-Cpasses=sancov-module`, `-Cllvm-args=…`) is
//! stable, and the targets are safe Rust, where what ASan would catch cannot happen; what
//! the fuzzers look for are panics (failed assertions included), overflows (cargo-fuzz
//! builds with debug assertions) and hangs.
//!
//! cargo-fuzz is installed (pinned, `--locked`) under `target/fuzz-tools` when missing, so
//! a clean clone needs nothing but cargo; each target's corpus grows in
//! `target/fuzz-corpus/<target>` from the committed seeds in `fuzz/seeds/<target>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{bail_if_interrupted, describe, run_checked, run_logged};
use crate::Paths;

/// The cargo-fuzz release installed when none is found (pinned: its flags are used below).
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The fuzz targets (`fuzz/Cargo.toml`'s `[[bin]]`s), named by what they parse.
pub const TARGETS: [&str; 5] = [
    "hold_request",
    "confirm_request",
    "ids",
    "event_query",
    "invalidation_message",
];
/// The manifest target, behind the fuzz crate's `manifest` feature: it links the edge host
/// (wasmtime), which takes minutes to build instrumented; the short run skips it.
pub const MANIFEST_TARGET: &str = "manifest";
/// Time cargo and the fuzzer get to exit after Ctrl-C.
const GRACE: Duration = Duration::from_secs(10);
/// Longest input libFuzzer generates: bodies past a few KiB only repeat what shorter ones
/// exercise (the servers refuse bodies over 64 KiB before parsing), and shorter inputs
/// mean more executions in the bounded time.
const MAX_INPUT_LEN: usize = 4096;
/// A single input running longer than this is reported as a hang (libFuzzer `-timeout`):
/// every parser here is linear in its input.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

/// What one target did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRun {
    pub target: String,
    /// Inputs executed, from libFuzzer's final stats (`None` if it printed none).
    pub executions: Option<u64>,
}

/// Every target's run; returned only when none crashed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FuzzSummary {
    pub runs: Vec<TargetRun>,
}

impl std::fmt::Display for FuzzSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for run in &self.runs {
            match run.executions {
                Some(n) => writeln!(f, "{:<22} {n} executions, no crash", run.target)?,
                None => writeln!(f, "{:<22} no crash (executions not reported)", run.target)?,
            }
        }
        Ok(())
    }
}

/// How long each target runs: a time bound searches afresh each run; a fixed seed and run
/// count replay the same inputs from the same corpus (CI starts from the committed seeds),
/// so a CI run is red only when the code changed, never because this run was luckier.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Time(Duration),
    Runs { runs: u64, seed: u64 },
}

/// Builds and runs every target (the manifest's too, if `with_manifest`) for `per_target`;
/// fails on the first crash, naming the input that caused it.
pub fn run_fuzzers(paths: &Paths, per_target: Budget, with_manifest: bool) -> Result<FuzzSummary> {
    let cargo_fuzz = ensure_cargo_fuzz(paths)?;
    let mut summary = FuzzSummary::default();
    let manifest = with_manifest.then_some(MANIFEST_TARGET);
    for target in TARGETS.into_iter().chain(manifest) {
        bail_if_interrupted()?;
        let run = run_target(paths, &cargo_fuzz, target, per_target)?;
        summary.runs.push(run);
    }
    eprintln!("\nxtask: fuzzing found no crash\n{summary}");
    Ok(summary)
}

/// `cargo-fuzz` on PATH or under `target/fuzz-tools`, installed there if neither has it.
fn ensure_cargo_fuzz(paths: &Paths) -> Result<PathBuf> {
    let root = paths.target_dir.join("fuzz-tools");
    let installed = root.join("bin").join("cargo-fuzz");
    if installed.is_file() {
        return Ok(installed);
    }
    let mut install = paths.cargo();
    install
        .args(["install", "--locked", "cargo-fuzz", "--version"])
        .arg(CARGO_FUZZ_VERSION)
        .arg("--root")
        .arg(&root);
    eprintln!("\n==> {}", describe(&install));
    run_checked(&mut install, GRACE)?;
    Ok(installed)
}

/// One target: `cargo fuzz run` bounded by `-max_total_time`, its log in
/// `target/fuzz-logs/<target>.log`.
fn run_target(paths: &Paths, cargo_fuzz: &Path, target: &str, time: Budget) -> Result<TargetRun> {
    let corpus = paths.target_dir.join("fuzz-corpus").join(target);
    let artifacts = paths.target_dir.join("fuzz-artifacts").join(target);
    let logs = paths.target_dir.join("fuzz-logs");
    for dir in [&corpus, &artifacts, &logs] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let seeds = paths.root.join("fuzz").join("seeds").join(target);
    let log_path = logs.join(format!("{target}.log"));
    let mut cmd = fuzz_command(paths, cargo_fuzz, target);
    // The first corpus directory is where new inputs go; the seeds are only read.
    cmd.arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .args(libfuzzer_flags(&artifacts, time));
    let (status, output) = run_logged(&mut cmd, &log_path, GRACE)?;
    if !status.success() {
        bail!(crash_report(target, &output, &log_path));
    }
    Ok(TargetRun {
        target: target.to_owned(),
        executions: executions(&output),
    })
}

/// `cargo fuzz run <target>` without sanitizer, built into `target/fuzz`.
fn fuzz_command(paths: &Paths, cargo_fuzz: &Path, target: &str) -> Command {
    let mut cmd = Command::new(cargo_fuzz);
    // Run directly, cargo-fuzz expects the subcommand name cargo would pass first.
    cmd.arg("fuzz")
        .args(["run", "--sanitizer", "none", "--fuzz-dir"])
        .arg(paths.root.join("fuzz"))
        .arg("--target-dir")
        .arg(paths.target_dir.join("fuzz"));
    if target == MANIFEST_TARGET {
        cmd.args(["--features", "manifest"]);
    }
    cmd.arg(target).current_dir(&paths.root);
    // The cargo that runs xtask builds the targets too.
    if let Some(cargo) = std::env::var_os("CARGO") {
        cmd.env("CARGO", cargo);
    }
    cmd
}

/// libFuzzer's options: the budget, final stats (for the execution count), and where
/// a crashing input is written.
fn libfuzzer_flags(artifacts: &Path, budget: Budget) -> Vec<String> {
    let bound = match budget {
        Budget::Time(time) => vec![format!("-max_total_time={}", time.as_secs().max(1))],
        Budget::Runs { runs, seed } => vec![format!("-runs={runs}"), format!("-seed={seed}")],
    };
    bound
        .into_iter()
        .chain([
            format!("-max_len={MAX_INPUT_LEN}"),
            format!("-timeout={INPUT_TIMEOUT_SECONDS}"),
            "-print_final_stats=1".to_owned(),
            // libFuzzer prepends the prefix as is: it must end in a separator.
            format!("-artifact_prefix={}/", artifacts.display()),
        ])
        .collect()
}

/// The number in libFuzzer's `stat::number_of_executed_units: N`, or the `#N DONE` line.
fn executions(output: &str) -> Option<u64> {
    let stat = output.lines().rev().find_map(|line| {
        line.trim()
            .strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        output.lines().rev().find_map(|line| {
            let rest = line.strip_prefix('#')?;
            let (n, tail) = rest.split_once(char::is_whitespace)?;
            tail.trim_start()
                .starts_with("DONE")
                .then(|| n.parse().ok())
                .flatten()
        })
    })
}

/// What failed: the crashing inputs libFuzzer wrote (`Test unit written to <path>`), and
/// the end of the log.
fn crash_report(target: &str, output: &str, log_path: &Path) -> String {
    /// Enough of the log for the panic message and libFuzzer's summary.
    const TAIL_LINES: usize = 40;
    let inputs: Vec<&str> = output
        .lines()
        .filter_map(|line| {
            line.split_once("Test unit written to ")
                .map(|(_, p)| p.trim())
        })
        .collect();
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    let found = if inputs.is_empty() {
        "no crash input was written (a build or setup failure?)".to_owned()
    } else {
        format!("crash input: {}", inputs.join(", "))
    };
    format!(
        "fuzz target `{target}` failed; {found}\nreproduce: cargo fuzz run --sanitizer none \
         --fuzz-dir fuzz {target} <input>\nfull log: {}\n...\n{tail}",
        log_path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_come_from_the_final_stats_or_the_done_line() {
        let stats = "#1024\tpulse  cov: 5\n#52311\tDONE   cov: 80 ft: 200\n\
                     stat::number_of_executed_units: 52311\nstat::peak_rss_mb: 40\n";
        assert_eq!(executions(stats), Some(52311));
        assert_eq!(executions("#777\tDONE   cov: 80 ft: 200\n"), Some(777));
        assert_eq!(executions("nothing here"), None);
    }

    #[test]
    fn a_crash_report_names_the_input() {
        let log = "thread panicked at x\n==1== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='/t/'; Test unit written to /t/crash-abc\n";
        let report = crash_report("ids", log, Path::new("/t/ids.log"));
        assert!(report.contains("crash input: /t/crash-abc"), "{report}");
        assert!(report.contains("deadly signal"), "{report}");
    }

    #[test]
    fn every_target_has_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/Cargo.toml");
        for target in TARGETS.into_iter().chain([MANIFEST_TARGET]) {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target}"
            );
            let seeds = fs::read_dir(root.join("seeds").join(target)).expect(target);
            assert!(seeds.count() > 0, "{target} has no seeds");
        }
    }
}
