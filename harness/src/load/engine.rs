//! Sending: one scheduler task hands each request, at its due time, to an idle connection task,
//! or queues it and opens a new connection when every connection is busy.
//!
//! A connection task owns one keep-alive connection and carries one request at a time; it lives
//! as long as the load. So the number of connections follows the number of requests in flight,
//! as the open loop needs (a slow target gets more connections, never later requests), and the
//! cost per request is a hand-off between two tasks instead of a new task, a pool checkout and a
//! channel to a connection task, as with hyper's pooled client. Idle connection tasks wait on a
//! stack, so the most recently used connection is used again and a light load keeps few
//! connections open.
//!
//! `pool.rs` holds the connection tasks' shared state and when a new connection is opened;
//! `connection.rs` a connection task; `encode.rs` a request's bytes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pace::Pacer;
use super::{CapturedPools, Compiled, Counters, Drawn, LoadOutcome, Sequence, Sink};
use crate::record::{Outcome, TransportError};

mod connection;
mod encode;
mod pool;

use connection::connection_task;
use pool::Pool;

/// Above this many requests per second, the load is spread over more threads.
const RATE_PER_THREAD: f64 = 50_000.0;
/// At most this many threads (and never more than the machine has cores).
const MAX_THREADS: usize = 4;
/// Sets the number of threads instead (for measuring; still capped by the cores).
pub const THREADS_ENV: &str = "FIVEHUNDRED_LOAD_THREADS";

/// A load running on threads of its own.
pub(super) struct Running {
    /// Each thread's end, once every request it sent is recorded.
    ends: mpsc::UnboundedReceiver<ShardEnd>,
    threads: Vec<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    start: Instant,
}

/// How one thread's share of the load ended.
struct ShardEnd {
    last_send: Instant,
    cancelled: bool,
}

/// Starts the engine on threads of its own, each with a single-threaded runtime: one thread,
/// and one more for every [`RATE_PER_THREAD`] requests per second, up to half the machine's
/// cores (the target needs the rest: on 2 cores, one thread sustained a higher rate against the
/// bench's server than two) and at most [`MAX_THREADS`]. Thread `k` of `n` sends the requests whose sequence number is `k`
/// modulo `n`; each draws the whole sequence from the seed (drawing costs a fraction of a
/// microsecond), so the requests are the same however many threads send them.
///
/// On the caller's multi-threaded runtime, the scheduler and the connection tasks were spread
/// over its worker threads, and every hand-off and every answer woke another thread: measured on
/// 2 cores at 20,000 requests/s, 31 µs of CPU per request, most of it in the kernel parking and
/// waking threads, where wrk spends 4 µs. One event loop per thread is what wrk does, and it
/// keeps the generator's timing apart from whatever else the caller's runtime is busy with (the
/// lab's proxies, samplers, webhook).
pub(super) fn spawn(
    plan: Compiled,
    sink: Sink,
    counters: Arc<Counters>,
    run_start: Instant,
    cancel: CancellationToken,
    threads: Option<usize>,
) -> Running {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let auto = ((plan.rate / RATE_PER_THREAD).ceil() as usize).min((cores / 2).max(1));
    let shards = threads
        .or_else(|| std::env::var(THREADS_ENV).ok()?.parse::<usize>().ok())
        .unwrap_or(auto)
        .clamp(1, cores.min(MAX_THREADS));
    let plan = Arc::new(plan);
    let sink = Arc::new(sink);
    let orders = Arc::new(CapturedPools::default());
    let (tx, ends) = mpsc::unbounded_channel();
    let start = Instant::now();
    let threads = (0..shards)
        .map(|shard| {
            let engine = Engine {
                plan: Arc::clone(&plan),
                sink: Arc::clone(&sink),
                counters: Arc::clone(&counters),
                orders: Arc::clone(&orders),
                run_start,
                pool: Mutex::new(Pool::new(plan.rate / shards as f64)),
            };
            let (tx, cancel) = (tx.clone(), cancel.clone());
            std::thread::Builder::new()
                .name("fivehundred-load".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the load generator");
                    let shard = Shard {
                        index: shard as u64,
                        of: shards as u64,
                        start,
                    };
                    let _ = tx.send(rt.block_on(schedule(Arc::new(engine), shard, cancel)));
                })
                .expect("a thread for the load generator")
        })
        .collect();
    Running {
        ends,
        threads,
        counters,
        start,
    }
}

