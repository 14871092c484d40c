//! The accept loop: numbers each connection, drops or resets the ones a `down` or `reset` fault
//! picks and hands the others to a connection task; while the proxy refuses everything it stops
//! listening, so that clients get a real "connection refused", and holds the port meanwhile.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

use super::connection::{ConnRng, reset, serve};
use super::{ConnId, FaultSpec, ProxyFault, Shared, State};

pub(super) async fn accept_loop(
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
