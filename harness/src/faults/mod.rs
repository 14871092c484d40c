//! Faults: each kind is one type holding only its parameters, with `inject` and `revert` as its
//! verbs. [`Fault`] is the closed set of kinds; adding a kind means adding a file and a variant.
//!
//! A fault acts on the running lab through [`FaultContext`], and is written to the fault journal
//! before it is injected (see [`crate::journal`]).

mod config;
mod connections;
mod crash;
mod dependency;
mod disk;
mod failpoint;
mod fds;
mod held;
mod invalid_input;
mod lock;
mod memory;
mod migration;
mod network;
mod overload;
mod permission;
mod pg;
pub(crate) mod privileges;

pub use config::{Config, ConfigChange};
pub use connections::Connections;
pub use crash::{Crash, PLANNED as PLANNED_EXIT};
pub use dependency::{Behaviour, Dependency, DependencyTarget};
pub use disk::DiskFull;
pub use failpoint::Failpoint;
pub use fds::FdLimit;
pub use held::Held;
pub use invalid_input::InvalidInput;
pub use lock::{Lock, LockMode};
pub use memory::{Memory, hog_main as memory_hog_main};
pub use migration::{Change, Migration};
pub use network::{Network, NetworkFault, ProxyTarget};
pub use overload::Overload;
pub use permission::{Permission, PermissionPath};

use serde::{Deserialize, Serialize};

use crate::lab::Lab;

/// Every kind of fault a scenario can name, tagged by `kind` in files and journals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// A failpoint in the target, set through its admin API.
    Failpoint(Failpoint),
    /// A network fault in the proxy in front of the database or a dependency.
    Network(Network),
    /// The payments API itself answers errors, garbage, slowly or not at all.
    Dependency(Dependency),
    /// A table lock held in an open transaction on the harness's own session.
    Lock(Lock),
    /// Sessions opened until PostgreSQL refuses more ("too many clients"), and held.
    Connections(Connections),
    /// A real schema migration applied to the run's database while the target runs.
    Migration(Migration),
    /// The target killed mid-load and started again by the lab when the fault ends.
    Crash(Crash),
    /// An extra open-loop load beyond what the target can serve, recorded with the scenario's.
    Overload(Overload),
    /// Requests generated with proptest sent to the target; the smallest one that answers 5xx is shown.
    InvalidInput(InvalidInput),
    /// The data directory (a private tmpfs) filled until writes fail with ENOSPC.
    DiskFull(DiskFull),
    /// The target in a memory-limited cgroup with a hog that takes most of the limit.
    Memory(Memory),
    /// The mode of a directory the (unprivileged) target writes to, changed under it.
    Permission(Permission),
    /// The running target's open-file limit lowered to what it has open.
    FdLimit(FdLimit),
    /// An invalid configuration reloaded with SIGHUP, or a second start with a bad setting.
    Config(Config),
}

/// The kinds, for messages.
pub const KINDS: &[&str] = &[
    "failpoint",
    "network",
    "dependency",
    "lock",
    "connections",
    "migration",
    "crash",
    "overload",
    "invalid-input",
    "disk-full",
    "memory",
    "permission",
    "fd-limit",
    "config",
];

/// Why a fault table in a scenario is not a fault. `key` names the offending key, so the
/// scenario parser can point at it.
#[derive(Debug)]
pub struct FaultSpecError {
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

/// A fault that could not be injected or reverted.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{0}")]
    Failed(String),
    /// The machine does not allow this fault's mechanism; the scenario is skipped, not faked.
    #[error("unsupported here: {0}")]
    Unsupported(String),
}

