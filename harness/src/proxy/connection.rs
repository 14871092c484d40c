//! One proxied connection, from its accept to its cut: a protocol toxic (an HTTP answer, a
//! PostgreSQL error) takes it whole; otherwise it connects to the upstream (not while stalled),
//! runs both directions in one task, and cuts both sides the same way when the fault, the
//! `enabled` switch, a toxic or either side ends it.

use std::future::pending;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::direction::Direction;
use super::toxic::{self, DirectionToxics};
use super::{ConnId, FaultSpec, ProxyFault, Shared, State, Stream, ToxicKind, http_answer, pgwire};

/// Closes `stream` with an RST rather than a FIN when it is dropped.
pub(super) fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        tracing::debug!(error = %e, "cannot set SO_LINGER 0");
    }
}

/// The random draws of one connection: seeded by the proxy's seed with the connection number as
/// the ChaCha stream, so the draws do not depend on which connections came before or on timing.
pub(super) struct ConnRng {
    /// Compared with a fault's fraction: the connection is affected when `draw < fraction`.
    pub(super) draw: f64,
    pub(super) up: ChaCha8Rng,
    pub(super) down: ChaCha8Rng,
}

impl ConnRng {
    pub(super) fn new(seed: u64, connection: u64) -> ConnRng {
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

pub(super) async fn serve(
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

/// When one side fails, the other is closed the same way: a reset is passed on as a reset.
fn cut_for(e: &io::Error) -> Cut {
    tracing::debug!(error = %e, "proxied connection failed");
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Cut::Reset,
        _ => Cut::Close,
    }
}
