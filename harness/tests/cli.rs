//! The `fivehundred` binary's command line: usage errors, validation, listing. These need no lab.

use std::process::Command;

fn fivehundred() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fivehundred"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn catalogue() -> String {
    format!("{}/../scenarios", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_accepts_every_scenario_in_the_catalogue() {
    let files: Vec<_> = std::fs::read_dir(catalogue())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(files.len() >= 3, "the catalogue has scenarios");
    let out = fivehundred().arg("validate").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_points_at_the_line_and_column_of_a_bad_duration_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db-down.toml");
    let text = std::fs::read_to_string(format!("{}/db-down.toml", catalogue()))
        .unwrap()
        .replace("fault = \"8s\"", "fault = \"8 fortnights\"");
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.contains("fortnights")).unwrap() + 1;
    let out = fivehundred().arg("validate").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("db-down.toml:{line}:9:")),
        "points at line {line}, column 9: {err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn validate_names_an_unknown_key_and_an_unknown_fault_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handler-panic.toml");
    let base = std::fs::read_to_string(format!("{}/handler-panic.toml", catalogue())).unwrap();
    for (bad, wanted) in [
        (
            base.replace("rate = 40", "rate = 40\nrat = 1"),
            "unknown field `rat`",
        ),
        (
            base.replace("kind = \"failpoint\"", "kind = \"meteor\""),
            "unknown fault kind `meteor`",
        ),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let out = fivehundred().arg("validate").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{err}");
    }
}

#[test]
fn run_with_an_unknown_scenario_is_a_usage_error_and_starts_nothing() {
    let state = tempfile::tempdir().unwrap();
    let out = fivehundred()
        .args(["run", "no-such-scenario"])
        .env("FIVEHUNDRED_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario `no-such-scenario`"));
    assert!(!state.path().join("journals").exists(), "no run began");
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let out = fivehundred().args(["run", "--sed", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_target_binary_is_a_lab_error_with_exit_code_3() {
    let state = tempfile::tempdir().unwrap();
    let out = fivehundred()
        .args([
            "run",
            "handler-panic",
            "--target-bin",
            "/nonexistent/target-app",
        ])
        .env("FIVEHUNDRED_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/target-app"));
}

#[test]
fn list_shows_each_scenario_with_its_cause_and_protection() {
    let out = fivehundred()
        .args(["list", "--scenarios-dir", &catalogue()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for (name, cause, protection) in [
        ("handler-panic", "handler panic", "catch-panic"),
        ("db-latency", "database latency", "timeouts"),
        ("db-down", "database down", "stale-cache"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed in:\n{text}"));
        assert!(line.contains(cause) && line.contains(protection), "{line}");
    }
}

fn docker_example(file: &str) -> String {
    format!(
        "{}/../examples/target-app-docker/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `explain` takes `run`'s lab options, with `run`'s rules: `--backend docker` and
/// `--database-url` exclude each other, and `--lab` reads a lab file whose causes (by name)
/// and scenario files (by path) it explains.
#[test]
fn explain_takes_the_lab_options_run_takes_and_refuses_what_run_refuses() {
    let state = tempfile::tempdir().unwrap();
    for command in ["run", "explain"] {
        let out = fivehundred()
            .args([
                command,
                "db-down",
                "--backend",
                "docker",
                "--database-url",
                "postgres://u@127.0.0.1:1/x",
            ])
            .env("FIVEHUNDRED_STATE_DIR", state.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--backend") && err.contains("--database-url"),
            "{command}: the refusal names both flags: {err}"
        );
    }
    // A lab file's generic cause, explained without running: its own title.
    let lab = docker_example("fivehundred.toml");
    let out = fivehundred()
        .args([
            "explain",
            "--lab",
            &lab,
            "payments-down",
            "--backend",
            "docker",
            "--no-run",
        ])
        .env("FIVEHUNDRED_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("`payments` refuses every connection"),
        "the lab file's cause is the one explained: {out:?}"
    );
    // A scenario file, read against the lab file (its target `db` is that file's dependency).
    let out = fivehundred()
        .args([
            "explain",
            "--lab",
            &lab,
            &docker_example("db-down.toml"),
            "--no-run",
        ])
        .env("FIVEHUNDRED_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("protection that guards it: stale-cache"),
        "{out:?}"
    );
    // A cause the lab file does not have: exit 2, naming its causes, before anything starts.
    let out = fivehundred()
        .args(["explain", "--lab", &lab, "handler-panic", "--no-run"])
        .env("FIVEHUNDRED_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no cause `handler-panic`") && err.contains("db-down"),
        "{err}"
    );
    assert!(!state.path().join("journals").exists(), "no run began");
}

/// With `--lab`, a scenario file is read against that lab file: a protection it does not list
/// is an error at the scenario's line and column, and nothing runs.
#[test]
fn a_scenario_file_run_with_a_lab_file_is_checked_against_it() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("fivehundred.toml");
    // The example's lab file without its [service.protections].
    let text = std::fs::read_to_string(docker_example("fivehundred.toml")).unwrap();
    let start = text.find("[service.protections]").unwrap();
    let end = text.find("[service.logs]").unwrap();
    std::fs::write(&lab, format!("{}{}", &text[..start], &text[end..])).unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let scenario = docker_example("db-down.toml");
    let line = std::fs::read_to_string(&scenario)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("protection ="))
        .unwrap()
        + 1;
    let out = fivehundred()
        .args(["run", "--lab", lab.to_str().unwrap(), &scenario])
        .env("FIVEHUNDRED_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("db-down.toml:{line}:")) && err.contains("unknown protection"),
        "{err}"
    );
    assert!(err.contains("lists no protections"), "{err}");
    assert!(!state.path().join("journals").exists(), "no run began");
}

#[test]
fn validate_lab_reads_an_openapi_document_in_yaml_and_points_into_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("fivehundred.toml");
    std::fs::write(
        &lab,
        "openapi = \"openapi.yaml\"\n[service]\ncommand = [\"python3\", \"app.py\", \"{port}\"]\nready = \"GET /\"\n[[request]]\npath = \"/\"\n",
    )
    .unwrap();
    let doc = dir.path().join("openapi.yaml");
    let validate = || {
        fivehundred()
            .args(["validate", "--lab"])
            .arg(&lab)
            .output()
            .unwrap()
    };
    std::fs::write(
        &doc,
        "openapi: 3.0.3\ninfo: {title: items, version: \"1\"}\npaths:\n  /items:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: &item\n              type: object\n              properties: {name: {type: string}}\n  /items/{id}:\n    put:\n      requestBody:\n        content:\n          application/json:\n            schema: *item\n",
    )
    .unwrap();
    let out = validate();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: "));

    // A key indented one space short on line 5: the error names the document, line and column.
    std::fs::write(
        &doc,
        "openapi: 3.0.3\npaths:\n  /items:\n    get: {}\n   post: {}\n",
    )
    .unwrap();
    let out = validate();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fivehundred.toml:1:11:")
            && err.contains("openapi.yaml:5:4: not valid YAML: "),
        "{err}"
    );
}