impl Running {
    /// Waits until every thread has recorded every request it sent.
    pub(super) async fn wait(mut self) -> LoadOutcome {
        let mut last_send = self.start;
        let mut cancelled = false;
        for _ in 0..self.threads.len() {
            match self.ends.recv().await {
                Some(end) => {
                    last_send = last_send.max(end.last_send);
                    cancelled |= end.cancelled;
                }
                // A thread panicked: pass its panic on.
                None => {
                    let threads = std::mem::take(&mut self.threads);
                    let joined = tokio::task::spawn_blocking(move || {
                        threads.into_iter().find_map(|t| t.join().err())
                    })
                    .await;
                    match joined {
                        Ok(Some(panic)) => std::panic::resume_unwind(panic),
                        _ => panic!("a load generator thread ended without an outcome"),
                    }
                }
            }
        }
        let c = &self.counters;
        let progress = c.snapshot();
        let send_span = last_send.saturating_duration_since(self.start);
        let achieved_rate = if progress.sent > 1 && !send_span.is_zero() {
            (progress.sent - 1) as f64 / send_span.as_secs_f64()
        } else {
            0.0
        };
        let sent_tasks = (progress.sent - progress.over_cap).max(1);
        LoadOutcome {
            progress,
            send_span,
            achieved_rate,
            max_send_lag: Duration::from_micros(c.max_lag_us.load(Ordering::Relaxed)),
            mean_send_lag: Duration::from_micros(
                c.total_lag_us.load(Ordering::Relaxed) / sent_tasks,
            ),
            connections: c.connections.load(Ordering::Relaxed),
            cancelled,
        }
    }
}

/// Which requests a thread sends, and from when.
#[derive(Clone, Copy)]
struct Shard {
    index: u64,
    of: u64,
    start: Instant,
}

/// One thread's engine. The plan, the sink and the counters are shared by all threads; the
/// connections are the thread's own.
struct Engine {
    plan: Arc<Compiled>,
    sink: Arc<Sink>,
    counters: Arc<Counters>,
    orders: Arc<CapturedPools>,
    run_start: Instant,
    pool: Mutex<Pool>,
}

/// A request due at `due`.
struct Job {
    seq: u64,
    due: Instant,
    drawn: Drawn,
}

/// A job for an idle connection task, with the sender of its own mailbox: while a task is idle
/// the only sender is on the idle stack, so closing the pool ends the idle tasks.
struct Assignment {
    job: Job,
    mailbox: mpsc::Sender<Assignment>,
}

