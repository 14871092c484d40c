//! The suite runner behind `fivehundred run`: scenarios one after another, or side by side with
//! `--jobs` (each in its own lab), a progress display on stderr while they run, then the summary
//! (or the whole report as JSON) on stdout and the report files on disk.
//!
//! Also what `run` and `explain` share before and while their scenarios run: the lab options
//! (cleaning up after a killed earlier run first), the signal handler that cancels a run, and
//! the progress bars.
//!
//! - `bars`: the progress display, a bar per scenario on a terminal, lines otherwise.
//! - `terminal`: whether to colour a stream, and the terminal's width.
//! - this file: the runner and its report.

mod bars;
mod terminal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use bars::{Bars, ProgressView};
pub use terminal::{colour, terminal_width};

use crate::checks::Verdict;
use crate::digest::KeepRequests;
use crate::exit::EXIT_LAB;
use crate::lab::LabOptions;
use crate::present::report::{RunReport, ScenarioReport};
use crate::progress::Progress;
use crate::run::{RunError, run_scenario};
use crate::scenario::Scenario;
use crate::target::locate_target_app;

/// A suite to run: its scenarios, the lab they run in, and what becomes of the report.
#[derive(Debug)]
pub struct Suite {
    pub scenarios: Vec<Scenario>,
    /// The lab every scenario starts its own copy of; its seed is the run's.
    pub opts: LabOptions,
    /// How many scenarios run at once, each in its own lab.
    pub jobs: u16,
    /// Each scenario with the protection it exercises turned off.
    pub unprotected: bool,
    /// Count a skipped scenario as a failure.
    pub strict: bool,
    /// Print the whole report as JSON on stdout instead of the summary.
    pub json: bool,
    /// Which requests report.json (and the JSON on stdout) keeps.
    pub record: KeepRequests,
    /// Write report.json, junit.xml and report.html here.
    pub report_dir: Option<PathBuf>,
    /// The command line that runs the suite again, as the report shows it.
    pub command: String,
}

/// Runs the suite to its end (or until Ctrl-C / SIGTERM, after which every fault is reverted);
/// prints the summary or the JSON, writes the report files; returns the exit code.
pub async fn run(mut suite: Suite) -> i32 {
    let seed = suite.opts.seed;
    let target_args = &suite.opts.extra_args;
    eprintln!(
        "fivehundred: {} scenario(s), seed {seed}{}",
        suite.scenarios.len(),
        if target_args.is_empty() {
            String::new()
        } else {
            format!(", target args: {}", target_args.join(" "))
        }
    );

    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let bars = Bars::new();
    let started_at = chrono::Utc::now().to_rfc3339();
    let scenarios = std::mem::take(&mut suite.scenarios);
    let (reports, lab_error) = run_all(
        scenarios,
        &suite.opts,
        suite.jobs,
        suite.unprotected,
        &bars,
        &cancel,
    )
    .await;
    let report = RunReport {
        tool: format!("fivehundred {}", env!("CARGO_PKG_VERSION")),
        seed,
        command: suite.command.clone(),
        started_at,
        strict: suite.strict,
        scenarios: reports,
    };
    print_report(&report, &suite);
    if let Some(e) = lab_error {
        eprintln!("error: the lab could not be set up: {e}");
        return EXIT_LAB;
    }
    if cancel.is_cancelled() {
        eprintln!("interrupted: every injected fault was reverted");
        return 130;
    }
    report.exit_code()
}

