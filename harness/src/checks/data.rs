//! The data-integrity check, the one check that reads the database: every record the service
//! acknowledged (the lab file's `[expect.stored]`) is stored exactly once, and the scenario's SQL invariants hold (each run
//! read-only, with a timeout). Tested end to end, and its invariants against a real PostgreSQL.

use super::common::MAX_EXAMPLES;
use crate::labfile::Stored;
use crate::record::Recording;
use crate::scenario::Scenario;
use crate::verdict::{CheckResult, Evidence, Verdict};

/// Ids of the records the service acknowledged: the `id` field of each 2xx answer to the
/// lab file's stored request, each once (a retry answered with the same record, an idempotent
/// replay, acknowledges one record, not two).
pub fn acknowledged(rec: &Recording, stored: &Stored) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    rec.requests
        .iter()
        .filter(|r| {
            r.route == stored.request && r.status().is_some_and(|s| (200..300).contains(&s))
        })
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(r.body()?).ok()?;
            let id = stored.id.split('.').try_fold(&v, |v, k| v.get(k))?;
            Some(
                id.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| id.to_string()),
            )
        })
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// `name` or `schema.name` (validated as plain SQL names by the lab file) in double quotes.
fn quoted(ident: &str) -> String {
    ident
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// How long one invariant may run.
const INVARIANT_TIMEOUT: &str = "5s";

/// Runs each invariant and says which do not hold. An invariant is the scenario's SQL run with
/// the run's credentials: it runs in a read-only transaction (a write, even in a CTE or a
/// function, is an error) with a statement timeout, and is rolled back.
pub(super) async fn check_invariants(
    conn: &mut sqlx::PgConnection,
    queries: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    for q in queries {
        match invariant_holds(conn, q).await {
            Ok(true) => {}
            Ok(false) => problems.push(format!("invariant violated: {q}")),
            Err(e) => problems.push(format!("invariant `{q}` could not run: {e}")),
        }
    }
    problems
}

async fn invariant_holds(conn: &mut sqlx::PgConnection, q: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{INVARIANT_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    // A prepared statement: one statement only, so `...; COMMIT; DELETE ...` cannot run either.
    let holds = sqlx::query_scalar::<_, bool>(q).fetch_one(&mut *tx).await;
    tx.rollback().await?;
    holds
}

/// After the run: every acknowledged record is in the database exactly once, and the scenario's
/// invariants hold.
pub async fn data_integrity(
    database_url: &str,
    scenario: &Scenario,
    rec: &Recording,
) -> CheckResult {
    use sqlx::Connection;
    let name = "data-integrity";
    let mut conn = match sqlx::PgConnection::connect(database_url).await {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::new(
                name,
                None,
                Verdict::Fail,
                format!("cannot connect to the run's database to check it: {e}"),
            );
        }
    };
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    let stored = scenario
        .contract
        .stored
        .as_ref()
        .filter(|_| scenario.expect.data.acknowledged);
    let acked = stored.map(|s| acknowledged(rec, s)).unwrap_or_default();
    if let Some(stored) = stored
        && !acked.is_empty()
    {
        let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(&format!(
            "SELECT a.id, count(o.{column}) FROM unnest($1::text[]) AS a(id) \
             LEFT JOIN {table} o ON o.{column}::text = a.id GROUP BY a.id",
            table = quoted(&stored.table),
            column = quoted(&stored.column),
        ))
        .bind(&acked)
        .fetch_all(&mut conn)
        .await;
        match rows {
            Ok(rows) => {
                let lost: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n == 0).collect();
                let dup: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n > 1).collect();
                if !lost.is_empty() {
                    problems.push(format!(
                        "{} acknowledged records are missing from {}",
                        lost.len(),
                        stored.table
                    ));
                    evidence.extend(
                        lost.iter()
                            .take(MAX_EXAMPLES)
                            .map(|(id, _)| Evidence::Note {
                                text: format!(
                                    "{id} was acknowledged by `{}` but is not in {}",
                                    stored.request, stored.table
                                ),
                            }),
                    );
                }
                if !dup.is_empty() {
                    problems.push(format!(
                        "{} acknowledged records are stored more than once in {}",
                        dup.len(),
                        stored.table
                    ));
                }
            }
            Err(e) => problems.push(format!("cannot query {}: {e}", stored.table)),
        }
    }
    let invariants: Vec<String> = scenario
        .contract
        .invariants
        .iter()
        .chain(&scenario.expect.data.invariants)
        .cloned()
        .collect();
    problems.extend(check_invariants(&mut conn, &invariants).await);
    let _ = conn.close().await;
    if problems.is_empty() {
        CheckResult::new(
            name,
            None,
            Verdict::Pass,
            format!(
                "{} acknowledged records each stored once; {} invariants hold",
                acked.len(),
                invariants.len()
            ),
        )
    } else {
        CheckResult::new(name, None, Verdict::Fail, problems.join("; ")).with(evidence)
    }
}
