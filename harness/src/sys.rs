//! The few system calls that neither the standard library nor `nix` wraps for us: starting the
//! target in a mount namespace of its own (with a private tmpfs at its data directory) and as
//! another user, between fork and exec; and `prlimit` on another process.
//!
//! This is the one module of the harness allowed `unsafe`; each block says why it is sound.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// How a child process is set apart from the controller when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolation {
    /// A tmpfs of this many bytes at this directory, mounted in the child's own mount namespace:
    /// the host never sees it, so nothing is left mounted when the child dies, however the
    /// controller ends.
    pub tmpfs: Option<(PathBuf, u64)>,
    /// Run as this uid and gid (no supplementary groups) instead of ours.
    pub user: Option<(u32, u32)>,
}

impl Isolation {
    pub fn is_empty(&self) -> bool {
        self.tmpfs.is_none() && self.user.is_none()
    }
}

/// Arranges for `cmd` to start isolated as `iso` says. The mounts happen before the change of
/// user, which would drop the privilege they need; `pglab::proc::spawn_tied` adds its own
/// pre-exec step afterwards, so the parent-death signal survives the change of user.
pub fn isolate(cmd: &mut Command, iso: &Isolation) -> io::Result<()> {
    if iso.is_empty() {
        return Ok(());
    }
    // Everything the child uses is built here, in the parent: between fork and exec only
    // async-signal-safe calls are allowed, so the closure must not allocate.
    let tmpfs = match &iso.tmpfs {
        Some((dir, size)) => {
            let mut options = format!("size={size},mode=0700");
            if let Some((uid, gid)) = iso.user {
                options.push_str(&format!(",uid={uid},gid={gid}"));
            }
            Some((
                CString::new(dir.as_os_str().as_bytes())?,
                CString::new(options)?,
            ))
        }
        None => None,
    };
    let user = iso.user;
    // SAFETY: the closure runs in the child between fork and exec. It only makes raw system
    // calls (unshare, mount, setgroups, setgid, setuid) on C strings built before the fork,
    // and reads errno; none of it allocates or takes a lock.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((dir, options)) = &tmpfs {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Mounts made from here on must not propagate back to the host's namespace
                // (with shared propagation, the default under systemd, they would).
                if libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    options.as_ptr().cast(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some((uid, gid)) = user
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// The soft and hard `RLIMIT_NOFILE` of process `pid`.
pub fn nofile_limit(pid: u32) -> io::Result<(u64, u64)> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit only reads; `old` is a valid, writable rlimit.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((old.rlim_cur, old.rlim_max))
}

/// Sets the `RLIMIT_NOFILE` of process `pid`. Lowering the soft limit of a process of our own
/// user needs no privilege; raising the hard one needs CAP_SYS_RESOURCE.
pub fn set_nofile_limit(pid: u32, soft: u64, hard: u64) -> io::Result<()> {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `new` is a valid rlimit that outlives the call; a null old limit is not written.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_open_file_limit_is_readable() {
        // Setting it is tested with the fault that does (faults::fds), in one test: two tests
        // changing the process's limit at once would race.
        let (soft, hard) = nofile_limit(std::process::id()).unwrap();
        assert!(soft > 0 && soft <= hard);
    }

    #[test]
    fn an_empty_isolation_adds_nothing() {
        let mut cmd = Command::new("true");
        isolate(&mut cmd, &Isolation::default()).unwrap();
        assert!(cmd.status().unwrap().success());
    }
}
