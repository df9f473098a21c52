//! Profile-guided optimisation of the measured binaries for `cargo xtask bench`.
//!
//! The edge's time per request goes to stalls across a wide code path (wasmtime, wasi-http,
//! hyper, tokio), which code layout moves: fat LTO took a hold from 652 to 453 µs, and a
//! profile of real traffic takes it further (README, "Where the goals are missed"). So the
//! full bench measures the binaries as they would ship: the ledger, the edge and the bench
//! (the load generator and the native baselines, optimised alike so that a baseline is not
//! handicapped) built with `-Cprofile-generate`, trained by a quick run of every scenario,
//! the profiles merged with LLVM's `llvm-profdata` (rustup's `llvm-tools`), and rebuilt
//! with `-Cprofile-use`. Without `llvm-profdata` the bench runs the plain release builds
//! and its report says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{describe, run_captured, run_checked};
use crate::tasks::{header, CARGO_GRACE};
use crate::Paths;

/// The binaries built, trained and measured together.
const PACKAGES: [&str; 3] = ["tessera-ledger", "tessera-edge", "tessera-bench"];

/// Where a bench run's binaries are, and how they were built (for the report).
pub struct Binaries {
    pub dir: PathBuf,
    /// Empty for plain builds.
    pub note: String,
}

/// Where the builds, the raw profiles and the merged profile live (under `target/pgo`):
/// each build has a target directory of its own, since its flags differ from the plain
/// release build's and would otherwise rebuild it (and it them) every time.
struct Dirs {
    generate: PathBuf,
    raw_profiles: PathBuf,
    training_out: PathBuf,
    merged: PathBuf,
    optimised: PathBuf,
}

impl Dirs {
    fn new(paths: &Paths) -> Self {
        let root = paths.target_dir.join("pgo");
        Self {
            generate: root.join("generate"),
            raw_profiles: root.join("profiles"),
            training_out: root.join("training"),
            merged: root.join("merged.profdata"),
            optimised: root.join("use"),
        }
    }
}

/// The host's target triple and the toolchain's `llvm-profdata`, if installed (tries
/// `rustup component add llvm-tools` once when it is not).
fn toolchain() -> Result<(String, Option<PathBuf>)> {
    let version = run_captured(Command::new("rustc").arg("-vV"))?;
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .context("`rustc -vV` names no host")?
        .trim()
        .to_owned();
    let sysroot = run_captured(Command::new("rustc").args(["--print", "sysroot"]))?;
    let profdata = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(&host)
        .join("bin/llvm-profdata");
    if !profdata.is_file() {
        // rustup may be absent (a distribution's Rust): then there is no profile tool.
        let _ = run_captured(Command::new("rustup").args(["component", "add", "llvm-tools"]));
    }
    let found = profdata.is_file().then_some(profdata);
    Ok((host, found))
}

/// `cargo build --release` of [`PACKAGES`] for `host` into `target_dir` with `rustflags`;
/// returns the binaries' folder. `--target` keeps the flags off build scripts and proc
/// macros (an instrumented build script would write profiles of its own).
fn build(paths: &Paths, host: &str, target_dir: &Path, rustflags: &str) -> Result<PathBuf> {
    let mut build = paths.cargo();
    build.args(["build", "--release", "--target", host]);
    for package in PACKAGES {
        build.args(["-p", package]);
    }
    build
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", rustflags);
    header(&format!("RUSTFLAGS={rustflags} {}", describe(&build)));
    run_checked(&mut build, CARGO_GRACE)?;
    Ok(target_dir.join(host).join("release"))
}

/// The raw profiles the training run's processes wrote as they exited.
fn raw_profiles(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "profraw") {
            found.push(path);
        }
    }
    Ok(found)
}

/// Builds the profile-guided binaries: instrumented build, `train` (a bench run, given the
/// instrumented binaries' folder and an output folder), merge, optimised build. Falls back
/// to `plain` (builds the ordinary release binaries and returns their folder) when the
/// toolchain has no `llvm-profdata`.
pub fn optimised_binaries(
    paths: &Paths,
    plain: impl FnOnce() -> Result<PathBuf>,
    train: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<Binaries> {
    let (host, Some(profdata)) = toolchain()? else {
        eprintln!(
            "xtask: warning: no llvm-profdata (rustup component llvm-tools); \
             the bench runs builds without profile-guided optimisation"
        );
        let dir = plain()?;
        return Ok(Binaries {
            dir,
            note: String::new(),
        });
    };
    let dirs = Dirs::new(paths);
    let generate = format!("-Cprofile-generate={}", dirs.raw_profiles.display());
    let instrumented = build(paths, &host, &dirs.generate, &generate)?;
    // Only this run's profiles: an older build's would not match the code.
    let _ = fs::remove_dir_all(&dirs.raw_profiles);
    fs::create_dir_all(&dirs.raw_profiles)?;
    header("training the instrumented build: the quick run of every scenario");
    train(&instrumented, &dirs.training_out)?;
    // One file per binary (`%m` merges a binary's processes into one as they exit): a
    // binary whose every process was killed would be optimised as if never run.
    let profiles = raw_profiles(&dirs.raw_profiles)?;
    if profiles.len() < PACKAGES.len() {
        bail!(
            "the training run wrote {} profiles into {} for {} binaries (are its servers \
             stopped with SIGTERM?)",
            profiles.len(),
            dirs.raw_profiles.display(),
            PACKAGES.len()
        );
    }
    let mut merge = Command::new(&profdata);
    merge
        .arg("merge")
        .arg("-o")
        .arg(&dirs.merged)
        .args(&profiles);
    header(&describe(&merge));
    run_checked(&mut merge, CARGO_GRACE)?;
    // Cargo does not track the profile's content: a new profile needs a fresh build.
    let _ = fs::remove_dir_all(&dirs.optimised);
    let use_profile = format!("-Cprofile-use={}", dirs.merged.display());
    let dir = build(paths, &host, &dirs.optimised, &use_profile)?;
    Ok(Binaries {
        dir,
        note: format!(
            "profile-guided: trained on the quick run of every scenario ({} profiles)",
            profiles.len()
        ),
    })
}
