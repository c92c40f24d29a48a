//! Scheduled backup jobs of each project: show and set the schedules, and run every job whose
//! time has come (`schedule run-due` from system cron, or the app's background scheduler),
//! one `run-due` per project at a time.

use std::sync::Arc;

use chrono::{Local, Utc};
use fs2::FileExt;
use serde::Serialize;
use ts_rs::TS;

use super::Steward;
use crate::backup::{RetentionPolicy, VerifyTier};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, ProgressSink};
use crate::schedule::{self, ProjectSchedule, ScheduleRun, ScheduledJob};

/// One job's schedule as shown.
#[derive(Debug, Clone, Serialize, TS)]
pub struct JobSchedule {
    pub job: ScheduledJob,
    /// `None`: off.
    pub cron: Option<String>,
    /// `default` (from the environment) or `project` (set for this project).
    pub source: String,
    /// Next run in local time (RFC 3339), when on.
    pub next_run: Option<String>,
    pub last_run: Option<ScheduleRun>,
}

/// A project's schedules.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ScheduleReport {
    pub project: String,
    /// The zone the expressions are read in: this computer's local time, e.g. `UTC+01:00`.
    pub time_zone: String,
    pub jobs: Vec<JobSchedule>,
}

/// One job `run-due` ran.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DueRun {
    pub project: String,
    pub job: ScheduledJob,
    pub due_at: String,
    /// `succeeded`, `failed` or `skipped`.
    pub outcome: String,
    pub message: String,
    #[ts(type = "number")]
    pub duration_ms: i64,
}

/// What `run-due` did.
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct RunDueReport {
    pub runs: Vec<DueRun>,
    /// Projects another `run-due` was working on (left to it).
    pub busy: Vec<String>,
    /// Projects whose schedules could not be read, with the reason.
    pub problems: Vec<String>,
}

