//! The report: every figure of a run, written as `report.json` (everything, for tools) and
//! `report.md` (goals, correctness checks, one section per scenario with tables and
//! charts), with the machine and date it was measured on.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    /// RFC 3339, UTC.
    pub date: String,
    /// `quick` or `full`.
    pub mode: String,
    /// `release`, or `debug` (correctness only: the figures mean nothing).
    pub build: String,
    /// How the binaries were built beyond `build` (`cargo xtask bench`'s profile-guided
    /// builds); empty for plain builds.
    pub build_note: String,
    pub machine: Machine,
    pub postgres: String,
    pub duration_s: f64,
    pub sections: Vec<Section>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    /// Read from /proc (Linux); unknown fields stay empty.
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// One scenario's results.
#[derive(Debug, Serialize)]
pub struct Section {
    pub id: String,
    pub title: String,
    /// How it was measured, and what the figures mean.
    pub notes: Vec<String>,
    pub goals: Vec<Goal>,
    pub checks: Vec<Check>,
    pub tables: Vec<Table>,
    pub charts: Vec<Chart>,
    /// The raw figures.
    pub data: serde_json::Value,
    /// Why the scenario did not run (a tool it needs is missing), when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Section {
    pub fn new(id: &str, title: &str) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            notes: Vec::new(),
            goals: Vec::new(),
            checks: Vec::new(),
            tables: Vec::new(),
            charts: Vec::new(),
            data: serde_json::Value::Null,
            skipped: None,
        }
    }

    /// A scenario that did not run: its one note is `skipped: <reason>`, with no goals and
    /// no checks (neither met nor failed).
    pub fn skipped(id: &str, title: &str, reason: &str) -> Self {
        let mut section = Self::new(id, title);
        section.notes.push(format!("skipped: {reason}"));
        section.skipped = Some(reason.to_owned());
        section
    }

    /// A goal, with an `id` stable across runs and rewordings (e.g.
    /// `reads.slow_clients_p99`) so tools can follow one goal over time in report.json.
    pub fn goal(&mut self, id: &str, goal: &str, measured: String, met: bool) {
        self.goals.push(Goal {
            id: id.to_owned(),
            goal: goal.to_owned(),
            measured,
            met,
        });
    }

    pub fn check(&mut self, name: &str, passed: bool, detail: String) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail,
        });
    }

    /// A check that passes when nothing is in `failures`: its detail is then `passed`
    /// (what was verified), otherwise every failure.
    pub fn check_failures(&mut self, name: &str, failures: &[String], passed: String) {
        let detail = if failures.is_empty() {
            passed
        } else {
            failures.join("; ")
        };
        self.check(name, failures.is_empty(), detail);
    }
}

