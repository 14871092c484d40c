//! Game days: a lab that stays up, faults injected and reverted by hand (from the command line or
//! the dashboard), each with a deadline after which the lab reverts it by itself, a kill switch,
//! abort conditions, a live dashboard, and a written record when the lab stops.
//!
//! # Layout
//!
//! - [`up`]: `fivehundred lab up`: the lab's life, from start to the record.
//! - [`control`]: what is done to the lab (inject, revert, halt, deadlines, aborts) and the log
//!   of who did it; journalled like a scenario run.
//! - [`api`]: the control API and the dashboard page (`dashboard.html`), served by axum.
//! - [`live`]: the live view the dashboard draws, read incrementally from the recording.
//! - [`abort`]: `--abort-if` conditions.
//! - [`params`]: faults as typed at a game day (`network target=database fault=down`, `db-down`).
//! - [`client`]: the lab file other terminals find the lab by, and the API client.
//! - [`session`]: who may drive the lab: the token, one-time dashboard links, the page's cookie.
//! - [`postmortem`]: `postmortem.md`, filled from the recording.
//! - this file: the commands that talk to a running lab: `inject`, `revert`, `halt`, `status`,
//!   `lab down`, `lab open`.

pub mod abort;
pub mod api;
pub mod client;
pub mod control;
pub mod live;
pub mod params;
pub mod postmortem;
pub mod session;
pub mod up;

use std::time::Duration;

use serde_json::{Value, json};

use crate::exit::{EXIT_LAB, EXIT_OK, EXIT_USAGE};
use client::{Client, ClientError};
use params::{FaultRequest, parse_for};
pub use up::LabUpArgs;

/// `fivehundred lab ...`
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Start a lab that stays up until Ctrl-C: database, proxies, target, monitoring, load, and
    /// a dashboard; faults are then injected by hand (`inject`, or the dashboard).
    Up(Box<LabUpArgs>),
    /// Stop the running lab: every fault is reverted, then the record is written.
    Down,
    /// Print a new one-time link to the running lab's dashboard (it sets a session cookie in the
    /// browser that opens it, and works once).
    Open,
}

/// `fivehundred inject FAULT [KEY=VALUE...] [--for DURATION]`
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// A fault kind (`network`, `failpoint`, ...) with its parameters, or a named fault from the
    /// scenario catalogue (`db-down` injects what scenarios/db-down.toml injects).
    pub fault: String,
    /// The fault's parameters, as in a scenario file: `target=database fault=down`. With a named
    /// fault they adjust it: `db-latency latency=3s`.
    pub params: Vec<String>,
    /// Revert it after this long [default: the lab's, 5m unless `lab up --default-for`].
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_for)]
    pub for_: Option<Duration>,
    /// Print the lab's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fivehundred revert [FAULT [KEY=VALUE...] | ID | --all]`
#[derive(Debug, clap::Args)]
pub struct RevertArgs {
    /// An active fault's number (`3` or `#3`), or a fault as given to `inject`.
    #[arg(required_unless_present = "all")]
    pub fault: Option<String>,
    pub params: Vec<String>,
    /// Revert every active fault (the load keeps running; `halt` stops it too).
    #[arg(long, conflicts_with = "fault")]
    pub all: bool,
}

/// `fivehundred status [--json]`
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the lab's whole status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Maps a failure to talk to the lab to a message and an exit code: 3 when there is no lab or
/// it could not act, 2 when the request itself was wrong.
fn fail(e: ClientError) -> i32 {
    eprintln!("error: {e}");
    match e {
        ClientError::Refused { status, .. } if (400..500).contains(&status) && status != 422 => {
            EXIT_USAGE
        }
        _ => EXIT_LAB,
    }
}

fn connect() -> Result<Client, i32> {
    Client::connect().map_err(fail)
}

pub async fn lab(cmd: LabCommand) -> i32 {
    match cmd {
        LabCommand::Up(args) => up::lab_up(*args).await,
        LabCommand::Down => down().await,
        LabCommand::Open => open().await,
    }
}

