//! Safe EXPLAIN: show how PostgreSQL runs one statement without letting it change anything.
//!
//! A DBA asks "why is this query slow" with `EXPLAIN ANALYZE`, which really executes the
//! statement. pgsteward runs it inside `BEGIN` ... `ROLLBACK` with a short `statement_timeout`
//! and `lock_timeout`, accepts exactly one statement (checked by a lexer that understands
//! quotes, dollar quoting and comments, so nothing can close the transaction and carry on), and
//! says so when the statement changes data: it is still rolled back, but it did take row locks
//! and fire triggers while it ran, and consumed sequence values are not given back. The session
//! that ran user SQL is closed afterwards rather than returned to the pool, so no session state
//! it may have left behind (advisory locks, settings) reaches other work.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::plan::{self, PlanHint, PlanNode, TriggerTime};
use super::sqllex::{self, TokenKind};
use crate::conn::{PooledConn, MARK};
use crate::error::{Error, Result};
use crate::sql;

/// Longest statement text accepted.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// How a statement is explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplainOptions {
    /// Execute it (`EXPLAIN ANALYZE, BUFFERS`) or only plan it.
    pub analyze: bool,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            analyze: true,
            statement_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(2),
        }
    }
}

/// What the lexer found out about a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementInfo {
    /// The statement, without leading comments and trailing semicolon.
    pub text: String,
    /// Its first keyword, upper case ("SELECT", "WITH", "DELETE"...).
    pub keyword: String,
    /// INSERT, UPDATE, DELETE, MERGE, SELECT INTO or CREATE ... AS anywhere in it.
    pub data_changing: bool,
    /// It calls nextval() or setval(), whose effects ROLLBACK does not undo.
    pub touches_sequences: bool,
}

/// Statements EXPLAIN accepts (CREATE covers CREATE TABLE ... AS and CREATE MATERIALIZED VIEW).
const EXPLAINABLE: &[&str] = &[
    "SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE",
];

/// Check that `sql` is exactly one explainable statement and classify it.
pub fn inspect(sql: &str) -> Result<StatementInfo> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Error::invalid_input(format!(
            "The statement is longer than {} KiB.",
            MAX_SQL_BYTES / 1024
        )));
    }
    if sql.contains('\0') {
        return Err(Error::invalid_input(
            "The statement contains a NUL character.",
        ));
    }
    let tokens = sqllex::lex(sql)?;
    let stmts = sqllex::statements(&tokens);
    let stmt = match stmts.as_slice() {
        [] => {
            return Err(Error::invalid_input(
                "There is no SQL statement to explain.",
            ))
        }
        [one] => *one,
        more => {
            return Err(Error::invalid_input(format!(
                "EXPLAIN takes one statement at a time; this text holds {}. Remove all but one.",
                more.len()
            )))
        }
    };
    let first = stmt
        .iter()
        .find(|t| t.kind != TokenKind::OpenParen)
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| t.text(sql).to_ascii_uppercase())
        .unwrap_or_default();
    if !EXPLAINABLE.contains(&first.as_str()) {
        return Err(Error::invalid_input(format!(
            "EXPLAIN works on SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE and CREATE TABLE ... AS; this statement starts with {}.",
            if first.is_empty() { "something else".to_string() } else { first }
        )));
    }
    let words: Vec<String> = stmt
        .iter()
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| t.text(sql).to_ascii_uppercase())
        .collect();
    let mut data_changing = false;
    let mut touches_sequences = false;
    for (i, w) in words.iter().enumerate() {
        let prev = if i > 0 { words[i - 1].as_str() } else { "" };
        match w.as_str() {
            "INSERT" | "DELETE" | "MERGE" | "TRUNCATE" | "INTO" | "CREATE" => data_changing = true,
            // FOR UPDATE / FOR NO KEY UPDATE lock rows but change nothing.
            "UPDATE" if prev != "FOR" && prev != "KEY" => data_changing = true,
            "NEXTVAL" | "SETVAL" => touches_sequences = true,
            _ => {}
        }
    }
    let (start, end) = (stmt[0].start, stmt[stmt.len() - 1].end);
    Ok(StatementInfo {
        text: sql[start..end].to_string(),
        keyword: first,
        data_changing,
        touches_sequences,
    })
}

/// The result of a safe EXPLAIN.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ExplainReport {
    /// The statement was executed (ANALYZE), then rolled back.
    pub analyzed: bool,
    /// The statement changes data; its changes were rolled back.
    pub data_changing: bool,
    /// Sentences to show above the plan (rollback, sequences...).
    pub warnings: Vec<String>,
    pub planning_ms: Option<f64>,
    pub execution_ms: Option<f64>,
    pub plan: PlanNode,
    /// Plans of further queries the statement was rewritten into (rules); rarely present.
    pub other_plans: Vec<PlanNode>,
    pub triggers: Vec<TriggerTime>,
    /// Every hint of the tree, in tree order.
    pub hints: Vec<PlanHint>,
    /// The JSON PostgreSQL returned, for saving or other viewers.
    pub json: String,
}

