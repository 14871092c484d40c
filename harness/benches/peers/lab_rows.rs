//! Lab rows: how long a lab takes to start, what target-app's protections cost, and how fast an
//! alert reaches the harness.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fivehundred::install;
use fivehundred::journal::Journal;
use fivehundred::lab::{Lab, LabOptions};
use fivehundred::monitoring::{AlertStatus, Monitoring, MonitoringOptions};
use fivehundred::record::Recorder;

use crate::table::{Better, Row};
use crate::tools::{self, workspace};

pub async fn rows(reps: usize, breakdown: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    match target_app() {
        Ok(program) => {
            rows.extend(labs(reps, &program, breakdown).await);
            rows.extend(crate::container_rows::rows(reps, &program).await);
        }
        Err(e) => {
            for row in [
                "lab start",
                "cost of protections",
                "lab start in containers",
            ] {
                rows.push(
                    Row::new(row, "", "", Better::Lower, "")
                        .note(format!("target-app not built: {e}")),
                );
            }
        }
    }
    rows.push(time_to_detect(reps).await);
    rows
}

/// Builds target-app in release mode (cargo bench builds only this package) and returns it.
pub fn target_app() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "target-app",
            "--bin",
            "target-app",
        ])
        .current_dir(workspace())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build -p target-app failed ({status})"));
    }
    // The bench runs from target/release/deps; target-app lands in target/release.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no profile directory")?;
    let program = release.join("target-app");
    if program.is_file() {
        Ok(program)
    } else {
        Err(format!("no {}", program.display()))
    }
}

/// Starts a lab the way `fivehundred run` does; returns it and how long it took to be ready.
async fn start_lab(
    program: &Path,
    protections: &str,
    journal: &Journal,
    dir: &Path,
) -> Result<(Lab, Duration), String> {
    let opts = LabOptions {
        lab_file: Arc::new(fivehundred::labfile::target_app().with_program(program)?),
        extra_args: vec!["--protections".into(), protections.into()],
        database_url: None,
        backend: Default::default(),
        seed: 1,
    };
    let run_dir = tempfile::Builder::new()
        .prefix("lab-")
        .tempdir_in(dir)
        .map_err(|e| e.to_string())?
        .keep();
    let recorder = Arc::new(Recorder::new(std::time::Instant::now()));
    let started = Instant::now();
    let lab = Lab::start(&opts, run_dir, journal, recorder)
        .await
        .map_err(|e| e.to_string())?;
    Ok((lab, started.elapsed()))
}

/// Catalogue reads at the highest rate wrk reaches with a few connections (below target-app's
/// concurrency limit, so load shedding does not answer instead of the service).
fn read_throughput(base_url: &str, script: &Path) -> Result<f64, String> {
    let url = format!("{base_url}/products/1");
    let w = tools::wrk(
        &["-t2", "-c8", "-d3s", "-s", &script.display().to_string()],
        &url,
    )?;
    if w.non_2xx > 0 || w.errors > 0 {
        return Err(format!(
            "{} answers outside 2xx and {} socket errors",
            w.non_2xx, w.errors
        ));
    }
    Ok(w.rate)
}

