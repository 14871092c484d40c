//! The command line: `run`, `explain`, `list`, `validate`, `recover`, and the game-day commands
//! (`lab`, `inject`, `revert`, `halt`, `status`, in [`crate::gameday`]). Parses, dispatches, and
//! maps results to exit codes (0 all checks passed, 1 a check failed, 2 bad usage or scenario, 3
//! the lab could not be set up).
//!
//! Output: results on stdout (plain when it is not a terminal or `NO_COLOR` is set, JSON with
//! `--json`), progress and diagnostics on stderr.

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

pub use crate::exit::{EXIT_CHECK_FAILED, EXIT_LAB, EXIT_OK, EXIT_USAGE};

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
    /// Explain one failure mode: how it shows up, then run it with the target's protections on
    /// and with the scenario's protection off, side by side, and how to diagnose it.
    Explain(ExplainArgs),
    /// List the scenarios in the catalogue, with the cause each reproduces.
    List {
        /// Directory of scenario files [default: ./scenarios, else the built-in catalogue].
        #[arg(long)]
        scenarios_dir: Option<PathBuf>,
        /// A lab file: list the causes it makes possible, and why the others do not apply.
        #[arg(long, value_name = "PATH")]
        lab: Option<PathBuf>,
        /// Print the catalogue as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check scenario files, or a lab file (--lab), without running anything.
    Validate {
        /// Scenario files (or catalogue names).
        #[arg(required_unless_present = "lab")]
        files: Vec<String>,
        /// A lab file (fivehundred.toml) to check.
        #[arg(long, value_name = "PATH")]
        lab: Option<PathBuf>,
    },
    /// Write a starter lab file after probing the service: `init -- COMMAND ARGS...`.
    Init(crate::labfile::init::InitArgs),
    /// Revert whatever a killed run left behind (faults, processes, databases, directories).
    Recover,
    /// A lab for game days: `lab up` keeps one running with a live dashboard; `lab down` stops it.
    #[command(subcommand)]
    Lab(crate::gameday::LabCommand),
    /// Inject a fault into the running lab: a kind with key=value parameters, or a named fault.
    Inject(crate::gameday::InjectArgs),
    /// Revert active faults of the running lab (an id, a fault, or --all).
    Revert(crate::gameday::RevertArgs),
    /// The kill switch: revert every active fault of the running lab and stop its load.
    Halt,
    /// The running lab: active faults and their deadlines, error rate, p99, firing alerts.
    Status(crate::gameday::StatusArgs),
    /// A drop-in toxiproxy-server: Toxiproxy's HTTP API over the fault proxy (default
    /// localhost:8474). Flags as toxiproxy-server takes them: -host, -port, -config FILE, -seed N.
    #[command(disable_help_flag = true)]
    Proxy {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario names (from the catalogue) or paths to scenario files.
    pub scenarios: Vec<String>,
    /// Seed for every random choice (load sequence, fault draws). Printed in every report.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write report.json, junit.xml and report.html here.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Print the whole report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Which requests report.json (and --json) keeps: `errors` keeps those that failed whole
    /// and a per-second summary of all; `all` keeps every request.
    #[arg(long, value_enum, default_value_t = crate::digest::KeepRequests::Errors)]
    pub record: crate::digest::KeepRequests,
    /// Count a skipped scenario (a fault this machine cannot inject) as a failure.
    #[arg(long)]
    pub strict: bool,
    /// Use an existing PostgreSQL server (a fresh database is made per run and dropped after)
    /// instead of an ephemeral cluster.
    #[arg(long, env = "FIVEHUNDRED_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where the lab's own PostgreSQL runs: `process` (a cluster from this machine's server
    /// binaries) or `docker` (a container of the local Docker engine, its image built from
    /// Debian's packages on first use; nothing is pulled).
    #[arg(long, value_enum, default_value_t = crate::lab::Backend::Process, conflicts_with = "database_url")]
    pub backend: crate::lab::Backend,
    /// The target binary [default: target-app, built if needed].
    #[arg(long, env = "FIVEHUNDRED_TARGET_BIN")]
    pub target_bin: Option<PathBuf>,
    /// Directory of scenario files [default: ./scenarios, else the built-in catalogue].
    #[arg(long)]
    pub scenarios_dir: Option<PathBuf>,
    /// A lab file (fivehundred.toml) describing the service to test: runs its generic
    /// catalogue (or the causes named) against that service instead of target-app.
    #[arg(long, value_name = "PATH")]
    pub lab: Option<PathBuf>,
    /// How many scenarios run at once, each in its own lab.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    /// Arguments appended to the target's command line, e.g. `-- --protections none`.
    #[arg(last = true)]
    pub target_args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A scenario name (from the catalogue) or a path to a scenario file.
    pub scenario: String,
    /// Print the explanation only; run nothing.
    #[arg(long)]
    pub no_run: bool,
    /// Seed for both runs, so they send the same requests [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write each run's reports under DIR/protected and DIR/unprotected [default: a new
    /// directory under the system's temporary directory, printed at the end].
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Use an existing PostgreSQL server instead of an ephemeral cluster.
    #[arg(long, env = "FIVEHUNDRED_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The target binary [default: target-app, built if needed].
    #[arg(long, env = "FIVEHUNDRED_TARGET_BIN")]
    pub target_bin: Option<PathBuf>,
    /// Directory of scenario files [default: ./scenarios, else the built-in catalogue].
    #[arg(long)]
    pub scenarios_dir: Option<PathBuf>,
}

/// Runs the command line; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Explain(args) => explain(args).await,
        Command::List {
            scenarios_dir,
            lab: Some(lab),
            json,
        } => {
            let _ = scenarios_dir;
            list_lab(&lab, json)
        }
        Command::List {
            scenarios_dir,
            lab: None,
            json,
        } => list(scenarios_dir.unwrap_or_else(default_catalogue), json),
        Command::Validate { files, lab } => match lab {
            Some(lab) => validate_lab(&lab, &files),
            None => validate(&files),
        },
        Command::Init(args) => match crate::labfile::init::run(args).await {
            Ok(done) => {
                println!("{done}");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                if e.is_usage() { EXIT_USAGE } else { EXIT_LAB }
            }
        },
        Command::Recover => recover().await,
        Command::Lab(cmd) => crate::gameday::lab(cmd).await,
        Command::Inject(args) => crate::gameday::inject(args).await,
        Command::Revert(args) => crate::gameday::revert(args).await,
        Command::Halt => crate::gameday::halt().await,
        Command::Status(args) => crate::gameday::status(args).await,
        Command::Proxy { args } => toxiproxy_server(&args).await,
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

/// The scenarios of a lab file's generic catalogue: the causes named, or every one that applies.
/// A cause named that does not apply is an error naming why; the others are listed as skipped.
fn lab_scenarios(lab: &crate::labfile::LabFile, names: &[String]) -> Result<Vec<Scenario>, i32> {
    let causes = crate::catalogue::catalogue(lab);
    let mut out = Vec::new();
    for name in names {
        match causes.iter().find(|c| &c.name == name) {
            Some(c) => match &c.applies {
                Ok(s) => out.push((**s).clone()),
                Err(why) => {
                    eprintln!(
                        "error: `{name}` does not apply to {}: {why}",
                        lab.file.display()
                    );
                    return Err(EXIT_USAGE);
                }
            },
            None => {
                eprintln!(
                    "error: no cause `{name}` for {}; its causes: {}",
                    lab.file.display(),
                    causes
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Err(EXIT_USAGE);
            }
        }
    }
    if names.is_empty() {
        for c in &causes {
            match &c.applies {
                Ok(s) => out.push((**s).clone()),
                Err(why) => eprintln!("not applicable: {}: {why}", c.name),
            }
        }
    }
    if out.is_empty() {
        eprintln!(
            "error: no cause applies to {} (`fivehundred list --lab` says why)",
            lab.file.display()
        );
        return Err(EXIT_USAGE);
    }
    Ok(out)
}

/// `list --lab`: the causes a lab file makes possible, and why the others do not apply.
fn list_lab(path: &Path, json: bool) -> i32 {
    let lab = match crate::labfile::load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let causes = crate::catalogue::catalogue(&lab);
    if json {
        let entries: Vec<serde_json::Value> = causes
            .iter()
            .map(|c| match &c.applies {
                Ok(s) => serde_json::json!({
                    "name": c.name, "cause": c.cause, "applies": true, "title": s.title,
                }),
                Err(why) => serde_json::json!({
                    "name": c.name, "cause": c.cause, "applies": false, "why": why,
                }),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        );
        return EXIT_OK;
    }
    let w = causes.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let cw = causes.iter().map(|c| c.cause.len()).max().unwrap_or(0);
    println!("{:w$}  {:cw$}  applies", "cause", "");
    for c in &causes {
        match &c.applies {
            Ok(s) => println!("{:w$}  {:cw$}  yes: {}", c.name, c.cause, s.title),
            Err(why) => println!("{:w$}  {:cw$}  no: {why}", c.name, c.cause),
        }
    }
    EXIT_OK
}

fn list(catalogue: PathBuf, json: bool) -> i32 {
    let Ok(scenarios) = load_all(&[], &catalogue) else {
        return EXIT_USAGE;
    };
    if json {
        let entries: Vec<serde_json::Value> = scenarios
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "title": s.title,
                    "cause": s.cause,
                    "protection": s.protection,
                    "file": s.file.display().to_string(),
                })
            })
            .collect();
        return match serde_json::to_string_pretty(&entries) {
            Ok(text) => {
                println!("{text}");
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_USAGE
            }
        };
    }
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

