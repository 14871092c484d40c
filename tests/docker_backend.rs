//! `--backend docker`: the lab's PostgreSQL as a container of the local engine (its image built
//! from Debian's packages on first use), behind the same fault proxy; a run killed with SIGKILL
//! leaves no container, network or volume once `recover` has run. A lab file's service as a
//! container (examples/target-app-docker): built from its Dockerfile, crashed and restarted,
//! its dependency cut through the proxies it reaches from inside, and removed after. Every
//! container fault on the database (`examples/container-faults`) passes with every protection on
//! and fails on its check with its protection off; a run killed while the container is paused or
//! cut from its network leaves nothing after `recover`.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{Run, binary, explain, journal_files, root};

/// Names of everything the engine holds that `run` made (its state directory is on each of
/// them): containers, networks, volumes. Other tests' runs, side by side, are not in it.
fn ours(run: &Run) -> Vec<String> {
    let state = format!("label=fivehundred.state={}", run.state.path().display());
    let mut out = Vec::new();
    for (what, format) in [
        (&["ps", "-a"][..], "container {{.Names}}"),
        (&["network", "ls"], "network {{.Name}}"),
        (&["volume", "ls"], "volume {{.Name}}"),
    ] {
        let o = Command::new("docker")
            .args(what)
            .args(["--filter", "label=fivehundred.owner", "--filter", &state])
            .args(["--format", format])
            .output()
            .expect("the docker CLI runs");
        assert!(o.status.success(), "docker {what:?}: {o:?}");
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
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

#[test]
fn a_docker_backend_run_killed_mid_fault_leaves_no_container_network_or_volume_after_recover() {
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
    let left_running = ours(&run);
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
    let after = ours(&run);
    assert!(after.is_empty(), "left after recover: {after:?}");
}

/// The scenario files of `examples/container-faults`, one per action on the database's
/// container.
const CONTAINER_FAULTS: [&str; 6] = ["pause", "kill", "stop", "disconnect", "memory", "cpu"];

fn container_fault_file(action: &str) -> String {
    root()
        .join(format!("examples/container-faults/db-{action}.toml"))
        .display()
        .to_string()
}

/// Runs the container-fault examples of `actions` in one `fivehundred run --backend docker
/// --jobs 3`, `target_args` after `--`; the exit and report.json.
fn run_container_faults(
    run: &Run,
    actions: &[&str],
    target_args: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let files: Vec<String> = actions.iter().map(|a| container_fault_file(a)).collect();
    let reports = run.reports.path().to_str().unwrap().to_string();
    let mut args: Vec<&str> = vec!["run"];
    args.extend(files.iter().map(String::as_str));
    args.extend([
        "--backend",
        "docker",
        "--seed",
        "7",
        "--jobs",
        "3",
        "--report-dir",
        &reports,
    ]);
    if !target_args.is_empty() {
        args.push("--");
        args.extend_from_slice(target_args);
    }
    let out = run.command(&args).output().unwrap();
    let report = std::fs::read_to_string(run.reports.path().join("report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_else(|e| panic!("no report.json ({e}): {}", explain(&out)));
    (out, report)
}

/// The scenario of `report` named `name`.
fn scenario<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in the report"))
}

/// The failed checks of one scenario, as `name[phase]`.
fn failed_in(scenario: &serde_json::Value) -> Vec<String> {
    scenario["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| match c["phase"].as_str() {
            Some(p) => format!("{}[{p}]", c["name"].as_str().unwrap()),
            None => c["name"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// Every action on the database's container, each in its example scenario file, with every
/// protection of target-app's on: each passes, and each fault was injected into the container
/// and reverted (the recording's events say so); nothing is left in the engine after.
#[test]
fn every_container_fault_on_the_database_passes_with_every_protection_on_and_is_reverted() {
    let run = Run::new();
    let (out, report) = run_container_faults(&run, &CONTAINER_FAULTS, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for action in CONTAINER_FAULTS {
        let s = scenario(&report, &format!("db-{action}"));
        assert_eq!(s["verdict"], "pass", "db-{action}: {:?}", failed_in(s));
        let events = s["recording"]["events"].as_array().unwrap();
        for kind in ["inject", "revert"] {
            assert!(
                events.iter().any(|e| e["kind"] == kind
                    && e["detail"]
                        .as_str()
                        .unwrap_or("")
                        .contains("the database's container")),
                "db-{action}: no {kind} of the container fault in {events:?}"
            );
        }
    }
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

/// The same files with one protection off: each fails, and on the check that shows what that
/// protection is for.
fn container_faults_fail_without(protection: &str, expected: &[(&str, &str)]) {
    let run = Run::new();
    let actions: Vec<&str> = expected.iter().map(|(a, _)| *a).collect();
    let without = format!("all,-{protection}");
    let (out, report) = run_container_faults(&run, &actions, &["--protections", &without]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    for (action, check) in expected {
        let s = scenario(&report, &format!("db-{action}"));
        let failed = failed_in(s);
        assert!(
            failed.iter().any(|c| c == check),
            "with {protection} off, db-{action} should fail on {check}; failed: {failed:?}"
        );
    }
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

/// Down-like: the server gone (killed, stopped) or cut from its network, which also takes the
/// port the service connects through. Without the stale cache the catalogue answers 503.
#[test]
fn a_killed_stopped_or_cut_database_container_fails_on_status_when_the_stale_cache_is_off() {
    container_faults_fail_without(
        "stale-cache",
        &[
            ("kill", "status[fault]"),
            ("stop", "status[fault]"),
            ("disconnect", "status[fault]"),
        ],
    );
}

/// Frozen or starved: the server answers late or never. Without timeouts requests wait as
/// long as the fault lasts.
#[test]
fn a_paused_or_throttled_database_container_fails_on_latency_when_timeouts_are_off() {
    container_faults_fail_without(
        "timeouts",
        &[("pause", "latency[fault]"), ("cpu", "latency[fault]")],
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
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

#[test]
fn a_run_with_a_container_service_killed_mid_fault_leaves_nothing_after_recover() {
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
    let running = ours(&run);
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
    let after = ours(&run);
    assert!(after.is_empty(), "left after recover: {after:?}");
}

/// `docker inspect -f FORMAT` of the run's database container, or None while there is none.
fn database_container_state(run: &Run, format: &str) -> Option<String> {
    let name = ours(run).into_iter().find_map(|n| {
        n.strip_prefix("container ")
            .filter(|c| c.ends_with("-postgres"))
            .map(str::to_string)
    })?;
    let o = Command::new("docker")
        .args(["inspect", "-f", format, &name])
        .output()
        .expect("the docker CLI runs");
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// A run killed with SIGKILL while its database's container is paused, or cut from the lab
/// network: `recover` removes the paused container (a paused one only goes with force) and the
/// network it was cut from, and nothing is left.
#[test]
fn a_run_killed_while_its_database_container_is_paused_or_cut_leaves_nothing_after_recover() {
    for (action, format, faulted) in [
        ("pause", "{{.State.Paused}}", "true"),
        ("disconnect", "{{len .NetworkSettings.Networks}}", "0"),
    ] {
        let run = Run::new();
        let mut child = run
            .command(&[
                "run",
                &container_fault_file(action),
                "--backend",
                "docker",
                "--seed",
                "7",
            ])
            .spawn()
            .unwrap();
        // Killed once the container is faulted (the journal has the fault before it is done).
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            assert!(
                Instant::now() < deadline,
                "{action}: the container was never faulted"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{action}: the run ended ({status}) before it faulted the container");
            }
            if database_container_state(&run, format).as_deref() == Some(faulted) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        let out = run.command(&["recover"]).output().unwrap();
        assert!(out.status.success(), "{action}: {}", explain(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("containers"),
            "{action}: recover says what it removed: {}",
            explain(&out)
        );
        let after = ours(&run);
        assert!(after.is_empty(), "{action}: left after recover: {after:?}");
    }
}

/// target-app as a container with its database in another: `explain` runs the example's
/// `db-down` (the catalogue's, read against this lab file) with every protection on, then with
/// the stale cache off, each setting appended after the image's command. Protected it passes;
/// unprotected it fails on `status[fault]`, where the host run fails too
/// (`each_scenario_fails_on_its_check_with_its_own_protection_off`): the catalogue answers 503 instead
/// of serving stale.
#[test]
fn explain_on_the_docker_backend_fails_a_container_service_on_status_without_its_stale_cache() {
    let example = target_app_docker();
    let lab = lab_file(&example);
    let scenario_file = root()
        .join("examples/target-app-docker/db-down.toml")
        .display()
        .to_string();
    let run = Run::new();
    let reports = run.reports.path().to_str().unwrap().to_string();
    let out = run
        .command(&[
            "explain",
            &scenario_file,
            "--lab",
            &lab,
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
    let report = |which: &str| -> serde_json::Value {
        let path = run.reports.path().join(which).join("report.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no {} ({e}): {}", path.display(), explain(&out)));
        serde_json::from_str(&text).unwrap()
    };
    let protected = report("protected");
    let s = scenario(&protected, "db-down");
    assert_eq!(s["verdict"], "pass", "protected: {:?}", failed_in(s));
    let unprotected = report("unprotected");
    let s = scenario(&unprotected, "db-down");
    let failed = failed_in(s);
    assert!(
        failed.iter().any(|c| c == "status[fault]"),
        "with the stale cache off, db-down fails on status[fault]; failed: {failed:?}"
    );
    // The setting reached the container's command, and the reproduce line gives the same lab.
    let events = s["recording"]["events"].to_string();
    assert!(
        events.contains("`--protections all,-stale-cache` after its image's command"),
        "{events}"
    );
    let command = unprotected["command"].as_str().unwrap_or_default();
    for part in [
        "--lab",
        "--backend docker",
        "--seed 7",
        "-- --protections all,-stale-cache",
    ] {
        assert!(command.contains(part), "{part} in {command}");
    }
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

/// `fivehundred run -- ARGS` appends to a container service's command as to a process's: a
/// flag target-app does not know stops it at its start, and the lab says so with the
/// container's own last lines (exit 3); nothing is left in the engine.
#[test]
fn arguments_after_the_double_dash_reach_a_container_services_command() {
    let example = target_app_docker();
    let lab = lab_file(&example);
    let run = Run::new();
    let out = run
        .command(&[
            "run",
            "--lab",
            &lab,
            "db-down",
            "--seed",
            "7",
            "--",
            "--no-such-flag",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unexpected argument '--no-such-flag'"),
        "target-app's own refusal of the flag is in the error: {}",
        explain(&out)
    );
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
}

/// examples/target-app-compose in a directory of its own, with the Dockerfile of
/// examples/target-app-docker and the target-app binary next to the compose file.
fn target_app_compose() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let example = root().join("examples/target-app-compose");
    for file in ["fivehundred.toml", "compose.yaml"] {
        std::fs::copy(example.join(file), tmp.path().join(file)).unwrap();
    }
    std::fs::copy(
        root().join("examples/target-app-docker/Dockerfile"),
        tmp.path().join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy(binary("target-app"), tmp.path().join("target-app")).unwrap();
    tmp
}

/// The images a compose project of the lab built (`fivehundred-<run>-compose_web`, or with `-`
/// for the plugin), which its teardown removes.
fn compose_images() -> Vec<String> {
    let o = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}"])
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|r| r.starts_with("fivehundred-") && r.contains("-compose"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_compose_service_survives_its_database_paused_and_a_crash_and_the_project_is_taken_down() {
    let images_before = compose_images();
    let example = target_app_compose();
    let lab = example
        .path()
        .join("fivehundred.toml")
        .display()
        .to_string();
    let run = Run::new();
    let list = run.command(&["list", "--lab", &lab]).output().unwrap();
    assert!(list.status.success(), "{}", explain(&list));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    for cause in [
        "db-pause",
        "db-stop",
        "crash-restart",
        "overload",
        "invalid-input",
    ] {
        assert!(listed.contains(cause), "{cause} is listed: {listed}");
    }
    assert!(
        !listed.contains("web-pause"),
        "the service under test is no dependency: {listed}"
    );
    let reports = run.reports.path().to_str().unwrap().to_string();
    let out = run
        .command(&[
            "run",
            "--lab",
            &lab,
            "db-pause",
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
    let scenarios = report["scenarios"].as_array().unwrap();
    let named = |name: &str| {
        scenarios
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in the report"))
    };
    let pause = named("db-pause");
    assert_eq!(pause["verdict"], "pass", "{}", pause["checks"]);
    // The paused database showed: readiness was checked to fail while it was paused.
    let readyz = pause["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "readyz" && c["phase"] == "fault")
        .unwrap_or_else(|| panic!("a readyz check in the fault phase: {}", pause["checks"]));
    assert_eq!(readyz["verdict"], "pass", "{readyz}");
    // The service's own output reached the recording from its compose container.
    let logs = pause["request_digest"]["logs"].as_u64().unwrap_or(0);
    assert!(
        logs >= 1,
        "{logs} lines of the container's in the recording"
    );
    // The crash killed the service's container and the lab started it again, on the port it
    // had: the scenario passed (a restart on a port the lab does not know never gets ready).
    assert_eq!(
        named("crash-restart")["verdict"],
        "pass",
        "{}",
        named("crash-restart")["note"]
    );
    let crash = named("crash-restart")["recording"]["events"].to_string();
    assert!(
        crash.contains("exit code 137"),
        "the service's container was killed (SIGKILL): {crash}"
    );
    let after = ours(&run);
    assert!(after.is_empty(), "left in the engine: {after:?}");
    let images: Vec<String> = compose_images()
        .into_iter()
        .filter(|i| !images_before.contains(i))
        .collect();
    assert!(
        images.is_empty(),
        "images the project built are left: {images:?}"
    );
}

#[test]
fn a_compose_run_killed_mid_fault_leaves_nothing_labelled_after_recover() {
    let images_before = compose_images();
    let example = target_app_compose();
    let lab = example
        .path()
        .join("fivehundred.toml")
        .display()
        .to_string();
    let run = Run::new();
    let mut child = run
        .command(&[
            "run",
            "--lab",
            &lab,
            "db-pause",
            "--backend",
            "docker",
            "--seed",
            "7",
        ])
        .spawn()
        .unwrap();
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
    let running = ours(&run);
    for what in ["container ", "network ", "volume "] {
        assert!(
            running.iter().any(|n| n.starts_with(what)),
            "the project's {what}carries the run's labels: {running:?}"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let out = run.command(&["recover"]).output().unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    let after = ours(&run);
    assert!(after.is_empty(), "left after recover: {after:?}");
    // The image the killed run's project built is not labelled: removed here, not by recover.
    for image in compose_images()
        .into_iter()
        .filter(|i| !images_before.contains(i))
    {
        let _ = Command::new("docker").args(["rmi", &image]).output();
    }
}

#[test]
fn a_compose_lab_without_a_compose_tool_exits_3_in_one_line() {
    let example = target_app_compose();
    let lab = example
        .path()
        .join("fivehundred.toml")
        .display()
        .to_string();
    let run = Run::new();
    // A PATH with neither `docker` nor `docker-compose` on it.
    let empty = tempfile::tempdir().unwrap();
    let out = run
        .command(&["run", "--lab", &lab, "crash-restart"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("compose.yaml") && lines[0].contains("no compose tool"),
        "{stderr}"
    );
}