async fn labs(reps: usize, program: &Path, breakdown: bool) -> Vec<Row> {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            return vec![Row::new("lab start", "", "s", Better::Lower, "").note(e.to_string())];
        }
    };
    let script = dir.path().join("reads.lua");
    let _ = std::fs::write(
        &script,
        "math.randomseed(1)\nrequest = function()\n  return wrk.format(\"GET\", \"/products/\" .. math.random(1, 20))\nend\n",
    );
    let journal = match Journal::create("cargo bench: lab rows") {
        Ok(j) => j,
        Err(e) => {
            return vec![Row::new("lab start", "", "s", Better::Lower, "").note(e.to_string())];
        }
    };
    let wrk = tools::available(install::WRK);
    let (mut starts, mut all, mut none) = (vec![], vec![], vec![]);
    let mut overheads = Vec::new();
    let mut problems = Vec::new();
    for _ in 0..reps {
        for protections in ["all", "none"] {
            match start_lab(program, protections, &journal, dir.path()).await {
                Ok((mut lab, took)) => {
                    starts.push(took.as_secs_f64());
                    if let Some(own) = lab.service_ready_after() {
                        overheads.push((took.saturating_sub(own)).as_secs_f64());
                    }
                    if wrk.is_ok() {
                        let (base, s) = (lab.base_url.clone(), script.clone());
                        let r = tokio::task::spawn_blocking(move || read_throughput(&base, &s))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r);
                        let into = if protections == "all" {
                            &mut all
                        } else {
                            &mut none
                        };
                        into.push(r.unwrap_or_else(|e| {
                            problems.push(format!("protections {protections}: {e}"));
                            f64::NAN
                        }));
                    }
                    lab.stop().await;
                    let _ = std::fs::remove_dir_all(&lab.run_dir);
                }
                Err(e) => problems.push(format!("lab with protections {protections}: {e}")),
            }
        }
    }
    // One protection at a time (`--protections X`), against none: which one costs.
    let mut only = Vec::new();
    if breakdown && wrk.is_ok() {
        let names = fivehundred::labfile::target_app()
            .service
            .protections
            .as_ref()
            .map(|p| p.names.as_slice())
            .unwrap_or_default();
        for protection in names {
            match start_lab(program, protection, &journal, dir.path()).await {
                Ok((mut lab, _)) => {
                    let (base, s) = (lab.base_url.clone(), script.clone());
                    let r = tokio::task::spawn_blocking(move || read_throughput(&base, &s))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r);
                    only.push((protection.as_str(), r));
                    lab.stop().await;
                    let _ = std::fs::remove_dir_all(&lab.run_dir);
                }
                Err(e) => only.push((protection.as_str(), Err(e))),
            }
        }
    }
    journal.finish();
    let start_row = {
        let r = Row::new(
            "lab start",
            "ephemeral PostgreSQL + proxies + target-app + Prometheus + Alertmanager, ready",
            "s",
            Better::Lower,
            "under 3 s",
        )
        .ours(&starts);
        let met = r.ours.as_ref().map(|s| s.median < 3.0);
        Row { met, ..r }.note(problems.join("; "))
    };
    let protections_row = match &wrk {
        Ok(()) => {
            let r = Row::new(
                "cost of protections",
                "target-app catalogue reads/s, protections all (ours) vs none (peer); wrk -t2 -c8",
                "req/s",
                Better::Higher,
                "≥ 0.85",
            )
            .ours(&all)
            .peer("target-app --protections none", &none);
            let met = r.ratio.map(|x| x >= 0.85);
            Row { met, ..r }
        }
        Err(e) => Row::new("cost of protections", "", "req/s", Better::Higher, "≥ 0.85")
            .missing_peer("wrk", e),
    };
    // What the lab adds to the service's own start: target-app is started from its lab file
    // like any service, so this is a lab-file service's overhead.
    let overhead_row = {
        let r = Row::new(
            "lab start overhead",
            "lab start minus the service's own spawn-to-ready time (target-app from its lab file)",
            "s",
            Better::Lower,
            "within 1 s",
        )
        .ours(&overheads);
        let met = r.ours.as_ref().map(|s| s.median <= 1.0);
        Row { met, ..r }
    };
    let mut rows = vec![start_row, overhead_row, protections_row];
    for (protection, r) in only {
        let row = Row::new(
            "cost of protections",
            &format!("catalogue reads/s with only `{protection}` on, vs none"),
            "req/s",
            Better::Higher,
            "report",
        );
        rows.push(match r {
            Ok(v) => {
                // One sample against each of the `none` samples' median.
                let none_median = crate::table::Stat::of(&none).map_or(f64::NAN, |s| s.median);
                row.ours(&[v])
                    .peer("target-app --protections none", &[none_median])
            }
            Err(e) => row.note(e),
        });
    }
    rows
}

