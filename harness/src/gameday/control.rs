//! The game day's control: the faults injected by hand, each with a deadline after which the lab
//! reverts it by itself, the kill switch, the abort conditions, the load, and the log of who did
//! what and when.
//!
//! Every injection is journalled before it happens and marked reverted only after a verified
//! revert, with the same [`Journal`] a scenario run uses, so `fivehundred recover` undoes what a
//! killed lab left behind. Operations that change faults run one at a time (`ops`), so a halt
//! never races an injection still under way: it waits for it, then reverts it too.
//!
//! - `faults`: injecting, reverting and halting.
//! - `toxics`: the toxics Toxiproxy's clients add to the lab's proxies, journalled and recorded
//!   like faults.
//! - `load`: the lab's load: started, stopped, resumed after a halt, drained at the end.
//! - `clock`: what happens with time: deadlines and retried reverts, alerts, abort conditions.
//! - `rules`: the decisions these make (what conflicts, what the target was not started for,
//!   which faults a revert picks, which are due), as plain functions of the state; `tests`
//!   holds them to it.
//! - this file: the vocabulary (who, what, the log), the game day's state, and its views.

mod clock;
mod faults;
mod load;
mod rules;
mod toxics;

pub use toxics::ToxicView;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::abort::AbortCondition;
use super::live::Live;
use super::params::{FaultInputError, FaultRequest, fault_table, table_to_json};
use crate::faults::{Fault, Injected};
use crate::journal::Journal;
use crate::lab::Lab;
use crate::load::MixEntry;
use crate::scenario::Scenario;

/// How often a revert that failed is tried again.
const REVERT_RETRY: Duration = Duration::from_secs(5);

/// Who asked for something: the command line, the dashboard, the lab itself (a deadline, an
/// abort condition, shutting down), or a client of the lab's Toxiproxy API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    Cli,
    Page,
    Lab,
    Toxiproxy,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Who::Cli => "cli",
            Who::Page => "page",
            Who::Lab => "lab",
            Who::Toxiproxy => "toxiproxy",
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
    /// None for a toxic added through the Toxiproxy API: it stays until removed or halted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<f64>,
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
    pub catalogue: super::params::Catalogue,
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
    /// The toxics added through the Toxiproxy API, being added and in place.
    toxics: toxics::ToxicBook,
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
    /// The lab's proxies by name, for Toxiproxy's API served beside the control API: toxics
    /// added through it sit beside the harness's own faults (a proxy keeps them apart), and
    /// `halt` removes them.
    pub toxiproxy: Arc<crate::toxiproxy::registry::Registry>,
}

impl std::fmt::Debug for GameDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameDay")
            .field("lab", &self.lab)
            .finish_non_exhaustive()
    }
}

/// Ends fault window `id`: reverted at `at` by `by`, `how` completing "reverted ...".
fn close_window(windows: &mut [FaultWindow], id: u64, at: f64, by: Who, how: &str) {
    if let Some(w) = windows.iter_mut().find(|w| w.id == id) {
        w.reverted_at_ms = Some(at);
        w.reverted_by = Some(by);
        w.how = Some(how.to_string());
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
        let settings_seed = settings.seed;
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
            toxiproxy: Arc::new(crate::toxiproxy::registry::Registry::new(settings_seed)),
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

#[cfg(test)]
mod tests;
