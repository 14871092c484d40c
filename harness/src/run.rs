//! One scenario, end to end: start a lab, drive load through the steady, fault and recovery
//! phases, inject and revert the faults on schedule, sample the target throughout, evaluate the
//! checks, and tear everything down whatever happens.

/// The runs behind `fivehundred explain`: a scenario with its protection on, then off.
pub mod explain;
/// Which lab a command runs in: the options `run`, `explain` and `lab up` share.
pub mod lab_args;
/// The suite runner: scenarios one after another or side by side, their progress, the summary.
pub mod suite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::checks::{self, CheckResult, Verdict};
use crate::faults::{Fault, FaultError, Injected, Injector};
use crate::journal::{Journal, Resource};
use crate::lab::{Lab, LabError, LabOptions};
use crate::present::report::ScenarioReport;
pub use crate::progress::Progress;
use crate::record::{
    EventKind, MetricsSample, Phase, ProbeRecord, Recorder, parse_prometheus_text,
};
use crate::scenario::Scenario;
use crate::target::TargetNeeds;

/// Why a scenario stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The lab could not be set up: exit code 3.
    #[error(transparent)]
    Lab(#[from] LabError),
}

/// Runs one scenario. Lab failures are errors; everything else, including a fault that cannot
/// be injected here, ends in a report.
pub async fn run_scenario(
    scenario: &Scenario,
    opts: &LabOptions,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<ScenarioReport, RunError> {
    let began = Instant::now();
    let mut needs = TargetNeeds::default();
    for f in &scenario.faults {
        let supported = f.fault.preflight(&opts.lab_file.program());
        if let Ok(fault_needs) = &supported {
            needs = needs.merge(fault_needs.clone());
        }
        if let Err(why) = supported {
            return Ok(ScenarioReport::from_checks(
                scenario,
                Vec::new(),
                Default::default(),
                0.0,
                Some(format!("skipped: {} needs {why}", f.fault.describe())),
            ));
        }
    }
    let journal = Journal::create(&format!("scenario {}", scenario.name)).map_err(|e| {
        LabError(format!(
            "cannot write the fault journal in {}: {e}",
            crate::statedir::state_dir().display()
        ))
    })?;
    let run_dir = tempfile::Builder::new()
        .prefix(&format!("fivehundred-{}-", scenario.name))
        .tempdir()
        .map_err(|e| LabError(format!("cannot create a run directory: {e}")))?
        .keep();
    journal.resource(Resource::Dir {
        path: run_dir.clone(),
    });
    progress.set_phase("starting the lab");
    let recorder = Arc::new(Recorder::new(Instant::now()));
    let lab = Lab::start_with(opts, &needs, run_dir.clone(), &journal, recorder.clone()).await;
    let lab = match lab {
        Ok(lab) => lab,
        Err(e) => {
            crate::lab::dismantle(None, &run_dir, journal, true).await;
            return Err(e.into());
        }
    };
    let result = drive(scenario, &lab, &journal, &progress, &cancel, opts.seed).await;
    // Data integrity is read from the database before the lab goes.
    let mut checks = result.checks;
    // What faults observed and judged themselves (a second start with a bad setting).
    checks.extend(lab.take_fault_checks());
    lab.collect_alerts();
    let recording = recorder.snapshot();
    if result.completed {
        checks.extend(checks::evaluate(scenario, &recording));
        if scenario.contract.checks_data() && !lab.database_url.is_empty() {
            checks.push(checks::data_integrity(&lab.database_url, scenario, &recording).await);
        }
    }
    progress.set_phase(crate::progress::TEARING_DOWN);
    // Marks where the run's time goes (the bench sums it per phase over the catalogue).
    recorder.event(EventKind::PhaseStart, "teardown");
    crate::lab::dismantle(Some(lab), &run_dir, journal, !result.unreverted).await;
    let recording = recorder.snapshot();
    Ok(ScenarioReport::from_checks(
        scenario,
        checks,
        recording,
        began.elapsed().as_secs_f64(),
        result.note,
    ))
}

struct Driven {
    checks: Vec<CheckResult>,
    completed: bool,
    note: Option<String>,
    /// A revert failed: the journal stays for `fivehundred recover`.
    unreverted: bool,
}

/// What runs through every phase: the load and the samplers, stopped together.
struct Running {
    load: tokio::task::JoinHandle<()>,
    load_cancel: CancellationToken,
    stop_sampling: CancellationToken,
    samplers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the load (in-flight requests get ten seconds) and the samplers.
    async fn finish(self) {
        self.load_cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.load).await;
        self.stop_sampling.cancel();
        for s in self.samplers {
            let _ = s.await;
        }
    }

    /// The end of a completed run: the load stops, in-flight requests finish (bounded by the
    /// client `timeout`), and one last sample ends the recovery phase with fresh health and
    /// metrics.
    async fn drain(self, timeout: Duration) {
        self.load_cancel.cancel();
        let _ = tokio::time::timeout(timeout + Duration::from_secs(2), self.load).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.stop_sampling.cancel();
        for s in self.samplers {
            let _ = s.await;
        }
    }
}