async fn schedule(engine: Arc<Engine>, shard: Shard, cancel: CancellationToken) -> ShardEnd {
    let plan = &engine.plan;
    // Each connection task holds a sender; `recv` yields `None` once the last one has ended.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut sequence = Sequence::new(plan);
    let mut pacer = Pacer::new(plan.rate / shard.of as f64);
    let start = shard.start;
    let mut last_send = start;
    let mut cancelled = false;
    let mut seq: u64 = 0;
    loop {
        if plan.requests.is_some_and(|max| seq >= max) {
            break;
        }
        let offset = Duration::from_secs_f64(seq as f64 / plan.rate);
        if plan.duration.is_some_and(|d| offset >= d) {
            break;
        }
        let due = start + offset;
        // Drawn before its due time, so that filling it in does not delay it; every thread
        // draws every request, so that each sees the sequence the seed makes.
        let drawn = sequence.next(seq, plan, &engine.orders);
        if seq % shard.of != shard.index {
            seq += 1;
            continue;
        }
        let on_time = due > Instant::now();
        if on_time {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    cancelled = true;
                    break;
                }
                _ = pacer.wait_until(due) => {}
            }
        } else if cancel.is_cancelled() {
            cancelled = true;
            break;
        } else {
            // Behind schedule, this loop would not wait at all: let the connection tasks that
            // share its thread run now and then.
            tokio::task::consume_budget().await;
        }
        last_send = Instant::now();
        let c = &engine.counters;
        c.sent.fetch_add(1, Ordering::Relaxed);
        if c.in_flight.load(Ordering::Relaxed) >= plan.max_in_flight {
            c.over_cap.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "not sent: {} requests already in flight (the generator's cap)",
                plan.max_in_flight
            );
            let outcome = Outcome::Error {
                kind: TransportError::Other,
                message: message.into(),
            };
            engine.finish(seq, due, None, drawn, outcome);
        } else {
            c.in_flight.fetch_add(1, Ordering::Relaxed);
            // No yield here: the connection task writes the request when this loop next waits,
            // right after drawing the next request (a microsecond or two). Yielding to let it
            // write first put that drawing, and the yield's own poll of the kernel, inside the
            // request's round trip; at 850 requests/s the p50 from the send went from about
            // 1.4 × wrk's to wrk's.
            engine.dispatch(Job { seq, due, drawn }, &done_tx);
        }
        seq += 1;
    }
    engine.close();
    drop(done_tx);
    let _ = done_rx.recv().await;
    ShardEnd {
        last_send,
        cancelled,
    }
}

impl Engine {
    /// Gives `job` to the most recently idle connection task, or queues it for the first
    /// connection that is free.
    fn dispatch(self: &Arc<Self>, mut job: Job, done: &mpsc::Sender<()>) {
        let mut pool = self.pool.lock().unwrap();
        while let Some(mailbox) = pool.idle.pop() {
            let assignment = Assignment {
                job,
                mailbox: mailbox.clone(),
            };
            match mailbox.try_send(assignment) {
                Ok(()) => return,
                // The task is gone (it panicked): try the next one.
                Err(e) => job = e.into_inner().job,
            }
        }
        pool.queue.push_back((Instant::now(), job));
        let grow = pool.grow();
        drop(pool);
        if grow {
            self.open_connection(done);
        }
    }

    fn open_connection(self: &Arc<Self>, done: &mpsc::Sender<()>) {
        tokio::spawn(connection_task(Arc::clone(self), done.clone()));
    }

    /// Scheduling is over: idle connection tasks end, busy ones end once the queue is empty.
    fn close(&self) {
        let mut pool = self.pool.lock().unwrap();
        pool.closed = true;
        pool.idle.clear();
    }

    /// The next job for a connection task that is free: the oldest queued one, else the next one
    /// handed to it while it waits on the idle stack. `None` once scheduling is over.
    async fn next_job(
        self: &Arc<Self>,
        inbox: &mut mpsc::Receiver<Assignment>,
        mailbox: &mut Option<mpsc::Sender<Assignment>>,
        done: &mpsc::Sender<()>,
        finished: Option<Duration>,
    ) -> Option<Job> {
        {
            let mut pool = self.pool.lock().unwrap();
            if let Some(took) = finished {
                pool.finished(took);
            }
            if let Some((_, job)) = pool.queue.pop_front() {
                let grow = pool.grow();
                drop(pool);
                if grow {
                    self.open_connection(done);
                }
                return Some(job);
            }
            if pool.closed {
                pool.connected -= 1;
                return None;
            }
            pool.idle
                .push(mailbox.take().expect("the task holds its mailbox"));
        }
        let Some(next) = inbox.recv().await else {
            // Closed while idle.
            self.pool.lock().unwrap().connected -= 1;
            return None;
        };
        *mailbox = Some(next.mailbox);
        Some(next.job)
    }
}
