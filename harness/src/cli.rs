//! The command line: `run`, `list`, `validate`, `recover`. Parses, dispatches, and maps results
//! to exit codes (0 all checks passed, 1 a check failed, 2 bad usage or scenario, 3 the lab could
//! not be set up).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::lab::LabOptions;
use crate::report::RunReport;
use crate::run::{Progress, RunError, default_catalogue, run_scenario};
use crate::scenario::{self, Scenario};
use crate::target::{TargetSpec, locate_target_app};

pub const EXIT_OK: i32 = 0;
pub const EXIT_CHECK_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LAB: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "fivehundred",
    version,
    about = "Injects the real causes of HTTP 500 errors into a service and checks that its error handling, degradation and alerting respond correctly.",
    after_help = "Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or scenario file, 3 the lab could not be set up."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios (all of the catalogue when none is named) against the target.
    Run(RunArgs),
    /// List the scenarios in the catalogue, with the cause each reproduces.
    List {
        /// Directory of scenario files [default: ./scenarios, else the built-in catalogue].
        #[arg(long)]
        scenarios_dir: Option<PathBuf>,
    },
    /// Check scenario files without running anything.
    Validate {
        /// Scenario files (or catalogue names).
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Revert whatever a killed run left behind (faults, processes, databases, directories).
    Recover,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario names (from the catalogue) or paths to scenario files.
    pub scenarios: Vec<String>,
    /// Seed for every random choice (load sequence, fault draws). Printed in every report.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write report.json and junit.xml here.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Count a skipped scenario (a fault this machine cannot inject) as a failure.
    #[arg(long)]
    pub strict: bool,
    /// Use an existing PostgreSQL server (a fresh database is made per run and dropped after)
    /// instead of an ephemeral cluster.
    #[arg(long, env = "FIVEHUNDRED_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The target binary [default: target-app, built if needed].
    #[arg(long, env = "FIVEHUNDRED_TARGET_BIN")]
    pub target_bin: Option<PathBuf>,
    /// Directory of scenario files [default: ./scenarios, else the built-in catalogue].
    #[arg(long)]
    pub scenarios_dir: Option<PathBuf>,
    /// How many scenarios run at once, each in its own lab.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    /// Arguments appended to the target's command line, e.g. `-- --protections none`.
    #[arg(last = true)]
    pub target_args: Vec<String>,
}

/// Runs the command line; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::List { scenarios_dir } => list(scenarios_dir.unwrap_or_else(default_catalogue)),
        Command::Validate { files } => validate(&files),
        Command::Recover => recover().await,
    }
}

fn load_all(specs: &[String], catalogue: &Path) -> Result<Vec<Scenario>, i32> {
    let files: Vec<PathBuf> = if specs.is_empty() {
        let files = scenario::catalogue_files(catalogue);
        if files.is_empty() {
            eprintln!("error: no scenario files in {}", catalogue.display());
            return Err(EXIT_USAGE);
        }
        files
    } else {
        let mut files = Vec::new();
        for s in specs {
            match scenario::resolve(s, catalogue) {
                Ok(p) => files.push(p),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(EXIT_USAGE);
                }
            }
        }
        files
    };
    let mut out = Vec::new();
    let mut bad = false;
    for f in files {
        match scenario::load(&f) {
            Ok(s) => out.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad { Err(EXIT_USAGE) } else { Ok(out) }
}

fn list(catalogue: PathBuf) -> i32 {
    let Ok(scenarios) = load_all(&[], &catalogue) else {
        return EXIT_USAGE;
    };
    let w = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let cw = scenarios.iter().map(|s| s.cause.len()).max().unwrap_or(0);
    println!(
        "{:w$}  {:cw$}  {:16}  title",
        "scenario", "cause", "protection"
    );
    for s in &scenarios {
        println!(
            "{:w$}  {:cw$}  {:16}  {}",
            s.name,
            s.cause,
            s.protection.as_deref().unwrap_or("-"),
            s.title
        );
    }
    EXIT_OK
}

fn validate(files: &[String]) -> i32 {
    let catalogue = default_catalogue();
    let mut code = EXIT_OK;
    for f in files {
        let path = match scenario::resolve(f, &catalogue) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_USAGE;
                continue;
            }
        };
        match scenario::load(&path) {
            Ok(s) => println!("ok: {} ({})", path.display(), s.title),
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_USAGE;
            }
        }
    }
    code
}

async fn recover() -> i32 {
    let done = crate::journal::recover().await;
    if done.is_empty() {
        println!("nothing to recover: no killed run left anything behind");
        return EXIT_OK;
    }
    let mut code = EXIT_OK;
    for r in done {
        println!("recovered {}", r.journal.display());
        for a in &r.actions {
            println!("  {a}");
        }
        for p in &r.problems {
            println!("  problem: {p}");
            code = EXIT_LAB;
        }
    }
    code
}