/// Explain `sql` on `conn` inside a transaction that is always rolled back.
///
/// The connection is marked to be closed, not reused, whatever happens (also if this future is
/// dropped half-way: closing the session makes the server roll back).
pub async fn explain(
    conn: &mut PooledConn,
    sql: &str,
    opts: &ExplainOptions,
) -> Result<ExplainReport> {
    let info = inspect(sql)?;
    conn.discard();
    let stmt = format!(
        "{MARK} EXPLAIN ({}) {}",
        if opts.analyze {
            "ANALYZE, BUFFERS, FORMAT JSON"
        } else {
            "FORMAT JSON"
        },
        info.text
    );
    sqlx::query(sql!("BEGIN")).execute(&mut **conn).await?;
    let ran = async {
        sqlx::query(sql!(
            "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)"
        ))
        .bind(format!("{}ms", opts.statement_timeout.as_millis().max(1)))
        .bind(format!("{}ms", opts.lock_timeout.as_millis().max(1)))
        .execute(&mut **conn)
        .await?;
        let row = sqlx::query(&stmt)
            .persistent(false)
            .fetch_one(&mut **conn)
            .await?;
        // The column is of type json, whose wire form is its text.
        let json: String = row.try_get_unchecked(0)?;
        Ok::<_, Error>(json)
    }
    .await;
    let rolled_back = sqlx::query(sql!("ROLLBACK")).execute(&mut **conn).await;
    let json = ran.map_err(|e| explain_error(e, opts))?;
    rolled_back.map_err(|e| {
        Error::from(e).with_context("The plan was produced but the rollback could not be confirmed; the session is closed, which rolls it back")
    })?;
    let parsed = plan::parse(&json)?;
    let mut warnings = Vec::new();
    if info.data_changing {
        warnings.push(if opts.analyze {
            "This statement changes data. It was executed and then rolled back: no change was kept, but while it ran it took row locks and fired triggers, and sequence values it consumed are not given back.".to_string()
        } else {
            "This statement changes data. It was only planned, not executed.".to_string()
        });
    }
    if info.touches_sequences && opts.analyze {
        warnings.push(
            "This statement calls nextval() or setval(): sequence changes are not undone by the rollback."
                .to_string(),
        );
    }
    Ok(ExplainReport {
        analyzed: opts.analyze,
        data_changing: info.data_changing,
        warnings,
        planning_ms: parsed.planning_ms,
        execution_ms: parsed.execution_ms,
        plan: parsed.root,
        other_plans: parsed.other_roots,
        triggers: parsed.triggers,
        hints: parsed.hints,
        json,
    })
}

fn explain_error(e: Error, opts: &ExplainOptions) -> Error {
    match e.sqlstate.as_deref() {
        Some("57014") => {
            let secs = opts.statement_timeout.as_secs_f64();
            e.with_context(&format!(
                "The statement ran longer than the {secs} s allowed and was cancelled (and rolled back). Try without ANALYZE to see the plan only"
            ))
        }
        Some("55P03") => e.with_context(&format!(
            "The statement waited more than {} s for a lock and was cancelled (and rolled back)",
            opts.lock_timeout.as_secs_f64()
        )),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn one_statement_only() {
        assert_eq!(inspect("SELECT 1;").unwrap().text, "SELECT 1");
        assert_eq!(
            inspect("-- why\n  SELECT 1 /* c */ ; -- done")
                .unwrap()
                .text,
            "SELECT 1"
        );
        for two in [
            "SELECT 1; SELECT 2",
            "SELECT 1; COMMIT",
            "DELETE FROM t; ROLLBACK",
            "SELECT 'a'';'; DROP TABLE t",
        ] {
            let e = inspect(two).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{two}");
            assert!(e.message.contains("one statement"), "{}", e.message);
        }
        assert_eq!(inspect("  ;; ").unwrap_err().code, ErrorCode::InvalidInput);
        assert_eq!(inspect("").unwrap_err().code, ErrorCode::InvalidInput);
    }

    #[test]
    fn only_explainable_statements() {
        for bad in [
            "COMMIT",
            "DROP TABLE t",
            "VACUUM t",
            "EXPLAIN SELECT 1",
            "CALL p()",
            "EXECUTE s",
            "'x'",
        ] {
            assert_eq!(
                inspect(bad).unwrap_err().code,
                ErrorCode::InvalidInput,
                "{bad}"
            );
        }
        assert_eq!(inspect("(SELECT 1)").unwrap().keyword, "SELECT");
        assert_eq!(inspect("table t").unwrap().keyword, "TABLE");
    }

    #[test]
    fn data_changing_statements_are_recognised() {
        for dc in [
            "DELETE FROM t",
            "delete from t where id = 1",
            "UPDATE t SET a = 1",
            "INSERT INTO t VALUES (1)",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone",
            "with x as (update t set a = 1 returning 1) select * from x",
            "SELECT * INTO t2 FROM t",
            "CREATE TABLE t2 AS SELECT 1",
            "(WITH d AS (DELETE FROM t RETURNING 1) SELECT 1)",
        ] {
            assert!(inspect(dc).unwrap().data_changing, "{dc}");
        }
        for ro in [
            "SELECT 'DELETE FROM t'",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED",
            "SELECT $$ INSERT $$, \"update\" FROM t -- delete",
            "SELECT /* DELETE */ 1",
            "VALUES (1)",
        ] {
            assert!(!inspect(ro).unwrap().data_changing, "{ro}");
        }
        assert!(inspect("SELECT nextval('s')").unwrap().touches_sequences);
        assert!(!inspect("SELECT 'nextval'").unwrap().touches_sequences);
    }
}