/// The phases. Every fault injected here is reverted here, on every path out.
async fn drive(
    scenario: &Scenario,
    lab: &Lab,
    journal: &Journal,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
    seed: u64,
) -> Driven {
    let rec = lab.recorder.clone();
    let stop_sampling = CancellationToken::new();
    let samplers = start_samplers(lab, stop_sampling.clone());

    // Load runs through every phase, open loop, on its own schedule.
    let t0 = rec.now_ms();
    let load_cancel = cancel.child_token();
    let load = crate::load_plan::start(
        scenario,
        lab,
        seed,
        rec.clone(),
        progress.clone(),
        load_cancel.clone(),
    );
    let running = Running {
        load,
        load_cancel,
        stop_sampling,
        samplers,
    };

    let mut driven = Driven {
        checks: Vec::new(),
        completed: false,
        note: None,
        unreverted: false,
    };
    let driver = Driver {
        scenario,
        lab,
        progress,
        cancel,
    };
    let Some(fault_end) = driver.through_the_faults(journal, t0, &mut driven).await else {
        running.finish().await;
        return driven;
    };
    if driver.recovery(fault_end, &mut driven).await.is_none() {
        running.finish().await;
        return driven;
    }
    running.drain(scenario.load.timeout).await;
    if let Some(status) = lab.target_exit() {
        rec.event(EventKind::TargetExit, format!("target exited: {status}"));
    }
    wait_for_resolutions(scenario, lab, fault_end, cancel, progress).await;
    driven.completed = true;
    driven
}

/// What every phase works with. Each phase returns `None` when the run stops there, with
/// `driven.note` saying why.
struct Driver<'a> {
    scenario: &'a Scenario,
    lab: &'a Lab,
    progress: &'a Progress,
    cancel: &'a CancellationToken,
}

