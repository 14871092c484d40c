//! The proxy's fault vocabulary and its one set of rules: the names of the five faults
//! ([`ProxyFaultKind`]), a fault with its parameters ([`ProxyFault`]) and the fraction of
//! connections it applies to ([`FaultSpec`]), and the table form every fault is checked in
//! ([`RawFault::check`]). The proxy's own TOML form, [`super::Proxy::set_fault`] and the
//! scenario's `network` fault all go through that one check, so they accept the same faults and
//! name the same key when they refuse one.

use crate::located::KeyError;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest `latency` or `jitter`: both are added to every chunk's send time, so they are
/// bounded for no sum to overflow later.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// The names of the proxy's faults, as files write them: `kind = "latency"` in the proxy's own
/// form, `fault = "latency"` in a scenario's `network` fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyFaultKind {
    /// Every chunk is delayed by `latency` ± `jitter`.
    Latency,
    /// Connections are accepted but nothing is forwarded.
    Stall,
    /// New connections are refused and open ones cut.
    Down,
    /// Connections are reset (RST).
    Reset,
    /// Throughput limited to `bytes_per_sec`.
    Bandwidth,
}

impl ProxyFaultKind {
    /// The name as files write it: `latency`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyFaultKind::Latency => "latency",
            ProxyFaultKind::Stall => "stall",
            ProxyFaultKind::Down => "down",
            ProxyFaultKind::Reset => "reset",
            ProxyFaultKind::Bandwidth => "bandwidth",
        }
    }
}

impl fmt::Display for ProxyFaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A network fault, holding only its parameters. Serde-tagged by `kind` so a scenario can write
/// `{ kind = "latency", latency = "200ms", jitter = "50ms" }`.
///
/// Deserialization goes through [`RawFault`], which rejects parameters that do not belong to the
/// kind (`latency` on a `stall`): serde's `deny_unknown_fields` does not reach unit variants of an
/// internally tagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawFault")]
pub enum ProxyFault {
    /// Every chunk, in each direction, is held `latency ± jitter` (uniform) before it is written.
    ///
    /// Chunks are held one after another (the next is read once this one is written), so a
    /// request or an answer gets one `latency` per direction and a bulk stream slows to one chunk
    /// per `latency`. Toxiproxy instead keeps reading while chunks wait, which needs a queue of
    /// unbounded size; database and HTTP exchanges look the same either way.
    Latency {
        #[serde(with = "crate::duration_serde")]
        latency: Duration,
        #[serde(default, with = "crate::duration_serde")]
        jitter: Duration,
    },
    /// Connections are accepted but nothing is forwarded: open connections stop copying (bytes
    /// wait in the kernel buffers) and new ones are not connected upstream. A black hole.
    Stall,
    /// Refuse new connections (the proxy stops listening, so clients get `ECONNREFUSED`; with a
    /// fraction below 1, the picked connections are closed right after accept) and close the
    /// open ones.
    Down,
    /// Reset connections: open ones and new ones are closed with `SO_LINGER` 0, so the peers see
    /// `ECONNRESET`.
    Reset,
    /// Limit each direction of each connection to `bytes_per_sec`.
    Bandwidth { bytes_per_sec: u64 },
}

impl ProxyFault {
    /// Applies this fault to a `fraction` of connections (0..=1).
    pub fn on_fraction(self, fraction: f64) -> FaultSpec {
        FaultSpec {
            fault: self,
            fraction,
        }
    }

    /// Which of the five faults this is.
    pub fn kind(&self) -> ProxyFaultKind {
        match self {
            ProxyFault::Latency { .. } => ProxyFaultKind::Latency,
            ProxyFault::Stall => ProxyFaultKind::Stall,
            ProxyFault::Down => ProxyFaultKind::Down,
            ProxyFault::Reset => ProxyFaultKind::Reset,
            ProxyFault::Bandwidth { .. } => ProxyFaultKind::Bandwidth,
        }
    }

