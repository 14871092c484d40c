//! The game day's control: the faults injected by hand, each with a deadline after which the lab
//! reverts it by itself, the kill switch, the abort conditions, the load, and the log of who did
//! what and when.
//!
//! Every injection is journalled before it happens and marked reverted only after a verified
//! revert, with the same [`Journal`] a scenario run uses, so `fivehundred recover` undoes what a
//! killed lab left behind. Operations that change faults run one at a time (`ops`), so a halt
//! never races an injection still under way: it waits for it, then reverts it too.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::abort::AbortCondition;
use super::live::Live;
use super::params::{FaultInputError, FaultRequest, fault_table, table_to_json};
use crate::faults::{Fault, FaultError, Injected, Injector};
use crate::journal::Journal;
use crate::lab::Lab;
use crate::load::{LoadPlan, MixEntry};
use crate::monitoring::AlertStatus;
use crate::record::{EventKind, RequestRecord};
use crate::scenario::Scenario;

/// How often a revert that failed is tried again.
const REVERT_RETRY: Duration = Duration::from_secs(5);

/// Who asked for something: the command line, the dashboard, or the lab itself (a deadline, an
/// abort condition, shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    Cli,
    Page,
    Lab,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Who::Cli => "cli",
            Who::Page => "page",
            Who::Lab => "lab",
        })
    }
}

/// What the game-day log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Inject,
    /// An injection that did not work (what it did is reverted).
    InjectFailed,
    Revert,
    /// A revert that did not work (the fault stays active and is tried again).
    RevertFailed,
    Halt,
    Abort,
    Resume,
}

/// One line of the game-day log.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub at_ms: f64,
    /// Wall-clock time, RFC 3339 UTC.
    pub at: String,
    pub action: Action,
    pub by: Who,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_id: Option<u64>,
    pub detail: String,
}

/// A fault that is in place now.
#[derive(Debug, Clone)]
struct Active {
    id: u64,
    fault: Fault,
    name: Option<String>,
    by: Who,
    injected_at_ms: f64,
    deadline_ms: f64,
    for_: Duration,
    /// The timeline event's text; the revert's text starts with it, which is how reports pair
    /// an injection with its revert.
    label: String,
    revert_error: Option<String>,
    retry_at_ms: f64,
}

/// An injection and, once it happened, its revert: a fault window on the timeline and in the
/// postmortem.
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub id: u64,
    pub fault: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub injected_at_ms: f64,
    pub injected_by: Who,
    pub deadline_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverted_at_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverted_by: Option<Who>,
    /// How it ended: `reverted by cli`, `at its deadline`, `by the halt`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    /// The fault itself, for the report's scenario.
    #[serde(skip)]
    pub spec: Option<Fault>,
}

/// An active fault as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveView {
    pub id: u64,
    pub fault: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fault as the table a scenario file would hold.
    pub spec: serde_json::Map<String, serde_json::Value>,
    pub by: Who,
    pub injected_at_ms: f64,
    pub injected_at: String,
    pub deadline_ms: f64,
    pub deadline_at: String,
    pub remaining_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_error: Option<String>,
}

/// Why an operation was refused or failed; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(FaultInputError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("unsupported here: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
    #[error("the lab is stopping")]
    Stopping,
}

/// Which faults `revert` is about.
#[derive(Debug, Clone)]
pub enum Selector {
    All,
    Id(u64),
    Matching(FaultRequest),
}

/// What a halt did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HaltOutcome {
    pub reverted: Vec<String>,
    pub failed: Vec<String>,
    pub load_stopped: bool,
}

/// How the lab was set up; fixed while it runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub default_for: Duration,
    pub aborts: Vec<AbortCondition>,
    pub catalogue: PathBuf,
    pub scenario: Option<Scenario>,
    pub rate: f64,
    pub mix: Vec<MixEntry>,
    pub load_timeout: Duration,
    pub seed: u64,
    /// How the target was started; a fault that needs more is refused (see `lab up --prepare`).
    pub needs: crate::target::TargetNeeds,
}

#[derive(Debug, Default)]
struct State {
    active: Vec<Active>,
    windows: Vec<FaultWindow>,
    log: Vec<LogEntry>,
    /// The abort condition that last halted the lab, and why.
    aborted: Option<String>,
    stopping: bool,
}

