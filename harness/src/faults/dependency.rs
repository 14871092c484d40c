//! A failing dependency: the payments API the lab serves to the target answers with errors,
//! garbage, slowly, or not at all. The failure is in the dependency itself (an HTTP answer the
//! target must judge), where a `network` fault on the payments proxy breaks the path to it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::payments::{PaymentsBehaviour, RawBehaviour};

/// How the dependency answers while the fault is active, in the payments stub's own names.
pub use crate::payments::PaymentsBehaviourKind as Behaviour;

/// Which dependency misbehaves. Only the payments API is served by the lab today; the field
/// exists so that a scenario says what it breaks, and a second dependency is a new variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyTarget {
    Payments,
}

/// A failing dependency, as scenario files, game-day requests and journals write it:
/// `behaviour` takes the stub's names, and the stub's rules decide whether it needs `status` or
/// `delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub target: DependencyTarget,
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
    const HINT: &'static str = "a dependency fault takes target = \"payments\", behaviour = \"error\" (with status = 503) | \"garbage\" | \"slow\" (with delay = \"3s\") | \"hang\"";
    const ORPHAN: &'static str = "nothing to undo: the payments stub ended with the run";
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

    fn describe(&self) -> String {
        format!("payments API {}", self.payments_behaviour().describe())
    }

    async fn inject(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let wanted = self.payments_behaviour();
        lab.payments
            .set_behaviour(wanted.clone())
            .map_err(|e| FaultError::Failed(e.to_string()))?;
        if lab.payments.behaviour() != wanted {
            return Err(FaultError::Failed(
                "the payments stub did not take the new behaviour".into(),
            ));
        }
        Ok(())
    }

    /// Back to healthy, if the stub still answers the way this fault set it. A scenario may
    /// chain behaviours (errors, then a hang): the next one is injected as this one ends, and
    /// this revert must not undo it. Calls hanging now are answered by the new behaviour (the
    /// stub wakes them), so nothing stays stuck behind the revert.
    async fn revert(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let mine = self.payments_behaviour();
        if lab.payments.behaviour() == mine {
            lab.payments
                .set_behaviour(PaymentsBehaviour::Healthy)
                .map_err(|e| FaultError::Failed(e.to_string()))?;
        }
        let now = lab.payments.behaviour();
        if now == mine {
            return Err(FaultError::Failed(format!(
                "the payments stub still {} after the revert",
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

    /// The payments stub's own form of this fault.
    pub fn payments_behaviour(&self) -> PaymentsBehaviour {
        self.raw().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(behaviour: Behaviour, status: Option<u16>, delay: Option<Duration>) -> Dependency {
        Dependency {
            target: DependencyTarget::Payments,
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
            slow.payments_behaviour(),
            PaymentsBehaviour::Slow {
                delay: Duration::from_secs(3)
            }
        );
        let error: Dependency =
            toml::from_str("target = \"payments\"\nbehaviour = \"error\"\nstatus = 503").unwrap();
        assert_eq!(error.describe(), "payments API answers 503");
    }
}
