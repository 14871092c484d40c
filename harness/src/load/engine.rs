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
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::pace::Pacer;
use super::wire::{Answer, Conn, Dest, Failure, Keep};
use super::{
    BODY_LIMIT, Compiled, Counters, CreatedOrders, Drawn, Entry, LoadOutcome, Sequence, Sink,
    millis,
};
use crate::record::{Headers, Outcome, RecordDetail, RequestRecord, Sent, TransportError};

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
    let orders = Arc::new(CreatedOrders::default());
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
                pool: Mutex::new(Pool {
                    rate: plan.rate / shards as f64,
                    ..Pool::default()
                }),
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
    orders: Arc<CreatedOrders>,
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

/// The connection tasks' shared state.
#[derive(Default)]
struct Pool {
    /// Set when scheduling is over: tasks with nothing left to do end instead of waiting.
    closed: bool,
    /// The idle tasks' mailboxes, most recently used last.
    idle: Vec<mpsc::Sender<Assignment>>,
    /// Due requests no connection was free for, oldest first.
    queue: VecDeque<(Instant, Job)>,
    /// Connection tasks opening their connection.
    connecting: usize,
    /// Connection tasks with a connection, busy or idle.
    connected: usize,
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
    /// Notes that a connection finished a request whose exchange took `took`.
    fn finished(&mut self, took: Duration) {
        let now = Instant::now();
        self.last_finished = Some(now);
        self.service.note(now, took);
    }

