//! Memory pressure: the running target is moved into a memory cgroup of its own, with a limit,
//! and a hog process in the same cgroup takes most of that limit and holds it, as a leak, a
//! cache gone wild or a greedy neighbour in the same container would. The service must notice
//! how little is left and shed load (503) before the kernel's OOM killer ends it.
//!
//! The hog is this binary re-executed (see [`hog_main`]): it joins the cgroup before it
//! allocates a byte, so everything it takes is charged there. The cgroup is journalled before it
//! is created and the hog once it runs; the revert kills the hog, moves the target back to its
//! own cgroup, removes the new one and verifies both.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use super::disk::{format_bytes, parse_bytes};
use crate::cgroup::{self, Cgroup};
use crate::journal::Resource;
use crate::lab::Lab;

/// Set on the hog: how many bytes it takes, and the `cgroup.procs` file it joins first.
const HOG_BYTES: &str = "FIVEHUNDRED_MEMORY_HOG_BYTES";
const HOG_CGROUP: &str = "FIVEHUNDRED_MEMORY_HOG_CGROUP";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// The cgroup's memory limit, like `"256MiB"`.
    pub limit: String,
    /// What the hog takes and holds inside the cgroup, like `"240MiB"`: above the service's
    /// shedding threshold, below the limit, so that a service that sheds survives.
    pub hog: String,
}

impl FaultKind for Memory {
    const HINT: &'static str = "a memory fault takes limit = \"256MiB\" (the cgroup's) and hog = \"240MiB\" (what the hog holds, below the limit)";
    const ORPHAN: &'static str = "the memory hog and its cgroup are removed with the run's resources";
    type Held = Pressure;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let limit = parse_bytes(&self.limit).map_err(|e| ("limit", e))?;
        let hog = parse_bytes(&self.hog).map_err(|e| ("hog", e))?;
        if !(32 << 20..=16 << 30).contains(&limit) {
            return Err(("limit", format!("`{}` is outside 32MiB..16GiB", self.limit)));
        }
        // A limit the host cannot back never binds: the host runs out before the cgroup does,
        // and its OOM killer picks among every process on it.
        if let Some(host) = host_memory() {
            within_host(&self.limit, limit, host).map_err(|e| ("limit", e))?;
        }
        if hog >= limit {
            return Err((
                "hog",
                format!(
                    "a hog of {} in a cgroup limited to {} is killed before it holds anything: the kernel, not the service, would decide",
                    self.hog, self.limit
                ),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let (limit, hog) = self.bytes();
        format!(
            "memory pressure: the target in a {} cgroup with a {} hog",
            format_bytes(limit),
            format_bytes(hog)
        )
    }

    fn check_supported(&self) -> Result<(), String> {
        crate::privileges::memory_cgroup().map(drop)?;
        hog_program().map(drop)
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let (limit, hog_bytes) = self.bytes();
        if lab.service_container().is_some() {
            return Err(FaultError::Unsupported(
                "the service runs in a container: limit its memory with kind = \"container\", target = \"service\", action = \"memory\"".into(),
            ));
        }
        let pids = lab.service_pids();
        let Some(&pid) = pids.first() else {
            return Err(FaultError::Failed("the service is not running".into()));
        };
        let parent = crate::privileges::memory_cgroup().map_err(FaultError::Unsupported)?;
        let original = cgroup::memory_cgroup_of(&pid.to_string()).map_err(FaultError::Failed)?;
        let name = cgroup::child_name();
        lab.journal_resource(Resource::Cgroup {
            path: parent.path.join(&name),
        })
    .map_err(FaultError::Failed)?;
        let group = parent
            .create_child(&name, limit)
            .map_err(FaultError::Failed)?;
        // From here on the revert has what it needs, whatever fails next.
        *held = Some(Pressure {
                group: group.clone(),
                original,
                hog: None,
            });
        for &p in &pids {
            if p != pid && !Path::new(&format!("/proc/{p}")).exists() {
                continue; // a worker that exited meanwhile
            }
            group.add(p).map_err(|e| {
                FaultError::Failed(format!(
                    "cannot move the service's process {p} into {}: {e}",
                    group.path.display()
                ))
            })?;
        }
        let hog = start_hog(lab, &group, hog_bytes).await?;
        let hog_pid = hog.id();
        if let Some(mut p) = held.take() {
            p.hog = Some(hog);
            *held = Some(p);
        }
        // Verified: both are in the cgroup, and it holds at least what the hog took.
        let procs = group.procs();
        let usage = group.usage().map_err(FaultError::Failed)?;
        if !pids.iter().all(|p| procs.contains(p)) || !procs.contains(&hog_pid) || usage < hog_bytes
        {
            return Err(FaultError::Failed(format!(
                "the cgroup {} holds processes {procs:?} and {} (expected the service {pids:?} and the hog {hog_pid}, and at least {})",
                group.path.display(),
                format_bytes(usage),
                format_bytes(hog_bytes)
            )));
        }
        lab.recorder.event(
            crate::record::EventKind::Note,
            format!(
                "cgroup {}: limit {}, in use {} ({} of it the hog, pid {hog_pid})",
                group.path.display(),
                format_bytes(limit),
                format_bytes(usage),
                format_bytes(hog_bytes)
            ),
        );
        Ok(())
    }

    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(mut p) = held.take() else {
            return Ok(()); // nothing was created
        };
        if let Some(mut hog) = p.hog.take() {
            let _ = hog.kill();
            let _ = hog.wait();
        }
        for pid in lab.service_pids() {
            if let Err(e) = p.original.add(pid) {
                let msg = format!(
                    "cannot move the service's process {pid} back to {}: {e}",
                    p.original.path.display()
                );
                *held = Some(p); // for the retry
                return Err(FaultError::Failed(msg));
            }
        }
        let group = p.group.clone();
        let removed = tokio::task::spawn_blocking(move || group.remove(Duration::from_secs(5)))
            .await
            .map_err(|e| FaultError::Failed(e.to_string()))?;
        if let Err(e) = removed {
            *held = Some(p);
            return Err(FaultError::Failed(e));
        }
        // Verified: the cgroup is gone and the target is back where it was.
        if let Some(pid) = lab.target_pid() {
            let now = cgroup::memory_cgroup_of(&pid.to_string()).map_err(FaultError::Failed)?;
            if now.path != p.original.path {
                return Err(FaultError::Failed(format!(
                    "the target is in {}, not back in {}",
                    now.path.display(),
                    p.original.path.display()
                )));
            }
        }
        Ok(())
    }
}

