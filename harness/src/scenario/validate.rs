//! From the raw file to a [`Scenario`]: every check that types alone do not make (names,
//! bounded durations, phase lengths, requests the load generator accepts, fault timings inside
//! the fault phase, alert names the lab's rules define), each error at file:line:column.

// A `ScenarioError` carries the source line it points at, which makes it large; it is built once
// per invalid file and never on a hot path, so boxing it would only cost readability.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawAlerts, RawLoad, RawPhaseExpect, RawPhases, RawScenario};
use super::*;
use crate::faults::Fault;
use crate::labfile::LabFile;
use crate::load::{LoadPlan, MixEntry};
use crate::record::Phase;

/// Reads and validates one scenario file (a regular file of at most a few MiB) of the built-in
/// catalogue, whose lab is target-app's ([`crate::labfile::target_app`]).
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    load_for(path, crate::labfile::target_app())
}

/// Reads and validates one scenario file for the service `lab` describes: its requests complete
/// the scenario's, its protections and failpoints are the ones a scenario may name.
pub fn load_for(path: &Path, lab: &LabFile) -> Result<Scenario, ScenarioError> {
    let text = crate::textfile::read_capped(path).map_err(|e| ScenarioError::refused(path, &e))?;
    parse_for(path, &text, lab)
}

/// The longest duration a scenario may write anywhere: longer than any phase, far below what
/// would overflow when added to an instant or to another duration at run time.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Validates scenario text of the built-in catalogue; `path` is used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    parse_for(path, text, crate::labfile::target_app())
}

/// Validates scenario text for the service `lab` describes; `path` is used in messages.
pub fn parse_for(path: &Path, text: &str, lab: &LabFile) -> Result<Scenario, ScenarioError> {
    let src = Source { file: path, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let hint = hint_for_toml_error(&message);
        src.error(e.span(), message, hint)
    })?;
    validate(&src, raw, lab)
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

fn validate(src: &Source, raw: RawScenario, lab: &LabFile) -> Result<Scenario, ScenarioError> {
    check_name(src, &raw, lab)?;
    let load = load_spec(src, &raw.load, lab)?;
    let phases = phases(src, &raw.phases)?;

    // Faults.
    let mut faults = Vec::new();
    for table in &raw.fault {
        let mut f = scheduled_fault(src, table, phases.fault)?;
        f.fault.fit(lab, &load.mix).map_err(|e| {
            let span = e
                .key
                .as_deref()
                .and_then(|k| src.key_span(table.span().start, k))
                .or(Some(table.span()));
            src.error(span, e.message, e.hint)
        })?;
        faults.push(f);
    }

    // Expectations.
    let mix = &load.mix;
    let expect = Expectations {
        steady: phase_expect(src, raw.expect.steady, Phase::Steady, mix)?,
        fault: phase_expect(src, raw.expect.fault, Phase::Fault, mix)?,
        recovery: phase_expect(src, raw.expect.recovery, Phase::Recovery, mix)?,
        data: raw.expect.data,
    };

    let alerts = alert_expectations(src, raw.alerts)?;

    Ok(Scenario {
        name: raw.name.into_inner(),
        title: raw.title,
        cause: raw.cause,
        protection: raw.protection.map(Spanned::into_inner),
        learn: raw.learn,
        load,
        phases,
        faults,
        expect,
        alerts,
        contract: Contract::of(lab),
        file: src.file.to_path_buf(),
    })
}

/// The name (a valid one, the file's) and the protection (one the lab file lists).
fn check_name(src: &Source, raw: &RawScenario, lab: &LabFile) -> Result<(), ScenarioError> {
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
    if let Some(p) = &raw.protection {
        let known = lab.service.protections.as_ref().map(|p| &p.names);
        if !known.is_some_and(|k| k.contains(p.get_ref())) {
            return Err(src.error(
                Some(p.span()),
                format!("unknown protection `{}`", p.get_ref()),
                Some(match known {
                    Some(k) => format!("the service's protections are: {}", k.join(", ")),
                    None => format!(
                        "{} lists no protections ([service.protections])",
                        lab.file.display()
                    ),
                }),
            ));
        }
    }
    Ok(())
}

