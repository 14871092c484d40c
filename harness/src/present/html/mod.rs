//! `report.html`: the whole run as one self-contained page (inline CSS and SVG, no script, no
//! network, opens from disk), for a CI artifact or a game-day record.
//!
//! Per scenario: a timeline, "how it shows up" (the scenario's learner text next to what this run
//! captured), the checks with their evidence, and the events. The timeline is SVG drawn here, in
//! Rust, rather than by a charting script: the page then needs no JavaScript at all, so its
//! Content-Security-Policy can forbid every script and every fetch.
//!
//! Everything from the recording (bodies, headers, log lines, event details) is untrusted and is
//! escaped. The recording may hold thousands of requests: the page aggregates them into one-second
//! buckets and shows only the requests that checks chose as evidence.
//!
//! # Layout
//!
//! - this file: [`render`], the page's frame, the summary table and each scenario's section.
//! - `timeline`: the SVG timeline.
//! - `shows_up`: "how it shows up", the learner text next to what was captured.
//! - `evidence`: the checks with their evidence, and the events.
//! - `text`: escaping and formatting; `style`: the stylesheet.

mod evidence;
mod shows_up;
mod style;
mod text;
mod timeline;

use std::fmt::Write as _;

use crate::checks::Verdict;
use crate::present::observed;
use crate::present::report::{RunReport, ScenarioReport};
use evidence::{checks_list, events_table, verdict_label};
use shows_up::shows_up;
use style::STYLE;
pub use text::esc;
use timeline::timeline_svg;

/// The page's policy: nothing may be loaded from anywhere, inline style and `data:` images only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Renders the whole run.
pub fn render(report: &RunReport) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let t = report.totals();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>fivehundred: {} passed, {} failed, {} skipped</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<header>\n<h1>fivehundred report</h1>\n",
        t.passed, t.failed, t.skipped
    );
    let _ = write!(
        h,
        "<p class=\"totals\"><span class=\"badge pass\">{} passed</span> \
         <span class=\"badge fail\">{} failed</span> <span class=\"badge skip\">{} skipped</span>{}</p>\n\
         <dl class=\"meta\"><dt>seed</dt><dd><code id=\"seed\">{}</code></dd>\
         <dt>reproduce</dt><dd><code id=\"command\">{}</code></dd>\
         <dt>started</dt><dd>{}</dd><dt>tool</dt><dd>{}</dd></dl>\n</header>\n<main>\n",
        t.passed,
        t.failed,
        t.skipped,
        if report.strict && t.skipped > 0 {
            " (--strict: skips fail the run)"
        } else {
            ""
        },
        report.seed,
        esc(&report.command),
        esc(&report.started_at),
        esc(&report.tool),
    );
    if report.scenarios.len() > 1 {
        summary_table(&mut h, report);
    }
    if report.scenarios.is_empty() {
        h.push_str("<p>No scenario ran.</p>\n");
    }
    for (i, s) in report.scenarios.iter().enumerate() {
        scenario_section(&mut h, report, i, s);
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn anchor(i: usize, s: &ScenarioReport) -> String {
    let name: String = s
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("s{i}-{name}")
}

fn summary_table(h: &mut String, report: &RunReport) {
    h.push_str(
        "<section id=\"summary\"><h2>Scenarios</h2>\n<table class=\"summary\">\
         <thead><tr><th>verdict</th><th>scenario</th><th>cause</th><th>checks</th>\
         <th>failed checks</th><th>time</th></tr></thead><tbody>\n",
    );
    for (i, s) in report.scenarios.iter().enumerate() {
        let (label, class) = verdict_label(s.verdict);
        let failed = observed::failed_ids(s);
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td><span class=\"badge {class}\">{label}</span></td>\
             <td><a href=\"#{}\">{}</a></td><td>{}</td><td>{} of {} passed</td><td>{}</td>\
             <td>{:.1}s</td></tr>",
            anchor(i, s),
            esc(&s.name),
            esc(&s.cause),
            s.checks
                .iter()
                .filter(|c| c.verdict == Verdict::Pass)
                .count(),
            s.checks.len(),
            if failed.is_empty() {
                s.note.as_deref().map(esc).unwrap_or_default()
            } else {
                esc(&failed.join(", "))
            },
            s.duration_s
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn scenario_section(h: &mut String, report: &RunReport, i: usize, s: &ScenarioReport) {
    let (label, class) = verdict_label(s.verdict);
    let obs = observed::observe(s);
    let _ = write!(
        h,
        "<section class=\"scenario {class}\" id=\"{}\">\n\
         <h2><span class=\"badge {class}\">{label}</span> {} <small>{}</small></h2>\n\
         <p class=\"facts\">cause: <b>{}</b> · protection: <b>{}</b> · {:.1}s · {} · \
         seed <code>{}</code></p>\n",
        anchor(i, s),
        esc(&s.name),
        esc(&s.title),
        esc(&s.cause),
        esc(s.protection.as_deref().unwrap_or("none")),
        s.duration_s,
        esc(&s.file),
        report.seed,
    );
    if let Some(n) = &s.note {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    if !s.scenario.learn.summary.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"learn\">{}</p>",
            esc(&s.scenario.learn.summary)
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"repro\">reproduce: <code>{}</code> (this scenario alone: <code>{}</code>)</p>",
        esc(&report.command),
        esc(&single_command(report, s))
    );
    h.push_str("<h3>Timeline</h3>\n");
    timeline_svg(h, &s.recording, &anchor(i, s));
    shows_up(h, s, &obs);
    checks_list(h, &s.checks, &s.recording);
    events_table(h, &s.recording);
    h.push_str("</section>\n");
}

/// The reproduce command narrowed to one scenario: the run's command with its scenario names
/// replaced by this one.
fn single_command(report: &RunReport, s: &ScenarioReport) -> String {
    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    let mut out = Vec::new();
    let mut placed = false;
    let mut after_dashes = false;
    for w in report.command.split(' ') {
        after_dashes |= w == "--";
        if !after_dashes && names.contains(&w) {
            if !placed {
                out.push(s.name.as_str());
                placed = true;
            }
            continue;
        }
        out.push(w);
    }
    if !placed {
        // `fivehundred run` with no names ran the whole catalogue.
        if let Some(pos) = out.iter().position(|w| *w == "run") {
            out.insert(pos + 1, s.name.as_str());
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests;
