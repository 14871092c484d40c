//! `cargo bench -p fivehundred`: the harness measured side by side with the tools people would
//! otherwise use (haproxy, socat and fault next to the proxy; wrk, hey and oha next to the load
//! generator), on this machine, in the same run, as ratios.
//!
//! Prints one Markdown table and writes it as JSON to `target/bench/peers.json`. Every figure is
//! the median of several repetitions, with the minimum and maximum; a peer that cannot be
//! installed (Debian's packages, `tools.rs`; crates.io, `crates.rs`) says "not measured" and why
//! in its rows, which have no figure for it. Everything runs on loopback. There are no timed assertions:
//! a goal that is missed shows as "no" in the table, it does not fail the run.
//!
//! Arguments (after `cargo bench -p fivehundred --bench peers --`):
//! - `--reps N`: repetitions per figure (default 5);
//! - `--only GROUP[,GROUP]`: some of the groups `proxy`, `load`, `recording`, `lab` and `suite` (the whole
//!   catalogue with its defaults, with its protections off, and one lab at a time, about ten
//!   minutes on 2 cores); all of them by default;
//! - `--protections-breakdown`: also measure target-app with one protection on at a time.
//!
//! The bench runs itself as helper processes: `--serve-http` (the HTTP server every load
//! generator is measured against) and `--record N ADDR [RATE]` (the recording-cost measurement).
//! `--probe RATE SECONDS [MAX_IN_FLIGHT]` runs the load generator once against that server and prints what it
//! saw: for looking into a figure by hand (and under `valgrind --tool=callgrind`).

mod container_rows;
mod crates;
mod fault;
mod lab_rows;
mod load_rows;
mod oha;
mod phases;
mod proxy_rows;
mod server;
mod suite_rows;
mod table;
mod tools;

use std::path::PathBuf;
use std::time::Instant;

use table::Row;

struct Args {
    reps: usize,
    /// The groups to run; all of them when empty.
    only: Vec<String>,
    breakdown: bool,
}

const GROUPS: [&str; 5] = ["proxy", "load", "recording", "lab", "suite"];

fn args() -> Args {
    let mut a = Args {
        reps: 5,
        only: Vec::new(),
        breakdown: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--reps" => a.reps = it.next().and_then(|n| n.parse().ok()).unwrap_or(a.reps),
            "--only" => {
                let groups = it.next().unwrap_or_default();
                for g in groups.split(',').filter(|g| !g.is_empty()) {
                    if !GROUPS.contains(&g) {
                        eprintln!(
                            "bench: --only {g}: no such group (one of {})",
                            GROUPS.join(", ")
                        );
                        std::process::exit(2);
                    }
                    a.only.push(g.to_string());
                }
            }
            "--protections-breakdown" => a.breakdown = true,
            // `cargo bench` passes `--bench`; filters and other flags are not ours.
            _ => {}
        }
    }
    a.reps = a.reps.max(1);
    a
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.iter().any(|a| a == server::FLAG) {
        return server::main();
    }
    if let Some(i) = argv.iter().position(|a| a == load_rows::RECORD_FLAG) {
        let n = argv
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        let addr = argv.get(i + 2).cloned().unwrap_or_default();
        let rate = argv
            .get(i + 3)
            .and_then(|r| r.parse().ok())
            .unwrap_or(40_000.0);
        return load_rows::record_main(n, &addr, rate);
    }
    if let Some(i) = argv.iter().position(|a| a == load_rows::PROBE_FLAG) {
        let rate = argv
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000.0);
        let secs = argv.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(2.0);
        let cap = argv.get(i + 3).and_then(|n| n.parse().ok());
        return load_rows::probe_main(rate, secs, cap);
    }
    let args = args();
    // Two workers, like the harness on a small CI runner, and like each peer is run.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    let wants = |group: &str| args.only.is_empty() || args.only.iter().any(|o| o == group);
    let mut rows: Vec<Row> = Vec::new();
    rt.block_on(async {
        if wants("proxy") {
            eprintln!("bench: proxy rows…");
            rows.extend(proxy_rows::rows(args.reps, dir.path()).await);
        }
        if wants("load") {
            eprintln!("bench: load generator rows…");
            rows.extend(load_rows::rows(args.reps).await);
        }
        if wants("recording") {
            eprintln!("bench: recording cost rows…");
            rows.extend(load_rows::recording_rows().await);
        }
        if wants("lab") {
            eprintln!("bench: lab rows…");
            rows.extend(lab_rows::rows(args.reps.min(3), args.breakdown).await);
        }
    });
    if wants("suite") {
        // Child processes only: no runtime needed.
        eprintln!("bench: suite rows…");
        rows.extend(suite_rows::rows());
    }
    let table = table::markdown(&rows);
    let machine = machine();
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    println!(
        "\nfivehundred benchmarks, {date}, {machine}, {} repetitions, {:.0} s\n",
        args.reps,
        started.elapsed().as_secs_f64()
    );
    println!("{table}");
    let out = output_path();
    let json = serde_json::json!({
        "date": date,
        "machine": machine,
        "repetitions": args.reps,
        "seconds": started.elapsed().as_secs_f64(),
        "rows": rows,
    });
    let written = std::fs::create_dir_all(out.parent().expect("a parent"))
        .and_then(|()| std::fs::write(&out, serde_json::to_string_pretty(&json).expect("json")));
    match written {
        Ok(()) => println!("written to {}", out.display()),
        Err(e) => eprintln!("cannot write {}: {e}", out.display()),
    }
    // Leave the runtime's blocking threads (peers' output readers) behind without waiting.
    rt.shutdown_background();
}

/// `target/bench/peers.json`, next to the bench binary's profile directory.
fn output_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // target/release/deps/peers-<hash>
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("bench").join("peers.json")
}

/// CPU model, cores, kernel and OS, for the table's heading.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {os}, Linux {kernel}")
}