    /// Whether to open another connection for the queue (and count it as being opened): see the
    /// module's documentation; and always when no connection is busy or being opened (nobody
    /// else would take the queue).
    fn grow(&mut self) -> bool {
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

    /// Sends one request on `conn` (connecting first if there is none) and reads its answer,
    /// within the plan's timeout from its due time (`deadline`). With an answer comes the time
    /// from its request's first write to its last byte.
    async fn send(
        &self,
        conn: &mut Option<Conn>,
        request: &mut Vec<u8>,
        job: &Job,
        deadline: Pin<&mut Sleep>,
    ) -> (Outcome, Option<Duration>) {
        let lag = Instant::now()
            .saturating_duration_since(job.due)
            .as_micros() as u64;
        let c = &self.counters;
        c.max_lag_us.fetch_max(lag, Ordering::Relaxed);
        c.total_lag_us.fetch_add(lag, Ordering::Relaxed);

        let plan = &self.plan;
        let entry = &plan.entries[job.drawn.entry];
        if let Err(message) = encode(plan, entry, &job.drawn, request) {
            let outcome = Outcome::Error {
                kind: TransportError::Other,
                message: message.into(),
            };
            return (outcome, None);
        }
        let records = matches!(*self.sink, Sink::Records(_));
        let keep = Keep {
            headers: records,
            success_headers: records && plan.detail == RecordDetail::Everything,
            error_body: records,
            success_body: (entry.keep_success_body && records) || !entry.captures.is_empty(),
            body_limit: BODY_LIMIT,
        };
        let head = entry.method == Method::HEAD;
        let result = tokio::select! {
            biased;
            r = exchange(conn, &plan.dest, request, head, keep, &self.counters.connections) => Some(r),
            _ = deadline => None,
        };
        match result {
            Some(Ok(answer)) => {
                let outcome = Outcome::Response {
                    status: answer.status,
                    headers: Headers::from(answer.headers).with_request_id_seen(answer.request_id),
                    body: answer.body.map(String::into_boxed_str),
                };
                (outcome, Some(answer.took))
            }
            Some(Err(failure)) => {
                let outcome = Outcome::Error {
                    kind: failure.kind,
                    message: failure.message.into(),
                };
                (outcome, None)
            }
            None => {
                // Cut off mid-exchange: the connection's state is unknown.
                *conn = None;
                (timeout(plan.timeout), None)
            }
        }
    }

    /// Records a dispatched job's outcome.
    /// `exchange`: from its request's first write to its answer's last byte, if it was answered.
    fn complete(&self, job: Job, exchange: Option<Duration>, outcome: Outcome) {
        let entry = &self.plan.entries[job.drawn.entry];
        if let Outcome::Response {
            status: 200..=299,
            body: Some(body),
            ..
        } = &outcome
            && !entry.captures.is_empty()
        {
            self.orders.add(&entry.captures, body);
        }
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.finish(job.seq, job.due, exchange, job.drawn, outcome);
    }

    fn finish(
        &self,
        seq: u64,
        due: Instant,
        exchange: Option<Duration>,
        drawn: Drawn,
        outcome: Outcome,
    ) {
        let c = &self.counters;
        match &outcome {
            Outcome::Response { status, .. } if *status >= 500 => {
                c.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Response { status, .. } if *status >= 400 => {
                c.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Response { .. } => {}
            Outcome::Error { .. } => {
                c.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        match &*self.sink {
            Sink::Records(sink) => {
                let entry = &self.plan.entries[drawn.entry];
                // What was sent is evidence only for an error: a success keeps its route and
                // path (the record stays small), unless everything was asked for.
                let sent = outcome.is_error() || self.plan.detail == RecordDetail::Everything;
                let sent = match sent {
                    true => Sent::new(drawn.headers().into(), drawn.body),
                    false => None,
                };
                sink.record(RequestRecord {
                    seq,
                    at_ms: millis(due.saturating_duration_since(self.run_start)),
                    route: entry.route.clone(),
                    path: drawn.path.into(),
                    sent,
                    latency_ms: millis(due.elapsed()),
                    outcome,
                });
            }
            Sink::Tally(tally) => tally.lock().unwrap().add(&outcome, due.elapsed(), exchange),
        }
        c.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One connection task: opens its connection (for the queue), then carries one job at a time
/// until scheduling is over.
async fn connection_task(engine: Arc<Engine>, done: mpsc::Sender<()>) {
    let plan = &engine.plan;
    let connected = match tokio::time::timeout(plan.timeout, Conn::connect(&plan.dest)).await {
        Ok(c) => c,
        Err(_) => Err(Failure {
            kind: TransportError::Connect,
            message: format!(
                "cannot connect within {}",
                humantime::format_duration(plan.timeout)
            ),
            unsent: true,
        }),
    };
    let grow = {
        let mut pool = engine.pool.lock().unwrap();
        pool.connecting -= 1;
        match &connected {
            // The connection could not be opened for the oldest queued request: that is its
            // answer. (Requests are not held back for a target that refuses connections.)
            Err(_) => pool.queue.pop_front(),
            Ok(_) => {
                pool.connected += 1;
                engine.counters.connections.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
        .map(|(_, job)| (job, pool.grow()))
    };
    let mut conn = match connected {
        Ok(c) => Some(c),
        Err(failure) => {
            if let Some((job, grow)) = grow {
                if grow {
                    engine.open_connection(&done);
                }
                engine.complete(
                    job,
                    None,
                    Outcome::Error {
                        kind: failure.kind,
                        message: failure.message.into(),
                    },
                );
            }
            return;
        }
    };
    let (mailbox, mut inbox) = mpsc::channel(1);
    let mut mailbox = Some(mailbox);
    let mut request = Vec::with_capacity(512);
    // One timer for the task, moved later for each request (each is due after the last), which
    // tokio does without touching its timer wheel.
    let far = Instant::now() + Duration::from_secs(86_400);
    let mut deadline = pin!(tokio::time::sleep_until(far));
    let mut finished = None;
    while let Some(job) = engine
        .next_job(&mut inbox, &mut mailbox, &done, finished)
        .await
    {
        let started = Instant::now();
        let (outcome, exchange) = if started >= job.due + plan.timeout {
            // Waited in the queue past its deadline: not sent at all.
            finished = None;
            (timeout(plan.timeout), None)
        } else {
            deadline.as_mut().reset(job.due + plan.timeout);
            let sent = engine
                .send(&mut conn, &mut request, &job, deadline.as_mut())
                .await;
            finished = Some(started.elapsed());
            sent
        };
        engine.complete(job, exchange, outcome);
    }
}

fn timeout(limit: Duration) -> Outcome {
    Outcome::Error {
        kind: TransportError::Timeout,
        message: format!("no answer within {}", humantime::format_duration(limit)).into(),
    }
}

/// The exchange on `conn`, connecting when there is no connection or the server closed it while
/// it was idle. A request that could not be written on a kept-alive connection is sent again on
/// a new one, as hyper's pool does: the server never saw it.
async fn exchange(
    conn: &mut Option<Conn>,
    dest: &Dest,
    request: &[u8],
    head: bool,
    keep: Keep,
    opened: &std::sync::atomic::AtomicU64,
) -> Result<Answer, Failure> {
    if conn.as_ref().is_some_and(Conn::is_stale) {
        *conn = None;
    }
    let mut fresh = false;
    loop {
        if conn.is_none() {
            fresh = true;
            *conn = Some(Conn::connect(dest).await?);
            opened.fetch_add(1, Ordering::Relaxed);
        }
        let c = conn.as_mut().expect("connected above");
        match c.exchange(request, head, keep).await {
            Ok((answer, reusable)) => {
                if !reusable {
                    *conn = None;
                }
                return Ok(answer);
            }
            Err(failure) => {
                *conn = None;
                if failure.unsent && !fresh {
                    continue;
                }
                return Err(failure);
            }
        }
    }
}

/// Writes the request for `drawn` into `out`: the request line, `Host`, the generator's own
/// headers (as recorded in [`RequestRecord::request_headers`]), `Content-Length` and the body.
fn encode(plan: &Compiled, entry: &Entry, drawn: &Drawn, out: &mut Vec<u8>) -> Result<(), String> {
    // Placeholder values are the scenario's to choose; one that would break the request line
    // fails this request instead of sending something else.
    let valid = |p: &str| p.bytes().all(|b| b > b' ' && b != 0x7f && b != b'#');
    if !valid(&plan.prefix) || !valid(&drawn.path) {
        return Err(format!(
            "invalid path {:?}: a path cannot hold spaces, control characters or `#`",
            drawn.path
        ));
    }
    out.clear();
    out.extend_from_slice(entry.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(plan.prefix.as_bytes());
    out.extend_from_slice(drawn.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(plan.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if drawn.body.is_some() {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    if let Some(key) = &drawn.key {
        out.extend_from_slice(b"idempotency-key: ");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &drawn.headers {
        // A value drawn from a list or captured from an answer could hold a line break, which
        // would smuggle a header or a second request: fail this request instead.
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!(
                "invalid value {value:?} for header `{name}`: control characters"
            ));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = drawn.body.as_deref().unwrap_or("");
    // A request with a body, or a method that usually has one, says how long it is; a GET
    // without a body says nothing, as hyper does.
    if !body.is_empty() || ![Method::GET, Method::HEAD, Method::DELETE].contains(&entry.method) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    Ok(())
}
