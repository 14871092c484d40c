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

impl Progress {
    pub fn phase(&self) -> String {
        self.phase.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn set_phase(&self, p: impl Into<String>) {
        if let Ok(mut g) = self.phase.lock() {
            *g = p.into();
        }
    }
}
