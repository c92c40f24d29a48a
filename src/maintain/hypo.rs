//! Missing-index candidates from the statements that need them, checked with hypopg.
//!
//! The statements come from pg_stat_statements (this database, by total time). Each is planned
//! with EXPLAIN, never executed: on PostgreSQL 16 and later with `EXPLAIN (GENERIC_PLAN)`, which
//! takes the normalised text with its `$n` parameters as it is; on 15 the text is PREPAREd (which
//! parses and plans, but runs nothing) and planned with `EXPLAIN EXECUTE name(NULL, ...)` under
//! `plan_cache_mode = force_generic_plan`, so the NULLs are never looked at by the planner and
//! the plan is the same generic one. A sequential scan of a large table that keeps few of its
//! rows, with a filter on a column no index leads, makes that column a candidate. When hypopg is
//! installed each candidate is checked: plan, `hypopg_create_index` of the CREATE INDEX, plan
//! again, `hypopg_reset()`; a candidate is "validated" only when the estimated cost drops.
//!
//! All of it runs on one session inside a READ ONLY transaction that is rolled back, and the
//! session is closed afterwards rather than returned to the pool (hypothetical indexes and
//! prepared statements live in the backend, not in the transaction).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sqlx::Row;

use super::indexes::{qualified, MissingIndex, MissingIndexSource};
use super::stats::{IndexStats, TableStats};
use crate::conn::{PooledConn, MARK};
use crate::error::Result;
use crate::ident::quote_ident;
use crate::monitor::explain;
use crate::monitor::plan::{SEQ_SCAN_LARGE_ROWS, SEQ_SCAN_SELECTIVE_SHARE};
use crate::monitor::sqllex::{self, TokenKind};
use crate::sql;

/// Statements looked at, the costliest first.
const MAX_STATEMENTS: i64 = 50;
/// Columns of one filter tried with hypopg.
const MAX_COLUMNS_TRIED: usize = 3;

/// A statement recorded by pg_stat_statements.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub text: String,
    pub calls: i64,
}

/// A sequential scan found in a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqScan {
    pub schema: String,
    pub relation: String,
    pub filter: String,
    /// Rows the planner expects it to keep.
    pub rows: f64,
}

/// The schema an extension is installed in, when it is installed in this database.
pub async fn extension_schema(conn: &mut PooledConn, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(sql!(
        "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = $1"
    ))
    .bind(name)
    .fetch_optional(&mut **conn)
    .await?)
}

