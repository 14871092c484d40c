//! `--backend docker`: the lab's PostgreSQL as a container of the local engine (its image built
//! from Debian's packages on first use), behind the same fault proxy; a run killed with SIGKILL
//! leaves no container, network or volume once `recover` has run. A lab file's service as a
//! container (examples/target-app-docker): built from its Dockerfile, crashed and restarted,
//! its dependency cut through the proxies it reaches from inside, and removed after.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{Run, binary, explain, journal_files, root};

/// Names of everything of fivehundred's the engine holds: containers, networks, volumes.
fn ours() -> Vec<String> {
    let mut out = Vec::new();
    for args in [
        &[
            "ps",
            "-a",
            "--filter",
            "label=fivehundred.owner",
            "--format",
            "container {{.Names}}",
        ][..],
        &[
            "network",
            "ls",
            "--filter",
            "label=fivehundred.owner",
            "--format",
            "network {{.Name}}",
        ],
        &[
            "volume",
            "ls",
            "--filter",
            "label=fivehundred.owner",
            "--format",
            "volume {{.Name}}",
        ],
    ] {
        let o = Command::new("docker")
            .args(args)
            .output()
            .expect("the docker CLI runs");
        assert!(o.status.success(), "docker {args:?}: {o:?}");
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    out
}

#[test]
fn db_down_passes_with_the_database_in_a_container_and_nothing_is_left_after() {
    let before = ours();
    let run = Run::new();
    let out = run
        .command(&["run", "db-down", "--backend", "docker", "--seed", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--backend docker"),
        "the reproduce line names the backend: {}",
        explain(&out)
    );
    let after: Vec<String> = ours().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

#[test]
fn a_docker_backend_run_killed_mid_fault_leaves_no_container_network_or_volume_after_recover() {
    let before = ours();
    let run = Run::new();
    let mut child = run
        .command(&["run", "db-down", "--backend", "docker", "--seed", "7"])
        .spawn()
        .unwrap();
    // Killed once the fault is journalled: the container runs and the proxy is down.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            Instant::now() < deadline,
            "the run never injected its fault"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it injected its fault");
        }
        let injected = journal_files(run.state.path())
            .into_iter()
            .any(|j| std::fs::read_to_string(j).is_ok_and(|t| t.contains("\"event\":\"inject\"")));
        if injected {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let left_running: Vec<String> = ours().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(
        left_running.iter().any(|n| n.starts_with("container ")),
        "no container while the run ran: {left_running:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let out = run.command(&["recover"]).output().unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("containers"),
        "recover says what it removed: {}",
        explain(&out)
    );
    let after: Vec<String> = ours().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(after.is_empty(), "left after recover: {after:?}");
}

/// A container fault in a scenario file: the database's container paused for eight seconds
/// (every PostgreSQL process frozen, every connection left open). target-app answers 503 instead
/// of hanging, and serves again once the container is unpaused.
#[test]
fn a_paused_database_container_is_a_fault_a_scenario_can_name() {
    let run = Run::new();
    let file = run.reports.path().join("db-paused.toml");
    std::fs::write(
        &file,
        r#"name = "db-paused"
title = "The database's container is paused for eight seconds"
cause = "database timeouts"

[load]
rate = 30
mix = [
  { weight = 5, request = "GET /products/{id}", params = { id = { uniform = [1, 5] } } },
  { weight = 3, request = "POST /orders" },
]

[phases]
steady = "5s"
fault = "8s"
recovery = "10s"

[[fault]]
kind = "container"
target = "database"
action = "pause"

[expect.steady]
allow = ["2xx"]

[expect.fault]
forbid = ["500"]
require = ["503"]
livez = "pass"

[expect.recovery]
forbid = ["500"]
recover_within = "8s"
readyz = "pass"

[alerts]
allow = ["DatabaseUnavailable", "DatabaseSlow", "CircuitOpen", "HighErrorRate", "OutboxBacklogGrowing"]
"#,
    )
    .unwrap();
    let out = run
        .command(&[
            "run",
            file.to_str().unwrap(),
            "--backend",
            "docker",
            "--seed",
            "7",
            "--report-dir",
            run.reports.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.reports.path().join("report.json")).expect("report.json"),
    )
    .unwrap();
    let events = report["scenarios"][0]["recording"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "revert"
                && e["detail"].as_str().unwrap_or("").contains("container")),
        "{}",
        explain(&out)
    );
}

/// Without `--backend docker` the lab's database is no container: the fault is refused as
/// unsupported, by name, and nothing is faked.
#[test]
fn a_container_fault_without_the_docker_backend_is_skipped_naming_the_flag() {
    let run = Run::new();
    let file = run.reports.path().join("db-paused.toml");
    std::fs::write(
        &file,
        "name = \"db-paused\"\ntitle = \"t\"\ncause = \"c\"\n[load]\nrate = 10\nmix = [{ weight = 1, request = \"GET /products\" }]\n[phases]\nsteady = \"2s\"\nfault = \"2s\"\nrecovery = \"2s\"\n[[fault]]\nkind = \"container\"\ntarget = \"database\"\naction = \"pause\"\n",
    )
    .unwrap();
    let out = run
        .command(&["run", file.to_str().unwrap(), "--seed", "7", "--strict"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("--backend docker"), "{}", explain(&out));
    assert_ne!(out.status.code(), Some(0), "{}", explain(&out));
}

/// `examples/target-app-docker` in a directory of its own, with the target-app this test run
/// built in place of the example's link (which points at the default target directory). The
/// directory keeps the example's name, so its image keeps its name and, while the binary is the
/// same, its tag: a second run reuses it.
fn target_app_docker() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("target-app-docker");
    std::fs::create_dir(&dir).unwrap();
    let example = root().join("examples/target-app-docker");
    for file in ["fivehundred.toml", "Dockerfile"] {
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    std::fs::copy(binary("target-app"), dir.join("target-app")).unwrap();
    tmp
}

fn lab_file(tmp: &tempfile::TempDir) -> String {
    tmp.path()
        .join("target-app-docker/fivehundred.toml")
        .display()
        .to_string()
}

#[test]
fn a_service_built_from_a_dockerfile_survives_db_down_and_a_crash_and_nothing_is_left_after() {
    let before = ours();
    let example = target_app_docker();
    let lab = lab_file(&example);
    let run = Run::new();
    let list = run.command(&["list", "--lab", &lab]).output().unwrap();
    assert!(list.status.success(), "{}", explain(&list));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    for cause in ["db-down", "crash-restart"] {
        assert!(listed.contains(cause), "{cause} is listed: {listed}");
    }
    assert!(
        listed.contains("runs in a container"),
        "list says why the host-process causes do not apply: {listed}"
    );
    let reports = run.reports.path().to_str().unwrap().to_string();
    let out = run
        .command(&[
            "run",
            "--lab",
            &lab,
            "db-down",
            "crash-restart",
            "--backend",
            "docker",
            "--seed",
            "7",
            "--report-dir",
            &reports,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.reports.path().join("report.json")).unwrap(),
    )
    .unwrap();
    let crash = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crash-restart")
        .expect("a crash-restart scenario in the report");
    let events = crash["recording"]["events"].to_string();
    assert!(
        events.contains("exit code 137"),
        "the container was killed (SIGKILL): {events}"
    );
    // The container's own output reached the recording, as a process's does: target-app says
    // `listening` at each start, the first and the one after the crash.
    let logs = crash["request_digest"]["logs"].as_u64().unwrap_or(0);
    assert!(
        logs >= 2,
        "{logs} lines of the container's in the recording"
    );
    let after: Vec<String> = ours().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

#[test]
fn a_run_with_a_container_service_killed_mid_fault_leaves_nothing_after_recover() {
    let before = ours();
    let example = target_app_docker();
    let lab = lab_file(&example);
    let run = Run::new();
    let mut child = run
        .command(&[
            "run",
            "--lab",
            &lab,
            "db-down",
            "--backend",
            "docker",
            "--seed",
            "7",
        ])
        .spawn()
        .unwrap();
    // Killed once the fault is journalled: both containers run, the proxy is down.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "the run never injected its fault"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it injected its fault");
        }
        let injected = journal_files(run.state.path())
            .into_iter()
            .any(|j| std::fs::read_to_string(j).is_ok_and(|t| t.contains("\"event\":\"inject\"")));
        if injected {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let running: Vec<String> = ours().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(
        running
            .iter()
            .any(|n| n.starts_with("container ") && n.ends_with("-service")),
        "the service's container runs while the run does: {running:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let out = run.command(&["recover"]).output().unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    let after: Vec<String> = ours().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(after.is_empty(), "left after recover: {after:?}");
}
