//! Schemathesis against the ledger's OpenAPI document, then against the edge.
//!
//! Schemathesis generates requests from `/openapi.json` (valid and invalid ones) and checks
//! every answer against the same document: no 5xx, statuses, content types, headers and
//! bodies as documented, invalid input refused, valid input accepted. It is installed with
//! pip, pinned, into a venv under `target/`, so a clean clone needs only Python 3.
//!
//! The edge has no document of its own: it serves a subset of the ledger's public API
//! (spin.toml's HTTP routes), so the ledger's document is run against the edge's base URL,
//! restricted to the operations those routes cover ([`edge_path_regex`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{bail_if_interrupted, describe, run_captured, run_checked, run_logged};
use crate::Paths;

/// The schemathesis release used (the CLI flags below are this version's).
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Test cases per operation and phase: the ledger has ~17 operations, the edge 6; at this
/// bound both runs together stay under about three minutes on a developer machine.
const MAX_EXAMPLES: u32 = 25;
/// Concurrent schemathesis workers: the machine also runs the ledger, the edge and
/// PostgreSQL.
const WORKERS: u32 = 2;
/// A request answered slower than this is a failure (the servers' own timeout is 10 s).
const REQUEST_TIMEOUT_SECONDS: u32 = 15;
/// Time schemathesis gets to exit after Ctrl-C.
const GRACE: Duration = Duration::from_secs(10);
/// Lines of schemathesis' output kept in the error when its summary cannot be found.
const REPORT_TAIL_LINES: usize = 80;

/// The credentials schemathesis presents: the admin token on admin operations, the demo
/// door's gate credential on `POST /v1/checkin` (`schemathesis.toml` maps them to the
/// document's security schemes).
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    pub admin: &'a str,
    pub gate: &'a str,
}

/// Runs schemathesis with every check against the ledger (operations with their
/// credentials), then against the edge's public operations; any failure is an error
/// carrying schemathesis' report.
pub fn run_schemathesis(
    paths: &Paths,
    ledger_url: &str,
    edge_url: &str,
    tokens: Tokens<'_>,
) -> Result<()> {
    let st = ensure_schemathesis(paths)?;
    let config = paths.root.join("xtask").join("schemathesis");
    let schema = format!("{}/openapi.json", ledger_url.trim_end_matches('/'));
    let spin_toml =
        fs::read_to_string(paths.root.join("spin.toml")).context("reading spin.toml")?;
    let edge_paths = edge_path_regex(&spin_toml)?;
    let runs = [
        ("ledger", ledger_url, None),
        ("edge", edge_url, Some(edge_paths.as_str())),
    ];
    for (name, base_url, include) in runs {
        bail_if_interrupted()?;
        let mut cmd = st_command(&st, &config, &schema, base_url, tokens);
        if let Some(regex) = include {
            cmd.args(["--include-path-regex", regex]);
        }
        run_one(paths, name, cmd)?;
    }
    eprintln!("xtask: schemathesis found no failure on the ledger or the edge");
    Ok(())
}

/// `target/schemathesis-venv/bin/st` at [`SCHEMATHESIS_VERSION`], installed if missing.
fn ensure_schemathesis(paths: &Paths) -> Result<PathBuf> {
    let venv = paths.target_dir.join("schemathesis-venv");
    let st = venv.join("bin").join("st");
    let wanted = format!("version {SCHEMATHESIS_VERSION}");
    let installed = |st: &Path| {
        run_captured(Command::new(st).arg("--version")).is_ok_and(|out| out.contains(&wanted))
    };
    if installed(&st) {
        return Ok(st);
    }
    let mut create = Command::new("python3");
    create.args(["-m", "venv"]).arg(&venv);
    eprintln!("\n==> {}", describe(&create));
    run_checked(&mut create, GRACE)
        .context("creating the venv (is python3 with venv installed?)")?;
    let mut pip = Command::new(venv.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}"));
    eprintln!("\n==> {}", describe(&pip));
    run_checked(&mut pip, GRACE)?;
    if !installed(&st) {
        bail!(
            "{} is not schemathesis {SCHEMATHESIS_VERSION} after pip install",
            st.display()
        );
    }
    Ok(st)
}