impl Driver<'_> {
    /// The steady phase, what must hold before anything is broken, and the fault phase.
    /// Returns when the fault phase ended (on the recorder's clock).
    async fn through_the_faults(
        &self,
        journal: &Journal,
        t0: f64,
        driven: &mut Driven,
    ) -> Option<f64> {
        self.steady(t0, driven).await?;
        self.steady_state_holds(driven).await?;
        self.dependencies_used(driven)?;
        self.faults(journal, t0, driven).await
    }

    async fn steady(&self, t0: f64, driven: &mut Driven) -> Option<()> {
        let rec = &self.lab.recorder;
        let steady = self.scenario.phases.steady;
        rec.with(|r| r.phases.insert(Phase::Steady, (t0, t0 + ms(steady))));
        rec.event(EventKind::PhaseStart, "steady");
        self.progress.set_phase("steady");
        if sleep_or_cancel(steady, self.cancel).await {
            driven.note = Some("interrupted during the steady phase".into());
            return None;
        }
        Some(())
    }

    /// The hypothesis must hold before anything is broken. A request is recorded when its
    /// answer arrives: a slow service may not have answered any of the steady phase's yet, so
    /// wait (at most the load's timeout) for the first before judging.
    async fn steady_state_holds(&self, driven: &mut Driven) -> Option<()> {
        let rec = &self.lab.recorder;
        let answered_by = Instant::now() + self.scenario.load.timeout;
        while rec.with(|r| r.requests_in(Phase::Steady).next().is_none())
            && Instant::now() < answered_by
        {
            if sleep_or_cancel(Duration::from_millis(100), self.cancel).await {
                break;
            }
        }
        let snapshot = rec.snapshot();
        let steady_reqs: Vec<_> = snapshot.requests_in(Phase::Steady).collect();
        let steady = checks::status(
            &snapshot,
            Phase::Steady,
            &steady_reqs,
            &self.scenario.expect.steady,
        );
        if steady.verdict == Verdict::Fail {
            driven.note = Some(format!(
                "steady state did not hold, so no fault was injected: {}",
                steady.summary
            ));
            driven.checks.push(steady);
            return None;
        }
        Some(())
    }

    /// A dependency the service never reached through its proxy cannot be faulted: say so
    /// rather than pass a fault that touched nothing.
    fn dependencies_used(&self, driven: &mut Driven) -> Option<()> {
        // The dependencies a fault acts on through their proxy or their stub.
        let faulted: Vec<&str> = self
            .scenario
            .faults
            .iter()
            .filter_map(|f| match &f.fault {
                Fault::Network(n) => Some(n.target.0.as_str()),
                Fault::Dependency(d) => Some(d.target.as_str()),
                _ => None,
            })
            .collect();
        let unused = self.lab.unused_dependencies(&faulted);
        if unused.is_empty() {
            return Some(());
        }
        for (name, addr) in &unused {
            driven.checks.push(CheckResult::new(
                "dependency",
                Some(Phase::Steady),
                Verdict::Fail,
                format!(
                    "the service never connected to `{name}` through the lab's proxy ({addr}) \
                     while it started and served the steady phase: it does not use the address \
                     the lab gave it (`{{deps.{name}.…}}`), so a fault on `{name}` \
                     would test nothing"
                ),
            ));
        }
        driven.note =
            Some("a dependency was never used through its proxy, so no fault was injected".into());
        None
    }

    /// Fault phase: inject on schedule, revert on schedule (or at once on cancel/error).
    async fn faults(&self, journal: &Journal, t0: f64, driven: &mut Driven) -> Option<f64> {
        let rec = &self.lab.recorder;
        let fault_start = rec.now_ms();
        rec.event(EventKind::PhaseStart, "fault");
        self.progress.set_phase("fault");
        let phase_began = Instant::now();
        let injector = Injector::new(self.lab, journal);
        let mut active: Vec<(usize, Injected)> = Vec::new();
        let mut interrupted = false;
        for (at, inject, i) in fault_schedule(self.scenario) {
            let wait = at.saturating_sub(phase_began.elapsed());
            if !interrupted && sleep_or_cancel(wait, self.cancel).await {
                interrupted = true;
            }
            let fault = &self.scenario.faults[i].fault;
            if inject {
                if interrupted || driven.note.is_some() {
                    continue;
                }
                match injector.inject_new(fault, &fault.describe()).await {
                    Ok(injected) => active.push((i, injected)),
                    Err((e, leftover)) => {
                        if let Some(injected) = leftover {
                            active.push((i, injected));
                        }
                        driven.note = Some(match e {
                            FaultError::Unsupported(why) => format!("skipped: {why}"),
                            FaultError::Failed(why) => {
                                format!("the fault could not be injected: {why}")
                            }
                        });
                    }
                }
            } else {
                let pos = active.iter().position(|(j, _)| *j == i);
                if let Some(pos) = pos {
                    let (_, mut injected) = active.remove(pos);
                    revert(&injector, &mut injected, driven).await;
                }
            }
        }
        // Anything still active (interrupted or failed) is reverted now.
        for (_, mut injected) in active.drain(..).rev() {
            revert(&injector, &mut injected, driven).await;
        }
        let fault_end = rec.now_ms();
        rec.with(|r| {
            r.phases.insert(Phase::Steady, (t0, fault_start));
            r.phases.insert(Phase::Fault, (fault_start, fault_end));
        });
        if interrupted {
            driven.note = Some("interrupted; every fault was reverted".into());
            return None;
        }
        if driven.note.is_some() {
            return None;
        }
        Some(fault_end)
    }

    /// The recovery phase lasts as long as the scenario says at most, and ends sooner once its
    /// answer is known: after [`SETTLE_AT_LEAST`], as soon as no request has failed for
    /// [`SETTLE_QUIET`] and every check of the recovery phase (and the data's, where the
    /// scenario has them) passes on what was recorded so far. A service that has not recovered
    /// keeps the whole phase, so its evidence is complete. Requests sent before the end and
    /// answered after it still count: the checks run once the load has drained.
    async fn recovery(&self, fault_end: f64, driven: &mut Driven) -> Option<()> {
        let rec = &self.lab.recorder;
        let longest = self.scenario.phases.recovery;
        rec.with(|r| {
            r.phases
                .insert(Phase::Recovery, (fault_end, fault_end + ms(longest)))
        });
        rec.event(EventKind::PhaseStart, "recovery");
        self.progress.set_phase("recovery");
        let began = Instant::now();
        let mut wait = SETTLE_AT_LEAST.min(longest);
        loop {
            if sleep_or_cancel(wait, self.cancel).await {
                driven.note = Some("interrupted during recovery".into());
                return None;
            }
            let elapsed = began.elapsed();
            if elapsed >= longest {
                return Some(());
            }
            if self.settled(fault_end).await {
                let end = rec.now_ms();
                rec.with(|r| r.phases.insert(Phase::Recovery, (fault_end, end)));
                rec.event(
                    EventKind::Note,
                    format!(
                        "recovery settled after {:.1}s of at most {:.0}s: no failure for {}s and every recovery check passes",
                        elapsed.as_secs_f64(),
                        longest.as_secs_f64(),
                        SETTLE_QUIET.as_secs()
                    ),
                );
                return Some(());
            }
            wait = SETTLE_EVERY.min(longest - elapsed);
        }
    }

    /// Whether the recovery phase's answer is known already (see [`Driver::recovery`]).
    async fn settled(&self, fault_end: f64) -> bool {
        let now = self.lab.recorder.now_ms();
        let mut snapshot = self.lab.recorder.snapshot();
        // Answers to the last seconds' requests, and none of them a failure. (A request still
        // in flight is not here yet; if it fails later it still counts against the phase.)
        let quiet_from = now - ms(SETTLE_QUIET);
        let (mut answered, mut failed) = (0usize, false);
        for r in snapshot.requests.iter().filter(|r| r.at_ms >= quiet_from) {
            answered += 1;
            failed |= r.status().is_none_or(|s| s >= 500);
        }
        if failed || answered == 0 {
            return false;
        }
        snapshot.phases.insert(Phase::Recovery, (fault_end, now));
        let judged = checks::evaluate(self.scenario, &snapshot);
        if judged
            .iter()
            .any(|c| c.phase == Some(Phase::Recovery) && c.verdict == Verdict::Fail)
        {
            return false;
        }
        if self.scenario.contract.checks_data() && !self.lab.database_url.is_empty() {
            let data =
                checks::data_integrity(&self.lab.database_url, self.scenario, &snapshot).await;
            return data.verdict != Verdict::Fail;
        }
        true
    }
}

