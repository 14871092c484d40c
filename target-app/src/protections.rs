//! The `--protections` set: each protection, what it guards, and how the flag is parsed.
//!
//! Every protection can be switched off so that a learner, and the harness, can see the failure
//! it prevents. Each one lives in a single place in the code, which asks
//! `state.protections.on(Protection::X)`; grep for the variant to find it.

use std::fmt;
use std::str::FromStr;

/// One protection. The doc line of each variant is what `--help` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    CatchPanic,
    SafeErrors,
    Timeouts,
    CircuitBreaker,
    StaleCache,
    LoadShed,
    Validation,
    Outbox,
    Idempotency,
    SchemaCheck,
}

impl Protection {
    pub const ALL: [Protection; 10] = [
        Protection::CatchPanic,
        Protection::SafeErrors,
        Protection::Timeouts,
        Protection::CircuitBreaker,
        Protection::StaleCache,
        Protection::LoadShed,
        Protection::Validation,
        Protection::Outbox,
        Protection::Idempotency,
        Protection::SchemaCheck,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protection::CatchPanic => "catch-panic",
            Protection::SafeErrors => "safe-errors",
            Protection::Timeouts => "timeouts",
            Protection::CircuitBreaker => "circuit-breaker",
            Protection::StaleCache => "stale-cache",
            Protection::LoadShed => "load-shed",
            Protection::Validation => "validation",
            Protection::Outbox => "outbox",
            Protection::Idempotency => "idempotency",
            Protection::SchemaCheck => "schema-check",
        }
    }

    /// What it guards against, and what happens without it.
    pub fn guards(self) -> &'static str {
        match self {
            Protection::CatchPanic => {
                "a handler panic answers 500 problem+json and is logged with its backtrace; a panicked background worker is restarted and counted (off: the connection is dropped, nothing logged; the worker dies silently)"
            }
            Protection::SafeErrors => {
                "error bodies carry generic messages, details go to the log only (off: SQL, errno and panic text in the body)"
            }
            Protection::Timeouts => {
                "statement and lock timeouts, a 2s pool acquire timeout, a request deadline (503) and a payments timeout (off: requests hang as long as the fault lasts)"
            }
            Protection::CircuitBreaker => {
                "database and payments breakers fail fast with 503 + Retry-After while open (off: every request waits for the broken dependency)"
            }
            Protection::StaleCache => {
                "the catalogue is served from a stale cache, marked `x-cache: stale`, while the database fails (off: the catalogue answers 5xx)"
            }
            Protection::LoadShed => {
                "a concurrency limit and a memory threshold answer 503 + Retry-After fast (off: unbounded queueing and memory growth)"
            }
            Protection::Validation => {
                "invalid input answers 400/422 (off: it reaches the database and answers 500)"
            }
            Protection::Outbox => {
                "receipts are written by a retrying background worker, so a disk failure never fails a committed order (off: the order answers 500 after its commit)"
            }
            Protection::Idempotency => {
                "a retried POST /orders with the same Idempotency-Key returns the first order (off: a duplicate order and charge)"
            }
            Protection::SchemaCheck => {
                "/readyz fails when the database schema is not the one this binary expects (off: readiness stays green on a broken schema)"
            }
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The protections that are switched on. Fixed for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protections(u16);

impl Protections {
    pub const NONE: Protections = Protections(0);
    pub const ALL: Protections = Protections((1 << Protection::ALL.len()) - 1);

    pub fn on(self, p: Protection) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn with(self, p: Protection) -> Protections {
        Protections(self.0 | p.bit())
    }

    pub fn without(self, p: Protection) -> Protections {
        Protections(self.0 & !p.bit())
    }
}

impl Default for Protections {
    fn default() -> Self {
        Protections::ALL
    }
}

/// `all`, `none`, or a comma list of names where `-name` removes one: `all,-catch-panic`,
/// `none,timeouts`, `timeouts,validation`.
impl FromStr for Protections {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Protections::NONE;
        for item in s.split(',').map(str::trim) {
            set = match item {
                "all" => Protections::ALL,
                "none" => Protections::NONE,
                _ => {
                    let (remove, name) = match item.strip_prefix('-') {
                        Some(name) => (true, name),
                        None => (false, item),
                    };
                    let p = Protection::ALL
                        .into_iter()
                        .find(|p| p.name() == name)
                        .ok_or_else(|| {
                            let known: Vec<_> = Protection::ALL.iter().map(|p| p.name()).collect();
                            format!(
                                "unknown protection `{item}` (known: all, none, {})",
                                known.join(", ")
                            )
                        })?;
                    if remove { set.without(p) } else { set.with(p) }
                }
            };
        }
        Ok(set)
    }
}

impl fmt::Display for Protections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protections::ALL => f.write_str("all"),
            Protections::NONE => f.write_str("none"),
            set => {
                let on: Vec<_> = Protection::ALL
                    .into_iter()
                    .filter(|p| set.on(*p))
                    .map(|p| p.name())
                    .collect();
                f.write_str(&on.join(","))
            }
        }
    }
}

/// The `--protections` help text: every protection and what it guards.
pub fn help() -> String {
    let mut s = String::from(
        "Protections to switch on: `all`, `none`, or a comma list where `-name` removes one \
         (`all,-catch-panic`). Switching one off shows the failure it prevents.\n",
    );
    for p in Protection::ALL {
        s.push_str(&format!("\n  {:<16}{}", p.name(), p.guards()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_minus_one_switches_only_that_one_off() {
        let set: Protections = "all,-catch-panic".parse().unwrap();
        assert!(!set.on(Protection::CatchPanic));
        assert!(set.on(Protection::Timeouts));
        assert_eq!(set, Protections::ALL.without(Protection::CatchPanic));
    }

    #[test]
    fn a_plain_list_switches_on_only_those() {
        let set: Protections = "timeouts, validation".parse().unwrap();
        assert!(set.on(Protection::Timeouts) && set.on(Protection::Validation));
        assert!(!set.on(Protection::Outbox));
        assert_eq!(set.to_string(), "timeouts,validation");
    }

    #[test]
    fn an_unknown_name_is_rejected_naming_it() {
        let err = "all,-catchpanic".parse::<Protections>().unwrap_err();
        assert!(err.contains("`-catchpanic`"), "{err}");
    }

    #[test]
    fn help_names_every_protection() {
        let help = help();
        for p in Protection::ALL {
            assert!(help.contains(p.name()), "{} missing", p.name());
        }
    }
}
