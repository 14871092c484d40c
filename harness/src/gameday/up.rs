//! `fivehundred lab up`: starts a lab that stays up (database, proxies, target, monitoring, load),
//! serves the control API and the dashboard, enforces fault deadlines and abort conditions, and
//! when it stops (Ctrl-C, SIGTERM, `lab down`) reverts everything, tears the lab down and writes
//! the record: report.json, report.html, postmortem.md, gameday.json.
//!
//! Every fault is reverted on every way out: at its deadline (a clock task), by a halt or an
//! abort, when the lab stops, and if the clock task itself panics (the lab then stops). A lab
//! killed outright leaves its journal for `fivehundred recover`, like a killed run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::abort::AbortCondition;
use super::api::{Access, open_url, router};
use super::client::LabFile;
use super::control::{GameDay, Settings};
use super::params::parse_for;
use super::postmortem;
use super::session::Sessions;
use crate::checks::{self, CheckResult};
use crate::exit::{EXIT_LAB, EXIT_OK, EXIT_USAGE};
use crate::journal::{Journal, Resource};
use crate::lab::{Lab, LabOptions};
use crate::load::MixEntry;
use crate::record::{Phase, Recorder, Recording};
use crate::report::{RunReport, ScenarioReport};
use crate::scenario::{
    AlertExpectations, Expectations, Learn, LoadSpec, Phases, Scenario, ScheduledFault,
};
use crate::target::{TargetNeeds, TargetSpec, locate_target_app};

/// The load when no scenario gives one: modest, so a laptop and a small CI runner keep up.
pub const DEFAULT_RATE: f64 = 10.0;

/// `fivehundred lab up` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LabUpArgs {
    /// A scenario (catalogue name or file) whose load the lab sends and whose checks the record
    /// evaluates.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Requests per second, open loop [default: the scenario's, else 10]; 0 for no load.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Halt (revert every fault, stop the load) by itself when this holds: `error-rate>5%`,
    /// `p99>2s`, `alert=DatabaseUnavailable`; rates over the last 10s, or `error-rate[30s]>5%`.
    /// Repeatable.
    #[arg(long = "abort-if", value_name = "CONDITION")]
    pub abort_if: Vec<AbortCondition>,
    /// Serve the dashboard and control API here. Every request needs the lab's token (in the lab
    /// file) or the dashboard's session (from a one-time link: `fivehundred lab open`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// How long an injected fault stays before the lab reverts it by itself, unless `inject
    /// --for` says otherwise.
    #[arg(long, default_value = "5m", value_parser = parse_for)]
    pub default_for: Duration,
    /// Where the record goes when the lab stops [default: ./gameday-<timestamp>/].
    #[arg(long)]
    pub record_dir: Option<PathBuf>,
    /// Seed for the load [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use an existing PostgreSQL server instead of an ephemeral cluster.
    #[arg(long, env = "FIVEHUNDRED_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The target binary [default: target-app, built if needed].
    #[arg(long, env = "FIVEHUNDRED_TARGET_BIN")]
    pub target_bin: Option<PathBuf>,
    /// Directory of scenario files, for --scenario and named faults [default: ./scenarios, else
    /// the built-in catalogue].
    #[arg(long)]
    pub scenarios_dir: Option<PathBuf>,
    /// Start the target so that this named fault can be injected (some faults need the target
    /// started a certain way: its data directory on a tmpfs, as an unprivileged user, with a
    /// config file). `all`: every named fault this machine supports. Repeatable; the
    /// scenario's faults are always prepared.
    #[arg(long, value_name = "NAMED_FAULT")]
    pub prepare: Vec<String>,
    /// Arguments appended to the target's command line, e.g. `-- --protections all,-stale-cache`.
    #[arg(last = true)]
    pub target_args: Vec<String>,
}

/// The mix when no scenario gives one: target-app's routes, reads and writes.
fn default_mix() -> Vec<MixEntry> {
    vec![
        MixEntry::new(5, "GET /products/{id}"),
        MixEntry::new(2, "GET /products"),
        MixEntry::new(3, "POST /orders"),
    ]
}

