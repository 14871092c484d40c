//! Toxics: faults stacked on a proxy, each with a direction and a probability, as Toxiproxy
//! models them. A proxy holds one [`ProxyFault`](super::ProxyFault) (the harness's own faults)
//! and, independently, an ordered list of toxics; each direction of each connection applies the
//! toxics of its stream in that order.
//!
//! A toxic holds only its parameters ([`ToxicKind`]); its name, stream and toxicity live in
//! [`Toxic`]. Whether a toxic applies to a connection is drawn once per connection and toxic,
//! from the proxy's seed, the connection's number and the toxic's name, so the same seed picks
//! the same connections and updating a toxic's attributes does not draw again.

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// From the client to the upstream.
    Upstream,
    /// From the upstream to the client.
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic does, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Every chunk is held `latency ± jitter` (uniform) before it is written.
    Latency { latency: Duration, jitter: Duration },
    /// At most `bytes_per_sec` bytes a second; 0 means no limit, as in Toxiproxy.
    Bandwidth { bytes_per_sec: u64 },
    /// The end of the stream (FIN) is passed on `delay` late.
    SlowClose { delay: Duration },
    /// Bytes are dropped; the connection is closed `timeout` after the toxic reached it (never
    /// when zero).
    Timeout { timeout: Duration },
    /// The first chunk after the toxic reached the connection is not passed on: `timeout` later
    /// the connection is reset (RST to both peers).
    ResetPeer { timeout: Duration },
    /// Chunks are written in slices of `average_size ± size_variation` bytes, `delay` apart.
    Slicer {
        average_size: usize,
        size_variation: usize,
        delay: Duration,
    },
    /// After `bytes` bytes have passed (since the toxic reached the connection) the connection
    /// is closed.
    LimitData { bytes: u64 },
    /// HTTP answers made by the proxy instead of the upstream (see `proxy/http_answer.rs`).
    Http(super::http_answer::HttpAnswer),
    /// PostgreSQL-aware faults (see `proxy/pgwire.rs`).
    Postgres(super::pgwire::PgToxic),
}

impl ToxicKind {
    /// Toxics that take over a whole connection at accept time, speaking its protocol.
    pub(super) fn is_protocol(&self) -> bool {
        matches!(self, ToxicKind::Http(_) | ToxicKind::Postgres(_))
    }
}

/// A toxic with its name, its stream and the probability that it applies to a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// 0..=1, drawn once per connection.
    pub toxicity: f64,
    pub kind: ToxicKind,
}

/// One connection, as far as toxicity draws are concerned.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnId {
    pub seed: u64,
    pub number: u64,
}

impl ConnId {
    /// Whether `toxic` applies to this connection. A toxicity of 1 always applies and 0 never
    /// does, without a draw.
    pub(super) fn affected_by(&self, toxic: &Toxic) -> bool {
        if toxic.toxicity >= 1.0 {
            return true;
        }
        if toxic.toxicity <= 0.0 {
            return false;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ name_hash(&toxic.name));
        rng.set_stream(self.number);
        rng.random::<f64>() < toxic.toxicity
    }
}

/// FNV-1a: a stable hash of a toxic's name (std's hasher may change between releases, which
/// would change which connections a seed picks).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A toxic as one direction of one connection applies it, with what it remembers.
#[derive(Debug)]
struct Applied {
    name: String,
    kind: ToxicKind,
    /// Bytes passed since the toxic reached this direction (for `limit_data`).
    passed: u64,
}

/// What one direction of one connection must do to a chunk, from the toxics that apply to it.
#[derive(Debug)]
pub(super) struct DirectionToxics {
    stream: Stream,
    conn: ConnId,
    applied: Vec<Applied>,
    rng: ChaCha8Rng,
    /// Bandwidth: the earliest time the next chunk may be written.
    next_send: Instant,
}

/// How a toxic ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ToxicCut {
    /// `limit_data` reached: close both sides.
    Close,
    /// `reset_peer`: reset both sides.
    Reset,
}

impl DirectionToxics {
    pub(super) fn new(stream: Stream, conn: ConnId, rng: ChaCha8Rng) -> Self {
        DirectionToxics {
            stream,
            conn,
            applied: Vec::new(),
            rng,
            next_send: Instant::now(),
        }
    }

