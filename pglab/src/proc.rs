//! Child processes tied to the life of the process that started them.
//!
//! A lab starts servers (PostgreSQL, the target, Prometheus). If the controller is killed with
//! SIGKILL, nothing runs its `Drop`s, so each child is started with a parent-death signal: the
//! kernel sends it when its parent goes away. Linux ties that signal to the *thread* that forked
//! the child, not the process, so every tied child is forked from one thread that lives as long as
//! the process does. Without that, a child spawned from a short-lived blocking thread would be
//! killed when that thread retired.

#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::Signal;

type Request = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("pglab-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("the spawner thread starts");
        Mutex::new(tx)
    })
}

/// A child's piped stdout and stderr as readers, in that order (`None` for one not piped), for
/// the threads that read its lines.
pub fn output_pipes(child: &mut Child) -> [Option<Box<dyn io::Read + Send>>; 2] {
    [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
    ]
}

/// Spawns `command` so that it receives `signal` when this process dies, however it dies.
///
/// The signal is set after any `uid`/`gid` change the command asks for (the kernel clears it on a
/// credential change), so a server that runs as another user is covered too.
pub fn spawn_tied(mut command: Command, signal: Signal) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal).map_err(io::Error::from)?;
            // The parent may have died between fork and prctl; then nobody will signal us.
            if nix::unistd::getppid().as_raw() != parent as i32 {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((command, tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Sends `signal` to `child`, waits up to `grace` for it to exit, then kills it.
pub fn stop_child(child: &mut Child, signal: Signal, grace: std::time::Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // A stopped (SIGSTOP) process must be continued or it cannot act on the signal.
    let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
    let _ = nix::sys::signal::kill(pid, signal);
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tied_child_runs_and_can_be_stopped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = spawn_tied(cmd, Signal::SIGTERM).unwrap();
        assert!(child.try_wait().unwrap().is_none());
        stop_child(
            &mut child,
            Signal::SIGTERM,
            std::time::Duration::from_secs(5),
        );
        assert!(child.try_wait().unwrap().is_some());
    }
}
