//! fivehundred: injects the real causes of HTTP 500 errors into a service, drives load through
//! it, and checks that its error handling, graceful degradation and alerting respond correctly.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`run`, `explain`, `list`, `validate`, `recover`) and exit codes.
//! - [`scenario`]: scenario files, parsed then validated, with file:line:column errors.
//! - [`labfile`]: lab files (`fivehundred.toml`): the service under test, its dependencies,
//!   expectations and requests; starting a lab-file service; `fivehundred init`.
//! - [`located`]: file:line:column errors shared by scenario and lab files.
//! - [`run`]: one scenario end to end: lab, phases, load, faults, checks; a suite of them; the
//!   two runs `fivehundred explain` compares.
//! - [`lab`]: the database, proxies, HTTP stubs and service of one run, started from a lab file.
//! - [`target`]: the target process and its admin API client.
//! - [`faults`]: one type per fault kind implementing [`faults::FaultKind`], one list of kinds,
//!   and [`faults::Injector`], the one protocol (journal, inject, record, revert) every path uses.
//! - [`labfile`], [`catalogue`]: lab files describing any service, and the generic catalogue of
//!   causes a lab file makes possible.
//! - [`toxiproxy`]: Toxiproxy's HTTP API over the fault proxy (`fivehundred proxy`).
//! - [`docker`]: the container backend's mechanisms (engine, images, containers, their faults).
//! - [`verdict`], [`progress`], [`exit`]: leaf vocabularies (a check's result, live counters,
//!   exit codes); `layers` (a test) keeps the modules free of import circles.
//! - [`journal`]: the on-disk fault journal and `recover`; [`statedir`], where it lives.
//! - [`gameday`]: `lab up`, `inject`, `revert`, `halt`, `status`: a lab that stays up, faults by
//!   hand with deadlines, a live dashboard, and a written record.
//! - [`safefs`]: file operations as root that no symlink can redirect (descriptors, `openat`
//!   with `O_NOFOLLOW`), for everything done inside a directory someone else owns.
//! - [`sys`], [`cgroup`]: the system calls and cgroup files privileged faults use (mount
//!   namespace, another user, prlimit; memory cgroups).
//! - [`checks`]: what "responds correctly" means, evaluated on a recording.
//! - [`leaks`]: the table of patterns for what an error body must never show.
//! - [`present`]: what a run shows people: the report (terminal summary, JSON journal, JUnit
//!   XML), `report.html`, the evidence picked for a human, and the text of `fivehundred explain`
//!   (a failure mode for learners, protected and unprotected; its runs are in [`run`]).
//! - [`digest`]: what the JSON journal keeps of the requests (errors whole, a summary per second).
//! - [`textfile`]: reading a user's file: regular files only, size-capped, UTF-8.
//! - [`record`]: what a run records (requests, probes, metrics, logs, events); checks and reports
//!   read only this.
//! - [`docker`]: the container backend's mechanisms: the engine, labelled containers and
//!   networks, images built from Debian's packages, container faults.
//! - [`proxy`]: the TCP fault proxy placed in front of the database and each dependency.
//! - [`toxiproxy`]: Toxiproxy's HTTP API over the fault proxy (`fivehundred proxy`).
//! - [`load`]: the open-loop load generator.
//! - [`stub`]: the HTTP dependencies the lab serves from canned answers, with their faults.
//! - [`monitoring`]: real Prometheus and Alertmanager for the lab, and the webhook that records
//!   alert notifications.

pub mod artifacts;
pub mod catalogue;
pub mod cgroup;
pub mod checks;
pub mod cli;
pub mod digest;
pub mod docker;
pub mod duration_serde;
pub mod exit;
pub mod faults;
pub mod gameday;
pub mod install;
pub mod journal;
pub mod lab;
pub mod labfile;
#[cfg(test)]
mod layers;
pub mod leaks;
pub mod load;
mod load_plan;
pub mod located;
pub mod monitoring;
pub mod present;
pub mod privileges;
pub mod progress;
pub mod proxy;
pub mod record;
pub mod run;
pub mod safefs;
pub mod scenario;
pub mod statedir;
pub mod stub;
pub mod sys;
pub mod target;
pub mod textfile;
pub mod toxiproxy;
pub mod verdict;
