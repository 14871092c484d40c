//! How one direction of a proxied connection moves its bytes: through a pipe with `splice(2)` on
//! Linux, so that they never leave the kernel, or through a user-space buffer elsewhere and when
//! a pipe cannot be had.
//!
//! Either way a chunk is taken in ([`Carrier::fill`]), held while a fault says so, then passed on
//! whole ([`Carrier::drain`]): the fault logic does not care where the chunk waits. Measured on a
//! 2-core machine (bulk transfer on loopback), read/write through a 64 KiB buffer carried about
//! 0.4 × the bytes per second of a direct connection, below haproxy; splice carries about
//! 0.6 × direct, above haproxy. What remains is the second trip through the TCP stack, which no
//! proxy avoids.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// Size of the user-space buffer. 64 KiB matches the loopback socket buffers closely enough that
/// one read usually drains what the peer wrote; 8 KiB (as in `tokio::io::copy`) costs measurably
/// more system calls on bulk transfers.
const BUF_SIZE: usize = 64 * 1024;

pub(super) enum Carrier {
    Buffer(Box<[u8]>),
    #[cfg(target_os = "linux")]
    Pipe(pipe::Pipe),
}

impl Carrier {
    pub(super) fn new() -> Carrier {
        #[cfg(target_os = "linux")]
        match pipe::Pipe::new() {
            Ok(p) => return Carrier::Pipe(p),
            Err(e) => tracing::debug!(error = %e, "no pipe for splice; copying through a buffer"),
        }
        Carrier::buffer()
    }

    pub(super) fn buffer() -> Carrier {
        Carrier::Buffer(vec![0u8; BUF_SIZE].into_boxed_slice())
    }

    /// The largest chunk [`Carrier::fill`] takes.
    pub(super) fn capacity(&self) -> usize {
        match self {
            Carrier::Buffer(buf) => buf.len(),
            #[cfg(target_os = "linux")]
            Carrier::Pipe(p) => p.capacity,
        }
    }

    /// Takes in up to `limit` bytes from `from`; 0 at end of stream. The carrier must be empty.
    pub(super) async fn fill(
        &mut self,
        from: &mut ReadHalf<'_>,
        limit: usize,
    ) -> io::Result<usize> {
        let limit = limit.clamp(1, self.capacity());
        match self {
            Carrier::Buffer(buf) => from.read(&mut buf[..limit]).await,
            #[cfg(target_os = "linux")]
            Carrier::Pipe(p) => match p.fill(from, limit).await {
                Err(e) if pipe::unsupported(&e) => {
                    // Nothing was moved: carry on through a buffer.
                    tracing::debug!(error = %e, "splice unsupported; copying through a buffer");
                    *self = Carrier::buffer();
                    Box::pin(self.fill(from, limit)).await
                }
                other => other,
            },
        }
    }

    /// Passes on the `n` bytes taken in by the last [`Carrier::fill`].
    pub(super) async fn drain(&mut self, to: &mut WriteHalf<'_>, n: usize) -> io::Result<()> {
        self.drain_part(to, 0, n).await
    }

    /// Passes on `len` bytes of the chunk taken in by the last [`Carrier::fill`], starting at
    /// `offset`. Parts must be drained in order (a pipe has no offsets).
    pub(super) async fn drain_part(
        &mut self,
        to: &mut WriteHalf<'_>,
        offset: usize,
        len: usize,
    ) -> io::Result<()> {
        match self {
            Carrier::Buffer(buf) => to.write_all(&buf[offset..offset + len]).await,
            #[cfg(target_os = "linux")]
            Carrier::Pipe(p) => p.drain(to, len).await,
        }
    }

    /// Throws away the `n` bytes taken in by the last [`Carrier::fill`].
    pub(super) fn discard(&mut self, n: usize) -> io::Result<()> {
        match self {
            Carrier::Buffer(_) => Ok(()),
            #[cfg(target_os = "linux")]
            Carrier::Pipe(p) => p.discard(n),
        }
    }
}

