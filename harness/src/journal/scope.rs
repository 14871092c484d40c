//! What `recover` may touch. A journal says what a run made, but `recover` runs as root: it acts
//! only on what it can prove the harness made, whatever a journal says. A process by its pid
//! *and* start time; a directory only as a direct child of the temporary directory with a name
//! the harness gives (`fivehundred-…`, `pglab-…`), owned by the caller (or by `postgres`, for a
//! cluster made as root) and not a link; a
//! database only by a name the harness gives (`fivehundred_<32 hex digits>`); a cgroup only
//! under the cgroup filesystem with a name the harness gives.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

/// What to do with one thing a journal names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It is the harness's and still there.
    Act,
    /// Nothing is there any more.
    Gone,
    /// Not provably the harness's: left alone, for this reason.
    Refuse(String),
}

/// A journal is read only if it is a regular file of the caller's that no one else can write.
pub(super) fn trusted_journal(file: &File) -> Result<(), String> {
    let m = file.metadata().map_err(|e| e.to_string())?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if m.uid() != me {
        return Err(format!(
            "owned by uid {}, not by this user (uid {me})",
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:04o}: other users could have written it",
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A process is killed only if it is the one journalled: same pid, same start time. A process
/// journalled without a start time is never killed (its pid alone proves nothing), nor are
/// pid 0 and 1 (a signal to 0 reaches the whole process group) or this process.
pub(super) fn process(pid: u32, start_time: Option<u64>) -> Verdict {
    if pid <= 1 || pid == std::process::id() {
        return Verdict::Refuse(format!("pid {pid} is never a process of a run"));
    }
    let Some(then) = start_time else {
        return match super::process_start_time(pid) {
            None => Verdict::Gone,
            Some(_) => {
                Verdict::Refuse("journalled without a start time, so not provably the run's".into())
            }
        };
    };
    match super::process_start_time(pid) {
        Some(now) if now == then => Verdict::Act,
        // Another process has the pid now, or none does: the run's process is gone.
        _ => Verdict::Gone,
    }
}

/// A database is dropped only if its name is one the harness gives.
pub(super) fn database(name: &str) -> Result<(), String> {
    let hex = name.strip_prefix("fivehundred_").unwrap_or("");
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err("not a name the harness gives its databases (fivehundred_<32 hex digits>)".into())
    }
}

/// Whether `path` is absolute and plain: no `.` or `..` to climb out of where it seems to be.
fn plain(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn name_starts_with(path: &Path, prefixes: &[&str]) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p)))
}

/// A directory is removed only if it is a direct child of the temporary directory named as the
/// harness (`fivehundred-`) or its PostgreSQL clusters (`pglab-`) name theirs, a real directory
/// (not a link), owned by the caller.
pub(super) fn dir(path: &Path) -> Verdict {
    dir_under(path, &std::env::temp_dir())
}

fn dir_under(path: &Path, temp: &Path) -> Verdict {
    if !plain(path) || path.parent() != Some(temp) {
        return Verdict::Refuse(format!(
            "not directly in the temporary directory {}",
            temp.display()
        ));
    }
    if !name_starts_with(path, &["fivehundred-", "pglab-"]) {
        return Verdict::Refuse("not a name the harness gives its directories".into());
    }
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::Gone,
        Err(e) => return Verdict::Refuse(e.to_string()),
    };
    if !m.file_type().is_dir() {
        return Verdict::Refuse("not a directory (a link is never followed)".into());
    }
    if !may_own(path, m.uid()) {
        return Verdict::Refuse(format!(
            "owned by uid {}, neither this user nor the one its PostgreSQL runs as",
            m.uid()
        ));
    }
    Verdict::Act
}

/// Whether a run's directory may belong to `uid`: the caller's own, or, for a cluster's
/// directory (`pglab-`) made as root, the `postgres` user that pglab hands it to.
fn may_own(path: &Path, uid: u32) -> bool {
    let me = nix::unistd::geteuid();
    if uid == me.as_raw() {
        return true;
    }
    me.is_root()
        && name_starts_with(path, &["pglab-"])
        && nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .is_some_and(|u| u.uid.as_raw() == uid)
}

