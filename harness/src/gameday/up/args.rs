//! `fivehundred lab up`'s options, and what the record says of them: the command that starts the
//! same lab again, and the target it ran.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::super::abort::AbortCondition;
use super::super::params::parse_for;

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
    /// Which lab: the service (`--lab`, `--target-bin`), where its PostgreSQL runs, where named
    /// faults come from (`--scenarios-dir`, or the lab file's causes), as for `run`.
    #[command(flatten)]
    pub lab: crate::run::lab_args::LabArgs,
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

/// The target as the postmortem names it: the lab file or the binary, and its extra arguments.
pub(super) fn target_line(args: &LabUpArgs) -> String {
    let mut s = match (&args.lab.lab_file, &args.lab.target_bin) {
        (Some(lab), _) => format!("the service of {}", lab.display()),
        (None, Some(bin)) => bin.display().to_string(),
        (None, None) => "target-app".into(),
    };
    for a in &args.target_args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// The command line that starts a lab like this one again, as the report shows it.
pub(super) fn reproduce(args: &LabUpArgs) -> String {
    let mut parts = vec!["fivehundred lab up".to_string()];
    parts.extend(args.lab.reproduce());
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
