//! How the HTTP stub answers, and its one set of rules: the names of the behaviours
//! ([`BehaviourKind`]), a behaviour with its parameters ([`Behaviour`]) and the
//! table form every behaviour is checked in ([`RawBehaviour::check`]). The stub's own TOML form,
//! [`super::HttpStub::set_behaviour`] and the scenario's `dependency` fault all go through
//! that one check, so they accept the same behaviours and name the same key when they refuse one.

use crate::located::KeyError;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest `delay` of a slow answer.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// The names of the stub's behaviours, as files write them: `kind = "error"` in the stub's own
/// form, `behaviour = "error"` in a scenario's `dependency` fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BehaviourKind {
    /// Each request gets its canned answer.
    Healthy,
    /// Every call answers `status` (4xx or 5xx) with a problem body.
    Error,
    /// `200` with a body that is not JSON: a gateway's HTML page labelled as JSON.
    Garbage,
    /// Calls succeed after `delay`.
    Slow,
    /// Calls are accepted and never answered.
    Hang,
}

impl BehaviourKind {
    /// The name as files write it: `error`.
    pub fn name(self) -> &'static str {
        match self {
            BehaviourKind::Healthy => "healthy",
            BehaviourKind::Error => "error",
            BehaviourKind::Garbage => "garbage",
            BehaviourKind::Slow => "slow",
            BehaviourKind::Hang => "hang",
        }
    }
}

impl fmt::Display for BehaviourKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the stub answers every request. Serde-tagged by `kind`, so a scenario can write
/// `{ kind = "error", status = 503 }` or `{ kind = "slow", delay = "3s" }`.
///
/// Deserialization goes through [`RawBehaviour`], which rejects parameters that do not belong to
/// the kind (`status` on a `hang`): serde's `deny_unknown_fields` does not reach unit variants of
/// an internally tagged enum.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawBehaviour")]
pub enum Behaviour {
    /// Each request gets its canned answer.
    #[default]
    Healthy,
    /// Every request answers `status` (4xx or 5xx) with a problem+json body.
    Error { status: u16 },
    /// `200` with a body that is not JSON (a gateway's HTML page, labelled as JSON).
    Garbage,
    /// Each request gets its canned answer, after `delay`.
    Slow {
        #[serde(with = "crate::duration_serde")]
        delay: Duration,
    },
    /// No answer at all, until the behaviour changes (then the new behaviour answers) or the
    /// client gives up and closes the connection.
    Hang,
}

impl Behaviour {
    /// Which of the behaviours this is.
    pub fn kind(&self) -> BehaviourKind {
        match self {
            Behaviour::Healthy => BehaviourKind::Healthy,
            Behaviour::Error { .. } => BehaviourKind::Error,
            Behaviour::Garbage => BehaviourKind::Garbage,
            Behaviour::Slow { .. } => BehaviourKind::Slow,
            Behaviour::Hang => BehaviourKind::Hang,
        }
    }

    /// The behaviour in a few words, for events and reports.
    pub fn describe(&self) -> String {
        match self {
            Behaviour::Healthy => "healthy".into(),
            Behaviour::Error { status } => format!("answers {status}"),
            Behaviour::Garbage => "answers garbage".into(),
            Behaviour::Slow { delay } => {
                format!("answers after {}", humantime::format_duration(*delay))
            }
            Behaviour::Hang => "never answers".into(),
        }
    }

    /// Whether the stub can answer this way: the rules of [`RawBehaviour::check`], on the
    /// behaviour's table form.
    pub fn check(&self) -> Result<(), BehaviourKeyError> {
        RawBehaviour::from(self).check()
    }
}

/// Every key a behaviour table may hold, before it is checked against its kind. `kind` is the
/// behaviour's name; a file that names it under another key (a scenario's `behaviour = "slow"`)
/// builds this from its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBehaviour {
    pub kind: BehaviourKind,
    pub status: Option<u16>,
    #[serde(default, with = "crate::duration_serde::option")]
    pub delay: Option<Duration>,
}

/// A behaviour table refused at one of its keys.
pub type BehaviourKeyError = KeyError;

impl RawBehaviour {
    /// The stub's rules for a behaviour table, the only ones: an `error` answers a 4xx or 5xx
    /// `status`, a `slow` answer waits a bounded `delay`, and no other behaviour takes either.
    pub fn check(&self) -> Result<(), BehaviourKeyError> {
        use BehaviourKind as Kind;
        match (self.kind, self.status, self.delay) {
            (Kind::Error, None, _) => Err(KeyError::new(
                "kind",
                "an `error` behaviour needs the `status` it answers, e.g. status = 503",
            )),
            (Kind::Error, Some(s), _) if !(400..=599).contains(&s) => Err(KeyError::new(
                "status",
                format!("status {s} is not an error; use a 4xx or 5xx status"),
            )),
            (Kind::Slow, _, None) => Err(KeyError::new(
                "kind",
                "a `slow` behaviour needs the `delay` of each answer, e.g. delay = \"3s\"",
            )),
            (Kind::Slow, _, Some(d)) if d.is_zero() || d > MAX_DELAY => {
                Err(KeyError::new("delay", "delay must be between 1ms and 10m"))
            }
            (kind, Some(_), _) if kind != Kind::Error => Err(KeyError::new(
                "status",
                format!("status only applies to an `error` behaviour, not to `{kind}`"),
            )),
            (kind, _, Some(_)) if kind != Kind::Slow => Err(KeyError::new(
                "delay",
                format!("delay only applies to a `slow` behaviour, not to `{kind}`"),
            )),
            _ => Ok(()),
        }
    }

    /// The behaviour this table describes, whether or not it passes [`RawBehaviour::check`]: a
    /// missing status is 503, a missing delay one second.
    pub fn build(&self) -> Behaviour {
        match self.kind {
            BehaviourKind::Healthy => Behaviour::Healthy,
            BehaviourKind::Error => Behaviour::Error {
                status: self.status.unwrap_or(503),
            },
            BehaviourKind::Garbage => Behaviour::Garbage,
            BehaviourKind::Slow => Behaviour::Slow {
                delay: self.delay.unwrap_or(Duration::from_secs(1)),
            },
            BehaviourKind::Hang => Behaviour::Hang,
        }
    }
}

impl From<&Behaviour> for RawBehaviour {
    fn from(behaviour: &Behaviour) -> Self {
        let (status, delay) = match *behaviour {
            Behaviour::Error { status } => (Some(status), None),
            Behaviour::Slow { delay } => (None, Some(delay)),
            Behaviour::Healthy | Behaviour::Garbage | Behaviour::Hang => (None, None),
        };
        RawBehaviour {
            kind: behaviour.kind(),
            status,
            delay,
        }
    }
}

impl TryFrom<RawBehaviour> for Behaviour {
    type Error = BehaviourKeyError;

    fn try_from(raw: RawBehaviour) -> Result<Self, BehaviourKeyError> {
        raw.check()?;
        Ok(raw.build())
    }
}
