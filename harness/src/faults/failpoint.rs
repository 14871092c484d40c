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
            let part = part.trim();
            if !valid_action(part) {
                return Err((
                    "action",
                    format!("`{}` is not a failpoint action", self.action),
                ));
            }
            if let Some(ms) = sleep_ms(part)
                && ms > MAX_SLEEP_MS
            {
                return Err((
                    "action",
                    format!("`{part}` sleeps too long: at most {MAX_SLEEP_MS} ms (1h)",),
                ));
            }
        }
        Ok(())
    }

    /// The service must offer failpoints, and the one named when its lab file lists them.
    fn fit(
        &mut self,
        lab: &crate::labfile::LabFile,
        _mix: &[crate::load::MixEntry],
    ) -> Result<(), (&'static str, String)> {
        let Some(fp) = &lab.service.failpoints else {
            return Err((
                "name",
                format!(
                    "the service of {} has no failpoints ([service.failpoints] in its lab file)",
                    lab.file.display()
                ),
            ));
        };
        if !fp.names.is_empty() && !fp.names.contains(&self.name) {
            return Err((
                "name",
                format!(
                    "the service has no failpoint `{}`; it has: {}",
                    self.name,
                    fp.names.join(", ")
                ),
            ));
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

/// The longest `sleep(ms)` / `delay(ms)` a scenario may ask for: no scenario phase is longer.
const MAX_SLEEP_MS: u64 = 3_600_000;

/// The milliseconds of a `sleep(ms)` or `delay(ms)` term (after any `p%` and `cnt*`); `u64::MAX`
/// when the argument is not a number of milliseconds that fits.
fn sleep_ms(term: &str) -> Option<u64> {
    let task = term.rsplit(['%', '*']).next().unwrap_or(term);
    let arg = task
        .strip_prefix("sleep(")
        .or_else(|| task.strip_prefix("delay("))?
        .strip_suffix(')')?;
    Some(arg.trim().parse::<u64>().unwrap_or(u64::MAX))
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

    fn failpoint(name: &str, action: &str) -> Failpoint {
        Failpoint {
            name: name.into(),
            action: action.into(),
        }
    }

    #[test]
    fn a_failpoint_the_service_does_not_list_is_refused_before_anything_runs() {
        let lab = crate::labfile::target_app();
        let (key, msg) = failpoint("get_produkt", "panic")
            .fit(lab, &[])
            .unwrap_err();
        assert_eq!(key, "name");
        assert!(msg.contains("get_product"), "the known ones listed: {msg}");
        assert!(failpoint("get_product", "panic").fit(lab, &[]).is_ok());
        let mut without = crate::labfile::LabFile::clone(lab);
        without.service.failpoints = None;
        let (_, msg) = failpoint("get_product", "panic")
            .fit(&without, &[])
            .unwrap_err();
        assert!(msg.contains("no failpoints"), "{msg}");
    }

    #[test]
    fn a_sleep_longer_than_an_hour_or_not_a_number_is_refused_at_validation() {
        for bad in [
            "sleep(3600001)",
            "50%sleep(18446744073709551615)",
            "2*delay(99999999999999999999)",
            "sleep(abc)",
            "return->sleep(4000000)",
        ] {
            let (key, msg) = failpoint("get_product", bad).validate().unwrap_err();
            assert_eq!(key, "action", "{bad}");
            assert!(
                msg.contains("at most") || msg.contains("not a failpoint action"),
                "{bad}: {msg}"
            );
        }
        for good in [
            "sleep(200)",
            "10%2*delay(3600000)",
            "return(sleep(99999999))",
        ] {
            assert!(failpoint("get_product", good).validate().is_ok(), "{good}");
        }
    }
}
