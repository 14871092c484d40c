//! Network faults in the lab's TCP proxies: latency, stalls, outages, resets and bandwidth
//! limits between the target and its database or a dependency. No privileges or kernel modules
//! needed; applied to open connections as well as new ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::{Lab, ProxyTarget};
use crate::proxy::{FaultSpec, ProxyFault};

/// Which proxy a network fault goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkFault {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub target: ProxyTarget,
    pub fault: NetworkFault,
    #[serde(
        default,
        with = "crate::duration_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    #[serde(
        default,
        with = "crate::duration_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<u64>,
    /// Share of connections affected, drawn from the run's seed. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
}

impl FaultKind for Network {
    const HINT: &'static str = "a network fault takes target = \"database\" | \"payments\", fault = \"latency\" | \"stall\" | \"down\" | \"reset\" | \"bandwidth\", and latency, jitter, bytes_per_sec, fraction as needed";
    const ORPHAN: &'static str = "nothing to undo: it lived in processes that ended with the run";
    type Held = ();

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(f) = self.fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(("fraction", format!("fraction {f} is not between 0 and 1")));
        }
        // Added to every chunk's send time by the proxy: bounded so no sum overflows later.
        for (key, d) in [("latency", self.latency), ("jitter", self.jitter)] {
            if d.is_some_and(|d| d > Duration::from_secs(600)) {
                return Err((key, format!("{key} is too long: at most 10m")));
            }
        }
        match self.fault {
            NetworkFault::Latency if self.latency.is_none() => {
                Err(("fault", "a latency fault needs `latency`".into()))
            }
            NetworkFault::Bandwidth if self.bytes_per_sec.is_none_or(|b| b == 0) => Err((
                "fault",
                "a bandwidth fault needs a positive `bytes_per_sec`".into(),
            )),
            NetworkFault::Latency | NetworkFault::Bandwidth => Ok(()),
            _ if self.latency.is_some() || self.jitter.is_some() => Err((
                "latency",
                "latency and jitter only apply to a latency fault".into(),
            )),
            _ if self.bytes_per_sec.is_some() => Err((
                "bytes_per_sec",
                "bytes_per_sec only applies to a bandwidth fault".into(),
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        let target = &self.target;
        let what = match self.fault {
            NetworkFault::Latency => format!(
                "latency {}{}",
                humantime::format_duration(self.latency.unwrap_or_default()),
                self.jitter
                    .map(|j| format!(" ± {}", humantime::format_duration(j)))
                    .unwrap_or_default()
            ),
            NetworkFault::Stall => "stall".into(),
            NetworkFault::Down => "down".into(),
            NetworkFault::Reset => "reset".into(),
            NetworkFault::Bandwidth => {
                format!("bandwidth {} B/s", self.bytes_per_sec.unwrap_or_default())
            }
        };
        let share = match self.fraction {
            Some(f) if f < 1.0 => format!(" on {:.0}% of connections", f * 100.0),
            _ => String::new(),
        };
        format!("{target} proxy: {what}{share}")
    }

    async fn inject(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let proxy = self.proxy(lab)?;
        proxy
            .set_fault(self.proxy_fault())
            .map_err(|e| FaultError::Failed(e.to_string()))
    }

    async fn revert(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let proxy = self.proxy(lab)?;
        proxy.clear_fault();
        if proxy.active_fault().is_some() {
            return Err(FaultError::Failed(format!(
                "{} still has a fault after revert",
                self.describe()
            )));
        }
        Ok(())
    }
}

impl Network {
    fn proxy<'a>(&self, lab: &'a Lab) -> Result<&'a crate::proxy::Proxy, FaultError> {
        lab.proxy(&self.target).ok_or_else(|| {
            FaultError::Failed(format!(
                "the lab has no proxy named `{}`; it has: {}",
                self.target,
                lab.proxy_names().join(", ")
            ))
        })
    }

    /// The proxy's own form of this fault.
    pub fn proxy_fault(&self) -> FaultSpec {
        let fault = match self.fault {
            NetworkFault::Latency => ProxyFault::Latency {
                latency: self.latency.unwrap_or_default(),
                jitter: self.jitter.unwrap_or_default(),
            },
            NetworkFault::Stall => ProxyFault::Stall,
            NetworkFault::Down => ProxyFault::Down,
            NetworkFault::Reset => ProxyFault::Reset,
            NetworkFault::Bandwidth => ProxyFault::Bandwidth {
                bytes_per_sec: self.bytes_per_sec.unwrap_or(1),
            },
        };
        fault.on_fraction(self.fraction.unwrap_or(1.0))
    }
}
