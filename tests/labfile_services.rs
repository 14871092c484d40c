//! A service nobody here wrote, described by a lab file alone: datasette from PyPI, installed into
//! a venv under the build directory (once; later runs reuse it), runs its generic catalogue.

use std::path::PathBuf;
use std::process::Command;

use super::{Run, explain, root};

/// A venv with `package` installed, under the build directory; the path of its `bin/`.
fn venv_with(package: &str, import: &str) -> PathBuf {
    let dir = root().join("target/venvs").join(import);
    let python = dir.join("bin/python3");
    let installed = python.exists()
        && Command::new(&python)
            .args(["-c", &format!("import {import}")])
            .status()
            .is_ok_and(|s| s.success());
    if !installed {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .output()
            .expect("python3 runs");
        assert!(
            made.status.success(),
            "cannot make a venv at {} (is python3-venv installed?): {}",
            dir.display(),
            String::from_utf8_lossy(&made.stderr)
        );
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", package])
            .output()
            .expect("pip runs");
        assert!(
            pip.status.success(),
            "cannot install {package} from PyPI: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
    }
    dir.join("bin")
}

fn with_path(cmd: &mut Command, bin: &std::path::Path) {
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin.display()));
}

#[test]
fn list_says_which_causes_a_lab_file_makes_possible_and_why_the_others_do_not_apply() {
    let run = Run::new();
    let out = run
        .command(&["list", "--lab", "examples/datasette/fivehundred.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("overload") && text.contains("yes:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("db-lock-contention") && l.contains("no postgres dependency")),
        "{text}"
    );
    let out = run
        .command(&["list", "--lab", "target-app/fivehundred.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("database-down") && l.contains("yes:")),
        "{text}"
    );
}

#[test]
fn a_cause_that_does_not_apply_is_refused_naming_why() {
    let run = Run::new();
    let out = run
        .command(&[
            "run",
            "--lab",
            "examples/datasette/fivehundred.toml",
            "db-lock-contention",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no postgres dependency"),
        "{}",
        explain(&out)
    );
}

#[test]
fn datasette_from_pypi_runs_its_generic_catalogue_from_its_lab_file() {
    let bin = venv_with("datasette", "datasette");
    let run = Run::new();
    let mut cmd = run.command(&[
        "run",
        "--lab",
        "examples/datasette/fivehundred.toml",
        "overload",
        "fd-exhaustion",
        "crash-restart",
        "memory-pressure",
        "disk-full",
        "invalid-input",
        "--jobs",
        "2",
        "--seed",
        "7",
        "--report-dir",
    ]);
    cmd.arg(run.reports.path());
    with_path(&mut cmd, &bin);
    let out = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.reports.path().join("report.json")).expect("report.json written"),
    )
    .unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 6, "{}", explain(&out));
    for s in scenarios {
        let checks = s["checks"].as_array().unwrap();
        // The service really answered: the steady state held and the fault was injected.
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "status" && c["phase"] == "steady" && c["verdict"] == "pass"),
            "{}: {}",
            s["name"],
            explain(&out)
        );
        let events = s["recording"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            events.iter().any(|e| e["kind"] == "inject"),
            "{}: no injection recorded: {}",
            s["name"],
            explain(&out)
        );
        // What datasette does not promise is skipped, not failed.
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "retry-after" && c["verdict"] == "skip"),
            "{}",
            s["name"]
        );
    }
    // The crash really killed datasette and the lab started a new one: requests went
    // unanswered while it was gone, and the restart was journalled with a new pid.
    let crash = scenarios
        .iter()
        .find(|s| s["name"] == "crash-restart")
        .expect("crash-restart ran");
    let checks = crash["checks"].as_array().unwrap();
    // The fault phase's status check requires an unanswered request; recovery's needs the new
    // process to serve.
    for phase in ["fault", "recovery"] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "status" && c["phase"] == phase && c["verdict"] == "pass"),
            "crash-restart status[{phase}]: {}",
            explain(&out)
        );
    }
    assert!(
        crash["recording"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "target_exit"
                && e["detail"].as_str().unwrap_or("").contains("SIGKILL")),
        "{}",
        explain(&out)
    );
    // The memory and disk faults reached datasette's own processes and data directory.
    let note = |name: &str, needle: &str| {
        scenarios
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["recording"]["events"].as_array())
            .is_some_and(|events| {
                events.iter().any(|e| {
                    e["kind"] == "note" && e["detail"].as_str().unwrap_or("").contains(needle)
                })
            })
    };
    assert!(
        note("memory-pressure", "224 MiB of it the hog"),
        "{}",
        explain(&out)
    );
    assert!(note("disk-full", "fails with ENOSPC"), "{}", explain(&out));
    // The verdict is datasette's own, whatever it is: the exit code follows the checks.
    let failed = scenarios
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .any(|c| c["verdict"] == "fail");
    assert_eq!(
        out.status.code(),
        Some(i32::from(failed)),
        "{}",
        explain(&out)
    );
}

