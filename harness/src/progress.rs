//! Live counters of a running scenario (requests, errors, the phase), shared by the runner, the
//! load and whatever draws progress. A leaf module.

use std::sync::atomic::AtomicU64;

/// Live counters for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    phase: std::sync::Mutex<String>,
}

/// The phase a run reports while it waits for its alerts to resolve, its load over.
pub const ALERTS_RESOLVING: &str = "waiting for alerts to resolve";
/// The phase a run reports while its lab is taken down.
pub const TEARING_DOWN: &str = "tearing down";

impl Progress {
    /// Whether the run's load is over: it waits for alerts or tears its lab down.
    pub fn load_over(&self) -> bool {
        [ALERTS_RESOLVING, TEARING_DOWN].contains(&self.phase().as_str())
    }

    pub fn phase(&self) -> String {
        self.phase.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn set_phase(&self, p: impl Into<String>) {
        if let Ok(mut g) = self.phase.lock() {
            *g = p.into();
        }
    }
}