/// Runs `lab up` until it is stopped; returns the exit code: 0, 1 when a check of the record
/// failed, 2 bad usage, 3 the lab could not be set up or a fault could not be reverted.
pub async fn lab_up(args: LabUpArgs) -> i32 {
    let catalogue = args
        .scenarios_dir
        .clone()
        .unwrap_or_else(crate::run::default_catalogue);
    let scenario = match &args.scenario {
        None => None,
        Some(spec) => match crate::scenario::resolve(spec, &catalogue)
            .and_then(|p| crate::scenario::load(&p).map_err(|e| e.to_string()))
        {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
    };
    let rate = args
        .rate
        .unwrap_or_else(|| scenario.as_ref().map_or(DEFAULT_RATE, |s| s.load.rate));
    if !(rate.is_finite() && (0.0..=10_000.0).contains(&rate)) {
        eprintln!("error: --rate {rate} is not between 0 and 10000 requests per second");
        return EXIT_USAGE;
    }
    if let Some(other) = LabFile::read() {
        if other.alive() {
            eprintln!(
                "error: a lab is already up (pid {}, dashboard {}); stop it with `fivehundred lab down`, or give this one another FIVEHUNDRED_STATE_DIR",
                other.pid, other.dashboard_url
            );
            return EXIT_LAB;
        }
        let _ = std::fs::remove_file(super::client::lab_file_path());
    }
    let recovered = match crate::journal::recover().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_LAB;
        }
    };
    for r in recovered {
        eprintln!(
            "recovered what an earlier run left behind ({}): {}",
            r.journal.display(),
            r.actions.join("; ")
        );
    }
    let program =
        match tokio::task::block_in_place(|| locate_target_app(args.target_bin.as_deref())) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_LAB;
            }
        };
    // Bound before anything starts: a bad --listen fails at once.
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return EXIT_USAGE;
        }
    };
    let started_wall = chrono::Utc::now();
    let record_dir = match record_dir(args.record_dir.as_deref(), started_wall) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let needs = match prepare(&args.prepare, scenario.as_ref(), &catalogue, &program) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_LAB;
        }
    };
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    let opts = LabOptions {
        service: None,
        target: TargetSpec {
            program,
            extra_args: args.target_args.clone(),
        },
        database_url: args.database_url.clone(),
        backend: crate::lab::Backend::Process,
        seed,
    };
    let journal = match Journal::create("game day") {
        Ok(j) => j,
        Err(e) => {
            let _ = std::fs::remove_dir(&record_dir);
            eprintln!(
                "error: cannot write the fault journal in {}: {e}",
                crate::journal::state_dir().display()
            );
            return EXIT_LAB;
        }
    };
    let run_dir = match tempfile::Builder::new()
        .prefix("fivehundred-gameday-")
        .tempdir()
    {
        Ok(d) => d.keep(),
        Err(e) => {
            eprintln!("error: cannot create a run directory: {e}");
            let _ = std::fs::remove_dir(&record_dir);
            journal.finish();
            return EXIT_LAB;
        }
    };
    journal.resource(Resource::Dir {
        path: run_dir.clone(),
    });
    eprintln!("starting the lab (seed {seed})…");
    let recorder = Arc::new(Recorder::new(Instant::now()));
    let lab =
        match Lab::start_with(&opts, &needs, run_dir.clone(), &journal, recorder.clone()).await {
            Ok(lab) => lab,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run_dir);
                // Only if still empty: a directory someone named may hold other things.
                let _ = std::fs::remove_dir(&record_dir);
                journal.finish();
                eprintln!("error: the lab could not be set up: {e}");
                return EXIT_LAB;
            }
        };
    let (mix, load_timeout) = match &scenario {
        Some(s) => (s.load.mix.clone(), s.load.timeout),
        None => (default_mix(), Duration::from_secs(5)),
    };
    let settings = Settings {
        default_for: args.default_for,
        aborts: args.abort_if.clone(),
        catalogue,
        scenario,
        rate,
        mix,
        load_timeout,
        seed,
        needs,
    };
    let gd = Arc::new(GameDay::new(lab, journal, settings, started_wall));
    let up = serve(&gd, listener, &record_dir).await;
    let (info, first_link, server, server_stop) = match up {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            // Nothing was injected or recorded worth keeping: no record.
            gd.begin_stopping("the control API could not start").await;
            gd.drain_load(Duration::from_secs(1)).await;
            take_down(gd).await;
            let _ = std::fs::remove_dir(&record_dir);
            return EXIT_LAB;
        }
    };
    if let Err(e) = gd.start_load(rate) {
        eprintln!("error: the load could not start: {e}");
    }
    let stop_sampling = CancellationToken::new();
    let samplers = crate::run::start_samplers(&gd.lab, stop_sampling.clone());
    print_banner(&gd, &info, &first_link, &args);

    let clock_stop = CancellationToken::new();
    let mut clock = tokio::spawn(run_clock(gd.clone(), clock_stop.clone()));
    let reason = tokio::select! {
        r = signal() => r,
        _ = gd.stop.cancelled() => "stopped through the control API".to_string(),
        r = &mut clock => match r {
            Err(e) if e.is_panic() => "the lab's clock failed (a bug); stopping so that no fault outlives its deadline".to_string(),
            _ => "the lab's clock stopped".to_string(),
        },
    };
    eprintln!("\nstopping ({reason}): reverting every fault, then writing the record…");
    // Everything is reverted before anything else is taken down.
    let halt = gd.begin_stopping(&reason).await;
    clock_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut clock).await;
    gd.drain_load(gd.settings.load_timeout + Duration::from_secs(2))
        .await;
    stop_sampling.cancel();
    for s in samplers {
        let _ = s.await;
    }
    server_stop.cancel();
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        tracing::warn!("the control API did not stop within 5s");
    }
    LabFile::remove_ours();
    if !halt.failed.is_empty() {
        eprintln!("could not revert: {}", halt.failed.join("; "));
    }
    teardown(gd, &reason, &record_dir, &args).await
}

