//! Scenario 14: the storefront's first load (`storefront.*`). A ledger with one published
//! event (so the app has something to list) and one edge node serving the app at `/`;
//! `storefront/tests/first-load.mjs` opens `/` through the edge in [`LOADS_QUICK`] or
//! [`LOADS_FULL`] fresh browser contexts (Chromium through playwright-core: an empty HTTP
//! cache each), until the app is ready and the network idle, then once more in a new tab
//! of the same context: the **baseline**, a returning buyer's warm cache.
//!
//! Goals (absolute, as the issue states them): every first load transfers ≤
//! [`GOAL_FIRST_LOAD_BYTES`] (response headers and bodies, every request of the load);
//! the p50 time to `app-ready` (the app's performance mark) ≤ [`GOAL_APP_READY_P50_MS`] on
//! loopback; every repeat load transfers ≤ [`GOAL_REPEAT_SHARE`] of its first load.
//! Check: every load reached app-ready with no page error, console error or CSP violation.
//!
//! Skipped (`skipped: <reason>`, neither met nor failed) when Chromium, node or the
//! storefront's node packages are missing and the run was not started by `cargo xtask`,
//! which installs them and says so in [`BROWSER_REQUIRED_ENV`]: there a missing tool is
//! an error.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_testkit::browser::{self, BrowserError, NodeScript};

use crate::report::{count, ms, Section, Table};
use crate::scenarios::Stand;
use crate::stack::Env;
use crate::{Plan, Progress};

const ID: &str = "storefront";
const TITLE: &str = "14. The storefront's first load";
/// Fresh buyers loading `/` (each then loads it again warm).
const LOADS_QUICK: usize = 5;
const LOADS_FULL: usize = 30;
/// The script's bound: Chromium's start, plus each load's two visits and network idle
/// (about a second in a debug build; the rest is headroom for a loaded machine).
const SCRIPT_BASE_LIMIT: Duration = Duration::from_secs(60);
const SCRIPT_PER_LOAD_LIMIT: Duration = Duration::from_secs(10);
/// Goals.
const GOAL_FIRST_LOAD_BYTES: u64 = 150_000;
const GOAL_APP_READY_P50_MS: f64 = 500.0;
const GOAL_REPEAT_SHARE: f64 = 0.2;
/// Set (by xtask) when the browser tools were installed for this run: missing ones are
/// then an error, not a reason to skip.
pub const BROWSER_REQUIRED_ENV: &str = "TESSERA_BENCH_BROWSER";
/// Output lines of a failed script quoted in the check's detail (report.json has room,
/// the Markdown table does not).
const FAILURE_TAIL_LINES: usize = 20;

/// One visit of `/`, as the script prints it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct Visit {
    bytes: u64,
    requests: u64,
    network_requests: u64,
    app_ready_ms: f64,
}

/// A fresh buyer's first visit and its repeat in the same context.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct Load {
    load: usize,
    first: Visit,
    repeat: Visit,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    if let Err(missing) = browser::check_prerequisites() {
        if std::env::var_os(BROWSER_REQUIRED_ENV).is_some() {
            return Err(missing).context("the browser tools xtask installed are missing");
        }
        return Ok(Section::skipped(ID, TITLE, &missing.to_string()));
    }
    let loads = if plan.quick { LOADS_QUICK } else { LOADS_FULL };
    progress.step("storefront: starting a ledger and an edge");
    let stand = Stand::start(env, ID, 1).await?;
    let measured = measure(env, progress, &stand, loads).await;
    stand.stop().await?;
    let mut section = Section::new(ID, TITLE);
    match measured? {
        Ok(loaded) => report(&mut section, &loaded, loads),
        Err(failed) => fail(&mut section, &failed),
    }
    Ok(section)
}

/// The loads, or the script's failure (a page that errs fails the check, not the run).
async fn measure(
    env: &Env,
    progress: &Progress,
    stand: &Stand,
    loads: usize,
) -> anyhow::Result<Result<Vec<Load>, BrowserError>> {
    stand.ledger.create_event(env, "storefront", 2, 100).await?;
    let edge = stand.edges.first().context("the stand has no edge")?;
    progress.step(&format!(
        "storefront: {loads} first loads of / in fresh browser contexts"
    ));
    let script = browser::storefront_dir()
        .join("tests")
        .join("first-load.mjs");
    let limit = SCRIPT_BASE_LIMIT + SCRIPT_PER_LOAD_LIMIT * u32::try_from(loads)?;
    let ran = NodeScript::new(script)
        .env("STOREFRONT_URL", &edge.base)
        .env("LOADS", &loads.to_string())
        .limit(limit)
        .run()
        .await;
    match ran {
        Ok(output) => Ok(Ok(parse_loads(&output.stdout)?)),
        Err(failed) => Ok(Err(failed)),
    }
}