fn validate_lab(lab: &Path, files: &[String]) -> i32 {
    let lab_code = match crate::labfile::load(lab) {
        Ok(_) => {
            println!("ok: {} (lab file)", lab.display());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    };
    let files_code = if files.is_empty() {
        EXIT_OK
    } else {
        validate(files)
    };
    lab_code.max(files_code)
}

async fn recover() -> i32 {
    let done = match crate::journal::recover().await {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_LAB;
        }
    };
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
    let service = match &args.lab {
        Some(path) => match crate::labfile::load(path) {
            Ok(lab) => Some(Arc::new(lab)),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
        None => None,
    };
    let scenarios = match &service {
        Some(lab) => match lab_scenarios(lab, &args.scenarios) {
            Ok(s) => s,
            Err(code) => return code,
        },
        None => match load_all(&args.scenarios, &catalogue) {
            Ok(s) => s,
            Err(code) => return code,
        },
    };
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    let opts = match lab_options(
        args.target_bin.as_deref(),
        args.database_url.clone(),
        args.target_args.clone(),
        seed,
        service,
    )
    .await
    {
        Ok(o) => LabOptions {
            backend: args.backend,
            ..o
        },
        Err(code) => return code,
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
    let bars = Bars::new();
    let started_at = chrono::Utc::now().to_rfc3339();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.jobs as usize));
    let mut handles = Vec::new();
    for s in scenarios {
        let (opts, cancel, sem, bars) = (opts.clone(), cancel.clone(), sem.clone(), bars.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            if cancel.is_cancelled() {
                return None;
            }
            let progress = Arc::new(Progress::default());
            let view = bars.start(&s.name, s.phases.total(), progress.clone());
            let r = run_scenario(&s, &opts, progress, cancel).await;
            view.finish().await;
            Some(r)
        }));
    }
    let mut reports = Vec::new();
    let mut lab_error = None;
    for h in handles {
        match h.await {
            Ok(Some(Ok(r))) => {
                bars.println(format!(
                    "  {} {}",
                    r.name,
                    match r.verdict {
                        crate::checks::Verdict::Pass => "passed",
                        crate::checks::Verdict::Fail => "FAILED",
                        crate::checks::Verdict::Skip => "skipped",
                    }
                ));
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
    if args.json {
        match report.json(args.record) {
            Ok(text) => println!("{}", String::from_utf8_lossy(&text)),
            Err(e) => eprintln!("error: cannot print the report as JSON: {e}"),
        }
    } else {
        let _ = report.print_summary(&mut std::io::stdout(), colour(&std::io::stdout()));
    }
    if let Some(dir) = &args.report_dir {
        match crate::artifacts::write(&report, dir, args.record) {
            // With --json, stdout is for the JSON alone.
            Ok(()) if args.json => eprintln!("report: {}", dir.display()),
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
    if let Some(lab) = &args.lab {
        parts.push(format!("--lab {}", lab.display()));
    }
    parts.extend(args.scenarios.iter().cloned());
    parts.push(format!("--seed {seed}"));
    if args.backend == crate::lab::Backend::Docker {
        parts.push("--backend docker".into());
    }
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

/// Colour on a stream: only when it is a terminal and `NO_COLOR` (no-color.org) is not set.
pub fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Everything a lab needs that does not depend on the scenario: the target program located (or
/// built), the database choice, the seed. Cleans up what a killed earlier run left behind first.
/// Shared by `run` and `explain`; the error is an exit code, its message already printed.
async fn lab_options(
    target_bin: Option<&Path>,
    database_url: Option<String>,
    target_args: Vec<String>,
    seed: u64,
    service: Option<Arc<crate::labfile::LabFile>>,
) -> Result<LabOptions, i32> {
    let recovered = crate::journal::recover().await.map_err(|e| {
        eprintln!("error: {e}");
        EXIT_LAB
    })?;
    for r in recovered {
        eprintln!(
            "recovered what an earlier run left behind ({}): {}",
            r.journal.display(),
            r.actions.join("; ")
        );
    }
    // A lab-file service needs no target-app: the lab starts the service its file describes.
    let program = match &service {
        Some(lab) => lab.program(),
        None => match tokio::task::block_in_place(|| locate_target_app(target_bin)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(EXIT_LAB);
            }
        },
    };
    Ok(LabOptions {
        service,
        target: TargetSpec {
            program,
            extra_args: target_args,
        },
        database_url,
        backend: crate::lab::Backend::Process,
        seed,
    })
}

async fn explain(args: ExplainArgs) -> i32 {
    let catalogue = args.scenarios_dir.clone().unwrap_or_else(default_catalogue);
    let scenario = match load_all(std::slice::from_ref(&args.scenario), &catalogue) {
        Ok(mut s) => s.remove(0),
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let style = crate::explain::Style {
        colour: colour(&stdout),
        width: stdout.is_terminal().then(terminal_width),
    };
    print!("{}", crate::explain::intro(&scenario, style));
    if args.no_run {
        return EXIT_OK;
    }
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    let opts = match lab_options(
        args.target_bin.as_deref(),
        args.database_url.clone(),
        Vec::new(),
        seed,
        None,
    )
    .await
    {
        Ok(o) => o,
        Err(code) => return code,
    };
    let report_dir = match &args.report_dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new()
            .prefix(&format!("fivehundred-explain-{}-", scenario.name))
            .tempdir()
        {
            Ok(d) => d.keep(),
            Err(e) => {
                eprintln!("error: cannot create a report directory: {e}");
                return EXIT_LAB;
            }
        },
    };
    let variants = crate::explain::variants(&scenario);
    eprintln!(
        "\nfivehundred: running {} {} time(s), seed {seed}: {}",
        scenario.name,
        variants.len(),
        variants
            .iter()
            .map(|(_, p)| format!("--protections {p}"))
            .collect::<Vec<_>>()
            .join(", then ")
    );
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let bars = Bars::new();
    let total = scenario.phases.total();
    let name = scenario.name.clone();
    let runs = crate::explain::run_variants(
        &scenario,
        &opts,
        &report_dir,
        cancel.clone(),
        |label, progress| bars.start(&format!("{name} ({label})"), total, progress),
    )
    .await;
    let runs = match runs {
        Ok(r) => r,
        Err(RunError::Lab(e)) => {
            eprintln!("error: the lab could not be set up: {e}");
            return EXIT_LAB;
        }
    };
    if cancel.is_cancelled() {
        eprintln!("interrupted: every injected fault was reverted");
        return 130;
    }
    print!("{}", crate::explain::comparison(&runs, style));
    if let Some(note) = crate::explain::contrast_note(&runs) {
        println!("\n{note}");
    }
    print!("{}", crate::explain::diagnosis(&scenario, &runs, style));
    println!("\nreports: {}", report_dir.display());
    EXIT_OK
}

/// The terminal's width in columns: `COLUMNS` when set, else what `stty` reports for the
/// controlling terminal, else 100. Asking `stty` avoids an ioctl (unsafe code, which the
/// workspace denies) and a new dependency for one number.
fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return c;
    }
    std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| {
            std::process::Command::new("stty")
                .arg("size")
                .stdin(tty)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
        })
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
        })
        .filter(|c: &usize| *c > 0)
        .unwrap_or(100)
}

