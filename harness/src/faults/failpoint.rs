//! A failpoint in the target (the `fail` crate), set and cleared through its admin API: handler
//! panics, background-task panics, injected errors and delays inside the service itself.

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failpoint {
    /// The failpoint's name in the target, e.g. `get_product`.
    pub name: String,
    /// A `fail` action: `[p%][cnt*]task[(arg)]`, e.g. `panic`, `20%return`, `sleep(200)`.
    pub action: String,
}

const TASKS: &[&str] = &[
    "off", "return", "sleep", "panic", "print", "pause", "yield", "delay",
];

impl FaultKind for Failpoint {
    const HINT: &'static str = "a failpoint fault takes name = \"<failpoint>\" and action = \"panic\" | \"return\" | \"20%panic\" | \"sleep(200)\"";
    const ORPHAN: &'static str = "nothing to undo: it lived in processes that ended with the run";
    type Held = ();

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(("name", format!("`{}` is not a failpoint name", self.name)));
        }
        for part in self.action.split("->") {
            if !valid_action(part.trim()) {
                return Err((
                    "action",
                    format!("`{}` is not a failpoint action", self.action),
                ));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("failpoint {} = {}", self.name, self.action)
    }

    async fn inject(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let admin = lab.target_admin().ok_or_else(|| {
            FaultError::Unsupported("the service offers no failpoint API".into())
        })?;
        admin
            .set_failpoint(&self.name, &self.action)
            .await
            .map_err(FaultError::Failed)?;
        // Verify: the target reports the action we set.
        match admin
            .failpoint(&self.name)
            .await
            .map_err(FaultError::Failed)?
        {
            Some(a) if !a.is_empty() => Ok(()),
            _ => Err(FaultError::Failed(format!(
                "the target did not keep failpoint {}",
                self.name
            ))),
        }
    }

    async fn revert(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let admin = lab.target_admin().ok_or_else(|| {
            FaultError::Unsupported("the service offers no failpoint API".into())
        })?;
        admin
            .clear_failpoint(&self.name)
            .await
            .map_err(FaultError::Failed)?;
        match admin
            .failpoint(&self.name)
            .await
            .map_err(FaultError::Failed)?
        {
            None => Ok(()),
            Some(a) => Err(FaultError::Failed(format!(
                "failpoint {} still set to {a} after revert",
                self.name
            ))),
        }
    }
}

/// Checks one `[p%][cnt*]task[(arg)]` term.
fn valid_action(s: &str) -> bool {
    let mut rest = s;
    if let Some((p, r)) = rest.split_once('%') {
        if p.parse::<f64>()
            .map_or(true, |p| !(0.0..=100.0).contains(&p))
        {
            return false;
        }
        rest = r;
    }
    if let Some((c, r)) = rest.split_once('*') {
        if c.parse::<u64>().is_err() {
            return false;
        }
        rest = r;
    }
    let task = match rest.split_once('(') {
        Some((t, arg)) => {
            if !arg.ends_with(')') {
                return false;
            }
            t
        }
        None => rest,
    };
    TASKS.contains(&task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_fail_grammar() {
        for good in [
            "panic",
            "20%panic",
            "3*return",
            "5%2*sleep(200)",
            "return(x)",
            "off",
        ] {
            assert!(valid_action(good), "{good}");
        }
        for bad in ["explode", "120%panic", "x*return", "sleep(200", ""] {
            assert!(!valid_action(bad), "{bad}");
        }
    }
}