async fn run(args: RunArgs) -> i32 {
    let catalogue = args.scenarios_dir.clone().unwrap_or_else(default_catalogue);
    let scenarios = match load_all(&args.scenarios, &catalogue) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    // What a killed earlier run left behind is cleaned before this one starts.
    for r in crate::journal::recover().await {
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
    let opts = LabOptions {
        target: TargetSpec {
            program,
            extra_args: args.target_args.clone(),
        },
        database_url: args.database_url.clone(),
        seed,
    };
    let command = reproduce_command(&args, seed);
    eprintln!(
        "fivehundred: {} scenario(s), seed {seed}{}",
        scenarios.len(),
        if args.target_args.is_empty() {
            String::new()
        } else {
            format!(", target args: {}", args.target_args.join(" "))
        }
    );

    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let interactive = std::io::stderr().is_terminal();
    let started_at = chrono::Utc::now().to_rfc3339();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.jobs as usize));
    let mut handles = Vec::new();
    for s in scenarios {
        let (opts, cancel, sem) = (opts.clone(), cancel.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            if cancel.is_cancelled() {
                return None;
            }
            let progress = Arc::new(Progress::default());
            let ticker = spawn_progress(s.name.clone(), progress.clone(), interactive);
            let r = run_scenario(&s, &opts, progress, cancel).await;
            ticker.abort();
            Some(r)
        }));
    }
    let mut reports = Vec::new();
    let mut lab_error = None;
    for h in handles {
        match h.await {
            Ok(Some(Ok(r))) => {
                eprintln!(
                    "  {} {}",
                    r.name,
                    match r.verdict {
                        crate::checks::Verdict::Pass => "passed",
                        crate::checks::Verdict::Fail => "FAILED",
                        crate::checks::Verdict::Skip => "skipped",
                    }
                );
                reports.push(r);
            }
            Ok(Some(Err(RunError::Lab(e)))) => {
                lab_error.get_or_insert(e.0);
                cancel.cancel();
            }
            Ok(None) => {}
            Err(e) => {
                lab_error.get_or_insert(format!("the controller crashed: {e}; faults were reverted as the lab was dropped; run `fivehundred recover` to be sure"));
                cancel.cancel();
            }
        }
    }
    let report = RunReport {
        tool: format!("fivehundred {}", env!("CARGO_PKG_VERSION")),
        seed,
        command,
        started_at,
        strict: args.strict,
        scenarios: reports,
    };
    let _ = report.print_summary(&mut std::io::stdout(), std::io::stdout().is_terminal());
    if let Some(dir) = &args.report_dir {
        match report.write(dir) {
            Ok(()) => println!("report: {}", dir.display()),
            Err(e) => eprintln!("error: cannot write the report to {}: {e}", dir.display()),
        }
    }
    if let Some(e) = lab_error {
        eprintln!("error: the lab could not be set up: {e}");
        return EXIT_LAB;
    }
    if cancel.is_cancelled() {
        eprintln!("interrupted: every injected fault was reverted");
        return 130;
    }
    report.exit_code()
}

fn reproduce_command(args: &RunArgs, seed: u64) -> String {
    let mut parts = vec!["fivehundred".to_string(), "run".into()];
    parts.extend(args.scenarios.iter().cloned());
    parts.push(format!("--seed {seed}"));
    if args.strict {
        parts.push("--strict".into());
    }
    if !args.target_args.is_empty() {
        parts.push("--".into());
        parts.extend(args.target_args.iter().cloned());
    }
    parts.join(" ")
}

/// Ctrl-C and SIGTERM cancel the run; the runner reverts every fault before exiting.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("\nstopping: reverting every fault and tearing the lab down…");
        cancel.cancel();
    });
}

/// Shows which scenario, which phase, requests and errors so far: a spinner on a terminal,
/// a line every five seconds otherwise (CI logs).
fn spawn_progress(
    name: String,
    progress: Arc<Progress>,
    interactive: bool,
) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let bar = interactive.then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        let mut last_phase = String::new();
        let mut ticks = 0u64;
        loop {
            let phase = progress.phase();
            let line = format!(
                "{name}: {phase} — {} requests, {} errors",
                progress.requests.load(Ordering::Relaxed),
                progress.errors.load(Ordering::Relaxed)
            );
            match &bar {
                Some(b) => b.set_message(line),
                None => {
                    if phase != last_phase || ticks % 10 == 0 {
                        eprintln!("  {line}");
                    }
                }
            }
            last_phase = phase;
            ticks += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}
