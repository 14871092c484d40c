//! File operations that cannot be redirected by whoever owns the directory they act in.
//!
//! The controller runs as root and changes modes, writes and removes files inside directories
//! that the unprivileged target owns (its data directory). A path handed to `chmod` or `open`
//! is resolved anew at every call, so the target's user can swap a directory for a symlink to
//! `/etc/passwd` between two calls and have root act on that instead. Here every directory is
//! reached by `openat` one component at a time with `O_NOFOLLOW`, and every change is made on a
//! descriptor (`fchmod`, `fstat`, files created with `O_CREAT|O_EXCL|O_NOFOLLOW`, `unlinkat`
//! relative to the directory's descriptor): a link met on the way is an error, never followed.
//!
//! `openat2(RESOLVE_NO_SYMLINKS)` would do the walk in one call, but it needs Linux 5.6 and is
//! not wrapped by `nix`; the walk costs one system call per component of a short path.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::UnlinkatFlags;

/// What went wrong, and on which path.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    /// A system call failed; a symlink met on the way reads as `ELOOP` or `ENOTDIR`.
    #[error("{op} {}: {}", path.display(), describe(*errno))]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    /// The path has a component that would leave the directory (`..`), or is not absolute
    /// where it must be.
    #[error("{}: {why}", path.display())]
    Path { path: PathBuf, why: &'static str },
    /// A directory that must be private belongs to another user.
    #[error(
        "{} is owned by uid {owner}, not by this user (uid {me}): refusing to trust it",
        path.display()
    )]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    /// A directory that must be private can be written by others.
    #[error(
        "{} has mode {mode:04o}: other users can write to it, so nothing in it can be trusted",
        path.display()
    )]
    OpenToOthers { path: PathBuf, mode: u32 },
    /// A chmod did not read back as the mode set.
    #[error("{} has mode {got:04o} after chmod {want:04o}", path.display())]
    ModeMismatch { path: PathBuf, want: u32, got: u32 },
}

fn describe(errno: Errno) -> String {
    match errno {
        Errno::ELOOP => "it is a symbolic link, which is never followed here".into(),
        e => e.desc().to_string(),
    }
}

impl SafeFsError {
    /// Whether the error is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            SafeFsError::Sys {
                errno: Errno::ENOENT,
                ..
            }
        )
    }
}

type Result<T> = std::result::Result<T, SafeFsError>;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open directory; everything done through it is relative to its descriptor.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only: never resolved again.
    path: PathBuf,
}

impl Dir {
    /// Opens the absolute `path` from `/`, following no symbolic link on the way.
    pub fn open(path: &Path) -> Result<Dir> {
        if !path.is_absolute() {
            return Err(SafeFsError::Path {
                path: path.to_path_buf(),
                why: "not an absolute path",
            });
        }
        let root = Dir::open_trusted(Path::new("/"))?;
        root.walk(path)
    }

