//! End to end: the real `fivehundred` binary runs the real scenarios against the real
//! target-app and a real PostgreSQL, as a user would, and we read its exit code and reports.

mod docker_backend;
mod gameday;
mod labfile_services;
mod random_kill;
mod report_html;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A built workspace binary: cargo puts them next to the `deps/` directory this test runs from.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; `cargo nextest run --workspace` builds it",
        path.display()
    );
    path
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `fivehundred ARGS` with its own state directory, against the built target-app.
struct Run {
    state: tempfile::TempDir,
    reports: tempfile::TempDir,
}

impl Run {
    fn new() -> Self {
        Run {
            state: tempfile::tempdir().unwrap(),
            reports: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary("fivehundred"));
        c.current_dir(root())
            .args(args)
            .env("FIVEHUNDRED_STATE_DIR", self.state.path())
            .env("FIVEHUNDRED_TARGET_BIN", binary("target-app"))
            .env_remove("CARGO")
            .env_remove("CARGO_MANIFEST_DIR");
        c
    }

    /// Runs scenarios with a fixed seed and a report directory; `target_args` go after `--`.
    fn scenarios(&self, names: &[&str], target_args: &[&str]) -> (Output, serde_json::Value) {
        let mut args = vec!["run"];
        args.extend_from_slice(names);
        let dir = self.reports.path().to_str().unwrap().to_string();
        args.extend_from_slice(&["--seed", "7", "--report-dir", &dir]);
        if !target_args.is_empty() {
            args.push("--");
            args.extend_from_slice(target_args);
        }
        let out = self.command(&args).output().unwrap();
        let report = std::fs::read_to_string(self.reports.path().join("report.json"))
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or_else(|e| {
                panic!(
                    "no report.json ({e}); stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        (out, report)
    }
}

fn failed_checks(report: &serde_json::Value) -> Vec<String> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap().iter())
        .filter(|c| c["verdict"] == "fail")
        .map(|c| {
            let phase = c["phase"]
                .as_str()
                .map(|p| format!("[{p}]"))
                .unwrap_or_default();
            format!("{}{phase}", c["name"].as_str().unwrap())
        })
        .collect()
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// [`explain`] and, for each scenario that did not pass, what its report saw: the failed
/// checks' notes, the timeline's events, the service's error counters that moved, and its WARN
/// and ERROR log lines by message. A failure on a machine nobody can look at again says why.
fn explain_run(out: &Output, report: &serde_json::Value) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let mut text = explain(out);
    let empty = Vec::new();
    let list = |v: &serde_json::Value| v.as_array().unwrap_or(&empty).clone();
    for s in list(&report["scenarios"]) {
        if s["verdict"] == "pass" {
            continue;
        }
        let _ = writeln!(text, "\n--- {} ({}) ---", s["name"], s["verdict"]);
        for c in list(&s["checks"]).iter().filter(|c| c["verdict"] == "fail") {
            let _ = writeln!(
                text,
                "failed {}[{}]: {}",
                c["name"], c["phase"], c["summary"]
            );
            for e in list(&c["evidence"]).iter().filter(|e| e["type"] == "note") {
                let _ = writeln!(text, "  {}", e["text"]);
            }
        }
        let rec = &s["recording"];
        for e in list(&rec["events"]) {
            let at = e["at_ms"].as_f64().unwrap_or(0.0);
            let _ = writeln!(text, "event {at:>6.0} ms {} {}", e["kind"], e["detail"]);
        }
        // Counters only rise: the highest value of each is where it ended.
        let mut highest: BTreeMap<String, f64> = BTreeMap::new();
        for sample in list(&rec["metrics"]) {
            for (series, v) in sample["values"].as_object().into_iter().flatten() {
                let top = highest.entry(series.clone()).or_insert(0.0);
                *top = top.max(v.as_f64().unwrap_or(0.0));
            }
        }
        let words = ["error", "timeout", "circuit", "shed", "panic"];
        for (series, v) in highest {
            if v > 0.0 && words.iter().any(|w| series.contains(w)) {
                let _ = writeln!(text, "highest: {series} = {v}");
            }
        }
        let mut by_message: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for l in list(&rec["logs"]) {
            let line = l["line"].as_str().unwrap_or("");
            let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let level = json["level"].as_str().unwrap_or("");
            if level == "WARN" || level == "ERROR" {
                let key = format!("{level} {} {}", json["message"], json["error"]);
                let at = l["at_ms"].as_f64().unwrap_or(0.0);
                by_message.entry(key).or_insert((0, at)).0 += 1;
            }
        }
        for (key, (n, first)) in by_message {
            let _ = writeln!(text, "log ×{n} from {first:.0} ms: {key}");
        }
    }
    text
}

/// The catalogue's scenarios that need root (a tmpfs, a cgroup, another user): skipped by the
/// harness, and named here, when the tests do not run as root.
const AS_ROOT: &[&str] = &["disk-full", "memory-pressure", "permission-flip"];

fn scenario_named<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} is in the report"))
}

