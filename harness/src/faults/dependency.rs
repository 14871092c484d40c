//! A failing dependency: an HTTP dependency the lab serves from its lab file's canned answers
//! (target-app's payments API) answers with errors, garbage, slowly, or not at all. The failure
//! is in the dependency itself (an HTTP answer the service must judge), where a `network` fault
//! on the dependency's proxy breaks the path to it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::labfile::{Dependency as LabDependency, LabFile};
use crate::stub::{Behaviour as StubBehaviour, HttpStub, RawBehaviour};

/// How the dependency answers while the fault is active, in the stub's own names.
pub use crate::stub::BehaviourKind as Behaviour;

/// A failing dependency, as scenario files, game-day requests and journals write it: `target`
/// names an `http` dependency of the lab file that the lab serves (`answer`s), `behaviour`
/// takes the stub's names, and the stub's rules decide whether it needs `status` or `delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub target: String,
    pub behaviour: Behaviour,
    /// For `error`: the status every call answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For `slow`: how long each call takes.
    #[serde(
        default,
        with = "crate::duration_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
}

impl FaultKind for Dependency {
    const HINT: &'static str = "a dependency fault takes target = NAME (an http dependency the lab serves), behaviour = \"error\" (with status = 503) | \"garbage\" | \"slow\" (with delay = \"3s\") | \"hang\"";
    const ORPHAN: &'static str = "nothing to undo: the dependency's stub ended with the run";
    type Held = ();

    /// The stub's own rules, and one of a fault's: a healthy stub is no fault. An error about
    /// the behaviour's name points at `behaviour`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.behaviour == Behaviour::Healthy {
            return Err((
                "behaviour",
                "a healthy dependency is no fault; use \"error\", \"garbage\", \"slow\" or \"hang\""
                    .into(),
            ));
        }
        self.raw().check().map_err(|e| e.located("behaviour"))
    }

    /// The dependency must be one the lab serves itself: an `http` dependency with canned
    /// answers (a real upstream's failures are the network fault's business).
    fn fit(
        &mut self,
        lab: &LabFile,
        _mix: &[crate::load::MixEntry],
    ) -> Result<(), (&'static str, String)> {
        match lab.deps.get(&self.target) {
            Some(LabDependency::Http(_)) => Ok(()),
            Some(_) => Err((
                "target",
                format!(
                    "`{}` is not an http dependency; a network fault breaks the path to it instead",
                    self.target
                ),
            )),
            None => {
                let served: Vec<&str> = lab
                    .deps
                    .iter()
                    .filter(|(_, d)| matches!(d, LabDependency::Http(_)))
                    .map(|(n, _)| n.as_str())
                    .collect();
                Err((
                    "target",
                    format!(
                        "the lab file has no dependency `{}`; it serves {}",
                        self.target,
                        if served.is_empty() {
                            "no http dependency".to_string()
                        } else {
                            served.join(", ")
                        }
                    ),
                ))
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} API {}", self.target, self.stub_behaviour().describe())
    }

    async fn inject(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let stub = self.stub(lab)?;
        let wanted = self.stub_behaviour();
        stub.set_behaviour(wanted.clone())
            .map_err(|e| FaultError::Failed(e.to_string()))?;
        if stub.behaviour() != wanted {
            return Err(FaultError::Failed(format!(
                "the {} stub did not take the new behaviour",
                self.target
            )));
        }
        Ok(())
    }

    /// Back to healthy, if the stub still answers the way this fault set it. A scenario may
    /// chain behaviours (errors, then a hang): the next one is injected as this one ends, and
    /// this revert must not undo it. Calls hanging now are answered by the new behaviour (the
    /// stub wakes them), so nothing stays stuck behind the revert.
    async fn revert(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let stub = self.stub(lab)?;
        let mine = self.stub_behaviour();
        if stub.behaviour() == mine {
            stub.set_behaviour(StubBehaviour::Healthy)
                .map_err(|e| FaultError::Failed(e.to_string()))?;
        }
        let now = stub.behaviour();
        if now == mine {
            return Err(FaultError::Failed(format!(
                "the {} stub still {} after the revert",
                self.target,
                now.describe()
            )));
        }
        Ok(())
    }
}

impl Dependency {
    /// The fault as the stub's table form, for its checks and its behaviour.
    fn raw(&self) -> RawBehaviour {
        RawBehaviour {
            kind: self.behaviour,
            status: self.status,
            delay: self.delay,
        }
    }

    /// The stub's own form of this fault.
    pub fn stub_behaviour(&self) -> StubBehaviour {
        self.raw().build()
    }

    /// The stub that serves the dependency in this lab.
    fn stub<'a>(&self, lab: &'a Lab) -> Result<&'a HttpStub, FaultError> {
        lab.http_stub(&self.target).ok_or_else(|| {
            FaultError::Failed(format!(
                "the lab serves no http dependency `{}`",
                self.target
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(behaviour: Behaviour, status: Option<u16>, delay: Option<Duration>) -> Dependency {
        Dependency {
            target: "payments".into(),
            behaviour,
            status,
            delay,
        }
    }

    #[test]
    fn each_behaviour_takes_only_its_own_parameter() {
        assert!(dep(Behaviour::Error, Some(503), None).validate().is_ok());
        assert!(dep(Behaviour::Hang, None, None).validate().is_ok());
        assert!(
            dep(Behaviour::Slow, None, Some(Duration::from_secs(3)))
                .validate()
                .is_ok()
        );
        assert_eq!(
            dep(Behaviour::Error, None, None).validate().unwrap_err().0,
            "behaviour"
        );
        assert_eq!(
            dep(Behaviour::Error, Some(200), None)
                .validate()
                .unwrap_err()
                .0,
            "status"
        );
        assert_eq!(
            dep(Behaviour::Slow, None, None).validate().unwrap_err().0,
            "behaviour"
        );
        assert_eq!(
            dep(Behaviour::Garbage, Some(500), None)
                .validate()
                .unwrap_err()
                .0,
            "status"
        );
        assert_eq!(
            dep(Behaviour::Hang, None, Some(Duration::from_secs(1)))
                .validate()
                .unwrap_err()
                .0,
            "delay"
        );
    }

    #[test]
    fn a_healthy_stub_is_no_fault() {
        assert_eq!(
            dep(Behaviour::Healthy, None, None).validate().unwrap_err().0,
            "behaviour"
        );
    }

    #[test]
    fn the_file_form_and_the_stub_behaviour_agree() {
        let slow = dep(Behaviour::Slow, None, Some(Duration::from_secs(3)));
        assert_eq!(
            serde_json::to_value(&slow).unwrap(),
            serde_json::json!({ "target": "payments", "behaviour": "slow", "delay": "3s" })
        );
        assert_eq!(
            slow.stub_behaviour(),
            StubBehaviour::Slow {
                delay: Duration::from_secs(3)
            }
        );
        let error: Dependency =
            toml::from_str("target = \"payments\"\nbehaviour = \"error\"\nstatus = 503").unwrap();
        assert_eq!(error.describe(), "payments API answers 503");
    }
}