async fn open() -> i32 {
    let client = match connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.post("/api/link", json!({})).await {
        Ok(v) => {
            println!("{}", v["url"].as_str().unwrap_or_default());
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

async fn down() -> i32 {
    let client = match connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = client.post("/api/stop", json!({})).await {
        return fail(e);
    }
    eprintln!("the lab is stopping: reverting every fault, then writing the record…");
    // The lab removes its file once everything is reverted and its API has stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while client::LabFile::read().is_some_and(|f| f.pid == client.lab.pid && f.alive()) {
        if std::time::Instant::now() > deadline {
            eprintln!(
                "error: the lab (pid {}) has not stopped after 2 minutes",
                client.lab.pid
            );
            return EXIT_LAB;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "the lab stopped; its record: {}",
        client.lab.record_dir.display()
    );
    EXIT_OK
}

fn local_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

pub async fn inject(args: InjectArgs) -> i32 {
    let request = match FaultRequest::from_words(&args.fault, &args.params) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let client = match connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut body = serde_json::to_value(&request).unwrap_or(Value::Null);
    if let Some(d) = args.for_ {
        body["for"] = json!(humantime::format_duration(d).to_string());
    }
    match client.post("/api/inject", body).await {
        Ok(v) if args.json => {
            println!("{v}");
            EXIT_OK
        }
        Ok(v) => {
            for a in v["injected"].as_array().into_iter().flatten() {
                println!(
                    "injected #{} {}; reverts by itself at {} (in {})",
                    a["id"],
                    a["fault"].as_str().unwrap_or(""),
                    local_time(a["deadline_at"].as_str().unwrap_or("")),
                    humantime::format_duration(Duration::from_secs(
                        a["remaining_s"].as_f64().unwrap_or(0.0).round() as u64
                    ))
                );
            }
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

pub async fn revert(args: RevertArgs) -> i32 {
    let body = if args.all {
        json!({ "all": true })
    } else {
        let fault = args.fault.unwrap_or_default();
        match fault.trim_start_matches('#').parse::<u64>() {
            Ok(id) if args.params.is_empty() => json!({ "id": id }),
            _ => match FaultRequest::from_words(&fault, &args.params) {
                Ok(r) => serde_json::to_value(&r).unwrap_or(Value::Null),
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_USAGE;
                }
            },
        }
    };
    let client = match connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.post("/api/revert", body).await {
        Ok(v) => {
            let reverted: Vec<&str> = v["reverted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            if reverted.is_empty() {
                println!("no fault was active");
            }
            for r in reverted {
                println!("reverted {r}");
            }
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

pub async fn halt() -> i32 {
    let client = match connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.post("/api/halt", json!({})).await {
        Ok(v) => {
            let list = |k: &str| -> Vec<String> {
                v[k].as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            };
            let (reverted, failed) = (list("reverted"), list("failed"));
            println!(
                "halted: {}; {}",
                if reverted.is_empty() {
                    "no fault was active".to_string()
                } else {
                    format!("reverted {}", reverted.join(", "))
                },
                if v["load_stopped"].as_bool() == Some(true) {
                    "the load stopped"
                } else {
                    "no load was running"
                }
            );
            if !failed.is_empty() {
                eprintln!(
                    "error: could not revert {}; the lab keeps trying",
                    failed.join(", ")
                );
                return EXIT_LAB;
            }
            EXIT_OK
        }
        Err(e) => fail(e),
    }
}

pub async fn status(args: StatusArgs) -> i32 {
    let client = match connect() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let v = match client.get("/api/status").await {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if args.json {
        println!("{v}");
    } else {
        print!("{}", status_text(&v));
    }
    EXIT_OK
}

/// The status as a person reads it.
fn status_text(v: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let lab = &v["lab"];
    let _ = writeln!(
        s,
        "lab up since {} ({}), pid {}{}",
        local_time(lab["started_at"].as_str().unwrap_or("")),
        humantime::format_duration(Duration::from_secs(
            lab["uptime_s"].as_f64().unwrap_or(0.0) as u64
        )),
        lab["pid"],
        lab["scenario"]
            .as_str()
            .map(|n| format!(", scenario {n}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "dashboard {}   (`fivehundred lab open` prints a one-time link that lets a browser in)",
        lab["dashboard_url"].as_str().unwrap_or("")
    );
    let load = &v["load"];
    let _ = writeln!(
        s,
        "load: {}",
        if load["running"].as_bool() == Some(true) {
            format!("{} requests/s", load["rate"])
        } else if load["configured_rate"].as_f64() == Some(0.0) {
            "none (--rate 0)".into()
        } else {
            "stopped (the dashboard's Resume load starts it again)".into()
        }
    );
    let r = &v["recent"];
    let _ = writeln!(
        s,
        "last {:.0}s: {} requests, error rate {} (5xx or no answer), p99 {}{}",
        r["window_s"].as_f64().unwrap_or(0.0),
        r["requests"],
        r["error_rate"]
            .as_f64()
            .map(|e| format!("{:.1}%", e * 100.0))
            .unwrap_or_else(|| "–".into()),
        r["p99_ms"]
            .as_f64()
            .map(|p| if p >= 1000.0 {
                format!("{:.2}s", p / 1000.0)
            } else {
                format!("{p:.0}ms")
            })
            .unwrap_or_else(|| "–".into()),
        match v["ready"].as_bool() {
            Some(true) => ", ready",
            Some(false) => ", NOT READY",
            None => "",
        }
    );
    let active = v["active"].as_array().cloned().unwrap_or_default();
    if active.is_empty() {
        let _ = writeln!(s, "active faults: none");
    } else {
        let _ = writeln!(s, "active faults:");
        for a in &active {
            let _ = writeln!(
                s,
                "  #{:<3} {}  (by {}, since {}; reverts by itself at {}, in {}s){}",
                a["id"],
                a["fault"].as_str().unwrap_or(""),
                a["by"].as_str().unwrap_or(""),
                local_time(a["injected_at"].as_str().unwrap_or("")),
                local_time(a["deadline_at"].as_str().unwrap_or("")),
                a["remaining_s"].as_f64().unwrap_or(0.0).ceil(),
                a["revert_error"]
                    .as_str()
                    .map(|e| format!("\n       REVERT FAILED: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    let toxics = v["toxics"].as_array().cloned().unwrap_or_default();
    if !toxics.is_empty() {
        let _ = writeln!(s, "toxics added through the Toxiproxy API:");
        for t in &toxics {
            let _ = writeln!(
                s,
                "  #{:<3} {}  (since {}; until removed there or halted)",
                t["id"].as_u64().unwrap_or_default(),
                t["toxic"].as_str().unwrap_or(""),
                local_time(t["injected_at"].as_str().unwrap_or("")),
            );
        }
    }
    let firing: Vec<&str> = v["firing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    let _ = writeln!(
        s,
        "firing alerts: {}",
        if firing.is_empty() {
            "none".into()
        } else {
            firing.join(", ")
        }
    );
    let aborts: Vec<&str> = v["abort_if"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    if !aborts.is_empty() {
        let _ = writeln!(s, "abort if: {}", aborts.join(" or "));
    }
    if let Some(a) = v["aborted"].as_str() {
        let _ = writeln!(s, "ABORTED: {a}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_the_toxiproxy_api_s_toxics_beside_the_faults_only_when_there_are_some() {
        let mut v = json!({
            "lab": {"started_at": "2026-01-01T00:00:00Z", "uptime_s": 5, "pid": 1},
            "active": [],
            "toxics": [{"id": 3, "toxic": "toxic slow on database: latency downstream (jitter=0, latency=250)",
                        "injected_at": "2026-01-01T00:00:02Z"}],
        });
        let text = status_text(&v);
        assert!(text.contains("active faults: none"), "{text}");
        assert!(
            text.contains("toxics added through the Toxiproxy API:\n  #3   toxic slow on database: latency downstream (jitter=0, latency=250)  (since "),
            "{text}"
        );
        v["toxics"] = json!([]);
        assert!(!status_text(&v).contains("toxic"));
    }
}