    /// The fault in a few words, for events and reports: `latency 200ms ± 50ms`.
    pub fn describe(&self) -> String {
        match self {
            ProxyFault::Latency { latency, jitter } if jitter.is_zero() => {
                format!("latency {}", humantime::format_duration(*latency))
            }
            ProxyFault::Latency { latency, jitter } => format!(
                "latency {} ± {}",
                humantime::format_duration(*latency),
                humantime::format_duration(*jitter)
            ),
            ProxyFault::Stall => "stall".to_string(),
            ProxyFault::Down => "down".to_string(),
            ProxyFault::Reset => "reset".to_string(),
            ProxyFault::Bandwidth { bytes_per_sec } => format!("bandwidth {bytes_per_sec} B/s"),
        }
    }
}

/// A fault and the fraction of connections it applies to: Toxiproxy's "toxicity", kept out of
/// the fault itself. Deserializes from the fault's own table plus an optional `fraction`
/// (default 1): `{ kind = "stall", fraction = 0.5 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFault")]
pub struct FaultSpec {
    #[serde(flatten)]
    pub fault: ProxyFault,
    pub fraction: f64,
}

impl From<ProxyFault> for FaultSpec {
    fn from(fault: ProxyFault) -> Self {
        fault.on_fraction(1.0)
    }
}

impl FaultSpec {
    /// The spec in a few words: `stall (50% of connections)`.
    pub fn describe(&self) -> String {
        if self.fraction >= 1.0 {
            self.fault.describe()
        } else {
            format!(
                "{} ({}% of connections)",
                self.fault.describe(),
                self.fraction * 100.0
            )
        }
    }

    /// Whether the proxy can apply this spec: the rules of [`RawFault::check`], on the spec's
    /// table form.
    pub fn check(&self) -> Result<(), FaultKeyError> {
        RawFault::from(self).check()
    }
}

/// Every key a fault table may hold, before it is checked against its kind. `kind` is the
/// fault's name; a file that names it under another key (a scenario's `fault = "stall"`) builds
/// this from its own fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub kind: ProxyFaultKind,
    #[serde(default, with = "crate::duration_serde::option")]
    pub latency: Option<Duration>,
    #[serde(default, with = "crate::duration_serde::option")]
    pub jitter: Option<Duration>,
    pub bytes_per_sec: Option<u64>,
    pub fraction: Option<f64>,
}

/// A fault table refused at one of its keys.
pub type FaultKeyError = KeyError;

impl RawFault {
    /// The proxy's rules for a fault table, the only ones: the fraction is a share, delays are
    /// bounded, each kind has the parameters it needs and no parameter of another kind.
    pub fn check(&self) -> Result<(), FaultKeyError> {
        if let Some(f) = self.fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(KeyError::new(
                "fraction",
                format!("fraction {f} is not between 0 and 1"),
            ));
        }
        for (key, d) in [("latency", self.latency), ("jitter", self.jitter)] {
            if d.is_some_and(|d| d > MAX_DELAY) {
                return Err(KeyError::new(
                    key,
                    format!("{key} is too long: at most 10m"),
                ));
            }
        }
        let kind = self.kind;
        match (kind, self.bytes_per_sec) {
            (ProxyFaultKind::Latency, _) if self.latency.is_none() => Err(KeyError::new(
                "kind",
                "a latency fault needs `latency`, e.g. \"200ms\"",
            )),
            (ProxyFaultKind::Bandwidth, None) => Err(KeyError::new(
                "kind",
                "a bandwidth fault needs `bytes_per_sec`",
            )),
            (ProxyFaultKind::Bandwidth, Some(0)) => Err(KeyError::new(
                "kind",
                "bandwidth must be at least 1 byte per second (use `stall` to stop traffic)",
            )),
            _ if kind != ProxyFaultKind::Latency
                && (self.latency.is_some() || self.jitter.is_some()) =>
            {
                Err(KeyError::new(
                    "latency",
                    format!("`latency` and `jitter` do not apply to a {kind} fault"),
                ))
            }
            (_, Some(_)) if kind != ProxyFaultKind::Bandwidth => Err(KeyError::new(
                "bytes_per_sec",
                format!("`bytes_per_sec` does not apply to a {kind} fault"),
            )),
            _ => Ok(()),
        }
    }

    /// The spec this table describes, whether or not it passes [`RawFault::check`]: a missing
    /// parameter is zero latency, one byte per second, every connection.
    pub fn build(&self) -> FaultSpec {
        let fault = match self.kind {
            ProxyFaultKind::Latency => ProxyFault::Latency {
                latency: self.latency.unwrap_or_default(),
                jitter: self.jitter.unwrap_or_default(),
            },
            ProxyFaultKind::Stall => ProxyFault::Stall,
            ProxyFaultKind::Down => ProxyFault::Down,
            ProxyFaultKind::Reset => ProxyFault::Reset,
            ProxyFaultKind::Bandwidth => ProxyFault::Bandwidth {
                bytes_per_sec: self.bytes_per_sec.unwrap_or(1),
            },
        };
        fault.on_fraction(self.fraction.unwrap_or(1.0))
    }
}

