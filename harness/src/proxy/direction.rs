//! One direction of one proxied connection: the copy loop, which applies the active fault
//! (latency, bandwidth, stall) and the toxics to each chunk it carries. With neither it stays a
//! plain copy loop, checking for a change of fault with one atomic load per chunk.

use std::future::pending;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::carrier::Carrier;
use super::toxic::{DirectionToxics, ToxicCut};
use super::{FaultSpec, ProxyFault, Shared, State};

/// Passes a FIN on and lets the other direction carry on.
async fn half_close(to: &mut WriteHalf<'_>) -> io::Result<()> {
    match to.shutdown().await {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// A toxic's end of a connection, as the error the connection task turns into a `Cut`.
fn toxic_cut(cut: ToxicCut) -> io::Error {
    match cut {
        ToxicCut::Reset => io::Error::new(io::ErrorKind::ConnectionReset, "reset_peer toxic"),
        ToxicCut::Close => io::Error::other("limit_data toxic"),
    }
}

/// One direction of one connection: copies chunks and applies the active fault and toxics to
/// each.
pub(super) struct Direction<'a> {
    faults: watch::Receiver<State>,
    draw: f64,
    /// The fault as it applies to this connection; refreshed when the watch has changed.
    current: Option<ProxyFault>,
    /// The toxics as they apply to this direction; refreshed with `current`.
    toxics: DirectionToxics,
    rng: ChaCha8Rng,
    /// Bandwidth: the earliest time the next chunk may be written.
    next_send: Instant,
    bytes: &'a AtomicU64,
}

impl<'a> Direction<'a> {
    pub(super) fn new(
        shared: &Shared,
        draw: f64,
        rng: ChaCha8Rng,
        mut toxics: DirectionToxics,
        bytes: &'a AtomicU64,
    ) -> Self {
        let mut faults = shared.state.subscribe();
        let current = {
            let state = faults.borrow_and_update();
            toxics.update(&state.toxics);
            FaultSpec::for_draw(&state.fault, draw).cloned()
        };
        Direction {
            faults,
            draw,
            current,
            toxics,
            rng,
            next_send: Instant::now(),
            bytes,
        }
    }

    /// A version check (one atomic load) per chunk keeps the no-fault path as cheap as a plain
    /// copy loop; waiting on `changed()` in a `select!` around every read was the alternative.
    fn refresh(&mut self) {
        if self.faults.has_changed().unwrap_or(false) {
            self.take_state();
        }
    }

    fn take_state(&mut self) {
        let state = self.faults.borrow_and_update();
        self.current = FaultSpec::for_draw(&state.fault, self.draw).cloned();
        self.toxics.update(&state.toxics);
    }

    async fn wait_for_change(&mut self) {
        if self.faults.changed().await.is_err() {
            // The proxy is gone; the connection task is being cancelled.
            pending::<()>().await;
        }
        self.take_state();
    }

    pub(super) async fn copy(
        &mut self,
        mut from: ReadHalf<'_>,
        mut to: WriteHalf<'_>,
    ) -> io::Result<()> {
        let mut carrier = Carrier::new();
        loop {
            self.refresh();
            let limit = match &self.current {
                None | Some(ProxyFault::Latency { .. }) => carrier.capacity(),
                // A stalled direction reads nothing, so bytes stay in kernel buffers and the
                // sender eventually blocks, as it would behind a black hole. Down and reset are
                // handled by the connection task, which drops this copy.
                Some(ProxyFault::Stall | ProxyFault::Down | ProxyFault::Reset) => {
                    self.wait_for_change().await;
                    continue;
                }
                // Chunks of about 1/20 s of the allowed rate, so that pacing is smooth instead of
                // one 64 KiB burst followed by a long silence.
                Some(ProxyFault::Bandwidth { bytes_per_sec }) => {
                    usize::try_from(*bytes_per_sec / 20).unwrap_or(usize::MAX)
                }
            };
            if self.toxics.is_empty() {
                let n = carrier.fill(&mut from, limit).await?;
                if n == 0 {
                    return half_close(&mut to).await;
                }
                self.hold(n, Instant::now()).await;
                carrier.drain(&mut to, n).await?;
                self.bytes.fetch_add(n as u64, Ordering::Relaxed);
            } else if self
                .copy_toxic_chunk(&mut carrier, &mut from, &mut to, limit)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// One chunk under toxics: the no-toxic path above stays a plain copy loop. `true` once the
    /// stream has ended (and its end was passed on).
    async fn copy_toxic_chunk(
        &mut self,
        carrier: &mut Carrier,
        from: &mut ReadHalf<'_>,
        to: &mut WriteHalf<'_>,
        limit: usize,
    ) -> io::Result<bool> {
        if self.toxics.exhausted() {
            return Err(toxic_cut(ToxicCut::Close));
        }
        let n = carrier.fill(from, self.toxics.chunk_limit(limit)).await?;
        if n == 0 {
            // Behind a `timeout` toxic the end of the stream does not pass either: the
            // connection ends when the toxic closes it, or goes on once the toxic is removed.
            while self.toxics.drops() {
                self.wait_for_change().await;
            }
            let delay = self.toxics.close_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            return half_close(to).await.map(|()| true);
        }
        let read_at = Instant::now();
        // A toxic added while this direction waited for bytes applies to them.
        self.refresh();
        if self.toxics.drops() {
            return carrier.discard(n).map(|()| false);
        }
        self.hold(n, read_at).await;
        self.toxics.hold(n, read_at).await.map_err(toxic_cut)?;
        let (slices, pause) = self.toxics.slices(n);
        let mut offset = 0;
        for (i, size) in slices.iter().enumerate() {
            if i > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            carrier.drain_part(to, offset, *size).await?;
            offset += size;
        }
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.toxics.passed(n).map_err(toxic_cut)?;
        Ok(false)
    }

    /// Waits until the chunk of `n` bytes read at `read_at` may be written under the current
    /// fault. A change of fault is taken into account at once: clearing it releases the chunk.
    async fn hold(&mut self, n: usize, read_at: Instant) {
        // Jitter is drawn once per chunk, not again when the fault changes mid-wait.
        let mut latency: Option<Duration> = None;
        loop {
            self.refresh();
            let until = match &self.current {
                None => return,
                Some(ProxyFault::Latency {
                    latency: base,
                    jitter,
                }) => {
                    let (base, jitter) = (*base, *jitter);
                    read_at + *latency.get_or_insert_with(|| self.jittered(base, jitter))
                }
                Some(ProxyFault::Bandwidth { .. }) => self.next_send,
                Some(ProxyFault::Stall | ProxyFault::Down | ProxyFault::Reset) => {
                    self.wait_for_change().await;
                    continue;
                }
            };
            if until > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    changed = self.faults.changed() => {
                        if changed.is_err() {
                            pending::<()>().await;
                        }
                        // `changed` marked the new state seen, so `refresh` would not take it.
                        self.take_state();
                        continue;
                    }
                }
            }
            if let Some(ProxyFault::Bandwidth { bytes_per_sec }) = &self.current {
                let cost = Duration::from_secs_f64(n as f64 / *bytes_per_sec as f64);
                self.next_send = self.next_send.max(Instant::now()) + cost;
            }
            return;
        }
    }

    fn jittered(&mut self, latency: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return latency;
        }
        let j = jitter.as_secs_f64();
        let offset = self.rng.random_range(-j..=j);
        Duration::from_secs_f64((latency.as_secs_f64() + offset).max(0.0))
    }
}