/// What the target must be started with so that the prepared faults (and the scenario's) can be
/// injected later: none of it can change on a running process. Named faults whose needs this
/// machine cannot meet are an error when asked for by name, and left out of `all`.
fn prepare(
    names: &[String],
    scenario: Option<&Scenario>,
    catalogue: &Path,
    program: &Path,
) -> Result<TargetNeeds, String> {
    let mut needs = TargetNeeds::default();
    let mut add =
        |what: &str, fault: &crate::faults::Fault, required: bool| match fault.preflight(program) {
            Ok(n) => {
                needs = std::mem::take(&mut needs).merge(n);
                Ok(())
            }
            Err(why) if required => Err(format!("{what} needs {why}")),
            Err(_) => Ok(()),
        };
    if let Some(s) = scenario {
        for f in &s.faults {
            add(&format!("the scenario {}", s.name), &f.fault, true)?;
        }
    }
    for name in names {
        if name == "all" {
            for (n, _, faults) in super::params::catalogue(catalogue) {
                for f in &faults {
                    add(&n, f, false)?;
                }
            }
            continue;
        }
        let faults = super::params::named_faults(name, catalogue).map_err(|e| e.to_string())?;
        for nf in &faults {
            add(name, &nf.fault, true)?;
        }
    }
    Ok(needs)
}

/// `./gameday-<timestamp>` unless given; made now, so a bad path fails before the lab starts.
fn record_dir(given: Option<&Path>, at: chrono::DateTime<chrono::Utc>) -> Result<PathBuf, String> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from(format!(
            "gameday-{}",
            at.with_timezone(&chrono::Local).format("%Y%m%d-%H%M%S")
        )),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the record directory {}: {e}", dir.display()))?;
    std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// What [`serve`] hands back: the lab file, the first one-time dashboard link, the server's task
/// and what stops it.
type Served = (
    LabFile,
    String,
    tokio::task::JoinHandle<()>,
    CancellationToken,
);

/// Writes the lab file and serves the control API until `stop` is cancelled.
async fn serve(
    gd: &Arc<GameDay>,
    listener: tokio::net::TcpListener,
    record_dir: &Path,
) -> Result<Served, String> {
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the control address: {e}"))?;
    // Any local user or process can reach a loopback port too: a token is required always, made
    // here and kept in the lab file (readable by its owner), which the commands read it from.
    let token = Sessions::new_token();
    // Commands on this machine reach the lab on loopback even when it listens everywhere.
    let local = if bound.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
    } else {
        bound
    };
    let control_url = format!("http://{local}");
    // No secret in this address: the browser gets in through a one-time link (see `print_banner`).
    let dashboard_url = format!("{control_url}/");
    let (prometheus_url, alertmanager_url) = gd.lab.monitoring_urls().unwrap_or_default();
    let pid = std::process::id();
    let info = LabFile {
        pid,
        start_time: crate::journal::process_start_time(pid),
        control_url,
        token: Some(token.clone()),
        dashboard_url,
        target_url: gd.lab.base_url.clone(),
        prometheus_url,
        alertmanager_url,
        record_dir: record_dir.to_path_buf(),
        started_at: gd
            .started_wall
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    info.write().map_err(|e| {
        format!(
            "cannot write {}: {e}",
            super::client::lab_file_path().display()
        )
    })?;
    let sessions = Sessions::new(token);
    let first_link = open_url(&info.control_url, &sessions.mint());
    let access = Access {
        sessions,
        loopback: bound.ip().is_loopback(),
    };
    let app = router(gd.clone(), info.clone(), access);
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!("the control API stopped: {e}");
        }
    });
    Ok((info, first_link, server, stop))
}

