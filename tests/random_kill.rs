//! "Nothing left behind" under kills at random moments: for each fault kind in the catalogue, a
//! run is killed with SIGKILL at a moment drawn from one seed (printed, and taken from
//! `RANDOM_KILL_SEED` to replay), `recover` runs, and nothing of the run may remain: no process,
//! no mount in any namespace, no cgroup, no changed file mode, no directory, no state.
//!
//! One kill per scenario keeps the test bounded (16 kills, three runs at a time, about two
//! minutes); three labs load both cores, so nextest counts it as two tests and starts it early
//! (`.config/nextest.toml`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::{Run, alive, explain, journal_files, root};

/// The latest moment a kill is drawn at: a catalogue run starts its lab in 5 to 10 seconds and
/// runs about 20 seconds of phases, so the moments fall in the start, every phase and the
/// teardown.
const LATEST_KILL: Duration = Duration::from_secs(32);

/// Files whose mode a fault running as root could change by mistake (a followed link, a path
/// outside the run), checked before and after every kill.
const WATCHED: &[&str] = &["/etc/passwd", "/etc/shadow", "/etc", "/tmp", "/root"];

fn modes() -> BTreeMap<PathBuf, u32> {
    WATCHED
        .iter()
        .chain(&["scenarios"])
        .filter_map(|p| {
            let path = if p.starts_with('/') {
                PathBuf::from(p)
            } else {
                root().join(p)
            };
            let m = std::fs::symlink_metadata(&path).ok()?;
            Some((path, m.permissions().mode()))
        })
        .collect()
}

fn catalogue() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".toml").map(String::from)
        })
        .collect();
    names.sort();
    names
}

/// Every journal entry that parses (the last line may have been cut by the kill).
fn entries(state: &Path) -> Vec<serde_json::Value> {
    journal_files(state)
        .iter()
        .filter_map(|j| std::fs::read(j).ok())
        .flat_map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn journalled(entries: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    entries
        .iter()
        .filter(|e| e["resource"]["kind"] == kind)
        .map(|e| e["resource"].clone())
        .collect()
}

/// Every process whose command line or mounts name one of `dirs`, in any mount namespace.
fn processes_touching(dirs: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        for d in dirs {
            if cmdline.contains(d.as_str()) {
                found.push(format!("process {pid} ({cmdline}) names {d}"));
            }
            if mounts.lines().any(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| m.starts_with(d.as_str()))
            }) {
                found.push(format!("process {pid} has a mount under {d}"));
            }
        }
    }
    found
}

/// Cgroups named after the killed controller (`fivehundred-<pid>-…`) anywhere in the hierarchy.
fn cgroups_of(controller: u32) -> Vec<PathBuf> {
    let prefix = format!("fivehundred-{controller}-");
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in list.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(e.path());
            }
            if depth < 4 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

/// What one killed run left after `recover`; empty when nothing.
fn leftovers(run: &Run, controller: u32, seen: &[serde_json::Value]) -> Vec<String> {
    let mut left = Vec::new();
    let dirs: Vec<String> = journalled(seen, "dir")
        .iter()
        .filter_map(|r| r["path"].as_str().map(String::from))
        .collect();
    for d in &dirs {
        if Path::new(d).exists() {
            left.push(format!("directory {d}"));
        }
    }
    for p in journalled(seen, "process") {
        let pid = p["pid"].as_i64().unwrap_or(0) as i32;
        if pid > 1 && alive(pid) {
            // Alive with the same start time: the very process the run started.
            let now = fivehundred::journal::process_start_time(pid as u32);
            if now.is_some() && now == p["start_time"].as_u64() {
                left.push(format!("process {pid} ({})", p["what"]));
            }
        }
    }
    left.extend(processes_touching(&dirs));
    for c in journalled(seen, "cgroup") {
        if let Some(path) = c["path"].as_str()
            && Path::new(path).exists()
        {
            left.push(format!("cgroup {path}"));
        }
    }
    left.extend(
        cgroups_of(controller)
            .iter()
            .map(|c| format!("cgroup {}", c.display())),
    );
    let journals = journal_files(run.state.path());
    if !journals.is_empty() {
        left.push(format!("journals {journals:?}"));
    }
    if run.state.path().join("lab.json").exists() {
        left.push("lab.json".into());
    }
    left
}

