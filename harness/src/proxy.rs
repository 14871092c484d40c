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

use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod carrier;
mod fault;
mod http_answer;
mod pgwire;
#[cfg(test)]
mod tests;
pub mod toxic;

use carrier::Carrier;
pub use fault::{FaultKeyError, FaultSpec, ProxyFault, ProxyFaultKind, RawFault};
pub use http_answer::HttpAnswer;
pub use pgwire::PgToxic;
use toxic::{DirectionToxics, ToxicCut};
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

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    closed: mpsc::Sender<()>,
) {
    let mut faults = shared.state.subscribe();
    let mut next_connection: u64 = 0;
    loop {
        let state = faults.borrow_and_update().clone();
        if state.refuses_all() {
            // Stop listening so that clients get a real `ECONNREFUSED`, which is what a database
            // that is down gives them. Accepting and closing at once (the fallback for a
            // fraction) gives a different error ("server closed the connection unexpectedly").
            drop(listener);
            shared.listening.send_replace(false);
            match refuse_until_revert(addr, &shared, &mut faults).await {
                Some(l) => listener = l,
                None => return,
            }
            shared.listening.send_replace(true);
            continue;
        }
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return,
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning; the error clears when
                        // connections close.
                        tracing::warn!(error = %e, %addr, "proxy accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let number = next_connection;
                next_connection += 1;
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let rng = ConnRng::new(shared.seed, number);
                let conn = ConnId { seed: shared.seed, number };
                match FaultSpec::for_draw(&state.fault, rng.draw) {
                    Some(ProxyFault::Down) => drop(stream),
                    Some(ProxyFault::Reset) => reset(&stream),
                    _ => {
                        let shared = Arc::clone(&shared);
                        tokio::spawn(serve(stream, rng, conn, shared, closed.clone()));
                    }
                }
            }
        }
    }
}

/// While the proxy refuses everything, holds the port with a bound socket that does not listen
/// (the kernel answers a SYN to it with RST, i.e. "connection refused") so that nobody else can
/// take the port, and listens again once the fault changes. `None` when the proxy stopped.
async fn refuse_until_revert(
    addr: SocketAddr,
    shared: &Shared,
    faults: &mut watch::Receiver<State>,
) -> Option<TcpListener> {
    let placeholder = bound_socket(addr);
    if let Err(e) = &placeholder {
        tracing::warn!(error = %e, %addr, "proxy could not hold its port while down");
    }
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return None,
            changed = faults.changed() => {
                if changed.is_err() {
                    return None;
                }
                if !faults.borrow_and_update().refuses_all() {
                    break;
                }
            }
        }
    }
    // SO_REUSEADDR on both sockets lets the new listener bind while the placeholder still holds
    // the port, so there is no moment at which the port is free.
    loop {
        match bound_socket(addr).and_then(|s| s.listen(1024)) {
            Ok(listener) => return Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, %addr, "proxy cannot listen again; retrying");
                tokio::select! {
                    _ = shared.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

fn bound_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Closes `stream` with an RST rather than a FIN when it is dropped.
fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!(error = %e, "cannot set SO_LINGER 0");
    }
}

/// The random draws of one connection: seeded by the proxy's seed with the connection number as
/// the ChaCha stream, so the draws do not depend on which connections came before or on timing.
struct ConnRng {
    /// Compared with a fault's fraction: the connection is affected when `draw < fraction`.
    draw: f64,
    up: ChaCha8Rng,
    down: ChaCha8Rng,
}

impl ConnRng {
    fn new(seed: u64, connection: u64) -> ConnRng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(connection);
        let draw = rng.random::<f64>();
        let up = ChaCha8Rng::from_rng(&mut rng);
        let down = ChaCha8Rng::from_rng(&mut rng);
        ConnRng { draw, up, down }
    }
}

/// Keeps `active` right on every exit path of a connection task.
struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    fn new(active: &'a AtomicU64) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a connection should be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// FIN both sides.
    Close,
    /// RST both sides.
    Reset,
}

/// Resolves when the active fault, a disabled proxy or a `timeout` toxic says this connection
/// must be cut.
async fn cut_signal(mut faults: watch::Receiver<State>, draw: f64, conn: ConnId) -> Cut {
    let mut timeouts_seen = std::collections::HashMap::new();
    loop {
        let deadline = {
            let state = faults.borrow_and_update();
            match FaultSpec::for_draw(&state.fault, draw) {
                Some(ProxyFault::Down) => return Cut::Close,
                Some(ProxyFault::Reset) => return Cut::Reset,
                _ => {}
            }
            if !state.enabled {
                return Cut::Close;
            }
            toxic::timeout_deadline(&state.toxics, conn, &mut timeouts_seen)
        };
        let timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => pending::<()>().await,
            }
        };
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    pending::<()>().await;
                }
            }
            _ = timeout => return Cut::Close,
        }
    }
}

