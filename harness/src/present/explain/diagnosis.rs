//! The last part of `explain`: the responder's steps (reproduce, read logs, correlate metrics,
//! check dependencies, configuration, roll back, verify), each pointing at this run's evidence
//! for it and at where report.json holds it.

use std::fmt::Write as _;

use super::{Ran, Style, answer, log_summary, num, wrap};
use crate::checks::{Evidence, Verdict};
use crate::present::observed::{self, Observed};
use crate::present::report::ScenarioReport;
use crate::scenario::Scenario;

/// The responder's steps, each pointing at this run's evidence for it. The evidence comes from
/// the run without the protection when there is one (that is where the failure is visible), else
/// from the only run.
pub fn diagnosis(scenario: &Scenario, runs: &[Ran], style: Style) -> String {
    let width = style.width.unwrap_or(100).clamp(50, 110);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n{}",
        style.paint(
            "1;4",
            "Diagnosing it, step by step, with this run's evidence"
        )
    );
    let Some(main) = runs.last() else {
        let _ = writeln!(o, "  (nothing ran, so there is no evidence to point at)");
        return o;
    };
    let protected = runs.first().filter(|_| runs.len() > 1);
    let case = Case {
        main,
        s: &main.report,
        obs: observed::observe(&main.report),
    };
    let read_logs = format!(
        "Take the request id the client got ({}) and find its log line: it carries the internal cause.",
        case.s.recording.request_ids.header
    );
    let steps: [(&str, &str, String); 7] = [
        (
            "reproduce",
            "Make it happen again on purpose, with the same seed: the same requests, the same fault.",
            case.reproduce(),
        ),
        ("read logs", &read_logs, case.read_logs()),
        (
            "correlate metrics",
            "Line the error rate up with the metrics and the alerts: what moves first is closest to the cause.",
            case.correlate_metrics(),
        ),
        (
            "check dependencies",
            "Ask the service which dependency it thinks is failing (/readyz names the component), then check that dependency itself.",
            case.check_dependencies(),
        ),
        (
            "configuration and permissions",
            "Rule out a bad config reload, a permission flip or a restart loop.",
            case.configuration(),
        ),
        (
            "roll back",
            "Undo the change that broke it (deploy, config, migration) or restore the dependency; turn the protection back on.",
            case.roll_back(protected),
        ),
        (
            "verify",
            "After the fix, watch errors return to the baseline and readiness pass again, without a restart.",
            case.verify(),
        ),
    ];
    for (i, (name, what, evidence)) in steps.iter().enumerate() {
        print_step(&mut o, i + 1, name, what, evidence, width, style);
    }
    if !scenario.learn.diagnose.is_empty() {
        let _ = writeln!(o, "\n  {}", style.paint("1", "for this failure mode"));
        for l in wrap(&scenario.learn.diagnose, width - 5) {
            let _ = writeln!(o, "     {l}");
        }
    }
    o
}

/// One numbered step: its name, what a responder does, and this run's evidence for it.
fn print_step(
    o: &mut String,
    number: usize,
    name: &str,
    what: &str,
    evidence: &str,
    width: usize,
    style: Style,
) {
    let _ = writeln!(o, "\n  {}. {}", number, style.paint("1", name));
    for l in wrap(what, width - 5) {
        let _ = writeln!(o, "     {l}");
    }
    for (k, l) in evidence.lines().enumerate() {
        for (j, w) in wrap(l, width - 13).into_iter().enumerate() {
            let _ = writeln!(
                o,
                "     {} {}",
                if k == 0 && j == 0 {
                    style.paint("36", "this run:")
                } else {
                    " ".repeat(9)
                },
                w
            );
        }
    }
}

/// The run a diagnosis points at, and what it observed: each step's evidence is a method.
struct Case<'a> {
    main: &'a Ran,
    s: &'a ScenarioReport,
    obs: Observed<'a>,
}

