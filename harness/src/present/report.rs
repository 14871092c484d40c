//! Reports: the terminal summary, the JSON journal of the whole run (`report.json`), JUnit XML
//! (`junit.xml`, one test case per check) for CI systems, and a self-contained page
//! (`report.html`, drawn by [`crate::present::html`]) for people.

use std::io::Write;

use serde::Serialize;

use crate::checks::{CheckResult, Evidence, Verdict};
use crate::digest::{KeepRequests, RequestDigest};
use crate::record::Recording;
use crate::scenario::Scenario;

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub title: String,
    pub cause: String,
    pub protection: Option<String>,
    pub file: String,
    pub verdict: Verdict,
    /// Why the scenario did not run to completion (unsupported mechanism, steady state broken,
    /// interrupted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub duration_s: f64,
    pub checks: Vec<CheckResult>,
    pub scenario: Scenario,
    pub recording: Recording,
    /// Every request summarised per second, route and phase, when `recording.requests` holds
    /// only the errors (report.json by default; see [`crate::digest`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<RequestDigest>,
}

impl ScenarioReport {
    pub fn from_checks(
        scenario: &Scenario,
        checks: Vec<CheckResult>,
        recording: Recording,
        duration_s: f64,
        note: Option<String>,
    ) -> Self {
        let verdict = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if checks.is_empty() {
            Verdict::Skip
        } else {
            Verdict::Pass
        };
        ScenarioReport {
            name: scenario.name.clone(),
            title: scenario.title.clone(),
            cause: scenario.cause.clone(),
            protection: scenario.protection.clone(),
            file: scenario.file.display().to_string(),
            verdict,
            note,
            duration_s,
            checks,
            scenario: scenario.clone(),
            recording,
            request_digest: None,
        }
    }

    /// This report with `keep` of its requests, and their summary when not all are kept.
    fn thinned(&self, keep: KeepRequests) -> ScenarioReport {
        ScenarioReport {
            name: self.name.clone(),
            title: self.title.clone(),
            cause: self.cause.clone(),
            protection: self.protection.clone(),
            file: self.file.clone(),
            verdict: self.verdict,
            note: self.note.clone(),
            duration_s: self.duration_s,
            checks: self.checks.clone(),
            scenario: self.scenario.clone(),
            recording: crate::digest::thin(&self.recording, keep),
            request_digest: match keep {
                KeepRequests::All => self.request_digest.clone(),
                KeepRequests::Errors => Some(crate::digest::digest(&self.recording)),
            },
        }
    }

    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub tool: String,
    pub seed: u64,
    /// The command line that reproduces this run.
    pub command: String,
    pub started_at: String,
    pub strict: bool,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl RunReport {
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.scenarios {
            match s.verdict {
                Verdict::Pass => t.passed += 1,
                Verdict::Fail => t.failed += 1,
                Verdict::Skip => t.skipped += 1,
            }
        }
        t
    }

    /// 0 when every scenario passed (skips count as failures with `--strict`), else 1.
    pub fn exit_code(&self) -> i32 {
        let t = self.totals();
        if t.failed > 0 || (self.strict && t.skipped > 0) {
            1
        } else {
            0
        }
    }

    /// The JSON journal: this report with `keep` of each scenario's requests. One line: the
    /// file is for programs (`jq` pretty-prints it), and indentation made up a third of it.
    pub fn json(&self, keep: KeepRequests) -> std::io::Result<Vec<u8>> {
        let thinned = RunReport {
            tool: self.tool.clone(),
            seed: self.seed,
            command: self.command.clone(),
            started_at: self.started_at.clone(),
            strict: self.strict,
            scenarios: self.scenarios.iter().map(|s| s.thinned(keep)).collect(),
        };
        serde_json::to_vec(&thinned).map_err(std::io::Error::other)
    }

