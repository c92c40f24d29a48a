//! Backup schedules: when each project's full backup, verify and recovery test run by
//! themselves, and the record of every scheduled run.
//!
//! A project's schedules come from the environment (`BACKUP_SCHEDULE_FULL`, default
//! `0 2 * * *`; `BACKUP_SCHEDULE_VERIFY`, default `30 3 * * 0`; `BACKUP_SCHEDULE_RECOVERY_TEST`,
//! default off; all off when `BACKUP_ENABLED=false`), overridden by its own `schedule.json`.
//! Times are this computer's local time. A job is due when its last matching time (at or before
//! now) is later than both its last scheduled run and the moment its schedule was set: runs
//! missed while nothing was running are caught up once, never once per missed time.
//! [`crate::Steward::schedule_run_due`] runs them; this module holds the pure parts and the
//! `schedule_runs` table of the project's history store.

pub mod cron;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};
use ts_rs::TS;

pub use cron::CronExpr;

use crate::error::{Error, ErrorCode, Result};

/// Default of `BACKUP_SCHEDULE_FULL`.
pub const DEFAULT_FULL: &str = "0 2 * * *";
/// Default of `BACKUP_SCHEDULE_VERIFY`: Sundays at 03:30, a sampled verify of the newest backup.
pub const DEFAULT_VERIFY: &str = "30 3 * * 0";
/// Share of the newest backup's segments a scheduled verify reads (the sampled tier).
pub const VERIFY_FRACTION: f64 = 0.1;
/// Scheduled runs kept per project (the oldest go first).
pub const RUNS_KEPT: i64 = 500;

/// The jobs a project can schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledJob {
    /// `backup create`, then retention (`backup prune` with BACKUP_RETENTION_DAYS).
    Full,
    /// A sampled verify of the newest backup.
    Verify,
    /// A recovery test of the newest backup.
    RecoveryTest,
}

impl ScheduledJob {
    pub const ALL: [ScheduledJob; 3] = [
        ScheduledJob::Full,
        ScheduledJob::Verify,
        ScheduledJob::RecoveryTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScheduledJob::Full => "full",
            ScheduledJob::Verify => "verify",
            ScheduledJob::RecoveryTest => "recovery_test",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ScheduledJob::Full => "backup",
            ScheduledJob::Verify => "verify",
            ScheduledJob::RecoveryTest => "recovery test",
        }
    }

    fn env(self) -> &'static str {
        match self {
            ScheduledJob::Full => "BACKUP_SCHEDULE_FULL",
            ScheduledJob::Verify => "BACKUP_SCHEDULE_VERIFY",
            ScheduledJob::RecoveryTest => "BACKUP_SCHEDULE_RECOVERY_TEST",
        }
    }

    /// The schedule from the environment: `None` when off.
    pub fn default_cron(self) -> Result<Option<CronExpr>> {
        if !backups_enabled() {
            return Ok(None);
        }
        let text = match std::env::var(self.env()) {
            Ok(v) => v,
            Err(_) => match self {
                ScheduledJob::Full => DEFAULT_FULL.to_string(),
                ScheduledJob::Verify => DEFAULT_VERIFY.to_string(),
                ScheduledJob::RecoveryTest => return Ok(None),
            },
        };
        if is_off(&text) {
            return Ok(None);
        }
        CronExpr::parse(&text)
            .map(Some)
            .map_err(|e| Error::invalid_input(format!("{}: {}", self.env(), e.message)))
    }
}

impl std::str::FromStr for ScheduledJob {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.replace('-', "_").as_str() {
            "full" | "backup" => Ok(ScheduledJob::Full),
            "verify" => Ok(ScheduledJob::Verify),
            "recovery_test" => Ok(ScheduledJob::RecoveryTest),
            _ => Err(Error::invalid_input(format!(
                "no scheduled job \"{s}\": use full, verify or recovery-test"
            ))),
        }
    }
}

/// `BACKUP_ENABLED` (true unless set to false, 0, no or off).
pub fn backups_enabled() -> bool {
    std::env::var("BACKUP_ENABLED")
        .map(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            )
        })
        .unwrap_or(true)
}

fn is_off(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "" | "off" | "none"
    )
}

/// A change the app asks for: a job's new cron expression, or `None` to turn it off.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ScheduleChange {
    pub job: ScheduledJob,
    pub cron: Option<String>,
}

/// One job's own setting: a cron expression, or off; and when it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSetting {
    /// `None`: off.
    pub cron: Option<String>,
    /// When it was set (milliseconds since the epoch): times before it are never due.
    pub since: i64,
}

/// A project's `schedule.json`: the jobs it sets for itself; the others follow the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectSchedule {
    #[serde(default)]
    pub jobs: BTreeMap<ScheduledJob, JobSetting>,
}

impl ProjectSchedule {
    pub const FILE: &'static str = "schedule.json";

    pub fn load(project_dir: &Path) -> Result<ProjectSchedule> {
        match std::fs::read(project_dir.join(Self::FILE)) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::invalid_input(format!("schedule.json is not valid: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProjectSchedule::default()),
            Err(e) => Err(Error::io("reading schedule.json", e)),
        }
    }

    pub fn save(&self, project_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(project_dir)
            .map_err(|e| Error::io("creating the project folder", e))?;
        let tmp = project_dir.join("schedule.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serializable"))
            .map_err(|e| Error::io("writing schedule.json", e))?;
        std::fs::rename(&tmp, project_dir.join(Self::FILE))
            .map_err(|e| Error::io("writing schedule.json", e))
    }