/// The `[load]` table: a rate in range, requests (completed from the lab file's) the load
/// generator accepts, a timeout.
fn load_spec(src: &Source, raw: &RawLoad, lab: &LabFile) -> Result<LoadSpec, ScenarioError> {
    let rate = *raw.rate.get_ref();
    if !(rate > 0.0 && rate <= 5000.0) {
        return Err(src.error(
            Some(raw.rate.span()),
            format!("rate {rate} is out of range"),
            Some("the rate is in requests per second, between 0 and 5000".into()),
        ));
    }
    if raw.mix.is_empty() {
        return Err(src.error(
            Some(raw.rate.span()),
            "the load has no requests",
            Some(format!(
                "add mix = [{{ weight = 1, request = \"{}\" }}]",
                lab.requests.first().map_or("GET /", |m| m.request.as_str())
            )),
        ));
    }
    let mut mix = Vec::new();
    for m in &raw.mix {
        if m.get_ref().weight == 0 {
            return Err(src.error(
                Some(m.span()),
                "a request with weight 0 is never sent",
                Some("remove it, or give it a positive weight".into()),
            ));
        }
        // The load generator compiles each entry (request line, parameters, body); whatever
        // it refuses is reported here, before anything runs.
        // A request line the lab file does not describe is most often a typo (`POST /order`),
        // which would send a request with no body to a route that does not exist.
        let line = crate::load::request_line(&m.get_ref().request);
        if !lab.requests.is_empty()
            && !lab
                .requests
                .iter()
                .any(|r| crate::load::request_line(&r.request) == line)
        {
            let known: Vec<&str> = lab.requests.iter().map(|r| r.request.as_str()).collect();
            return Err(src.error(
                Some(m.span()),
                format!("`{line}` is not a request {} describes", lab.file.display()),
                Some(format!(
                    "its requests are: {}; describe a new one in its [[request]] tables",
                    known.join(", ")
                )),
            ));
        }
        let entry = m.get_ref().resolved(&lab.requests);
        // With the lab file's requests beside it, so that a value captured by one of them
        // counts; the whole mix is compiled on its own below.
        let with_lab = std::iter::once(entry.clone()).chain(lab.requests.iter().cloned());
        let mut one = LoadPlan::new("http://127.0.0.1:1", rate, with_lab.collect());
        one.requests = Some(1);
        if let Err(e) = one.preview(1) {
            let known: Vec<&str> = lab.requests.iter().map(|r| r.request.as_str()).collect();
            return Err(src.error(
                Some(m.span()),
                e.to_string(),
                Some(format!(
                    "the requests {} describes are: {}",
                    lab.file.display(),
                    known.join(", ")
                )),
            ));
        }
        mix.push(entry);
    }
    let mut whole = LoadPlan::new("http://127.0.0.1:1", rate, mix.clone());
    whole.requests = Some(1);
    if let Err(e) = whole.preview(1) {
        return Err(src.error(Some(raw.rate.span()), e.to_string(), None));
    }
    let timeout = match &raw.timeout {
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
    Ok(LoadSpec { rate, mix, timeout })
}

/// The `[phases]` table: each phase between 1s and 1h.
fn phases(src: &Source, raw: &RawPhases) -> Result<Phases, ScenarioError> {
    let steady = duration(src, &raw.steady)?;
    let fault_len = duration(src, &raw.fault)?;
    let recovery = duration(src, &raw.recovery)?;
    for (d, v) in [
        (steady, &raw.steady),
        (fault_len, &raw.fault),
        (recovery, &raw.recovery),
    ] {
        if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
            return Err(src.error(
                Some(v.span()),
                format!("phase length {} is out of range", v.get_ref()),
                Some("each phase lasts between 1s and 1h".into()),
            ));
        }
    }
    Ok(Phases {
        steady,
        fault: fault_len,
        recovery,
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