impl From<&FaultSpec> for RawFault {
    fn from(spec: &FaultSpec) -> Self {
        let (latency, jitter, bytes_per_sec) = match spec.fault {
            ProxyFault::Latency { latency, jitter } => (Some(latency), Some(jitter), None),
            ProxyFault::Bandwidth { bytes_per_sec } => (None, None, Some(bytes_per_sec)),
            ProxyFault::Stall | ProxyFault::Down | ProxyFault::Reset => (None, None, None),
        };
        RawFault {
            kind: spec.fault.kind(),
            latency,
            jitter,
            bytes_per_sec,
            fraction: Some(spec.fraction),
        }
    }
}

impl TryFrom<RawFault> for FaultSpec {
    type Error = FaultKeyError;

    fn try_from(raw: RawFault) -> Result<Self, FaultKeyError> {
        raw.check()?;
        Ok(raw.build())
    }
}

impl TryFrom<RawFault> for ProxyFault {
    type Error = FaultKeyError;

    fn try_from(raw: RawFault) -> Result<Self, FaultKeyError> {
        if raw.fraction.is_some() {
            return Err(KeyError::new(
                "fraction",
                "`fraction` belongs to the fault's spec, not to the fault",
            ));
        }
        FaultSpec::try_from(raw).map(|spec| spec.fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(text: &str) -> Option<String> {
        let raw: RawFault = toml::from_str(text).unwrap();
        raw.check().err().map(|e| e.key.to_string())
    }

    #[test]
    fn each_kind_takes_only_its_own_parameters() {
        assert_eq!(key_of("kind = \"latency\"\nlatency = \"1s\""), None);
        assert_eq!(key_of("kind = \"bandwidth\"\nbytes_per_sec = 10"), None);
        assert_eq!(key_of("kind = \"stall\"\nfraction = 0.5"), None);
        assert_eq!(key_of("kind = \"latency\"").as_deref(), Some("kind"));
        assert_eq!(key_of("kind = \"bandwidth\"").as_deref(), Some("kind"));
        assert_eq!(
            key_of("kind = \"bandwidth\"\nbytes_per_sec = 0").as_deref(),
            Some("kind")
        );
        assert_eq!(
            key_of("kind = \"stall\"\njitter = \"1s\"").as_deref(),
            Some("latency")
        );
        assert_eq!(
            key_of("kind = \"bandwidth\"\nbytes_per_sec = 10\nlatency = \"1s\"").as_deref(),
            Some("latency")
        );
        assert_eq!(
            key_of("kind = \"latency\"\nlatency = \"1s\"\nbytes_per_sec = 10").as_deref(),
            Some("bytes_per_sec")
        );
        assert_eq!(
            key_of("kind = \"down\"\nfraction = 1.5").as_deref(),
            Some("fraction")
        );
        assert_eq!(
            key_of("kind = \"latency\"\nlatency = \"11m\"").as_deref(),
            Some("latency")
        );
    }

    #[test]
    fn a_spec_is_checked_by_the_same_rules_as_its_table() {
        for spec in [
            ProxyFault::Stall.on_fraction(1.5),
            ProxyFault::Bandwidth { bytes_per_sec: 0 }.into(),
            ProxyFault::Latency {
                latency: Duration::from_secs(3600),
                jitter: Duration::ZERO,
            }
            .into(),
        ] {
            assert!(spec.check().is_err(), "{}", spec.describe());
        }
        let ok = ProxyFault::Latency {
            latency: Duration::from_millis(200),
            jitter: Duration::from_millis(50),
        }
        .on_fraction(0.5);
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(RawFault::from(&ok).build(), ok);
    }
}
