//! Scenario files: TOML read into raw structs, then validated into typed values. Nothing runs on
//! an unvalidated file, and every error points at file:line:column with a hint.
//!
//! The raw layer keeps `toml::Spanned` on every value a human types, so a bad duration or an
//! impossible timing is reported where it was written. Fault tables are read as plain tables and
//! handed to the fault kind named by their `kind`, so adding a fault kind touches `faults/` only.

// A `ScenarioError` carries the source line it points at, which makes it large; it is built once
// per invalid file and never on a hot path, so boxing it would only cost readability.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::faults::Fault;
use crate::load::{LoadPlan, MixEntry};
use crate::record::Phase;

/// A scenario file that could not be read or is invalid, located in its source (the location
/// helpers are shared with lab files, in [`crate::located`]).
pub use crate::located::{Located as ScenarioError, Source};

// ---------------------------------------------------------------------------------------------
// The raw layer: what a file says, with positions.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    title: String,
    cause: String,
    #[serde(default)]
    protection: Option<Spanned<String>>,
    #[serde(default)]
    learn: Learn,
    load: RawLoad,
    phases: RawPhases,
    #[serde(default)]
    fault: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    expect: RawExpectations,
    #[serde(default)]
    alerts: RawAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default)]
    expect: Vec<Spanned<RawAlertExpect>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertExpect {
    name: Spanned<String>,
    fires_within: Spanned<String>,
    #[serde(default)]
    resolves_within: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    rate: Spanned<f64>,
    mix: Vec<Spanned<MixEntry>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhases {
    steady: Spanned<String>,
    fault: Spanned<String>,
    recovery: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectations {
    #[serde(default)]
    steady: RawPhaseExpect,
    #[serde(default)]
    fault: RawPhaseExpect,
    #[serde(default)]
    recovery: RawPhaseExpect,
    #[serde(default)]
    data: DataExpect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusExpect {
    #[serde(default)]
    allow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    forbid: Vec<Spanned<String>>,
    #[serde(default)]
    require: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhaseExpect {
    #[serde(default)]
    allow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    forbid: Vec<Spanned<String>>,
    #[serde(default)]
    require: Vec<Spanned<String>>,
    #[serde(default)]
    routes: BTreeMap<Spanned<String>, RawStatusExpect>,
    #[serde(default)]
    latency: Option<RawLatency>,
    #[serde(default)]
    readyz: Option<Spanned<String>>,
    #[serde(default)]
    livez: Option<Spanned<String>>,
    #[serde(default)]
    metrics: Vec<Spanned<RawMetric>>,
    #[serde(default)]
    recover_within: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    #[serde(default)]
    p50: Option<Spanned<String>>,
    #[serde(default)]
    p99: Option<Spanned<String>>,
    #[serde(default)]
    max: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    series: Spanned<String>,
    #[serde(default)]
    min_delta: Option<f64>,
    #[serde(default)]
    max_delta: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// The validated layer.

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

/// What the service promises of every answer: target-app's contract for the catalogue's files,
/// the lab file's `[expect]` for a service described by one. A check the service does not
/// promise is skipped, with the reason, rather than failed.
#[derive(Debug, Clone, Serialize)]
pub struct Contract {
    /// Every 4xx/5xx is `application/problem+json` whose `status` is the HTTP status.
    pub problem_json: bool,
    /// Every answer carries `x-request-id`, and every error has a log line with it.
    pub request_id: bool,
    /// Every 503 says when to retry.
    pub retry_after: bool,
    /// The run's database holds every acknowledged order exactly once (target-app's orders).
    pub data_integrity: bool,
}

impl Default for Contract {
    fn default() -> Self {
        Contract {
            problem_json: true,
            request_id: true,
            retry_after: true,
            data_integrity: true,
        }
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
    /// Every order acknowledged with 201 exists exactly once.
    #[serde(default = "yes")]
    pub acknowledged_orders: bool,
    /// SQL queries returning one boolean each; every one must be true after the run.
    #[serde(default = "default_invariants")]
    pub invariants: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_invariants() -> Vec<String> {
    vec![
        "SELECT NOT EXISTS (SELECT 1 FROM products WHERE stock < 0)".into(),
        "SELECT NOT EXISTS (SELECT idempotency_key FROM orders WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING count(*) > 1)".into(),
    ]
}

impl Default for DataExpect {
    fn default() -> Self {
        Self {
            acknowledged_orders: true,
            invariants: default_invariants(),
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

// ---------------------------------------------------------------------------------------------
// Loading and validation.

/// Reads and validates one scenario file (a regular file of at most a few MiB).
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = crate::textfile::read_capped(path).map_err(|e| ScenarioError::refused(path, &e))?;
    parse(path, &text)
}

/// The longest duration a scenario may write anywhere: longer than any phase, far below what
/// would overflow when added to an instant or to another duration at run time.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Validates scenario text; `path` is used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let src = Source { file: path, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let hint = hint_for_toml_error(&message);
        src.error(e.span(), message, hint)
    })?;
    validate(&src, raw)
}

fn hint_for_toml_error(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("check the spelling; the expected keys are listed above".into())
    } else if message.starts_with("missing field") {
        Some("every scenario needs name, title, cause, [load] and [phases]".into())
    } else if message.contains("invalid type") {
        Some("durations are strings such as \"5s\" or \"250ms\"; rates are numbers".into())
    } else {
        None
    }
}

/// A duration as written, at most [`MAX_DURATION`].
fn duration(src: &Source, value: &Spanned<String>) -> Result<Duration, ScenarioError> {
    bounded_duration(value.get_ref())
        .map_err(|(message, hint)| src.error(Some(value.span()), message, Some(hint)))
}

/// Parses a duration and bounds it; the error is (message, hint).
fn bounded_duration(text: &str) -> Result<Duration, (String, String)> {
    let d = parse_duration(text).map_err(|e| {
        (
            format!("`{text}` is not a duration: {e}"),
            "write durations like \"250ms\", \"5s\" or \"2m\"".to_string(),
        )
    })?;
    if d > MAX_DURATION {
        return Err((
            format!("`{text}` is too long: at most 1h"),
            "every duration in a scenario is at most 1h".to_string(),
        ));
    }
    Ok(d)
}

fn statuses(src: &Source, values: &[Spanned<String>]) -> Result<Vec<StatusPattern>, ScenarioError> {
    values
        .iter()
        .map(|v| {
            StatusPattern::parse(v.get_ref()).ok_or_else(|| {
                src.error(
                    Some(v.span()),
                    format!("`{}` is not a status pattern", v.get_ref()),
                    Some("use an exact status (\"503\"), a class (\"5xx\"), or \"none\" for no answer at all".into()),
                )
            })
        })
        .collect()
}

fn status_expect(
    src: &Source,
    allow: &Option<Vec<Spanned<String>>>,
    forbid: &[Spanned<String>],
    require: &[Spanned<String>],
) -> Result<StatusExpect, ScenarioError> {
    Ok(StatusExpect {
        allow: allow.as_ref().map(|a| statuses(src, a)).transpose()?,
        forbid: statuses(src, forbid)?,
        require: statuses(src, require)?,
    })
}

fn health(src: &Source, v: &Option<Spanned<String>>) -> Result<Option<Health>, ScenarioError> {
    match v {
        None => Ok(None),
        Some(v) => match v.get_ref().as_str() {
            "pass" => Ok(Some(Health::Pass)),
            "fail" => Ok(Some(Health::Fail)),
            other => Err(src.error(
                Some(v.span()),
                format!("`{other}` is not a health expectation"),
                Some("use \"pass\" or \"fail\"".into()),
            )),
        },
    }
}

fn phase_expect(
    src: &Source,
    raw: RawPhaseExpect,
    phase: Phase,
    mix: &[MixEntry],
) -> Result<PhaseExpect, ScenarioError> {
    let status = status_expect(src, &raw.allow, &raw.forbid, &raw.require)?;
    let mut routes = BTreeMap::new();
    for (route, r) in &raw.routes {
        if !mix.iter().any(|m| &m.request == route.get_ref()) {
            let known: Vec<&str> = mix.iter().map(|m| m.request.as_str()).collect();
            return Err(src.error(
                Some(route.span()),
                format!(
                    "`{}` is not a request of this scenario's load",
                    route.get_ref()
                ),
                Some(format!("the load sends: {}", known.join(", "))),
            ));
        }
        routes.insert(
            route.get_ref().clone(),
            status_expect(src, &r.allow, &r.forbid, &r.require)?,
        );
    }
    let latency = match raw.latency {
        None => LatencyLimits::default(),
        Some(l) => LatencyLimits {
            p50: l.p50.as_ref().map(|d| duration(src, d)).transpose()?,
            p99: l.p99.as_ref().map(|d| duration(src, d)).transpose()?,
            max: l.max.as_ref().map(|d| duration(src, d)).transpose()?,
        },
    };
    let mut metrics = Vec::new();
    for m in raw.metrics {
        let span = m.span();
        let m = m.into_inner();
        if m.min_delta.is_none() && m.max_delta.is_none() {
            return Err(src.error(
                Some(span),
                format!(
                    "metric expectation on `{}` says nothing",
                    m.series.get_ref()
                ),
                Some("add min_delta or max_delta".into()),
            ));
        }
        if crate::record::parse_series_selector(m.series.get_ref()).is_none() {
            return Err(src.error(
                Some(m.series.span()),
                format!("`{}` is not a series selector", m.series.get_ref()),
                Some("write `name` or `name{label=\"value\"}`".into()),
            ));
        }
        metrics.push(MetricExpect {
            series: m.series.into_inner(),
            min_delta: m.min_delta,
            max_delta: m.max_delta,
        });
    }
    let recover_within = match &raw.recover_within {
        Some(d) if phase != Phase::Recovery => {
            return Err(src.error(
                Some(d.span()),
                "recover_within only applies to the recovery phase",
                Some("move it to [expect.recovery]".into()),
            ));
        }
        Some(d) => Some(duration(src, d)?),
        None => None,
    };
    Ok(PhaseExpect {
        status,
        routes,
        latency,
        readyz: health(src, &raw.readyz)?,
        livez: health(src, &raw.livez)?,
        metrics,
        recover_within,
    })
}

fn validate(src: &Source, raw: RawScenario) -> Result<Scenario, ScenarioError> {
    let name = raw.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(src.error(
            Some(raw.name.span()),
            format!("`{name}` is not a scenario name"),
            Some("use lower-case letters, digits and dashes, like the file name".into()),
        ));
    }
    if let Some(stem) = src.file.file_stem().and_then(|s| s.to_str())
        && stem != name
        && src.file.extension().is_some_and(|e| e == "toml")
    {
        return Err(src.error(
            Some(raw.name.span()),
            format!("the scenario is named `{name}` but its file is `{stem}.toml`"),
            Some("name the file after the scenario so `fivehundred run NAME` finds it".into()),
        ));
    }
    if let Some(p) = &raw.protection
        && !crate::target::PROTECTIONS.contains(&p.get_ref().as_str())
    {
        return Err(src.error(
            Some(p.span()),
            format!("unknown protection `{}`", p.get_ref()),
            Some(format!(
                "target-app's protections are: {}",
                crate::target::PROTECTIONS.join(", ")
            )),
        ));
    }

    // Load.
    let rate = *raw.load.rate.get_ref();
    if !(rate > 0.0 && rate <= 5000.0) {
        return Err(src.error(
            Some(raw.load.rate.span()),
            format!("rate {rate} is out of range"),
            Some("the rate is in requests per second, between 0 and 5000".into()),
        ));
    }
    if raw.load.mix.is_empty() {
        return Err(src.error(
            Some(raw.load.rate.span()),
            "the load has no requests",
            Some("add mix = [{ weight = 1, request = \"GET /products\" }]".into()),
        ));
    }
    let mut mix = Vec::new();
    for m in &raw.load.mix {
        if m.get_ref().weight == 0 {
            return Err(src.error(
                Some(m.span()),
                "a request with weight 0 is never sent",
                Some("remove it, or give it a positive weight".into()),
            ));
        }
        // The load generator compiles each entry (request line, parameters, body); whatever
        // it refuses is reported here, before anything runs.
        let mut one = LoadPlan::new("http://127.0.0.1:1", rate, vec![m.get_ref().clone()]);
        one.requests = Some(1);
        if let Err(e) = one.preview(1) {
            return Err(src.error(
                Some(m.span()),
                e.to_string(),
                Some(format!(
                    "target-app's requests are: {}",
                    crate::load::TARGET_APP_ROUTES.join(", ")
                )),
            ));
        }
        mix.push(m.get_ref().clone());
    }
    let timeout = match &raw.load.timeout {
        Some(t) => {
            let d = duration(src, t)?;
            if d.is_zero() || d > MAX_LOAD_TIMEOUT {
                return Err(src.error(
                    Some(t.span()),
                    format!("load timeout {} is out of range", t.get_ref()),
                    Some("the load's timeout is more than 0 and at most 5m".into()),
                ));
            }
            d
        }
        None => Duration::from_secs(5),
    };

    // Phases.
    let steady = duration(src, &raw.phases.steady)?;
    let fault_len = duration(src, &raw.phases.fault)?;
    let recovery = duration(src, &raw.phases.recovery)?;
    for (d, v) in [
        (steady, &raw.phases.steady),
        (fault_len, &raw.phases.fault),
        (recovery, &raw.phases.recovery),
    ] {
        if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
            return Err(src.error(
                Some(v.span()),
                format!("phase length {} is out of range", v.get_ref()),
                Some("each phase lasts between 1s and 1h".into()),
            ));
        }
    }
    let phases = Phases {
        steady,
        fault: fault_len,
        recovery,
    };

    // Faults.
    let mut faults = Vec::new();
    for table in &raw.fault {
        let mut f = scheduled_fault(src, table, fault_len)?;
        f.fault.use_load_mix(&mix);
        faults.push(f);
    }

    // Expectations.
    let expect = Expectations {
        steady: phase_expect(src, raw.expect.steady, Phase::Steady, &mix)?,
        fault: phase_expect(src, raw.expect.fault, Phase::Fault, &mix)?,
        recovery: phase_expect(src, raw.expect.recovery, Phase::Recovery, &mix)?,
        data: raw.expect.data,
    };

    let alerts = alert_expectations(src, raw.alerts)?;

    Ok(Scenario {
        name: raw.name.into_inner(),
        title: raw.title,
        cause: raw.cause,
        protection: raw.protection.map(Spanned::into_inner),
        learn: raw.learn,
        load: LoadSpec { rate, mix, timeout },
        phases,
        faults,
        expect,
        alerts,
        contract: Contract::default(),
        file: src.file.to_path_buf(),
    })
}

/// The longest a load request may wait for its answer.
const MAX_LOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Alert names are checked against the rules the lab will run, so a typo is caught before
/// anything runs instead of showing up as an alert that "never fired".
fn alert_expectations(src: &Source, raw: RawAlerts) -> Result<AlertExpectations, ScenarioError> {
    let known: Option<Vec<String>> = std::fs::read_to_string(crate::monitoring::alert_rules_file())
        .ok()
        .and_then(|text| crate::monitoring::rule_timings(&text).ok())
        .map(|t| t.into_iter().map(|t| t.alert).collect());
    let check = |name: &Spanned<String>| -> Result<(), ScenarioError> {
        match &known {
            Some(k) if !k.contains(name.get_ref()) => Err(src.error(
                Some(name.span()),
                format!("no alert rule is named `{}`", name.get_ref()),
                Some(format!("the rules define: {}", k.join(", "))),
            )),
            _ => Ok(()),
        }
    };
    let mut out = AlertExpectations::default();
    for e in raw.expect {
        let e = e.into_inner();
        check(&e.name)?;
        out.expect.push(AlertExpect {
            name: e.name.get_ref().clone(),
            fires_within: duration(src, &e.fires_within)?,
            resolves_within: e
                .resolves_within
                .as_ref()
                .map(|d| duration(src, d))
                .transpose()?,
        });
    }
    for a in raw.allow {
        check(&a)?;
        out.allow.push(a.into_inner());
    }
    Ok(out)
}

fn scheduled_fault(
    src: &Source,
    table: &Spanned<toml::Table>,
    fault_len: Duration,
) -> Result<ScheduledFault, ScenarioError> {
    let at = table.span().start;
    let mut t = table.get_ref().clone();
    let timing = |t: &mut toml::Table, key: &str| -> Result<Option<Duration>, ScenarioError> {
        match t.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => bounded_duration(&s)
                .map(Some)
                .map_err(|(message, hint)| src.error(src.key_span(at, key), message, Some(hint))),
            Some(_) => Err(src.error(
                src.key_span(at, key),
                format!("`{key}` must be a duration string such as \"2s\""),
                None,
            )),
        }
    };
    let start = timing(&mut t, "start")?.unwrap_or(Duration::ZERO);
    let duration = timing(&mut t, "duration")?.unwrap_or(fault_len.saturating_sub(start));
    // Both are at most an hour, so the sum cannot overflow; checked all the same, because a
    // panic here is what a hostile file would aim for.
    let end = start.checked_add(duration).unwrap_or(Duration::MAX);
    if end > fault_len {
        return Err(src.error(
            src.key_span(at, "duration")
                .or_else(|| src.key_span(at, "start"))
                .or(Some(table.span())),
            format!(
                "the fault would run from {} to {}, past the end of the {} fault phase",
                format_duration(start),
                format_duration(end),
                format_duration(fault_len)
            ),
            Some("shorten it, start it earlier, or lengthen [phases] fault".into()),
        ));
    }
    if duration.is_zero() {
        return Err(src.error(
            Some(table.span()),
            "the fault would never be active",
            Some("give it a positive duration".into()),
        ));
    }
    let fault = Fault::from_table(t).map_err(|e| {
        let span = e
            .key
            .as_deref()
            .and_then(|k| src.key_span(at, k))
            .or(Some(table.span()));
        src.error(span, e.message, e.hint)
    })?;
    Ok(ScheduledFault {
        fault,
        start,
        duration,
    })
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
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "demo"
title = "A demo"
cause = "handler panic"

[load]
rate = 20
mix = [{ weight = 1, request = "GET /products" }]

[phases]
steady = "2s"
fault = "3s"
recovery = "2s"

[[fault]]
kind = "failpoint"
name = "list_products"
action = "panic"

[expect.fault]
allow = ["2xx", "500"]
require = ["500"]
"#;

    fn err(text: &str) -> ScenarioError {
        parse(Path::new("demo.toml"), text).unwrap_err()
    }

    #[test]
    fn an_invalid_input_fault_varies_the_load_unless_it_names_its_requests() {
        let with = |fault: &str| {
            let text = GOOD.replace(
                "kind = \"failpoint\"\nname = \"list_products\"\naction = \"panic\"",
                fault,
            );
            let s = parse(Path::new("demo.toml"), &text).unwrap();
            match &s.faults[0].fault {
                Fault::InvalidInput(f) => (f.requests.clone(), s.load.mix),
                other => panic!("{other:?}"),
            }
        };
        let (requests, mix) = with("kind = \"invalid-input\"");
        assert_eq!(requests, Some(mix));
        let own = "kind = \"invalid-input\"\nrequests = [{ weight = 1, request = \"GET /products/{id}\" }]";
        let (requests, _) = with(own);
        assert_eq!(requests.unwrap()[0].request, "GET /products/{id}");
    }

    #[test]
    fn a_good_file_validates() {
        let s = parse(Path::new("demo.toml"), GOOD).unwrap();
        assert_eq!(s.faults.len(), 1);
        assert_eq!(s.faults[0].duration, Duration::from_secs(3));
        assert_eq!(
            s.expect.fault.status.require,
            vec![StatusPattern::Exact(500)]
        );
    }

    #[test]
    fn an_unknown_key_is_reported_at_its_line_and_column() {
        let e = err(&GOOD.replace("rate = 20", "rate = 20\nrat = 3"));
        assert_eq!((e.line, e.column), (Some(8), Some(1)), "{e}");
        assert!(e.message.contains("unknown field `rat`"), "{e}");
    }

    #[test]
    fn a_bad_duration_points_at_the_value() {
        let e = err(&GOOD.replace("fault = \"3s\"", "fault = \"3 parsecs\""));
        assert_eq!(e.line, Some(12), "{e}");
        assert_eq!(e.column, Some(9), "{e}");
        assert!(e.to_string().contains("hint"), "{e}");
    }

    #[test]
    fn an_unknown_fault_kind_is_reported_at_the_kind_key() {
        let e = err(&GOOD.replace("kind = \"failpoint\"", "kind = \"meteor\""));
        assert_eq!(e.line, Some(16), "{e}");
        assert!(e.message.contains("meteor"), "{e}");
    }

    #[test]
    fn a_fault_longer_than_its_phase_is_an_impossible_timing() {
        let e = err(&GOOD.replace(
            "action = \"panic\"",
            "action = \"panic\"\nstart = \"2s\"\nduration = \"2s\"",
        ));
        assert!(e.message.contains("past the end"), "{e}");
        assert_eq!(e.line, Some(20), "{e}");
    }

    #[test]
    fn an_unknown_request_is_rejected_with_the_known_ones_as_hint() {
        let e = err(&GOOD.replace("GET /products\"", "GET /users/{id}\""));
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.hint.unwrap().contains("POST /orders"));
    }

    #[test]
    fn a_bad_status_pattern_is_rejected() {
        let e = err(&GOOD.replace("require = [\"500\"]", "require = [\"5x\"]"));
        assert_eq!(e.line, Some(22), "{e}");
    }

    #[test]
    fn status_patterns_match() {
        assert!(StatusPattern::parse("5xx").unwrap().matches(Some(503)));
        assert!(!StatusPattern::parse("5xx").unwrap().matches(None));
        assert!(StatusPattern::parse("none").unwrap().matches(None));
        assert!(StatusPattern::parse("200").unwrap().matches(Some(200)));
        assert!(StatusPattern::parse("600").is_none());
    }

    #[test]
    fn the_file_name_must_match_the_scenario_name() {
        let e = parse(Path::new("other.toml"), GOOD).unwrap_err();
        assert!(e.message.contains("other.toml"));
    }

    #[test]
    fn a_fault_start_that_would_overflow_is_a_located_error_not_a_panic() {
        let e = err(&GOOD.replace(
            "action = \"panic\"",
            "action = \"panic\"\nstart = \"18446744073709551615s\"",
        ));
        assert_eq!(e.line, Some(19), "{e}");
        assert!(e.message.contains("at most 1h"), "{e}");
    }

    #[test]
    fn every_duration_is_bounded_at_validation() {
        for (from, to, line) in [
            ("rate = 20", "rate = 20\ntimeout = \"10m\"", 8),
            (
                "require = [\"500\"]",
                "require = [\"500\"]\nlatency = { p99 = \"200000h\" }",
                23,
            ),
            (
                "require = [\"500\"]",
                "require = [\"500\"]\n[alerts]\nexpect = [{ name = \"HandlerPanics\", fires_within = \"99999999999h\" }]",
                24,
            ),
            (
                "action = \"panic\"",
                "action = \"panic\"\nduration = \"5000000h\"",
                19,
            ),
        ] {
            let e = err(&GOOD.replace(from, to));
            assert_eq!(e.line, Some(line), "{to}: {e}");
            assert!(
                e.message.contains("at most") || e.message.contains("out of range"),
                "{to}: {e}"
            );
        }
    }

    #[test]
    fn durations_inside_faults_are_bounded_at_validation() {
        let fault = "kind = \"failpoint\"\nname = \"list_products\"\naction = \"panic\"";
        for (table, key) in [
            (
                "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"20m\"",
                "latency",
            ),
            (
                "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"1s\"\njitter = \"9999h\"",
                "jitter",
            ),
            (
                "kind = \"failpoint\"\nname = \"list_products\"\naction = \"sleep(18446744073709551615)\"",
                "action",
            ),
        ] {
            let e = err(&GOOD.replace(fault, table));
            assert!(e.message.contains("at most"), "{table}: {e}");
            let line = e.source_line.clone().unwrap_or_default();
            assert!(line.starts_with(key), "{table}: points at `{line}`");
        }
    }

    #[test]
    fn an_error_about_an_empty_key_is_reported_without_hanging() {
        let src = Source {
            file: Path::new("demo.toml"),
            text: GOOD,
        };
        assert_eq!(src.key_span(0, ""), None);
        assert_eq!(src.key_span(GOOD.len() + 5, "kind"), None);
        // Found by the fuzz test below: the network fault's error for `jitter = ""` names no
        // key, and the search for it never ended.
        let e = err(&GOOD.replace(
            "kind = \"failpoint\"\nname = \"list_products\"\naction = \"panic\"",
            "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"1s\"\njitter = \"\"",
        ));
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn a_scenario_that_is_a_symlink_to_dev_zero_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = load(&link).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(&link.display().to_string()), "{text}");
        assert!(text.contains("not a regular file"), "{text}");
    }

    /// The catalogue's files, as (file name, text), to mutate.
    fn catalogue_texts() -> Vec<(PathBuf, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let files = catalogue_files(&dir);
        assert!(!files.is_empty(), "no scenario in {}", dir.display());
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (PathBuf::from(p.file_name().unwrap()), text)
            })
            .collect()
    }

    /// Values a hostile or careless file would try in place of any token.
    const NASTY: &[&str] = &[
        "\"18446744073709551615s\"",
        "\"99999999999999h\"",
        "\"0s\"",
        "\"1ns\"",
        "\"\"",
        "-1",
        "0",
        "1e308",
        "-1e308",
        "nan",
        "inf",
        "18446744073709551615",
        "-9223372036854775808",
        "4294967296",
        "[",
        "]",
        "{",
        "}",
        "=",
        "\"\\u0000\"",
        "\"4777\"",
        "\"sleep(18446744073709551615)\"",
        "\"GET /products/{id}{id}{\"",
        "\"POST /\"",
        "[[fault]]\nkind = \"memory\"\n",
        "{ uniform = [9223372036854775807, -9223372036854775808] }",
        "{ uniform = [-9223372036854775808, 9223372036854775807] }",
        "\"5xx\"",
        "true",
        "\"\u{1F4A5}\"",
    ];

    /// One edit of a valid file: the value of one `key = value` line replaced by a nasty one
    /// (most edits, so validation gets past the TOML syntax), or a byte range replaced or removed.
    fn mutate(text: &str, value: bool, at: usize, len: usize, with: Option<&str>) -> String {
        if value {
            let values: Vec<usize> = text.match_indices(" = ").map(|(i, _)| i + 3).collect();
            if let Some(&start) = values.get(at % values.len().max(1)) {
                let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
                return format!(
                    "{}{}{}",
                    &text[..start],
                    with.unwrap_or("\"\""),
                    &text[end..]
                );
            }
        }
        let mut start = at % (text.len() + 1);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{}{}", &text[..start], with.unwrap_or(""), &text[end..])
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Bounded so the three run in seconds; each case parses and validates a whole file.
            #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn validation_never_panics_on_any_text(text in "\\PC{0,400}") {
                let _ = parse(Path::new("fuzz.toml"), &text);
            }

            #[test]
            fn loading_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let dir = tempfile::tempdir().unwrap();
                let f = dir.path().join("fuzz.toml");
                std::fs::write(&f, &bytes).unwrap();
                let _ = load(&f);
            }

            #[test]
            fn validation_never_panics_on_a_mutated_catalogue_file(
                which in any::<prop::sample::Index>(),
                edits in proptest::collection::vec(
                    (
                        prop::bool::weighted(0.8),
                        any::<usize>(),
                        0usize..24,
                        proptest::option::of(prop::sample::select(NASTY)),
                    ),
                    1..4,
                ),
            ) {
                let files = catalogue_texts();
                let (name, text) = which.get(&files);
                let mut text = text.clone();
                for (value, at, len, with) in edits {
                    text = mutate(&text, value, at, len, with);
                }
                let _ = parse(name, &text);
            }
        }
    }
}