/// The JSON lines of the script's stdout (its other lines are its own progress).
fn parse_loads(stdout: &str) -> anyhow::Result<Vec<Load>> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).with_context(|| format!("a load line: {line}")))
        .collect()
}

/// The goals' figures over every load.
#[derive(Debug, Serialize)]
struct Figures {
    first_bytes_max: u64,
    first_bytes_p50: f64,
    repeat_bytes_p50: f64,
    /// The largest repeat/first ratio of one buyer.
    repeat_share_max: f64,
    first_ready_p50_ms: f64,
    first_ready_max_ms: f64,
    repeat_ready_p50_ms: f64,
}

impl Figures {
    fn of(loads: &[Load]) -> Self {
        let values = |pick: fn(&Load) -> f64| loads.iter().map(pick).collect::<Vec<f64>>();
        let first_bytes = values(|l| l.first.bytes as f64);
        let first_ready = values(|l| l.first.app_ready_ms);
        let shares = values(|l| l.repeat.bytes as f64 / (l.first.bytes.max(1)) as f64);
        Self {
            first_bytes_max: loads.iter().map(|l| l.first.bytes).max().unwrap_or(0),
            first_bytes_p50: median(&first_bytes),
            repeat_bytes_p50: median(&values(|l| l.repeat.bytes as f64)),
            repeat_share_max: shares.iter().copied().fold(0.0, f64::max),
            first_ready_p50_ms: median(&first_ready),
            first_ready_max_ms: first_ready.iter().copied().fold(0.0, f64::max),
            repeat_ready_p50_ms: median(&values(|l| l.repeat.app_ready_ms)),
        }
    }
}

/// The middle value (the mean of the two middle ones for an even count); NaN if empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn report(section: &mut Section, loads: &[Load], planned: usize) {
    section.notes.push(format!(
        "{planned} fresh browser contexts (Chromium, headless, via playwright-core) each open `/` through one edge node until the app is ready \
         (`<html data-app-ready>`; time = the `app-ready` performance mark, from navigation start) and the network is idle; then the same \
         context opens `/` in a new tab: the baseline, a returning buyer whose cache holds the immutable assets. Bytes = response headers + \
         bodies Chromium received (Playwright's `request.sizes()`), every request of the load; a cache hit transfers 0."
    ));
    let figures = Figures::of(loads);
    section.tables.push(table(loads, &figures));
    goals(section, loads, &figures);
    section.check(
        "storefront: every load reached app-ready with no page error, console error or CSP violation",
        loads.len() == planned,
        format!("{} of {planned} loads measured, each first and repeat", loads.len()),
    );
    section.data = json!({"loads": loads, "figures": figures});
}

fn table(loads: &[Load], figures: &Figures) -> Table {
    let mut table = Table::new(
        "First load and repeat load of `/` (medians over the loads)",
        &[
            "visit",
            "bytes",
            "requests",
            "from the network",
            "app-ready (ms)",
        ],
    );
    let med = |pick: fn(&Load) -> f64| median(&loads.iter().map(pick).collect::<Vec<f64>>());
    table.row(vec![
        "first (empty cache)".to_owned(),
        count(figures.first_bytes_p50),
        count(med(|l| l.first.requests as f64)),
        count(med(|l| l.first.network_requests as f64)),
        ms(figures.first_ready_p50_ms),
    ]);
    table.row(vec![
        "repeat (same context, baseline)".to_owned(),
        count(figures.repeat_bytes_p50),
        count(med(|l| l.repeat.requests as f64)),
        count(med(|l| l.repeat.network_requests as f64)),
        ms(figures.repeat_ready_p50_ms),
    ]);
    table
}