    /// Takes the proxy's current toxics; what an unchanged toxic remembers is kept.
    pub(super) fn update(&mut self, toxics: &[Toxic]) {
        let mut old: HashMap<String, Applied> = self
            .applied
            .drain(..)
            .map(|a| (a.name.clone(), a))
            .collect();
        for t in toxics {
            if t.stream != self.stream || t.kind.is_protocol() || !self.conn.affected_by(t) {
                continue;
            }
            let passed = old.remove(&t.name).map_or(0, |a| a.passed);
            self.applied.push(Applied {
                name: t.name.clone(),
                kind: t.kind.clone(),
                passed,
            });
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.applied.is_empty()
    }

    /// The largest chunk to take in next, within `limit`.
    pub(super) fn chunk_limit(&self, limit: usize) -> usize {
        self.applied.iter().fold(limit, |limit, a| match a.kind {
            // About 1/20 s of the allowed rate, so pacing is smooth rather than bursty.
            ToxicKind::Bandwidth { bytes_per_sec } if bytes_per_sec > 0 => limit.min(
                usize::try_from(bytes_per_sec / 20)
                    .unwrap_or(usize::MAX)
                    .max(1),
            ),
            // Never take in bytes past the limit: they would be lost when the connection closes.
            ToxicKind::LimitData { bytes } => limit.min(
                usize::try_from(bytes.saturating_sub(a.passed))
                    .unwrap_or(usize::MAX)
                    .max(1),
            ),
            _ => limit,
        })
    }

    /// Whether bytes are dropped instead of passed on (`timeout`).
    pub(super) fn drops(&self) -> bool {
        self.applied
            .iter()
            .any(|a| matches!(a.kind, ToxicKind::Timeout { .. }))
    }

    /// Whether a `limit_data` toxic has let through all it allows: the connection must close
    /// before taking in more.
    pub(super) fn exhausted(&self) -> bool {
        self.applied
            .iter()
            .any(|a| matches!(a.kind, ToxicKind::LimitData { bytes } if a.passed >= bytes))
    }

    /// How long the end of the stream is held (`slow_close`; several add up).
    pub(super) fn close_delay(&self) -> Duration {
        self.applied
            .iter()
            .map(|a| match a.kind {
                ToxicKind::SlowClose { delay } => delay,
                _ => Duration::ZERO,
            })
            .sum()
    }

    /// Waits until a chunk of `n` bytes read at `read_at` may be written. `Err` when a toxic
    /// ends the connection instead.
    pub(super) async fn hold(&mut self, n: usize, read_at: Instant) -> Result<(), ToxicCut> {
        let mut until = read_at;
        for i in 0..self.applied.len() {
            match self.applied[i].kind {
                ToxicKind::Latency { latency, jitter } => until += self.jittered(latency, jitter),
                ToxicKind::ResetPeer { timeout } => {
                    tokio::time::sleep_until(until.max(Instant::now()) + timeout).await;
                    return Err(ToxicCut::Reset);
                }
                ToxicKind::Bandwidth { bytes_per_sec } if bytes_per_sec > 0 => {
                    until = until.max(self.next_send);
                    let cost = Duration::from_secs_f64(n as f64 / bytes_per_sec as f64);
                    self.next_send = until.max(Instant::now()) + cost;
                }
                _ => {}
            }
        }
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    /// The sizes of the slices a chunk of `n` bytes is written in, and the pause after each;
    /// one slice of `n` when no slicer applies.
    pub(super) fn slices(&mut self, n: usize) -> (Vec<usize>, Duration) {
        let Some((avg, var, delay)) = self.applied.iter().find_map(|a| match a.kind {
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } if average_size > 0 => Some((average_size, size_variation, delay)),
            _ => None,
        }) else {
            return (vec![n], Duration::ZERO);
        };
        let mut sizes = Vec::new();
        let mut left = n;
        while left > 0 {
            let low = avg.saturating_sub(var).max(1);
            let size = self.rng.random_range(low..=avg + var).min(left);
            sizes.push(size);
            left -= size;
        }
        (sizes, delay)
    }

    /// Counts `n` bytes passed on. `Err` when a `limit_data` toxic is now exhausted.
    pub(super) fn passed(&mut self, n: usize) -> Result<(), ToxicCut> {
        for a in &mut self.applied {
            a.passed += n as u64;
        }
        if self.exhausted() {
            Err(ToxicCut::Close)
        } else {
            Ok(())
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

/// The earliest time a `timeout` toxic closes this connection, remembering in `first_seen` when
/// each timeout toxic reached it. `None` when no timeout toxic with a deadline applies.
pub(super) fn timeout_deadline(
    toxics: &[Toxic],
    conn: ConnId,
    first_seen: &mut HashMap<String, Instant>,
) -> Option<Instant> {
    let now = Instant::now();
    let mut seen = HashMap::new();
    let mut deadline: Option<Instant> = None;
    for t in toxics {
        let ToxicKind::Timeout { timeout } = t.kind else {
            continue;
        };
        if timeout.is_zero() || !conn.affected_by(t) {
            continue;
        }
        let since = first_seen.get(&t.name).copied().unwrap_or(now);
        seen.insert(t.name.clone(), since);
        let at = since + timeout;
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    *first_seen = seen;
    deadline
}