fn print_banner(gd: &GameDay, info: &LabFile, first_link: &str, args: &LabUpArgs) {
    let s = &gd.settings;
    println!("fivehundred lab is up (seed {})", s.seed);
    println!("  dashboard     {first_link}   (opens once; `fivehundred lab open` prints another)");
    if !args.listen.ip().is_loopback() {
        println!(
            "  listening on  {} (port {})",
            args.listen.ip(),
            info.control_url.rsplit(':').next().unwrap_or("?")
        );
    }
    println!(
        "  token         in {} (the commands read it there; scripts send Authorization: Bearer TOKEN)",
        super::client::lab_file_path().display()
    );
    println!("  target        {}", info.target_url);
    println!("  prometheus    {}", info.prometheus_url);
    println!("  alertmanager  {}", info.alertmanager_url);
    println!(
        "  load          {}",
        if s.rate > 0.0 {
            format!("{} requests/s, open loop", s.rate)
        } else {
            "none (--rate 0)".into()
        }
    );
    if let Some(sc) = &s.scenario {
        println!(
            "  scenario      {} (its checks are evaluated on the record)",
            sc.name
        );
    }
    println!(
        "  deadlines     every fault reverts by itself after {} unless `inject --for` says otherwise",
        humantime::format_duration(s.default_for)
    );
    if !s.aborts.is_empty() {
        println!(
            "  abort if      {}",
            s.aborts
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    println!(
        "  record        {} (written when the lab stops)",
        info.record_dir.display()
    );
    println!(
        "From another terminal: `fivehundred inject db-down --for 30s`, `fivehundred status`, `fivehundred halt`."
    );
    println!("Ctrl-C stops the lab: every fault is reverted, then the record is written.");
}

/// Deadlines every 250 ms; alerts, the live view and abort conditions every second.
async fn run_clock(gd: Arc<GameDay>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        gd.expire().await;
        n += 1;
        if n == 4 {
            n = 0;
            gd.refresh();
            gd.check_aborts().await;
        }
    }
}

/// Waits for Ctrl-C or SIGTERM; says which.
async fn signal() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM".into(),
            _ = int.recv() => "Ctrl-C".into(),
        },
        // Without signal handlers the lab still stops through `lab down`.
        _ => std::future::pending().await,
    }
}

/// The phases of a game day, for the checks: steady until the first injection, fault until the
/// last revert, recovery after it. Without an injection it is all steady state.
fn phases(windows: &[super::control::FaultWindow], end_ms: f64) -> Vec<(Phase, f64, f64)> {
    let first = windows.iter().map(|w| w.injected_at_ms).reduce(f64::min);
    let last = windows
        .iter()
        .map(|w| w.reverted_at_ms.unwrap_or(end_ms))
        .reduce(f64::max);
    match (first, last) {
        (Some(a), Some(b)) => vec![
            (Phase::Steady, 0.0, a),
            (Phase::Fault, a, b),
            (Phase::Recovery, b, end_ms.max(b)),
        ],
        _ => vec![(Phase::Steady, 0.0, end_ms)],
    }
}

