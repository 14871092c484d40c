//! What a scenario expects: of each phase's answers (status codes, per route, latency, health
//! endpoints, metrics, recovery time), of the database after the run, and of the alerts. The
//! checks read these; validation (`validate.rs`) builds them from the raw file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::humantime_serde_compat;
use crate::record::Phase;

/// The alerts a scenario expects from the lab's real Prometheus and Alertmanager.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertExpectations {
    /// Each must be notified within its deadline of the first injection, and resolved within
    /// its deadline of the last revert.
    pub expect: Vec<AlertExpect>,
    /// Alerts that may also fire during the fault (symptoms next to the cause). Any other alert
    /// firing fails the `quiet` check.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertExpect {
    pub name: String,
    #[serde(with = "humantime_serde_compat")]
    pub fires_within: Duration,
    #[serde(with = "humantime_serde_compat::option")]
    pub resolves_within: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Expectations {
    pub steady: PhaseExpect,
    pub fault: PhaseExpect,
    pub recovery: PhaseExpect,
    pub data: DataExpect,
}

impl Expectations {
    pub fn phase(&self, phase: Phase) -> &PhaseExpect {
        match phase {
            Phase::Steady => &self.steady,
            Phase::Fault => &self.fault,
            Phase::Recovery => &self.recovery,
        }
    }
}

/// Status codes expected of a set of answers (a phase, or one route in a phase).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusExpect {
    /// Every answer must match one of these (when set).
    pub allow: Option<Vec<StatusPattern>>,
    /// No answer may match any of these.
    pub forbid: Vec<StatusPattern>,
    /// At least one answer must match each of these: proof the fault had an effect.
    pub require: Vec<StatusPattern>,
}

impl StatusExpect {
    pub fn is_empty(&self) -> bool {
        self.allow.is_none() && self.forbid.is_empty() && self.require.is_empty()
    }
}

/// What must hold in one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseExpect {
    /// For every answer in the phase.
    pub status: StatusExpect,
    /// For the answers to one route (`GET /products/{id}`), on top of `status`.
    pub routes: BTreeMap<String, StatusExpect>,
    pub latency: LatencyLimits,
    pub readyz: Option<Health>,
    pub livez: Option<Health>,
    pub metrics: Vec<MetricExpect>,
    /// Recovery phase only: errors must stop within this long of the revert.
    #[serde(with = "humantime_serde_compat::option")]
    pub recover_within: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencyLimits {
    #[serde(with = "humantime_serde_compat::option")]
    pub p50: Option<Duration>,
    #[serde(with = "humantime_serde_compat::option")]
    pub p99: Option<Duration>,
    #[serde(with = "humantime_serde_compat::option")]
    pub max: Option<Duration>,
}

/// Expected state of a health endpoint in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Steady and fault phases: every sample passes. Recovery: passes again by the end.
    Pass,
    /// At least one sample in the phase fails.
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricExpect {
    /// `name` or `name{label="value",...}`; every series with that name and those labels counts.
    pub series: String,
    pub min_delta: Option<f64>,
    pub max_delta: Option<f64>,
}

/// What must hold in the database after the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataExpect {
    /// Every record the service acknowledged (the lab file's `[expect.stored]`) is stored
    /// exactly once.
    #[serde(default = "yes", alias = "acknowledged_orders")]
    pub acknowledged: bool,
    /// SQL queries returning one boolean each; every one must be true after the run, as must
    /// the lab file's `[expect] invariants`.
    #[serde(default)]
    pub invariants: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for DataExpect {
    fn default() -> Self {
        Self {
            acknowledged: true,
            invariants: Vec::new(),
        }
    }
}

/// A status pattern: `500`, `5xx`, or `none` (no HTTP answer: refused, reset, timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPattern {
    Exact(u16),
    Class(u16),
    NoResponse,
}

impl StatusPattern {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s == "none" {
            return Some(StatusPattern::NoResponse);
        }
        if let Some(d) = s.strip_suffix("xx")
            && let Ok(c) = d.parse::<u16>()
            && (1..=5).contains(&c)
        {
            return Some(StatusPattern::Class(c));
        }
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusPattern::Exact)
    }

    /// Whether an answer (`None` = no HTTP answer) matches.
    pub fn matches(self, status: Option<u16>) -> bool {
        match (self, status) {
            (StatusPattern::NoResponse, None) => true,
            (StatusPattern::Exact(e), Some(s)) => e == s,
            (StatusPattern::Class(c), Some(s)) => s / 100 == c,
            _ => false,
        }
    }
}

impl fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusPattern::Exact(s) => write!(f, "{s}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
            StatusPattern::NoResponse => f.write_str("none"),
        }
    }
}

impl Serialize for StatusPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
