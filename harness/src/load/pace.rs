//! Waiting for a request's due time to within microseconds, so that the generator's own timing
//! error stays out of the latencies it records (they run from the due time).
//!
//! tokio's timers have a resolution of one millisecond: a request due 0.3 ms from now would go
//! out up to 0.7 ms late, more than a whole loopback round trip. On Linux the wait is a
//! `timerfd` (a high-resolution kernel timer the runtime polls like a socket), armed early by as
//! much as it has lately been late to wake us (on a virtual machine, tens of microseconds and
//! more), and the rest of the wait is spent yielding to other tasks while the clock is read. The
//! spin is kept to at most [`SPIN_SHARE`] of the time between requests and [`MAX_SPIN`], so its
//! cost is bounded whatever the rate. Elsewhere, or when no timerfd can be had, tokio's timer is
//! used.
//!
//! Arming a timer is not free: on the 2-core virtual machine the benchmarks run on, profiling
//! at 60,000 requests/s found a sixth of the generator's time in `timerfd_settime` (each arming
//! reprograms the hardware timer, which a virtual machine traps). So the timer is armed at most
//! once per [`MIN_ARM_GAP`]: above 5,000 requests/s, requests go out in small batches, each at
//! most that late, instead of one wake-up each. And the timer for the next request is armed
//! as soon as the timer for this one has woken us, before this one is sent: armed after the
//! send, the trapped write lands while the answer is on its way, and reading the answer waits
//! for it (measured: the p50 of a loopback round trip went from twice wrk's to wrk's).

use std::time::Duration;

use tokio::time::Instant;

/// The longest spin before a due time.
const MAX_SPIN: Duration = Duration::from_micros(200);
/// The largest share of the time between two requests spent spinning.
const SPIN_SHARE: f64 = 0.1;
/// The shortest time between two wake-ups by the timer.
const MIN_ARM_GAP: Duration = Duration::from_micros(200);
/// Wake-ups closer than this are the same one. The next request's wake-up is computed twice,
/// once from this request's due time plus an interval (to arm early) and once from the
/// schedule's own due time, and the two differ by floating-point rounding: compared exactly,
/// every other request re-armed the timer for a few nanoseconds' difference, after its send,
/// and the trapped system call delayed reading its answer (seen with strace at 850/s).
const SAME_WAKE: Duration = Duration::from_micros(1);

pub(super) struct Pacer {
    #[cfg(target_os = "linux")]
    timer: Option<timer::Timer>,
    /// The longest spin allowed at this rate.
    max_spin: Duration,
    /// How late the timer has lately woken us: rises at once to a late wake-up, decays slowly,
    /// so it follows the timer's worse wake-ups rather than its typical one.
    lateness: Duration,
    /// When the timer last woke us.
    last_wake: Option<Instant>,
    /// Time between two requests.
    interval: Duration,
    /// The wake-up the timer is armed for, if any.
    armed_for: Option<Instant>,
}

impl Pacer {
    /// A pacer for requests `rate` per second apart.
    pub(super) fn new(rate: f64) -> Pacer {
        Pacer {
            #[cfg(target_os = "linux")]
            timer: timer::Timer::new()
                .inspect_err(
                    |e| tracing::debug!(error = %e, "no timerfd; pacing with tokio's timer"),
                )
                .ok(),
            max_spin: Duration::from_secs_f64(SPIN_SHARE / rate).min(MAX_SPIN),
            lateness: Duration::ZERO,
            last_wake: None,
            interval: Duration::from_secs_f64(1.0 / rate),
            armed_for: None,
        }
    }