/// A service that is handed a dependency's address and never uses it fails with a message that
/// names the dependency and the placeholder, and no fault is injected: a fault on a
/// dependency nobody reaches through the lab's proxy would pass having tested nothing.
#[test]
fn a_service_that_ignores_its_dependency_address_is_named_and_nothing_is_injected() {
    let run = Run::new();
    let dir = run.reports.path().join("lab");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("fivehundred.toml");
    // Python's own static file server: told where `cache` is, it never connects to it.
    std::fs::write(
        &lab,
        r#"[service]
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
env = { CACHE_ADDR = "{deps.cache.addr}" }
ready = "GET /"

[deps.cache]
kind = "tcp"
upstream = "127.0.0.1:9"

[[request]]
path = "/"
"#,
    )
    .unwrap();
    let out = run
        .command(&["run", "--lab", lab.to_str().unwrap(), "cache-down"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(
        stdout.contains("never connected to `cache`") && stdout.contains("{deps.cache."),
        "{}",
        explain(&out)
    );
    assert!(
        stdout.contains("no fault was injected"),
        "{}",
        explain(&out)
    );
}

/// A service's OpenAPI document reaches operations its load never sends: a small Python service
/// whose `POST /items` (documented, never in the lab file's requests) answers 500 when the
/// `name` it expects is not a string. The invalid-input cause finds it there and fails on it.
#[test]
fn invalid_input_reaches_an_operation_only_the_openapi_document_names() {
    let run = Run::new();
    let dir = run.reports.path().join("lab");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.py"),
        r#"import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.reply(200, {"ok": True})
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw)
            self.reply(201, {"name": body["name"].upper()})
        except Exception as e:
            self.reply(500, {"error": "internal"})
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("openapi.json"),
        r#"{"openapi": "3.0.3", "info": {"title": "items", "version": "1"},
  "paths": {
    "/": {"get": {}},
    "/items": {"post": {"requestBody": {"content": {"application/json": {"schema":
      {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}}}}
  }}"#,
    )
    .unwrap();
    let lab = dir.join("fivehundred.toml");
    std::fs::write(
        &lab,
        "openapi = \"openapi.json\"\n[service]\ncommand = [\"python3\", \"app.py\", \"{port}\"]\nready = \"GET /\"\n[[request]]\npath = \"/\"\n",
    )
    .unwrap();
    let out = run
        .command(&[
            "run",
            "--lab",
            lab.to_str().unwrap(),
            "invalid-input",
            "--seed",
            "7",
            "--report-dir",
            run.reports.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.reports.path().join("report.json")).expect("report.json written"),
    )
    .unwrap();
    let checks = report["scenarios"][0]["checks"].as_array().unwrap();
    let check = checks
        .iter()
        .find(|c| c["name"] == "invalid-input")
        .unwrap_or_else(|| panic!("no invalid-input check: {}", explain(&out)));
    assert_eq!(check["verdict"], "fail", "{}", explain(&out));
    assert!(
        check.to_string().contains("/items"),
        "the failing input is not the documented operation's: {check}"
    );
}
