//! A connection task: opens its connection, then carries one request at a time on it, within
//! the plan's timeout from the request's due time, and records what came back.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Method;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::encode::encode;
use super::{Engine, Job};
use crate::load::wire::{Answer, Conn, Dest, Failure, Keep};
use crate::load::{BODY_LIMIT, Drawn, Sink, millis};
use crate::record::{Headers, Outcome, RecordDetail, RequestRecord, Sent, TransportError};

/// One connection task: opens its connection (for the queue), then carries one job at a time
/// until scheduling is over.
pub(super) async fn connection_task(engine: Arc<Engine>, done: mpsc::Sender<()>) {
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

impl Engine {
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
            request_id: &plan.request_id_header,
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

    pub(super) fn finish(
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
    keep: Keep<'_>,
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
