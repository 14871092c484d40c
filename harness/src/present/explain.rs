//! What `fivehundred explain SCENARIO` prints about one failure mode, for learners: what the
//! failure is and how it shows up (the scenario's `[learn]` text), the two runs side by side
//! (client, log, metric, alert, readiness), and the steps a responder would follow, each
//! pointing at this run's evidence for it. The runs themselves (the target's protections all
//! on, then the scenario's protection off) are made by `run::explain`.
//!
//! This file holds the introduction and the side-by-side comparison; the responder's steps are
//! in `diagnosis`.

mod diagnosis;

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::checks::Verdict;
use crate::present::observed;
use crate::present::report::ScenarioReport;
use crate::scenario::Scenario;
pub use diagnosis::diagnosis;

/// One of the two runs, as `run::explain::run_variants` made it: which protections, and what
/// came of it.
#[derive(Debug)]
pub struct Ran {
    /// `protections on`, `stale-cache off`.
    pub label: String,
    /// The arguments appended to the service's command for it (`--protections all`).
    pub args: String,
    /// The command that reproduces this run.
    pub command: String,
    pub report: ScenarioReport,
    /// Where its report.json / report.html were written.
    pub dir: Option<PathBuf>,
}

/// How to print: colour codes or not, and the terminal width when output is a terminal (`None`
/// stacks the two runs instead of putting them side by side).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub colour: bool,
    pub width: Option<usize>,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// What the failure is, why it becomes an error, and how it shows up: the scenario's own words.
pub fn intro(s: &Scenario, style: Style) -> String {
    let width = style.width.unwrap_or(100).clamp(40, 110);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}  {}",
        style.paint("1", &s.name),
        style.paint("1", &s.title)
    );
    let _ = writeln!(
        o,
        "cause of HTTP 500: {}{}",
        s.cause,
        s.protection
            .as_deref()
            .map(|p| format!("   protection that guards it: {p}"))
            .unwrap_or_default()
    );
    let learn = &s.learn;
    let mut section = |title: &str, text: &str| {
        if text.is_empty() {
            return;
        }
        let _ = writeln!(o, "\n{}", style.paint("1;4", title));
        for l in wrap(text, width - 2) {
            let _ = writeln!(o, "  {l}");
        }
    };
    section("What happens, and why it becomes an error", &learn.summary);
    section("What the client sees", &learn.client);
    section("What the logs say", &learn.logs);
    section("Which metric moves", &learn.metric);
    section("Which alert fires", &learn.alert);
    section("How to diagnose it", &learn.diagnose);
    o
}

