//! A bad migration, applied for real to the run's database while the service runs, as a deploy
//! that migrates before (or without) rolling out matching code would: a renamed column, a new
//! NOT NULL column without a default, or a migration whose transaction holds an exclusive lock
//! (an `ALTER TABLE` followed by a long backfill).
//!
//! Like a migration tool, the fault records the migration in `_sqlx_migrations` (when the target
//! keeps one), so the schema's version moves too. The revert is the reverse DDL (or the rollback
//! of the still-open transaction) and the removal of that record, verified in
//! `information_schema`, `pg_locks` and the migrations table.

use serde::{Deserialize, Serialize};
use sqlx::{Connection, Executor, PgConnection};

use super::{FaultError, FaultKind};
use super::pg;
use crate::lab::Lab;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// `ALTER TABLE table RENAME COLUMN column TO to`: code still using the old name fails.
    RenameColumn,
    /// A `text NOT NULL` column `column` with no default (existing rows backfilled): inserts by
    /// code that does not know the column fail.
    AddNotNullColumn,
    /// `ALTER TABLE table ADD COLUMN column integer` in a transaction left open for the
    /// fault's duration: the ACCESS EXCLUSIVE lock of the DDL blocks every use of the table.
    LongLock,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub change: Change,
    pub table: String,
    pub column: String,
    /// The new name, for `rename-column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The `application_name` of the migration's sessions.
const SESSION: &str = "migration";

/// The long-lock migration's open transaction, kept in the lab until the revert.
pub struct OpenMigration {
    conn: PgConnection,
}

fn failed(what: &str) -> impl Fn(sqlx::Error) -> FaultError + '_ {
    move |e| FaultError::Failed(format!("{what}: {e}"))
}

impl FaultKind for Migration {
    const HINT: &'static str = "a migration fault takes change = \"rename-column\" (with to = \"new_name\") | \"add-not-null-column\" | \"long-lock\", table = \"orders\" and column = \"customer_email\"";
    const ORPHAN: &'static str = "nothing to undo here: the migrated schema is in the run's own database, removed with it";
    type Held = OpenMigration;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, name) in [("table", &self.table), ("column", &self.column)] {
            if !pg::is_identifier(name) {
                return Err((key, format!("`{name}` is not a plain SQL name")));
            }
        }
        match (self.change, &self.to) {
            (Change::RenameColumn, None) => Err((
                "change",
                "a rename-column migration needs the new name: to = \"...\"".into(),
            )),
            (Change::RenameColumn, Some(to)) if !pg::is_identifier(to) || *to == self.column => {
                Err(("to", format!("`{to}` is not a new plain SQL name")))
            }
            (Change::AddNotNullColumn | Change::LongLock, Some(_)) => Err((
                "to",
                "`to` only applies to change = \"rename-column\"".into(),
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self.change {
            Change::RenameColumn => format!(
                "migration: rename {}.{} to {}",
                self.table,
                self.column,
                self.to.as_deref().unwrap_or("?")
            ),
            Change::AddNotNullColumn => format!(
                "migration: add {}.{} text NOT NULL without a default",
                self.table, self.column
            ),
            Change::LongLock => format!(
                "migration: add {}.{} in a transaction that holds its ACCESS EXCLUSIVE lock",
                self.table, self.column
            ),
        }
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let mut conn = pg::connect(&lab.database_url, SESSION).await?;
        let step = |what: &'static str| failed(what);
        pg::bounded("BEGIN", conn.execute("BEGIN"))
            .await?
            .map_err(step("BEGIN"))?;
        // The DDL needs an exclusive lock, so it waits for the target's transactions: briefly.
        pg::bounded(
            "SET lock_timeout",
            conn.execute("SET LOCAL lock_timeout = '5s'"),
        )
        .await?
        .map_err(step("SET lock_timeout"))?;
        let up = self.up();
        pg::bounded("the migration", conn.execute(up.as_str()))
            .await?
            .map_err(step("applying the migration"))?;
        self.record(&mut conn, &up).await?;
        if self.change == Change::LongLock {
            // Verify from the server's side: the DDL's lock is granted to this session.
            let granted: i64 = pg::bounded(
                "reading pg_locks",
                sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                     WHERE l.pid = pg_backend_pid() AND c.relname = $1
                       AND l.mode = 'AccessExclusiveLock' AND l.granted",
                )
                .bind(&self.table)
                .fetch_one(&mut conn),
            )
            .await?
            .map_err(step("reading pg_locks"))?;
            if granted == 0 {
                return Err(FaultError::Failed(format!(
                    "pg_locks does not show the migration's lock on {}",
                    self.table
                )));
            }
            *held = Some(OpenMigration { conn });
            return Ok(());
        }
        pg::bounded("COMMIT", conn.execute("COMMIT"))
            .await?
            .map_err(step("committing the migration"))?;
        let _ = conn.close().await;
        // Verify from a fresh session: the schema is what the migration says.
        let mut check = pg::connect(&lab.database_url, SESSION).await?;
        let applied = match self.change {
            Change::RenameColumn => {
                !self.has_column(&mut check, &self.column).await?
                    && self
                        .has_column(&mut check, self.to.as_deref().unwrap_or_default())
                        .await?
            }
            Change::AddNotNullColumn => self.has_column(&mut check, &self.column).await?,
            Change::LongLock => unreachable!("returned above"),
        };
        let _ = check.close().await;
        if applied {
            Ok(())
        } else {
            Err(FaultError::Failed(
                "information_schema does not show the migrated schema".into(),
            ))
        }
    }

    /// The reverse migration, applied only as far as the schema shows the migration (so a
    /// revert after a half-failed injection, or a second revert, does no harm), then verified.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        if let Some(OpenMigration { mut conn }) = held.take() {
            // Closing the session rolls back too; the verification below is what counts.
            let _ = pg::bounded("ROLLBACK", conn.execute("ROLLBACK")).await;
            let _ = pg::bounded("closing the session", conn.close()).await;
        }
        let mut conn = pg::connect(&lab.database_url, SESSION).await?;
        let result = self.reverse(&mut conn).await;
        let _ = conn.close().await;
        result?;
        let mut check = pg::connect(&lab.database_url, "verify").await?;
        let verified = self.verify_reverted(&mut check).await;
        let _ = check.close().await;
        verified
    }
}