impl Case<'_> {
    /// Where `path` is in this run's report.json.
    fn json(&self, path: &str) -> String {
        match &self.main.dir {
            Some(d) => format!("{}/report.json {path}", d.display()),
            None => format!("report.json {path}"),
        }
    }

    /// The command that reproduces the run, and its report.
    fn reproduce(&self) -> String {
        let main = self.main;
        format!(
            "{}{}",
            main.command,
            main.dir
                .as_ref()
                .map(|d| format!("\nreport: {}", d.join("report.html").display()))
                .unwrap_or_default()
        )
    }

    /// The error answer's request id and the log line that carries it.
    fn read_logs(&self) -> String {
        match (self.obs.error_response, self.obs.error_log) {
            (Some(r), Some(l)) => {
                let id = self.s.recording.request_id(r).unwrap_or("(no request id)");
                format!(
                    "request {} → {}\n{}",
                    short_id(id),
                    log_summary(l),
                    evidence_location(self.s, id)
                        .map(|p| self.json(&p))
                        .unwrap_or_else(|| self.json("scenarios[0].recording.logs"))
                )
            }
            (None, Some(l)) => format!(
                "{}\n{}",
                log_summary(l),
                self.json("scenarios[0].recording.logs")
            ),
            (Some(r), None) => format!(
                "request {} got {}, and no log line carries its id: the log does not explain it",
                short_id(self.s.recording.request_id(r).unwrap_or("(none)")),
                answer(r)
            ),
            (None, None) => "no error answer and no error log line in this run".into(),
        }
    }

    /// The first metric that moved, against the injection, and the first alert.
    fn correlate_metrics(&self) -> String {
        let obs = &self.obs;
        let inject = obs.fault_window.map(|w| w.0);
        let mut metrics = match obs.metrics.iter().find(|m| m.moved()) {
            Some(m) => format!(
                "{} {} → {}{}{}\n{}",
                m.series,
                num(m.before),
                num(m.extreme),
                m.first_change_ms
                    .map(|t| format!(", first moved at {:.1}s", t / 1000.0))
                    .unwrap_or_default(),
                inject
                    .map(|t| format!("; the fault was injected at {:.1}s", t / 1000.0))
                    .unwrap_or_default(),
                self.json("scenarios[0].recording.metrics")
            ),
            None => {
                "no metric moved in the fault phase: the metrics do not show this failure".into()
            }
        };
        match obs.alerts.iter().find(|a| a.firing) {
            Some(a) => {
                let _ = write!(
                    metrics,
                    "\nfirst alert: {}",
                    observed::describe_alert(a, obs.fault_window)
                );
            }
            None => metrics.push_str("\nno alert fired: the responder would hear of it from users"),
        }
        metrics
    }

    /// What readiness named, else whether a dependency's error counter moved.
    fn check_dependencies(&self) -> String {
        let rd = &self.obs.readiness;
        if rd.failed > 0 {
            return format!(
                "/readyz failed {} of {} samples{}\n{}",
                rd.failed,
                rd.samples,
                if rd.failing_components.is_empty() {
                    String::new()
                } else {
                    format!(": {}", rd.failing_components.join("; "))
                },
                self.json("scenarios[0].recording.probes")
            );
        }
        let dep_errors = moved_where(&self.obs, |name, _| {
            name.contains("error") && !name.contains("http")
        });
        if dep_errors.is_empty() {
            "readiness stayed green and no dependency error counter moved: not a dependency".into()
        } else {
            format!(
                "readiness stayed green, but {} moved",
                dep_errors.join(", ")
            )
        }
    }

    /// Failed config reloads, permission errors and exits of the target.
    fn configuration(&self) -> String {
        let config = moved_where(&self.obs, |name, labels| {
            (name.contains("reload") && !labels.contains("success"))
                || labels.contains("EACCES")
                || labels.contains("EROFS")
        });
        let restarts = self
            .s
            .recording
            .events
            .iter()
            .filter(|e| e.kind == crate::record::EventKind::TargetExit)
            .filter(|e| !e.detail.contains("stopped by the lab"))
            .count();
        if config.is_empty() && restarts == 0 {
            return "no config reload failed, no EACCES/EROFS write errors, the target did not exit: not configuration or permissions here".into();
        }
        let mut t = Vec::new();
        if !config.is_empty() {
            t.push(format!("moved: {}", config.join(", ")));
        }
        if restarts > 0 {
            t.push(format!("the target exited {restarts} time(s)"));
        }
        t.join("; ")
    }

    /// When the lab reverted the fault, and what the run with the protection answered.
    fn roll_back(&self, protected: Option<&Ran>) -> String {
        let revert = self
            .s
            .recording
            .events
            .iter()
            .find(|e| e.kind == crate::record::EventKind::Revert);
        let mut t = match revert {
            Some(e) => format!(
                "the lab reverted the fault at {:.1}s ({})",
                e.at_ms / 1000.0,
                e.detail
            ),
            None => "no fault was reverted in this run (none was injected)".into(),
        };
        if let Some(p) = protected {
            let pobs = observed::observe(&p.report);
            let _ = write!(
                t,
                "\nwith {} the fault phase answered {} ({})",
                p.args,
                if pobs.fault_statuses.is_empty() {
                    "nothing"
                } else {
                    &pobs.fault_statuses
                },
                match p.report.verdict {
                    Verdict::Pass => "every check passed",
                    Verdict::Fail => "some checks failed",
                    Verdict::Skip => "skipped",
                }
            );
        }
        t
    }

    /// The recovery checks, with where each is in report.json.
    fn verify(&self) -> String {
        let s = self.s;
        let verify = ["recovery[recovery]", "readyz[recovery]", "status[recovery]"]
            .iter()
            .filter_map(|id| {
                let i = s.checks.iter().position(|c| c.id() == *id)?;
                let c = &s.checks[i];
                Some(format!(
                    "{} {}: {}  ({})",
                    match c.verdict {
                        Verdict::Pass => "✓",
                        Verdict::Fail => "✗",
                        Verdict::Skip => "-",
                    },
                    c.id(),
                    c.summary,
                    self.json(&format!("scenarios[0].checks[{i}]"))
                ))
            })
            .collect::<Vec<_>>();
        if verify.is_empty() {
            "no recovery checks ran in this run".into()
        } else {
            verify.join("\n")
        }
    }
}

