//! Network faults in the lab's TCP proxies: latency, stalls, outages, resets and bandwidth
//! limits between the target and its database or a dependency. No privileges or kernel modules
//! needed; applied to open connections as well as new ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::{Lab, ProxyTarget};
use crate::proxy::{FaultSpec, ProxyFaultKind, RawFault};

/// A fault in one of the lab's proxies, as scenario files, game-day requests and journals write
/// it: `fault` takes the proxy's names, and the proxy's rules decide which other keys it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub target: ProxyTarget,
    /// Which fault, in the proxy's own names.
    pub fault: ProxyFaultKind,
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
    const HINT: &'static str = "a network fault takes target = NAME (a dependency of the lab file), fault = \"latency\" | \"stall\" | \"down\" | \"reset\" | \"bandwidth\", and latency, jitter, bytes_per_sec, fraction as needed";
    const ORPHAN: &'static str = "nothing to undo: it lived in processes that ended with the run";
    type Held = ();

    /// The proxy's own rules; an error about the fault's name points at `fault`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.raw().check().map_err(|e| e.located("fault"))
    }

    /// The target must be a proxy the lab will have for this lab file: one per `tcp` and
    /// `http` dependency, and one for the run's database under the first `postgres`
    /// dependency's name (every postgres dependency is that database).
    fn fit(
        &mut self,
        lab: &crate::labfile::LabFile,
        _mix: &[crate::load::MixEntry],
    ) -> Result<(), (&'static str, String)> {
        let proxied = proxied_dependencies(lab);
        if proxied.contains(&self.target.0.as_str()) {
            return Ok(());
        }
        let first_postgres = lab.deps_of(crate::labfile::DepKind::Postgres).next();
        Err((
            "target",
            match first_postgres {
                Some(db) if lab.deps.contains_key(&self.target.0) => format!(
                    "`{}` is the run's database, whose proxy is named after the first postgres dependency: target `{db}`",
                    self.target
                ),
                _ if proxied.is_empty() => format!(
                    "{} has no dependency the lab proxies, so no network fault applies",
                    lab.file.display()
                ),
                _ => format!(
                    "{} has no dependency `{}`; its proxied dependencies: {}",
                    lab.file.display(),
                    self.target,
                    proxied.join(", ")
                ),
            },
        ))
    }

    fn describe(&self) -> String {
        let target = &self.target;
        let what = match self.fault {
            ProxyFaultKind::Latency => format!(
                "latency {}{}",
                humantime::format_duration(self.latency.unwrap_or_default()),
                self.jitter
                    .map(|j| format!(" ± {}", humantime::format_duration(j)))
                    .unwrap_or_default()
            ),
            kind @ (ProxyFaultKind::Stall | ProxyFaultKind::Down | ProxyFaultKind::Reset) => {
                kind.to_string()
            }
            ProxyFaultKind::Bandwidth => {
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

/// The names of the lab's proxies for `lab`'s dependencies.
fn proxied_dependencies(lab: &crate::labfile::LabFile) -> Vec<&str> {
    let mut names: Vec<&str> = lab
        .deps_of(crate::labfile::DepKind::Postgres)
        .take(1)
        .collect();
    names.extend(lab.deps_of(crate::labfile::DepKind::Tcp));
    names.extend(lab.deps_of(crate::labfile::DepKind::Http));
    names
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

    /// The fault as the proxy's table form, for its checks and its spec.
    fn raw(&self) -> RawFault {
        RawFault {
            kind: self.fault,
            latency: self.latency,
            jitter: self.jitter,
            bytes_per_sec: self.bytes_per_sec,
            fraction: self.fraction,
        }
    }

    /// The proxy's own form of this fault.
    pub fn proxy_fault(&self) -> FaultSpec {
        self.raw().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;

    /// The key a network fault table is refused at, or `None` when it is a fault.
    fn refused_at(params: &str) -> Option<String> {
        let text = format!("kind = \"network\"\ntarget = \"database\"\n{params}");
        Fault::from_table(toml::from_str(&text).unwrap())
            .err()
            .map(|e| e.key.unwrap_or_default())
    }

    #[test]
    fn a_network_fault_targets_a_dependency_the_lab_proxies() {
        let lab = crate::labfile::parse(
            std::path::Path::new("/tmp/fivehundred.toml"),
            "[service]\ncommand = [\"serve\", \"{port}\"]\nenv = { A = \"{deps.db.url}\", B = \"{deps.replica.url}\", C = \"{deps.cache.addr}\" }\n[deps.db]\nkind = \"postgres\"\n[deps.replica]\nkind = \"postgres\"\n[deps.cache]\nkind = \"tcp\"\nupstream = \"127.0.0.1:6379\"\n[[request]]\npath = \"/\"\n",
        )
        .unwrap();
        let fit = |target: &str| {
            let text = format!("kind = \"network\"\ntarget = \"{target}\"\nfault = \"down\"");
            Fault::from_table(toml::from_str(&text).unwrap())
                .unwrap()
                .fit(&lab, &[])
        };
        assert!(fit("db").is_ok());
        assert!(fit("cache").is_ok());
        let e = fit("database").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("target"));
        assert!(e.message.contains("db, cache"), "{}", e.message);
        let e = fit("replica").unwrap_err();
        assert!(e.message.contains("target `db`"), "{}", e.message);
        // target-app's own: the catalogue's targets.
        let app = crate::labfile::target_app();
        for target in ["database", "payments"] {
            let text = format!("kind = \"network\"\ntarget = \"{target}\"\nfault = \"down\"");
            let mut f = Fault::from_table(toml::from_str(&text).unwrap()).unwrap();
            assert!(f.fit(app, &[]).is_ok(), "{target}");
        }
    }

    #[test]
    fn the_proxy_rules_point_at_the_network_fault_keys() {
        assert_eq!(refused_at("fault = \"latency\"\nlatency = \"1s\""), None);
        assert_eq!(refused_at("fault = \"down\"\nfraction = 0.5"), None);
        for (params, key) in [
            ("fault = \"latency\"", "fault"),
            ("fault = \"bandwidth\"", "fault"),
            ("fault = \"bandwidth\"\nbytes_per_sec = 0", "fault"),
            ("fault = \"stall\"\nlatency = \"1s\"", "latency"),
            ("fault = \"reset\"\nbytes_per_sec = 10", "bytes_per_sec"),
            ("fault = \"down\"\nfraction = 2.0", "fraction"),
            ("fault = \"latency\"\nlatency = \"1s\"\njitter = \"1h\"", "jitter"),
        ] {
            assert_eq!(refused_at(params).as_deref(), Some(key), "{params}");
        }
    }

    #[test]
    fn the_file_form_and_the_proxy_spec_agree() {
        let network = Network {
            target: ProxyTarget("database".into()),
            fault: ProxyFaultKind::Latency,
            latency: Some(Duration::from_millis(300)),
            jitter: None,
            bytes_per_sec: None,
            fraction: Some(0.5),
        };
        let json = serde_json::to_value(&network).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "target": "database",
                "fault": "latency",
                "latency": "300ms",
                "fraction": 0.5,
            })
        );
        assert_eq!(
            network.proxy_fault(),
            crate::proxy::ProxyFault::Latency {
                latency: Duration::from_millis(300),
                jitter: Duration::ZERO,
            }
            .on_fraction(0.5)
        );
    }
}