#[derive(Debug, Default)]
struct LoadState {
    rate: f64,
    running: Option<CancellationToken>,
    /// Loads started so far: each gets its own seed, so a resumed load is not a replay.
    started: u64,
    /// Every load task, to wait for their last requests at teardown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A running game day: the lab and everything done to it.
pub struct GameDay {
    pub lab: Lab,
    journal: Journal,
    pub settings: Settings,
    pub started_wall: DateTime<Utc>,
    ops: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// What each active fault holds, by id, for its revert.
    injected: Mutex<std::collections::HashMap<u64, Injected>>,
    live: Mutex<Live>,
    load: Mutex<LoadState>,
    /// Cancelled to stop the lab (`lab down`, or the API's `/api/stop`).
    pub stop: CancellationToken,
}

impl std::fmt::Debug for GameDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameDay")
            .field("lab", &self.lab)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the faults unreachable: the data is still good.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GameDay {
    pub fn new(
        lab: Lab,
        journal: Journal,
        settings: Settings,
        started_wall: DateTime<Utc>,
    ) -> Self {
        GameDay {
            lab,
            journal,
            settings,
            started_wall,
            ops: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            injected: Mutex::new(std::collections::HashMap::new()),
            live: Mutex::new(Live::default()),
            load: Mutex::new(LoadState::default()),
            stop: CancellationToken::new(),
        }
    }

    /// Parts the teardown needs by value.
    pub fn into_parts(self) -> (Lab, Journal) {
        (self.lab, self.journal)
    }

    pub fn now_ms(&self) -> f64 {
        self.lab.recorder.now_ms()
    }

    /// A moment of the run as wall-clock time.
    pub fn wall(&self, at_ms: f64) -> DateTime<Utc> {
        self.started_wall + chrono::Duration::milliseconds(at_ms as i64)
    }

    fn log(&self, action: Action, by: Who, fault_id: Option<u64>, detail: impl Into<String>) {
        let at_ms = self.now_ms();
        let detail = detail.into();
        // The lab's own terminal shows every action as it happens.
        eprintln!(
            "{}  {by:>4}  {}",
            self.wall(at_ms)
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S"),
            detail
        );
        lock(&self.state).log.push(LogEntry {
            at_ms,
            at: self
                .wall(at_ms)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            action,
            by,
            fault_id,
            detail,
        });
    }

    // --- load ---------------------------------------------------------------------------------

    /// Starts the load at `rate` requests per second (none at 0). Open loop, like a scenario's,
    /// bounded by a week: beyond any game day.
    pub fn start_load(&self, rate: f64) -> Result<(), String> {
        let mut load = lock(&self.load);
        if let Some(c) = load.running.take() {
            c.cancel();
        }
        load.rate = rate;
        if rate <= 0.0 {
            return Ok(());
        }
        let mut plan = LoadPlan::new(&self.lab.base_url, rate, self.settings.mix.clone());
        plan.duration = Some(Duration::from_secs(7 * 24 * 3600));
        plan.timeout = self.settings.load_timeout;
        plan.seed = self.settings.seed.wrapping_add(load.started);
        load.started += 1;
        let rec = self.lab.recorder.clone();
        let start = rec.start;
        let sink = move |r: RequestRecord| rec.with(|recording| recording.requests.push(r));
        let cancel = CancellationToken::new();
        let handle =
            crate::load::start(&plan, start, sink, cancel.clone()).map_err(|e| e.to_string())?;
        load.tasks.push(tokio::spawn(async move {
            handle.wait().await;
        }));
        load.running = Some(cancel);
        Ok(())
    }

    /// Stops scheduling requests; those in flight finish on their own. True if a load ran.
    pub fn stop_load(&self) -> bool {
        let mut load = lock(&self.load);
        match load.running.take() {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }

    pub fn load_running(&self) -> (bool, f64) {
        let load = lock(&self.load);
        (load.running.is_some(), load.rate)
    }

    /// Waits (at most `limit`) for the last requests of every load to be recorded.
    pub async fn drain_load(&self, limit: Duration) {
        self.stop_load();
        let tasks = std::mem::take(&mut lock(&self.load).tasks);
        let _ = tokio::time::timeout(limit, futures::future::join_all(tasks)).await;
    }

    /// Starts the load again after a halt, at `rate` or the lab's rate.
    pub async fn resume(&self, rate: Option<f64>, by: Who) -> Result<f64, ControlError> {
        let _op = self.ops.lock().await;
        if lock(&self.state).stopping {
            return Err(ControlError::Stopping);
        }
        let rate = rate.unwrap_or(self.settings.rate);
        if !(rate.is_finite() && (0.0..=10_000.0).contains(&rate)) {
            return Err(ControlError::Failed(format!(
                "{rate} is not a rate between 0 and 10000 requests per second"
            )));
        }
        self.start_load(rate).map_err(ControlError::Failed)?;
        self.log(
            Action::Resume,
            by,
            None,
            format!("load resumed at {rate} requests per second"),
        );
        Ok(rate)
    }

    // --- faults -------------------------------------------------------------------------------

    /// Injects what `request` names, each fault with a deadline of `for_` (the lab's default
    /// when `None`). All or nothing: if one fault of a named set fails, those already injected
    /// are reverted.
    pub async fn inject(
        &self,
        request: &FaultRequest,
        for_: Option<Duration>,
        by: Who,
    ) -> Result<Vec<ActiveView>, ControlError> {
        let mut faults = request
            .resolve(&self.settings.catalogue)
            .map_err(ControlError::Invalid)?;
        for nf in &mut faults {
            nf.fault.use_load_mix(&self.settings.mix);
        }
        let for_ = for_.unwrap_or(self.settings.default_for);
        let _op = self.ops.lock().await;
        {
            let state = lock(&self.state);
            if state.stopping {
                return Err(ControlError::Stopping);
            }
            for nf in &faults {
                if let Some(a) = state.active.iter().find(|a| a.fault == nf.fault) {
                    return Err(ControlError::Conflict(format!(
                        "{} is already active as #{}; revert it first or change its parameters",
                        a.fault.describe(),
                        a.id
                    )));
                }
            }
        }
        for nf in &faults {
            let needs = nf
                .fault
                .preflight(&self.lab.target_setup().0.program)
                .map_err(|why| {
                    ControlError::Unsupported(format!("{} needs {why}", nf.fault.describe()))
                })?;
            // Covered when adding the fault's needs changes nothing: generic over whatever
            // needs a fault kind may have.
            let lab = &self.settings.needs;
            if lab.clone().merge(needs.clone()) != *lab {
                return Err(ControlError::Unsupported(format!(
                    "{} needs the target started for it ({}), which cannot change while it runs; start the lab with `--prepare {}`",
                    nf.fault.describe(),
                    needs,
                    nf.name.as_deref().unwrap_or("<a named fault of this kind>")
                )));
            }
        }
        let mut done: Vec<u64> = Vec::new();
        for nf in faults {
            match self.inject_one(&nf.fault, nf.name.clone(), for_, by).await {
                Ok(id) => done.push(id),
                Err(e) => {
                    for id in done.into_iter().rev() {
                        let _ = self
                            .revert_one(
                                id,
                                Who::Lab,
                                "after another fault of the same request failed",
                            )
                            .await;
                    }
                    return Err(e);
                }
            }
        }
        let views = self.active();
        Ok(views.into_iter().filter(|v| done.contains(&v.id)).collect())
    }

    async fn inject_one(
        &self,
        fault: &Fault,
        name: Option<String>,
        for_: Duration,
        by: Who,
    ) -> Result<u64, ControlError> {
        // Journalled (and synced) first: a fault that cannot be journalled is not injected.
        let injector = Injector::new(&self.lab, &self.journal);
        let mut injected = injector
            .journal(fault)
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        let id = injected.id;
        let label = format!(
            "#{id} {} (by {by}, for {})",
            fault.describe(),
            humantime::format_duration(for_)
        );
        let now = self.now_ms();
        let deadline_ms = now + for_.as_secs_f64() * 1000.0;
        // Active before the injection starts: if this task is cancelled or panics half-way,
        // the deadline, a halt or the lab's stop still reverts whatever was done.
        {
            let mut state = lock(&self.state);
            state.active.push(Active {
                id,
                fault: fault.clone(),
                name: name.clone(),
                by,
                injected_at_ms: now,
                deadline_ms,
                for_,
                label: label.clone(),
                revert_error: None,
                retry_at_ms: 0.0,
            });
            state.windows.push(FaultWindow {
                id,
                fault: fault.describe(),
                name,
                injected_at_ms: now,
                injected_by: by,
                deadline_ms,
                reverted_at_ms: None,
                reverted_by: None,
                how: None,
                spec: Some(fault.clone()),
            });
        }
        let result = injector.inject(&mut injected, &label).await;
        lock(&self.injected).insert(id, injected);
        if let Err(e) = result {
            self.log(
                Action::InjectFailed,
                by,
                Some(id),
                format!("#{id} {} could not be injected: {e}", fault.describe()),
            );
            // A half-done injection is reverted like a done one (and stays active, retried,
            // if that fails).
            let _ = self
                .revert_one(id, Who::Lab, "after its injection failed")
                .await;
            return Err(match e {
                FaultError::Unsupported(why) => ControlError::Unsupported(why),
                FaultError::Failed(why) => ControlError::Failed(format!(
                    "{} could not be injected: {why}",
                    fault.describe()
                )),
            });
        }
        self.log(
            Action::Inject,
            by,
            Some(id),
            format!(
                "injected #{id} {}; reverts by itself at {} (in {})",
                fault.describe(),
                self.wall(deadline_ms)
                    .with_timezone(&chrono::Local)
                    .format("%H:%M:%S"),
                humantime::format_duration(for_)
            ),
        );
        Ok(id)
    }

    /// Reverts active fault `id`; the caller holds `ops`. `how` completes "reverted ...".
    async fn revert_one(&self, id: u64, by: Who, how: &str) -> Result<String, String> {
        let Some(active) = lock(&self.state)
            .active
            .iter()
            .find(|a| a.id == id)
            .cloned()
        else {
            return Err(format!("#{id} is not active"));
        };
        let what = format!("#{id} {}", active.fault.describe());
        // What the injection holds; a fault whose injection was abandoned half-way (its task
        // cancelled) is reverted from its parameters alone.
        let mut injected = lock(&self.injected)
            .remove(&id)
            .unwrap_or_else(|| Injected::unheld(id, &active.fault));
        let result = Injector::new(&self.lab, &self.journal)
            .revert(
                &mut injected,
                &format!("{}: reverted {how}", active.label),
                3,
            )
            .await;
        if result.is_err() {
            lock(&self.injected).insert(id, injected);
        }
        match result {
            Ok(()) => {
                let at = self.now_ms();
                {
                    let mut state = lock(&self.state);
                    state.active.retain(|a| a.id != id);
                    if let Some(w) = state.windows.iter_mut().find(|w| w.id == id) {
                        w.reverted_at_ms = Some(at);
                        w.reverted_by = Some(by);
                        w.how = Some(how.to_string());
                    }
                }
                self.log(
                    Action::Revert,
                    by,
                    Some(id),
                    format!("reverted {what} {how}"),
                );
                Ok(what)
            }
            Err(why) => {
                let retry_at_ms = self.now_ms() + REVERT_RETRY.as_secs_f64() * 1000.0;
                {
                    let mut state = lock(&self.state);
                    if let Some(a) = state.active.iter_mut().find(|a| a.id == id) {
                        a.revert_error = Some(why.clone());
                        a.retry_at_ms = retry_at_ms;
                    }
                }
                self.lab.recorder.event(
                    EventKind::Note,
                    format!(
                        "revert failed: {what}: {why}; tried again every {}s",
                        REVERT_RETRY.as_secs()
                    ),
                );
                self.log(
                    Action::RevertFailed,
                    by,
                    Some(id),
                    format!("could not revert {what}: {why}; trying again"),
                );
                Err(format!("{what}: {why}"))
            }
        }
    }

    /// Reverts the faults `selector` picks. Returns what was reverted; a fault that could not
    /// be reverted stays active (and is tried again) and makes this an error.
    pub async fn revert(&self, selector: &Selector, by: Who) -> Result<Vec<String>, ControlError> {
        let wanted: Option<Vec<Fault>> = match selector {
            Selector::Matching(r) => Some(
                r.resolve(&self.settings.catalogue)
                    .map_err(ControlError::Invalid)?
                    .into_iter()
                    .map(|nf| nf.fault)
                    .collect(),
            ),
            _ => None,
        };
        let _op = self.ops.lock().await;
        let ids: Vec<u64> = {
            let state = lock(&self.state);
            state
                .active
                .iter()
                .filter(|a| match selector {
                    Selector::All => true,
                    Selector::Id(id) => a.id == *id,
                    Selector::Matching(_) => wanted.as_ref().is_some_and(|w| w.contains(&a.fault)),
                })
                .map(|a| a.id)
                .rev()
                .collect()
        };
        if ids.is_empty() && !matches!(selector, Selector::All) {
            let active = self.active();
            return Err(ControlError::NotFound(if active.is_empty() {
                "no fault is active".into()
            } else {
                format!(
                    "no active fault matches; active: {}",
                    active
                        .iter()
                        .map(|a| format!("#{} {}", a.id, a.fault))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }));
        }
        let mut reverted = Vec::new();
        let mut failed = Vec::new();
        for id in ids {
            match self.revert_one(id, by, &format!("by {by}")).await {
                Ok(what) => reverted.push(what),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() {
            Ok(reverted)
        } else {
            Err(ControlError::Failed(format!(
                "could not revert {}; it stays active and is tried again",
                failed.join("; ")
            )))
        }
    }

    /// The kill switch: stops the load, then reverts every active fault, newest first.
    pub async fn halt(&self, by: Who, why: Option<&str>) -> HaltOutcome {
        // The load stops first: that ends the harm at once, whatever the reverts take.
        let load_stopped = self.stop_load();
        let _op = self.ops.lock().await;
        let ids: Vec<u64> = lock(&self.state)
            .active
            .iter()
            .rev()
            .map(|a| a.id)
            .collect();
        let how = match why {
            Some(w) => format!("by the halt ({w})"),
            None => format!("by the halt ({by})"),
        };
        let mut out = HaltOutcome {
            load_stopped,
            ..Default::default()
        };
        for id in ids {
            match self.revert_one(id, by, &how).await {
                Ok(what) => out.reverted.push(what),
                Err(e) => out.failed.push(e),
            }
        }
        let mut detail = format!(
            "halt{}: {}; {}",
            why.map(|w| format!(" ({w})")).unwrap_or_default(),
            if out.reverted.is_empty() {
                "no fault was active".to_string()
            } else {
                format!("reverted {}", out.reverted.join(", "))
            },
            if load_stopped {
                "the load stopped"
            } else {
                "no load was running"
            }
        );
        if !out.failed.is_empty() {
            detail.push_str(&format!("; could not revert {}", out.failed.join(", ")));
        }
        self.lab
            .recorder
            .event(EventKind::Note, format!("{detail} (by {by})"));
        self.log(Action::Halt, by, None, detail);
        out
    }

    /// From now on every operation is refused; returns the halt that reverts what is left.
    pub async fn begin_stopping(&self, why: &str) -> HaltOutcome {
        let out = self.halt(Who::Lab, Some(why)).await;
        let _op = self.ops.lock().await;
        lock(&self.state).stopping = true;
        // A revert that failed in the halt gets its last tries here.
        let left: Vec<u64> = lock(&self.state).active.iter().map(|a| a.id).collect();
        let mut out = out;
        for id in left {
            if let Ok(what) = self.revert_one(id, Who::Lab, "as the lab stopped").await {
                out.failed.retain(|f| !f.starts_with(&what));
                out.reverted.push(what);
            }
        }
        out
    }

    /// Faults still active (only after a revert failed for good).
    pub fn unreverted(&self) -> Vec<String> {
        lock(&self.state)
            .active
            .iter()
            .map(|a| format!("#{} {}", a.id, a.fault.describe()))
            .collect()
    }

    // --- the clock: deadlines, alerts, abort conditions ---------------------------------------

    /// Reverts every fault whose deadline has passed, and retries failed reverts.
    pub async fn expire(&self) {
        let now = self.now_ms();
        let due: Vec<(u64, Duration, bool)> = lock(&self.state)
            .active
            .iter()
            .filter(|a| (a.deadline_ms <= now || a.revert_error.is_some()) && a.retry_at_ms <= now)
            .map(|a| (a.id, a.for_, a.deadline_ms <= now))
            .collect();
        if due.is_empty() {
            return;
        }
        let _op = self.ops.lock().await;
        for (id, for_, expired) in due {
            let how = if expired {
                format!("at its deadline ({})", humantime::format_duration(for_))
            } else {
                "on a retry".to_string()
            };
            let _ = self.revert_one(id, Who::Lab, &how).await;
        }
    }

    /// Collects alert notifications and what was recorded into the live view.
    pub fn refresh(&self) {
        self.lab.collect_alerts();
        lock(&self.live).update(&self.lab.recorder);
    }

    /// The alerts firing now: the last notification of each alert instance says firing.
    pub fn firing(&self) -> Vec<String> {
        self.lab.recorder.with(|r| {
            let mut last: std::collections::BTreeMap<&str, (&str, AlertStatus)> =
                Default::default();
            for n in &r.alerts {
                last.insert(&n.fingerprint, (&n.alert, n.status));
            }
            let mut names: Vec<String> = last
                .values()
                .filter(|(_, s)| *s == AlertStatus::Firing)
                .map(|(a, _)| a.to_string())
                .collect();
            names.sort();
            names.dedup();
            names
        })
    }

    /// Halts when an abort condition holds and there is something to halt. Returns the reason.
    pub async fn check_aborts(&self) -> Option<String> {
        if self.settings.aborts.is_empty() {
            return None;
        }
        let anything = !lock(&self.state).active.is_empty() || self.load_running().0;
        if !anything {
            return None;
        }
        let firing = self.firing();
        let now = self.now_ms();
        let why = {
            let live = lock(&self.live);
            self.settings.aborts.iter().find_map(|c| {
                let w = live.window(now, c.window().unwrap_or_default());
                c.check(&w, &firing).map(|why| format!("{c}: {why}"))
            })
        }?;
        lock(&self.state).aborted = Some(why.clone());
        self.lab
            .recorder
            .event(EventKind::Note, format!("abort: {why}; halting"));
        self.log(
            Action::Abort,
            Who::Lab,
            None,
            format!("abort: {why}; halting"),
        );
        self.halt(Who::Lab, Some(&format!("abort: {why}"))).await;
        Some(why)
    }

    // --- views --------------------------------------------------------------------------------

    pub fn active(&self) -> Vec<ActiveView> {
        let now = self.now_ms();
        let wall = |ms: f64| {
            self.wall(ms)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        lock(&self.state)
            .active
            .iter()
            .map(|a| ActiveView {
                id: a.id,
                fault: a.fault.describe(),
                name: a.name.clone(),
                spec: table_to_json(&fault_table(&a.fault)),
                by: a.by,
                injected_at_ms: a.injected_at_ms,
                injected_at: wall(a.injected_at_ms),
                deadline_ms: a.deadline_ms,
                deadline_at: wall(a.deadline_ms),
                remaining_s: ((a.deadline_ms - now) / 1000.0).max(0.0),
                revert_error: a.revert_error.clone(),
            })
            .collect()
    }

    pub fn windows(&self) -> Vec<FaultWindow> {
        lock(&self.state).windows.clone()
    }

    pub fn log_entries(&self) -> Vec<LogEntry> {
        lock(&self.state).log.clone()
    }

    pub fn aborted(&self) -> Option<String> {
        lock(&self.state).aborted.clone()
    }

    pub fn with_live<R>(&self, f: impl FnOnce(&mut Live) -> R) -> R {
        f(&mut lock(&self.live))
    }

    /// Error rate and p99 of the last `window`.
    pub fn recent(&self, window: Duration) -> Recent {
        let now = self.now_ms();
        let w = lock(&self.live).window(now, window);
        let mut l = w.latencies_ms.clone();
        Recent {
            window_s: window.as_secs_f64(),
            requests: w.requests,
            failures: w.errors,
            error_rate: (w.requests > 0).then(|| w.errors as f64 / w.requests as f64),
            p99_ms: crate::checks::quantile(&mut l, 0.99),
        }
    }
}

/// The last seconds in numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Recent {
    pub window_s: f64,
    pub requests: usize,
    /// 5xx answers and requests without an answer.
    pub failures: usize,
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The shared handle every task of the lab holds.
pub type Shared = Arc<GameDay>;
