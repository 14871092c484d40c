//! How close the process is to being killed for its memory, for the `load-shed` protection.
//!
//! Two measures, either of which sheds: the process's own resident size against
//! `max_rss_bytes`, and its memory cgroup's working set against `max_memory_fraction` of the
//! cgroup's limit. The second is what matters in a container: the limit is shared with
//! everything else in the cgroup (other processes, a leak in a sidecar, file cache), and the
//! OOM killer acts on the cgroup's total, not on this process's share of it.
//!
//! The working set is usage minus inactive file cache, as the kubelet computes it: clean cache
//! the kernel can drop under pressure is not memory the process is short of.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why memory is too high, for the log line of a shed request; `None` while it is not.
pub fn pressure(max_rss_bytes: u64, max_fraction: f64) -> Option<String> {
    let (rss, cg) = sample();
    if let Some(rss) = rss
        && rss > max_rss_bytes
    {
        return Some(format!(
            "resident memory {rss} bytes is above max_rss_bytes {max_rss_bytes}"
        ));
    }
    let cg = cg?;
    let used = cg.working_set as f64 / cg.limit as f64;
    (used > max_fraction).then(|| {
        format!(
            "the memory cgroup's working set {} bytes is {:.0}% of its {} byte limit (max_memory_fraction {max_fraction})",
            cg.working_set,
            used * 100.0,
            cg.limit
        )
    })
}

/// A cgroup's working set and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupMemory {
    pub working_set: u64,
    pub limit: u64,
}

/// How long a sample is reused. Reading `/proc/self/status` and three cgroup files costs more
/// than serving a cached catalogue read (read per request, they halved the service's
/// throughput), and memory that matters grows over hundreds of milliseconds, so a sample a few
/// milliseconds old is as good as a new one.
const FRESH_FOR: Duration = Duration::from_millis(5);

/// The last sample, in atomics: every request reads it, so it must not be a lock that the
/// cores take turns on. `u64::MAX` is "unknown"; a limit of 0 is "no limited cgroup".
static TAKEN_AT_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static RSS: AtomicU64 = AtomicU64::new(u64::MAX);
static CG_WORKING_SET: AtomicU64 = AtomicU64::new(0);
static CG_LIMIT: AtomicU64 = AtomicU64::new(0);

/// The resident size (`VmRSS`) of this process, and the memory cgroup it is in now (looked up
/// again each time: a process can be moved while it runs) when that has a limit. At most
/// [`FRESH_FOR`] old; one caller refreshes it while the others use the previous sample.
fn sample() -> (Option<u64>, Option<CgroupMemory>) {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let now = EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    let taken = TAKEN_AT_NS.load(Ordering::Acquire);
    let stale = taken == u64::MAX || now.saturating_sub(taken) >= FRESH_FOR.as_nanos() as u64;
    if stale
        && TAKEN_AT_NS
            .compare_exchange(taken, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        RSS.store(read_resident_bytes().unwrap_or(u64::MAX), Ordering::Release);
        let cg = read_cgroup_memory();
        CG_WORKING_SET.store(cg.map_or(0, |c| c.working_set), Ordering::Release);
        CG_LIMIT.store(cg.map_or(0, |c| c.limit), Ordering::Release);
    }
    let rss = Some(RSS.load(Ordering::Acquire)).filter(|&r| r != u64::MAX);
    let cg = match CG_LIMIT.load(Ordering::Acquire) {
        0 => None,
        limit => Some(CgroupMemory {
            working_set: CG_WORKING_SET.load(Ordering::Acquire),
            limit,
        }),
    };
    (rss, cg)
}

fn read_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn read_cgroup_memory() -> Option<CgroupMemory> {
    let (dir, v2) = memory_cgroup_dir()?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let (usage, limit, stat) = if v2 {
        (
            read("memory.current")?,
            read("memory.max")?,
            read("memory.stat")?,
        )
    } else {
        (
            read("memory.usage_in_bytes")?,
            read("memory.limit_in_bytes")?,
            read("memory.stat")?,
        )
    };
    working_set(&usage, &limit, &stat, v2)
}