/// The scenario the report is about: `--scenario` with the game day's real timing and faults, or
/// a plain "game day" one.
fn effective_scenario(
    gd: &GameDay,
    windows: &[super::control::FaultWindow],
    bounds: &[(Phase, f64, f64)],
) -> Scenario {
    let d = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1000.0);
    let get = |p: Phase| {
        bounds
            .iter()
            .find(|(q, _, _)| *q == p)
            .map(|(_, a, b)| d(b - a))
            .unwrap_or_default()
    };
    let fault_start = bounds
        .iter()
        .find(|(p, _, _)| *p == Phase::Fault)
        .map(|(_, a, _)| *a)
        .unwrap_or(0.0);
    let faults = windows
        .iter()
        .filter_map(|w| {
            Some(ScheduledFault {
                fault: w.spec.clone()?,
                start: d(w.injected_at_ms - fault_start),
                duration: d(w.reverted_at_ms.unwrap_or(w.injected_at_ms) - w.injected_at_ms),
            })
        })
        .collect();
    let phases = Phases {
        steady: get(Phase::Steady),
        fault: get(Phase::Fault),
        recovery: get(Phase::Recovery),
    };
    let s = &gd.settings;
    match &s.scenario {
        Some(sc) => Scenario {
            phases,
            faults,
            ..sc.clone()
        },
        None => Scenario {
            name: "game-day".into(),
            title: format!(
                "Game day of {}",
                gd.started_wall
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
            ),
            cause: "faults injected by hand".into(),
            protection: None,
            learn: Learn::default(),
            load: LoadSpec {
                rate: s.rate,
                mix: s.mix.clone(),
                timeout: s.load_timeout,
            },
            phases,
            faults,
            expect: Expectations::default(),
            alerts: AlertExpectations::default(),
            contract: Default::default(),
            file: PathBuf::from("(game day)"),
        },
    }
}

/// Without a scenario: the contract every target keeps whatever is broken (DESIGN.md's
/// defaults), per phase. Status codes, latency and alerts have no expectation to check.
fn contract_checks(rec: &Recording) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        if !rec.phases.contains_key(&phase) {
            continue;
        }
        let reqs: Vec<_> = rec.requests_in(phase).collect();
        out.push(checks::problem_json(rec, phase, &reqs));
        out.push(checks::no_leaks(rec, phase, &reqs));
        out.push(checks::request_id(rec, phase, &reqs));
        out.push(checks::retry_after(rec, phase, &reqs));
    }
    out.push(checks::no_restart(rec));
    out
}

/// Tears the lab down and writes the record. Every fault is already reverted (or reported).
async fn teardown(gd: Arc<GameDay>, reason: &str, record_dir: &Path, args: &LabUpArgs) -> i32 {
    gd.refresh();
    let end_ms = gd.now_ms();
    let windows = gd.windows();
    let log = gd.log_entries();
    let unreverted = gd.unreverted();
    let bounds = phases(&windows, end_ms);
    gd.lab.recorder.with(|r| {
        r.phases.clear();
        for (p, a, b) in &bounds {
            r.phases.insert(*p, (*a, *b));
        }
    });
    let scenario = effective_scenario(&gd, &windows, &bounds);
    let recording = gd.lab.recorder.snapshot();
    let mut checks = match &gd.settings.scenario {
        Some(_) => {
            let mut c = checks::evaluate(&scenario, &recording);
            // Read from the database before the lab goes.
            c.push(checks::data_integrity(&gd.lab.database_url, &scenario, &recording).await);
            c
        }
        None => contract_checks(&recording),
    };
    if windows.is_empty() {
        checks.retain(|c| c.phase.is_none_or(|p| p == Phase::Steady));
    }

    let seed = gd.settings.seed;
    let started_at = gd
        .started_wall
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = gd.started_wall;
    let recorder = gd.lab.recorder.clone();
    let clean = take_down(gd).await && unreverted.is_empty();
    // Read again: the lab's last events (the target stopped by the lab) are on the timeline.
    let recording = recorder.snapshot();

    let duration_s = end_ms / 1000.0;
    let note = Some(format!(
        "game day: {} fault(s) injected by hand; stopped by {reason}",
        windows.len()
    ));
    let report = RunReport {
        tool: format!("fivehundred {}", env!("CARGO_PKG_VERSION")),
        seed,
        command: reproduce(args),
        started_at: started_at.clone(),
        strict: false,
        scenarios: vec![ScenarioReport::from_checks(
            &scenario,
            checks.clone(),
            recording.clone(),
            duration_s,
            note,
        )],
    };
    let mut code = report.exit_code();
    let written = crate::artifacts::write(&report, record_dir, crate::digest::KeepRequests::Errors)
        .and_then(|()| {
            let md = postmortem::render(&postmortem::Input {
                started,
                ended_ms: end_ms,
                scenario: args.scenario.as_deref(),
                target: target_line(args),
                rate: scenario.load.rate,
                seed: report.seed,
                windows: &windows,
                log: &log,
                recording: &recording,
                checks: &checks,
                unreverted: &unreverted,
            });
            std::fs::write(record_dir.join("postmortem.md"), md)?;
            let gameday = serde_json::json!({
                "started_at": started_at,
                "stopped": reason,
                "faults": windows,
                "log": log,
                "abort_if": args.abort_if.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            });
            std::fs::write(
                record_dir.join("gameday.json"),
                serde_json::to_vec_pretty(&gameday).map_err(std::io::Error::other)?,
            )
        });
    match written {
        Ok(()) => {
            println!("record: {}", record_dir.display());
            for f in [
                "postmortem.md",
                "report.html",
                "report.json",
                "gameday.json",
            ] {
                println!("  {}", record_dir.join(f).display());
            }
        }
        Err(e) => {
            eprintln!(
                "error: cannot write the record to {}: {e}",
                record_dir.display()
            );
            code = EXIT_LAB;
        }
    }
    if !clean {
        eprintln!(
            "error: not everything could be reverted ({}); run `fivehundred recover`",
            if unreverted.is_empty() {
                "the lab could not be taken down".into()
            } else {
                unreverted.join(", ")
            }
        );
        return EXIT_LAB;
    }
    if code == EXIT_OK { EXIT_OK } else { code }
}

