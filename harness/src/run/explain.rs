//! The runs behind `fivehundred explain SCENARIO`: the scenario run twice, the target's
//! protections all on, then the scenario's protection off, each run's reports written under its
//! own directory. What is printed about them is `present::explain`.
//!
//! The runs are sequential, not parallel: two labs at once on a small machine would change the
//! latencies the checks measure, and the point is a fair comparison.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::lab::LabOptions;
use crate::labfile::LabFile;
use crate::present::explain::Ran;
use crate::present::report::RunReport;
use crate::run::{Progress, RunError, run_scenario};
use crate::scenario::Scenario;

/// The two protection settings to compare: all on, and the scenario's protection off. A
/// scenario that names no protection is run once.
pub fn variants(s: &Scenario, lab: &LabFile) -> Vec<(String, Vec<String>)> {
    let Some(p) = &lab.service.protections else {
        return vec![("as configured".to_string(), Vec::new())];
    };
    let mut v = vec![("protections on".to_string(), p.on.clone())];
    if let Some(name) = &s.protection {
        v.push((format!("{name} off"), p.off_args(name)));
    }
    v
}

/// Runs the scenario once per variant, one after the other, writing each run's reports under
/// `report_dir/<protected|unprotected>/`. `reproduce` makes the command line that repeats a run
/// from the arguments appended to the service's command. `on_start` is told each variant
/// before it runs and returns something held while it runs (a progress display).
pub async fn run_variants<G>(
    scenario: &Scenario,
    base: &LabOptions,
    report_dir: &Path,
    reproduce: &dyn Fn(&[String]) -> String,
    cancel: CancellationToken,
    mut on_start: impl FnMut(&str, Arc<Progress>) -> G,
) -> Result<Vec<Ran>, RunError> {
    let mut out = Vec::new();
    for (i, (label, args)) in variants(scenario, base.lab_file()).into_iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let mut opts = base.clone();
        // The variant's setting goes last so it wins over any the user passed.
        opts.extra_args.extend(args.iter().cloned());
        let args = args.join(" ");
        let progress = Arc::new(Progress::default());
        let guard = on_start(&label, progress.clone());
        let report = run_scenario(scenario, &opts, progress, cancel.clone()).await;
        drop(guard);
        let report = report?;
        let command = reproduce(&opts.extra_args);
        let dir = report_dir.join(if i == 0 { "protected" } else { "unprotected" });
        let run = RunReport {
            tool: format!("fivehundred {}", env!("CARGO_PKG_VERSION")),
            seed: base.seed,
            command: command.clone(),
            started_at: chrono::Utc::now().to_rfc3339(),
            strict: false,
            scenarios: vec![report.clone()],
        };
        let dir = match crate::artifacts::write(&run, &dir, crate::digest::KeepRequests::Errors) {
            Ok(()) => Some(dir),
            Err(e) => {
                eprintln!("warning: cannot write the report to {}: {e}", dir.display());
                None
            }
        };
        out.push(Ran {
            label,
            args,
            command,
            report,
            dir,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_turn_off_only_the_scenarios_protection() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/db-down.toml");
        let s = crate::scenario::load(&path).unwrap();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            variants(&s, crate::labfile::target_app()),
            vec![
                (
                    "protections on".to_string(),
                    args(&["--protections", "all"])
                ),
                (
                    "stale-cache off".to_string(),
                    args(&["--protections", "all,-stale-cache"])
                )
            ]
        );
    }
}
