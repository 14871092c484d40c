//! The options that say which lab a command runs in (`--lab`, `--backend`, `--database-url`,
//! `--target-bin`, `--scenarios-dir`), shared by `run`, `explain` and `lab up`, and what they
//! settle: the lab file read, the scenarios named found (the catalogue's, or a lab file's causes
//! and scenario files), the lab's options, and the flags that make the same lab again. Errors
//! are printed here; the `Err` is the exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::EXIT_USAGE;
use crate::run::default_catalogue;
use crate::run::suite::lab_options;
use crate::scenario::{self, Scenario};

/// The lab a scenario runs in: the service (target-app, another build of it, or a lab file's)
/// and where its PostgreSQL runs. `run`, `explain` and `lab up` take the same;
/// [`LabArgs::options`] settles them for all three.
#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// Use an existing PostgreSQL server (a fresh database is made per run and dropped after)
    /// instead of an ephemeral cluster.
    #[arg(long, env = "FIVEHUNDRED_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where the lab's own PostgreSQL runs: `process` (a cluster from this machine's server
    /// binaries) or `docker` (a container of the local Docker engine, its image built from
    /// Debian's packages on first use; nothing is pulled).
    #[arg(long, value_enum, default_value_t = crate::lab::Backend::Process, conflicts_with = "database_url")]
    pub backend: crate::lab::Backend,
    /// The target binary [default: target-app, built if needed]; not used with --lab.
    #[arg(long, env = "FIVEHUNDRED_TARGET_BIN")]
    pub target_bin: Option<PathBuf>,
    /// Directory of scenario files [default: ./scenarios, else the built-in catalogue]; not
    /// used with --lab.
    #[arg(long)]
    pub scenarios_dir: Option<PathBuf>,
    /// A lab file (fivehundred.toml) describing the service to test: its generic catalogue's
    /// causes (by name) or scenario files (by path) run against that service instead of
    /// target-app.
    #[arg(long = "lab", value_name = "PATH")]
    pub lab_file: Option<PathBuf>,
}

impl LabArgs {
    /// The lab file `--lab` names, read and checked (exit 2 on an error, printed); `None` for
    /// target-app's own.
    pub fn load_lab_file(&self) -> Result<Option<Arc<crate::labfile::LabFile>>, i32> {
        match &self.lab_file {
            Some(path) => match crate::labfile::load(path) {
                Ok(lab) => Ok(Some(Arc::new(lab))),
                Err(e) => {
                    eprintln!("error: {e}");
                    Err(EXIT_USAGE)
                }
            },
            None => Ok(None),
        }
    }

    /// The scenarios `specs` name for this lab: with a lab file, its causes and scenario files
    /// ([`lab_scenarios`]); otherwise the catalogue's names or scenario files. All of the
    /// catalogue (or every cause that applies) when `specs` is empty.
    pub fn scenarios(
        &self,
        lab: Option<&crate::labfile::LabFile>,
        specs: &[String],
    ) -> Result<Vec<Scenario>, i32> {
        match lab {
            Some(lab) => lab_scenarios(lab, specs),
            None => load_all(
                specs,
                &self.scenarios_dir.clone().unwrap_or_else(default_catalogue),
            ),
        }
    }

    /// The lab's options: `lab` (target-app's own lab file when `None`), the database and the
    /// backend, `target_args` after the service's command. Recovers what a killed run left
    /// behind first (see [`lab_options`]).
    pub async fn options(
        &self,
        lab: Option<Arc<crate::labfile::LabFile>>,
        target_args: Vec<String>,
        seed: u64,
    ) -> Result<crate::lab::LabOptions, i32> {
        lab_options(
            self.target_bin.as_deref(),
            self.database_url.clone(),
            self.backend,
            target_args,
            seed,
            lab,
        )
        .await
    }

    /// The flags that make the same lab again (`--database-url` stays out: it may hold a
    /// password, and a report is shared).
    pub fn reproduce(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if let Some(lab) = &self.lab_file {
            parts.push(format!("--lab {}", lab.display()));
        }
        if self.backend == crate::lab::Backend::Docker {
            parts.push("--backend docker".into());
        }
        parts
    }
}

/// Scenario files of `catalogue`: those `specs` name (names or paths), or all of them.
pub fn load_all(specs: &[String], catalogue: &Path) -> Result<Vec<Scenario>, i32> {
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

/// The scenarios for a lab file: the causes of its generic catalogue named, and scenario files
/// (a spec that is a path, as [`scenario::resolve`] tells them apart) read against it; every
/// cause that applies when nothing is named. A cause named that does not apply is an error
/// naming why; the others are listed as skipped.
fn lab_scenarios(lab: &crate::labfile::LabFile, names: &[String]) -> Result<Vec<Scenario>, i32> {
    let causes = crate::catalogue::catalogue(lab);
    let mut out = Vec::new();
    for name in names {
        if name.ends_with(".toml") || name.contains('/') {
            match scenario::load_for(Path::new(name), lab) {
                Ok(s) => out.push(s),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(EXIT_USAGE);
                }
            }
            continue;
        }
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
                    "error: no cause `{name}` for {} (a scenario file is named by its path); its causes: {}",
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
