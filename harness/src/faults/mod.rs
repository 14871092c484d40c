//! Faults: each kind is one type holding only its parameters, in a file of its own, that
//! implements [`FaultKind`] (its hint, validation, what it needs, `inject` and `revert`, and what
//! a crash leaves to undo). [`Fault`] is the closed set of kinds, generated with its dispatch and
//! the [`KINDS`] catalogue from the one list in [`kinds!`] below.
//!
//! Every fault goes through [`Injector`]: journalled before it is injected, injected within a
//! deadline, recorded on the timeline, reverted with retries and journalled as reverted.
//!
//! # Adding a fault kind
//!
//! Two edits, nothing else; a kind that forgets a part of the contract does not compile.
//!
//! 1. A file `faults/<name>.rs` with a type holding the kind's parameters (serde, with
//!    `deny_unknown_fields`) and `impl FaultKind for <Type>`. The smallest real kind is
//!    [`failpoint`](Failpoint): its `Held` is `()` (it holds nothing between `inject` and
//!    `revert`), `validate` checks the action's grammar, `inject` sets the failpoint through the
//!    target's admin API and `revert` clears it and reads it back. A kind that holds something
//!    (a database session, a helper process, a task) names it as `Held`: `inject` fills the slot
//!    it is given, `revert` takes it back out, and dropping it (the lab going away) releases it.
//!    A kind that needs the target started a certain way says so in `target_needs`, one that
//!    needs a privilege in `check_supported`, and one that measures the machine (the service's
//!    capacity, so its scenario must run with no other lab beside it) sets `ALONE`; all three
//!    default to nothing. The newest kind, [`container`](Container), was added with exactly
//!    these two edits.
//! 2. One line in [`kinds!`]: `"name" => Variant(module::Type),` with a doc comment. From that
//!    line come the enum variant, the `kind = "name"` tag of scenario files and journals, the
//!    entry in [`KINDS`] and the parameter hint shown with a parse error.
//!
//! Scenario files, `fivehundred list`, game days and `recover` then know the kind.

mod held;
mod injector;
mod pg;

pub use injector::{INJECT_TIMEOUT, Injected, Injector};

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::lab::Lab;
use crate::target::TargetNeeds;

/// The contract of one fault kind. The type holds only the kind's parameters: it is compared,
/// journalled and shown; whatever an injection creates lives in [`FaultKind::Held`].
pub trait FaultKind:
    std::fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// One line on the kind's parameters, shown with an error in a scenario file.
    const HINT: &'static str;
    /// What `fivehundred recover` says of this fault after the run that injected it was killed:
    /// what it left behind and how that is undone (each thing it creates outside the run's
    /// processes is journalled as a resource before it exists, and removed by `recover`).
    const ORPHAN: &'static str;
    /// The fault measures what the machine can do (a service's capacity), so its scenario runs
    /// with no other lab beside it, whatever `--jobs` says.
    const ALONE: bool = false;
    /// What an injection holds until its revert; `()` for nothing. Dropped with the lab when
    /// the revert never ran, which closes sessions and stops helpers: the last line of defence.
    type Held: Send + 'static;

    /// Checks the parameters beyond their types; `Err` names the key and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// Fits the fault to the service it will be injected into, before anything runs: its lab
    /// file (a failpoint it lists, requests completed from its `[[request]]`s) and the
    /// scenario's load mix (for kinds that vary or add to the load). `Err` names the key and
    /// what is wrong, as [`FaultKind::validate`] does.
    fn fit(
        &mut self,
        _lab: &crate::labfile::LabFile,
        _mix: &[crate::load::MixEntry],
    ) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// A short human description: `failpoint get_product = 20%panic`.
    fn describe(&self) -> String;

    /// Whether this machine allows the mechanism, checked before the lab starts. `Err` names
    /// what is missing and how to get it; the scenario is then skipped, never faked.
    fn check_supported(&self) -> Result<(), String> {
        Ok(())
    }

    /// What the fault needs from the way the target is started (the lab arranges it).
    fn target_needs(&self) -> TargetNeeds {
        TargetNeeds::default()
    }

    /// How long one attempt at `revert` may take before it is abandoned: [`INJECT_TIMEOUT`],
    /// unless the revert waits for something the lab file gives a longer bound (a restarted
    /// service's `ready_within`).
    fn revert_within(&self, _lab: &crate::labfile::LabFile) -> std::time::Duration {
        INJECT_TIMEOUT
    }

    /// Injects the fault. What it creates goes into `held` as soon as it exists, so that a
    /// failed or abandoned injection is reverted like a finished one.
    fn inject(
        &self,
        lab: &Lab,
        held: &mut Option<Self::Held>,
    ) -> impl Future<Output = Result<(), FaultError>> + Send;

    /// Undoes the fault and verifies it is gone. `held` is what `inject` left (`None` when it
    /// failed before creating anything); on failure, what the next attempt needs stays there.
    fn revert(
        &self,
        lab: &Lab,
        held: &mut Option<Self::Held>,
    ) -> impl Future<Output = Result<(), FaultError>> + Send;
}