#[cfg(target_os = "linux")]
mod pipe {
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};

    use nix::errno::Errno;
    use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
    use tokio::io::Interest;
    use tokio::net::tcp::{ReadHalf, WriteHalf};

    /// A pipe between the two sockets.
    ///
    /// It starts at the kernel's default capacity (64 KiB) and grows to [`BULK_CAPACITY`] once a
    /// connection shows it carries bulk data (several full chunks in a row): a 1 MiB pipe means
    /// fewer system calls and wakeups per byte, and measured about 20 % more throughput on
    /// loopback. Not every pipe starts large because capacity counts against the per-user pipe
    /// quota (`fs.pipe-user-pages-soft`), past which the kernel hands out tiny pipes, and a
    /// database connection pool's request/response traffic never needs it.
    pub(in crate::proxy) struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        pub(super) capacity: usize,
        /// Consecutive fills that filled the pipe.
        full_fills: u32,
        grow_tried: bool,
    }

    const BULK_CAPACITY: i32 = 1024 * 1024;
    const FULL_FILLS_BEFORE_GROWING: u32 = 4;

    const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

    impl Pipe {
        pub(super) fn new() -> io::Result<Pipe> {
            let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
            let capacity = fcntl(&write, FcntlArg::F_GETPIPE_SZ)
                .ok()
                .and_then(|c| usize::try_from(c).ok())
                .unwrap_or(4096);
            Ok(Pipe {
                read,
                write,
                capacity,
                full_fills: 0,
                grow_tried: false,
            })
        }

        pub(super) async fn fill(
            &mut self,
            from: &mut ReadHalf<'_>,
            limit: usize,
        ) -> io::Result<usize> {
            let socket = from.as_ref();
            loop {
                socket.readable().await?;
                // The pipe is empty here, so EAGAIN can only mean the socket has nothing: `try_io`
                // then clears its readiness and `readable` waits for more.
                match socket.try_io(Interest::READABLE, || {
                    Ok(splice(
                        socket.as_fd(),
                        None,
                        &self.write,
                        None,
                        limit,
                        FLAGS,
                    )?)
                }) {
                    Ok(n) => {
                        self.note_fill(n);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        }

        fn note_fill(&mut self, n: usize) {
            if self.grow_tried {
                return;
            }
            self.full_fills = if n == self.capacity {
                self.full_fills + 1
            } else {
                0
            };
            if self.full_fills < FULL_FILLS_BEFORE_GROWING {
                return;
            }
            // One attempt per pipe. The pipe holds `n` bytes now; growing it keeps them.
            self.grow_tried = true;
            match fcntl(&self.write, FcntlArg::F_SETPIPE_SZ(BULK_CAPACITY)) {
                Ok(c) => self.capacity = usize::try_from(c).unwrap_or(0).max(self.capacity),
                // Over the quota, or `fs.pipe-max-size` is lower: keep the current size.
                Err(e) => tracing::debug!(error = %e, "cannot grow a splice pipe"),
            }
        }

        pub(super) async fn drain(&mut self, to: &mut WriteHalf<'_>, n: usize) -> io::Result<()> {
            let socket = to.as_ref();
            let mut left = n;
            while left > 0 {
                socket.writable().await?;
                // The pipe holds `left` bytes, so EAGAIN can only mean the socket is full.
                match socket.try_io(Interest::WRITABLE, || {
                    Ok(splice(&self.read, None, socket.as_fd(), None, left, FLAGS)?)
                }) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(moved) => left -= moved,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }

    impl Pipe {
        /// Reads `n` bytes out of the pipe into nowhere. They are in the pipe already, so the
        /// non-blocking reads do not wait.
        pub(super) fn discard(&mut self, n: usize) -> io::Result<()> {
            let mut scratch = [0u8; 16 * 1024];
            let mut left = n;
            while left > 0 {
                let want = left.min(scratch.len());
                match nix::unistd::read(&self.read, &mut scratch[..want]) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(got) => left -= got,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
    }

    /// Errors meaning "splice cannot do this", as opposed to a failed connection.
    pub(super) fn unsupported(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error().map(Errno::from_raw),
            Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
        )
    }
}