/// Every scenario of the catalogue but overload passes against target-app with every
/// protection on, run as a user runs the catalogue (`fivehundred run`, labs side by side), each
/// scenario's timeline showing its injection and revert, and junit.xml naming each without a
/// failure. Overload measures the machine's capacity: its own tests have the machine to
/// themselves.
#[test]
fn the_catalogue_passes_side_by_side_with_every_protection_on() {
    let run = Run::new();
    let (out, report) = run.scenarios(SIDE_BY_SIDE, &[]);
    let root = nix::unistd::geteuid().is_root();
    assert_eq!(out.status.code(), Some(0), "{}", explain_run(&out, &report));
    assert!(failed_checks(&report).is_empty());
    assert_eq!(report["seed"], 7);
    let junit = std::fs::read_to_string(run.reports.path().join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuite name=\""));
    assert!(!junit.contains("<failure"), "{junit}");
    assert_eq!(
        report["scenarios"].as_array().unwrap().len(),
        SIDE_BY_SIDE.len()
    );
    for name in SIDE_BY_SIDE {
        let s = scenario_named(&report, name);
        if !root && AS_ROOT.contains(name) {
            eprintln!("SKIPPED {name}: needs root, as the scenario does");
            assert_eq!(s["verdict"], "skip", "{name}");
            continue;
        }
        assert_eq!(s["verdict"], "pass", "{name}");
        let events: Vec<&str> = s["recording"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert!(
            events.contains(&"inject") && events.contains(&"revert"),
            "{name}: {events:?}"
        );
        assert!(junit.contains(name), "{name} in junit.xml");
    }
}

/// The scenarios of the catalogue but overload (which runs alone), and the check each fails on
/// with its own protection off (`run --unprotected`): what shows that the check catches what
/// the protection prevents.
const SIDE_BY_SIDE: &[&str] = &[
    "bad-config",
    "bad-migration",
    "crash-restart",
    "db-connection-exhaustion",
    "db-down",
    "db-latency",
    "db-lock-contention",
    "dependency-failure",
    "disk-full",
    "fd-exhaustion",
    "handler-panic",
    "invalid-input",
    "memory-pressure",
    "permission-flip",
    "task-panic",
];

const FAILS_UNPROTECTED_ON: &[(&str, &str)] = &[
    ("bad-migration", "readyz[fault]"),
    ("crash-restart", "data-integrity"),
    ("db-connection-exhaustion", "latency[fault]"),
    ("db-down", "status[fault]"),
    ("db-latency", "latency[fault]"),
    ("db-lock-contention", "latency[fault]"),
    ("dependency-failure", "latency[fault]"),
    ("disk-full", "status[fault]"),
    ("fd-exhaustion", "status[fault]"),
    ("handler-panic", "status[fault]"),
    ("invalid-input", "invalid-input[fault]"),
    ("memory-pressure", "status[fault]"),
    ("permission-flip", "status[fault]"),
    ("task-panic", "data-integrity"),
];

/// `run --unprotected`: each scenario with the protection it exercises off fails, on the check
/// that protection keeps green; bad-config, which names no protection, is skipped saying so
/// (its failing side is a service that ignores its config file, below).
#[test]
fn each_scenario_fails_on_its_check_with_its_own_protection_off() {
    let run = Run::new();
    let dir = run.reports.path().to_str().unwrap().to_string();
    let mut args = vec!["run", "--unprotected", "--seed", "7", "--report-dir", &dir];
    args.extend_from_slice(SIDE_BY_SIDE);
    let out = run.command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.reports.path().join("report.json")).unwrap(),
    )
    .unwrap();
    assert!(
        report["command"]
            .as_str()
            .unwrap()
            .contains("--unprotected"),
        "the report says how to run the same again: {}",
        report["command"]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = nix::unistd::geteuid().is_root();
    let bad_config = scenario_named(&report, "bad-config");
    assert_eq!(bad_config["verdict"], "skip");
    assert!(
        bad_config["note"]
            .as_str()
            .unwrap_or("")
            .contains("names no protection"),
        "{bad_config}"
    );
    for (name, check) in FAILS_UNPROTECTED_ON {
        let s = scenario_named(&report, name);
        if !root && AS_ROOT.contains(name) {
            eprintln!("SKIPPED {name} unprotected: needs root, as the scenario does");
            continue;
        }
        let failed = failed_checks(&serde_json::json!({ "scenarios": [s] }));
        assert!(
            failed.iter().any(|c| c == check),
            "with its protection off, {name} should fail on {check}; failed: {failed:?}"
        );
        assert!(
            stdout.contains(check),
            "the summary names the failing check {check}: {stdout}"
        );
    }
}

