//! The data-integrity check, the one check that reads the database: every order the target
//! acknowledged is stored exactly once, and the scenario's SQL invariants hold (each run
//! read-only, with a timeout). Tested end to end, and its invariants against a real PostgreSQL.

use super::common::MAX_EXAMPLES;
use crate::record::Recording;
use crate::scenario::Scenario;
use crate::verdict::{CheckResult, Evidence, Verdict};

/// Ids of orders the target acknowledged with 201, each once: a retry answered with the same
/// order (an idempotent replay) acknowledges one order, not two.
pub fn acknowledged_orders(rec: &Recording) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    rec.requests
        .iter()
        .filter(|r| r.route == "POST /orders" && r.status() == Some(201))
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(r.body()?).ok()?;
            v.get("id").map(|id| {
                id.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| id.to_string())
            })
        })
        .filter(|id| seen.insert(id.clone()))
        .collect()
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

/// After the run: every acknowledged order is in the database exactly once, and the scenario's
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
    let acked = acknowledged_orders(rec);
    if scenario.expect.data.acknowledged_orders && !acked.is_empty() {
        let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(
            "SELECT a.id, count(o.id) FROM unnest($1::text[]) AS a(id) \
             LEFT JOIN orders o ON o.id::text = a.id GROUP BY a.id",
        )
        .bind(&acked)
        .fetch_all(&mut conn)
        .await;
        match rows {
            Ok(rows) => {
                let lost: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n == 0).collect();
                let dup: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n > 1).collect();
                if !lost.is_empty() {
                    problems.push(format!("{} acknowledged orders are missing", lost.len()));
                    evidence.extend(
                        lost.iter()
                            .take(MAX_EXAMPLES)
                            .map(|(id, _)| Evidence::Note {
                                text: format!(
                                    "order {id} was answered 201 but is not in the database"
                                ),
                            }),
                    );
                }
                if !dup.is_empty() {
                    problems.push(format!("{} acknowledged orders are duplicated", dup.len()));
                }
            }
            Err(e) => problems.push(format!("cannot query orders: {e}")),
        }
    }
    problems.extend(check_invariants(&mut conn, &scenario.expect.data.invariants).await);
    let _ = conn.close().await;
    if problems.is_empty() {
        CheckResult::new(
            name,
            None,
            Verdict::Pass,
            format!(
                "{} acknowledged orders each stored once; {} invariants hold",
                acked.len(),
                scenario.expect.data.invariants.len()
            ),
        )
    } else {
        CheckResult::new(name, None, Verdict::Fail, problems.join("; ")).with(evidence)
    }
}