    /// Opens a directory whose path may be followed: one only root can change, or a link the
    /// kernel itself provides (`/proc/<pid>/root`). Never use it for a path inside a directory
    /// someone else owns.
    pub fn open_trusted(path: &Path) -> Result<Dir> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty()).map_err(|errno| {
            SafeFsError::Sys {
                op: "open",
                path: path.to_path_buf(),
                errno,
            }
        })?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The directory `path` as process `pid` sees it: its root (a link the kernel resolves into
    /// the process's mount namespace) followed, every component after it not.
    pub fn open_seen_by(pid: u32, path: &Path) -> Result<Dir> {
        let root = Dir::open_trusted(&PathBuf::from(format!("/proc/{pid}/root")))?;
        root.walk(path)
    }

    /// Opens `rel` below this directory one component at a time, following no link. A leading
    /// `/` is ignored (the path is taken relative to this directory); `..` is refused.
    pub fn walk(&self, rel: &Path) -> Result<Dir> {
        let mut here = Dir {
            fd: self.fd.try_clone().map_err(|e| SafeFsError::Sys {
                op: "dup",
                path: self.path.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
            })?,
            path: self.path.clone(),
        };
        for c in rel.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => here = here.subdir(Path::new(name))?,
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(SafeFsError::Path {
                        path: rel.to_path_buf(),
                        why: "`..` is not allowed in a path walked without following links",
                    });
                }
            }
        }
        Ok(here)
    }

    /// The directory `name` (one component) inside this one; a symbolic link is an error.
    pub fn subdir(&self, name: &Path) -> Result<Dir> {
        let name = self.one_component(name)?;
        let fd = openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|errno| self.err("open", name, errno))?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Creates the directory `name` with `mode` (an existing one is fine) and opens it.
    pub fn create_subdir(&self, name: &Path, mode: u32) -> Result<Dir> {
        let name = self.one_component(name)?;
        match nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(self.err("mkdir", name, errno)),
        }
        self.subdir(name)
    }

    /// The directory `name` inside this one, private to this user: created 0700 if missing;
    /// if it exists it must be a directory (not a link) owned by this user that no one else can
    /// write. One that others may only read is tightened to 0700 (nobody else could have put
    /// anything in it); one that others can write, or another user's, is refused.
    pub fn private_subdir(&self, name: &Path) -> Result<Dir> {
        let dir = self.create_subdir(name, 0o700)?;
        let st = dir.stat()?;
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(SafeFsError::NotOwned {
                path: dir.path.clone(),
                owner: st.st_uid,
                me,
            });
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(SafeFsError::OpenToOthers {
                path: dir.path.clone(),
                mode,
            });
        }
        if mode & 0o077 != 0 {
            dir.set_mode(mode & 0o700 | 0o700)?;
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `fstat` of the directory itself.
    pub fn stat(&self) -> Result<FileStat> {
        fstat(&self.fd).map_err(|errno| SafeFsError::Sys {
            op: "stat",
            path: self.path.clone(),
            errno,
        })
    }

    /// The permission bits of the directory itself.
    pub fn mode(&self) -> Result<u32> {
        Ok(self.stat()?.st_mode & 0o7777)
    }

    /// `fchmod` of the directory itself, verified by reading the mode back.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        fchmod(&self.fd, Mode::from_bits_truncate(mode)).map_err(|errno| SafeFsError::Sys {
            op: "chmod",
            path: self.path.clone(),
            errno,
        })?;
        match self.mode()? {
            got if got == mode => Ok(()),
            got => Err(SafeFsError::ModeMismatch {
                path: self.path.clone(),
                want: mode,
                got,
            }),
        }
    }

    /// Creates the file `name` with `mode`, failing if anything (a file, a link) is already
    /// there: the file written is always one this call made.
    pub fn create_new(&self, name: &Path, mode: u32) -> Result<File> {
        self.create_new_with(name, mode, OFlag::empty())
    }

    /// [`Dir::create_new`] with more flags (`O_APPEND`).
    pub fn create_new_with(&self, name: &Path, mode: u32, extra: OFlag) -> Result<File> {
        let name = self.one_component(name)?;
        let flags = extra
            | OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(mode))
            .map_err(|errno| self.err("create", name, errno))?;
        Ok(File::from(fd))
    }

    /// Opens the regular file `name` with `flags` (plus `O_NOFOLLOW`); anything but a regular
    /// file is refused.
    pub fn open_file(&self, name: &Path, flags: OFlag) -> Result<File> {
        let name = self.one_component(name)?;
        let fd = openat(
            &self.fd,
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| self.err("open", name, errno))?;
        let st = fstat(&fd).map_err(|errno| self.err("stat", name, errno))?;
        if !is_kind(&st, SFlag::S_IFREG) {
            return Err(self.err("open", name, Errno::EINVAL));
        }
        Ok(File::from(fd))
    }

    /// `lstat` of `name`: a symbolic link is reported as one, never followed.
    pub fn stat_at(&self, name: &Path) -> Result<FileStat> {
        let name = self.one_component(name)?;
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|errno| self.err("stat", name, errno))
    }

    /// Whether anything (a link included) is at `name`.
    pub fn exists(&self, name: &Path) -> bool {
        self.stat_at(name).is_ok()
    }

    /// Removes the file (or link: the link itself) `name`; `Ok(false)` if there was none.
    pub fn remove_file(&self, name: &Path) -> Result<bool> {
        let name = self.one_component(name)?;
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(self.err("remove", name, errno)),
        }
    }

    /// Renames `from` to `to`, both in this directory; whatever was at `to` (a link included)
    /// is replaced, never followed.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let from = self.one_component(from)?;
        let to = self.one_component(to)?;
        nix::fcntl::renameat(&self.fd, from, &self.fd, to)
            .map_err(|errno| self.err("rename", from, errno))
    }

    /// The names in this directory (without `.` and `..`).
    pub fn entries(&self) -> Result<Vec<std::ffi::OsString>> {
        // `/proc/self/fd/N` names this very descriptor: reading it cannot be redirected.
        let me = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.fd)
        ));
        let list = std::fs::read_dir(&me).map_err(|e| SafeFsError::Sys {
            op: "list",
            path: self.path.clone(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        Ok(list.flatten().map(|e| e.file_name()).collect())
    }

    /// Bytes available to an unprivileged writer on this directory's filesystem.
    pub fn free_bytes(&self) -> Result<u64> {
        let st = nix::sys::statvfs::fstatvfs(&self.fd).map_err(|errno| SafeFsError::Sys {
            op: "statvfs",
            path: self.path.clone(),
            errno,
        })?;
        Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
    }

    fn one_component<'a>(&self, name: &'a Path) -> Result<&'a Path> {
        let mut parts = name.components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(_)), None) => Ok(name),
            _ => Err(SafeFsError::Path {
                path: self.path.join(name),
                why: "not a single name inside the directory",
            }),
        }
    }

    fn err(&self, op: &'static str, name: &Path, errno: Errno) -> SafeFsError {
        SafeFsError::Sys {
            op,
            path: self.path.join(name),
            errno,
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether `st` is of file type `kind` (`S_IFREG`, `S_IFDIR`, ...).
pub fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_is_refused_and_the_linked_file_keeps_its_mode() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("passwd");
        std::fs::write(&victim, "root:x:0:0\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let owned = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&victim, owned.path().join("receipts")).unwrap();
        let err = Dir::open(&owned.path().join("receipts")).unwrap_err();
        assert!(err.to_string().contains("symbolic link") || err.to_string().contains("directory"));
        assert_eq!(mode_of(&victim), 0o644);
    }

    #[test]
    fn a_symlinked_directory_on_the_way_is_not_followed() {
        let real = tempfile::tempdir().unwrap();
        std::fs::create_dir(real.path().join("inner")).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(real.path(), other.path().join("link")).unwrap();
        assert!(Dir::open(&other.path().join("link/inner")).is_err());
        assert!(Dir::open(&real.path().join("inner")).is_ok());
        assert!(Dir::open(&real.path().join("inner/..")).is_err());
        assert!(Dir::open(Path::new("relative/path")).is_err());
    }

    #[test]
    fn a_mode_set_on_the_descriptor_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        dir.set_mode(0o500).unwrap();
        assert_eq!(mode_of(d.path()), 0o500);
        dir.set_mode(0o700).unwrap();
        assert_eq!(dir.mode().unwrap(), 0o700);
    }

    #[test]
    fn a_new_file_is_never_one_planted_before_it() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("shadow");
        std::fs::write(&victim, "secret").unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("probe")).unwrap();
        let dir = Dir::open(d.path()).unwrap();
        assert!(dir.create_new(Path::new("probe"), 0o600).is_err());
        assert!(
            dir.open_file(Path::new("probe"), OFlag::O_WRONLY | OFlag::O_APPEND)
                .is_err()
        );
        // Removing it removes the link, not what it points at.
        assert!(dir.remove_file(Path::new("probe")).unwrap());
        assert!(!dir.remove_file(Path::new("probe")).unwrap());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret");
        let mut f = dir.create_new(Path::new("probe"), 0o600).unwrap();
        f.write_all(b"mine").unwrap();
        let mut back = String::new();
        dir.open_file(Path::new("probe"), OFlag::O_RDONLY)
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "mine");
        assert_eq!(mode_of(&d.path().join("probe")), 0o600);
        assert!(dir.create_new(Path::new("../escape"), 0o600).is_err());
    }

    #[test]
    fn a_private_directory_is_made_0700_and_one_others_can_write_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let parent = Dir::open(d.path()).unwrap();
        let made = parent.private_subdir(Path::new("state")).unwrap();
        assert_eq!(made.mode().unwrap(), 0o700);
        std::fs::set_permissions(
            d.path().join("state"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(
            parent
                .private_subdir(Path::new("state"))
                .unwrap()
                .mode()
                .unwrap(),
            0o700,
            "a readable one is tightened"
        );
        std::fs::set_permissions(
            d.path().join("state"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let err = parent.private_subdir(Path::new("state")).unwrap_err();
        assert!(err.to_string().contains("mode 0777"), "{err}");
        std::fs::create_dir(d.path().join("planted")).unwrap();
        nix::unistd::chown(
            &d.path().join("planted"),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        let err = parent.private_subdir(Path::new("planted")).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        std::os::unix::fs::symlink(d.path().join("state"), d.path().join("link")).unwrap();
        assert!(parent.private_subdir(Path::new("link")).is_err());
    }

    #[test]
    fn a_directory_lists_and_renames_through_its_descriptor() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        drop(dir.create_new(Path::new("a"), 0o600).unwrap());
        dir.rename(Path::new("a"), Path::new("b")).unwrap();
        assert_eq!(dir.entries().unwrap(), vec![std::ffi::OsString::from("b")]);
        let sub = dir.create_subdir(Path::new("sub"), 0o700).unwrap();
        assert_eq!(sub.mode().unwrap(), 0o700);
        assert!(dir.create_subdir(Path::new("sub"), 0o700).is_ok());
        assert!(dir.free_bytes().unwrap() > 0);
    }
}
