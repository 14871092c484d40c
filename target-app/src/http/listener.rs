//! The public listener, and what it does when the process is out of file descriptors.
//!
//! At its open-file limit a process cannot `accept`: the kernel has completed the handshake,
//! the client has sent its request, and the connection waits in the backlog until the client
//! gives up. axum's own listener logs the EMFILE and retries a second later, so every new client
//! hangs. With `load-shed`, this listener keeps one descriptor in reserve (`/dev/null`): on
//! EMFILE it closes it, accepts the waiting connection into its slot, and marks it
//! [`Admission::refused`]. The shop routes answer such a connection 503 + Retry-After through
//! the usual error path (logged, counted as `app_load_shed_total{reason="descriptors"}`), the
//! probes answer as usual, and the connection is closed after its answer, which frees the slot
//! for the reserve again. This is libev's and libuv's "spare descriptor" technique; no crate
//! offers it for axum.
//!
//! The admin listener keeps a reserve too, always, and serves what it accepts on it: a service
//! out of descriptors must stay observable, or every alert about it goes blind at once. Either
//! way a connection accepted on the reserve is closed after one answer, so that the next client
//! (the next scrape) gets the slot in turn.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What a listener does with a connection when the process is out of descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtLimit {
    /// Leave it in the backlog and retry a second later (axum's behaviour; `load-shed` off).
    Wait,
    /// Accept it on the reserve and mark it refused (the public listener with `load-shed`).
    Refuse,
    /// Accept it on the reserve and serve it (the admin listener: metrics must get out).
    Serve,
}

/// A listener that keeps a descriptor in reserve for when the process has none left.
pub struct Shedding {
    inner: TcpListener,
    at_limit: AtLimit,
    /// The descriptor given up to accept a connection at the limit; `None` while it is spent.
    reserve: Option<std::fs::File>,
}

impl Shedding {
    pub fn new(inner: TcpListener, at_limit: AtLimit) -> Shedding {
        Shedding {
            inner,
            at_limit,
            reserve: match at_limit {
                AtLimit::Wait => None,
                AtLimit::Refuse | AtLimit::Serve => open_reserve(),
            },
        }
    }
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl Listener for Shedding {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let e = match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Take the reserve back as soon as there is a descriptor for it.
                    if self.at_limit != AtLimit::Wait && self.reserve.is_none() {
                        self.reserve = open_reserve();
                    }
                    return (Conn::new(stream, None), addr);
                }
                Err(e) => e,
            };
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
            ) {
                continue;
            }
            if self.at_limit == AtLimit::Wait || !out_of_descriptors(&e) {
                // What axum's own listener does: the error is logged, and accepting resumes
                // a second later, when some descriptors may have been closed.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            match self.reserve.take() {
                Some(spare) => {
                    drop(spare);
                    let waiting =
                        tokio::time::timeout(Duration::from_millis(50), self.inner.accept());
                    if let Ok(Ok((stream, addr))) = waiting.await {
                        let refuse = self.at_limit == AtLimit::Refuse;
                        tracing::warn!(%addr, refuse, "out of file descriptors: accepted a connection on the reserve descriptor");
                        return (Conn::new(stream, Some(refuse)), addr);
                    }
                }
                // Spent on a connection that has not closed yet: wait for its slot.
                None => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    self.reserve = open_reserve();
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, and how it was admitted.
pub struct Conn {
    stream: TcpStream,
    admission: Admission,
}

impl Conn {
    /// `reserve`: accepted on the reserve descriptor, and whether to refuse it.
    fn new(stream: TcpStream, reserve: Option<bool>) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            admission: Admission {
                on_reserve: reserve.is_some(),
                refused: reserve == Some(true),
            },
        }
    }
}

/// Per-connection facts for the handlers, as `ConnectInfo<Admission>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Accepted on the reserve descriptor while the process is out of them: close it after
    /// one answer, to free the slot.
    pub on_reserve: bool,
    /// And the shop routes answer it 503.
    pub refused: bool,
}

impl Connected<IncomingStream<'_, Shedding>> for Admission {
    fn connect_info(stream: IncomingStream<'_, Shedding>) -> Self {
        stream.io().admission
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