/// Progress display for scenarios under way: a bar per scenario on a terminal (several at once
/// with `--jobs`), a line per phase change or every five seconds otherwise (CI logs).
#[derive(Clone)]
pub struct Bars {
    multi: indicatif::MultiProgress,
    interactive: bool,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars")
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        let interactive = std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::with_draw_target(if interactive {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        });
        Bars { multi, interactive }
    }

    /// Prints a line on stderr without tearing the bars.
    pub fn println(&self, line: String) {
        if self.interactive {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Starts showing one scenario's progress through its `total` duration (steady + fault +
    /// recovery). The display ends when the returned view is finished or dropped.
    pub fn start(&self, name: &str, total: Duration, progress: Arc<Progress>) -> ProgressView {
        let stop = CancellationToken::new();
        let bar = self.interactive.then(|| {
            let b = self
                .multi
                .add(indicatif::ProgressBar::new(total.as_millis() as u64));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:28.cyan/blue}] {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(name.to_string());
            b
        });
        let task = tokio::spawn(show_progress(
            name.to_string(),
            total,
            progress,
            bar,
            stop.clone(),
        ));
        ProgressView {
            stop,
            task: Some(task),
        }
    }
}

/// One scenario's progress display; [`ProgressView::finish`] clears its bar.
#[derive(Debug)]
pub struct ProgressView {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressView {
    /// Stops the display and waits until its bar is cleared, so the next output starts on a
    /// clean line.
    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        // A panicking run still clears its bar.
        self.stop.cancel();
    }
}