/// The list of kinds: one line each. Generates the kinds' modules, the [`Fault`] enum (tagged by
/// `kind` in files and journals), [`KINDS`], and the dispatch from [`Fault`] to each kind.
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $name:literal => $variant:ident($module:ident :: $ty:ident),)*) => {
        $(mod $module;)*
        $(pub use $module::$ty;)*

        /// Every kind of fault a scenario can name, tagged by `kind` in files and journals.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Fault {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant($ty),)*
        }

        /// The kinds, as scenario files name them.
        pub const KINDS: &[&str] = &[$($name),*];

        fn hint_for(kind: &str) -> &'static str {
            $(if kind == $name { return <$ty as FaultKind>::HINT; })*
            ""
        }

        impl Fault {
            fn validate(&self) -> Result<(), (&'static str, String)> {
                match self { $(Fault::$variant(f) => f.validate(),)* }
            }

            /// Fits the fault to its lab file and its scenario's load (see [`FaultKind::fit`]),
            /// with the kind's hint on an error.
            pub fn fit(
                &mut self,
                lab: &crate::labfile::LabFile,
                mix: &[crate::load::MixEntry],
            ) -> Result<(), FaultSpecError> {
                let kind = self.kind();
                let fitted = match self { $(Fault::$variant(f) => f.fit(lab, mix),)* };
                fitted.map_err(|(key, message)| FaultSpecError {
                    key: Some(key.to_string()),
                    message,
                    hint: Some(hint_for(kind).to_string()),
                })
            }

            /// A short human description: `failpoint get_product = 20%panic`.
            pub fn describe(&self) -> String {
                match self { $(Fault::$variant(f) => f.describe(),)* }
            }

            /// The kind, as files name it: `network`.
            pub fn kind(&self) -> &'static str {
                match self { $(Fault::$variant(_) => $name,)* }
            }

            /// Whether this machine allows the fault's mechanism (see
            /// [`FaultKind::check_supported`]).
            pub fn check_supported(&self) -> Result<(), String> {
                match self { $(Fault::$variant(f) => f.check_supported(),)* }
            }

            /// What the fault needs from the way the target is started.
            pub fn target_needs(&self) -> TargetNeeds {
                match self { $(Fault::$variant(f) => f.target_needs(),)* }
            }

            /// How long one revert attempt may take (see [`FaultKind::revert_within`]).
            pub fn revert_within(&self, lab: &crate::labfile::LabFile) -> std::time::Duration {
                match self { $(Fault::$variant(f) => f.revert_within(lab),)* }
            }

            /// Whether a scenario with this fault needs the machine to itself (see
            /// [`FaultKind::ALONE`]).
            pub fn alone(&self) -> bool {
                match self { $(Fault::$variant(_) => <$ty as FaultKind>::ALONE,)* }
            }

            /// What `recover` says of it after a crash (see [`FaultKind::ORPHAN`]).
            pub fn orphan(&self) -> &'static str {
                match self { $(Fault::$variant(_) => <$ty as FaultKind>::ORPHAN,)* }
            }

            /// The fault with an empty slot for what its injection will hold.
            fn arm(&self) -> Box<dyn held::Armed> {
                match self { $(Fault::$variant(f) => held::Slot::boxed(f.clone()),)* }
            }
        }
    };
}

