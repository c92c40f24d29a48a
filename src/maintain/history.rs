//! The maintenance history: every action run, with before/after figures, duration and outcome,
//! in the `maintenance_runs` table of the project's history store, and the success rate
//! against the 95 % target.

use serde::Serialize;
use sqlx::{Row, SqlitePool};
use ts_rs::TS;

use super::executor::{ActionRun, RunMode};
use super::SUCCESS_TARGET_PERCENT;
use crate::error::{Error, ErrorCode, Result};

/// Days the success rate looks back.
pub const SUCCESS_RATE_DAYS: i64 = 30;

/// One stored action run.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenanceRecord {
    #[ts(type = "number")]
    pub id: i64,
    pub run_id: String,
    pub mode: String,
    pub kind: String,
    pub schema: String,
    pub table: String,
    pub index: Option<String>,
    pub sql: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub guard_tripped: bool,
    #[ts(type = "number")]
    pub started_at: i64,
    #[ts(type = "number")]
    pub duration_ms: i64,
    #[ts(type = "number | null")]
    pub dead_before: Option<i64>,
    #[ts(type = "number | null")]
    pub dead_after: Option<i64>,
    #[ts(type = "number | null")]
    pub size_before: Option<i64>,
    #[ts(type = "number | null")]
    pub size_after: Option<i64>,
}

/// Recent records and the success rate.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenanceHistory {
    pub records: Vec<MaintenanceRecord>,
    /// Runs of the last 30 days.
    #[ts(type = "number")]
    pub total: i64,
    #[ts(type = "number")]
    pub succeeded: i64,
    #[ts(type = "number")]
    pub failed: i64,
    #[ts(type = "number")]
    pub cancelled: i64,
    /// `None` when nothing ran in the last 30 days.
    pub success_rate_percent: Option<f64>,
    pub target_percent: f64,
    pub meets_target: Option<bool>,
}

fn db_err(context: &str, e: sqlx::Error) -> Error {
    Error::new(
        ErrorCode::Io,
        format!("maintenance history, {context}: {e}"),
    )
}

pub async fn record(db: &SqlitePool, run_id: &str, mode: RunMode, r: &ActionRun) -> Result<()> {
    sqlx::query(
        "INSERT INTO maintenance_runs (run_id, mode, kind, schema_name, table_name, index_name,
            sql, outcome, reason, guard_tripped, started_at, duration_ms, dead_before, dead_after,
            size_before, size_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(run_id)
    .bind(mode.as_str())
    .bind(r.kind.as_str())
    .bind(&r.schema)
    .bind(&r.table)
    .bind(&r.index)
    .bind(&r.sql)
    .bind(r.outcome.as_str())
    .bind(&r.reason)
    .bind(r.guard_tripped)
    .bind(r.started_at)
    .bind(r.duration_ms)
    .bind(r.dead_before)
    .bind(r.dead_after)
    .bind(r.size_before)
    .bind(r.size_after)
    .execute(db)
    .await
    .map_err(|e| db_err("recording a run", e))?;
    Ok(())
}

/// Failed actions since `since_ms` that no later run cleared: the actions that failed in runs
/// newer than the newest run whose every action succeeded (a run counts by its last action). A
/// cancelled action is no failure, but a run with one is not a clean run either.
pub async fn unresolved_failures(db: &SqlitePool, since_ms: i64) -> Result<i64> {
    let row = sqlx::query(
        "WITH runs AS (
             SELECT run_id, max(started_at) AS at,
                    sum(outcome = 'failed') AS failed,
                    sum(outcome <> 'succeeded') AS not_clean
               FROM maintenance_runs WHERE started_at >= ? GROUP BY run_id)
         SELECT coalesce(sum(failed), 0) AS n FROM runs
          WHERE at > coalesce((SELECT max(at) FROM runs WHERE not_clean = 0), -1)",
    )
    .bind(since_ms)
    .fetch_one(db)
    .await
    .map_err(|e| db_err("counting failed runs", e))?;
    Ok(row.get("n"))
}

/// Success rate in percent, `None` without runs.
pub fn success_rate(succeeded: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| (succeeded as f64 / total as f64 * 1000.0).round() / 10.0)
}

pub async fn load(db: &SqlitePool, now_ms: i64, limit: u32) -> Result<MaintenanceHistory> {
    let rows = sqlx::query(
        "SELECT id, run_id, mode, kind, schema_name, table_name, index_name, sql, outcome, reason,
                guard_tripped, started_at, duration_ms, dead_before, dead_after, size_before, size_after
           FROM maintenance_runs ORDER BY started_at DESC, id DESC LIMIT ?",
    )
    .bind(limit as i64)
    .fetch_all(db)
    .await
    .map_err(|e| db_err("reading runs", e))?;
    let records = rows
        .iter()
        .map(|r| MaintenanceRecord {
            id: r.get("id"),
            run_id: r.get("run_id"),
            mode: r.get("mode"),
            kind: r.get("kind"),
            schema: r.get("schema_name"),
            table: r.get("table_name"),
            index: r.get("index_name"),
            sql: r.get("sql"),
            outcome: r.get("outcome"),
            reason: r.get("reason"),
            guard_tripped: r.get("guard_tripped"),
            started_at: r.get("started_at"),
            duration_ms: r.get("duration_ms"),
            dead_before: r.get("dead_before"),
            dead_after: r.get("dead_after"),
            size_before: r.get("size_before"),
            size_after: r.get("size_after"),
        })
        .collect();
    let since = now_ms - SUCCESS_RATE_DAYS * 86_400_000;
    let c = sqlx::query(
        "SELECT count(*) AS total,
                coalesce(sum(outcome = 'succeeded'), 0) AS ok,
                coalesce(sum(outcome = 'failed'), 0) AS failed,
                coalesce(sum(outcome = 'cancelled'), 0) AS cancelled
           FROM maintenance_runs WHERE started_at >= ?",
    )
    .bind(since)
    .fetch_one(db)
    .await
    .map_err(|e| db_err("counting runs", e))?;
    let total: i64 = c.get("total");
    let succeeded: i64 = c.get("ok");
    let rate = success_rate(succeeded, total);
    Ok(MaintenanceHistory {
        records,
        total,
        succeeded,
        failed: c.get("failed"),
        cancelled: c.get("cancelled"),
        success_rate_percent: rate,
        target_percent: SUCCESS_TARGET_PERCENT,
        meets_target: rate.map(|r| r >= SUCCESS_TARGET_PERCENT),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn success_rate_rounds_to_a_tenth() {
        assert_eq!(super::success_rate(0, 0), None);
        assert_eq!(super::success_rate(19, 20), Some(95.0));
        assert_eq!(super::success_rate(2, 3), Some(66.7));
    }
}
