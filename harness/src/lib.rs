//! fivehundred: injects the real causes of HTTP 500 errors into a service, drives load through
//! it, and checks that its error handling, graceful degradation and alerting respond correctly.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`run`, `explain`, `list`, `validate`, `recover`) and exit codes.
//! - [`scenario`]: scenario files, parsed then validated, with file:line:column errors.
//! - [`run`]: one scenario end to end: lab, phases, load, faults, checks.
//! - [`lab`]: the database, proxies, payments stub and target process of one run.
//! - [`target`]: the target process and its admin API client.
//! - [`faults`]: one type per fault kind, with `inject` and `revert`.
//! - [`journal`]: the on-disk fault journal and `recover`.
//! - [`gameday`]: `lab up`, `inject`, `revert`, `halt`, `status`: a lab that stays up, faults by
//!   hand with deadlines, a live dashboard, and a written record.
//! - [`sys`], [`cgroup`]: the system calls and cgroup files privileged faults use (mount
//!   namespace, another user, prlimit; memory cgroups).
//! - [`checks`]: what "responds correctly" means, evaluated on a recording.
//! - [`report`]: terminal summary, JSON journal, JUnit XML.
//! - [`digest`]: what the JSON journal keeps of the requests (errors whole, a summary per second).
//! - [`html`]: `report.html`, the self-contained page with a timeline per scenario.
//! - [`observed`]: the evidence of a run picked for a human (an error answer, a log line, the
//!   metrics that moved), shared by the HTML report and `explain`.
//! - [`explain`]: `fivehundred explain`: a failure mode for learners, protected and unprotected.
//! - [`record`]: what a run records (requests, probes, metrics, logs, events); checks and reports
//!   read only this.
//! - [`proxy`]: the TCP fault proxy placed in front of the database and each dependency.
//! - [`load`]: the open-loop load generator.
//! - [`payments`]: the payments dependency the lab serves to the target.
//! - [`monitoring`]: real Prometheus and Alertmanager for the lab, and the webhook that records
//!   alert notifications.

pub mod cgroup;
pub mod checks;
pub mod cli;
pub mod digest;
pub mod duration_serde;
pub mod explain;
pub mod faults;
pub mod gameday;
pub mod html;
pub mod install;
pub mod journal;
pub mod lab;
pub mod load;
mod load_plan;
pub mod monitoring;
pub mod observed;
pub mod payments;
pub mod proxy;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sys;
pub mod target;