kinds! {
    /// A failpoint in the target, set through its admin API.
    "failpoint" => Failpoint(failpoint::Failpoint),
    /// A network fault in the proxy in front of the database or a dependency.
    "network" => Network(network::Network),
    /// The payments API itself answers errors, garbage, slowly or not at all.
    "dependency" => Dependency(dependency::Dependency),
    /// A table lock held in an open transaction on the harness's own session.
    "lock" => Lock(lock::Lock),
    /// Sessions opened until PostgreSQL refuses more ("too many clients"), and held.
    "connections" => Connections(connections::Connections),
    /// A real schema migration applied to the run's database while the target runs.
    "migration" => Migration(migration::Migration),
    /// The target killed mid-load and started again by the lab when the fault ends.
    "crash" => Crash(crash::Crash),
    /// An extra open-loop load beyond what the target can serve, recorded with the scenario's.
    "overload" => Overload(overload::Overload),
    /// Requests generated with proptest sent to the target; the smallest one that answers 5xx is shown.
    "invalid-input" => InvalidInput(invalid_input::InvalidInput),
    /// The data directory (a private tmpfs) filled until writes fail with ENOSPC.
    "disk-full" => DiskFull(disk::DiskFull),
    /// The target in a memory-limited cgroup with a hog that takes most of the limit.
    "memory" => Memory(memory::Memory),
    /// The mode of a directory the (unprivileged) target writes to, changed under it.
    "permission" => Permission(permission::Permission),
    /// The running target's open-file limit lowered to what it has open.
    "fd-limit" => FdLimit(fds::FdLimit),
    /// An invalid configuration reloaded with SIGHUP, or a second start with a bad setting.
    "config" => Config(config::Config),
    /// The lab's database container paused, killed, stopped, cut off or starved (Docker labs).
    "container" => Container(container::Container),
}

pub use config::ConfigChange;
pub use dependency::Behaviour;
pub use lock::LockMode;
pub use memory::hog_main as memory_hog_main;
pub use migration::Change;
pub use permission::PermissionPath;

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
    /// Whether this machine can inject the fault into a target started from `program`: the
    /// mechanism's own privilege, and how the target must be started for it. `Ok` holds those
    /// start needs; `Err` names what is missing and how to get it (the fault is then skipped or
    /// refused, never faked). The one check runs, game days and `lab up --prepare` all make.
    pub fn preflight(&self, program: &std::path::Path) -> Result<TargetNeeds, String> {
        let needs = self.target_needs();
        self.check_supported()
            .and_then(|()| needs.supported(program))?;
        Ok(needs)
    }

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
                    hint: Some(hint_for(&kind).to_string()),
                }
            })?;
        fault.validate().map_err(|(key, message)| FaultSpecError {
            key: Some(key.to_string()),
            message,
            hint: Some(hint_for(&kind).to_string()),
        })?;
        Ok(fault)
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
    fn a_connections_fault_starts_the_lab_database_with_its_small_limit() {
        let f = Fault::from_table(table("kind = \"connections\"\nmax_connections = 17")).unwrap();
        assert_eq!(f.target_needs().max_connections, Some(17));
        let f = Fault::from_table(table("kind = \"crash\"")).unwrap();
        assert_eq!(f.target_needs(), TargetNeeds::default());
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
