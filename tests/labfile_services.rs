//! Services nobody here wrote, described by a lab file alone: datasette and MLflow's tracking
//! server from PyPI, each installed into a venv under the build directory (once; later runs reuse
//! it), run their generic catalogue.

use std::path::PathBuf;
use std::process::Command;

use super::{Run, explain, root};

/// A venv named `name` under the build directory with `packages` (pip requirements) installed;
/// the path of its `bin/`. Made once: a later call reuses it while it was made for the same
/// packages and each of `imports` still imports.
fn venv_with(name: &str, packages: &[&str], imports: &[&str]) -> PathBuf {
    let dir = root().join("target/venvs").join(name);
    // Two tests may want the same venv at once: one makes it while the other waits.
    std::fs::create_dir_all(root().join("target/venvs")).unwrap();
    let lock = std::fs::File::create(root().join(format!("target/venvs/{name}.lock"))).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let python = dir.join("bin/python3");
    let made_for = dir.join("fivehundred-requirements.txt");
    let wanted = packages.join("\n");
    let installed = std::fs::read_to_string(&made_for).is_ok_and(|r| r == wanted)
        && Command::new(&python)
            .args(["-c", &format!("import {}", imports.join(", "))])
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
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages)
            .output()
            .expect("pip runs");
        assert!(
            pip.status.success(),
            "cannot install {} from PyPI: {}",
            packages.join(" "),
            String::from_utf8_lossy(&pip.stderr)
        );
        std::fs::write(&made_for, &wanted).unwrap();
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
    // Its PostgreSQL dependency is named `database`: its down cause is named after it.
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

/// Runs `causes` of datasette's generic catalogue from its lab file, two labs at a time, and
/// checks what every one of them must show: the service answered its steady load, the fault
/// went in, and what datasette does not promise (Retry-After) is skipped, not failed. Returns
/// the run's output and its report's scenarios.
fn datasette(causes: &[&str]) -> (std::process::Output, Vec<serde_json::Value>) {
    let bin = venv_with("datasette", &["datasette"], &["datasette"]);
    let run = Run::new();
    let mut cmd = run.command(&["run", "--lab", "examples/datasette/fivehundred.toml"]);
    cmd.args(causes)
        .args(["--jobs", "2", "--seed", "7", "--report-dir"])
        .arg(run.reports.path());
    with_path(&mut cmd, &bin);
    let out = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.reports.path().join("report.json")).expect("report.json written"),
    )
    .unwrap();
    let scenarios = report["scenarios"].as_array().unwrap().clone();
    assert_eq!(scenarios.len(), causes.len(), "{}", explain(&out));
    for s in &scenarios {
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
    // The verdict is datasette's own, whatever it is: the exit code follows the checks.
    assert_exit_code_follows_checks(&out, &scenarios);
    (out, scenarios)
}

/// Overload measures datasette's capacity, so it runs in a test of its own, with the machine to
/// itself (`.config/nextest.toml`); the rest of the catalogue shares it.
#[test]
fn datasette_from_pypi_under_overload_from_its_lab_file() {
    let (out, scenarios) = datasette(&["overload"]);
    // Ten times the steady rate reached it: more requests in the fault phase than in the
    // steady one, per second.
    let digest = &scenarios[0]["request_digest"]["seconds"];
    let rate = |phase: &str| {
        // One row per second, route and phase.
        let rows: Vec<&serde_json::Value> = digest
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["phase"] == phase)
            .collect();
        let n: f64 = rows.iter().filter_map(|s| s["count"].as_f64()).sum();
        let seconds: std::collections::BTreeSet<u64> =
            rows.iter().filter_map(|s| s["second"].as_u64()).collect();
        n / seconds.len().max(1) as f64
    };
    assert!(
        rate("fault") > 3.0 * rate("steady"),
        "steady {} req/s, fault {} req/s: {}",
        rate("steady"),
        rate("fault"),
        explain(&out)
    );
}

#[test]
fn datasette_from_pypi_runs_its_generic_catalogue_from_its_lab_file() {
    let (out, scenarios) = datasette(&[
        "fd-exhaustion",
        "crash-restart",
        "memory-pressure",
        "disk-full",
        "invalid-input",
    ]);
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
}

/// The run's exit code is 1 when any check of `scenarios` failed, else 0.
fn assert_exit_code_follows_checks(out: &std::process::Output, scenarios: &[serde_json::Value]) {
    let failed = scenarios
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .any(|c| c["verdict"] == "fail");
    assert_eq!(
        out.status.code(),
        Some(i32::from(failed)),
        "{}",
        explain(out)
    );
}

/// MLflow's tracking server as examples/mlflow/README.md was measured with it, the PostgreSQL
/// driver its store URL names, and the exporter `--expose-prometheus` imports.
const MLFLOW: &[&str] = &[
    "mlflow==3.17.2",
    "psycopg2-binary",
    "prometheus-flask-exporter",
];

