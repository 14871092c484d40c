//! Connection exhaustion: the harness opens sessions to PostgreSQL until the server itself
//! refuses the next one ("sorry, too many clients already", SQLSTATE 53300), and holds them.
//!
//! A service that already holds pooled connections keeps using them, so a full server alone
//! changes nothing until it needs a new one. What makes it need one is what happens in real
//! outages: its connections are cut (a failover, a restart of a pooler, an idle timeout on the
//! way). So the fault, once the server is full, ends the target's own sessions
//! (`pg_terminate_backend`) and takes the freed slots too: every reconnect then meets the full
//! server. The lab's cluster runs with a small `max_connections` for this fault, so that "full"
//! is a few dozen sessions, not hundreds.

use serde::{Deserialize, Serialize};
use sqlx::Connection;

use super::{FaultError, FaultKind};
use super::pg;
use crate::lab::Lab;
use crate::target::TargetNeeds;
use crate::record::EventKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// The lab's cluster is started with this `max_connections` (default 20; the target's pool
    /// alone may take 10). Only the lab's own cluster: on a shared server (`--database-url`)
    /// the fault refuses to run.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// End the target's sessions once the server is full, so that it must reconnect into it
    /// (default true). Without it, the target notices only when it needs one more connection
    /// than it holds.
    #[serde(default = "yes")]
    pub reset_target: bool,
}

fn default_max_connections() -> u32 {
    20
}

fn yes() -> bool {
    true
}

/// The `application_name` of the sessions that fill the server.
const SESSION: &str = "connections";

/// The sessions, kept in the lab until the revert.
pub struct Hog {
    sessions: Vec<sqlx::PgConnection>,
}

/// How many rounds of "end the target's sessions, take the freed slots" before giving up: the
/// target reconnects on demand, so each round it may win a slot or two back.
const ROUNDS: usize = 10;

impl FaultKind for Connections {
    const HINT: &'static str = "a connections fault takes optionally max_connections = 20 (the lab's PostgreSQL limit) and reset_target = true | false";
    const ORPHAN: &'static str = "nothing to undo: PostgreSQL ended the run's sessions when its connections closed";
    type Held = Hog;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(5..=200).contains(&self.max_connections) {
            return Err((
                "max_connections",
                format!(
                    "max_connections {} is out of range (5 to 200)",
                    self.max_connections
                ),
            ));
        }
        Ok(())
    }

    /// The lab's own PostgreSQL runs with this fault's `max_connections`, so that a few dozen
    /// sessions fill it.
    fn target_needs(&self) -> TargetNeeds {
        TargetNeeds {
            max_connections: Some(self.max_connections),
            ..Default::default()
        }
    }

    fn describe(&self) -> String {
        format!(
            "take every connection PostgreSQL allows ({}){}",
            self.max_connections,
            if self.reset_target {
                ", ending the target's own sessions"
            } else {
                ""
            }
        )
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        if !lab.owns_database() {
            return Err(FaultError::Unsupported(
                "connection exhaustion runs on the lab's own PostgreSQL: on a shared server \
                 (--database-url) it would take every connection of everyone else"
                    .into(),
            ));
        }
        let mut sessions = Vec::new();
        // Whatever happens from here, the sessions opened so far are in the lab for the revert.
        let result = self.fill_and_evict(lab, &mut sessions).await;
        let opened = sessions.len();
        *held = Some(Hog { sessions });
        let refusal = result?;
        lab.recorder.event(
            EventKind::Note,
            format!("PostgreSQL is full: {opened} sessions held, the next one refused: \"{refusal}\" (SQLSTATE 53300)"),
        );
        Ok(())
    }

    /// Closes every session of ours, then checks from a fresh one (which proves the server
    /// accepts connections again) that `pg_stat_activity` shows none of them.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        if let Some(Hog { sessions }) = held.take() {
            let closing = sessions.into_iter().map(|c| async move {
                // A session that does not close politely is dropped, which closes its socket.
                let _ = pg::bounded("closing a session", c.close()).await;
            });
            futures::future::join_all(closing).await;
        }
        let left = pg::count_until_zero(
            &lab.database_url,
            std::time::Duration::from_secs(5),
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&pg::application_name(SESSION)],
        )
        .await?;
        if left == 0 {
            Ok(())
        } else {
            Err(FaultError::Failed(format!(
                "pg_stat_activity still shows {left} of our sessions"
            )))
        }
    }
}

impl Connections {
    /// Fills the server: opens sessions until one is refused with 53300 and returns how many
    /// it opened. Any other refusal is an error: the fault must be the real "too many clients".
    async fn fill(
        &self,
        lab: &Lab,
        sessions: &mut Vec<sqlx::PgConnection>,
    ) -> Result<String, FaultError> {
        let opts = pg::options(&lab.database_url, SESSION)?;
        // Bounded: a server that never says "full" is not the one this fault was made for.
        for _ in 0..=self.max_connections + 10 {
            match pg::bounded("connecting", sqlx::PgConnection::connect_with(&opts)).await? {
                Ok(c) => sessions.push(c),
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => {
                    return Ok(e.message().to_string());
                }
                Err(e) => {
                    return Err(FaultError::Failed(format!(
                        "connection {} was refused, but not for too many clients: {e}",
                        sessions.len() + 1
                    )));
                }
            }
        }
        Err(FaultError::Failed(format!(
            "PostgreSQL accepted {} sessions without refusing one; is max_connections {}?",
            sessions.len(),
            self.max_connections
        )))
    }

    async fn fill_and_evict(
        &self,
        lab: &Lab,
        sessions: &mut Vec<sqlx::PgConnection>,
    ) -> Result<String, FaultError> {
        let mut refusal = self.fill(lab, sessions).await?;
        if !self.reset_target {
            return Ok(refusal);
        }
        for _ in 0..ROUNDS {
            let Some(admin) = sessions.first_mut() else {
                break;
            };
            let ended: i64 = pg::bounded(
                "ending the target's sessions",
                // Every client session on the run's database but ours: the target's, whatever
                // it calls itself.
                sqlx::query_scalar(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE datname = current_database() AND backend_type = 'client backend'
                       AND application_name NOT LIKE 'fivehundred-%'",
                )
                .fetch_one(admin),
            )
            .await?
            .map_err(|e| FaultError::Failed(format!("ending the target's sessions: {e}")))?;
            if ended == 0 {
                return Ok(refusal);
            }
            // The slots they held are free for a moment: take them before the target does.
            refusal = self.fill(lab, sessions).await?;
        }
        Err(FaultError::Failed(format!(
            "the target kept winning slots back after {ROUNDS} rounds"
        )))
    }
}