    /// Returns at `due` or just after it (at most [`MIN_ARM_GAP`] after it).
    pub(super) async fn wait_until(&mut self, due: Instant) {
        let wake = self.wake_for(due);
        if Instant::now() < wake {
            // A timer can come back early (a stale expiry): check the clock, not the timer.
            while Instant::now() < wake {
                self.sleep_until(wake).await;
            }
            let now = Instant::now();
            self.note_lateness(now.saturating_duration_since(wake));
            self.last_wake = Some(now);
            // The next request is most likely due one interval later: arm for it now.
            let next = self.wake_for(due + self.interval);
            self.arm(next);
        }
        while Instant::now() < due {
            tokio::task::yield_now().await;
        }
    }

    /// When to wake for a request due at `due`.
    fn wake_for(&self, due: Instant) -> Instant {
        // A little more than the timer's recent lateness, so that a typical wake-up is early.
        let spin =
            (self.lateness + self.lateness / 4 + Duration::from_micros(5)).min(self.max_spin);
        let wake = due.checked_sub(spin).unwrap_or(due);
        match self.last_wake {
            Some(last) => wake.max(last + MIN_ARM_GAP),
            None => wake,
        }
    }

    fn note_lateness(&mut self, late: Duration) {
        self.lateness = if late > self.lateness {
            late.min(MAX_SPIN)
        } else {
            self.lateness - (self.lateness - late) / 16
        };
    }

    /// Arms the timer for `at`, unless it already is.
    fn arm(&mut self, at: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(timer) = &self.timer {
            if self
                .armed_for
                .is_some_and(|a| a.max(at).duration_since(a.min(at)) < SAME_WAKE)
            {
                return;
            }
            match timer.arm(at) {
                Ok(()) => self.armed_for = Some(at),
                Err(e) => {
                    tracing::debug!(error = %e, "timerfd failed; pacing with tokio's timer");
                    self.timer = None;
                }
            }
        }
    }

    async fn sleep_until(&mut self, at: Instant) {
        self.arm(at);
        #[cfg(target_os = "linux")]
        if let Some(timer) = &self.timer {
            let woke = timer.wait().await;
            // Expired (or failed): armed for nothing now.
            self.armed_for = None;
            match woke {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "timerfd failed; pacing with tokio's timer");
                    self.timer = None;
                }
            }
        }
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(target_os = "linux")]
mod timer {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    /// `AsyncFd` wants `AsRawFd`; nix's `TimerFd` offers `AsFd`.
    struct Fd(TimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub(super) struct Timer(AsyncFd<Fd>);

    impl Timer {
        pub(super) fn new() -> io::Result<Timer> {
            // CLOCK_MONOTONIC is the clock `Instant` reads.
            let fd = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // The safe constructor is deprecated because an `AsRawFd` could hand out a descriptor
            // it does not own; `Fd` owns its timer for as long as the `AsyncFd` lives, which is
            // the condition the unsafe replacement asks for (and this crate allows no unsafe).
            #[allow(deprecated)]
            let fd = AsyncFd::with_interest(Fd(fd), Interest::READABLE)?;
            Ok(Timer(fd))
        }

        /// Arms the timer to expire at about `at` (at once if that has passed).
        pub(super) fn arm(&self, at: Instant) -> io::Result<()> {
            // A zero expiry would disarm it; a nanosecond expires at once.
            let left = at
                .saturating_duration_since(Instant::now())
                .max(std::time::Duration::from_nanos(1));
            self.0.get_ref().0.set(
                Expiration::OneShot(TimeSpec::from_duration(left)),
                TimerSetTimeFlags::empty(),
            )?;
            Ok(())
        }

        /// Waits for the armed timer to expire; may return early, on an expiry left from an
        /// earlier arming (the caller checks the clock).
        pub(super) async fn wait(&self) -> io::Result<()> {
            loop {
                let mut ready = self.0.readable().await?;
                // Reading the expiry count re-arms readiness; EAGAIN means not expired yet.
                match ready.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                    Ok(result) => {
                        // The expiry is read: not readable until it is armed and expires again.
                        // (Left set, the next wait would begin with a read that finds nothing.)
                        ready.clear_ready();
                        return result;
                    }
                    Err(_would_block) => continue,
                }
            }
        }
    }
}
