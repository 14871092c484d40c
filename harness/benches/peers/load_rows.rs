//! Load generator rows: the highest rate it sustains, its accuracy at a fixed rate, and what its
//! records cost, against the same fast local HTTP server as wrk and hey.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fivehundred::install;
use fivehundred::load::{self, LoadPlan, LoadSummary, MixEntry};
use fivehundred::record::{Recorder, RequestRecord};
use tokio_util::sync::CancellationToken;

use crate::server;
use crate::table::{Better, Row};
use crate::tools;

/// Seconds per wrk or hey run, and per step of our rate search.
const PEER_SECONDS: u64 = 3;
const STEP: Duration = Duration::from_secs(2);
/// The steps of our rate search, as fractions of wrk's rate in the same repetition.
const STEPS: &[f64] = &[0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, 1.1];
const LOW_STEPS: &[f64] = &[0.3, 0.15, 0.05];
/// A step is sustained when every request goes out on schedule and is answered 2xx, with the
/// 99th percentile latency (from the due time) under this: no backlog builds up. Not lower: on
/// this shared machine any process can lose the CPU for tens of milliseconds (wrk's own maximum
/// latencies show it), and an open loop then has a backlog to clear.
const SUSTAINED_P99_MS: f64 = 50.0;

pub async fn rows(reps: usize) -> Vec<Row> {
    let (_server, addr) = match server::spawn() {
        Ok(s) => s,
        Err(e) => {
            return vec![
                Row::new(
                    "load generator rate",
                    "requests/s",
                    "req/s",
                    Better::Higher,
                    "",
                )
                .note(format!("no HTTP server: {e}")),
            ];
        }
    };
    let url = format!("http://{addr}/products/7");
    let mut rows = rate(reps, &url).await;
    // The open-loop peer's search starts from our top rate.
    let reference = rows
        .first()
        .and_then(|r| r.ours.as_ref())
        .map(|s| s.median)
        .filter(|r| *r > 0.0)
        .unwrap_or(10_000.0);
    rows.extend(accuracy(reps, addr).await);
    rows.extend(
        crate::oha::rows(reps, &format!("http://{addr}"), reference, SUSTAINED_P99_MS).await,
    );
    rows
}

/// The recording-cost rows, against a server of their own.
pub async fn recording_rows() -> Vec<Row> {
    match server::spawn() {
        Ok((_server, addr)) => recording(addr).await,
        Err(e) => vec![
            Row::new("recording cost", "", "", Better::Lower, "")
                .note(format!("no HTTP server: {e}")),
        ],
    }
}

fn read_plan(base: &str, rate: f64, duration: Duration) -> LoadPlan {
    let mut plan = LoadPlan::new(base, rate, vec![MixEntry::new(1, "GET /products/7")]);
    plan.duration = Some(duration);
    plan.timeout = Duration::from_secs(2);
    plan
}

/// Whether a run kept its schedule and every answer was good and fast.
fn sustained(s: &LoadSummary, rate: f64) -> bool {
    let ok = s.statuses.get(&200).copied().unwrap_or(0);
    s.outcome.achieved_rate >= 0.99 * rate
        && ok == s.outcome.progress.sent
        && s.p99_ms <= SUSTAINED_P99_MS
}

/// Our highest sustained rate, searched in steps around `reference` (wrk's rate), and the CPU
/// time per request the generator used at that rate (µs).
async fn our_max_rate(base: &str, reference: f64) -> (f64, String, f64) {
    let mut best: Option<(f64, LoadSummary, f64)> = None;
    let mut first_fail: Option<(f64, LoadSummary)> = None;
    for steps in [STEPS, LOW_STEPS] {
        for f in steps {
            let rate = (reference * f).round();
            let cpu_before = tools::own_cpu_seconds();
            let Ok(s) = load::run_summary(&read_plan(base, rate, STEP)).await else {
                continue;
            };
            let cpu =
                (tools::own_cpu_seconds() - cpu_before) / s.outcome.progress.sent.max(1) as f64;
            if sustained(&s, rate) {
                if best.as_ref().is_none_or(|(r, _, _)| rate > *r) {
                    best = Some((rate, s, cpu * 1e6));
                }
                if steps == STEPS {
                    continue;
                }
                break;
            }
            if first_fail.is_none() {
                first_fail = Some((rate, s));
            }
            if steps == STEPS {
                break;
            }
        }
        if best.is_some() {
            break;
        }
    }
    let detail = match &first_fail {
        Some((rate, s)) => format!(
            "first rate not sustained {rate:.0}/s: achieved {:.0}/s, p99 {:.1} ms, {} of {} answered 200",
            s.outcome.achieved_rate,
            s.p99_ms,
            s.statuses.get(&200).copied().unwrap_or(0),
            s.outcome.progress.sent
        ),
        None => String::new(),
    };
    match best {
        Some((rate, _, cpu)) => (rate, detail, cpu),
        None => (0.0, detail, f64::NAN),
    }
}

