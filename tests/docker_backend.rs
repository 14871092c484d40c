//! `--backend docker`: the lab's PostgreSQL as a container of the local engine (its image built
//! from Debian's packages on first use), behind the same fault proxy; a run killed with SIGKILL
//! leaves no container, network or volume once `recover` has run.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{Run, explain, journal_files};

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
