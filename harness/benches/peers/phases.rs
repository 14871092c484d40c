//! Where a catalogue run's time goes, read from its report.json: per scenario, the time from
//! the start of its run to its steady phase (lab start), the three phases, the drain of the
//! last requests, the wait for alerts to resolve, and the teardown. The suite rows print the
//! sums over the catalogue, so a change to the runner can be chosen by what it would save.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// The parts of one scenario's run, in the order they happen.
pub const PARTS: [&str; 7] = [
    "lab start",
    "steady",
    "fault",
    "recovery",
    "drain",
    "alerts resolving",
    "teardown",
];

/// Seconds per part for one scenario, `None` for a scenario that did not run to its end (its
/// parts would not add up).
pub fn scenario_parts(scenario: &Value) -> Option<[f64; 7]> {
    let rec = &scenario["recording"];
    let phase = |name: &str| -> Option<(f64, f64)> {
        let p = rec["phases"][name].as_array()?;
        Some((p.first()?.as_f64()?, p.get(1)?.as_f64()?))
    };
    let (steady_start, steady_end) = phase("steady")?;
    let (fault_start, fault_end) = phase("fault")?;
    let (recovery_start, recovery_end) = phase("recovery")?;
    let marker = |detail: &str| -> Option<f64> {
        rec["events"].as_array()?.iter().find_map(|e| {
            (e["kind"] == "phase_start" && e["detail"] == detail).then(|| e["at_ms"].as_f64())?
        })
    };
    let total = scenario["duration_s"].as_f64()? * 1000.0;
    let teardown = marker("teardown")?;
    let alerts = marker("waiting for alerts to resolve").unwrap_or(teardown);
    let ms = [
        steady_start,
        steady_end - steady_start,
        fault_end - fault_start,
        recovery_end - recovery_start,
        alerts - recovery_end,
        teardown - alerts,
        total - teardown,
    ];
    Some(ms.map(|m| m.max(0.0) / 1000.0))
}

/// The sums over every scenario of `report.json` in `dir`, and how many scenarios they cover.
pub fn catalogue_parts(dir: &Path) -> Result<(BTreeMap<&'static str, f64>, usize), String> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sums: BTreeMap<&'static str, f64> = PARTS.iter().map(|p| (*p, 0.0)).collect();
    let mut counted = 0;
    for s in report["scenarios"].as_array().into_iter().flatten() {
        if let Some(parts) = scenario_parts(s) {
            counted += 1;
            for (name, secs) in PARTS.iter().zip(parts) {
                *sums.get_mut(name).expect("every part") += secs;
            }
        }
    }
    Ok((sums, counted))
}

/// `lab start 61 s, steady 80 s, ...`: the sums in run order.
pub fn describe(sums: &BTreeMap<&'static str, f64>) -> String {
    PARTS
        .iter()
        .map(|p| format!("{p} {:.0} s", sums.get(p).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scenario_splits_into_parts_that_add_up_to_its_duration() {
        let s = serde_json::json!({
            "duration_s": 20.0,
            "recording": {
                "phases": {"steady": [2000.0, 6000.0], "fault": [6000.0, 11000.0],
                           "recovery": [11000.0, 15000.0]},
                "events": [
                    {"kind": "phase_start", "detail": "steady", "at_ms": 2000.0},
                    {"kind": "phase_start", "detail": "waiting for alerts to resolve", "at_ms": 16000.0},
                    {"kind": "phase_start", "detail": "teardown", "at_ms": 18500.0}
                ]
            }
        });
        let parts = super::scenario_parts(&s).unwrap();
        assert_eq!(parts, [2.0, 4.0, 5.0, 4.0, 1.0, 2.5, 1.5]);
        assert_eq!(parts.iter().sum::<f64>(), 20.0);
    }
}