impl Memory {
    fn bytes(&self) -> (u64, u64) {
        (
            parse_bytes(&self.limit).unwrap_or(256 << 20),
            parse_bytes(&self.hog).unwrap_or(0),
        )
    }
}

/// What the fault holds between injection and revert.
#[derive(Debug)]
pub struct Pressure {
    group: Cgroup,
    /// The target's memory cgroup before, to move it back to.
    original: Cgroup,
    hog: Option<Child>,
}

/// Dropped without a revert (a panic, an abandoned run): the hog is killed, whatever is left in
/// the cgroup goes back to where the service was, and the cgroup is removed, so nothing waits
/// for `recover`. After a revert there is nothing left to drop.
impl Drop for Pressure {
    fn drop(&mut self) {
        if let Some(mut hog) = self.hog.take() {
            let _ = hog.kill();
            let _ = hog.wait();
        }
        for pid in self.group.procs() {
            let _ = self.original.add(pid);
        }
        let _ = self.group.remove(Duration::from_secs(2));
    }
}

/// The hog is the `fivehundred` binary itself, re-executed; a test binary cannot be.
fn hog_program() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("our own executable ({e})"))?;
    if exe.file_name().is_some_and(|n| n == "fivehundred") {
        Ok(exe)
    } else {
        Err(format!(
            "the `fivehundred` binary to run the memory hog ({} is not it)",
            exe.display()
        ))
    }
}

