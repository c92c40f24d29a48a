//! Job runs kept for later: every backup, restore, verify and recovery test (from the app, the
//! CLI or a schedule) leaves one record in the project's history store, `job_runs` (the latest
//! 500), with its outcome, its error code and its log: the phases, the exact commands run (the
//! same lines the manifest lists), the notable warnings of pg_dump/pg_restore. So the log of a
//! job can be read after it ended, from the Backups page or `pgsteward backup show`.

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;
use ts_rs::TS;

use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{outcome_text, JobLogEntry, JobStatus, JobTrace};
use crate::steward::Steward;

/// Runs kept per project.
const RUNS_KEPT: i64 = 500;

/// One finished job.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct JobRun {
    pub job_id: String,
    /// `backup`, `restore`, `verify`, `recovery_test` or `copy`.
    pub kind: String,
    /// The backup the job made or worked on, when there is one.
    pub backup_id: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    #[ts(type = "number")]
    pub duration_ms: u64,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    /// The error's stable code when it failed.
    pub code: Option<String>,
    pub message: String,
    /// Oldest first; empty in lists (read one run for its log).
    pub log: Vec<JobLogEntry>,
}

fn db_err(context: &str, e: sqlx::Error) -> Error {
    Error::new(ErrorCode::Io, format!("job history, {context}: {e}"))
}

pub async fn record(db: &SqlitePool, run: &JobRun) -> Result<()> {
    let started = chrono::DateTime::parse_from_rfc3339(&run.started_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or_default();
    let log = serde_json::to_string(&run.log).expect("serializable");
    sqlx::query(
        "INSERT OR REPLACE INTO job_runs
           (job_id, kind, backup_id, started_at, duration_ms, outcome, code, message, log)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.job_id)
    .bind(&run.kind)
    .bind(&run.backup_id)
    .bind(started)
    .bind(run.duration_ms as i64)
    .bind(&run.outcome)
    .bind(&run.code)
    .bind(&run.message)
    .bind(log)
    .execute(db)
    .await
    .map_err(|e| db_err("recording a run", e))?;
    sqlx::query(
        "DELETE FROM job_runs WHERE id NOT IN (SELECT id FROM job_runs ORDER BY id DESC LIMIT ?)",
    )
    .bind(RUNS_KEPT)
    .execute(db)
    .await
    .map_err(|e| db_err("trimming runs", e))?;
    Ok(())
}

fn from_row(r: &sqlx::sqlite::SqliteRow, with_log: bool) -> JobRun {
    let started: i64 = r.get("started_at");
    let log = if with_log {
        serde_json::from_str(&r.get::<String, _>("log")).unwrap_or_default()
    } else {
        Vec::new()
    };
    JobRun {
        job_id: r.get("job_id"),
        kind: r.get("kind"),
        backup_id: r.get("backup_id"),
        started_at: chrono::DateTime::from_timestamp_millis(started)
            .unwrap_or_default()
            .to_rfc3339(),
        duration_ms: r.get::<i64, _>("duration_ms").max(0) as u64,
        outcome: r.get("outcome"),
        code: r.get("code"),
        message: r.get("message"),
        log,
    }
}

/// The latest runs, newest first, without their logs.
pub async fn list(db: &SqlitePool, limit: u32) -> Result<Vec<JobRun>> {
    let rows = sqlx::query(
        "SELECT job_id, kind, backup_id, started_at, duration_ms, outcome, code, message, '' AS log
           FROM job_runs ORDER BY id DESC LIMIT ?",
    )
    .bind(limit as i64)
    .fetch_all(db)
    .await
    .map_err(|e| db_err("reading runs", e))?;
    Ok(rows.iter().map(|r| from_row(r, false)).collect())
}

/// One run with its log: by job id, or the latest run that made or used a backup.
pub async fn get(db: &SqlitePool, id: &str) -> Result<Option<JobRun>> {
    let row = sqlx::query(
        "SELECT job_id, kind, backup_id, started_at, duration_ms, outcome, code, message, log
           FROM job_runs WHERE job_id = ?1
              OR id = (SELECT max(id) FROM job_runs WHERE backup_id = ?1 AND kind = 'backup')",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(|e| db_err("reading a run", e))?;
    Ok(row.map(|r| from_row(&r, true)))
}

impl Steward {
    /// Keep the run of a job that ended with `result` in the project's history store. A store
    /// that cannot be written does not fail the job: the job's own outcome stands, the failure
    /// is logged.
    pub(crate) async fn record_job<T>(
        &self,
        name: &str,
        trace: &JobTrace,
        kind: &str,
        backup_id: Option<&str>,
        result: &Result<T>,
    ) {
        let (status, message, code) = match result {
            Ok(_) => (JobStatus::Succeeded, String::new(), None),
            Err(e) if e.code == ErrorCode::Cancelled => {
                (JobStatus::Cancelled, e.message.clone(), Some(e.code))
            }
            Err(e) => (JobStatus::Failed, e.message.clone(), Some(e.code)),
        };
        trace.ensure_outcome(outcome_text(status, result.as_ref().err()));
        let run = JobRun {
            job_id: trace.job_id.clone(),
            kind: kind.to_string(),
            backup_id: backup_id.map(str::to_string),
            started_at: trace.started_at.to_rfc3339(),
            duration_ms: trace.elapsed_ms(),
            outcome: match status {
                JobStatus::Succeeded => "succeeded",
                JobStatus::Cancelled => "cancelled",
                _ => "failed",
            }
            .into(),
            code: code.map(|c| c.as_str().to_string()),
            message,
            log: trace.log(),
        };
        let stored = async {
            let store = self.history_store(name).await?;
            record(store.sqlite(), &run).await
        }
        .await;
        if let Err(e) = stored {
            tracing::warn!(project = name, error = %e, "could not keep the job's log");
        }
    }

    /// The project's latest job runs, newest first (without their logs).
    pub async fn job_runs(&self, name: &str, limit: u32) -> Result<Vec<JobRun>> {
        let store = self.history_store(name).await?;
        list(store.sqlite(), limit).await
    }

    /// One job run with its log, by job id or by the id of the backup it made.
    pub async fn job_run(&self, name: &str, id: &str) -> Result<JobRun> {
        let store = self.history_store(name).await?;
        get(store.sqlite(), id).await?.ok_or_else(|| {
            Error::invalid_input(format!(
                "Project \"{name}\" has no recorded job or backup {id}."
            ))
        })
    }
}