/// Runs every scenario, each in its own lab, at most `jobs` of them under load at once, and
/// collects their reports in the suite's order. A lab that cannot be set up (or a runner task
/// that crashed) cancels the rest and is returned as the error to print.
async fn run_all(
    scenarios: Vec<Scenario>,
    opts: &LabOptions,
    jobs: u16,
    unprotected: bool,
    bars: &Bars,
    cancel: &CancellationToken,
) -> (Vec<ScenarioReport>, Option<String>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs as usize));
    // Labs start one at a time, LAB_START_GAP apart: several labs starting at once (each an
    // initdb, a service, a Prometheus) starve each other's steady phase on a small machine.
    let next_start = Arc::new(tokio::sync::Mutex::new(tokio::time::Instant::now()));
    // A scenario that needs the machine to itself takes every slot; it is queued first, so
    // it runs before the others fill the slots (the semaphore is first come, first served).
    let mut order: Vec<(usize, Scenario)> = scenarios.into_iter().enumerate().collect();
    order.sort_by_key(|(_, s)| !needs_machine_alone(s));
    let mut handles = Vec::new();
    for (i, s) in order {
        let (opts, cancel, sem, bars) = (opts.clone(), cancel.clone(), sem.clone(), bars.clone());
        let next_start = next_start.clone();
        let slots = if needs_machine_alone(&s) {
            u32::from(jobs)
        } else {
            1
        };
        let opts = match unprotected.then(|| without_its_protection(&s, &opts)) {
            None => opts,
            Some(Ok(o)) => o,
            Some(Err(why)) => {
                let skipped = ScenarioReport::from_checks(
                    &s,
                    Vec::new(),
                    Default::default(),
                    0.0,
                    Some(format!("skipped: {why}")),
                );
                handles.push((i, tokio::spawn(async move { Some(Ok(skipped)) })));
                continue;
            }
        };
        let handle = tokio::spawn(async move {
            let permit = sem.acquire_many_owned(slots).await.ok();
            if cancel.is_cancelled() {
                return None;
            }
            if jobs > 1 {
                let mut at = next_start.lock().await;
                tokio::time::sleep_until(*at).await;
                *at = tokio::time::Instant::now() + LAB_START_GAP;
            }
            let progress = Arc::new(Progress::default());
            // Its slots are given back once its load is over: a lab waiting for its alerts to
            // resolve, then tearing down, is idle, and a scenario that had the machine to
            // itself measures nothing more.
            let giving_back =
                permit.map(|p| tokio::spawn(give_back_after_load(p, progress.clone())));
            let view = bars.start(&s.name, s.phases.total(), progress.clone());
            let r = run_scenario(&s, &opts, progress, cancel).await;
            if let Some(g) = giving_back {
                g.abort();
            }
            view.finish().await;
            Some(r)
        });
        handles.push((i, handle));
    }
    // Reports in the suite's order, whatever order the scenarios ran in.
    handles.sort_by_key(|(i, _)| *i);
    let mut reports = Vec::new();
    let mut lab_error = None;
    for (_, h) in handles {
        match h.await {
            Ok(Some(Ok(r))) => {
                bars.println(format!(
                    "  {} {}",
                    r.name,
                    match r.verdict {
                        Verdict::Pass => "passed",
                        Verdict::Fail => "FAILED",
                        Verdict::Skip => "skipped",
                    }
                ));
                reports.push(r);
            }
            Ok(Some(Err(RunError::Lab(e)))) => {
                lab_error.get_or_insert(e.0);
                cancel.cancel();
            }
            Ok(None) => {}
            Err(e) => {
                lab_error.get_or_insert(format!("the controller crashed: {e}; faults were reverted as the lab was dropped; run `fivehundred recover` to be sure"));
                cancel.cancel();
            }
        }
    }
    (reports, lab_error)
}

/// The lab options that run `s` with the protection it exercises off (`--unprotected`): the
/// lab file's arguments for it go last, after any the user gave, so they win.
fn without_its_protection(s: &Scenario, opts: &LabOptions) -> Result<LabOptions, String> {
    let Some(name) = &s.protection else {
        return Err("--unprotected: the scenario names no protection to turn off".into());
    };
    let Some(protections) = &opts.lab_file.service.protections else {
        return Err(format!(
            "--unprotected: {} says no way to turn a protection off (`[service.protections]`)",
            opts.lab_file.file.display()
        ));
    };
    let mut o = opts.clone();
    o.extra_args.extend(protections.off_args(name));
    Ok(o)
}

/// Holds a scenario's slots until its load is over, as its progress says: then the next labs
/// may start while it waits for its alerts to resolve and tears down (`--jobs` counts the labs
/// under load).
async fn give_back_after_load(slots: tokio::sync::OwnedSemaphorePermit, progress: Arc<Progress>) {
    while !progress.load_over() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(slots);
}

