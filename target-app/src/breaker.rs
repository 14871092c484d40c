//! A circuit breaker: after enough consecutive failures of a dependency, fail fast for a while
//! instead of making every request wait for it.
//!
//! Hand-written because it is small and the lesson: closed → (N failures) → open → (after
//! `open_for`) half-open, where one probe request goes through; its success closes the circuit,
//! its failure opens it again. Thresholds are read from the live tunables at each call, so a
//! config reload applies at once. (tower has no breaker; the crates that do are either
//! unmaintained or hide exactly the state machine a learner should see.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGauge;

/// The error a breaker answers while open.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {breaker} circuit breaker is open")]
pub struct Open {
    pub breaker: &'static str,
    /// When a retry has a chance: the rest of the open period.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub failure_threshold: u32,
    pub open_for: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight since `since`.
    HalfOpen {
        since: Instant,
    },
}

pub struct Breaker {
    name: &'static str,
    state: Mutex<State>,
    /// `app_circuit_state{breaker=name}`: 0 closed, 1 half-open, 2 open.
    gauge: IntGauge,
}

impl Breaker {
    pub fn new(name: &'static str, gauge: IntGauge) -> Breaker {
        gauge.set(0);
        Breaker {
            name,
            state: Mutex::new(State::Closed { failures: 0 }),
            gauge,
        }
    }

    /// Lets a call through, or says why not.
    pub fn check(&self, s: Settings) -> Result<(), Open> {
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(self.open(until - now)),
            State::Open { .. } => {
                // This call is the probe.
                self.set(&mut state, State::HalfOpen { since: now });
                Ok(())
            }
            // A probe is in flight; everyone else keeps failing fast until it reports.
            State::HalfOpen { since } if now.duration_since(since) < s.open_for => {
                Err(self.open(s.open_for - now.duration_since(since)))
            }
            // The probe never reported (its request was cancelled): let another one try.
            State::HalfOpen { .. } => {
                self.set(&mut state, State::HalfOpen { since: now });
                Ok(())
            }
        }
    }

    /// Records the outcome of a call that `check` let through.
    pub fn record(&self, success: bool, s: Settings) {
        let mut state = self.lock();
        let next = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < s.failure_threshold => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. } | State::HalfOpen { .. }, false) => State::Open {
                until: Instant::now() + s.open_for,
            },
            // A late failure of a call started before the circuit opened changes nothing.
            (open @ State::Open { .. }, false) => open,
        };
        self.set(&mut state, next);
    }

    /// `closed`, `half-open` or `open`, for /readyz.
    pub fn state_name(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::HalfOpen { .. } => "half-open",
            State::Open { .. } => "open",
        }
    }

    fn open(&self, retry_after: Duration) -> Open {
        Open {
            breaker: self.name,
            retry_after,
        }
    }

    fn set(&self, state: &mut State, next: State) {
        *state = next;
        self.gauge.set(match next {
            State::Closed { .. } => 0,
            State::HalfOpen { .. } => 1,
            State::Open { .. } => 2,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        failure_threshold: 2,
        open_for: Duration::from_millis(50),
    };

    fn breaker() -> Breaker {
        Breaker::new("test", IntGauge::new("g", "g").unwrap())
    }

    #[test]
    fn it_opens_after_the_threshold_of_consecutive_failures() {
        let b = breaker();
        b.check(S).unwrap();
        b.record(false, S);
        b.record(true, S);
        b.record(false, S);
        assert_eq!(b.state_name(), "closed", "a success resets the count");
        b.record(false, S);
        assert_eq!(b.state_name(), "open");
        let open = b.check(S).unwrap_err();
        assert!(open.retry_after <= S.open_for);
    }

    #[test]
    fn after_open_for_one_probe_goes_through_and_its_success_closes_the_circuit() {
        let b = breaker();
        b.record(false, S);
        b.record(false, S);
        std::thread::sleep(S.open_for);
        b.check(S).expect("the probe");
        assert_eq!(b.state_name(), "half-open");
        b.check(S).expect_err("only one probe at a time");
        b.record(true, S);
        assert_eq!(b.state_name(), "closed");
        b.check(S).unwrap();
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let b = breaker();
        b.record(false, S);
        b.record(false, S);
        std::thread::sleep(S.open_for);
        b.check(S).unwrap();
        b.record(false, S);
        assert_eq!(b.state_name(), "open");
    }
}
