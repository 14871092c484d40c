//! The connection tasks' shared state, and when it opens another connection.
//!
//! A request that finds no idle connection waits in a queue, taken from by whichever connection
//! is free first: one that finishes its request, or one being opened for it. A connection is
//! opened for the queue (at most [`MAX_CONNECTING`] at a time) when:
//! - none has finished a request for [`STALLED_AFTER`]: a target that stops answering gets a
//!   connection per request in flight, as the open loop needs (at the rates of a scenario,
//!   requests are further apart than that, so a slow target always gets a new connection);
//! - there are fewer than the load needs by Little's law, counted with the fastest recent
//!   service time and a margin ([`LITTLE_MARGIN`], [`SPARE_CONNECTIONS`]): a target that is
//!   slow for every request gets as many connections as it holds requests.
//!
//! Opening a connection for every request that found none idle was the first design. Near the
//! machine's capacity, and after each hiccup of the machine (a few milliseconds without CPU,
//! hundreds of requests overdue at once), it opened hundreds of connections, which cost the
//! target more than the backlog and made the next hiccup worse; Little's law with the mean
//! service time did the same, since queueing in this thread lengthens the mean.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Assignment, Job};

/// Connections being opened at once, at most.
const MAX_CONNECTING: usize = 4;
/// When no connection has finished a request for this long, the queue gets a new one. Not
/// shorter: a thread of a busy machine is regularly left without CPU for a few milliseconds, and
/// nothing finishes meanwhile either.
const STALLED_AFTER: Duration = Duration::from_millis(5);
/// Connections for Little's law: this many times the rate times the service time, plus
/// [`SPARE_CONNECTIONS`]. The margin covers a loaded target answering several times slower than
/// its fastest.
const LITTLE_MARGIN: f64 = 4.0;
const SPARE_CONNECTIONS: usize = 16;
/// Service times are remembered over two windows of this length.
const SERVICE_WINDOW: Duration = Duration::from_millis(100);

/// The connection tasks' shared state.
#[derive(Default)]
pub(super) struct Pool {
    /// Set when scheduling is over: tasks with nothing left to do end instead of waiting.
    pub(super) closed: bool,
    /// The idle tasks' mailboxes, most recently used last.
    pub(super) idle: Vec<mpsc::Sender<Assignment>>,
    /// Due requests no connection was free for, oldest first.
    pub(super) queue: VecDeque<(Instant, Job)>,
    /// Connection tasks opening their connection.
    pub(super) connecting: usize,
    /// Connection tasks with a connection, busy or idle.
    pub(super) connected: usize,
    /// When a connection last finished a request.
    last_finished: Option<Instant>,
    /// The recent service time (send to answer), for Little's law.
    service: ServiceFloor,
    /// This thread's share of the plan's rate, per second.
    rate: f64,
}

/// The shortest service time seen in the current and the previous [`SERVICE_WINDOW`]: how
/// long the target takes when nothing else is in the way, following it as it changes. A floor
/// and not a mean: queueing anywhere (in this thread when it is short of CPU, in the target when
/// it is) lengthens the mean, and more connections would add to that queueing.
#[derive(Default)]
struct ServiceFloor {
    window_start: Option<Instant>,
    current: Option<Duration>,
    previous: Option<Duration>,
}

impl ServiceFloor {
    fn note(&mut self, now: Instant, took: Duration) {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < SERVICE_WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.previous = self.current.take();
            }
        }
        self.current = Some(self.current.map_or(took, |c| c.min(took)));
    }

    fn get(&self) -> Option<Duration> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Pool {
    /// An empty pool for a thread sending `rate` requests per second.
    pub(super) fn new(rate: f64) -> Pool {
        Pool {
            rate,
            ..Pool::default()
        }
    }

    /// Notes that a connection finished a request whose exchange took `took`.
    pub(super) fn finished(&mut self, took: Duration) {
        let now = Instant::now();
        self.last_finished = Some(now);
        self.service.note(now, took);
    }

    /// Whether to open another connection for the queue (and count it as being opened): see the
    /// module's documentation; and always when no connection is busy or being opened (nobody
    /// else would take the queue).
    pub(super) fn grow(&mut self) -> bool {
        if self.queue.is_empty() || self.connecting >= MAX_CONNECTING {
            return false;
        }
        let busy = self.connected - self.idle.len();
        let stalled = self
            .last_finished
            .is_none_or(|t| t.elapsed() >= STALLED_AFTER);
        let needed = self.service.get().map(|s| {
            (LITTLE_MARGIN * self.rate * s.as_secs_f64()).ceil() as usize + SPARE_CONNECTIONS
        });
        let short = needed.is_none_or(|n| self.connected + self.connecting < n);
        let grow = stalled || short || (self.connecting == 0 && busy == 0);
        if grow {
            self.connecting += 1;
        }
        grow
    }
}