/// Overload (ten times the steady rate) passes with load shedding on: the excess is refused at
/// once. It measures the service's capacity, so it has the machine to itself.
#[test]
fn overload_passes_with_every_protection_on() {
    let run = Run::new();
    let (out, report) = run.scenarios(&["overload"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain_run(&out, &report));
    assert_eq!(report["scenarios"][0]["verdict"], "pass");
}

/// With load shedding off, every request queues behind the surge: `latency[fault]` fails.
#[test]
fn overload_fails_on_latency_when_load_shedding_is_off() {
    fails_on("overload", "load-shed", "latency[fault]");
}

fn fails_on(scenario: &str, protection: &str, check: &str) {
    let run = Run::new();
    let without = format!("all,-{protection}");
    let (out, report) = run.scenarios(&[scenario], &["--protections", &without]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let failed = failed_checks(&report);
    assert!(
        failed.iter().any(|c| c == check),
        "with {protection} off, {scenario} should fail on {check}; failed: {failed:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(check),
        "the summary names the failing check: {stdout}"
    );
}

fn journal_files(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("journals"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; it is not running.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn a_run_killed_with_sigkill_mid_fault_leaves_nothing_behind_after_recover() {
    let run = Run::new();
    let mut child = run
        .command(&["run", "db-latency", "--seed", "3"])
        .spawn()
        .unwrap();
    // Wait until the journal records the injection.
    let deadline = Instant::now() + Duration::from_secs(90);
    let journal = loop {
        assert!(
            Instant::now() < deadline,
            "the run never injected its fault"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it injected its fault");
        }
        if let Some(j) = journal_files(run.state.path()).into_iter().next()
            && std::fs::read_to_string(&j)
                .unwrap()
                .contains("\"event\":\"inject\"")
        {
            break j;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&journal).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pids: Vec<i32> = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "process")
        .map(|e| e["resource"]["pid"].as_i64().unwrap() as i32)
        .collect();
    let dirs: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "dir")
        .map(|e| PathBuf::from(e["resource"]["path"].as_str().unwrap()))
        .collect();
    assert!(
        pids.len() >= 2,
        "postgres and the target were journalled: {text}"
    );
    assert!(!dirs.is_empty(), "{text}");

    let out = run.command(&["recover"]).output().unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recovered"), "{stdout}");

    // Give the kernel a moment to reap what died with the controller.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        assert!(!alive(*pid), "process {pid} survived the killed run");
    }
    for d in &dirs {
        assert!(!d.exists(), "{} was left behind", d.display());
    }
    assert!(
        journal_files(run.state.path()).is_empty(),
        "the journal is closed"
    );
    let again = run.command(&["recover"]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to recover"));
}

/// Another user makes the state directory first (the fallback without HOME is in /tmp) and
/// plants a journal naming /etc: `recover` must refuse the directory, touch nothing, and say so
/// in one line.
#[test]
fn recover_refuses_a_state_directory_another_user_made_first_in_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let run = Run::new();
    let state = run.state.path();
    std::fs::create_dir(state.join("journals")).unwrap();
    let victim = tempfile::Builder::new()
        .prefix("fivehundred-victim-")
        .tempdir()
        .unwrap();
    std::fs::write(
        state.join("journals/20260101T000000-1-x.jsonl"),
        format!(
            "{{\"event\":\"resource\",\"resource\":{{\"kind\":\"dir\",\"path\":{:?}}}}}\n",
            victim.path()
        ),
    )
    .unwrap();
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run.command(&["recover"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("mode 0777"), "{stderr}");
    assert!(
        victim.path().exists(),
        "a planted journal made recover remove a directory"
    );
    // The same directory, another user's: refused too (a `run` stops before its lab).
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700)).unwrap();
    nix::unistd::chown(state, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = run.command(&["recover"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("owned by uid 65534"));
    assert!(victim.path().exists());
    nix::unistd::chown(state, Some(nix::unistd::geteuid()), None).unwrap();
}

#[test]
fn a_missing_monitoring_stack_stops_the_run_with_exit_code_3_naming_it() {
    let run = Run::new();
    let empty = tempfile::tempdir().unwrap();
    let out = run
        .command(&["run", "handler-panic", "--seed", "1"])
        .env("FIVEHUNDRED_MONITORING_BIN_DIR", empty.path())
        .env("FIVEHUNDRED_NO_INSTALL", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prometheus") && err.contains("apt-get install"),
        "names what to install: {err}"
    );
    assert!(
        journal_files(run.state.path()).is_empty(),
        "nothing left behind"
    );
}

#[test]
fn sigterm_mid_fault_reverts_every_fault_and_tears_the_lab_down() {
    let run = Run::new();
    let mut child = run
        .command(&["run", "db-down", "--seed", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let journal = loop {
        assert!(
            Instant::now() < deadline,
            "the run never injected its fault"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it injected its fault");
        }
        if let Some(j) = journal_files(run.state.path()).into_iter().next()
            && std::fs::read_to_string(&j)
                .unwrap()
                .contains("\"event\":\"inject\"")
        {
            break j;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&journal).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("every injected fault was reverted"), "{err}");
    // The journal recorded the revert before the run closed it, and the run cleaned up itself.
    assert!(journal_files(run.state.path()).is_empty(), "journal closed");
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["resource"]["kind"] == "process" {
            let pid = e["resource"]["pid"].as_i64().unwrap() as i32;
            assert!(!alive(pid), "process {pid} outlived the run");
        }
        if e["resource"]["kind"] == "dir" {
            let dir = e["resource"]["path"].as_str().unwrap();
            assert!(!Path::new(dir).exists(), "{dir} left behind");
        }
    }
    let again = run.command(&["recover"]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to recover"));
}

// --- the OS-level scenarios: disk, memory, permissions, descriptors, configuration -------------

/// The OS-level faults need root (a tmpfs in a mount namespace, another user, cgroups); without
/// it their scenarios are skipped by the harness, and these tests say so instead of failing.
fn as_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED {test}: needs root, as the scenario does");
    }
    root
}

/// Starts `scenario`, waits until its fault is journalled as injected (and `while_injected` has
/// looked at the live lab), SIGKILLs the controller, runs `recover`, and checks that nothing the
/// journal names survived. Returns the journal's entries for the caller's own checks.
fn killed_mid_fault_then_recovered(
    scenario: &str,
    while_injected: impl FnOnce(&[serde_json::Value]),
) -> Vec<serde_json::Value> {
    let run = Run::new();
    let mut child = run
        .command(&["run", scenario, "--seed", "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let journal = loop {
        assert!(
            Instant::now() < deadline,
            "the run never injected its fault"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it injected its fault");
        }
        if let Some(j) = journal_files(run.state.path()).into_iter().next()
            && std::fs::read_to_string(&j)
                .unwrap()
                .contains("\"event\":\"inject\"")
        {
            break j;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let the injection finish (what it creates is journalled before it exists).
    std::thread::sleep(Duration::from_secs(2));
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    while_injected(&entries);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    let out = run.command(&["recover"]).output().unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids: Vec<i32> = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "process")
        .map(|e| e["resource"]["pid"].as_i64().unwrap() as i32)
        .collect();
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        assert!(!alive(*pid), "process {pid} survived the killed run");
    }
    for e in &entries {
        for kind in ["dir", "cgroup"] {
            if e["resource"]["kind"] == kind {
                let path = e["resource"]["path"].as_str().unwrap();
                assert!(!Path::new(path).exists(), "{kind} {path} was left behind");
            }
        }
    }
    assert!(
        journal_files(run.state.path()).is_empty(),
        "the journal is closed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    entries
}

/// The run directory journalled first (the lab's data directory is inside it).
fn run_dir_of(entries: &[serde_json::Value]) -> String {
    entries
        .iter()
        .find(|e| {
            e["resource"]["kind"] == "dir"
                && e["resource"]["path"]
                    .as_str()
                    .unwrap()
                    .contains("fivehundred-")
        })
        .map(|e| e["resource"]["path"].as_str().unwrap().to_string())
        .expect("the run directory is journalled")
}

fn host_mounts_under(dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(dir)))
        .map(String::from)
        .collect()
}

#[test]
fn a_run_killed_mid_disk_full_never_had_anything_mounted_on_the_host() {
    if !as_root("disk_full") {
        return;
    }
    let mut run_dir = String::new();
    let entries = killed_mid_fault_then_recovered("disk-full", |entries| {
        run_dir = run_dir_of(entries);
        // The tmpfs is in the target's mount namespace only, even while it is full.
        assert_eq!(host_mounts_under(&run_dir), Vec::<String>::new());
    });
    assert!(entries.iter().any(|e| e["fault"]["kind"] == "disk-full"));
    assert_eq!(host_mounts_under(&run_dir), Vec::<String>::new());
}

#[test]
fn a_run_killed_mid_permission_flip_leaves_no_run_directory_after_recover() {
    if !as_root("permission_flip") {
        return;
    }
    // The read-only receipts directory, owned by `nobody`, is inside the run directory: recover
    // removes the whole of it (checked by the helper), whatever its modes and owners.
    let entries = killed_mid_fault_then_recovered("permission-flip", |_| {});
    assert!(entries.iter().any(|e| e["fault"]["kind"] == "permission"));
}

/// No protection switch covers configuration handling, so the failing side is a service with a
/// real configuration bug: it ignores its `--config` file (a wrapper drops the flag), so a bad
/// start serves and a reload changes nothing it can report.
#[test]
fn bad_config_fails_on_its_own_checks_when_the_service_ignores_its_config_file() {
    use std::os::unix::fs::PermissionsExt;
    let run = Run::new();
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("target-app-ignoring-config");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# Drops --config PATH: a service that never reads its configuration file.\n\
             skip=0\nfor a in \"$@\"; do\n  shift\n  if [ $skip = 1 ]; then skip=0; continue; fi\n\
               if [ \"$a\" = --config ]; then skip=1; continue; fi\n  set -- \"$@\" \"$a\"\ndone\n\
             exec {} \"$@\"\n",
            binary("target-app").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let reports = run.reports.path().to_str().unwrap().to_string();
    let out = run
        .command(&["run", "bad-config", "--seed", "7", "--report-dir", &reports])
        .env("FIVEHUNDRED_TARGET_BIN", &wrapper)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.reports.path().join("report.json")).unwrap(),
    )
    .unwrap();
    let failed = failed_checks(&report);
    for check in ["refuses-bad-start[fault]", "config-reload[fault]"] {
        assert!(
            failed.iter().any(|c| c == check),
            "{check} should fail: {failed:?}"
        );
    }
}

#[test]
fn bad_migration_fails_on_no_leaks_when_safe_errors_are_off() {
    // The failing writes are 500s by nature (the schema, not the request, is wrong): without
    // safe-errors their bodies quote PostgreSQL.
    fails_on("bad-migration", "safe-errors", "no-leaks[fault]");
}

#[test]
fn a_run_killed_mid_memory_pressure_leaves_no_cgroup_and_no_hog_after_recover() {
    if !as_root("memory_pressure") {
        return;
    }
    let mut cgroup = String::new();
    let entries = killed_mid_fault_then_recovered("memory-pressure", |entries| {
        let path = entries
            .iter()
            .find(|e| e["resource"]["kind"] == "cgroup")
            .expect("the cgroup is journalled before it is created");
        cgroup = path["resource"]["path"].as_str().unwrap().to_string();
        assert!(
            Path::new(&cgroup).exists(),
            "{cgroup} exists while injected"
        );
    });
    // The helper checked every journalled process (the hog among them) is dead and every
    // journalled cgroup is gone.
    assert!(
        entries
            .iter()
            .any(|e| e["resource"]["what"] == "memory hog"),
        "the hog is journalled"
    );
    assert!(!Path::new(&cgroup).exists());
}

/// Runs `fivehundred ARGS` until its journal records a line containing `marker` (an injection,
/// or a resource a fault created), kills the controller with SIGKILL, runs `recover`, and checks
/// that nothing the run journalled survives it: processes, directories, the journal itself.
/// Returns `recover`'s output.
fn killed_then_recovered(run: &Run, args: &[&str], marker: &str) -> String {
    let mut child = run.command(args).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let text = loop {
        assert!(
            Instant::now() < deadline,
            "{args:?} never journalled {marker}"
        );
        if let Some(j) = journal_files(run.state.path()).into_iter().next() {
            let text = std::fs::read_to_string(&j).unwrap();
            if text.contains(marker) {
                break text;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pids: Vec<i32> = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "process")
        .map(|e| e["resource"]["pid"].as_i64().unwrap() as i32)
        .collect();
    let dirs: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "dir")
        .map(|e| PathBuf::from(e["resource"]["path"].as_str().unwrap()))
        .collect();

    let out = run.command(&["recover"]).output().unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        assert!(!alive(*pid), "{args:?}: process {pid} survived: {text}");
    }
    for d in &dirs {
        assert!(!d.exists(), "{args:?}: {} was left behind", d.display());
    }
    assert!(
        journal_files(run.state.path()).is_empty(),
        "{args:?}: the journal is closed: {stdout}"
    );
    stdout
}

#[test]
fn recover_undoes_every_database_dependency_load_and_process_fault_of_a_run_killed_mid_fault() {
    for (scenario, kind) in [
        ("db-lock-contention", "lock"),
        ("db-connection-exhaustion", "connections"),
        ("bad-migration", "migration"),
        ("dependency-failure", "dependency"),
        ("overload", "overload"),
        ("invalid-input", "invalid-input"),
        ("crash-restart", "crash"),
    ] {
        let run = Run::new();
        let marker = format!("\"fault\":{{\"kind\":\"{kind}\"");
        let stdout = killed_then_recovered(&run, &["run", scenario, "--seed", "3"], &marker);
        // recover says what became of the fault that was never reverted.
        assert!(
            stdout.contains("recovered") && stdout.contains("nothing to undo"),
            "{scenario}: {stdout}"
        );
    }
}

#[test]
fn a_run_killed_after_the_crash_fault_restarted_the_target_leaves_no_target_behind() {
    // The restarted target is a process the lab did not start: the fault journals it, and
    // `killed_then_recovered` checks that it is gone with the rest.
    let run = Run::new();
    killed_then_recovered(
        &run,
        &["run", "crash-restart", "--seed", "3"],
        "restarted by the crash fault",
    );
}

#[test]
fn on_a_shared_server_a_run_killed_mid_fault_leaves_no_database_session_or_lock_behind() {
    // With --database-url the server outlives the run: the lock's session, the migration's
    // schema and the run's database must all be gone from it after `recover`.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(pglab::PgCluster::start()).unwrap();
    let admin = server.url("postgres");
    for (scenario, kind) in [
        ("db-lock-contention", "lock"),
        ("bad-migration", "migration"),
    ] {
        let run = Run::new();
        let marker = format!("\"fault\":{{\"kind\":\"{kind}\"");
        killed_then_recovered(
            &run,
            &["run", scenario, "--seed", "3", "--database-url", &admin],
            &marker,
        );
        let left = rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (databases, sessions, locks): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE 'fivehundred\\_%'),
                            (SELECT count(*) FROM pg_stat_activity
                             WHERE application_name LIKE 'fivehundred-%'),
                            (SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                             WHERE a.application_name LIKE 'fivehundred-%')",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                if (databases, sessions, locks) == (0, 0, 0) || Instant::now() > deadline {
                    break (databases, sessions, locks);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        assert_eq!(
            left,
            (0, 0, 0),
            "{scenario}: run databases, sessions and locks of ours left on the server"
        );
    }
}