fn goals(section: &mut Section, loads: &[Load], figures: &Figures) {
    let measured = !loads.is_empty();
    section.goal(
        "storefront.first_load",
        &format!(
            "a first load transfers ≤ {} KB (every request, headers included)",
            GOAL_FIRST_LOAD_BYTES / 1000
        ),
        format!(
            "{} bytes at most (median {})",
            count(figures.first_bytes_max as f64),
            count(figures.first_bytes_p50)
        ),
        measured && figures.first_bytes_max <= GOAL_FIRST_LOAD_BYTES,
    );
    section.goal(
        "storefront.first_load_ms",
        &format!(
            "p50 time to app-ready on a first load ≤ {GOAL_APP_READY_P50_MS:.0} ms (loopback)"
        ),
        format!(
            "{} ms (max {} ms; warm repeat p50 {} ms)",
            ms(figures.first_ready_p50_ms),
            ms(figures.first_ready_max_ms),
            ms(figures.repeat_ready_p50_ms)
        ),
        measured && figures.first_ready_p50_ms <= GOAL_APP_READY_P50_MS,
    );
    section.goal(
        "storefront.repeat_load",
        &format!(
            "a repeat load (same context) transfers ≤ {:.0}% of the first load",
            GOAL_REPEAT_SHARE * 100.0
        ),
        format!(
            "{:.1}% at most (median {} of {} bytes)",
            figures.repeat_share_max * 100.0,
            count(figures.repeat_bytes_p50),
            count(figures.first_bytes_p50)
        ),
        measured && figures.repeat_share_max <= GOAL_REPEAT_SHARE,
    );
}

/// A script that failed (a page error, a console error, a CSP violation, no app-ready, a
/// timeout): the check fails with the end of its output; the whole of it goes to data.
fn fail(section: &mut Section, failed: &BrowserError) {
    let text = failed.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(FAILURE_TAIL_LINES)..].join(" / ");
    section.check(
        "storefront: every load reached app-ready with no page error, console error or CSP violation",
        false,
        tail,
    );
    section.data = json!({"failure": text});
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(first_bytes: u64, repeat_bytes: u64, ready_ms: f64) -> Load {
        let visit = |bytes, app_ready_ms| Visit {
            bytes,
            requests: 5,
            network_requests: 5,
            app_ready_ms,
        };
        Load {
            load: 1,
            first: visit(first_bytes, ready_ms),
            repeat: visit(repeat_bytes, ready_ms / 4.0),
        }
    }

    #[test]
    fn the_script_lines_parse_and_its_progress_is_skipped() {
        let stdout = "{\"load\":1,\"first\":{\"bytes\":1703,\"requests\":4,\"network_requests\":4,\"app_ready_ms\":101},\
                      \"repeat\":{\"bytes\":0,\"requests\":4,\"network_requests\":0,\"app_ready_ms\":27.2}}\n\
                      scenario first-load: passed\n";
        let loads = parse_loads(stdout).expect("parses");
        assert_eq!(loads.len(), 1);
        assert_eq!(
            (loads[0].first.bytes, loads[0].repeat.network_requests),
            (1703, 0)
        );
        assert!(
            parse_loads("{\"load\":1}\n").is_err(),
            "a truncated line is an error"
        );
    }

    #[test]
    fn figures_judge_the_worst_load_and_the_median_time() {
        let loads = [
            load(100_000, 10_000, 300.0),
            load(120_000, 30_000, 900.0),
            load(90_000, 0, 200.0),
        ];
        let figures = Figures::of(&loads);
        assert_eq!(figures.first_bytes_max, 120_000);
        assert_eq!(figures.first_bytes_p50, 100_000.0);
        assert_eq!(figures.first_ready_p50_ms, 300.0);
        assert_eq!(figures.first_ready_max_ms, 900.0);
        assert_eq!(figures.repeat_share_max, 0.25);
        let mut section = Section::new(ID, TITLE);
        goals(&mut section, &loads, &figures);
        let met: Vec<(&str, bool)> = section
            .goals
            .iter()
            .map(|g| (g.id.as_str(), g.met))
            .collect();
        assert_eq!(
            met,
            [
                ("storefront.first_load", true),
                ("storefront.first_load_ms", true),
                ("storefront.repeat_load", false),
            ]
        );
    }

    #[test]
    fn no_loads_meet_no_goal() {
        let mut section = Section::new(ID, TITLE);
        goals(&mut section, &[], &Figures::of(&[]));
        assert!(section.goals.iter().all(|g| !g.met));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
