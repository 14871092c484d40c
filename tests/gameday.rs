//! Game days, end to end and "from two terminals": `fivehundred lab up` runs as a child process
//! with its own state directory, and the test drives it with `inject`, `status`, `halt` and
//! `recover` as a second terminal would, then with the dashboard in headless Chromium. Every wait
//! is bounded; every lab is stopped (or killed and recovered) when its test ends.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::{Run, explain, journal_files};

/// A running `fivehundred lab up` and the files its output goes to.
struct LabUp {
    run: Run,
    child: Option<Child>,
    logs: tempfile::TempDir,
    record: PathBuf,
}

impl LabUp {
    /// Starts `lab up ARGS` and waits until `status` answers.
    fn start(args: &[&str]) -> LabUp {
        let run = Run::new();
        let logs = tempfile::tempdir().unwrap();
        let record = run.reports.path().join("record");
        let mut all = vec!["lab", "up", "--record-dir", record.to_str().unwrap()];
        all.extend_from_slice(args);
        let child = run
            .command(&all)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(logs.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(logs.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut lab = LabUp {
            run,
            child: Some(child),
            logs,
            record,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = lab.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the lab exited ({status}) before it was up\n{}",
                    lab.output()
                );
            }
            let out = lab.cli(&["status", "--json"]);
            if out.status.success() {
                return lab;
            }
            assert!(
                Instant::now() < deadline,
                "the lab was not up within 120s; last status: {}\n{}",
                explain(&out),
                lab.output()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// What the lab printed so far (for failure messages).
    fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.logs.path().join(f)).unwrap_or_default();
        format!(
            "lab stdout:\n{}\nlab stderr:\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// `fivehundred ARGS` from "another terminal": the same state directory, nothing else shared.
    fn cli(&self, args: &[&str]) -> Output {
        self.run.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "fivehundred {}: {}\n{}",
            args.join(" "),
            explain(&out),
            self.output()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Polls `status --json` until `pred` holds.
    fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; last status: {s:#}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Sends `signal` and waits (bounded) for the lab to write its record and exit.
    fn stop(&mut self, signal: Signal) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the lab did not stop within 90s\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `fivehundred lab down` from another terminal; returns once the lab has exited.
    fn down(&mut self) -> ExitStatus {
        let out = self.ok(&["lab", "down"]);
        assert!(out.contains("the lab stopped"), "{out}");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`lab down` returned, the lab did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn record_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.record.join(name)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n{}",
                self.record.join(name).display(),
                self.output()
            )
        })
    }
}

impl Drop for LabUp {
    /// A test that failed half-way still leaves nothing behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = self.cli(&["recover"]);
        }
    }
}

fn active(s: &Value) -> Vec<Value> {
    s["active"].as_array().cloned().unwrap_or_default()
}

fn firing(s: &Value, alert: &str) -> bool {
    s["firing"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == alert))
}

fn log_has(s: &Value, action: &str, by: &str, detail: &str) -> bool {
    s["log"].as_array().is_some_and(|l| {
        l.iter().any(|e| {
            e["action"] == action
                && e["by"] == by
                && e["detail"].as_str().is_some_and(|d| d.contains(detail))
        })
    })
}

/// `GET path` on the target with a plain HTTP/1.0 request: the status code.
fn http_status(base: &str, path: &str) -> u16 {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `METHOD path` to `base` with extra header lines and a JSON body, as plain HTTP/1.0: the
/// status code and the whole answer.
fn http_raw(base: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// The lab's token, from its lab file (as the commands read it).
fn lab_token(lab: &LabUp) -> String {
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.run.state.path().join("lab.json")).unwrap(),
    )
    .unwrap();
    file["token"]
        .as_str()
        .expect("the lab file holds a token")
        .to_string()
}