/// The verdict of check `name` in `phase` of scenario `s`, if it ran.
fn verdict<'a>(s: &'a serde_json::Value, name: &str, phase: &str) -> Option<&'a str> {
    s["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name && c["phase"] == phase)
        .and_then(|c| c["verdict"].as_str())
}

fn events(s: &serde_json::Value) -> Vec<(String, String)> {
    s["recording"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn mlflow_from_pypi_runs_its_generic_catalogue_from_its_lab_file() {
    let bin = venv_with(
        "mlflow",
        MLFLOW,
        &["mlflow", "psycopg2", "prometheus_flask_exporter"],
    );
    let run = Run::new();
    // Its database through the lab's proxy, and its own process: killed, out of descriptors,
    // out of disk. examples/mlflow/README.md shows this run's verdicts.
    let causes = [
        "db-down",
        "db-slow",
        "crash-restart",
        "fd-exhaustion",
        "disk-full",
    ];
    // Three labs at a time: two rounds instead of three (each lab mostly waits on MLflow's
    // start and serves 10 requests a second after).
    let mut cmd = run.command(&["run", "--lab", "examples/mlflow/fivehundred.toml"]);
    cmd.args(causes)
        .args(["--jobs", "3", "--seed", "7", "--report-dir"])
        .arg(run.reports.path());
    with_path(&mut cmd, &bin);
    let out = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.reports.path().join("report.json")).expect("report.json written"),
    )
    .unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), causes.len(), "{}", explain(&out));
    let scenario = |name: &str| {
        scenarios
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} ran: {}", explain(&out)))
    };
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        // MLflow served its steady load, the fault went in and was taken out again (a fault
        // that could not be injected or reverted leaves a note and no verdict).
        assert_eq!(
            verdict(s, "status", "steady"),
            Some("pass"),
            "{name}: {}",
            explain(&out)
        );
        assert!(
            s["note"].is_null(),
            "{name}: {}: {}",
            s["note"],
            explain(&out)
        );
        let ev = events(s);
        assert!(
            ev.iter().any(|(k, _)| k == "inject")
                && ev
                    .iter()
                    .any(|(k, d)| k == "revert" && !d.contains("after a failed injection")),
            "{name}: {ev:?}"
        );
        // It connected to its database through the lab's proxy, not around it: a service
        // that never does fails the `dependency` check and gets no fault.
        assert_ne!(verdict(s, "dependency", "steady"), Some("fail"), "{name}");
    }

    // db-down refuses connections at the proxy only (the lab's PostgreSQL stays up), so
    // MLflow's own answers naming a failed connection show it used the address it was given;
    // none came before the fault.
    let down = scenario("db-down");
    let fault_began = down["recording"]["phases"]["fault"][0].as_f64().unwrap();
    let db_errors: Vec<f64> = down["recording"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["outcome"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("psycopg2.OperationalError"))
        })
        .map(|r| r["at_ms"].as_f64().unwrap() + r["latency_ms"].as_f64().unwrap())
        .collect();
    assert!(!db_errors.is_empty(), "{}", explain(&out));
    assert!(
        db_errors.iter().all(|&answered| answered >= fault_began),
        "{db_errors:?} before {fault_began}"
    );
    // db-slow delays every byte to and from the database by two seconds: a request that
    // reaches it waits at least one round trip of four, longer than any in the steady phase.
    let slow = scenario("db-slow");
    let slowest = |phase: &str| {
        slow["request_digest"]["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["phase"] == phase)
            .filter_map(|s| s["max_ms"].as_f64())
            .fold(0.0, f64::max)
    };
    let (steady, fault) = (slowest("steady"), slowest("fault"));
    assert!(
        fault >= 4000.0 && fault > steady,
        "db-slow: slowest {steady} ms steady, {fault} ms in the fault: {}",
        explain(&out)
    );

    // The crash killed MLflow's whole process group and the lab started it again: nothing
    // answered while it was gone, and the restart was verified alive (the revert above).
    let crash = scenario("crash-restart");
    assert_eq!(verdict(crash, "status", "fault"), Some("pass"));
    assert!(
        events(crash)
            .iter()
            .any(|(k, d)| k == "target_exit" && d.contains("SIGKILL")),
        "{}",
        explain(&out)
    );
    // The descriptor fault reached every process of MLflow's, not only the `mlflow server`
    // launcher the lab started: the uvicorn server that answers is its child.
    let noted = |name: &str, needle: &str| {
        events(scenario(name))
            .iter()
            .filter(|(k, d)| k == "note" && d.contains(needle))
            .count()
    };
    assert!(
        noted("fd-exhaustion", "prlimit --nofile=") > 1,
        "{:?}",
        events(scenario("fd-exhaustion"))
    );
    // The disk fault filled its data directory.
    assert_eq!(
        noted("disk-full", "fails with ENOSPC"),
        1,
        "{}",
        explain(&out)
    );

    // The exit code follows the checks. It is 1, as the README says: MLflow's answers while
    // its database is down carry SQLAlchemy's error text.
    assert_exit_code_follows_checks(&out, scenarios);
    assert_eq!(verdict(down, "no-leaks", "fault"), Some("fail"));
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
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

/// A small Python service whose request ids come in `X-Correlation-Id` and are logged under
/// `correlation_id`: every answer carries the id (the client's, or one it makes), and every 404
/// is logged as a WARN line with it. With `omit`, its error answers leave the header out.
const CORRELATED: &str = r#"import http.server, json, sys, uuid
omit = sys.argv[2:] == ["omit"]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        rid = self.headers.get("x-correlation-id") or uuid.uuid4().hex
        status, body = (200, {"ok": True}) if self.path == "/" else (404, {"error": "not found"})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if status < 400 or not omit:
            self.send_header("X-Correlation-Id", rid)
        self.end_headers()
        self.wfile.write(data)
        if status >= 400:
            line = {"level": "WARN", "message": "request failed", "status": status, "correlation_id": rid}
            print(json.dumps(line), flush=True)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// The lab file of [`CORRELATED`], started with `args` after its port.
fn correlated_lab(dir: &std::path::Path, args: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("app.py"), CORRELATED).unwrap();
    let lab = dir.join("fivehundred.toml");
    std::fs::write(
        &lab,
        format!(
            r#"[service]
command = ["python3", "app.py", "{{port}}"{args}]
ready = "GET /"

[service.logs]
format = "json"
request_id_header = "X-Correlation-Id"
request_id_field = "correlation_id"

[expect]
errors = "json"
error_fields = ["error"]

[[request]]
path = "/"
weight = 3

[[request]]
path = "/missing"
"#
        ),
    )
    .unwrap();
    lab
}