impl Migration {
    /// The DDL, as a migration file would hold it.
    fn up(&self) -> String {
        let t = pglab::quote_ident(&self.table);
        let c = pglab::quote_ident(&self.column);
        match self.change {
            Change::RenameColumn => format!(
                "ALTER TABLE {t} RENAME COLUMN {c} TO {}",
                pglab::quote_ident(self.to.as_deref().unwrap_or_default())
            ),
            // Existing rows get '' so the column can be NOT NULL at all; dropping the default
            // afterwards is what breaks every insert that does not name the column.
            Change::AddNotNullColumn => format!(
                "ALTER TABLE {t} ADD COLUMN {c} text NOT NULL DEFAULT ''; \
                 ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT"
            ),
            Change::LongLock => format!("ALTER TABLE {t} ADD COLUMN {c} integer"),
        }
    }

    /// What the migrations table calls it (and how the revert finds its record).
    fn record_description(&self) -> String {
        format!("fivehundred fault: {}", self.describe())
    }

    /// Records the migration as the next version in `_sqlx_migrations`, in the migration's
    /// transaction, as sqlx's migrator would. A target without that table keeps no record.
    async fn record(&self, conn: &mut PgConnection, up: &str) -> Result<(), FaultError> {
        let has_table = has_migrations_table(conn).await?;
        if !has_table {
            return Ok(());
        }
        pg::bounded(
            "recording the migration",
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 SELECT coalesce(max(version), 0) + 1, $1, true, sha384(convert_to($2, 'UTF8')), 0
                 FROM _sqlx_migrations",
            )
            .bind(self.record_description())
            .bind(up)
            .execute(&mut *conn),
        )
        .await?
        .map_err(failed("recording the migration"))?;
        Ok(())
    }

    async fn has_column(&self, conn: &mut PgConnection, column: &str) -> Result<bool, FaultError> {
        pg::bounded(
            "reading information_schema",
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)",
            )
            .bind(&self.table)
            .bind(column)
            .fetch_one(conn),
        )
        .await?
        .map_err(failed("reading information_schema"))
    }

    async fn reverse(&self, conn: &mut PgConnection) -> Result<(), FaultError> {
        let t = pglab::quote_ident(&self.table);
        let c = pglab::quote_ident(&self.column);
        let down = match self.change {
            Change::RenameColumn => {
                let to = self.to.as_deref().unwrap_or_default();
                (self.has_column(conn, to).await? && !self.has_column(conn, &self.column).await?)
                    .then(|| {
                        format!(
                            "ALTER TABLE {t} RENAME COLUMN {} TO {c}",
                            pglab::quote_ident(to)
                        )
                    })
            }
            // A rolled-back long-lock migration left nothing; a column of that name that is
            // there now was committed by someone, and is removed like the not-null one.
            Change::AddNotNullColumn | Change::LongLock => self
                .has_column(conn, &self.column)
                .await?
                .then(|| format!("ALTER TABLE {t} DROP COLUMN {c}")),
        };
        let step = |what: &'static str| failed(what);
        pg::bounded("BEGIN", conn.execute("BEGIN"))
            .await?
            .map_err(step("BEGIN"))?;
        pg::bounded(
            "SET lock_timeout",
            conn.execute("SET LOCAL lock_timeout = '5s'"),
        )
        .await?
        .map_err(step("SET lock_timeout"))?;
        if let Some(down) = down {
            pg::bounded("the reverse migration", conn.execute(down.as_str()))
                .await?
                .map_err(step("applying the reverse migration"))?;
        }
        if has_migrations_table(conn).await? {
            pg::bounded(
                "removing the migration's record",
                sqlx::query("DELETE FROM _sqlx_migrations WHERE description = $1")
                    .bind(self.record_description())
                    .execute(&mut *conn),
            )
            .await?
            .map_err(step("removing the migration's record"))?;
        }
        pg::bounded("COMMIT", conn.execute("COMMIT"))
            .await?
            .map_err(step("committing the reverse migration"))?;
        Ok(())
    }

    async fn verify_reverted(&self, conn: &mut PgConnection) -> Result<(), FaultError> {
        let column_back = self.has_column(conn, &self.column).await?;
        let schema_ok = match self.change {
            Change::RenameColumn => {
                column_back
                    && !self
                        .has_column(conn, self.to.as_deref().unwrap_or_default())
                        .await?
            }
            Change::AddNotNullColumn | Change::LongLock => !column_back,
        };
        if !schema_ok {
            return Err(FaultError::Failed(format!(
                "information_schema still shows the migrated {}",
                self.table
            )));
        }
        let recorded: i64 = if has_migrations_table(conn).await? {
            pg::bounded(
                "reading _sqlx_migrations",
                sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE description = $1")
                    .bind(self.record_description())
                    .fetch_one(&mut *conn),
            )
            .await?
            .map_err(failed("reading _sqlx_migrations"))?
        } else {
            0
        };
        if recorded > 0 {
            return Err(FaultError::Failed(
                "_sqlx_migrations still records the migration".into(),
            ));
        }
        let locks: i64 = pg::bounded(
            "reading pg_locks",
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                 JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE c.relname = $1 AND a.application_name = $2",
            )
            .bind(&self.table)
            .bind(pg::application_name(SESSION))
            .fetch_one(&mut *conn),
        )
        .await?
        .map_err(failed("reading pg_locks"))?;
        if locks > 0 {
            return Err(FaultError::Failed(format!(
                "pg_locks still shows a lock of the migration's on {}",
                self.table
            )));
        }
        Ok(())
    }
}