/// Starts the hog and waits until it holds what it was asked to.
async fn start_hog(lab: &Lab, group: &Cgroup, bytes: u64) -> Result<Child, FaultError> {
    let program = hog_program().map_err(FaultError::Unsupported)?;
    let mut cmd = Command::new(program);
    cmd.env(HOG_BYTES, bytes.to_string())
        .env(HOG_CGROUP, group.path.join("cgroup.procs"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut hog = pglab::proc::spawn_tied(cmd, nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| FaultError::Failed(format!("cannot start the memory hog: {e}")))?;
    lab.journal_resource(Resource::Process {
        pid: hog.id(),
        what: "memory hog".into(),
        start_time: None,
    })
    .map_err(FaultError::Failed)?;
    let stdout = hog.stdout.take().expect("piped");
    let stderr = hog.stderr.take().expect("piped");
    let said = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let mut err = String::new();
            if line.is_empty() {
                let _ = BufReader::new(stderr).read_line(&mut err);
            }
            (line, err)
        }),
    )
    .await;
    match said {
        Ok(Ok((line, _))) if line.starts_with("holding") => Ok(hog),
        other => {
            let _ = hog.kill();
            let status = hog.wait().map(|s| s.to_string()).unwrap_or_default();
            let why = match other {
                Ok(Ok((_, err))) if !err.trim().is_empty() => err.trim().to_string(),
                Ok(Ok(_)) => format!(
                    "it ended ({status}) before holding {}: killed by the OOM killer? Leave more room under the limit",
                    format_bytes(bytes)
                ),
                _ => format!("it did not hold {} within 30s", format_bytes(bytes)),
            };
            Err(FaultError::Failed(format!("the memory hog failed: {why}")))
        }
    }
}

/// The hog's whole life, when this process was started as one: join the cgroup, take the
/// memory (every page written, so it is really resident), say so, and hold it until killed.
/// Returns `None` when this process is not a hog.
pub fn hog_main() -> Option<i32> {
    let bytes: u64 = std::env::var(HOG_BYTES).ok()?.parse().ok()?;
    let procs = std::env::var_os(HOG_CGROUP)?;
    if let Err(e) = std::fs::write(Path::new(&procs), std::process::id().to_string()) {
        eprintln!(
            "cannot join the cgroup ({}): {e}",
            Path::new(&procs).display()
        );
        return Some(1);
    }
    let chunk = 1 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    while total < bytes {
        let n = chunk.min(bytes - total) as usize;
        held.push(vec![0x5a; n]);
        total += n as u64;
    }
    std::hint::black_box(&held);
    println!("holding {total} bytes");
    loop {
        std::thread::park();
    }
}

/// A limit of `limit` bytes (written `text`) on a host with `host` bytes.
fn within_host(text: &str, limit: u64, host: u64) -> Result<(), String> {
    if limit > host {
        return Err(format!(
            "`{text}` is more than this host's memory ({})",
            format_bytes(host)
        ));
    }
    Ok(())
}

/// The host's memory (`MemTotal` of /proc/meminfo), when it can be read.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hog_as_large_as_the_limit_is_rejected() {
        let m = Memory {
            limit: "256MiB".into(),
            hog: "256MiB".into(),
        };
        assert_eq!(m.validate().unwrap_err().0, "hog");
        let m = Memory {
            limit: "1MiB".into(),
            hog: "512KiB".into(),
        };
        assert_eq!(m.validate().unwrap_err().0, "limit");
    }

    #[test]
    fn a_limit_larger_than_the_host_is_refused_at_validation() {
        assert!(
            host_memory().is_some_and(|m| m > 0),
            "/proc/meminfo has MemTotal"
        );
        let e = within_host("4GiB", 4 << 30, 2 << 30).unwrap_err();
        assert!(e.contains("more than this host's memory (2.0 GiB)"), "{e}");
        assert!(within_host("1GiB", 1 << 30, 2 << 30).is_ok());
    }

    #[test]
    fn a_test_binary_cannot_be_the_hog() {
        assert!(hog_program().unwrap_err().contains("`fivehundred` binary"));
    }
}