impl Fault {
    /// Builds a fault from a scenario's fault table (`kind` plus the kind's parameters).
    pub fn from_table(table: toml::Table) -> Result<Fault, FaultSpecError> {
        let kind = match table.get("kind") {
            Some(toml::Value::String(k)) => k.clone(),
            Some(_) => {
                return Err(FaultSpecError {
                    key: Some("kind".into()),
                    message: "`kind` must be a string".into(),
                    hint: Some(format!("one of: {}", KINDS.join(", "))),
                });
            }
            None => {
                return Err(FaultSpecError {
                    key: None,
                    message: "this fault has no `kind`".into(),
                    hint: Some(format!("add kind = one of: {}", KINDS.join(", "))),
                });
            }
        };
        if !KINDS.contains(&kind.as_str()) {
            return Err(FaultSpecError {
                key: Some("kind".into()),
                message: format!("unknown fault kind `{kind}`"),
                hint: Some(format!("the fault kinds are: {}", KINDS.join(", "))),
            });
        }
        let fault: Fault = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let message = e.message().to_string();
                // serde names the field in backticks: point at it.
                let key = message
                    .split('`')
                    .nth(1)
                    .map(str::to_string)
                    .filter(|k| !k.contains(' '));
                FaultSpecError {
                    key,
                    message: format!("in a `{kind}` fault: {message}"),
                    hint: Some(hint_for(&kind)),
                }
            })?;
        fault.validate().map_err(|(key, message)| FaultSpecError {
            key: Some(key.to_string()),
            message,
            hint: Some(hint_for(&kind)),
        })?;
        Ok(fault)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            Fault::Failpoint(f) => f.validate(),
            Fault::Network(f) => f.validate(),
            Fault::Dependency(f) => f.validate(),
            Fault::Lock(f) => f.validate(),
            Fault::Connections(f) => f.validate(),
            Fault::Migration(f) => f.validate(),
            Fault::Crash(f) => f.validate(),
            Fault::Overload(f) => f.validate(),
            Fault::InvalidInput(f) => f.validate(),
            Fault::DiskFull(f) => f.validate(),
            Fault::Memory(f) => f.validate(),
            Fault::Permission(f) => f.validate(),
            Fault::FdLimit(f) => f.validate(),
            Fault::Config(f) => f.validate(),
        }
    }

    /// Whether this machine allows the fault's mechanism, checked before the lab starts. `Err`
    /// names what is missing and how to get it; the scenario is then skipped (and counted), never
    /// faked.
    pub fn check_supported(&self) -> Result<(), String> {
        match self {
            Fault::Failpoint(_) | Fault::Network(_) => Ok(()),
            Fault::Dependency(_) | Fault::Lock(_) | Fault::Connections(_) => Ok(()),
            Fault::Migration(_) => Ok(()),
            Fault::Crash(_) => Ok(()),
            Fault::Overload(_) => Ok(()),
            Fault::InvalidInput(_) => Ok(()),
            Fault::DiskFull(f) => f.check_supported(),
            Fault::Memory(f) => f.check_supported(),
            Fault::Permission(f) => f.check_supported(),
            // prlimit on our own child needs no privilege; a config file is ours to write.
            Fault::FdLimit(_) | Fault::Config(_) => Ok(()),
        }
    }

    /// A short human description: `failpoint get_product = 20%panic`.
    pub fn describe(&self) -> String {
        match self {
            Fault::Failpoint(f) => f.describe(),
            Fault::Network(f) => f.describe(),
            Fault::Dependency(f) => f.describe(),
            Fault::Lock(f) => f.describe(),
            Fault::Connections(f) => f.describe(),
            Fault::Migration(f) => f.describe(),
            Fault::Crash(f) => f.describe(),
            Fault::Overload(f) => f.describe(),
            Fault::InvalidInput(f) => f.describe(),
            Fault::DiskFull(f) => f.describe(),
            Fault::Memory(f) => f.describe(),
            Fault::Permission(f) => f.describe(),
            Fault::FdLimit(f) => f.describe(),
            Fault::Config(f) => f.describe(),
        }
    }

    pub async fn inject(&self, lab: &Lab) -> Result<(), FaultError> {
        match self {
            Fault::Failpoint(f) => f.inject(lab).await,
            Fault::Network(f) => f.inject(lab).await,
            Fault::Dependency(f) => f.inject(lab).await,
            Fault::Lock(f) => f.inject(lab).await,
            Fault::Connections(f) => f.inject(lab).await,
            Fault::Migration(f) => f.inject(lab).await,
            Fault::Crash(f) => f.inject(lab).await,
            Fault::Overload(f) => f.inject(lab).await,
            Fault::InvalidInput(f) => f.inject(lab).await,
            Fault::DiskFull(f) => f.inject(lab).await,
            Fault::Memory(f) => f.inject(lab).await,
            Fault::Permission(f) => f.inject(lab).await,
            Fault::FdLimit(f) => f.inject(lab).await,
            Fault::Config(f) => f.inject(lab).await,
        }
    }

    /// Undoes what this fault left behind after the run that injected it was killed. Returns
    /// what it did, for `fivehundred recover`.
    pub async fn revert_orphan(&self) -> Result<String, FaultError> {
        match self {
            // Both live inside processes the lab owns (the target, the proxies in the
            // controller): they died with the run.
            Fault::Failpoint(_) | Fault::Network(_) => {
                Ok("nothing to undo: it lived in processes that ended with the run".into())
            }
            // The payments stub is served by the controller, and died with it.
            Fault::Dependency(_) => {
                Ok("nothing to undo: the payments stub ended with the run".into())
            }
            // A lock lives in its transaction, and the transaction in its session: PostgreSQL
            // rolled it back when the killed controller's connection closed (and the lab's
            // database goes with the rest of the run).
            Fault::Lock(_) => Ok(
                "nothing to undo: the lock's transaction was rolled back by PostgreSQL when the run's session closed".into(),
            ),
            // The sessions were the killed controller's own sockets: the server ended them.
            Fault::Connections(_) => Ok(
                "nothing to undo: PostgreSQL ended the run's sessions when its connections closed".into(),
            ),
            // The changed schema is in the run's own database, which recover drops (or removes
            // with the lab's cluster) right after; an open migration was rolled back with its
            // session.
            Fault::Migration(_) => Ok(
                "nothing to undo here: the migrated schema is in the run's own database, removed with it".into(),
            ),
            // The tmpfs was mounted only in the target's own mount namespace, which ended with
            // the target: the host never saw it.
            Fault::DiskFull(_) => Ok(
                "nothing to undo: the tmpfs existed only in the target's mount namespace, which ended with the target".into(),
            ),
            // The hog and the cgroup are journalled resources of their own: recover kills the
            // one and then removes the other.
            Fault::Memory(_) => Ok(
                "the memory hog and its cgroup are removed with the run's resources".into(),
            ),
            Fault::Permission(_) => Ok(
                "nothing to undo: the mode was changed inside the run directory, which recover removes".into(),
            ),
            Fault::FdLimit(_) => Ok(
                "nothing to undo: the limit belonged to the target process, which ended with the run".into(),
            ),
            Fault::Config(_) => Ok(
                "nothing to undo: the config files are in the run directory, which recover removes".into(),
            ),
            // The restarted target was tied to the controller like the first one, and died
            // with it (recover also kills it: it is journalled).
            Fault::Crash(_) => Ok(
                "nothing to undo: the target and its restart ended with the run".into(),
            ),
            // The extra load ran in the controller, and stopped with it.
            Fault::Overload(_) => Ok("nothing to undo: the extra load ended with the run".into()),
            // The generator ran in the controller, and stopped with it.
            Fault::InvalidInput(_) => Ok("nothing to undo: the request generator ended with the run".into()),
        }
    }

    /// What the fault needs from the way the target is started (the lab arranges it).
    pub fn target_needs(&self) -> crate::target::TargetNeeds {
        match self {
            Fault::DiskFull(f) => f.target_needs(),
            Fault::Permission(f) => f.target_needs(),
            Fault::Config(f) => f.target_needs(),
            Fault::Connections(f) => crate::target::TargetNeeds {
                max_connections: Some(f.max_connections),
                ..Default::default()
            },
            _ => crate::target::TargetNeeds::default(),
        }
    }

    /// Undoes the fault and verifies it is gone.
    pub async fn revert(&self, lab: &Lab) -> Result<(), FaultError> {
        match self {
            Fault::Failpoint(f) => f.revert(lab).await,
            Fault::Network(f) => f.revert(lab).await,
            Fault::Dependency(f) => f.revert(lab).await,
            Fault::Lock(f) => f.revert(lab).await,
            Fault::Connections(f) => f.revert(lab).await,
            Fault::Migration(f) => f.revert(lab).await,
            Fault::Crash(f) => f.revert(lab).await,
            Fault::Overload(f) => f.revert(lab).await,
            Fault::InvalidInput(f) => f.revert(lab).await,
            Fault::DiskFull(f) => f.revert(lab).await,
            Fault::Memory(f) => f.revert(lab).await,
            Fault::Permission(f) => f.revert(lab).await,
            Fault::FdLimit(f) => f.revert(lab).await,
            Fault::Config(f) => f.revert(lab).await,
        }
    }
}