/// Stops the lab's processes and removes its files once nothing else holds the game day (the
/// API's last handler may still be finishing). False if the lab could not be taken down here:
/// its processes still end with this one, and `recover` removes the rest.
async fn take_down(gd: Arc<GameDay>) -> bool {
    let mut gd = gd;
    let deadline = Instant::now() + Duration::from_secs(10);
    let owned = loop {
        match Arc::try_unwrap(gd) {
            Ok(owned) => break owned,
            Err(shared) if Instant::now() < deadline => {
                gd = shared;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                eprintln!("warning: the lab is still held by a task and cannot be taken down here");
                return false;
            }
        }
    };
    let unreverted = owned.unreverted();
    let (mut lab, journal) = owned.into_parts();
    let run_dir = lab.run_dir.clone();
    lab.stop().await;
    drop(lab);
    let _ = std::fs::remove_dir_all(&run_dir);
    // A fault that could not be reverted keeps the journal, for `fivehundred recover`.
    if unreverted.is_empty() {
        journal.finish();
    }
    true
}

fn target_line(args: &LabUpArgs) -> String {
    let mut s = args
        .target_bin
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "target-app".into());
    for a in &args.target_args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn reproduce(args: &LabUpArgs) -> String {
    let mut parts = vec!["fivehundred lab up".to_string()];
    if let Some(s) = &args.scenario {
        parts.push(format!("--scenario {s}"));
    }
    if let Some(r) = args.rate {
        parts.push(format!("--rate {r}"));
    }
    for a in &args.abort_if {
        parts.push(format!("--abort-if '{a}'"));
    }
    if let Some(s) = args.seed {
        parts.push(format!("--seed {s}"));
    }
    if !args.target_args.is_empty() {
        parts.push("--".into());
        parts.extend(args.target_args.iter().cloned());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gameday::control::{FaultWindow, Who};

    fn window(id: u64, from: f64, to: Option<f64>) -> FaultWindow {
        FaultWindow {
            id,
            fault: "x".into(),
            name: None,
            injected_at_ms: from,
            injected_by: Who::Cli,
            deadline_ms: from + 1000.0,
            reverted_at_ms: to,
            reverted_by: None,
            how: None,
            spec: None,
        }
    }

    #[test]
    fn phases_run_from_the_first_injection_to_the_last_revert() {
        let p = phases(
            &[
                window(1, 5000.0, Some(8000.0)),
                window(2, 6000.0, Some(12_000.0)),
            ],
            20_000.0,
        );
        assert_eq!(
            p,
            vec![
                (Phase::Steady, 0.0, 5000.0),
                (Phase::Fault, 5000.0, 12_000.0),
                (Phase::Recovery, 12_000.0, 20_000.0)
            ]
        );
        assert_eq!(phases(&[], 9000.0), vec![(Phase::Steady, 0.0, 9000.0)]);
    }
}