    /// JUnit XML: a test suite per scenario, a test case per check.
    pub fn junit(&self) -> std::io::Result<String> {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("fivehundred");
        for s in &self.scenarios {
            let mut suite = TestSuite::new(s.name.as_str());
            suite.add_property(quick_junit::Property::new("seed", self.seed.to_string()));
            if s.checks.is_empty() {
                let mut status = TestCaseStatus::skipped();
                if let Some(n) = &s.note {
                    status.set_message(n.as_str());
                }
                suite.add_test_case(TestCase::new("scenario", status));
            }
            for c in &s.checks {
                let status = match c.verdict {
                    Verdict::Pass => TestCaseStatus::success(),
                    Verdict::Fail => {
                        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        st.set_message(c.summary.as_str());
                        st.set_description(evidence_text(&c.evidence));
                        st
                    }
                    Verdict::Skip => {
                        let mut st = TestCaseStatus::skipped();
                        st.set_message(c.summary.as_str());
                        st
                    }
                };
                let mut case = TestCase::new(c.id(), status);
                case.set_classname(format!("fivehundred.{}", s.name));
                if c.verdict == Verdict::Pass {
                    case.set_system_out(c.summary.as_str());
                }
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().map_err(std::io::Error::other)
    }

    /// The terminal summary: each scenario, and each failed check with why in one line.
    pub fn print_summary(&self, out: &mut impl Write, colour: bool) -> std::io::Result<()> {
        let paint = |code: &str, s: &str| {
            if colour {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        writeln!(out)?;
        let width = self
            .scenarios
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(8);
        for s in &self.scenarios {
            let (label, code) = match s.verdict {
                Verdict::Pass => ("PASS", "32"),
                Verdict::Fail => ("FAIL", "31;1"),
                Verdict::Skip => ("SKIP", "33"),
            };
            let failed = s.failed_checks().count();
            let detail = match (s.verdict, &s.note) {
                (Verdict::Skip, Some(n)) => n.clone(),
                (Verdict::Fail, _) => format!("{failed} of {} checks failed", s.checks.len()),
                _ => format!("{} checks passed", s.checks.len()),
            };
            writeln!(
                out,
                "{}  {:width$}  {}  ({:.1}s)",
                paint(code, label),
                s.name,
                detail,
                s.duration_s
            )?;
            if let (Verdict::Fail, Some(n)) = (s.verdict, &s.note) {
                writeln!(out, "      {n}")?;
            }
            for c in s.failed_checks() {
                writeln!(out, "      {} {}: {}", paint("31", "✗"), c.id(), c.summary)?;
            }
        }
        let t = self.totals();
        writeln!(
            out,
            "\n{} passed, {} failed, {} skipped{}   seed {}",
            t.passed,
            t.failed,
            t.skipped,
            if self.strict && t.skipped > 0 {
                " (--strict: skips fail the run)"
            } else {
                ""
            },
            self.seed
        )?;
        writeln!(out, "reproduce: {}", self.command)?;
        Ok(())
    }
}

/// Evidence as plain text, for JUnit and terminals.
pub fn evidence_text(evidence: &[Evidence]) -> String {
    let mut s = String::new();
    for e in evidence {
        match e {
            Evidence::Request { request, logs, why } => {
                s.push_str(&format!(
                    "{why}\n  > {} {}\n",
                    request.method(),
                    request.path
                ));
                if let Some(b) = request.request_body() {
                    s.push_str(&format!("  > {b}\n"));
                }
                match &request.outcome {
                    crate::record::Outcome::Response {
                        status,
                        headers,
                        body,
                    } => {
                        s.push_str(&format!("  < {status}\n"));
                        for (k, v) in headers {
                            s.push_str(&format!("  < {k}: {v}\n"));
                        }
                        if let Some(b) = body {
                            s.push_str(&format!("  < {b}\n"));
                        }
                    }
                    crate::record::Outcome::Error { kind, message } => {
                        s.push_str(&format!("  ! no answer ({kind:?}): {message}\n"));
                    }
                }
                for l in logs {
                    s.push_str(&format!("  log: {}\n", l.line));
                }
            }
            Evidence::Metric {
                series,
                before,
                after,
            } => s.push_str(&format!("{series}: {before} → {after}\n")),
            Evidence::Probe { probe } => s.push_str(&format!(
                "/{} at {:.1}s: {}{}\n",
                probe.endpoint,
                probe.at_ms / 1000.0,
                probe
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no answer".into()),
                probe
                    .body
                    .as_deref()
                    .map(|b| format!(" {b}"))
                    .unwrap_or_default()
            )),
            Evidence::Logs { lines } => {
                for l in lines {
                    s.push_str(&format!("log: {}\n", l.line));
                }
            }
            Evidence::Note { text } => {
                s.push_str(text);
                s.push('\n');
            }
        }
    }
    s
}