/// Any local process can reach the lab's loopback port: without the token it changes nothing,
/// and with it, it cannot pass itself off as the dashboard.
#[test]
fn an_unauthenticated_inject_from_loopback_is_refused_and_a_claimed_by_is_ignored() {
    let mut lab = LabUp::start(&["--rate", "0"]);
    let control = lab.status()["lab"]["control_url"]
        .as_str()
        .unwrap()
        .to_string();
    let hog = r#"{"name":"memory","params":{"size":"64MiB"},"for":"30s","by":"page"}"#;
    let (code, answer) = http_raw(&control, "POST", "/api/inject", "", hog);
    assert_eq!(code, 401, "{answer}");
    let (code, _) = http_raw(&control, "GET", "/api/status", "", "");
    assert_eq!(code, 401, "reading needs a credential too");
    let s = lab.status();
    assert!(active(&s).is_empty(), "nothing injected: {s:#}");
    assert!(
        !s["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "inject"),
        "{s:#}"
    );

    let bearer = format!("Authorization: Bearer {}\r\n", lab_token(&lab));
    let claimed = r#"{"name":"failpoint","params":{"name":"get_product","action":"panic"},"for":"30s","by":"page"}"#;
    let (code, answer) = http_raw(&control, "POST", "/api/inject", &bearer, claimed);
    assert_eq!(code, 201, "{answer}");
    let s = lab.status();
    assert_eq!(
        active(&s)[0]["by"],
        "cli",
        "the token is the command line's: {s:#}"
    );
    lab.ok(&["revert", "--all"]);
    let status = lab.stop(Signal::SIGTERM);
    assert!(status.success(), "exit {status}\n{}", lab.output());
}

/// The acceptance test of issue 8: inject from one terminal, watch the outage and the alert,
/// halt, and get the record.
#[test]
fn a_game_day_from_two_terminals_shows_the_outage_halts_and_writes_the_record() {
    let mut lab = LabUp::start(&["--rate", "20"]);
    let s = lab.status();
    assert_eq!(s["load"]["running"], true, "{s:#}");
    assert!(active(&s).is_empty());

    // A typo is refused the way a scenario file's would be, and nothing is injected.
    let bad = lab.cli(&["inject", "network", "target=database", "fault=dwon"]);
    assert_eq!(bad.status.code(), Some(2), "{}", explain(&bad));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("dwon") && stderr.contains("hint:"),
        "{stderr}"
    );

    // Long enough that the deadline cannot end the outage before the halt does on a busy
    // machine; the deadline itself has its own test.
    let out = lab.ok(&["inject", "db-down", "--for", "90s"]);
    assert!(out.contains("injected #1 database proxy: down"), "{out}");
    let again = lab.cli(&["inject", "network", "target=database", "fault=down"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "the same fault twice: {}",
        explain(&again)
    );

    // The outage shows: failed requests (503s from the orders route), readiness lost, and the
    // alert fired by the lab's real Prometheus and Alertmanager.
    let s = lab.wait_for(
        "the outage and DatabaseUnavailable firing",
        Duration::from_secs(75),
        |s| {
            s["recent"]["failures"].as_u64().unwrap_or(0) > 0
                && s["ready"] == false
                && firing(s, "DatabaseUnavailable")
        },
    );
    let a = &active(&s)[0];
    assert_eq!(a["fault"], "database proxy: down", "{s:#}");
    assert_eq!(a["by"], "cli");
    assert!(a["remaining_s"].as_f64().unwrap() > 0.0);
    let text = lab.ok(&["status"]);
    assert!(
        text.contains("#1")
            && text.contains("database proxy: down")
            && text.contains("DatabaseUnavailable"),
        "{text}"
    );

    let out = lab.ok(&["halt"]);
    assert!(
        out.contains("reverted #1 database proxy: down") && out.contains("the load stopped"),
        "{out}"
    );
    let s = lab.status();
    assert!(active(&s).is_empty(), "{s:#}");
    assert_eq!(s["load"]["running"], false);
    assert!(log_has(&s, "halt", "cli", "reverted #1"), "{s:#}");
    // The database answers again: readiness comes back without a restart.
    lab.wait_for("readiness back", Duration::from_secs(30), |s| {
        s["ready"] == true
    });

    let status = lab.stop(Signal::SIGINT);
    assert!(status.success(), "exit {status}\n{}", lab.output());

    // The record: the report with the injection and the halt on its timeline, and the
    // postmortem filled from it.
    let report: Value = serde_json::from_str(&lab.record_file("report.json")).unwrap();
    let events = report["scenarios"][0]["recording"]["events"]
        .as_array()
        .unwrap();
    let has = |kind: &str, text: &str| {
        events
            .iter()
            .any(|e| e["kind"] == kind && e["detail"].as_str().unwrap().contains(text))
    };
    assert!(
        has("inject", "#1 database proxy: down (by cli"),
        "{events:#?}"
    );
    assert!(has("revert", "reverted by the halt (cli)"), "{events:#?}");
    assert!(has("note", "halt"), "{events:#?}");
    assert!(has("alert_firing", "DatabaseUnavailable"), "{events:#?}");
    let html = lab.record_file("report.html");
    assert!(
        html.contains("database proxy: down"),
        "report.html names the fault"
    );
    let pm = lab.record_file("postmortem.md");
    for want in [
        "# Postmortem",
        "injected #1 database proxy: down",
        "**halt",
        "alert **DatabaseUnavailable** firing",
        "## Impact",
        "| DatabaseUnavailable |",
        "## Action items",
    ] {
        assert!(pm.contains(want), "postmortem.md lacks {want:?}:\n{pm}");
    }
    let gameday: Value = serde_json::from_str(&lab.record_file("gameday.json")).unwrap();
    assert_eq!(gameday["faults"][0]["reverted_by"], "cli", "{gameday:#}");

    // Nothing is left: no lab file, no journal.
    let out = lab.cli(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lab is up"));
    assert!(journal_files(lab.run.state.path()).is_empty());
}

/// The hard guarantee when nobody is watching: a fault's deadline reverts it.
#[test]
fn a_fault_is_reverted_by_the_lab_itself_at_its_deadline() {
    let mut lab = LabUp::start(&["--rate", "0"]);
    let target = lab.status()["lab"]["target_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(http_status(&target, "/products/1"), 200);

    let out = lab.ok(&[
        "inject",
        "failpoint",
        "name=get_product",
        "action=panic",
        "--for",
        "3s",
    ]);
    assert!(
        out.contains("injected #1 failpoint get_product = panic"),
        "{out}"
    );
    assert_eq!(
        http_status(&target, "/products/1"),
        500,
        "the failpoint is set"
    );

    let s = lab.wait_for("the deadline revert", Duration::from_secs(20), |s| {
        active(s).is_empty()
    });
    assert!(
        log_has(&s, "revert", "lab", "at its deadline (3s)"),
        "reverted by the lab at its deadline: {s:#}"
    );
    assert_eq!(
        http_status(&target, "/products/1"),
        200,
        "the failpoint is off"
    );

    let (pids, dirs) = journalled(&lab);
    let status = lab.stop(Signal::SIGTERM);
    assert!(status.success(), "exit {status}\n{}", lab.output());
    let pm = lab.record_file("postmortem.md");
    assert!(pm.contains("at its deadline (3s)"), "{pm}");
    // A lab that stops leaves no process, directory or journal behind: only its record.
    assert_nothing_left(&pids, &dirs);
    assert!(journal_files(lab.run.state.path()).is_empty());
}

/// The processes and directories the running lab journalled.
fn journalled(lab: &LabUp) -> (Vec<i32>, Vec<PathBuf>) {
    let journal = journal_files(lab.run.state.path())
        .pop()
        .expect("the lab's journal");
    let entries: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pids = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "process")
        .map(|e| e["resource"]["pid"].as_i64().unwrap() as i32)
        .collect();
    let dirs = entries
        .iter()
        .filter(|e| e["resource"]["kind"] == "dir")
        .map(|e| PathBuf::from(e["resource"]["path"].as_str().unwrap()))
        .collect();
    (pids, dirs)
}

/// No journalled process runs, no journalled directory exists, and nothing runs from them.
fn assert_nothing_left(pids: &[i32], dirs: &[PathBuf]) {
    let left = || {
        let mut left: Vec<String> = pids
            .iter()
            .filter(|p| super::alive(**p))
            .map(|p| format!("pid {p}"))
            .collect();
        for d in dirs {
            left.extend(processes_mentioning(d.to_str().unwrap()));
            if d.exists() {
                left.push(d.display().to_string());
            }
        }
        left
    };
    // Give the kernel a moment to reap what died with the lab.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(left().is_empty(), "left behind: {:?}", left());
}

/// `revert` by number and by the fault as it was injected; then SIGTERM with a fault still
/// active: the lab reverts it before it goes, and the record says so.
#[test]
fn faults_revert_by_number_by_name_and_when_the_lab_is_stopped_with_one_active() {
    let mut lab = LabUp::start(&["--rate", "0"]);
    let target = lab.status()["lab"]["target_url"]
        .as_str()
        .unwrap()
        .to_string();
    let panic = ["failpoint", "name=get_product", "action=panic"];
    let inject = |extra: &[&str]| {
        let mut args = vec!["inject"];
        args.extend_from_slice(&panic);
        args.extend_from_slice(extra);
        lab.ok(&args)
    };

    assert!(inject(&[]).contains("injected #1"));
    assert_eq!(http_status(&target, "/products/1"), 500);
    let out = lab.ok(&["revert", "#1"]);
    assert!(
        out.contains("reverted #1 failpoint get_product = panic"),
        "{out}"
    );
    assert_eq!(http_status(&target, "/products/1"), 200);

    assert!(inject(&[]).contains("injected #2"));
    let out = lab.ok(&["revert", "failpoint", "name=get_product", "action=panic"]);
    assert!(out.contains("reverted #2"), "{out}");
    assert_eq!(http_status(&target, "/products/1"), 200);
    let none = lab.cli(&["revert", "db-down"]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "nothing matches: {}",
        explain(&none)
    );
    assert!(String::from_utf8_lossy(&none.stderr).contains("no fault is active"));

    assert!(inject(&["--for", "10m"]).contains("injected #3"));
    assert_eq!(http_status(&target, "/products/1"), 500);
    let status = lab.stop(Signal::SIGTERM);
    assert!(status.success(), "exit {status}\n{}", lab.output());
    let gameday: Value = serde_json::from_str(&lab.record_file("gameday.json")).unwrap();
    let third = &gameday["faults"][2];
    assert_eq!(third["reverted_by"], "lab", "{gameday:#}");
    assert!(
        third["how"].as_str().unwrap().contains("SIGTERM"),
        "reverted as the lab stopped: {gameday:#}"
    );
    // Journals are closed only once every revert was verified.
    assert!(journal_files(lab.run.state.path()).is_empty());
}

/// `--abort-if`: the lab halts by itself and says why.
#[test]
fn the_lab_halts_by_itself_when_an_abort_condition_holds() {
    let mut lab = LabUp::start(&["--rate", "20", "--abort-if", "error-rate>20%"]);
    // Every product read panics: about half the requests fail.
    lab.ok(&["inject", "failpoint", "name=get_product", "action=panic"]);
    let s = lab.wait_for("the abort", Duration::from_secs(30), |s| {
        s["aborted"].is_string()
    });
    let why = s["aborted"].as_str().unwrap();
    assert!(why.starts_with("error-rate>20%: error rate"), "{why}");
    let s = lab.wait_for("everything halted", Duration::from_secs(10), |s| {
        active(s).is_empty() && s["load"]["running"] == false
    });
    assert!(log_has(&s, "abort", "lab", "error-rate>20%"), "{s:#}");
    assert!(log_has(&s, "revert", "lab", "by the halt (abort"), "{s:#}");
    assert!(
        lab.output().contains("abort: error-rate>20%"),
        "the lab says why on its terminal"
    );

    let status = lab.down();
    assert!(status.code().is_some(), "{}", lab.output());
    let pm = lab.record_file("postmortem.md");
    assert!(
        pm.contains("The lab aborted: abort: error-rate>20%"),
        "{pm}"
    );
}

/// Commands without a lab say so, with the command that starts one.
#[test]
fn lab_commands_say_clearly_when_no_lab_is_up() {
    let run = Run::new();
    for args in [
        vec!["status"],
        vec!["inject", "db-down"],
        vec!["revert", "--all"],
        vec!["halt"],
        vec!["lab", "down"],
    ] {
        let out = run.command(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", explain(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no lab is up") && stderr.contains("fivehundred lab up"),
            "{args:?}: {stderr}"
        );
    }
}

fn processes_mentioning(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
            .unwrap_or(true);
        if cmd.contains(text) && !zombie {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

#[test]
fn a_lab_killed_with_sigkill_mid_fault_leaves_nothing_behind_after_recover() {
    let mut lab = LabUp::start(&["--rate", "10"]);
    lab.ok(&["inject", "db-down"]);
    let journal = journal_files(lab.run.state.path())
        .pop()
        .expect("the lab's journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"event\":\"inject\""), "{text}");
    let (pids, dirs) = journalled(&lab);
    let run_dir = dirs
        .iter()
        .find(|d| d.to_string_lossy().contains("fivehundred-gameday-"))
        .expect("the lab's run directory is journalled")
        .clone();
    assert!(pids.len() >= 2, "postgres and the target: {text}");
    assert!(
        !processes_mentioning(run_dir.to_str().unwrap()).is_empty(),
        "the target and monitoring run from the run directory"
    );

    let pid = lab.pid();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    lab.child.take().unwrap().wait().unwrap();

    let out = lab.cli(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fivehundred recover"),
        "a dead lab points at recover: {}",
        explain(&out)
    );

    let out = lab.cli(&["recover"]);
    assert!(out.status.success(), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("recovered"));
    assert_nothing_left(&pids, &dirs);
    assert!(journal_files(lab.run.state.path()).is_empty());
    let out = lab.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no lab is up"),
        "{}",
        explain(&out)
    );
    let again = lab.cli(&["recover"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to recover"));
}

// --- the dashboard in a real browser ------------------------------------------------------------

/// Chromium on PATH (installed from Debian's packages first where the machine allows it), or a
/// failure that says how to get it: never a silent skip.
fn chromium() -> PathBuf {
    if let Err(e) = fivehundred::install::ensure(fivehundred::install::CHROMIUM) {
        panic!("{e}");
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("chromium is not installed: `apt-get install -y chromium` (.ci/run installs it)")
}

/// Headless Chromium driven over the DevTools protocol (a websocket), on one page. The protocol
/// is JSON over one websocket; a dozen lines with `tungstenite` (sync, no runtime) drive it, where
/// Playwright would need Node and npm packages installed outside cargo.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: tungstenite::WebSocket<TcpStream>,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Opens `url`. Everything but loopback goes to a dead proxy and no host name resolves, so
    /// the browser's own background traffic stays on this machine too.
    fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let data = profile.path().join("p");
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--window-size=1280,1600",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", data.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Chromium writes its port and browser endpoint here once it listens.
        let port_file = data.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            if let Ok(t) = std::fs::read_to_string(&port_file)
                && let [port, path] = t.lines().collect::<Vec<_>>()[..]
            {
                break (port.to_string(), path.to_string());
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not start within 60s"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) =
            tungstenite::client(format!("ws://127.0.0.1:{port}{path}").as_str(), stream).unwrap();
        let mut b = Browser {
            child,
            _profile: profile,
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = b.call("Target.createTarget", json!({ "url": url }));
        let session = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        b.session = session["sessionId"].as_str().unwrap().to_string();
        b
    }

    /// One DevTools call; events in between are skipped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if v["id"] == id {
                return if v["error"].is_null() {
                    Ok(v["result"].clone())
                } else {
                    Err(v)
                };
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page (while the page is still loading, there is no
    /// page to ask: that is "not yet").
    fn wait(&mut self, what: &str, within: Duration, expr: &str) {
        let deadline = Instant::now() + within;
        loop {
            let r = self.try_call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true }),
            );
            if r.is_ok_and(|r| r["result"]["value"] == true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText");
                panic!("{what}: not within {within:?} ({expr}); the page says:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_dashboard_in_chromium_injects_shows_the_outage_and_halts() {
    let mut lab = LabUp::start(&["--rate", "20"]);
    // The browser gets in once, through a one-time link that sets its session cookie.
    let url = lab.ok(&["lab", "open"]).trim().to_string();
    assert!(url.contains("/open?code="), "{url}");
    let mut page = Browser::open(&url);
    page.wait(
        "the dashboard is live with the named faults",
        Duration::from_secs(30),
        "!!document.body.dataset.updated && !!document.querySelector('form.inject[data-name=\"db-down\"]')",
    );
    assert_eq!(
        page.eval("location.pathname + location.search"),
        "/",
        "no secret left in the page's address"
    );
    let control = url.split("/open").next().unwrap();
    let path = &url[control.len()..];
    let (code, answer) = http_raw(control, "GET", path, "", "");
    assert_eq!(code, 401, "the link works once: {answer}");
    // The page draws requests as they come.
    page.wait(
        "2xx bars on the timeline",
        Duration::from_secs(15),
        "document.querySelectorAll('#chart rect.c-2xx').length > 0",
    );

    // Inject from the page.
    page.eval(
        "(() => { const f = document.querySelector('form.inject[data-name=\"db-down\"]'); \
         f.elements['for'].value = '90s'; f.querySelector('button[type=submit]').click(); return true })()",
    );
    page.wait(
        "the fault listed as active",
        Duration::from_secs(15),
        "document.querySelectorAll('#active tr[data-id]').length === 1",
    );
    let s = lab.status();
    assert_eq!(active(&s)[0]["by"], "page", "{s:#}");
    assert_eq!(active(&s)[0]["fault"], "database proxy: down");

    // The fault window, the errors (with their log lines) and readiness lost appear.
    page.wait(
        "an open fault window",
        Duration::from_secs(10),
        "!!document.querySelector('#chart rect.fault-window.open')",
    );
    page.wait(
        "503s on the timeline and in the latest errors, with log lines",
        Duration::from_secs(30),
        "document.querySelectorAll('#chart rect.c-5xx').length > 0 && \
         !!document.querySelector('#errors .error[data-status=\"503\"] pre.logs')",
    );
    page.wait(
        "readiness lost, marked",
        Duration::from_secs(30),
        "!!document.querySelector('#chart polygon.ready-change.not-ready') && \
         document.getElementById('ready-state').textContent === 'NOT READY'",
    );

    page.wait(
        "the alert firing, listed and on the timeline",
        Duration::from_secs(60),
        "!!document.querySelector('#firing li[data-alert=\"DatabaseUnavailable\"]') && \
         !!document.querySelector('#chart rect.alert-span[data-alert=\"DatabaseUnavailable\"]')",
    );

    // A second fault from the form of its kind, then reverted with its own button.
    page.eval(
        "(() => { const f = document.querySelector('form.inject-kind[data-kind=\"failpoint\"]'); \
         f.elements['params'].value = 'name=get_product\\naction=panic'; f.elements['for'].value = '60s'; \
         f.querySelector('button[type=submit]').click(); return true })()",
    );
    page.wait(
        "two active faults",
        Duration::from_secs(15),
        "document.querySelectorAll('#active tr[data-id]').length === 2",
    );
    assert_eq!(
        active(&lab.status())[1]["fault"],
        "failpoint get_product = panic"
    );
    page.eval("document.querySelector('#active button.revert[data-id=\"2\"]').click(), true");
    page.wait(
        "the second fault reverted by its button",
        Duration::from_secs(15),
        "document.querySelectorAll('#active tr[data-id]').length === 1 && \
         document.getElementById('message').textContent.startsWith('reverted #2')",
    );

    // The kill switch.
    page.eval("document.getElementById('halt').click(), true");
    page.wait(
        "everything reverted and the load stopped",
        Duration::from_secs(20),
        "document.querySelectorAll('#active tr[data-id]').length === 0 && \
         document.getElementById('load-state').dataset.running === 'false' && \
         !!document.querySelector('#chart rect.fault-window.closed') && \
         !!document.querySelector('#chart line.halt') && \
         document.getElementById('message').textContent.startsWith('HALT: reverted #1')",
    );
    let s = lab.status();
    assert!(active(&s).is_empty(), "{s:#}");
    assert_eq!(s["load"]["running"], false);
    assert!(
        log_has(&s, "inject", "page", "injected #1 database proxy: down"),
        "{s:#}"
    );
    assert!(log_has(&s, "halt", "page", "reverted #1"), "{s:#}");
    drop(page);

    let status = lab.stop(Signal::SIGINT);
    assert!(status.code().is_some(), "{}", lab.output());
    let gameday: Value = serde_json::from_str(&lab.record_file("gameday.json")).unwrap();
    assert_eq!(gameday["faults"][0]["injected_by"], "page", "{gameday:#}");
    assert_eq!(gameday["faults"][0]["reverted_by"], "page", "{gameday:#}");
    assert_eq!(gameday["faults"][1]["how"], "by page", "{gameday:#}");
}

/// `lab up` serves Toxiproxy's API over the lab's proxies: a toxic added by a Toxiproxy client
/// is journalled first, reaches the target's database traffic, shows in `status` and the log,
/// and `halt` removes it; an update and a removal through the API are logged too, a toxic left
/// when the lab stops is removed then, and the record holds them all.
#[test]
fn a_toxic_added_through_the_lab_s_toxiproxy_api_bites_shows_in_status_and_the_record_and_halt_removes_it()
 {
    let mut lab = LabUp::start(&["--rate", "0"]);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.run.state.path().join("lab.json")).unwrap(),
    )
    .unwrap();
    let api = file["toxiproxy_url"]
        .as_str()
        .expect("lab.json names the Toxiproxy API")
        .to_string();
    assert!(
        lab.output().contains(&api),
        "the banner prints it: {}",
        lab.output()
    );
    let target = file["target_url"].as_str().unwrap().to_string();
    let (code, proxies) = http_raw(&api, "GET", "/proxies", "", "");
    assert_eq!(code, 200, "{proxies}");
    assert!(
        proxies.contains("\"database\"") && proxies.contains("\"payments\""),
        "{proxies}"
    );
    assert_eq!(http_status(&target, "/products/3"), 200);
    // Toxiproxy's `timeout` with 0: the database's bytes are swallowed and nothing closes.
    let (code, body) = http_raw(
        &api,
        "POST",
        "/proxies/database/toxics",
        "",
        r#"{"name":"blackhole","type":"timeout","stream":"downstream","attributes":{"timeout":0}}"#,
    );
    assert_eq!(code, 200, "{body}");
    // Journalled before it bit, with what `recover` would say of it.
    let journal = journal_files(lab.run.state.path())
        .pop()
        .expect("the lab's journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let entry: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "inject" && e["fault"]["kind"] == "toxic")
        .unwrap_or_else(|| panic!("the toxic is journalled: {text}"));
    let id = entry["id"].clone();
    assert_eq!(entry["fault"]["proxy"], "database", "{entry:#}");
    assert_eq!(entry["fault"]["toxic"]["name"], "blackhole", "{entry:#}");
    assert!(
        entry["orphan"]
            .as_str()
            .unwrap()
            .contains("nothing to undo"),
        "{entry:#}"
    );
    assert_ne!(
        http_status(&target, "/products/4"),
        200,
        "a database that never answers cannot serve an uncached product"
    );
    // `status` lists it with Toxiproxy's fields, apart from the faults it can revert.
    let s = lab.status();
    let toxics = s["toxics"].as_array().cloned().unwrap_or_default();
    assert_eq!(toxics.len(), 1, "{s:#}");
    let t = &toxics[0];
    assert_eq!(
        (&t["id"], &t["proxy"], &t["name"], &t["type"], &t["stream"]),
        (
            &id,
            &json!("database"),
            &json!("blackhole"),
            &json!("timeout"),
            &json!("downstream")
        ),
        "{t:#}"
    );
    assert_eq!(
        (&t["toxicity"], &t["attributes"], &t["by"]),
        (&json!(1.0), &json!({"timeout": 0}), &json!("toxiproxy")),
        "{t:#}"
    );
    assert!(active(&s).is_empty(), "{s:#}");
    assert!(
        log_has(&s, "inject", "toxiproxy", "toxic blackhole on database"),
        "{s:#}"
    );
    let text = lab.ok(&["status"]);
    assert!(
        text.contains("toxics added through the Toxiproxy API:")
            && text.contains("toxic blackhole on database: timeout downstream"),
        "{text}"
    );
    // An update and a removal through the API: each logged, each a window of its own.
    for (method, path, body) in [
        (
            "POST",
            "/proxies/payments/toxics",
            r#"{"name":"slow","type":"latency","attributes":{"latency":50}}"#,
        ),
        (
            "PATCH",
            "/proxies/payments/toxics/slow",
            r#"{"attributes":{"latency":80}}"#,
        ),
        ("DELETE", "/proxies/payments/toxics/slow", ""),
    ] {
        let (code, answer) = http_raw(&api, method, path, "", body);
        assert!((200..300).contains(&code), "{method} {path}: {answer}");
    }
    let s = lab.status();
    assert_eq!(s["toxics"].as_array().map(Vec::len), Some(1), "{s:#}");
    assert!(
        log_has(&s, "revert", "toxiproxy", "latency=50) updated through"),
        "{s:#}"
    );
    assert!(
        log_has(&s, "revert", "toxiproxy", "latency=80) removed through"),
        "{s:#}"
    );

    let out = lab.ok(&["halt"]);
    assert!(
        out.contains("blackhole on database") && out.contains("Toxiproxy API"),
        "{out}"
    );
    let (_, toxics) = http_raw(&api, "GET", "/proxies/database/toxics", "", "");
    assert!(toxics.trim_end().ends_with("[]"), "{toxics}");
    let s = lab.status();
    assert_eq!(s["toxics"], json!([]), "{s:#}");
    assert!(
        log_has(&s, "revert", "cli", "toxic blackhole on database"),
        "{s:#}"
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains(&format!("{{\"event\":\"reverted\",\"id\":{id}}}")),
        "the journal marks it reverted: {text}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_status(&target, "/products/4") != 200 {
        assert!(Instant::now() < deadline, "the target never served again");
        std::thread::sleep(Duration::from_millis(250));
    }

    // One left in place when the lab stops is removed as it stops, like a fault.
    let (code, body) = http_raw(
        &api,
        "POST",
        "/proxies/database/toxics",
        "",
        r#"{"name":"lag","type":"latency","attributes":{"latency":10}}"#,
    );
    assert_eq!(code, 200, "{body}");
    let status = lab.stop(Signal::SIGINT);
    assert!(status.success(), "exit {status}\n{}", lab.output());
    let gameday: Value = serde_json::from_str(&lab.record_file("gameday.json")).unwrap();
    let windows = gameday["faults"].as_array().unwrap();
    let window = |name: &str| {
        windows
            .iter()
            .find(|w| w["fault"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("no window for {name}: {gameday:#}"))
    };
    assert_eq!(
        window("blackhole")["injected_by"],
        "toxiproxy",
        "{gameday:#}"
    );
    assert_eq!(window("blackhole")["reverted_by"], "cli", "{gameday:#}");
    assert_eq!(window("lag")["reverted_by"], "lab", "{gameday:#}");
    assert_eq!(windows.len(), 4, "blackhole, slow twice, lag: {gameday:#}");
    let report: Value = serde_json::from_str(&lab.record_file("report.json")).unwrap();
    let events = report["scenarios"][0]["recording"]["events"]
        .as_array()
        .unwrap();
    let has = |kind: &str, text: &str| {
        events
            .iter()
            .any(|e| e["kind"] == kind && e["detail"].as_str().unwrap().contains(text))
    };
    assert!(
        has("inject", "toxic blackhole on database: timeout downstream"),
        "{events:#?}"
    );
    assert!(
        has("revert", "toxic blackhole on database") && has("revert", "by the halt (cli)"),
        "{events:#?}"
    );
    let pm = lab.record_file("postmortem.md");
    assert!(pm.contains("toxic lag on database"), "{pm}");
    // Nothing is left: no journal.
    assert!(journal_files(lab.run.state.path()).is_empty());
}

/// A small service nobody here wrote against: Python's standard library only. `GET /price` asks
/// its `rates` dependency (an HTTP API at `RATES_URL`) and answers 503 with Retry-After when that
/// fails; `/health` answers without it.
const RATES_SERVICE: &str = r#"import json, os, sys, urllib.request
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

RATES = os.environ["RATES_URL"]

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            return self.answer(200, {"ok": True})
        try:
            with urllib.request.urlopen(RATES + "/rates/eur", timeout=2) as r:
                rate = json.load(r)["rate"]
            self.answer(200, {"price": 10 * rate})
        except Exception:
            self.answer(503, {"error": "rates unavailable"}, retry_after=True)

    def answer(self, code, body, retry_after=False):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        if retry_after:
            self.send_header("retry-after", "1")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// `lab up --lab FILE`: a game day on a service described by a lab file, not target-app. Its
/// requests are the load, its generic catalogue's causes are the named faults (`rates-errors`),
/// a cause that does not apply is refused naming why, and the record names the lab file.
#[test]
fn a_game_day_on_a_lab_file_service_injects_its_causes_by_name_and_writes_the_record() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), RATES_SERVICE).unwrap();
    let lab_file = dir.path().join("fivehundred.toml");
    std::fs::write(
        &lab_file,
        r#"[service]
command = ["python3", "app.py", "{port}"]
env = { RATES_URL = "{deps.rates.url}" }
ready = "GET /health"

[deps.rates]
kind = "http"

[[deps.rates.answer]]
request = "GET /rates/{currency}"
headers = { content-type = "application/json" }
body = '{"rate": 1.5}'

[[request]]
path = "/price"

[expect]
errors = "json"
error_fields = ["error"]
"#,
    )
    .unwrap();
    let lab_path = lab_file.to_str().unwrap().to_string();
    let mut lab = LabUp::start(&["--lab", &lab_path, "--rate", "10"]);
    let target = lab.status()["lab"]["target_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(http_status(&target, "/price"), 200, "{}", lab.output());

    // A cause of the lab file's catalogue that does not apply is refused, saying why.
    let refused = lab.cli(&["inject", "db-lock-contention"]);
    assert!(!refused.status.success(), "{}", explain(&refused));
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        said.contains("db-lock-contention") && said.contains("no postgres dependency"),
        "{}",
        explain(&refused)
    );
    assert!(active(&lab.status()).is_empty(), "nothing was injected");

    let out = lab.ok(&["inject", "rates-errors", "--for", "60s"]);
    assert!(out.contains("injected #1"), "{out}");
    assert_eq!(
        http_status(&target, "/price"),
        503,
        "the service answers 503 while its dependency fails"
    );
    let s = lab.wait_for("errors in the live view", Duration::from_secs(30), |s| {
        s["recent"]["error_rate"].as_f64().unwrap_or(0.0) > 0.0
    });
    assert_eq!(active(&s).len(), 1, "{s:#}");

    let out = lab.ok(&["revert", "--all"]);
    assert!(out.contains("reverted"), "{out}");
    assert_eq!(http_status(&target, "/price"), 200, "{}", lab.output());

    let (pids, dirs) = journalled(&lab);
    assert_eq!(lab.down().code(), Some(0), "{}", lab.output());
    // The record checks what the lab file promises (JSON errors with `error`, Retry-After on
    // 503), not target-app's problem+json.
    let report: Value = serde_json::from_str(&lab.record_file("report.json")).unwrap();
    let checks = report["scenarios"][0]["checks"].as_array().unwrap().clone();
    let verdict = |name: &str, phase: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name && c["phase"] == phase)
            .map(|c| c["verdict"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(
        verdict("error-format", "fault").as_deref(),
        Some("pass"),
        "{checks:#?}"
    );
    assert_eq!(
        verdict("retry-after", "fault").as_deref(),
        Some("pass"),
        "{checks:#?}"
    );
    assert_eq!(
        report["command"].as_str(),
        Some(format!("fivehundred lab up --lab {lab_path} --rate 10").as_str()),
        "the record says how to start the same lab"
    );
    let gameday: Value = serde_json::from_str(&lab.record_file("gameday.json")).unwrap();
    assert_eq!(gameday["faults"][0]["name"], "rates-errors", "{gameday:#}");
    let pm = lab.record_file("postmortem.md");
    assert!(pm.contains("rates API answers 503"), "{pm}");
    assert_nothing_left(&pids, &dirs);
}
