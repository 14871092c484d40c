//! The proxy's API: [`Proxy`] starts a proxy and owns it (dropping it stops the proxy), sets and
//! clears its fault; [`ProxyHandle`] drives a proxy's toxics and `enabled` without owning it, as
//! a registry of proxies (the Toxiproxy API) needs; both read [`ProxyStats`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::accept::accept_loop;
use super::{FaultSpec, ProxyError, Shared, State, Toxic};

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Connections accepted, including those a fault closed at once.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_up: u64,
    /// Bytes forwarded from the upstream to clients.
    pub bytes_down: u64,
}

/// A running proxy. Dropping it stops accepting and closes its connections (in the background);
/// [`Proxy::stop`] does the same and waits until every connection is closed.
pub struct Proxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: Option<JoinHandle<()>>,
    /// Yields `None` once every connection task (each holds a sender) has ended: the
    /// mini-redis shutdown pattern, which needs no task tracker.
    all_closed: Option<mpsc::Receiver<()>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks a free port; see [`Proxy::local_addr`]) and forwards
    /// every connection to `upstream`. `seed` drives every random choice (fractions, jitter).
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> Result<Proxy, ProxyError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            upstream,
            seed,
            state: watch::Sender::new(State {
                fault: None,
                enabled: true,
                toxics: Arc::from(Vec::new()),
            }),
            listening: watch::Sender::new(true),
            cancel: CancellationToken::new(),
            accepted: AtomicU64::new(0),
            active: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let (closed_tx, closed_rx) = mpsc::channel(1);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            local_addr,
            Arc::clone(&shared),
            closed_tx,
        ));
        Ok(Proxy {
            local_addr,
            shared,
            accept_task: Some(accept_task),
            all_closed: Some(closed_rx),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Makes `fault` the active fault (replacing any other), for new and open connections alike.
    pub fn set_fault(&self, fault: impl Into<FaultSpec>) -> Result<(), ProxyError> {
        let spec = fault.into();
        spec.check()
            .map_err(|e| ProxyError::InvalidFault(e.message))?;
        self.shared.state.send_modify(|s| s.fault = Some(spec));
        Ok(())
    }

    /// Deletes the active fault: every connection goes back to plain copying at once.
    pub fn clear_fault(&self) {
        self.shared.state.send_modify(|s| s.fault = None);
    }

    pub fn active_fault(&self) -> Option<FaultSpec> {
        self.shared.state.borrow().fault.clone()
    }

    /// Replaces the proxy's toxics (applied in this order), for new and open connections alike.
    /// The active fault, if any, stays.
    pub fn set_toxics(&self, toxics: Vec<Toxic>) -> Result<(), ProxyError> {
        self.handle().set_toxics(toxics)
    }

    pub fn toxics(&self) -> Vec<Toxic> {
        self.handle().toxics()
    }

    /// A disabled proxy does not listen and closes its open connections; enabling it listens
    /// again on the same address.
    pub fn set_enabled(&self, enabled: bool) {
        self.handle().set_enabled(enabled);
    }

    pub fn enabled(&self) -> bool {
        self.handle().enabled()
    }

    /// A handle that drives this proxy's toxics and `enabled` without owning it: dropping the
    /// handle leaves the proxy running. This is how a registry of proxies (the Toxiproxy API)
    /// reaches proxies that a lab owns.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            local_addr: self.local_addr,
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn stats(&self) -> ProxyStats {
        stats_of(&self.shared)
    }

    /// Stops listening, closes every connection, and returns once they are all closed.
    pub async fn stop(mut self) {
        self.shared.cancel.cancel();
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
        if let Some(mut closed) = self.all_closed.take() {
            let _ = closed.recv().await;
        }
    }
}

fn stats_of(s: &Shared) -> ProxyStats {
    ProxyStats {
        accepted: s.accepted.load(Ordering::Relaxed),
        active: s.active.load(Ordering::Relaxed),
        bytes_up: s.bytes_up.load(Ordering::Relaxed),
        bytes_down: s.bytes_down.load(Ordering::Relaxed),
    }
}

/// See [`Proxy::handle`].
#[derive(Clone)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ProxyHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// See [`Proxy::set_toxics`].
    pub fn set_toxics(&self, toxics: Vec<Toxic>) -> Result<(), ProxyError> {
        for t in &toxics {
            if !(0.0..=1.0).contains(&t.toxicity) {
                return Err(ProxyError::InvalidFault(format!(
                    "toxicity of `{}` must be between 0 and 1, got {}",
                    t.name, t.toxicity
                )));
            }
        }
        self.shared
            .state
            .send_modify(|s| s.toxics = Arc::from(toxics));
        Ok(())
    }

    pub fn toxics(&self) -> Vec<Toxic> {
        self.shared.state.borrow().toxics.to_vec()
    }

    /// See [`Proxy::set_enabled`].
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.state.send_if_modified(|s| {
            let changed = s.enabled != enabled;
            s.enabled = enabled;
            changed
        });
    }

    pub fn enabled(&self) -> bool {
        self.shared.state.borrow().enabled
    }

    /// Waits (at most `limit`) until the proxy listens, or refuses, as `listening` says.
    pub async fn listening(&self, listening: bool, limit: Duration) {
        let mut rx = self.shared.listening.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|l| *l == listening)).await;
    }

    pub fn stats(&self) -> ProxyStats {
        stats_of(&self.shared)
    }

    /// Whether the proxy this handle reaches has stopped (dropped or [`Proxy::stop`]ped).
    pub fn is_stopped(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