/// The first 8 characters of a request id and an ellipsis: enough to search for.
fn short_id(id: &str) -> String {
    if id.chars().count() > 12 {
        format!("{}…", id.chars().take(8).collect::<String>())
    } else {
        id.to_string()
    }
}

/// The series among `names` (exact keys or bare names) that moved in the fault phase.
/// The series that moved whose metric name and labels `pick` accepts: the diagnosis knows no
/// service's metric names, only what names of a kind look like (`*error*`, `*reload*`, an
/// errno label).
fn moved_where(obs: &Observed<'_>, pick: impl Fn(&str, &str) -> bool) -> Vec<String> {
    obs.metrics
        .iter()
        .filter(|m| m.moved())
        .filter(|m| {
            let (name, labels) = m.series.split_once('{').unwrap_or((&m.series, ""));
            pick(name, labels)
        })
        .map(|m| format!("{} {} → {}", m.series, num(m.before), num(m.extreme)))
        .collect()
}

/// Where in report.json a request with this id is shown as evidence: the first failed check
/// that has it, else any check that has it.
fn evidence_location(s: &ScenarioReport, request_id: &str) -> Option<String> {
    let has = |c: &crate::checks::CheckResult| {
        c.evidence.iter().any(|e| match e {
            Evidence::Request { request, .. } => {
                s.recording.request_id(request) == Some(request_id)
            }
            _ => false,
        })
    };
    let i = s
        .checks
        .iter()
        .position(|c| c.verdict == Verdict::Fail && has(c))
        .or_else(|| s.checks.iter().position(has))?;
    Some(format!(
        "scenarios[0].checks[{i}] ({}) evidence",
        s.checks[i].id()
    ))
}