/// Detection before the run, end to end: `nobody` cannot reach a target binary kept in a
/// private directory, so permission-flip is skipped with the reason (counted, exit 0), and with
/// `--strict` the skip fails the run. Nothing is started, so nothing is faked.
#[test]
fn a_scenario_whose_privilege_is_missing_is_skipped_with_the_reason_and_strict_fails_it() {
    if !as_root("privilege detection") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let private = tempfile::tempdir().unwrap();
    // Only root may enter: `nobody` cannot reach the binary inside.
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let bin = private.path().join("target-app");
    std::fs::copy(binary("target-app"), &bin).unwrap();
    for strict in [false, true] {
        let run = Run::new();
        let reports = run.reports.path().to_str().unwrap().to_string();
        let mut args = vec!["run", "permission-flip", "--report-dir", &reports];
        if strict {
            args.push("--strict");
        }
        let out = run
            .command(&args)
            .env("FIVEHUNDRED_TARGET_BIN", &bin)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(i32::from(strict)),
            "{}",
            explain(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("nobody") && stdout.contains(private.path().to_str().unwrap()),
            "the skip names what is missing: {stdout}"
        );
        assert!(stdout.contains("1 skipped"), "{stdout}");
        assert!(
            journal_files(run.state.path()).is_empty(),
            "no lab was started"
        );
    }
}