/// The shortest a recovery phase lasts before it may end early.
const SETTLE_AT_LEAST: Duration = Duration::from_secs(4);
/// How long no request may have failed before the recovery phase ends early.
const SETTLE_QUIET: Duration = Duration::from_secs(2);
/// How often the recovery phase asks whether it has settled.
const SETTLE_EVERY: Duration = Duration::from_millis(500);

/// When each fault is injected (`true`) and reverted, by index, in order; at the same moment
/// a revert goes before an injection.
fn fault_schedule(scenario: &Scenario) -> Vec<(Duration, bool, usize)> {
    let mut schedule: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, f) in scenario.faults.iter().enumerate() {
        schedule.push((f.start, true, i));
        schedule.push((f.start + f.duration, false, i));
    }
    schedule.sort_by_key(|(at, inject, _)| (*at, !*inject));
    schedule
}

/// Alerts resolve some time after the errors stop (their windows must empty). Keep the lab's
/// monitoring up until every expected alert that fired has resolved, or its deadline passed.
async fn wait_for_resolutions(
    scenario: &Scenario,
    lab: &Lab,
    revert_ms: f64,
    cancel: &CancellationToken,
    progress: &Progress,
) {
    use crate::monitoring::AlertStatus;
    let Some(longest) = scenario
        .alerts
        .expect
        .iter()
        .filter_map(|a| a.resolves_within)
        .max()
    else {
        return;
    };
    progress.set_phase(crate::progress::ALERTS_RESOLVING);
    lab.recorder
        .event(EventKind::PhaseStart, crate::progress::ALERTS_RESOLVING);
    let deadline = revert_ms + ms(longest) + 1000.0;
    loop {
        lab.collect_alerts();
        let pending = lab.recorder.with(|r| {
            scenario.alerts.expect.iter().any(|a| {
                let fired = r
                    .alerts
                    .iter()
                    .any(|n| n.alert == a.name && n.status == AlertStatus::Firing);
                let resolved = r.alerts.iter().any(|n| {
                    n.alert == a.name && n.status == AlertStatus::Resolved && n.at_ms >= revert_ms
                });
                a.resolves_within.is_some() && fired && !resolved
            })
        });
        if !pending || lab.recorder.now_ms() > deadline {
            return;
        }
        if sleep_or_cancel(Duration::from_millis(250), cancel).await {
            return;
        }
    }
}