/// A performance goal from the issue: reported, never failing the run.
#[derive(Debug, Serialize)]
pub struct Goal {
    /// Stable across runs and rewordings: `scenario.what` (see the README's table).
    pub id: String,
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// A correctness check (oversell, conservation): a failed one fails the run.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, columns: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A chart in the report, rendered to `<out_dir>/<file>` (SVG).
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// File name relative to the report directory, e.g. "flash-sale-throughput.svg".
    pub file: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic y axis (latencies spanning orders of magnitude; naive vs batched).
    pub log_y: bool,
    pub kind: ChartKind,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Grouped bars: one group per category (x axis), one bar per series in each group.
    /// A series' `points[i].0` is the index into `categories`, `.1` the value.
    Bars { categories: Vec<String> },
    /// Lines with markers over a numeric x axis (`points` are (x, y)).
    Lines,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Report {
    pub fn checks_passed(&self) -> bool {
        self.sections
            .iter()
            .flat_map(|s| &s.checks)
            .all(|c| c.passed)
    }

    /// Writes report.json, report.md and the charts into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for chart in self.sections.iter().flat_map(|s| &s.charts) {
            crate::charts::render(chart, dir).with_context(|| format!("drawing {}", chart.file))?;
        }
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        Ok(())
    }

    /// The goals of every scenario in one table: the README's key table.
    pub fn goals_table(&self) -> String {
        let mut table = Table::new("", &["scenario", "goal", "measured", "met"]);
        for section in &self.sections {
            for goal in &section.goals {
                let met = if goal.met { "yes" } else { "**no**" };
                table.row(vec![
                    section.title.clone(),
                    goal.goal.clone(),
                    goal.measured.clone(),
                    met.to_owned(),
                ]);
            }
        }
        table.markdown()
    }

    /// `" (…)"` when the binaries were built beyond what `build` says.
    fn build_note_suffix(&self) -> String {
        if self.build_note.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.build_note)
        }
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# Tessera benchmark report\n");
        let _ = writeln!(
            md,
            "{} run on {}, {} build{}, {:.0} s. Machine: {} ({} cores, {} GiB), Linux {}; {}. \
             The load generator, the ledger(s), the edge node(s), PostgreSQL and Redis all share these cores.\n",
            self.mode, self.date, self.build, self.build_note_suffix(), self.duration_s, m.cpu, m.cores, m.memory_gib, m.kernel, self.postgres
        );
        if self.build != "release" {
            let _ = writeln!(md, "**Debug build: the figures below only show that the scenarios run; the correctness checks are what counts.**\n");
        }
        let _ = writeln!(md, "## Goals\n\n{}", self.goals_table());
        let mut checks = Table::new("", &["scenario", "check", "passed", "detail"]);
        for section in &self.sections {
            for check in &section.checks {
                let passed = if check.passed { "yes" } else { "**NO**" };
                checks.row(vec![
                    section.title.clone(),
                    check.name.clone(),
                    passed.to_owned(),
                    check.detail.clone(),
                ]);
            }
        }
        let _ = writeln!(md, "## Correctness checks\n\n{}", checks.markdown());
        for section in &self.sections {
            let _ = writeln!(md, "\n## {}\n", section.title);
            for note in &section.notes {
                let _ = writeln!(md, "- {note}");
            }
            for table in &section.tables {
                let _ = writeln!(md, "\n**{}**\n\n{}", table.title, table.markdown());
            }
            for chart in &section.charts {
                let _ = writeln!(md, "\n![{}]({})", chart.title, chart.file);
            }
        }
        md
    }
}

impl Table {
    /// The rows as a Markdown table (the title is the caller's to place).
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "| {} |\n|{}\n",
            self.columns.join(" | "),
            "---|".repeat(self.columns.len())
        );
        for row in &self.rows {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        md
    }
}

/// `1234.5` → `"1,235"`: thousands separated, as the README's tables are.
pub fn count(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 {
        out.insert(0, '-');
    }
    out
}

/// Milliseconds with two decimals.
pub fn ms(value: f64) -> String {
    format!("{value:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped() {
        assert_eq!(count(0.4), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1234.5), "1,235");
        assert_eq!(count(1_000_000.0), "1,000,000");
        assert_eq!(count(-4321.0), "-4,321");
    }

    #[test]
    fn a_skipped_scenario_says_why_and_judges_nothing() {
        let section = Section::skipped("s", "Scenario", "/usr/bin/chromium is missing");
        let json = serde_json::to_value(&section).expect("serializes");
        assert_eq!(json["skipped"], "/usr/bin/chromium is missing");
        assert_eq!(json["notes"][0], "skipped: /usr/bin/chromium is missing");
        assert!(section.goals.is_empty() && section.checks.is_empty());
        let ran = serde_json::to_value(Section::new("s", "Scenario")).expect("serializes");
        assert!(ran.get("skipped").is_none(), "{ran}");
    }

    #[test]
    fn markdown_lists_goals_and_failed_checks() {
        let mut section = Section::new("s", "Scenario");
        section.goal("test.ratio", "≥ 20×", "15.7×".to_owned(), false);
        section.check("zero oversell", false, "sold 1001 of 1000".to_owned());
        let report = Report {
            date: "2026-11-22T00:00:00Z".to_owned(),
            mode: "quick".to_owned(),
            build: "release".to_owned(),
            build_note: String::new(),
            machine: Machine::describe(),
            postgres: "PostgreSQL 15".to_owned(),
            duration_s: 1.0,
            sections: vec![section],
        };
        assert!(!report.checks_passed());
        let md = report.markdown();
        assert!(md.contains("| Scenario | ≥ 20× | 15.7× | **no** |"), "{md}");
        assert!(
            md.contains("| Scenario | zero oversell | **NO** | sold 1001 of 1000 |"),
            "{md}"
        );
    }
}
