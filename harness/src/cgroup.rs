//! Memory cgroups, for the memory-pressure fault: find a hierarchy in which this process may
//! create a child with a memory limit (cgroup v2, or the v1 memory controller), create one, move
//! processes in and out, read its usage, and remove it again.
//!
//! Plain file operations on cgroupfs; hand-written because the crates that wrap cgroups either
//! speak only v2 or bring a container runtime's worth of dependencies for five files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which cgroup interface a hierarchy speaks; the memory files are named differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub path: PathBuf,
    pub version: Version,
}

/// "No limit" as v1 writes it (a page-rounded `i64::MAX`); anything this large is unlimited.
const UNLIMITED: u64 = 1 << 62;

/// The cgroup of the memory controller that process `pid` is in: v1's `memory` hierarchy where
/// it exists (hybrid machines bind the controller there), else the v2 one.
pub fn memory_cgroup_of(pid: &str) -> Result<Cgroup, String> {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("cannot read /proc/{pid}/cgroup: {e}"))?;
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .or_else(|_| fs::read_to_string("/proc/self/mountinfo"))
        .map_err(|e| format!("cannot read the mount table: {e}"))?;
    locate(&cgroups, &mountinfo)
}

/// Pure part of [`memory_cgroup_of`]: from `/proc/PID/cgroup` and `/proc/PID/mountinfo`.
pub fn locate(cgroups: &str, mountinfo: &str) -> Result<Cgroup, String> {
    let mounts: Vec<(String, String, String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some((
                pre.get(3)?.to_string(), // root of the mount within its filesystem
                pre.get(4)?.to_string(), // mount point
                post.first()?.to_string(),
                post.get(2).unwrap_or(&"").to_string(),
            ))
        })
        .collect();
    let join = |root: &str, mount: &str, rel: &str| {
        let rel = rel.strip_prefix(root).unwrap_or(rel);
        PathBuf::from(mount).join(rel.trim_start_matches('/'))
    };
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, rel) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if controllers.split(',').any(|c| c == "memory")
            && let Some((root, mount, _, _)) = mounts
                .iter()
                .find(|(_, _, fs, opts)| fs == "cgroup" && opts.split(',').any(|o| o == "memory"))
        {
            return Ok(Cgroup {
                path: join(root, mount, rel),
                version: Version::V1,
            });
        }
    }
    for line in cgroups.lines() {
        if let Some(rel) = line.strip_prefix("0::")
            && let Some((root, mount, _, _)) = mounts.iter().find(|(_, _, fs, _)| fs == "cgroup2")
        {
            return Ok(Cgroup {
                path: join(root, mount, rel),
                version: Version::V2,
            });
        }
    }
    Err("no cgroup hierarchy with the memory controller is mounted".into())
}

impl Cgroup {
    fn file(&self, v1: &str, v2: &str) -> PathBuf {
        self.path.join(match self.version {
            Version::V1 => v1,
            Version::V2 => v2,
        })
    }

    /// Creates the child `name` under `self` with a memory limit of `limit` bytes and no swap,
    /// and verifies the limit reads back. The caller journals the path first.
    pub fn create_child(&self, name: &str, limit: u64) -> Result<Cgroup, String> {
        if self.version == Version::V2 {
            let controllers =
                fs::read_to_string(self.path.join("cgroup.controllers")).map_err(|e| {
                    format!(
                        "cannot read {}/cgroup.controllers: {e}",
                        self.path.display()
                    )
                })?;
            if !controllers.split_whitespace().any(|c| c == "memory") {
                return Err(format!(
                    "the memory controller is not available in the cgroup v2 hierarchy at {}",
                    self.path.display()
                ));
            }
            let subtree =
                fs::read_to_string(self.path.join("cgroup.subtree_control")).unwrap_or_default();
            if !subtree.split_whitespace().any(|c| c == "memory") {
                fs::write(self.path.join("cgroup.subtree_control"), "+memory").map_err(|e| {
                    format!(
                        "cannot enable the memory controller for children of {}: {e} (a cgroup v2 group with processes in it cannot; delegate an empty one)",
                        self.path.display()
                    )
                })?;
            }
        }
        let child = Cgroup {
            path: self.path.join(name),
            version: self.version,
        };
        fs::create_dir(&child.path)
            .map_err(|e| format!("cannot create the cgroup {}: {e}", child.path.display()))?;
        let configured = (|| {
            let limit_file = child.file("memory.limit_in_bytes", "memory.max");
            fs::write(&limit_file, limit.to_string())
                .map_err(|e| format!("cannot set {}: {e}", limit_file.display()))?;
            // Without swap the limit is a hard wall, as in most containers; where the knob does
            // not exist there is no swap to turn off.
            let _ = fs::write(child.file("memory.swappiness", "memory.swap.max"), "0");
            match child.limit()? {
                Some(l) if l <= limit && l + 2 * 4096 > limit => Ok(()),
                other => Err(format!(
                    "the memory limit of {} reads back as {other:?}, not {limit}",
                    child.path.display()
                )),
            }
        })();
        if let Err(e) = configured {
            let _ = fs::remove_dir(&child.path);
            return Err(e);
        }
        Ok(child)
    }