/// A service whose request ids come in `X-Correlation-Id`, not `x-request-id`: the request-id
/// check reads that header of every answer and finds each error's log line by it. It passes
/// while every answer carries it, and fails, naming the header, when error answers leave it out.
#[test]
fn the_request_id_check_reads_the_header_the_lab_file_names() {
    let good = Run::new();
    let bad = Run::new();
    // Both labs at once: each is mostly idle.
    let start = |run: &Run, args: &str| {
        let lab = correlated_lab(&run.reports.path().join("lab"), args);
        run.command(&[
            "run",
            "--lab",
            lab.to_str().unwrap(),
            "crash-restart",
            "--seed",
            "7",
            "--report-dir",
            run.reports.path().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let good_child = start(&good, "");
    let bad_child = start(&bad, r#", "omit""#);
    let good_out = good_child.wait_with_output().unwrap();
    let bad_out = bad_child.wait_with_output().unwrap();
    let report = |run: &Run, out: &std::process::Output| -> serde_json::Value {
        let text = std::fs::read_to_string(run.reports.path().join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}): {}", explain(out)));
        serde_json::from_str(&text).unwrap()
    };
    let check = |s: &serde_json::Value, phase: &str| -> serde_json::Value {
        s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "request-id" && c["phase"] == phase)
            .cloned()
            .unwrap_or_else(|| panic!("no request-id[{phase}] check: {s}"))
    };

    let report_good = report(&good, &good_out);
    let s = &report_good["scenarios"][0];
    assert_eq!(
        s["recording"]["request_ids"]["header"],
        "x-correlation-id",
        "{}",
        explain(&good_out)
    );
    for phase in ["steady", "fault", "recovery"] {
        let c = check(s, phase);
        assert_eq!(c["verdict"], "pass", "{c}\n{}", explain(&good_out));
        let summary = c["summary"].as_str().unwrap();
        assert!(
            summary.contains("answers carry x-correlation-id"),
            "{summary}"
        );
    }
    // Errors were there to check: the steady phase's 404s, each logged with its id.
    let steady = check(s, "steady");
    let summary = steady["summary"].as_str().unwrap();
    assert!(
        !summary.contains("all 0 errors") && summary.contains("`correlation_id`"),
        "{summary}"
    );

    let report_bad = report(&bad, &bad_out);
    let s = &report_bad["scenarios"][0];
    assert_eq!(bad_out.status.code(), Some(1), "{}", explain(&bad_out));
    let c = check(s, "steady");
    assert_eq!(c["verdict"], "fail", "{c}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("answers without x-correlation-id"),
        "{summary}"
    );
    let evidence = c["evidence"].as_array().unwrap();
    assert!(!evidence.is_empty(), "{c}");
    for e in evidence {
        assert_eq!(e["why"], "no x-correlation-id header", "{e}");
        assert_eq!(e["request"]["outcome"]["status"], 404, "{e}");
    }
}