    /// Set (`Some`) or turn off (`None`) a job; an invalid expression changes nothing.
    pub fn set(&mut self, job: ScheduledJob, cron: Option<&str>, now_ms: i64) -> Result<()> {
        let cron = match cron {
            Some(t) if !is_off(t) => Some(CronExpr::parse(t)?.as_str().to_string()),
            _ => None,
        };
        self.jobs.insert(
            job,
            JobSetting {
                cron,
                since: now_ms,
            },
        );
        Ok(())
    }

    /// The job's schedule in force, where it comes from, and since when it holds
    /// (`created_ms` for the environment's defaults: the project's creation).
    pub fn effective(
        &self,
        job: ScheduledJob,
        created_ms: i64,
    ) -> Result<(Option<CronExpr>, &'static str, i64)> {
        match self.jobs.get(&job) {
            Some(s) => {
                let cron = s.cron.as_deref().map(CronExpr::parse).transpose()?;
                Ok((cron, "project", s.since))
            }
            None => Ok((job.default_cron()?, "default", created_ms)),
        }
    }
}

/// The time a job is due now, if it is: its last matching time at or before `now`, when that is
/// later than `after` (its last scheduled run's due time, or the moment it was set).
pub fn due_at<Tz: TimeZone>(cron: &CronExpr, now: &DateTime<Tz>, after_ms: i64) -> Option<i64> {
    let last = cron.last_at_or_before(now)?.timestamp_millis();
    (last > after_ms).then_some(last)
}

/// The next time after `now` the job runs, in local time (RFC 3339).
pub fn next_run(cron: &CronExpr, now: DateTime<Utc>) -> Option<String> {
    cron.next_after(&now.with_timezone(&Local))
        .map(|t| t.to_rfc3339())
}

/// One scheduled run as stored.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ScheduleRun {
    pub job: ScheduledJob,
    /// The scheduled time it ran for (local time, RFC 3339).
    pub due_at: String,
    pub started_at: String,
    #[ts(type = "number")]
    pub duration_ms: i64,
    /// `succeeded`, `failed` or `skipped`.
    pub outcome: String,
    pub message: String,
}

fn db_err(context: &str, e: sqlx::Error) -> Error {
    Error::new(ErrorCode::Io, format!("schedule history, {context}: {e}"))
}

fn local_text(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

pub async fn record(
    db: &SqlitePool,
    job: ScheduledJob,
    due_ms: i64,
    started_ms: i64,
    duration_ms: i64,
    outcome: &str,
    message: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO schedule_runs (job, due_at, started_at, duration_ms, outcome, message)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(job.as_str())
    .bind(due_ms)
    .bind(started_ms)
    .bind(duration_ms)
    .bind(outcome)
    .bind(message)
    .execute(db)
    .await
    .map_err(|e| db_err("recording a run", e))?;
    sqlx::query(
        "DELETE FROM schedule_runs WHERE id NOT IN
            (SELECT id FROM schedule_runs ORDER BY id DESC LIMIT ?)",
    )
    .bind(RUNS_KEPT)
    .execute(db)
    .await
    .map_err(|e| db_err("trimming runs", e))?;
    Ok(())
}

/// The latest run of each job, with its due time in milliseconds.
pub async fn last_runs(db: &SqlitePool) -> Result<BTreeMap<ScheduledJob, (i64, ScheduleRun)>> {
    let rows = sqlx::query(
        "SELECT job, due_at, started_at, duration_ms, outcome, message FROM schedule_runs r
          WHERE id = (SELECT max(id) FROM schedule_runs s WHERE s.job = r.job)",
    )
    .fetch_all(db)
    .await
    .map_err(|e| db_err("reading runs", e))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let Ok(job) = r.get::<String, _>("job").parse::<ScheduledJob>() else {
            continue;
        };
        let due: i64 = r.get("due_at");
        out.insert(
            job,
            (
                due,
                ScheduleRun {
                    job,
                    due_at: local_text(due),
                    started_at: local_text(r.get("started_at")),
                    duration_ms: r.get("duration_ms"),
                    outcome: r.get("outcome"),
                    message: r.get("message"),
                },
            ),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_for_the_latest_missed_time() {
        let cron = CronExpr::parse("0 2 * * *").unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let set = t("2026-03-01T12:00:00Z").timestamp_millis();
        // Not due before the first 02:00 after it was set.
        assert_eq!(due_at(&cron, &t("2026-03-02T01:59:00Z"), set), None);
        // Three days missed: due once, for the latest 02:00.
        let due = due_at(&cron, &t("2026-03-04T09:00:00Z"), set).unwrap();
        assert_eq!(due, t("2026-03-04T02:00:00Z").timestamp_millis());
        // After that run nothing is due until the next 02:00.
        assert_eq!(due_at(&cron, &t("2026-03-04T23:00:00Z"), due), None);
        assert!(due_at(&cron, &t("2026-03-05T02:00:00Z"), due).is_some());
    }

    #[test]
    fn an_invalid_expression_leaves_the_schedule_as_it_was() {
        let mut s = ProjectSchedule::default();
        s.set(ScheduledJob::Full, Some("0 3 * * *"), 1).unwrap();
        let before = s.clone();
        assert!(s.set(ScheduledJob::Full, Some("0 25 * * *"), 2).is_err());
        assert_eq!(s, before);
        s.set(ScheduledJob::Verify, Some("off"), 3).unwrap();
        assert!(s.effective(ScheduledJob::Verify, 0).unwrap().0.is_none());
    }

    #[test]
    fn job_names() {
        assert_eq!(
            "recovery-test".parse::<ScheduledJob>().unwrap(),
            ScheduledJob::RecoveryTest
        );
        assert_eq!("full".parse::<ScheduledJob>().unwrap(), ScheduledJob::Full);
        assert!("nightly".parse::<ScheduledJob>().is_err());
    }
}
