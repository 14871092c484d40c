//! The metric check: how much a Prometheus series (a selector, summed over the series it
//! matches) moved over a phase, against the scenario's bounds.

use super::common::{fail, pass, skip};
use crate::record::{Phase, Recording, parse_series_selector};
use crate::scenario::MetricExpect;
use crate::verdict::{CheckResult, Evidence};

/// How much a metric moved over a phase: last sample in the phase minus the last sample before
/// it (or the first in it).
pub fn metric(rec: &Recording, phase: Phase, m: &MetricExpect) -> CheckResult {
    let Some(sel) = parse_series_selector(&m.series) else {
        return fail(
            "metric",
            phase,
            format!("`{}` is not a series selector", m.series),
        );
    };
    let Some((start, end)) = rec.phases.get(&phase).copied() else {
        return skip("metric", phase, "the phase did not run".into());
    };
    let before = rec.metrics.iter().rev().find(|s| s.at_ms <= start);
    let during: Vec<_> = rec
        .metrics
        .iter()
        .filter(|s| s.at_ms > start && s.at_ms <= end + 1000.0)
        .collect();
    let (Some(first), Some(last)) = (before.or(during.first().copied()), during.last()) else {
        return fail(
            "metric",
            phase,
            format!("/metrics was not scraped during the {phase} phase"),
        );
    };
    let (a, b) = (sel.sum(&first.values), sel.sum(&last.values));
    let delta = b - a;
    let mut problems = Vec::new();
    if let Some(min) = m.min_delta
        && delta < min
    {
        problems.push(format!("rose by {delta}, expected at least {min}"));
    }
    if let Some(max) = m.max_delta
        && delta > max
    {
        problems.push(format!("rose by {delta}, expected at most {max}"));
    }
    let evidence = vec![Evidence::Metric {
        series: m.series.clone(),
        before: a,
        after: b,
    }];
    if problems.is_empty() {
        pass("metric", phase, format!("{} moved {a} → {b}", m.series)).with(evidence)
    } else {
        fail(
            "metric",
            phase,
            format!("{} {}", m.series, problems.join("; ")),
        )
        .with(evidence)
    }
}
