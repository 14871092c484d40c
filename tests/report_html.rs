//! `report.html` in a real browser, and `fivehundred explain`, end to end. The page of a run with
//! a failing and a passing scenario is loaded from disk by headless Chromium (Debian's package;
//! `.ci/run` installs it): the timeline and the failing check's evidence must be in the DOM it
//! builds, and the page must not make a single request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Run, explain};

/// Chromium on PATH (installed from Debian's packages first where the machine allows it), or a
/// failure that says how to get it (never a silent skip).
fn chromium() -> PathBuf {
    if let Err(e) = fivehundred::install::ensure(fivehundred::install::CHROMIUM) {
        panic!("{e}");
    }
    for name in ["chromium", "chromium-browser"] {
        if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return p;
        }
    }
    panic!("chromium is not installed: `apt-get install -y chromium` (.ci/run installs it)");
}

/// Runs headless Chromium on a file with a fresh profile, bounded in time. Every network
/// access is sent to a dead loopback proxy and no host name resolves, so even the browser's own
/// background traffic stays on this machine; the net log still records what the page asked for.
fn headless(file: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let profile = tempfile::tempdir().unwrap();
    let netlog = profile.path().join("netlog.json");
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1366,2400",
    ])
    .arg(format!(
        "--user-data-dir={}",
        profile.path().join("p").display()
    ))
    .arg(format!("--log-net-log={}", netlog.display()))
    .args(extra)
    .arg(format!("file://{}", file.display()))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("chromium did not finish within 90 s");
        }
    };
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&netlog).unwrap();
    (out, parse_netlog(&text))
}

/// A net log is JSON; one cut short by an abrupt exit lacks its closing brackets.
fn parse_netlog(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        let trimmed = text.trim_end().trim_end_matches(',');
        serde_json::from_str(&format!("{trimmed}]}}")).expect("a readable net log")
    })
}

/// URLs the page itself asked for: requests whose site is the file (the browser's own
/// background requests have no site), other than the file and inline `data:` URLs.
fn page_requests(netlog: &serde_json::Value) -> Vec<String> {
    let mut urls: Vec<String> = netlog["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let url = p["url"].as_str()?;
            let from_page = p["site_for_cookies"]
                .as_str()
                .is_some_and(|s| s.contains("site=file://"))
                || p["initiator"].as_str() == Some("null");
            (from_page && !url.starts_with("file:") && !url.starts_with("data:"))
                .then(|| url.to_string())
        })
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

