//! `fivehundred lab up`: starts a lab that stays up (database, proxies, target, monitoring, load),
//! serves the control API and the dashboard, enforces fault deadlines and abort conditions, and
//! when it stops (Ctrl-C, SIGTERM, `lab down`) reverts everything, tears the lab down and writes
//! the record: report.json, report.html, postmortem.md, gameday.json.
//!
//! Every fault is reverted on every way out: at its deadline (a clock task), by a halt or an
//! abort, when the lab stops, and if the clock task itself panics (the lab then stops). A lab
//! killed outright leaves its journal for `fivehundred recover`, like a killed run.
//!
//! - `args`: the options, and the command line that starts the same lab again.
//! - `serve`: the lab file, the control API and dashboard, the banner.
//! - `record`: the phases, checks and files written when the lab stops.
//! - `takedown`: the lab's teardown, on every way out.
//! - this file: the lab's life, from the checks before it starts to the record.

mod args;
mod record;
mod serve;
mod takedown;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use args::LabUpArgs;

use super::client::LabFile;
use super::control::{GameDay, Settings};
use super::params::Catalogue;
use crate::exit::{EXIT_LAB, EXIT_USAGE};
use crate::journal::{Journal, Resource};
use crate::lab::dismantle;
use crate::lab::{Lab, LabOptions};
use crate::record::Recorder;
use crate::scenario::Scenario;
use crate::target::TargetNeeds;
use record::teardown;
use serve::{print_banner, serve};
use takedown::take_down;

/// The load when no scenario gives one: modest, so a laptop and a small CI runner keep up.
pub const DEFAULT_RATE: f64 = 10.0;

/// Runs `lab up` until it is stopped; returns the exit code: 0, 1 when a check of the record
/// failed, 2 bad usage, 3 the lab could not be set up or a fault could not be reverted.
pub async fn lab_up(args: LabUpArgs) -> i32 {
    let plan = match plan(&args).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (gd, listener, record_dir) = match start(&args, plan).await {
        Ok(started) => started,
        Err(code) => return code,
    };
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
    if let Err(e) = gd.start_load(gd.settings.rate) {
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

/// What `lab up` settles before it starts anything, each a reason to refuse at once: the
/// service (a lab file, or target-app's) and where named faults come from, the scenario and the
/// load's rate, no other lab up, the control address (bound), the record directory (made), what
/// the target must be started with, the seed.
struct Plan {
    catalogue: Catalogue,
    scenario: Option<Scenario>,
    rate: f64,
    opts: LabOptions,
    listener: tokio::net::TcpListener,
    started_wall: chrono::DateTime<chrono::Utc>,
    record_dir: PathBuf,
    needs: TargetNeeds,
}

/// Checks the options and the machine, and cleans up what a killed earlier run left behind.
/// The error is the exit code, its message printed.
async fn plan(args: &LabUpArgs) -> Result<Plan, i32> {
    let service = args.lab.load_lab_file()?;
    let catalogue = match &service {
        Some(lab) => Catalogue::Lab(lab.clone()),
        None => Catalogue::Dir(
            args.lab
                .scenarios_dir
                .clone()
                .unwrap_or_else(crate::run::default_catalogue),
        ),
    };
    let scenario = match &args.scenario {
        None => None,
        Some(spec) => Some(
            args.lab
                .scenarios(service.as_deref(), std::slice::from_ref(spec))?
                .remove(0),
        ),
    };
    let rate = args
        .rate
        .unwrap_or_else(|| scenario.as_ref().map_or(DEFAULT_RATE, |s| s.load.rate));
    if !(rate.is_finite() && (0.0..=10_000.0).contains(&rate)) {
        eprintln!("error: --rate {rate} is not between 0 and 10000 requests per second");
        return Err(EXIT_USAGE);
    }
    if let Some(other) = LabFile::read() {
        if other.alive() {
            eprintln!(
                "error: a lab is already up (pid {}, dashboard {}); stop it with `fivehundred lab down`, or give this one another FIVEHUNDRED_STATE_DIR",
                other.pid, other.dashboard_url
            );
            return Err(EXIT_LAB);
        }
        let _ = std::fs::remove_file(super::client::lab_file_path());
    }
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    // Recovers what a killed earlier run left, and finds target-app when no lab file is given.
    let opts = args
        .lab
        .options(service, args.target_args.clone(), seed)
        .await?;
    // Bound before anything starts: a bad --listen fails at once.
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return Err(EXIT_USAGE);
        }
    };
    let started_wall = chrono::Utc::now();
    let record_dir = match record_dir(args.record_dir.as_deref(), started_wall) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_USAGE);
        }
    };
    let needs = match prepare(
        &args.prepare,
        scenario.as_ref(),
        &catalogue,
        &opts.lab_file.program(),
    ) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_LAB);
        }
    };
    Ok(Plan {
        catalogue,
        scenario,
        rate,
        opts,
        listener,
        started_wall,
        record_dir,
        needs,
    })
}

/// Starts the lab the plan describes, journalled like a run, and the game day around it: the
/// game day, the bound control address, the record directory. On an error the lab's remains
/// are gone and the message printed.
async fn start(
    args: &LabUpArgs,
    plan: Plan,
) -> Result<(Arc<GameDay>, tokio::net::TcpListener, PathBuf), i32> {
    let Plan {
        catalogue,
        scenario,
        rate,
        opts,
        listener,
        started_wall,
        record_dir,
        needs,
    } = plan;
    let seed = opts.seed;
    let journal = match Journal::create("game day") {
        Ok(j) => j,
        Err(e) => {
            let _ = std::fs::remove_dir(&record_dir);
            eprintln!(
                "error: cannot write the fault journal in {}: {e}",
                crate::statedir::state_dir().display()
            );
            return Err(EXIT_LAB);
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
            return Err(EXIT_LAB);
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
                dismantle(None, &run_dir, journal, true).await;
                // Only if still empty: a directory someone named may hold other things.
                let _ = std::fs::remove_dir(&record_dir);
                eprintln!("error: the lab could not be set up: {e}");
                return Err(EXIT_LAB);
            }
        };
    let (mix, load_timeout) = match &scenario {
        Some(s) => (s.load.mix.clone(), s.load.timeout),
        // The requests of the lab's service, as its lab file describes them.
        None => (opts.lab_file.requests.clone(), Duration::from_secs(5)),
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
    for (name, handle) in gd.lab.proxy_handles() {
        gd.toxiproxy.register(&name, handle).await;
    }
    gd.watch_toxics();
    Ok((gd, listener, record_dir))
}

/// What the target must be started with so that the prepared faults (and the scenario's) can be
/// injected later: none of it can change on a running process. Named faults whose needs this
/// machine cannot meet are an error when asked for by name, and left out of `all`.
fn prepare(
    names: &[String],
    scenario: Option<&Scenario>,
    catalogue: &Catalogue,
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
