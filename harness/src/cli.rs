//! The command line: `run`, `explain`, `list`, `validate`, `recover`, and the game-day commands
//! (`lab`, `inject`, `revert`, `halt`, `status`, in [`crate::gameday`]). Parses, dispatches, and
//! maps results to exit codes (0 all checks passed, 1 a check failed, 2 bad usage or scenario, 3
//! the lab could not be set up).
//!
//! Output: results on stdout (plain when it is not a terminal or `NO_COLOR` is set, JSON with
//! `--json`), progress and diagnostics on stderr.
//!
//! Running scenarios (one after another or side by side), the progress bars, colour and the
//! summary belong to the suite runner ([`crate::run::suite`]): `run` here only loads the
//! scenarios and settles the lab's options, then hands them over.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::run::lab_args::{LabArgs, load_all};
use crate::run::suite::{self, Suite, spawn_signal_handler, terminal_width};
use crate::run::{RunError, default_catalogue};
use crate::scenario;

pub use crate::exit::{EXIT_CHECK_FAILED, EXIT_LAB, EXIT_OK, EXIT_USAGE};
pub use crate::run::suite::{Bars, ProgressView, colour};

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
    #[command(flatten)]
    pub lab: LabArgs,
    /// How many scenarios drive load at once, each in its own lab (labs are mostly idle: 30
    /// requests a second); a lab whose load is over (waiting for its alerts to resolve, tearing
    /// down) no longer counts. Labs start 3 s apart; a scenario that measures the machine
    /// (overload) drives its load alone whatever this says.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
    /// Run each scenario with the protection it exercises turned off (its `protection`, through
    /// the lab file's `[service.protections]`), to show that its checks catch what the
    /// protection prevents: each should fail. A scenario that names none is skipped.
    #[arg(long)]
    pub unprotected: bool,
    /// Arguments appended to the target's command line, e.g. `-- --protections none`.
    #[arg(last = true)]
    pub target_args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A scenario name (from the catalogue, or with --lab from the lab file's) or a path to a
    /// scenario file.
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
    #[command(flatten)]
    pub lab: LabArgs,
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

/// `run`: the scenarios (of the catalogue, or of a lab file) loaded and the lab's options
/// settled here; [`suite::run`] runs them and reports.
async fn run(args: RunArgs) -> i32 {
    let service = match args.lab.load_lab_file() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let scenarios = match args.lab.scenarios(service.as_deref(), &args.scenarios) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    let opts = match args
        .lab
        .options(service, args.target_args.clone(), seed)
        .await
    {
        Ok(o) => o,
        Err(code) => return code,
    };
    let flags: Vec<&str> = [
        (args.strict, "--strict"),
        (args.unprotected, "--unprotected"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then_some(flag))
    .collect();
    let command = reproduce_command(&args.lab, &args.scenarios, seed, &args.target_args, &flags);
    suite::run(Suite {
        scenarios,
        opts,
        jobs: args.jobs,
        unprotected: args.unprotected,
        strict: args.strict,
        json: args.json,
        record: args.record,
        report_dir: args.report_dir,
        command,
    })
    .await
}

/// `fivehundred run` with what gives the same run again: the lab's flags, the scenarios, the
/// seed, `flags` (`--strict`, `--unprotected`), and the arguments after `--`.
fn reproduce_command(
    lab: &LabArgs,
    scenarios: &[String],
    seed: u64,
    target_args: &[String],
    flags: &[&str],
) -> String {
    let mut parts = vec!["fivehundred".to_string(), "run".into()];
    parts.extend(scenarios.iter().cloned());
    parts.extend(lab.reproduce());
    parts.push(format!("--seed {seed}"));
    parts.extend(flags.iter().map(|f| f.to_string()));
    if !target_args.is_empty() {
        parts.push("--".into());
        parts.extend(target_args.iter().cloned());
    }
    parts.join(" ")
}

/// `explain`: one scenario, for the same labs `run` makes (the same options, settled the same
/// way), run once per protection setting.
async fn explain(args: ExplainArgs) -> i32 {
    let service = match args.lab.load_lab_file() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let scenario = match args
        .lab
        .scenarios(service.as_deref(), std::slice::from_ref(&args.scenario))
    {
        Ok(mut s) if s.len() == 1 => s.remove(0),
        Ok(_) => {
            eprintln!("error: explain takes one scenario");
            return EXIT_USAGE;
        }
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let style = crate::present::explain::Style {
        colour: colour(&stdout),
        width: stdout.is_terminal().then(terminal_width),
    };
    print!("{}", crate::present::explain::intro(&scenario, style));
    if args.no_run {
        return EXIT_OK;
    }
    let seed = args.seed.unwrap_or_else(rand::random::<u64>);
    let opts = match args.lab.options(service, Vec::new(), seed).await {
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
    let variants = crate::run::explain::variants(&scenario, opts.lab_file());
    eprintln!(
        "\nfivehundred: running {} {} time(s), seed {seed}: {}",
        scenario.name,
        variants.len(),
        variants
            .iter()
            .map(|(label, args)| format!("{label} ({})", args.join(" ")))
            .collect::<Vec<_>>()
            .join(", then ")
    );
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let bars = Bars::new();
    let total = scenario.phases.total();
    let name = scenario.name.clone();
    // Each run's reproduce line: the same as `run`'s, with the variant's arguments.
    let reproduce = |variant_args: &[String]| {
        reproduce_command(
            &args.lab,
            std::slice::from_ref(&args.scenario),
            seed,
            variant_args,
            &[],
        )
    };
    let runs = crate::run::explain::run_variants(
        &scenario,
        &opts,
        &report_dir,
        &reproduce,
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
    print!("{}", crate::present::explain::comparison(&runs, style));
    if let Some(note) = crate::present::explain::contrast_note(&runs) {
        println!("\n{note}");
    }
    print!(
        "{}",
        crate::present::explain::diagnosis(&scenario, &runs, style)
    );
    println!("\nreports: {}", report_dir.display());
    EXIT_OK
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
