//! Scenario files: TOML read into raw structs, then validated into typed values. Nothing runs on
//! an unvalidated file, and every error points at file:line:column with a hint.
//!
//! The raw layer (`raw.rs`) keeps `toml::Spanned` on every value a human types, so a bad duration
//! or an impossible timing is reported where it was written. Fault tables are read as plain
//! tables and handed to the fault kind named by their `kind`, so adding a fault kind touches
//! `faults/` only. This file holds the validated scenario and finding scenario files;
//! `expect.rs` what a scenario expects, `validate.rs` the checks from raw to validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::Fault;
use crate::load::MixEntry;
use crate::record::Phase;
pub use crate::record::RequestIds;

mod expect;
mod raw;
mod validate;

/// A scenario file that could not be read or is invalid, located in its source (the location
/// helpers are shared with lab files, in [`crate::located`]).
pub use crate::located::{Located as ScenarioError, Source};
pub use expect::{
    AlertExpect, AlertExpectations, DataExpect, Expectations, Health, LatencyLimits, MetricExpect,
    PhaseExpect, StatusExpect, StatusPattern,
};
pub use validate::{MAX_DURATION, load, load_for, parse, parse_for};

/// A validated scenario, ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    /// The cause of HTTP 500 it reproduces, in the words of DESIGN.md's cause list.
    pub cause: String,
    /// The target-app protection this scenario exercises; with it off the scenario must fail.
    pub protection: Option<String>,
    pub learn: Learn,
    pub load: LoadSpec,
    pub phases: Phases,
    pub faults: Vec<ScheduledFault>,
    pub expect: Expectations,
    pub alerts: AlertExpectations,
    /// What the service promises of every answer, beyond each phase's status codes.
    pub contract: Contract,
    /// Where it was read from.
    pub file: PathBuf,
}

/// What the service promises of every answer, from its lab file's `[expect]` (target-app's own
/// for the built-in catalogue). A check the service does not
/// promise is skipped, with the reason, rather than failed.
#[derive(Debug, Clone, Serialize)]
pub struct Contract {
    /// Every 4xx/5xx is `application/problem+json` whose `status` is the HTTP status.
    pub problem_json: bool,
    /// Every answer carries a request id in this header, and every error has a log line with
    /// it in this field (a lab file's JSON logs and `[service.logs]` names).
    pub request_id: Option<RequestIds>,
    /// Every 503 says when to retry.
    pub retry_after: bool,
    /// What an answer acknowledges and where it must then be stored (the data-integrity check).
    pub stored: Option<crate::labfile::Stored>,
    /// SQL queries, each true after the run (the data-integrity check).
    pub invariants: Vec<String>,
    /// Without problem+json: every 4xx/5xx body is a JSON object with each of these members
    /// (a lab file's `errors = "json"` and its `error_fields`).
    pub json_errors: Option<Vec<String>>,
    /// Regular expressions no error body may match, on top of the built-in leak patterns (a lab
    /// file's `leak_patterns`).
    pub leak_patterns: Vec<String>,
}

impl Contract {
    /// What the service a lab file describes promises: its `[expect]`, and request ids when it
    /// logs JSON (a line per error that names the request).
    pub fn of(lab: &crate::labfile::LabFile) -> Contract {
        use crate::labfile::{ErrorFormat, LogFormat};
        Contract {
            problem_json: lab.expect.errors == ErrorFormat::ProblemJson,
            request_id: (lab.service.logs.format == LogFormat::Json).then(|| lab.request_ids()),
            retry_after: lab.expect.retry_after,
            stored: lab.expect.stored.clone(),
            invariants: lab.expect.invariants.clone(),
            json_errors: match &lab.expect.errors {
                ErrorFormat::Json { fields } => Some(fields.clone()),
                ErrorFormat::ProblemJson | ErrorFormat::Any => None,
            },
            leak_patterns: lab.expect.leak_patterns.clone(),
        }
    }

    /// Whether the data-integrity check has anything to check.
    pub fn checks_data(&self) -> bool {
        self.stored.is_some() || !self.invariants.is_empty()
    }
}

/// The learner's text: how this failure shows up and how to diagnose it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learn {
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub logs: String,
    #[serde(default)]
    pub metric: String,
    #[serde(default)]
    pub alert: String,
    #[serde(default)]
    pub diagnose: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSpec {
    /// Requests per second, open loop.
    pub rate: f64,
    pub mix: Vec<MixEntry>,
    /// How long the load generator waits for an answer before recording a timeout.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Phases {
    #[serde(with = "humantime_serde_compat")]
    pub steady: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub fault: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub recovery: Duration,
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.steady + self.fault + self.recovery
    }

    pub fn get(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Steady => self.steady,
            Phase::Fault => self.fault,
            Phase::Recovery => self.recovery,
        }
    }
}

/// A fault and when, within the fault phase, it is active.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledFault {
    pub fault: Fault,
    /// Offset from the start of the fault phase.
    #[serde(with = "humantime_serde_compat")]
    pub start: Duration,
    /// How long it stays; it is reverted at `start + duration` at the latest.
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
}

/// Durations are written as `250ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| e.to_string())
}

pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Serde helpers writing durations the way files spell them.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&super::format_duration(*d))
    }

    pub mod option {
        use std::time::Duration;

        pub fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.collect_str(&super::super::format_duration(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

/// Finds scenario files: a name (looked up in the catalogue directory) or a path.
pub fn resolve(spec: &str, catalogue: &Path) -> Result<PathBuf, String> {
    let as_path = Path::new(spec);
    if spec.ends_with(".toml") || spec.contains('/') {
        return if as_path.exists() {
            Ok(as_path.to_path_buf())
        } else {
            Err(format!("no scenario file at {spec}"))
        };
    }
    let p = catalogue.join(format!("{spec}.toml"));
    if p.exists() {
        Ok(p)
    } else {
        let known = catalogue_files(catalogue)
            .iter()
            .filter_map(|p| p.file_stem()?.to_str().map(String::from))
            .collect::<Vec<_>>();
        Err(format!(
            "unknown scenario `{spec}`; `fivehundred list` shows them ({})",
            known.join(", ")
        ))
    }
}

/// Every `*.toml` in the catalogue directory, sorted.
pub fn catalogue_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Counts of each phase's share of a duration map, for reports.
pub fn phase_bounds(phases: &Phases) -> BTreeMap<Phase, (Duration, Duration)> {
    let mut out = BTreeMap::new();
    let mut t = Duration::ZERO;
    for p in Phase::ALL {
        out.insert(p, (t, t + phases.get(p)));
        t += phases.get(p);
    }
    out
}

#[cfg(test)]
mod tests;