/// Sequential scans with a filter anywhere in an `EXPLAIN (VERBOSE, FORMAT JSON)` output.
pub fn seq_scans(plan: &Value) -> Vec<SeqScan> {
    fn walk(n: &Value, out: &mut Vec<SeqScan>) {
        let s = |k: &str| n.get(k).and_then(Value::as_str);
        if s("Node Type") == Some("Seq Scan") {
            if let (Some(schema), Some(rel), Some(filter)) =
                (s("Schema"), s("Relation Name"), s("Filter"))
            {
                out.push(SeqScan {
                    schema: schema.into(),
                    relation: rel.into(),
                    filter: filter.into(),
                    rows: n.get("Plan Rows").and_then(Value::as_f64).unwrap_or(0.0),
                });
            }
        }
        for child in n
            .get("Plans")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    for entry in plan.as_array().into_iter().flatten() {
        if let Some(p) = entry.get("Plan") {
            walk(p, &mut out);
        }
    }
    out
}

/// The top node's estimated total cost.
pub fn total_cost(plan: &Value) -> Option<f64> {
    plan.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

/// The columns of `columns` a filter expression names, in the order they first appear. String
/// literals are skipped; quoted identifiers are compared unquoted.
pub fn filter_columns(filter: &str, columns: &[String]) -> Vec<String> {
    let Ok(tokens) = sqllex::lex(filter) else {
        return vec![];
    };
    let mut out: Vec<String> = Vec::new();
    for t in tokens {
        let name = match t.kind {
            TokenKind::Word => t.text(filter).to_string(),
            TokenKind::QuotedIdent => {
                let q = t.text(filter);
                q[1..q.len() - 1].replace("\"\"", "\"")
            }
            _ => continue,
        };
        if columns.contains(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The statements worth a look: this database's, not pgsteward's own, the costliest first.
async fn recorded(conn: &mut PooledConn, pgss_schema: &str) -> Result<Vec<Recorded>> {
    let q = format!(
        "{MARK} SELECT s.query, sum(s.calls)::int8 AS calls
           FROM {}.pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database() AND s.query IS NOT NULL
            AND s.query NOT LIKE '%/* pgsteward */%'
          GROUP BY s.query
          ORDER BY sum(s.total_exec_time) DESC
          LIMIT $1",
        quote_ident(pgss_schema)?
    );
    let rows = sqlx::query(&q)
        .bind(MAX_STATEMENTS)
        .fetch_all(&mut **conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Recorded {
            text: r.get("query"),
            calls: r.get("calls"),
        })
        .collect())
}

/// Run one statement through the simple query protocol (a text the lexer found to be a single
/// statement) and return its first column as text.
async fn simple_text(conn: &mut PooledConn, stmt: &str) -> Result<String> {
    let row = sqlx::Executor::fetch_one(&mut **conn, stmt).await?;
    Ok(row.try_get_unchecked::<String, _>(0)?)
}

async fn simple(conn: &mut PooledConn, stmt: &str) -> Result<()> {
    sqlx::Executor::execute(&mut **conn, stmt).await?;
    Ok(())
}

/// How a statement is planned.
enum Planner {
    /// PostgreSQL 16+: `EXPLAIN (GENERIC_PLAN)` on the text.
    Generic(String),
    /// PostgreSQL 15: PREPARE, `EXPLAIN EXECUTE` with NULLs, DEALLOCATE, afresh each time (a
    /// prepared statement keeps its cached plan, which a hypothetical index does not invalidate).
    /// The counter names the prepared statements.
    Prepared(String, AtomicUsize),
}

impl Planner {
    async fn plan(&self, conn: &mut PooledConn) -> Result<Value> {
        let json = match self {
            Planner::Generic(text) => {
                let stmt = format!("{MARK} EXPLAIN (GENERIC_PLAN, VERBOSE, FORMAT JSON) {text}");
                simple_text(conn, &stmt).await?
            }
            Planner::Prepared(text, counter) => {
                let name = format!(
                    "pgsteward_candidate_{}",
                    counter.fetch_add(1, Ordering::Relaxed)
                );
                simple(conn, &format!("{MARK} PREPARE {name} AS {text}")).await?;
                let n: i32 = sqlx::query_scalar(sql!(
                    "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1"
                ))
                .bind(&name)
                .fetch_one(&mut **conn)
                .await?;
                let args = if n <= 0 {
                    String::new()
                } else {
                    format!("({})", vec!["NULL"; n as usize].join(", "))
                };
                let json = simple_text(
                    conn,
                    &format!("{MARK} EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {name}{args}"),
                )
                .await?;
                simple(conn, &format!("{MARK} DEALLOCATE {name}")).await?;
                json
            }
        };
        serde_json::from_str(&json)
            .map_err(|e| crate::Error::internal(format!("EXPLAIN output is not JSON: {e}")))
    }
}

/// What examining the statements found.
#[derive(Debug, Default)]
pub struct Found {
    pub candidates: Vec<MissingIndex>,
    pub notes: Vec<String>,
}

/// Candidates from the recorded statements; `hypopg` is the extension's schema when installed.
/// Marks `conn` to be closed afterwards.
pub async fn from_statements(
    conn: &mut PooledConn,
    tables: &[TableStats],
    indexes: &[IndexStats],
    hypopg: Option<&str>,
) -> Result<Found> {
    conn.discard();
    let mut found = Found::default();
    let Some(pgss) = extension_schema(conn, "pg_stat_statements").await? else {
        found.notes.push("pg_stat_statements is not installed in this database: candidates come from sequential scan counts only, without the statements to check them against.".into());
        return Ok(found);
    };
    let version: i32 =
        sqlx::query_scalar(sql!("SELECT current_setting('server_version_num')::int4"))
            .fetch_one(&mut **conn)
            .await?;
    let statements = recorded(conn, &pgss).await?;
    let columns = table_columns(conn, tables).await?;
    simple(conn, &format!("{MARK} BEGIN READ ONLY")).await?;
    let result = async {
        if version < 160000 {
            simple(
                conn,
                &format!("{MARK} SET LOCAL plan_cache_mode = force_generic_plan"),
            )
            .await?;
        }
        let mut skipped = 0usize;
        for (n, s) in statements.iter().enumerate() {
            simple(conn, &format!("{MARK} SAVEPOINT candidate")).await?;
            let r = examine(conn, s, n, version, tables, indexes, &columns, hypopg).await;
            match r {
                Ok(list) => {
                    simple(conn, &format!("{MARK} RELEASE SAVEPOINT candidate")).await?;
                    for m in list {
                        merge(&mut found.candidates, m);
                    }
                }
                Err(e) => {
                    tracing::debug!("missing-index candidates: statement skipped: {e}");
                    skipped += 1;
                    simple(conn, &format!("{MARK} ROLLBACK TO SAVEPOINT candidate")).await?;
                }
            }
        }
        if let Some(h) = hypopg {
            simple(
                conn,
                &format!("{MARK} SELECT {}.hypopg_reset()", quote_ident(h)?),
            )
            .await?;
        }
        if skipped > 0 {
            found.notes.push(format!(
                "{skipped} recorded statement(s) could not be planned (parameters of unknown type, objects gone, ...) and were left out."
            ));
        }
        Ok::<_, crate::Error>(())
    }
    .await;
    let rolled_back = simple(conn, &format!("{MARK} ROLLBACK")).await;
    result?;
    rolled_back?;
    if hypopg.is_none() {
        found.notes.push("hypopg is not installed in this database (CREATE EXTENSION hypopg): candidates are not validated.".into());
    }
    Ok(found)
}

/// Keep one candidate per table and column: the one whose statement gains most.
fn merge(list: &mut Vec<MissingIndex>, m: MissingIndex) {
    let gain = |m: &MissingIndex| match (m.cost_before, m.cost_after) {
        (Some(b), Some(a)) if m.validated => b - a,
        _ => 0.0,
    };
    match list
        .iter_mut()
        .find(|x| x.schema == m.schema && x.table == m.table && x.column == m.column)
    {
        Some(x) if gain(&m) > gain(x) => *x = m,
        Some(_) => {}
        None => list.push(m),
    }
}

/// Column names of the tables, by oid.
async fn table_columns(
    conn: &mut PooledConn,
    tables: &[TableStats],
) -> Result<HashMap<i64, Vec<(i16, String)>>> {
    let oids: Vec<i64> = tables.iter().map(|t| t.oid).collect();
    let rows = sqlx::query(sql!(
        "SELECT attrelid::int8 AS rel, attnum, attname::text AS name FROM pg_attribute
          WHERE attrelid = ANY ($1::int8[]::oid[]) AND attnum > 0 AND NOT attisdropped
          ORDER BY attrelid, attnum"
    ))
    .bind(&oids)
    .fetch_all(&mut **conn)
    .await?;
    let mut out: HashMap<i64, Vec<(i16, String)>> = HashMap::new();
    for r in rows {
        out.entry(r.get("rel"))
            .or_default()
            .push((r.get("attnum"), r.get("name")));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn examine(
    conn: &mut PooledConn,
    s: &Recorded,
    n: usize,
    version: i32,
    tables: &[TableStats],
    indexes: &[IndexStats],
    columns: &HashMap<i64, Vec<(i16, String)>>,
    hypopg: Option<&str>,
) -> Result<Vec<MissingIndex>> {
    // Only statements EXPLAIN takes, one at a time, are looked at.
    let Ok(info) = explain::inspect(&s.text) else {
        return Ok(vec![]);
    };
    if !["SELECT", "WITH", "UPDATE", "DELETE"].contains(&info.keyword.as_str()) {
        return Ok(vec![]);
    }
    let planner = if version >= 160000 {
        Planner::Generic(info.text.clone())
    } else {
        Planner::Prepared(info.text.clone(), AtomicUsize::new(n * 1000))
    };
    let before = planner.plan(conn).await?;
    let Some(cost_before) = total_cost(&before) else {
        return Ok(vec![]);
    };
    let mut out: Vec<MissingIndex> = Vec::new();
    for scan in seq_scans(&before) {
        let Some(t) = tables
            .iter()
            .find(|t| t.schema == scan.schema && t.name == scan.relation)
        else {
            continue;
        };
        if t.reltuples < SEQ_SCAN_LARGE_ROWS
            || scan.rows > t.reltuples * SEQ_SCAN_SELECTIVE_SHARE
            || out
                .iter()
                .any(|m| m.table == t.name && m.schema == t.schema)
        {
            continue;
        }
        let cols = columns.get(&t.oid).cloned().unwrap_or_default();
        let led: Vec<i16> = indexes
            .iter()
            .filter(|i| i.table_oid == t.oid && i.valid)
            .filter_map(|i| i.columns.first().copied())
            .collect();
        let free: Vec<String> = cols
            .iter()
            .filter(|(num, _)| !led.contains(num))
            .map(|(_, name)| name.clone())
            .collect();
        let named = filter_columns(&scan.filter, &free);
        let mut best: Option<(String, Option<f64>)> = None;
        for col in named.iter().take(MAX_COLUMNS_TRIED) {
            let Some(h) = hypopg else {
                best = Some((col.clone(), None));
                break;
            };
            let after = try_hypothetical(conn, &planner, h, t, col).await?;
            let better = match (&best, after) {
                (None, _) => true,
                (Some((_, Some(b))), Some(a)) => a < *b,
                (Some((_, None)), Some(_)) => true,
                _ => false,
            };
            if better {
                best = Some((col.clone(), after));
            }
        }
        let Some((column, cost_after)) = best else {
            continue;
        };
        let validated = cost_after.is_some_and(|a| a < cost_before);
        let short = one_line(&info.text, 120);
        let note = match (hypopg, cost_after) {
            (None, _) => format!("Unvalidated (hypopg is not installed): the filter on {column} of a sequential scan in \"{short}\" suggests it."),
            (Some(_), Some(a)) if validated => format!(
                "Validated with hypopg: \"{short}\" would cost {a:.1} instead of {cost_before:.1} (estimated, generic plan)."
            ),
            (Some(_), Some(a)) => format!(
                "Not validated: with a hypothetical index \"{short}\" would still cost {a:.1} (now {cost_before:.1}); the planner would not use it."
            ),
            (Some(_), None) => format!("Not validated: hypopg could not build a hypothetical index on {column}."),
        };
        out.push(MissingIndex {
            schema: t.schema.clone(),
            table: t.name.clone(),
            sql: format!(
                "CREATE INDEX CONCURRENTLY ON {} ({})",
                qualified(&t.schema, &t.name)?,
                quote_ident(&column)?
            ),
            column,
            seq_scan: t.seq_scan,
            avg_rows_per_seq_scan: t.seq_tup_read / t.seq_scan.max(1),
            validated,
            note,
            source: MissingIndexSource::Statement,
            statement: Some(info.text.clone()),
            calls: Some(s.calls),
            cost_before: Some(cost_before),
            cost_after,
        });
    }
    Ok(out)
}

/// The statement's estimated cost with a hypothetical index on `col`; `None` when hypopg
/// refused to build it.
async fn try_hypothetical(
    conn: &mut PooledConn,
    planner: &Planner,
    hypopg: &str,
    t: &TableStats,
    col: &str,
) -> Result<Option<f64>> {
    let h = quote_ident(hypopg)?;
    simple(conn, &format!("{MARK} SELECT {h}.hypopg_reset()")).await?;
    let create = format!(
        "CREATE INDEX ON {} ({})",
        qualified(&t.schema, &t.name)?,
        quote_ident(col)?
    );
    let made = sqlx::query(&format!(
        "{MARK} SELECT indexrelid FROM {h}.hypopg_create_index($1)"
    ))
    .bind(&create)
    .fetch_all(&mut **conn)
    .await?;
    if made.is_empty() {
        return Ok(None);
    }
    let after = planner.plan(conn).await?;
    simple(conn, &format!("{MARK} SELECT {h}.hypopg_reset()")).await?;
    Ok(total_cost(&after))
}

/// The statement on one line, cut at `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}...", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_scans_with_filters_are_found_in_nested_plans() {
        let plan: Value = serde_json::from_str(
            r#"[{"Plan": {"Node Type": "Hash Join", "Total Cost": 900.5, "Plans": [
                 {"Node Type": "Seq Scan", "Schema": "public", "Relation Name": "a", "Plan Rows": 3,
                  "Filter": "(a.code = $1)"},
                 {"Node Type": "Hash", "Plans": [
                   {"Node Type": "Seq Scan", "Schema": "s", "Relation Name": "b", "Plan Rows": 10}]}]}}]"#,
        )
        .unwrap();
        let scans = seq_scans(&plan);
        assert_eq!(scans.len(), 1);
        assert_eq!(scans[0].relation, "a");
        assert_eq!(scans[0].rows, 3.0);
        assert_eq!(total_cost(&plan), Some(900.5));
    }

    #[test]
    fn filter_columns_skip_literals_and_unquote() {
        let cols: Vec<String> = ["code", "status", "Größe \"x\"", "id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            filter_columns(
                "((t.\"Größe \"\"x\"\"\" > 3) AND (t.code = 'status'::text))",
                &cols
            ),
            vec!["Größe \"x\"".to_string(), "code".to_string()]
        );
        assert!(filter_columns("(lower(name) = 'id')", &cols).is_empty());
    }
}