/// A terminal cell: lines of plain text, each with an optional colour for the whole line.
type Cell = Vec<(String, Option<&'static str>)>;

fn plain(lines: impl IntoIterator<Item = String>) -> Cell {
    lines.into_iter().map(|l| (l, None)).collect()
}

/// The rows of the comparison for one run: (aspect, cell).
fn rows(r: &Ran) -> Vec<(&'static str, Cell)> {
    let s = &r.report;
    let obs = observed::observe(s);
    let mut rows = Vec::new();

    let failed = observed::failed_ids(s);
    let (word, code) = match s.verdict {
        Verdict::Pass => ("PASS", "32;1"),
        Verdict::Fail => ("FAIL", "31;1"),
        Verdict::Skip => ("SKIP", "33"),
    };
    let mut verdict: Cell = vec![(
        format!(
            "{word}: {}",
            if failed.is_empty() {
                format!("{} checks passed", s.checks.len())
            } else {
                format!("{} of {} checks failed", failed.len(), s.checks.len())
            }
        ),
        Some(code),
    )];
    if !failed.is_empty() {
        verdict.push((failed.join(", "), Some("31")));
    }
    if let Some(n) = &s.note {
        verdict.push((n.clone(), Some("33")));
    }
    rows.push(("verdict", verdict));

    let mut client = Vec::new();
    if obs.fault_requests > 0 {
        client.push(format!(
            "fault phase: {} answers, {} errors",
            obs.fault_requests, obs.fault_errors
        ));
        client.push(obs.fault_statuses.clone());
    }
    match obs.error_response {
        Some(r) => client.push(format!("e.g. {} {} → {}", r.method(), r.path, answer(r))),
        None => client.push("no error answer in this run".into()),
    }
    rows.push(("client", plain(client)));

    rows.push((
        "log",
        plain([match obs.error_log {
            Some(l) => log_summary(l),
            None => "no error log line in this run".into(),
        }]),
    ));

    let moved: Vec<String> = obs
        .metrics
        .iter()
        .filter(|m| m.moved() || m.expected)
        .take(3)
        .map(|m| {
            format!(
                "{} {} → {}{}",
                m.series,
                num(m.before),
                num(m.extreme),
                if m.moved() { "" } else { " (did not move)" }
            )
        })
        .collect();
    rows.push((
        "metric",
        if moved.is_empty() {
            plain(["no metric moved in the fault phase".to_string()])
        } else {
            plain(moved)
        },
    ));

    rows.push((
        "alert",
        plain(if obs.alerts.is_empty() {
            vec!["no alert notification recorded".to_string()]
        } else {
            observed::alert_spans(&obs.alerts)
                .iter()
                .map(|a| observed::describe_span(a, obs.fault_window))
                .collect()
        }),
    ));

    let rd = &obs.readiness;
    let mut ready = vec![if rd.samples == 0 {
        "no /readyz samples in the fault phase".to_string()
    } else if rd.failed == 0 {
        format!(
            "/readyz passed all {} samples in the fault phase",
            rd.samples
        )
    } else {
        format!(
            "/readyz failed {} of {} samples in the fault phase",
            rd.failed, rd.samples
        )
    }];
    if !rd.failing_components.is_empty() {
        ready.push(format!("failing: {}", rd.failing_components.join("; ")));
    }
    if rd.failed > 0 {
        ready.push(match rd.passed_again_ms {
            Some(t) => format!("passed again at {:.1}s", t / 1000.0),
            None => "did not pass again before the end".into(),
        });
    }
    rows.push(("readiness", plain(ready)));
    rows
}

/// `503 application/problem+json {"detail":...}` or `no answer (timeout)`.
fn answer(r: &crate::record::RequestRecord) -> String {
    match &r.outcome {
        crate::record::Outcome::Response { status, body, .. } => match body {
            Some(b) => format!("{status} {}", one_line(b)),
            None => status.to_string(),
        },
        crate::record::Outcome::Error { kind, message } => {
            format!("no HTTP answer ({kind:?}): {}", one_line(message))
        }
    }
}

/// `ERROR request failed 503 POST /orders: database error: ...`, from a JSON log line when it is
/// one, else the raw line.
fn log_summary(l: &crate::record::LogRecord) -> String {
    if l.json.is_none() {
        return one_line(&l.line);
    }
    let f = |k: &str| {
        l.json
            .as_ref()
            .and_then(|j| j.get(k))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .unwrap_or_default()
    };
    let mut s = format!("{} {}", f("level"), f("message"));
    for k in ["status", "method", "route"] {
        let v = f(k);
        if !v.is_empty() {
            s.push(' ');
            s.push_str(&v);
        }
    }
    let err = f("error");
    if !err.is_empty() {
        let _ = write!(s, ": {}", one_line(&err));
    }
    s
}

fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// The narrowest column worth putting side by side; below it the runs are stacked.
const MIN_COLUMN: usize = 28;
const LABEL: usize = 10;

/// The two runs side by side (or stacked when the terminal is narrow or not a terminal).
pub fn comparison(runs: &[Ran], style: Style) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n{}", style.paint("1;4", "The two runs"));
    let all: Vec<Vec<(&str, Cell)>> = runs.iter().map(rows).collect();
    let col = style
        .width
        .map(|w| w.saturating_sub(LABEL + 2 + 3) / 2)
        .filter(|c| *c >= MIN_COLUMN && runs.len() == 2);
    match col {
        Some(col) => {
            let header = |r: &Ran| format!("{} ({})", r.label, r.args);
            let mut head: Vec<Vec<String>> = runs.iter().map(|r| wrap(&header(r), col)).collect();
            let n = head.iter().map(Vec::len).max().unwrap_or(0);
            for h in &mut head {
                h.resize(n, String::new());
            }
            for (left, right) in head[0].iter().zip(&head[1]) {
                let _ = writeln!(
                    o,
                    "{:LABEL$}  {} │ {}",
                    "",
                    style.paint("1", &pad(left, col)),
                    style.paint("1", right)
                );
            }
            let _ = writeln!(
                o,
                "{:LABEL$}  {}─┼─{}",
                "",
                "─".repeat(col),
                "─".repeat(col)
            );
            for (i, (label, left)) in all[0].iter().enumerate() {
                let right = &all[1][i].1;
                let l = wrap_cell(left, col);
                let r = wrap_cell(right, col);
                for k in 0..l.len().max(r.len()) {
                    let lt = l.get(k).cloned().unwrap_or((String::new(), None));
                    let rt = r.get(k).cloned().unwrap_or((String::new(), None));
                    let _ = writeln!(
                        o,
                        "{}  {} │ {}",
                        if k == 0 {
                            style.paint("2", &pad(label, LABEL))
                        } else {
                            " ".repeat(LABEL)
                        },
                        paint_opt(style, &pad(&lt.0, col), lt.1),
                        paint_opt(style, &rt.0, rt.1),
                    );
                }
            }
        }
        None => {
            let width = style.width.unwrap_or(100).max(LABEL + 2 + 20);
            for (r, rows) in runs.iter().zip(&all) {
                let _ = writeln!(
                    o,
                    "\n{}",
                    style.paint("1", &format!("{} ({})", r.label, r.args))
                );
                for (label, cell) in rows {
                    for (k, (line, code)) in wrap_cell(cell, width - LABEL - 2).iter().enumerate() {
                        let _ = writeln!(
                            o,
                            "{}  {}",
                            if k == 0 {
                                pad(label, LABEL)
                            } else {
                                " ".repeat(LABEL)
                            },
                            paint_opt(style, line, *code)
                        );
                    }
                }
            }
        }
    }
    o
}

