//! The labels on everything a run makes in the engine, so that a run killed before its teardown
//! can still be cleaned up by label alone (`fivehundred recover`).

use std::collections::HashMap;
use std::fmt;

/// Marks a container, network or volume as made by fivehundred.
pub const OWNER_LABEL: &str = "fivehundred.owner";
pub const OWNER: &str = "fivehundred";
/// Names the run a container, network or volume belongs to.
pub const RUN_LABEL: &str = "fivehundred.run";
/// The state directory of the run that made it ([`crate::statedir`]): the journals that know it.
pub const STATE_LABEL: &str = "fivehundred.state";
/// On images: the hash of the recipe the image was built from (a changed recipe rebuilds it).
pub const RECIPE_LABEL: &str = "fivehundred.recipe";

/// A run's id, as it appears in labels and in the names of what the run makes. Only letters,
/// digits, `_`, `.` and `-` (what container and network names allow), 1 to 48 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    pub fn new(id: &str) -> Result<RunId, super::DockerError> {
        let ok = !id.is_empty()
            && id.len() <= 48
            && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(RunId(id.to_owned()))
        } else {
            Err(super::DockerError::Invalid(format!(
                "run id {id:?}: use 1 to 48 letters, digits, `_`, `.` or `-`, starting with a letter or digit"
            )))
        }
    }

    /// A fresh id: 12 hex digits of a random UUID.
    pub fn generate() -> RunId {
        RunId(uuid::Uuid::new_v4().simple().to_string()[..12].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels every container, network and volume of this run carries.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (OWNER_LABEL.to_owned(), OWNER.to_owned()),
            (RUN_LABEL.to_owned(), self.0.clone()),
            (
                STATE_LABEL.to_owned(),
                crate::statedir::state_dir().display().to_string(),
            ),
        ])
    }

    /// The engine's list filter for this run's resources.
    pub fn filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{OWNER_LABEL}={OWNER}"),
                format!("{RUN_LABEL}={}", self.0),
            ],
        )])
    }

    /// A name for something this run makes: `fivehundred-<run>-<what>`.
    pub fn name(&self, what: &str) -> String {
        format!("fivehundred-{}-{what}", self.0)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_checked_before_they_reach_a_name_or_a_filter() {
        assert!(RunId::new("run-1.a_b").is_ok());
        for bad in ["", "-lead", "a b", "a/b", "a=b", &"x".repeat(49)] {
            let err = RunId::new(bad).unwrap_err().to_string();
            assert!(err.contains("run id"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_generated_run_id_is_valid_and_labels_name_it() {
        let run = RunId::generate();
        assert!(RunId::new(run.as_str()).is_ok());
        let labels = run.labels();
        assert_eq!(labels[RUN_LABEL], run.as_str());
        assert_eq!(labels[OWNER_LABEL], OWNER);
        assert_eq!(run.filter()["label"].len(), 2);
        assert_eq!(run.name("db"), format!("fivehundred-{run}-db"));
    }
}