/// Which scenario, which phase, how far through, requests and errors so far.
async fn show_progress(
    name: String,
    total: Duration,
    progress: Arc<Progress>,
    bar: Option<indicatif::ProgressBar>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    let total_s = total.as_secs_f64();
    let mut load_began: Option<std::time::Instant> = None;
    let mut last_phase = String::new();
    let mut last_line = std::time::Instant::now();
    loop {
        let phase = progress.phase();
        // The phases start when the load does: "steady" is the first of them.
        if load_began.is_none() && phase == "steady" {
            load_began = Some(std::time::Instant::now());
        }
        let elapsed = match (&load_began, phase.as_str()) {
            (None, _) => 0.0,
            (Some(_), "steady" | "fault" | "recovery") => load_began
                .map(|t| t.elapsed().as_secs_f64().min(total_s))
                .unwrap_or(0.0),
            // After recovery: waiting for alerts, tearing down.
            (Some(_), _) => total_s,
        };
        let line = format!(
            "{phase} {elapsed:.0}/{total_s:.0}s — {} requests, {} errors",
            progress.requests.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed)
        );
        match &bar {
            Some(b) => {
                b.set_position((elapsed * 1000.0) as u64);
                b.set_message(line);
            }
            None => {
                if phase != last_phase || last_line.elapsed() >= Duration::from_secs(5) {
                    eprintln!("  {name}: {line}");
                    last_line = std::time::Instant::now();
                }
            }
        }
        last_phase = phase;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(if bar.is_some() { 200 } else { 500 })) => {}
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// `fivehundred proxy`: bad flags or config exit 2, a failed start 3.
async fn toxiproxy_server(args: &[String]) -> i32 {
    use crate::toxiproxy::server::{self, ServerError};
    let result = match server::parse_args(args) {
        Ok(args) => server::run(args).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e @ ServerError::Usage(_)) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_LAB
        }
    }
}
