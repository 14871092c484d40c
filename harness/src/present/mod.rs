//! What a run shows people: everything that turns a finished run's report into something to read.
//!
//! - [`report`]: the report's data (`ScenarioReport`, `RunReport`) and its plain forms: the
//!   terminal summary, the JSON journal (`report.json`), JUnit XML (`junit.xml`).
//! - [`observed`]: the evidence picked for a human (an error answer, a log line, the metrics that
//!   moved, the alerts, readiness), picked once so the page and `explain` show the same.
//! - [`html`]: `report.html`, the self-contained page with a timeline per scenario.
//! - [`explain`]: the text `fivehundred explain` prints: the learner's introduction, the two runs
//!   side by side, the responder's steps with this run's evidence. The runs themselves are made
//!   by `run::explain`.
//!
//! They are one folder because they read the same things (a report, its recording, the
//! scenario's learner text) and change together when what a run shows changes. They only read:
//! nothing here starts a lab, runs a scenario or parses the command line, so this folder never
//! names `run`, `gameday` or `cli`, and sits below them (`layers` checks that).
//! Modules here name each other by their full path (`crate::present::report`), which is what
//! the `layers` test reads.

pub mod explain;
pub mod html;
pub mod observed;
pub mod report;
