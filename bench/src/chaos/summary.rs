//! What the campaign prints and writes (`summary.json`): per fault what was injected, how
//! the clients fared (requests, retries, 5xx, the longest wait for a definitive answer)
//! and what the audit found; then the negative control.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::audit::Findings;
use super::clients::{Tally, Told};
use super::faults::Fault;
use super::Form;

/// One fault's result.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub injected: Vec<String>,
    pub tally: Tally,
    pub holds_granted: usize,
    pub tickets_granted: i64,
    pub confirmed: usize,
    pub released: usize,
    pub expired_at_confirm: u64,
    /// Of the sampled granted keys sent again to the edge after the sale, how many it shed
    /// instead of forwarding for a replay (its memory of forwarded keys is a bounded ring).
    pub edge_forgot: usize,
    pub findings: Findings,
}

impl Outcome {
    pub fn new(
        fault: Fault,
        injected: Vec<String>,
        tally: Tally,
        told: &Told,
        findings: Findings,
    ) -> Self {
        Self {
            id: fault.id(),
            injected,
            tally,
            holds_granted: told.granted.len(),
            tickets_granted: told.tickets_granted(),
            confirmed: told.confirmed.len(),
            released: told.released.len(),
            expired_at_confirm: told.expired_at_confirm,
            edge_forgot: 0,
            findings,
        }
    }

    pub fn with_edge_forgot(mut self, edge_forgot: usize) -> Self {
        self.edge_forgot = edge_forgot;
        self
    }

    fn verdict(&self) -> &'static str {
        if self.findings.passed() {
            "passed"
        } else {
            "FAILED"
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{:<26} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9.1} s  {}",
            self.id,
            self.tally.logical_requests,
            self.tally.retried,
            self.tally.count(500..=599),
            self.tally.count(500..=500),
            self.tally.transport_errors,
            self.tally.longest_answer_ms as f64 / 1000.0,
            self.verdict(),
        )
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub form: &'static str,
    pub duration_s: f64,
    pub faults_injected: usize,
    pub outcomes: Vec<Outcome>,
    pub negative_control: String,
}

impl Summary {
    pub fn new(
        form: &Form,
        outcomes: Vec<Outcome>,
        negative_control: String,
        took: Duration,
    ) -> Self {
        Self {
            form: if form.short { "short" } else { "full" },
            duration_s: took.as_secs_f64(),
            faults_injected: outcomes.iter().map(|o| o.injected.len()).sum(),
            outcomes,
            negative_control,
        }
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("summary.json");
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "chaos ({} form): {} faults injected in {} sales, {:.0} s\n\n{:<26} {:>8} {:>8} {:>6} {:>6} {:>6} {:>11}  audit\n",
            self.form, self.faults_injected, self.outcomes.len(), self.duration_s,
            "fault", "requests", "retried", "5xx", "500", "lost", "longest",
        );
        for outcome in &self.outcomes {
            out.push_str(&outcome.line());
            out.push('\n');
            for finding in &outcome.findings.0 {
                out.push_str(&format!("    finding: {finding}\n"));
            }
        }
        out.push_str("\n(requests: logical requests, each retried with its key until a definitive answer; 5xx: attempts answered 5xx, 500: of them internal errors; lost: attempts with no answer)\n");
        out.push_str(&format!("negative control: {}\n", self.negative_control));
        out
    }

    pub fn verdict(&self) -> anyhow::Result<()> {
        let failed: Vec<_> = self
            .outcomes
            .iter()
            .filter(|o| !o.findings.passed())
            .map(|o| o.id)
            .collect();
        if !failed.is_empty() {
            bail!("chaos: the audit failed after {}", failed.join(", "));
        }
        Ok(())
    }
}