fn dom(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn report_html_of_a_failing_and_a_passing_scenario_renders_in_chromium_without_network() {
    let run = Run::new();
    let dir = run.reports.path().to_str().unwrap().to_string();
    // The same arguments as `Run::scenarios`, plus --json: stdout is then the report alone.
    let out = run
        .command(&[
            "run",
            "db-down",
            "handler-panic",
            "--seed",
            "7",
            "--report-dir",
            &dir,
            "--json",
            "--",
            "--protections",
            "all,-stale-cache",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json prints the report alone ({e}): {}", explain(&out)));
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.reports.path().join("report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report, written, "--json prints what report.json holds");
    assert_eq!(report["scenarios"][0]["verdict"], "fail");
    assert_eq!(report["scenarios"][1]["verdict"], "pass");
    let page = run.reports.path().join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html is written with report.json");
    // Per-second buckets, not every request, in both: the page and the journal stay small.
    let json_len = std::fs::metadata(run.reports.path().join("report.json"))
        .unwrap()
        .len();
    assert!(
        html.len() < 1_000_000 && json_len < 500_000,
        "report.html is {} bytes, report.json {json_len}",
        html.len()
    );
    // The journal keeps the errors whole and counts every request in its summary.
    for s in report["scenarios"].as_array().unwrap() {
        let digest = &s["request_digest"];
        let counted: u64 = digest["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["count"].as_u64().unwrap())
            .sum();
        assert!(counted > 100, "{counted} requests summarised");
        assert_eq!(Some(counted), digest["total"].as_u64());
        let kept = s["recording"]["requests"].as_array().unwrap();
        assert!(kept.iter().all(|r| match r["outcome"]["type"].as_str() {
            Some("response") => r["outcome"]["status"].as_u64().unwrap() >= 400,
            _ => true,
        }));
    }
    let failing = report["scenarios"][0]["recording"]["requests"]
        .as_array()
        .unwrap();
    assert!(
        !failing.is_empty(),
        "the failing run's errors are kept whole"
    );

    let (out, netlog) = headless(&page, &["--dump-dom"]);
    let dom = dom(&out);
    // The summary table links to both scenarios.
    assert!(dom.contains("href=\"#s0-db-down\""), "no summary link");
    assert!(
        dom.contains("href=\"#s1-handler-panic\""),
        "no summary link"
    );
    // A timeline per scenario, each with its fault window, axes and the readiness band.
    for id in ["s0-db-down", "s1-handler-panic"] {
        let svg = dom
            .split(&format!("id=\"timeline-{id}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no timeline for {id} in the DOM"));
        let svg = &svg[..svg.find("</svg>").expect("the svg is closed")];
        assert!(
            svg.contains("class=\"fault-window\""),
            "{id}: no fault window"
        );
        assert!(svg.contains("requests/s") && svg.contains("p99 latency"));
        assert!(
            svg.contains("class=\"band readyz\""),
            "{id}: no readiness band"
        );
        assert!(
            svg.contains("class=\"marker inject\""),
            "{id}: no inject marker"
        );
    }
    // The failing check, with its evidence: the request, the response headers and body, and the
    // log line with the same request id.
    let failing = dom
        .split("class=\"check fail\" data-check=\"status[fault]\"")
        .nth(1)
        .expect("the failing status[fault] check is on the page");
    let failing = &failing[..failing.find("class=\"check ").unwrap_or(failing.len())];
    assert!(
        failing.contains("is not allowed for GET /products"),
        "{failing}"
    );
    assert!(failing.contains("&lt; 503"), "the response status is shown");
    assert!(
        failing.contains("&lt; x-request-id: "),
        "response headers are shown"
    );
    assert!(failing.contains("application/problem+json"));
    assert!(failing.contains("log lines with request id"), "{failing}");
    assert!(failing.contains("request failed"), "the log line is shown");
    // How it shows up: the learner text next to what was captured.
    assert!(dom.contains("How it shows up") && dom.contains("captured in this run"));
    // The seed and the command that reproduces the run.
    assert!(dom.contains("<code id=\"seed\">7</code>"));
    assert!(dom.contains("fivehundred run db-down handler-panic --seed 7"));

    let requested = page_requests(&netlog);
    assert!(
        requested.is_empty(),
        "the page requested {requested:?}; it must load nothing"
    );

    // A screenshot renders too (a page Chromium could not lay out gives no image).
    let shot = tempfile::tempdir().unwrap();
    let png = shot.path().join("report.png");
    headless(&page, &[&format!("--screenshot={}", png.display())]);
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000);

    // The policy holds even if something in the page tried to fetch: a copy with an image
    // pointing away loads nothing.
    let tampered = shot.path().join("tampered.html");
    std::fs::write(
        &tampered,
        html.replace(
            "</body>",
            "<img src=\"http://127.0.0.1:9/leak.png\"><link rel=\"stylesheet\" href=\"http://127.0.0.1:9/x.css\"></body>",
        ),
    )
    .unwrap();
    let (_, netlog) = headless(&tampered, &["--dump-dom"]);
    let requested = page_requests(&netlog);
    assert!(requested.is_empty(), "the CSP let through {requested:?}");
}

/// The control for the test above: the net log check does see a page's requests.
#[test]
fn the_network_check_sees_a_page_that_fetches_something() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("leaky.html");
    std::fs::write(
        &page,
        "<!doctype html><title>x</title><img src=\"http://127.0.0.1:9/leak.png\">",
    )
    .unwrap();
    let (_, netlog) = headless(&page, &["--dump-dom"]);
    assert_eq!(page_requests(&netlog), vec!["http://127.0.0.1:9/leak.png"]);
}

#[test]
fn list_json_is_the_catalogue_as_json() {
    let run = Run::new();
    let out = run.command(&["list", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let db_down = list
        .iter()
        .find(|s| s["name"] == "db-down")
        .expect("db-down is in the catalogue");
    assert_eq!(db_down["cause"], "database down");
    assert_eq!(db_down["protection"], "stale-cache");
    assert!(db_down["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn explain_no_run_prints_the_learner_text_and_runs_nothing() {
    let run = Run::new();
    let started = Instant::now();
    let out = run
        .command(&["explain", "db-down", "--no-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it ran something"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for part in [
        "db-down",
        "cause of HTTP 500: database down",
        "What happens",
        "What the client sees",
        "What the logs say",
        "Which metric moves",
        "Which alert fires",
        "How to diagnose it",
    ] {
        assert!(stdout.contains(part), "{part} missing:\n{stdout}");
    }
    assert!(
        !stdout.contains('\x1b'),
        "no colour codes when not a terminal"
    );
    assert!(!stdout.contains("The two runs"));
}

#[test]
fn explain_db_down_compares_both_runs_and_ends_with_the_diagnosis_steps() {
    let run = Run::new();
    let dir = run.reports.path().to_str().unwrap().to_string();
    let out = run
        .command(&["explain", "db-down", "--seed", "1", "--report-dir", &dir])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let runs = stdout
        .split("The two runs")
        .nth(1)
        .unwrap_or_else(|| panic!("no comparison:\n{stdout}"));
    // Both runs, protected first, each with the client's view, log, metric, alert, readiness.
    let on = runs
        .find("protections on (--protections all)")
        .expect(&stdout);
    let off = runs
        .find("stale-cache off (--protections all,-stale-cache)")
        .expect(&stdout);
    assert!(on < off);
    for aspect in ["verdict", "client", "log", "metric", "alert", "readiness"] {
        assert_eq!(
            runs.lines()
                .filter(|l| l.starts_with(&format!("{aspect:10}")))
                .count(),
            2,
            "{aspect} once per run:\n{runs}"
        );
    }
    assert!(runs.contains("PASS"), "the protected run passes:\n{runs}");
    assert!(
        runs.contains("status[fault]"),
        "the unprotected run fails on status:\n{runs}"
    );
    assert!(!stdout.contains("note: expected"), "{stdout}");
    // The diagnosis steps come last, each pointing at this run's evidence.
    let steps = stdout
        .split("Diagnosing it")
        .nth(1)
        .unwrap_or_else(|| panic!("no diagnosis:\n{stdout}"));
    let mut at = 0;
    for step in [
        "reproduce",
        "read logs",
        "correlate metrics",
        "check dependencies",
        "configuration and permissions",
        "roll back",
        "verify",
    ] {
        let pos = steps[at..]
            .find(step)
            .unwrap_or_else(|| panic!("step {step} missing or out of order:\n{steps}"));
        at += pos;
    }
    assert!(steps.matches("this run:").count() >= 7, "{steps}");
    assert!(steps.contains("fivehundred run db-down --seed 1 -- --protections all,-stale-cache"));
    assert!(
        steps.contains("request failed"),
        "the log step quotes the log line"
    );
    assert!(
        steps.contains("/readyz failed"),
        "the dependency step cites readiness"
    );
    // Each run's reports are where the steps say.
    for sub in ["protected", "unprotected"] {
        let d = run.reports.path().join(sub);
        assert!(d.join("report.json").exists() && d.join("report.html").exists());
    }
    assert!(steps.contains(&format!("{dir}/unprotected/report.json")));
}