/// A fault's own part of the seed, from its description: a fault that draws (extra load,
/// generated input) seeds its generator with the run's seed and this, so that adding a fault
/// to a scenario does not change what anything else draws. (FNV-1a: stable across builds,
/// unlike the standard library's hasher.)
pub(crate) fn seed_for(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hint_for(kind: &str) -> String {
    match kind {
        "failpoint" => "a failpoint fault takes name = \"<failpoint>\" and action = \"panic\" | \"return\" | \"20%panic\" | \"sleep(200)\"".into(),
        "network" => "a network fault takes target = \"database\" | \"payments\", fault = \"latency\" | \"stall\" | \"down\" | \"reset\" | \"bandwidth\", and latency, jitter, bytes_per_sec, fraction as needed".into(),
        "dependency" => "a dependency fault takes target = \"payments\", behaviour = \"error\" (with status = 503) | \"garbage\" | \"slow\" (with delay = \"3s\") | \"hang\"".into(),
        "disk-full" => "a disk-full fault takes an optional size = \"8MiB\" (the data directory's tmpfs)".into(),
        "memory" => "a memory fault takes limit = \"256MiB\" (the cgroup's) and hog = \"240MiB\" (what the hog holds, below the limit)".into(),
        "permission" => "a permission fault takes path = \"receipts\" | \"data-dir\" and mode = \"0500\"".into(),
        "fd-limit" => "an fd-limit fault takes an optional headroom = 0 (descriptors left free above those open)".into(),
        "config" => "a config fault takes change = \"reload\" | \"start\", set = { key = value, ... } and names = \"<the key the error must name>\"".into(),
        "lock" => "a lock fault takes table = \"orders\" and optionally mode = \"access-exclusive\" | \"exclusive\" | \"share\" | \"row-exclusive\" | ...".into(),
        "connections" => "a connections fault takes optionally max_connections = 20 (the lab's PostgreSQL limit) and reset_target = true | false".into(),
        "migration" => "a migration fault takes change = \"rename-column\" (with to = \"new_name\") | \"add-not-null-column\" | \"long-lock\", table = \"orders\" and column = \"customer_email\"".into(),
        "crash" => "a crash fault takes optionally signal = \"SIGKILL\" | \"SIGABRT\" | \"SIGSEGV\"".into(),
        "overload" => "an overload fault takes rate = 300 (extra requests per second) and optionally mix = [...] as in [load] and timeout = \"5s\"".into(),
        "invalid-input" => "an invalid-input fault takes optionally cases = 200 (how many generated requests)".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn an_unknown_kind_names_the_known_ones() {
        let e = Fault::from_table(table("kind = \"meteor\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("kind"));
        assert!(e.hint.unwrap().contains("failpoint"));
    }

    #[test]
    fn an_unknown_parameter_names_the_key() {
        let e = Fault::from_table(table(
            "kind = \"failpoint\"\nname = \"get_product\"\naction = \"panic\"\nactoin = 1",
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("actoin"));
    }

    #[test]
    fn faults_round_trip_through_the_journal_format() {
        let f = Fault::from_table(table(
            "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"300ms\"",
        ))
        .unwrap();
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), f);
    }
}