    /// The memory limit in bytes, `None` when unlimited.
    pub fn limit(&self) -> Result<Option<u64>, String> {
        let text = self.read("memory.limit_in_bytes", "memory.max")?;
        if text == "max" {
            return Ok(None);
        }
        let n: u64 = text
            .parse()
            .map_err(|_| format!("unreadable memory limit `{text}`"))?;
        Ok((n < UNLIMITED).then_some(n))
    }

    /// Memory charged to the cgroup, in bytes.
    pub fn usage(&self) -> Result<u64, String> {
        let text = self.read("memory.usage_in_bytes", "memory.current")?;
        text.parse()
            .map_err(|_| format!("unreadable memory usage `{text}`"))
    }

    fn read(&self, v1: &str, v2: &str) -> Result<String, String> {
        let f = self.file(v1, v2);
        fs::read_to_string(&f)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read {}: {e}", f.display()))
    }

    /// Moves process `pid` (all its threads) into this cgroup.
    pub fn add(&self, pid: u32) -> io::Result<()> {
        fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }

    /// The processes in this cgroup.
    pub fn procs(&self) -> Vec<u32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Removes the cgroup: any process still in it goes to the parent first, then the directory
    /// is removed, retried while the kernel finishes with processes that were just killed.
    /// Verified: the directory is gone.
    pub fn remove(&self, within: Duration) -> Result<(), String> {
        remove(&self.path, within)
    }
}

/// [`Cgroup::remove`] from a path alone, as the journal keeps it.
pub fn remove(path: &Path, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    loop {
        if !path.exists() {
            return Ok(());
        }
        let procs = fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().map(str::trim).filter(|p| !p.is_empty()) {
            let _ = fs::write(parent.join("cgroup.procs"), pid);
        }
        match fs::remove_dir(path) {
            Ok(()) => {}
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("cannot remove the cgroup {}: {e}", path.display()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A cgroup name that says who made it: `fivehundred-<controller pid>-<random>`.
pub fn child_name() -> String {
    format!(
        "fivehundred-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

    #[test]
    fn on_a_hybrid_machine_the_v1_memory_hierarchy_is_used() {
        let cg = locate("8:pids:/\n4:memory:/jobs/a\n0::/\n", HYBRID_MOUNTS).unwrap();
        assert_eq!(cg.version, Version::V1);
        assert_eq!(cg.path, PathBuf::from("/sys/fs/cgroup/memory/jobs/a"));
    }

    #[test]
    fn on_a_unified_machine_the_v2_hierarchy_is_used() {
        let mounts = "31 25 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        let cg = locate("0::/user.slice/x\n", mounts).unwrap();
        assert_eq!(cg.version, Version::V2);
        assert_eq!(cg.path, PathBuf::from("/sys/fs/cgroup/user.slice/x"));
    }

    #[test]
    fn without_a_cgroup_mount_the_reason_says_so() {
        let e = locate("0::/\n", "1 0 0:1 / / rw - ext4 /dev/sda rw\n").unwrap_err();
        assert!(e.contains("no cgroup hierarchy"), "{e}");
    }
}