/// An alert's notification delay, measured on the lab's real Prometheus and Alertmanager with a
/// rule that fires the moment its series turns 1 (no `for`, no window): what is left is the
/// pipeline itself. Its floor is one scrape interval (the change must be scraped), one
/// evaluation interval (then evaluated) and Alertmanager's group wait.
async fn time_to_detect(reps: usize) -> Row {
    let row = |note: String| {
        Row::new(
            "time to detect",
            "alert notification delay / (scrape + evaluation + group wait)",
            "×",
            Better::Lower,
            "≤ 1.5",
        )
        .note(note)
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return row(e.to_string()),
    };
    let flags: Arc<Vec<AtomicBool>> = Arc::new((0..reps).map(|_| AtomicBool::new(false)).collect());
    let addr = match metrics_server(Arc::clone(&flags)).await {
        Ok(a) => a,
        Err(e) => return row(format!("no metrics endpoint: {e}")),
    };
    let mut rules = String::from("groups:\n  - name: bench\n    rules:\n");
    for i in 0..reps {
        rules.push_str(&format!(
            "      - alert: BenchFault{i}\n        expr: bench_fault{{rep=\"{i}\"}} > 0\n        labels:\n          severity: page\n"
        ));
    }
    let rules_file = dir.path().join("rules.yml");
    if let Err(e) = std::fs::write(&rules_file, rules) {
        return row(e.to_string());
    }
    let run_start = std::time::Instant::now();
    let opts = MonitoringOptions::new(dir.path(), addr.to_string(), &rules_file, run_start);
    let floor = opts.scrape_interval + opts.evaluation_interval + opts.group_wait;
    let monitoring = match Monitoring::start(opts).await {
        Ok(m) => m,
        Err(e) => return row(format!("monitoring did not start: {e}")),
    };
    // A few scrapes first, so every series exists (at 0) before it changes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut ratios = Vec::new();
    let mut delays = Vec::new();
    for (i, flag) in flags.iter().enumerate() {
        let at_ms = run_start.elapsed().as_secs_f64() * 1000.0;
        flag.store(true, Ordering::Relaxed);
        let alert = format!("BenchFault{i}");
        match monitoring
            .wait_for(&alert, AlertStatus::Firing, at_ms, Duration::from_secs(30))
            .await
        {
            Some(n) => {
                let delay = (n.at_ms - at_ms) / 1000.0;
                delays.push(format!("{delay:.2}"));
                ratios.push(delay / floor.as_secs_f64());
            }
            None => delays.push("none within 30 s".into()),
        }
    }
    tokio::task::block_in_place(|| drop(monitoring.stop()));
    let r = Row::new(
        "time to detect",
        "alert notification delay / (scrape + evaluation + group wait)",
        "×",
        Better::Lower,
        "≤ 1.5",
    )
    .ours(&ratios);
    let met = r.ours.as_ref().map(|s| s.median <= 1.5);
    Row { met, ..r }.note(format!(
        "floor {} s (1 s scrape, 1 s evaluation, 1 s group wait); delays {} s",
        floor.as_secs_f64(),
        delays.join(", ")
    ))
}

/// `/metrics` with one `bench_fault{rep="i"}` series per repetition, 0 until its flag is set.
async fn metrics_server(flags: Arc<Vec<AtomicBool>>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let flags = Arc::clone(&flags);
            async move {
                let mut text = String::from("# TYPE bench_fault gauge\n");
                for (i, f) in flags.iter().enumerate() {
                    let v = u8::from(f.load(Ordering::Relaxed));
                    text.push_str(&format!("bench_fault{{rep=\"{i}\"}} {v}\n"));
                }
                text
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