async fn rate(reps: usize, url: &str) -> Vec<Row> {
    let base = url.trim_end_matches("/products/7").to_string();
    let wrk_ok = tools::available(install::WRK);
    let hey_ok = tools::available(install::HEY);
    let (mut ours, mut wrk, mut hey) = (vec![], vec![], vec![]);
    let (mut our_cpu, mut wrk_cpu) = (vec![], vec![]);
    let mut details = Vec::new();
    for _ in 0..reps {
        let reference = match &wrk_ok {
            Ok(()) => {
                let u = url.to_string();
                let w = tokio::task::spawn_blocking(move || {
                    tools::wrk(&["-t2", "-c32", &format!("-d{PEER_SECONDS}s")], &u)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                match w {
                    Ok(w) => {
                        wrk.push(w.rate);
                        wrk_cpu.push(w.cpu_seconds / w.requests.max(1) as f64 * 1e6);
                        w.rate
                    }
                    Err(e) => {
                        details.push(e);
                        wrk.push(f64::NAN);
                        wrk_cpu.push(f64::NAN);
                        100_000.0
                    }
                }
            }
            Err(_) => 100_000.0,
        };
        if hey_ok.is_ok() {
            let u = url.to_string();
            let h = tokio::task::spawn_blocking(move || tools::hey(PEER_SECONDS, 50, &u))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            hey.push(h.unwrap_or_else(|e| {
                details.push(e);
                f64::NAN
            }));
        }
        let (rate, detail, cpu) = our_max_rate(&base, reference).await;
        ours.push(rate);
        our_cpu.push(cpu);
        if !detail.is_empty() {
            details.push(detail);
        }
    }
    let measure = "highest sustained rate, GET, one local server";
    let row = || Row::new("load generator rate", measure, "req/s", Better::Higher, "").ours(&ours);
    let how = format!(
        "ours: open loop, steps of wrk's rate, {}s each; sustained = achieved ≥ 99 % of the plan, all 200, p99 ≤ {SUSTAINED_P99_MS} ms from the due time",
        STEP.as_secs()
    );
    let wrk_row = match &wrk_ok {
        Ok(()) => {
            let r = row().peer("wrk (-t2 -c32, closed loop)", &wrk);
            let met = r.ratio.map(|x| x >= 0.8);
            Row {
                met,
                goal: "≥ 0.8 × wrk".into(),
                ..r
            }
            .note(how)
            .note(details.join("; "))
        }
        Err(e) => row().missing_peer("wrk", e),
    };
    let hey_row = match &hey_ok {
        Ok(()) => {
            let r = row().peer("hey (-c 50, closed loop)", &hey);
            let met = r.ratio.map(|x| x >= 1.0);
            Row {
                met,
                goal: "≥ hey".into(),
                ..r
            }
        }
        Err(e) => row().missing_peer("hey", e),
    };
    let cpu_row = Row::new(
        "load generator rate",
        "CPU time per request at its top rate (user + system)",
        "µs",
        Better::Lower,
        "report",
    )
    .ours(&our_cpu);
    let cpu_row = match &wrk_ok {
        Ok(()) => cpu_row.peer("wrk (-t2 -c32)", &wrk_cpu),
        Err(e) => cpu_row.missing_peer("wrk", e),
    };
    vec![wrk_row, hey_row, cpu_row]
}

/// wrk at a fixed rate: one connection with a 1 ms pause between requests (its Lua `delay`),
/// the closest Debian's wrk comes to wrk2's `-R`; then ours open loop at the rate wrk achieved.
async fn accuracy(reps: usize, addr: SocketAddr) -> Vec<Row> {
    let base = format!("http://{addr}");
    let url = format!("{base}/products/7");
    let wrk_ok = tools::available(install::WRK);
    let script = std::env::temp_dir().join(format!("fivehundred-bench-{}.lua", std::process::id()));
    let _ = std::fs::write(&script, "function delay()\n  return 1\nend\n");
    let (mut planned, mut achieved, mut lag_mean, mut lag_max) = (vec![], vec![], vec![], vec![]);
    let (mut p50, mut p99, mut wrk_p50, mut wrk_p99) = (vec![], vec![], vec![], vec![]);
    let (mut sent_p50, mut sent_p99) = (vec![], vec![]);
    // The same generator once more, just before wrk, at the previous repetition's rate: how far
    // two runs of one generator differ here, back to back.
    let mut before_p50 = vec![];
    let mut problems = Vec::new();
    for _ in 0..reps {
        let rate = planned.last().copied().unwrap_or(900.0);
        let plan = read_plan(&base, rate, Duration::from_secs(PEER_SECONDS));
        match load::run_summary(&plan).await {
            Ok(s) => before_p50.push(s.sent_p50_ms * 1000.0),
            Err(e) => problems.push(e.to_string()),
        }
        let wrk_result = match &wrk_ok {
            Ok(()) => {
                let (u, s) = (url.clone(), script.display().to_string());
                tokio::task::spawn_blocking(move || {
                    tools::wrk(&["-t1", "-c1", &format!("-d{PEER_SECONDS}s"), "-s", &s], &u)
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
            }
            Err(e) => Err(e.clone()),
        };
        let rate = match &wrk_result {
            Ok(w) => {
                wrk_p50.push(w.p50_ms * 1000.0);
                wrk_p99.push(w.p99_ms * 1000.0);
                w.rate.round()
            }
            Err(e) => {
                problems.push(e.clone());
                900.0
            }
        };
        let plan = read_plan(&base, rate, Duration::from_secs(PEER_SECONDS));
        match load::run_summary(&plan).await {
            Ok(s) => {
                planned.push(rate);
                achieved.push(s.outcome.achieved_rate);
                lag_mean.push(s.outcome.mean_send_lag.as_secs_f64() * 1e6);
                lag_max.push(s.outcome.max_send_lag.as_secs_f64() * 1e6);
                p50.push(s.p50_ms * 1000.0);
                p99.push(s.p99_ms * 1000.0);
                sent_p50.push(s.sent_p50_ms * 1000.0);
                sent_p99.push(s.sent_p99_ms * 1000.0);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let _ = std::fs::remove_file(&script);
    let row = |m: &str, unit: &str, better, goal: &str| {
        Row::new("load generator accuracy", m, unit, better, goal)
    };
    let rate_row = {
        let r = row(
            "achieved rate (planned = wrk's fixed-pause rate)",
            "req/s",
            Better::Higher,
            "within 1 % of the plan",
        )
        .ours(&achieved)
        .peer("the plan", &planned);
        let met = r.ratio.map(|x| (x - 1.0).abs() <= 0.01);
        Row { met, ..r }.note(problems.join("; "))
    };
    let lag_row = row(
        "send lag: mean (max in the next row)",
        "µs",
        Better::Lower,
        "report",
    )
    .ours(&lag_mean);
    let lag_max_row = row("send lag: max", "µs", Better::Lower, "report").ours(&lag_max);
    // wrk times each request from when it sent it; ours are timed from when they were due,
    // which adds the send lag above. Like is compared with like: from the send.
    let lat = |what: &str, ours: &[f64], peer: &[f64], goal: &str| {
        let r = row(
            &format!("latency {what} at that rate"),
            "µs",
            Better::Lower,
            goal,
        )
        .ours(ours);
        match &wrk_ok {
            Ok(()) => r.peer("wrk (-t1 -c1, 1 ms pause)", peer),
            Err(e) => r.missing_peer("wrk", e),
        }
    };
    let p50_row = {
        let r = lat(
            "p50, from the send (as wrk times)",
            &sent_p50,
            &wrk_p50,
            "within 10 % of wrk's",
        );
        let met = r.ratio.map(|x| x <= 1.10);
        Row { met, ..r }
    };
    let p99_row = lat("p99, from the send", &sent_p99, &wrk_p99, "report");
    let control_row = lat(
        "p50, from the send, a run just before wrk's",
        &before_p50,
        &wrk_p50,
        "report",
    );
    let due_p50_row = lat("p50, from the due time", &p50, &wrk_p50, "report");
    let due_p99_row = lat("p99, from the due time", &p99, &wrk_p99, "report");
    vec![
        rate_row,
        lag_row,
        lag_max_row,
        p50_row,
        p99_row,
        control_row,
        due_p50_row,
        due_p99_row,
    ]
}

pub const RECORD_FLAG: &str = "--record";
pub const PROBE_FLAG: &str = "--probe";

/// `--probe RATE SECONDS`: one run of the generator against the bench's server, printed whole.
pub fn probe_main(rate: f64, seconds: f64, max_in_flight: Option<u64>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (_server, addr) = server::spawn().expect("the HTTP server");
    let mut plan = read_plan(
        &format!("http://{addr}"),
        rate,
        Duration::from_secs_f64(seconds),
    );
    if let Some(cap) = max_in_flight {
        plan.max_in_flight = cap;
    }
    let started = std::time::Instant::now();
    let cpu_before = cpu_seconds();
    let summary = rt.block_on(load::run_summary(&plan)).expect("a valid plan");
    let (user, sys) = cpu_seconds();
    let n = summary.outcome.progress.sent.max(1) as f64;
    println!(
        "{}\nwall {:.2} s, sustained: {}, CPU per request: {:.2} µs user + {:.2} µs system",
        serde_json::to_string_pretty(&summary).expect("json"),
        started.elapsed().as_secs_f64(),
        sustained(&summary, rate),
        (user - cpu_before.0) / n * 1e6,
        (sys - cpu_before.1) / n * 1e6,
    );
}

/// Peak memory of records, measured in a process of its own (the bench runs itself with
/// `--record N ADDR`) so that nothing else the bench did counts.
async fn recording(addr: SocketAddr) -> Vec<Row> {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return vec![Row::new("recording cost", "", "", Better::Lower, "").note(e.to_string())];
        }
    };
    let mut per_100k = Vec::new();
    let mut notes = Vec::new();
    for n in [100_000u64, 300_000] {
        let out = Command::new(&exe)
            .args([RECORD_FLAG, &n.to_string(), &addr.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output();
        let parsed = out.map_err(|e| e.to_string()).and_then(|o| {
            serde_json::from_slice::<serde_json::Value>(&o.stdout).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(v) => {
                let grown = v["peak_kib"].as_f64().unwrap_or(0.0)
                    - v["baseline_kib"].as_f64().unwrap_or(0.0);
                let mib = grown / 1024.0 * 100_000.0 / n as f64;
                per_100k.push(mib);
                notes.push(format!(
                    "{n} records: {:.0} MiB peak growth, {:.0} bytes per record (sent at {:.0}/s)",
                    grown / 1024.0,
                    grown * 1024.0 / n as f64,
                    v["achieved_rate"].as_f64().unwrap_or(0.0)
                ));
            }
            Err(e) => notes.push(format!("{n} records: {e}")),
        }
    }
    let flat = match per_100k.as_slice() {
        [a, b] => Some(b / a <= 1.25),
        _ => None,
    };
    let mut small = Row::new(
        "recording cost",
        "peak memory per 100,000 records, run of 100,000",
        "MiB",
        Better::Lower,
        "≤ 19.1 MiB (200 bytes a request)",
    )
    .ours(&per_100k[..per_100k.len().min(1)]);
    small.met = small
        .ours
        .as_ref()
        .map(|s| s.median * 1024.0 * 1024.0 / 100_000.0 <= 200.0);
    small.note = notes.join("; ");
    let large = Row::new(
        "recording cost",
        "peak memory per 100,000 records, run of 300,000",
        "MiB",
        Better::Lower,
        "flat: ≤ 1.25 × the 100,000 run's",
    )
    .ours(per_100k.get(1).map(std::slice::from_ref).unwrap_or(&[]));
    let large = Row { met: flat, ..large };
    vec![small, large]
}

/// The `--record` child: sends `n` requests (target-app's mix: product reads and orders) and
/// keeps every record in a [`Recorder`], as a scenario run does; prints its peak memory.
pub fn record_main(n: u64, addr: &str, rate: f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let baseline = peak_kib();
    let recorder = Arc::new(Recorder::new(std::time::Instant::now()));
    // As target-app's lab file describes them: products by id, orders with a JSON body and an
    // idempotency key.
    let mut product = MixEntry::new(8, "GET /products/{id}");
    product
        .params
        .insert("id".into(), fivehundred::load::Param::Uniform([1, 20]));
    let mut order = MixEntry::new(2, "POST /orders");
    order.params.insert(
        "product_id".into(),
        fivehundred::load::Param::Uniform([1, 20]),
    );
    order.body = Some(r#"{"product_id": {product_id}, "quantity": 1}"#.into());
    order.idempotency_key = Some(true);
    let mut plan = LoadPlan::new(format!("http://{addr}"), rate, vec![product, order]);
    plan.requests = Some(n);
    let rec = Arc::clone(&recorder);
    let sink = move |r: RequestRecord| rec.with(|recording| recording.requests.push(r));
    let outcome = rt
        .block_on(load::run(
            &plan,
            recorder.start,
            sink,
            CancellationToken::new(),
        ))
        .expect("a valid plan");
    let (kept, errors) = recorder.with(|r| {
        let errors = r.requests.iter().filter(|q| q.outcome.is_error()).count();
        (r.requests.len(), errors)
    });
    println!(
        "{}",
        serde_json::json!({
            "records": kept,
            "errors": errors,
            "baseline_kib": baseline,
            "peak_kib": peak_kib(),
            "achieved_rate": outcome.achieved_rate,
        })
    );
}

/// This process's CPU time so far: (user, system) seconds.
fn cpu_seconds() -> (f64, f64) {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or((f64::NAN, f64::NAN), |u| {
        let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        (s(u.user_time()), s(u.system_time()))
    })
}

/// The process's peak resident memory so far (`VmHWM`), in KiB.
fn peak_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}