/// Whether the target keeps sqlx's migrations table (another target may keep none).
async fn has_migrations_table(conn: &mut PgConnection) -> Result<bool, FaultError> {
    pg::bounded(
        "looking for _sqlx_migrations",
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(conn),
    )
    .await?
    .map_err(failed("looking for _sqlx_migrations"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(change: Change, to: Option<&str>) -> Migration {
        Migration {
            change,
            table: "orders".into(),
            column: "customer_email".into(),
            to: to.map(String::from),
        }
    }

    #[test]
    fn a_rename_needs_a_new_plain_name_and_only_a_rename_takes_one() {
        assert!(
            migration(Change::RenameColumn, Some("email"))
                .validate()
                .is_ok()
        );
        assert_eq!(
            migration(Change::RenameColumn, None)
                .validate()
                .unwrap_err()
                .0,
            "change"
        );
        assert_eq!(
            migration(Change::RenameColumn, Some("customer_email"))
                .validate()
                .unwrap_err()
                .0,
            "to"
        );
        assert_eq!(
            migration(Change::RenameColumn, Some("x; drop table orders"))
                .validate()
                .unwrap_err()
                .0,
            "to"
        );
        assert_eq!(
            migration(Change::LongLock, Some("x"))
                .validate()
                .unwrap_err()
                .0,
            "to"
        );
    }

    #[test]
    fn the_ddl_is_what_a_migration_file_would_say() {
        assert_eq!(
            migration(Change::RenameColumn, Some("email")).up(),
            "ALTER TABLE \"orders\" RENAME COLUMN \"customer_email\" TO \"email\""
        );
        assert!(
            migration(Change::AddNotNullColumn, None)
                .up()
                .contains("DROP DEFAULT")
        );
    }
}
