//! The raw layer of a scenario file: what the file says, with positions. Every value a human
//! types keeps its `toml::Spanned`, so validation (`validate.rs`) reports an error where it was
//! written. Fault tables stay plain tables; the fault kind named by their `kind` reads them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{DataExpect, Learn};
use crate::load::MixEntry;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: Spanned<String>,
    pub(super) title: String,
    pub(super) cause: String,
    #[serde(default)]
    pub(super) protection: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) learn: Learn,
    pub(super) load: RawLoad,
    pub(super) phases: RawPhases,
    #[serde(default)]
    pub(super) fault: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) expect: RawExpectations,
    #[serde(default)]
    pub(super) alerts: RawAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    #[serde(default)]
    pub(super) expect: Vec<Spanned<RawAlertExpect>>,
    #[serde(default)]
    pub(super) allow: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertExpect {
    pub(super) name: Spanned<String>,
    pub(super) fires_within: Spanned<String>,
    #[serde(default)]
    pub(super) resolves_within: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub(super) rate: Spanned<f64>,
    pub(super) mix: Vec<Spanned<MixEntry>>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPhases {
    pub(super) steady: Spanned<String>,
    pub(super) fault: Spanned<String>,
    pub(super) recovery: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpectations {
    #[serde(default)]
    pub(super) steady: RawPhaseExpect,
    #[serde(default)]
    pub(super) fault: RawPhaseExpect,
    #[serde(default)]
    pub(super) recovery: RawPhaseExpect,
    #[serde(default)]
    pub(super) data: DataExpect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatusExpect {
    #[serde(default)]
    pub(super) allow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) forbid: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) require: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPhaseExpect {
    #[serde(default)]
    pub(super) allow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) forbid: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) require: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) routes: BTreeMap<Spanned<String>, RawStatusExpect>,
    #[serde(default)]
    pub(super) latency: Option<RawLatency>,
    #[serde(default)]
    pub(super) readyz: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) livez: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) metrics: Vec<Spanned<RawMetric>>,
    #[serde(default)]
    pub(super) recover_within: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLatency {
    #[serde(default)]
    pub(super) p50: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) p99: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetric {
    pub(super) series: Spanned<String>,
    #[serde(default)]
    pub(super) min_delta: Option<f64>,
    #[serde(default)]
    pub(super) max_delta: Option<f64>,
}