/// How many runs are in flight at once: each is a lab killed within half a minute, mostly idle
/// while it lives, so three side by side keep two cores busy without starving each other.
const AT_ONCE: usize = 3;

/// One scenario's run, killed at `at` (unless it ended first), then `recover`. Returns whether it
/// was killed, and what it left behind (empty when nothing).
fn kill_and_recover(scenario: &str, at: Duration, seed: u64) -> (bool, Vec<String>) {
    let run = Run::new();
    let mut child = run
        .command(&["run", scenario, "--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let controller = child.id();
    let start = Instant::now();
    // The journal is read up to the kill: a run that ends normally deletes it.
    let mut seen = Vec::new();
    let exited = loop {
        let now = entries(run.state.path());
        if now.len() >= seen.len() {
            seen = now;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() >= at {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if exited.is_none() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(controller as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
    }
    let now = entries(run.state.path());
    if now.len() >= seen.len() {
        seen = now;
    }
    let out = run.command(&["recover"]).output().unwrap();
    if !out.status.success() {
        return (
            exited.is_none(),
            vec![format!("recover failed: {}", explain(&out))],
        );
    }
    // What died with the controller is reaped by the kernel in a moment, not at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left = leftovers(&run, controller, &seen);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (exited.is_none(), left)
}

#[test]
fn sixteen_runs_killed_at_random_moments_leave_nothing_behind_after_recover() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the random-kill test needs root: half the fault kinds (tmpfs, another user, cgroups) do"
    );
    let seed: u64 = std::env::var("RANDOM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("random-kill seed {seed} (replay with RANDOM_KILL_SEED={seed})");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let only = std::env::var("RANDOM_KILL_ONLY").ok();
    let before = modes();
    // A moment is drawn for every scenario, so a filter replays the same moments.
    let runs: Vec<(String, Duration)> = catalogue()
        .into_iter()
        .map(|s| {
            let at = rng.random_range(Duration::from_millis(200)..LATEST_KILL);
            (s, at)
        })
        .filter(|(s, _)| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == s)))
        .collect();
    let queue = std::sync::Mutex::new(runs.into_iter());
    let outcomes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| {
                loop {
                    let Some((scenario, at)) = queue.lock().unwrap().next() else {
                        break;
                    };
                    let (killed, left) = kill_and_recover(&scenario, at, seed);
                    eprintln!(
                        "{scenario}: {} at {at:?}, recovered{}",
                        if killed {
                            "killed"
                        } else {
                            "finished before its kill"
                        },
                        if left.is_empty() {
                            ""
                        } else {
                            ", with leftovers"
                        }
                    );
                    outcomes.lock().unwrap().push((scenario, at, killed, left));
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    let killed = outcomes.iter().filter(|o| o.2).count();
    let finished = outcomes.len() - killed;
    let mut failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.3.is_empty())
        .map(|(scenario, at, _, left)| format!("{scenario} (killed at {at:?}) left: {left:?}"))
        .collect();
    // Checked once all runs are over: a mode a run changed stays changed, whichever run it was.
    let after = modes();
    if after != before {
        failures.push(format!("file modes changed: {before:?} -> {after:?}"));
    }
    eprintln!(
        "random-kill seed {seed}: {killed} kills survived, {finished} runs finished before their moment, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    assert!(
        only.is_some() || killed >= 8,
        "seed {seed}: only {killed} of the runs were killed before they ended; the moments are too late to test anything"
    );
}