/// Pure part of [`read_cgroup_memory`]: `None` when the cgroup has no limit.
pub fn working_set(usage: &str, limit: &str, stat: &str, v2: bool) -> Option<CgroupMemory> {
    let usage: u64 = usage.trim().parse().ok()?;
    let limit: u64 = limit.trim().parse().ok()?; // v2 writes "max" for no limit
    // v1 writes a page-rounded i64::MAX for no limit.
    if limit >= 1 << 62 {
        return None;
    }
    let key = if v2 {
        "inactive_file"
    } else {
        "total_inactive_file"
    };
    let inactive: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0);
    Some(CgroupMemory {
        working_set: usage.saturating_sub(inactive),
        limit,
    })
}

/// The directory of this process's memory cgroup, and whether it is cgroup v2.
pub fn memory_cgroup_dir() -> Option<(PathBuf, bool)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = cgroup_mounts();
    locate(&cgroups, &mounts.v1_memory, &mounts.v2)
}

/// Pure part of [`memory_cgroup_dir`], given the mount points (mount point, root within the
/// hierarchy) of the v1 memory controller and of the v2 hierarchy.
pub fn locate(
    cgroups: &str,
    v1_memory: &Option<(PathBuf, String)>,
    v2: &Option<(PathBuf, String)>,
) -> Option<(PathBuf, bool)> {
    let join = |(mount, root): &(PathBuf, String), rel: &str| {
        let rel = rel.strip_prefix(root.as_str()).unwrap_or(rel);
        mount.join(rel.trim_start_matches('/'))
    };
    // A hybrid machine binds the memory controller to v1 when it has a v1 line for it.
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory")
            && let Some(m) = v1_memory
        {
            return Some((join(m, rel), false));
        }
    }
    let rel = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    v2.as_ref().map(|m| (join(m, rel), true))
}

struct CgroupMounts {
    v1_memory: Option<(PathBuf, String)>,
    v2: Option<(PathBuf, String)>,
}

/// Where the cgroup hierarchies are mounted: read once, they do not move under a process.
fn cgroup_mounts() -> &'static CgroupMounts {
    static MOUNTS: OnceLock<CgroupMounts> = OnceLock::new();
    MOUNTS.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut out = CgroupMounts {
            v1_memory: None,
            v2: None,
        };
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (Some(root), Some(mount), Some(fstype)) = (pre.get(3), pre.get(4), post.first())
            else {
                continue;
            };
            let entry = Some((PathBuf::from(mount), root.to_string()));
            match *fstype {
                "cgroup2" if out.v2.is_none() => out.v2 = entry,
                "cgroup"
                    if out.v1_memory.is_none()
                        && post
                            .get(2)
                            .is_some_and(|o| o.split(',').any(|o| o == "memory")) =>
                {
                    out.v1_memory = entry
                }
                _ => {}
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_set_leaves_out_inactive_file_cache() {
        let stat = "cache 100\ntotal_inactive_file 4096\ninactive_file 1\n";
        let cg = working_set("104857600\n", "268435456\n", stat, false).unwrap();
        assert_eq!(cg.working_set, 104_857_600 - 4096);
        assert_eq!(cg.limit, 268_435_456);
        let v2 = working_set("8192", "16384", "anon 1\ninactive_file 4096\n", true).unwrap();
        assert_eq!(v2.working_set, 4096);
    }

    #[test]
    fn an_unlimited_cgroup_has_no_working_set_to_compare() {
        assert_eq!(working_set("1", "max", "", true), None);
        assert_eq!(working_set("1", "9223372036854771712", "", false), None);
    }

    #[test]
    fn the_v1_memory_controller_wins_on_a_hybrid_machine() {
        let v1 = Some((PathBuf::from("/sys/fs/cgroup/memory"), "/".to_string()));
        let v2 = Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()));
        let cgroups = "4:memory:/jobs/a\n0::/\n";
        assert_eq!(
            locate(cgroups, &v1, &v2),
            Some((PathBuf::from("/sys/fs/cgroup/memory/jobs/a"), false))
        );
        assert_eq!(
            locate("0::/svc\n", &None, &v2),
            Some((PathBuf::from("/sys/fs/cgroup/unified/svc"), true))
        );
    }
}