/// A cgroup is removed only under the cgroup filesystem, named as the harness names its own.
pub(super) fn cgroup(path: &Path) -> Verdict {
    if !plain(path) || !path.starts_with("/sys/fs/cgroup") {
        return Verdict::Refuse("not under /sys/fs/cgroup".into());
    }
    if !name_starts_with(path, &["fivehundred-"]) {
        return Verdict::Refuse("not a name the harness gives its cgroups".into());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() && !m.file_type().is_symlink() => Verdict::Act,
        Ok(_) => Verdict::Refuse("not a directory".into()),
        Err(_) => Verdict::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_journal_cannot_make_recover_drop_a_database_the_harness_did_not_name() {
        assert!(database("fivehundred_0123456789abcdef0123456789abcdef").is_ok());
        assert!(database("production").is_err());
        assert!(database("fivehundred_").is_err());
        assert!(database("fivehundred_0123456789abcdef0123456789abcdeg").is_err());
        assert!(database("fivehundred_0123456789abcdef0123456789abcdef; DROP").is_err());
    }

    #[test]
    fn a_planted_journal_cannot_make_recover_remove_a_directory_it_did_not_make() {
        let temp = tempfile::tempdir().unwrap();
        let t = temp.path();
        let ours = t.join("fivehundred-x-123");
        std::fs::create_dir(&ours).unwrap();
        assert_eq!(dir_under(&ours, t), Verdict::Act);
        assert_eq!(dir_under(&t.join("pglab-gone"), t), Verdict::Gone);
        for path in [
            Path::new("/etc").to_path_buf(),
            Path::new("/home").to_path_buf(),
            t.join("fivehundred-x-123/../../etc"),
            t.join("fivehundred-x-123/inner"),
            t.join("someone-elses"),
            Path::new("relative/fivehundred-x").to_path_buf(),
        ] {
            assert!(
                matches!(dir_under(&path, t), Verdict::Refuse(_)),
                "{} would be removed",
                path.display()
            );
        }
        // A link with the harness's name, to a directory elsewhere.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), t.join("fivehundred-link")).unwrap();
        assert!(matches!(
            dir_under(&t.join("fivehundred-link"), t),
            Verdict::Refuse(_)
        ));
        // A cluster's directory, handed to `postgres` by pglab as root: the run's own.
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("no `postgres` user: PostgreSQL's server package makes it");
        let cluster = t.join("pglab-cluster");
        std::fs::create_dir(&cluster).unwrap();
        nix::unistd::chown(&cluster, Some(pg.uid), None).unwrap();
        assert_eq!(dir_under(&cluster, t), Verdict::Act);
        let named_as_run = t.join("fivehundred-postgres-owned");
        std::fs::create_dir(&named_as_run).unwrap();
        nix::unistd::chown(&named_as_run, Some(pg.uid), None).unwrap();
        assert!(matches!(dir_under(&named_as_run, t), Verdict::Refuse(_)));
        // Another user's, with the harness's name.
        let theirs = t.join("fivehundred-theirs");
        std::fs::create_dir(&theirs).unwrap();
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(matches!(dir_under(&theirs, t), Verdict::Refuse(_)));
    }

    #[test]
    fn a_planted_journal_cannot_make_recover_kill_a_process_it_did_not_start() {
        let me = std::process::id();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let started = super::super::process_start_time(pid);
        let wrong_time = process(pid, started.map(|t| t + 1));
        let no_time = process(pid, None);
        let right = process(pid, started);
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert_eq!(wrong_time, Verdict::Gone, "a reused pid would be killed");
        assert!(
            matches!(no_time, Verdict::Refuse(_)),
            "a bare pid would be killed"
        );
        assert_eq!(right, Verdict::Act);
        assert!(matches!(process(0, Some(1)), Verdict::Refuse(_)));
        assert!(matches!(process(1, None), Verdict::Refuse(_)));
        assert!(matches!(
            process(me, super::super::process_start_time(me)),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn a_planted_journal_cannot_make_recover_remove_a_cgroup_outside_the_harness() {
        assert!(matches!(
            cgroup(Path::new("/sys/fs/cgroup/system.slice")),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            cgroup(Path::new("/tmp/fivehundred-x")),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            cgroup(Path::new("/sys/fs/cgroup/fivehundred-1/../system.slice")),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            cgroup(Path::new("/sys/fs/cgroup/fivehundred-0-gone")),
            Verdict::Gone
        );
    }
}