async fn revert(injector: &Injector<'_>, injected: &mut Injected, driven: &mut Driven) {
    let what = injected.fault.describe();
    if let Err(why) = injector.revert(injected, &what, 3).await {
        injector
            .lab
            .recorder
            .event(EventKind::Note, format!("revert failed: {what}: {why}"));
        driven.note = Some(format!(
            "could not revert {what}: {why}; the journal keeps it for `fivehundred recover`"
        ));
        driven.unreverted = true;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sleeps; returns true if cancelled first.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

/// Health probes every 250 ms, metrics every 500 ms, and a watch on the target process.
pub(crate) fn start_samplers(
    lab: &Lab,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a plain HTTP client builds");
    let mut tasks = Vec::new();
    let paths = [
        ("livez", lab.health.liveness.clone()),
        ("readyz", lab.health.readiness.clone()),
    ];
    for (endpoint, path) in paths {
        let Some(path) = path else { continue };
        let (client, stop, rec) = (client.clone(), stop.clone(), lab.recorder.clone());
        let url = format!("{}{path}", lab.base_url);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => break,
                }
                let (status, body) = match client.get(&url).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        (Some(s), r.text().await.ok())
                    }
                    Err(_) => (None, None),
                };
                // Stamped when the answer arrived: it tells the state at that moment, and a
                // probe sent just before an injection must not count against steady state.
                let at_ms = rec.now_ms();
                rec.with(|r| {
                    r.probes.push(ProbeRecord {
                        at_ms,
                        endpoint: endpoint.into(),
                        status,
                        body,
                    })
                });
            }
        }));
    }
    if let Some(url) = lab.metrics_url.clone() {
        let (stop, rec) = (stop.clone(), lab.recorder.clone());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTP client builds");
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => break,
                }
                let at_ms = rec.now_ms();
                let text = match client.get(&url).send().await {
                    Ok(r) => r.text().await.ok(),
                    Err(_) => None,
                };
                if let Some(text) = text {
                    let values = parse_prometheus_text(&text)
                        .into_iter()
                        .filter(|(k, _)| !k.contains("_bucket{"))
                        .collect();
                    rec.with(|r| r.metrics.push(MetricsSample { at_ms, values }));
                }
            }
        }));
    }
    tasks
}

/// Directory of the built-in scenario catalogue: `./scenarios` when it exists (a checkout or a
/// project that keeps its own), else the one this binary was built from.
pub fn default_catalogue() -> PathBuf {
    let local = PathBuf::from("scenarios");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}