/// How long after one lab started its run the next one may start (with `--jobs` above 1).
const LAB_START_GAP: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether `s` measures the machine (its service's capacity) and so runs with no lab beside it.
fn needs_machine_alone(s: &Scenario) -> bool {
    s.faults.iter().any(|f| f.fault.alone())
}

/// The summary (or the JSON) on stdout, and the report files when asked for.
fn print_report(report: &RunReport, suite: &Suite) {
    if suite.json {
        match report.json(suite.record) {
            Ok(text) => println!("{}", String::from_utf8_lossy(&text)),
            Err(e) => eprintln!("error: cannot print the report as JSON: {e}"),
        }
    } else {
        let _ = report.print_summary(&mut std::io::stdout(), colour(&std::io::stdout()));
    }
    if let Some(dir) = &suite.report_dir {
        match crate::artifacts::write(report, dir, suite.record) {
            // With --json, stdout is for the JSON alone.
            Ok(()) if suite.json => eprintln!("report: {}", dir.display()),
            Ok(()) => println!("report: {}", dir.display()),
            Err(e) => eprintln!("error: cannot write the report to {}: {e}", dir.display()),
        }
    }
}

/// Ctrl-C and SIGTERM cancel the run; the runner reverts every fault before exiting.
pub fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("\nstopping: reverting every fault and tearing the lab down…");
        cancel.cancel();
    });
}

/// Everything a lab needs that does not depend on the scenario: the target program located (or
/// built), the database choice, the seed. Cleans up what a killed earlier run left behind first.
/// Shared by `run` and `explain`; the error is an exit code, its message already printed.
pub async fn lab_options(
    target_bin: Option<&Path>,
    database_url: Option<String>,
    backend: crate::lab::Backend,
    target_args: Vec<String>,
    seed: u64,
    service: Option<Arc<crate::labfile::LabFile>>,
) -> Result<LabOptions, i32> {
    let recovered = crate::journal::recover().await.map_err(|e| {
        eprintln!("error: {e}");
        EXIT_LAB
    })?;
    for r in recovered {
        eprintln!(
            "recovered what an earlier run left behind ({}): {}",
            r.journal.display(),
            r.actions.join("; ")
        );
    }
    // target-app's own lab file runs the binary built with this one (built first under
    // `cargo run`), or `--target-bin`; a lab file's service is what its file says.
    let lab_file = match service {
        Some(lab) => lab,
        None => {
            let program =
                tokio::task::block_in_place(|| locate_target_app(target_bin)).map_err(|e| {
                    eprintln!("error: {e}");
                    EXIT_LAB
                })?;
            let lab = crate::labfile::target_app()
                .with_program(&program)
                .map_err(|e| {
                    eprintln!("error: {e}");
                    EXIT_LAB
                })?;
            Arc::new(lab)
        }
    };
    // A compose file needs its tool: said in one line before any lab starts.
    if let crate::labfile::Start::Container(c) = &lab_file.service.start
        && let crate::labfile::ImageSource::Compose(source) = &c.image
    {
        crate::docker::compose::Tool::find().await.map_err(|e| {
            eprintln!("error: {}: {e}", source.file.display());
            EXIT_LAB
        })?;
    }
    Ok(LabOptions {
        lab_file,
        extra_args: target_args,
        database_url,
        backend,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scenario_gives_back_its_slots_once_its_load_is_over() {
        let sem = Arc::new(tokio::sync::Semaphore::new(4));
        let permit = sem.clone().acquire_many_owned(4).await.unwrap();
        let progress = Arc::new(Progress::default());
        progress.set_phase("recovery");
        let giving_back = tokio::spawn(give_back_after_load(permit, progress.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sem.available_permits(), 0, "held through the load");
        progress.set_phase(crate::progress::ALERTS_RESOLVING);
        giving_back.await.unwrap();
        assert_eq!(
            sem.available_permits(),
            4,
            "given back while alerts resolve"
        );
    }
}