/// `st run` with every check, the bounds above, the credentials and the hooks. `config` is
/// `xtask/schemathesis/`: `schemathesis.toml` gives the tokens to the operations that need
/// them, from the environment (the command line is printed), and `hooks.py` models what the
/// document cannot say (fresh idempotency keys, opaque cursors; see its docstrings).
fn st_command(
    st: &Path,
    config: &Path,
    schema: &str,
    base_url: &str,
    tokens: Tokens<'_>,
) -> Command {
    let mut cmd = Command::new(st);
    cmd.arg("--config-file")
        .arg(config.join("schemathesis.toml"))
        .args(["run", schema, "--url", base_url])
        .args(["--checks", "all"])
        .arg(format!("--max-examples={MAX_EXAMPLES}"))
        .arg(format!("--workers={WORKERS}"))
        .arg(format!("--request-timeout={REQUEST_TIMEOUT_SECONDS}"))
        .env("TESSERA_ADMIN_TOKEN", tokens.admin)
        .env("TESSERA_GATE_TOKEN", tokens.gate)
        .env("SCHEMATHESIS_HOOKS", config.join("hooks.py"))
        // Plain output for the log; no usage telemetry from CI.
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false");
    cmd
}

/// Runs one `st run`, its output in `target/schemathesis/<name>.log`.
fn run_one(paths: &Paths, name: &str, mut cmd: Command) -> Result<()> {
    let dir = paths.target_dir.join("schemathesis");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join(format!("{name}.log"));
    cmd.arg("--report-dir")
        .arg(dir.join(format!("{name}-report")))
        // Its cache (`.schemathesis/`) goes where it runs: under target/, not the checkout.
        .current_dir(&dir);
    let (status, output) = run_logged(&mut cmd, &log_path, GRACE)?;
    if !status.success() {
        bail!(
            "schemathesis found failures on the {name} ({status}); full log: {}\n{}",
            log_path.display(),
            report(&output)
        );
    }
    eprintln!("{}", summary_line(&output));
    Ok(())
}

/// Schemathesis' failure report: from its `FAILURES` heading on, or the end of the output.
fn report(output: &str) -> String {
    if let Some(at) = output.find("FAILURES") {
        let start = output[..at].rfind('\n').map_or(0, |i| i + 1);
        return output[start..].to_owned();
    }
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(REPORT_TAIL_LINES)..].join("\n")
}

/// The last non-empty line (schemathesis ends with its counts: `N passed in Ts`).
fn summary_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// The public operations the edge serves: spin.toml's HTTP routes as one anchored regex
/// over OpenAPI path templates (`:id` → one segment, a trailing `/...` → anything below),
/// without the catch-all `/...` (the storefront's 404s are not in the ledger's document).
fn edge_path_regex(spin_toml: &str) -> Result<String> {
    let routes: Vec<String> = spin_toml
        .lines()
        .filter_map(|line| {
            let value = line
                .trim()
                .strip_prefix("route")?
                .trim_start()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .filter(|route| route != "/..." && route.starts_with("/v1/"))
        .collect();
    if routes.is_empty() {
        bail!("spin.toml has no /v1/ HTTP route");
    }
    let alternatives: Vec<String> = routes.iter().map(|r| route_regex(r)).collect();
    Ok(format!("^({})$", alternatives.join("|")))
}

/// One Spin route template as a regex over path templates.
fn route_regex(route: &str) -> String {
    let (body, wildcard) = match route.strip_suffix("/...") {
        Some(prefix) => (prefix, true),
        None => (route, false),
    };
    let segments: Vec<String> = body
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(_) => "[^/]+".to_owned(),
            None => segment.replace('.', r"\."),
        })
        .collect();
    let mut regex = segments.join("/");
    if wildcard {
        regex.push_str("/.+");
    }
    regex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_regex_covers_spin_toml_routes_but_not_the_catch_all() {
        let toml = "[[trigger.http]]\nroute = \"/v1/events\"\ncomponent = \"catalog\"\n\
                    [[trigger.http]]\nroute = \"/v1/shows/:show_id/availability\"\n\
                    [[trigger.http]]\nroute = \"/v1/holds/...\"\n\
                    [[trigger.http]]\nroute = \"/...\"\ncomponent = \"storefront\"\n";
        let regex = edge_path_regex(toml).expect("routes");
        assert_eq!(
            regex,
            "^(/v1/events|/v1/shows/[^/]+/availability|/v1/holds/.+)$"
        );
        assert!(edge_path_regex("route = \"/...\"").is_err());
    }

    #[test]
    fn the_repository_manifest_gives_the_public_routes() {
        let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml"))
            .expect("spin.toml");
        let regex = edge_path_regex(&toml).expect("routes");
        for route in ["/v1/events", "/v1/categories", "/v1/holds", "/v1/holds/.+"] {
            assert!(regex.contains(route), "{regex} lacks {route}");
        }
        assert!(!regex.contains("|/.+"), "{regex}");
    }

    #[test]
    fn the_report_starts_at_the_failures() {
        let out = "header\n=== FAILURES ===\n1. 500 on GET /x\n=== 3 failed ===\n";
        assert!(report(out).starts_with("=== FAILURES"));
        assert_eq!(summary_line("a\nb 3 passed\n\n"), "b 3 passed");
    }
}