/// Resolves once this connection is not stalled.
async fn unstalled(mut faults: watch::Receiver<State>, draw: f64) {
    while matches!(
        FaultSpec::for_draw(&faults.borrow_and_update().fault, draw),
        Some(ProxyFault::Stall)
    ) {
        if faults.changed().await.is_err() {
            pending::<()>().await;
        }
    }
}

async fn serve(
    mut client: TcpStream,
    rng: ConnRng,
    conn: ConnId,
    shared: Arc<Shared>,
    _closed: mpsc::Sender<()>,
) {
    let _active = ActiveGuard::new(&shared.active);
    let mut cut = pin!(cut_signal(shared.state.subscribe(), rng.draw, conn));

    // A toxic that speaks the connection's protocol (HTTP answers, PostgreSQL errors) takes the
    // whole connection from its start.
    let protocol = {
        let state = shared.state.borrow();
        state
            .toxics
            .iter()
            .find(|t| t.kind.is_protocol() && conn.affected_by(t))
            .map(|t| t.kind.clone())
    };
    match protocol {
        Some(ToxicKind::Http(answer)) => {
            tokio::select! {
                _ = shared.cancel.cancelled() => {}
                _ = &mut cut => {}
                _ = http_answer::serve(client, &answer) => {}
            }
            return;
        }
        Some(ToxicKind::Postgres(_)) => {
            tokio::select! {
                _ = shared.cancel.cancelled() => {}
                _ = &mut cut => {}
                _ = pgwire::serve(client, conn, &shared) => {}
            }
            return;
        }
        _ => {}
    }

    // A stalled connection does not reach the upstream at all, as behind a black-holed network:
    // connecting at once would hold a server connection slot (PostgreSQL's max_connections)
    // that the real fault would not.
    let connect = async {
        unstalled(shared.state.subscribe(), rng.draw).await;
        TcpStream::connect(shared.upstream).await
    };
    let mut upstream = tokio::select! {
        biased;
        _ = shared.cancel.cancelled() => return,
        how = &mut cut => {
            if how == Cut::Reset {
                reset(&client);
            }
            return;
        }
        connected = connect => match connected {
            Ok(upstream) => upstream,
            Err(e) => {
                // A reset is the nearest a proxy can come to the client's own "connection
                // refused"; a FIN would look like a server that accepted and then hung up.
                tracing::debug!(error = %e, upstream = %shared.upstream, "proxy cannot reach upstream");
                reset(&client);
                return;
            }
        }
    };
    // Both sides carry small request/response exchanges (PostgreSQL, HTTP): Nagle's algorithm
    // with delayed ACKs would add up to 40 ms per round trip.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let end = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let up_toxics = DirectionToxics::new(Stream::Upstream, conn, rng.up.clone());
        let down_toxics = DirectionToxics::new(Stream::Downstream, conn, rng.down.clone());
        let mut up = Direction::new(&shared, rng.draw, rng.up, up_toxics, &shared.bytes_up);
        let mut down = Direction::new(&shared, rng.draw, rng.down, down_toxics, &shared.bytes_down);
        let mut up_done = false;
        let mut down_done = false;
        let mut up_copy = pin!(up.copy(client_read, upstream_write));
        let mut down_copy = pin!(down.copy(upstream_read, client_write));
        // Both directions run in this one task (as `tokio::io::copy_bidirectional` does): no
        // cross-task wakeups, and a cut drops both copies at the same point.
        loop {
            tokio::select! {
                biased;
                _ = shared.cancel.cancelled() => break Some(Cut::Close),
                how = &mut cut => break Some(how),
                r = &mut up_copy, if !up_done => match r {
                    Ok(()) => up_done = true,
                    Err(e) => break Some(cut_for(&e)),
                },
                r = &mut down_copy, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(e) => break Some(cut_for(&e)),
                },
            }
            if up_done && down_done {
                break None;
            }
        }
    };
    if end == Some(Cut::Reset) {
        reset(&client);
        reset(&upstream);
    }
}

/// Passes a FIN on and lets the other direction carry on.
async fn half_close(to: &mut WriteHalf<'_>) -> io::Result<()> {
    match to.shutdown().await {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// A toxic's end of a connection, as the error the connection task turns into a [`Cut`].
fn toxic_cut(cut: ToxicCut) -> io::Error {
    match cut {
        ToxicCut::Reset => io::Error::new(io::ErrorKind::ConnectionReset, "reset_peer toxic"),
        ToxicCut::Close => io::Error::other("limit_data toxic"),
    }
}

/// When one side fails, the other is closed the same way: a reset is passed on as a reset.
fn cut_for(e: &io::Error) -> Cut {
    tracing::debug!(error = %e, "proxied connection failed");
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Cut::Reset,
        _ => Cut::Close,
    }
}

/// One direction of one connection: copies chunks and applies the active fault and toxics to
/// each.
struct Direction<'a> {
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
    fn new(
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

    async fn copy(&mut self, mut from: ReadHalf<'_>, mut to: WriteHalf<'_>) -> io::Result<()> {
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