fn paint_opt(style: Style, s: &str, code: Option<&str>) -> String {
    match code {
        Some(c) => style.paint(c, s),
        None => s.to_string(),
    }
}

fn wrap_cell(cell: &Cell, width: usize) -> Cell {
    cell.iter()
        .flat_map(|(l, c)| wrap(l, width).into_iter().map(move |w| (w, *c)))
        .collect()
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n >= width {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

/// Word-wraps to `width` characters; a word longer than a line is cut. Hand-written: the crate
/// that does this well (`textwrap`) is not otherwise a dependency, and this needs no hyphenation.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > width {
                if len > 0 {
                    out.push(std::mem::take(&mut line));
                    len = 0;
                }
                out.push(word[..width].iter().collect());
                word.drain(..width);
            }
            if word.is_empty() {
                continue;
            }
            let extra = if len == 0 { 0 } else { 1 };
            if len + extra + word.len() > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.extend(word.iter());
            len += word.len();
        }
        if len > 0 || out.is_empty() {
            out.push(line);
        }
    }
    out
}

/// The line printed when the comparison did not show the expected contrast: with the
/// protection on the scenario should pass, with it off it should fail.
pub fn contrast_note(runs: &[Ran]) -> Option<String> {
    let [on, off] = runs else {
        return None;
    };
    match (on.report.verdict, off.report.verdict) {
        (Verdict::Pass, Verdict::Fail) => None,
        (a, b) => Some(format!(
            "note: expected the protected run to pass and the unprotected one to fail; got {} and {}",
            verdict_word(a),
            verdict_word(b)
        )),
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Skip => "skip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Phase;

    #[test]
    fn wrap_keeps_words_whole_and_cuts_only_overlong_ones() {
        assert_eq!(
            wrap("the quick brown fox jumps", 10),
            vec!["the quick", "brown fox", "jumps"]
        );
        assert_eq!(wrap("abcdefghijklmnop", 8), vec!["abcdefgh", "ijklmnop"]);
        assert_eq!(wrap("", 10), vec![""]);
        assert!(wrap("a b\nc", 10) == vec!["a b", "c"]);
        for l in wrap(&"word ".repeat(100), 23) {
            assert!(l.chars().count() <= 23, "{l}");
        }
    }

    fn ran(label: &str, protections: &str, errors: bool) -> Ran {
        use crate::record::{Outcome, Recording, RequestRecord};
        use std::collections::BTreeMap;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/db-down.toml");
        let s = crate::scenario::load(&path).unwrap();
        let mut rec = Recording::default();
        rec.phases.insert(Phase::Steady, (0.0, 1000.0));
        rec.phases.insert(Phase::Fault, (1000.0, 2000.0));
        rec.phases.insert(Phase::Recovery, (2000.0, 3000.0));
        for i in 0..30u64 {
            let at = i as f64 * 100.0;
            let fail = errors && (1000.0..2000.0).contains(&at);
            let mut headers = BTreeMap::new();
            headers.insert("x-request-id".to_string(), format!("id-{i}"));
            rec.requests.push(RequestRecord {
                seq: i,
                at_ms: at,
                route: "GET /products/{id}".into(),
                path: "/products/1".into(),
                sent: None,
                latency_ms: 3.0,
                outcome: Outcome::Response {
                    status: if fail { 503 } else { 200 },
                    headers: headers.into(),
                    body: fail.then(|| "{\"status\":503,\"detail\":\"down\"}".into()),
                },
            });
        }
        let checks = if errors {
            vec![crate::checks::CheckResult {
                name: "status".into(),
                phase: Some(Phase::Fault),
                verdict: Verdict::Fail,
                summary: "10 answer(s) outside 2xx".into(),
                evidence: Vec::new(),
            }]
        } else {
            Vec::new()
        };
        let report = ScenarioReport::from_checks(&s, checks, rec, 3.0, None);
        Ran {
            label: label.into(),
            args: format!("--protections {protections}"),
            command: format!("fivehundred run db-down --seed 1 -- --protections {protections}"),
            report,
            dir: None,
        }
    }

    #[test]
    fn comparison_puts_the_runs_side_by_side_within_the_terminal_width() {
        let runs = [
            ran("protections on", "all", false),
            ran("stale-cache off", "all,-stale-cache", true),
        ];
        let text = comparison(
            &runs,
            Style {
                colour: false,
                width: Some(120),
            },
        );
        assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
        let client = text
            .lines()
            .find(|l| l.starts_with("client"))
            .expect("a client row");
        let (left, right) = client.split_once(" │ ").expect("two columns");
        assert!(left.contains("0 errors"), "{client}");
        assert!(right.contains("10 errors"), "{client}");
        assert!(text.contains("503×10"), "{text}");
        let header = text.lines().find(|l| l.contains("protections on")).unwrap();
        assert!(header.contains(" │ stale-cache off"), "{header}");
    }

    #[test]
    fn comparison_stacks_the_runs_when_narrow_or_not_a_terminal() {
        let runs = [
            ran("protections on", "all", false),
            ran("stale-cache off", "all,-stale-cache", true),
        ];
        for width in [None, Some(60)] {
            let text = comparison(
                &runs,
                Style {
                    colour: false,
                    width,
                },
            );
            assert!(!text.contains(" │ "), "{text}");
            let on = text.find("protections on (--protections all)").unwrap();
            let off = text
                .find("stale-cache off (--protections all,-stale-cache)")
                .unwrap();
            assert!(on < off);
            assert_eq!(text.matches("\nclient").count(), 2, "{text}");
        }
    }

    #[test]
    fn diagnosis_lists_every_step_with_evidence() {
        let runs = [
            ran("protections on", "all", false),
            ran("stale-cache off", "all,-stale-cache", true),
        ];
        let s = &runs[1].report.scenario;
        let text = diagnosis(
            s,
            &runs,
            Style {
                colour: false,
                width: None,
            },
        );
        let mut at = 0;
        for step in [
            "1. reproduce",
            "2. read logs",
            "3. correlate metrics",
            "4. check dependencies",
            "5. configuration and permissions",
            "6. roll back",
            "7. verify",
        ] {
            at += text[at..]
                .find(step)
                .unwrap_or_else(|| panic!("{step}:\n{text}"));
        }
        assert_eq!(text.matches("this run:").count(), 7, "{text}");
        assert!(
            text.contains("fivehundred run db-down --seed 1 -- --protections all,-stale-cache")
        );
        // No log line was recorded for the failing request: the step says so.
        assert!(text.contains("no log line carries its id"), "{text}");
    }

    #[test]
    fn intro_prints_every_learner_field() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/db-down.toml");
        let s = crate::scenario::load(&path).unwrap();
        let text = intro(
            &s,
            Style {
                colour: false,
                width: Some(80),
            },
        );
        for title in [
            "What happens",
            "What the client sees",
            "What the logs say",
            "Which metric moves",
            "Which alert fires",
            "How to diagnose it",
        ] {
            assert!(text.contains(title), "{title} missing:\n{text}");
        }
        assert!(text.contains("cause of HTTP 500: database down"));
        assert!(!text.contains('\x1b'), "no colour when asked for none");
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    }
}
