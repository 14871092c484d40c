//! Suite rows: the whole catalogue as a CI job runs it. `fivehundred run` with its defaults
//! (labs side by side, the request recording summarised) against the catalogue one lab at a time
//! with every request kept, with where the time goes and how big the artifacts are; then the
//! catalogue with every protection off, where each scenario must fail.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::table::{Better, Row};
use crate::tools::workspace;

/// The wall time a CI job may spend on the catalogue (issue: "the whole catalogue in two
/// minutes on a 2-core runner").
const SUITE_GOAL_S: f64 = 120.0;
/// report.json by default, and report.html, for the whole catalogue.
const JSON_GOAL_MB: f64 = 2.0;
const HTML_GOAL_MB: f64 = 1.0;

/// One `fivehundred run` of the catalogue: how long it took and what it wrote.
struct SuiteRun {
    secs: f64,
    /// The exit code (`None`: killed by a signal).
    code: Option<i32>,
    /// Scenario name and verdict (`pass`, `fail`, `skip`), from report.json.
    verdicts: Vec<(String, String)>,
    /// Seconds per part, summed over the scenarios that ran to their end, and how many did.
    parts: Result<(BTreeMap<&'static str, f64>, usize), String>,
    json_mb: Option<f64>,
    html_mb: Option<f64>,
}

impl SuiteRun {
    fn start(program: &Path, args: &[&str]) -> Result<SuiteRun, String> {
        let reports = tempfile::tempdir().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_fivehundred"))
            .arg("run")
            .args(args)
            .arg("--target-bin")
            .arg(program)
            .arg("--report-dir")
            .arg(reports.path())
            .current_dir(workspace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run fivehundred: {e}"))?;
        let secs = started.elapsed().as_secs_f64();
        let size = |name: &str| {
            std::fs::metadata(reports.path().join(name))
                .ok()
                .map(|m| m.len() as f64 / 1e6)
        };
        let report: serde_json::Value = std::fs::read_to_string(reports.path().join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let verdicts = report["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("?").to_string(),
                    s["verdict"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect();
        Ok(SuiteRun {
            secs,
            code: out.code(),
            verdicts,
            parts: crate::phases::catalogue_parts(reports.path()),
            json_mb: size("report.json"),
            html_mb: size("report.html"),
        })
    }

    fn named(&self, verdict: &str) -> Vec<&str> {
        self.verdicts
            .iter()
            .filter(|(_, v)| v == verdict)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// `16 scenarios: 16 pass` or `… 15 fail, 1 skip (bad-config)`, and the exit code.
    fn verdict_note(&self) -> String {
        let mut parts = vec![format!("{} scenarios", self.verdicts.len())];
        for v in ["pass", "fail", "skip"] {
            let names = self.named(v);
            if names.is_empty() {
                continue;
            }
            // The few that went the unexpected way are named.
            if names.len() <= 3 && names.len() < self.verdicts.len() {
                parts.push(format!("{} {v} ({})", names.len(), names.join(", ")));
            } else {
                parts.push(format!("{} {v}", names.len()));
            }
        }
        format!(
            "{}; exit code {}",
            parts.join(", "),
            self.code
                .map_or("none (a signal)".into(), |c| c.to_string())
        )
    }
}

pub fn rows() -> Vec<Row> {
    let default = "`fivehundred run` (its defaults: labs side by side, `--record errors`), whole catalogue, wall time";
    let program = match crate::lab_rows::target_app() {
        Ok(p) => p,
        Err(e) => {
            return vec![
                Row::new("suite time", default, "s", Better::Lower, "")
                    .note(format!("target-app not built: {e}")),
            ];
        }
    };
    eprintln!("bench: the whole catalogue with its defaults (about two minutes)…");
    let ours = SuiteRun::start(&program, &[]);
    eprintln!("bench: the whole catalogue with every protection off (about two minutes)…");
    let unprotected = SuiteRun::start(&program, &["--unprotected"]);
    eprintln!(
        "bench: the whole catalogue one lab at a time, every request kept (five minutes or more)…"
    );
    let one_at_a_time = SuiteRun::start(&program, &["--jobs", "1", "--record", "all"]);
    let peer = "`--jobs 1 --record all` (one lab at a time, every request kept)";

    let mut rows = Vec::new();
    let goal = format!("≤ {SUITE_GOAL_S:.0} s, every scenario passing");
    let time = Row::new("suite time", default, "s", Better::Lower, &goal);
    let ours = match ours {
        Ok(r) => r,
        Err(e) => return vec![time.note(e)],
    };
    let mut time = time.ours(&[ours.secs]).note(ours.verdict_note());
    if let Ok((sums, n)) = &ours.parts {
        time = time.note(format!(
            "summed over {n} scenarios: {}",
            crate::phases::describe(sums)
        ));
    }
    if let Ok(peer_run) = &one_at_a_time {
        time = time
            .peer(peer, &[peer_run.secs])
            .note(format!("the peer's run: {}", peer_run.verdict_note()));
    }
    time.met = Some(ours.secs <= SUITE_GOAL_S && ours.code == Some(0));
    rows.push(time);

    // Where the time went, per part, summed over the scenarios (labs side by side: the sums
    // exceed the wall time), against the same part one lab at a time.
    match &ours.parts {
        Ok((sums, n)) => {
            let total: f64 = sums.values().sum();
            for part in crate::phases::PARTS {
                let secs = sums.get(part).copied().unwrap_or(0.0);
                let mut row = Row::new(
                    "suite time by part",
                    &format!("{part}, summed over the catalogue's {n} scenarios"),
                    "s",
                    Better::Lower,
                    "report",
                )
                .ours(&[secs])
                .note(format!(
                    "{:.0} % of the scenarios' time",
                    100.0 * secs / total.max(1e-9)
                ));
                if let Ok((peer_sums, _)) = one_at_a_time
                    .as_ref()
                    .map_err(|_| ())
                    .and_then(|r| r.parts.as_ref().map_err(|_| ()))
                {
                    row = row.peer(peer, &[peer_sums.get(part).copied().unwrap_or(0.0)]);
                }
                rows.push(row);
            }
        }
        Err(e) => rows.push(
            Row::new("suite time by part", "", "s", Better::Lower, "report")
                .note(format!("no breakdown: {e}")),
        ),
    }

    // The artifacts a CI job keeps.
    let size_row = |file: &str, mb: Option<f64>, goal: f64| {
        let mut row = Row::new(
            "report size",
            &format!("{file} for the whole catalogue, `--report-dir`, by default"),
            "MB",
            Better::Lower,
            &format!("≤ {goal:.0} MB"),
        );
        match mb {
            Some(mb) => {
                row = row.ours(&[mb]);
                let peer_mb = match file {
                    "report.json" => one_at_a_time.as_ref().ok().and_then(|r| r.json_mb),
                    _ => one_at_a_time.as_ref().ok().and_then(|r| r.html_mb),
                };
                if let Some(p) = peer_mb {
                    row = row.peer("`--record all`", &[p]);
                }
                row.met = Some(mb <= goal);
                row
            }
            None => row.note(format!("{file} was not written")),
        }
    };
    rows.push(size_row("report.json", ours.json_mb, JSON_GOAL_MB));
    rows.push(size_row("report.html", ours.html_mb, HTML_GOAL_MB));

    // A test of the tests: with its protection off, every scenario that names one must fail.
    let measure = "`fivehundred run --unprotected`, whole catalogue: scenarios that fail with their protection off";
    let row = Row::new(
        "suite unprotected",
        measure,
        "scenarios",
        Better::Higher,
        "every scenario with a protection fails",
    );
    rows.push(match unprotected {
        Ok(r) => {
            let failed = r.named("fail").len();
            let with_protection = r.verdicts.len() - r.named("skip").len();
            let mut row =
                row.ours(&[failed as f64])
                    .note(format!("{:.0} s; {}", r.secs, r.verdict_note()));
            row.met = Some(with_protection > 0 && failed == with_protection);
            row
        }
        Err(e) => row.note(e),
    });
    rows
}