/// Held while a project's due jobs run.
struct ScheduleLock(#[allow(dead_code)] std::fs::File);

fn quiet() -> ProgressSink {
    Arc::new(|_| {})
}

fn local_zone() -> String {
    format!("local time (UTC{})", Local::now().format("%:z"))
}

impl Steward {
    fn schedule_of(&self, name: &str) -> Result<ProjectSchedule> {
        ProjectSchedule::load(&self.store.project_dir(name)?)
    }

    fn created_ms(&self, name: &str) -> Result<i64> {
        Ok(self.store.get(name)?.created_at.timestamp_millis())
    }

    /// The project's three schedules, with next and last runs.
    pub async fn schedule_show(&self, name: &str) -> Result<ScheduleReport> {
        let created = self.created_ms(name)?;
        let sched = self.schedule_of(name)?;
        let store = self.history_store(name).await?;
        let mut last = schedule::last_runs(store.sqlite()).await?;
        let now = Utc::now();
        let mut jobs = Vec::new();
        for job in ScheduledJob::ALL {
            let (cron, source, _) = sched.effective(job, created)?;
            jobs.push(JobSchedule {
                job,
                next_run: cron.as_ref().and_then(|c| schedule::next_run(c, now)),
                cron: cron.map(|c| c.as_str().to_string()),
                source: source.to_string(),
                last_run: last.remove(&job).map(|(_, r)| r),
            });
        }
        Ok(ScheduleReport {
            project: name.to_string(),
            time_zone: local_zone(),
            jobs,
        })
    }

    /// Set jobs' schedules (`None`: off); all or nothing: one invalid expression changes none.
    pub async fn schedule_set(
        &self,
        name: &str,
        changes: &[(ScheduledJob, Option<String>)],
    ) -> Result<ScheduleReport> {
        self.store.get(name)?;
        let dir = self.store.project_dir(name)?;
        let mut sched = ProjectSchedule::load(&dir)?;
        let now = Utc::now().timestamp_millis();
        for (job, cron) in changes {
            sched.set(*job, cron.as_deref(), now)?;
        }
        sched.save(&dir)?;
        self.schedule_show(name).await
    }

    /// Go back to the environment's schedule for these jobs.
    pub async fn schedule_reset(
        &self,
        name: &str,
        jobs: &[ScheduledJob],
    ) -> Result<ScheduleReport> {
        self.store.get(name)?;
        let dir = self.store.project_dir(name)?;
        let mut sched = ProjectSchedule::load(&dir)?;
        for j in jobs {
            sched.jobs.remove(j);
        }
        sched.save(&dir)?;
        self.schedule_show(name).await
    }

    /// Whether any project has a schedule on (the app then keeps running in the tray).
    pub fn schedules_enabled(&self) -> bool {
        let Ok(list) = self.list() else { return false };
        list.iter().any(|p| {
            let Ok(s) = self.schedule_of(&p.name) else {
                return false;
            };
            ScheduledJob::ALL
                .iter()
                .any(|j| matches!(s.effective(*j, 0), Ok((Some(_), _, _))))
        })
    }

    fn schedule_lock(&self, name: &str) -> Result<Option<ScheduleLock>> {
        let dir = self.store.project_dir(name)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the project folder", e))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("schedule.lock"))
            .map_err(|e| Error::io("locking the schedule", e))?;
        Ok(f.try_lock_exclusive().ok().map(|_| ScheduleLock(f)))
    }

    /// Run every job of these projects (all when empty) whose time has come since its last
    /// run; a job missed several times runs once. A project another run is working on is
    /// left to it.
    pub async fn schedule_run_due(&self, names: &[String]) -> Result<RunDueReport> {
        let names: Vec<String> = if names.is_empty() {
            self.list()?.into_iter().map(|p| p.name).collect()
        } else {
            for n in names {
                self.store.get(n)?;
            }
            names.to_vec()
        };
        let mut report = RunDueReport::default();
        for name in names {
            let Some(_lock) = self.schedule_lock(&name)? else {
                report.busy.push(name);
                continue;
            };
            if let Err(e) = self.run_due_project(&name, &mut report).await {
                report.problems.push(format!("{name}: {e}"));
            }
        }
        Ok(report)
    }

    async fn run_due_project(&self, name: &str, report: &mut RunDueReport) -> Result<()> {
        let created = self.created_ms(name)?;
        let sched = self.schedule_of(name)?;
        let store = self.history_store(name).await?;
        let last = schedule::last_runs(store.sqlite()).await?;
        for job in ScheduledJob::ALL {
            let (cron, _, since) = sched.effective(job, created)?;
            let Some(cron) = cron else { continue };
            let after = last
                .get(&job)
                .map(|(d, _)| *d)
                .unwrap_or(i64::MIN)
                .max(since);
            let Some(due) = schedule::due_at(&cron, &Local::now(), after) else {
                continue;
            };
            let started = Utc::now();
            let (outcome, message) = match self.run_job(name, job).await {
                Ok(m) => ("succeeded", m),
                Err(e) if matches!(e.code, ErrorCode::Busy | ErrorCode::BackupNotFound) => {
                    ("skipped", e.message)
                }
                Err(e) => ("failed", format!("{}: {}", e.code, e.message)),
            };
            let duration = (Utc::now() - started).num_milliseconds();
            schedule::record(
                store.sqlite(),
                job,
                due,
                started.timestamp_millis(),
                duration,
                outcome,
                &message,
            )
            .await?;
            report.runs.push(DueRun {
                project: name.to_string(),
                job,
                due_at: chrono::DateTime::from_timestamp_millis(due)
                    .map(|t| t.with_timezone(&Local).to_rfc3339())
                    .unwrap_or_default(),
                outcome: outcome.to_string(),
                message,
                duration_ms: duration,
            });
        }
        Ok(())
    }

    /// Run one job now; the message says what it did. A report that found damage is an error.
    async fn run_job(&self, name: &str, job: ScheduledJob) -> Result<String> {
        match job {
            ScheduledJob::Full => {
                let b = self
                    .backup_create(name, quiet(), CancelToken::default())
                    .await?;
                let mut msg = format!(
                    "backup {} taken ({} bytes stored, {:.1} s)",
                    b.id,
                    b.stored_bytes,
                    b.duration_ms as f64 / 1000.0
                );
                let pruned =
                    RetentionPolicy::from_env().and_then(|p| self.backup_prune(name, &p, false));
                match pruned {
                    Ok(p) if !p.deleted.is_empty() => {
                        msg.push_str(&format!("; retention removed {}", p.deleted.len()))
                    }
                    Ok(_) => {}
                    Err(e) => msg.push_str(&format!("; retention failed: {}", e.message)),
                }
                Ok(msg)
            }
            ScheduledJob::Verify => {
                let newest = self.newest_backup(name)?;
                let reports = self
                    .backup_verify(
                        name,
                        Some(&newest),
                        VerifyTier::Sampled,
                        schedule::VERIFY_FRACTION,
                        quiet(),
                    )
                    .await?;
                let r = reports.into_iter().next().ok_or_else(|| {
                    Error::internal("verify returned no report for the newest backup")
                })?;
                if r.ok {
                    Ok(format!(
                        "backup {} verified (sampled): {}",
                        r.backup_id, r.message
                    ))
                } else {
                    Err(Error::new(
                        ErrorCode::BackupCorrupt,
                        format!("backup {} is damaged: {}", r.backup_id, r.message),
                    ))
                }
            }
            ScheduledJob::RecoveryTest => {
                let newest = self.newest_backup(name)?;
                let r = self
                    .backup_test_recovery(name, Some(&newest), quiet())
                    .await?;
                if r.ok {
                    Ok(format!(
                        "backup {} recovered in {:.1} s: {}",
                        r.backup_id,
                        r.rto_ms as f64 / 1000.0,
                        r.message
                    ))
                } else {
                    Err(Error::new(
                        ErrorCode::BackupCorrupt,
                        format!("recovery test of {} failed: {}", r.backup_id, r.message),
                    ))
                }
            }
        }
    }

    fn newest_backup(&self, name: &str) -> Result<String> {
        self.backup_list(name)?
            .into_iter()
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .map(|b| b.id)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::BackupNotFound,
                    format!("Project \"{name}\" has no backup yet."),
                )
            })
    }
}
