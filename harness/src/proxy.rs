//! The TCP fault proxy: sits between the target and one of its dependencies (the database, the
//! payments service) and injects network faults into the bytes flowing through it, with no
//! privileges and no kernel modules.
//!
//! # Model
//!
//! - A [`ProxyFault`] holds only its parameters (`latency`, `bytes_per_sec`, ...). Which
//!   connections it applies to lives in a wrapper, [`FaultSpec`], as a `fraction`.
//! - The faults' names ([`ProxyFaultKind`]) and the rules a fault must meet ([`RawFault::check`])
//!   live in `proxy/fault.rs`, once: the scenario's `network` fault uses both rather than its own.
//! - At most one fault is active at a time. [`Proxy::set_fault`] replaces it and
//!   [`Proxy::clear_fault`] deletes it: a reverted proxy holds no fault at all, not a fault with
//!   probability zero.
//! - Faults apply to the connections already open as well as to new ones: every connection watches
//!   the current fault (a `tokio::sync::watch`) and reacts at once, so a stalled connection resumes
//!   the moment the stall is cleared and a `down` fault cuts it immediately.
//! - Which connections a fraction picks is drawn per connection from a generator seeded by the
//!   proxy's seed and the connection's number (accept order), so the same seed picks the same
//!   connections whatever the task scheduling. A connection's draw is fixed, so a fraction of 0.5
//!   picks a subset of what 0.7 picks, and setting the same fault twice picks the same set.
//! - With no fault active the proxy is lossless: every byte is copied in both directions and a
//!   half-close (one side shutting down its writes) is propagated while the other direction keeps
//!   flowing. Faults never drop bytes either, except `down` and `reset`, whose point is to.
//! - On Linux the bytes go socket to pipe to socket with `splice(2)` and never enter the proxy's
//!   memory (see `proxy/carrier.rs`); a chunk held by a fault waits in the pipe.
//!
//! # Files
//!
//! `handle.rs` holds the API: [`Proxy`], which owns a running proxy, and [`ProxyHandle`], which
//! drives one without owning it; `accept.rs` the accept loop, which also stops listening while
//! the proxy refuses everything; `connection.rs` one proxied connection from its accept to its
//! cut; `direction.rs` the copy loop of one direction, where faults and toxics apply to chunks.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

mod accept;
mod carrier;
mod connection;
mod direction;
mod fault;
mod handle;
mod http_answer;
mod pgwire;
#[cfg(test)]
mod tests;
pub mod toxic;

use connection::ConnRng;
pub use fault::{FaultKeyError, FaultSpec, ProxyFault, ProxyFaultKind, RawFault};
pub use handle::{Proxy, ProxyHandle, ProxyStats};
pub use http_answer::HttpAnswer;
pub use pgwire::PgToxic;
// pgwire reads toxics through `Shared`, never from `toxic` itself (which names pgwire's type).
use toxic::ConnId;
pub use toxic::{Stream, Toxic, ToxicKind};

impl FaultSpec {
    /// Whether this spec applies to connection number `connection` (0-based, in accept order) of
    /// a proxy started with `seed`. The proxy decides with exactly this function.
    pub fn affects(&self, seed: u64, connection: u64) -> bool {
        ConnRng::new(seed, connection).draw < self.fraction
    }

    /// The fault as it applies to a connection whose draw is `draw`.
    fn for_draw(spec: &Option<FaultSpec>, draw: f64) -> Option<&ProxyFault> {
        spec.as_ref()
            .filter(|s| draw < s.fraction)
            .map(|s| &s.fault)
    }

    /// Down with every connection affected: the proxy stops listening altogether.
    fn refuses_all(spec: &Option<FaultSpec>) -> bool {
        matches!(spec, Some(FaultSpec { fault: ProxyFault::Down, fraction }) if *fraction >= 1.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("invalid proxy fault: {0}")]
    InvalidFault(String),
}

/// Everything that decides what the proxy does to a connection, watched by every connection.
#[derive(Debug, Clone)]
struct State {
    fault: Option<FaultSpec>,
    /// Toxiproxy's `enabled`: a disabled proxy refuses and closes connections, as `down` does,
    /// but independently of the fault, so that neither undoes the other.
    enabled: bool,
    toxics: Arc<[Toxic]>,
}

impl State {
    /// The proxy stops listening altogether.
    fn refuses_all(&self) -> bool {
        !self.enabled || FaultSpec::refuses_all(&self.fault)
    }
}

struct Shared {
    upstream: SocketAddr,
    seed: u64,
    state: watch::Sender<State>,
    /// Whether the accept loop listens now: lets [`ProxyHandle::listening`] wait until a
    /// disabled proxy really refuses, as Toxiproxy's API does before it answers.
    listening: watch::Sender<bool>,
    cancel: CancellationToken,
    accepted: AtomicU64,
    active: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Shared {
    /// The PostgreSQL toxics that apply to connection `conn` now.
    fn postgres_toxics(&self, conn: ConnId) -> Vec<PgToxic> {
        self.state
            .borrow()
            .toxics
            .iter()
            .filter(|t| conn.affected_by(t))
            .filter_map(|t| match &t.kind {
                ToxicKind::Postgres(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }
}
