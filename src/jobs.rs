//! Long operations (backup, restore) report progress through one shape, whoever shows it:
//! the GUI turns it into events, the CLI into a progress bar. Cancelling is a shared flag.
//! Each job also keeps an ordered log (phases, the exact commands run, notable warnings of the
//! client programs, the outcome) that travels with its progress and is stored with its run
//! record afterwards (see [`crate::joblog`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Restore,
    Verify,
    /// Copying backups to the project's copy target.
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct JobProgress {
    pub job_id: String,
    pub kind: JobKind,
    pub project: String,
    pub status: JobStatus,
    /// What the job is doing now ("dumping", "verifying", "restoring").
    pub phase: String,
    #[ts(type = "number")]
    pub bytes: u64,
    /// Bytes per second in the current phase.
    pub rate_bytes_per_sec: f64,
    #[ts(type = "number")]
    pub elapsed_ms: u64,
    pub message: Option<String>,
    /// Bytes the current phase will handle in all, when knowable (for a backup's dump phase an
    /// estimate from the table sizes: see `total_is_estimate`).
    #[ts(type = "number | null")]
    pub total_bytes: Option<u64>,
    /// `total_bytes` is an estimate, not a count.
    pub total_is_estimate: bool,
    /// Time left in this phase at the current rate, when the total and a rate are known.
    #[ts(type = "number | null")]
    pub eta_ms: Option<u64>,
    /// The job's log so far, oldest first.
    pub log: Vec<JobLogEntry>,
}

/// What a log line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum JobLogKind {
    /// The job moved to a new phase.
    Phase,
    /// An external program, exactly as run (passwords only ever go through the environment).
    Command,
    /// A notable line a client program wrote to its standard error (warnings).
    Stderr,
    /// How the job ended, with the error code when it failed.
    Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct JobLogEntry {
    /// RFC 3339, UTC.
    pub at: String,
    pub kind: JobLogKind,
    pub text: String,
}

/// Most stderr lines kept per job; a chatty program cannot grow the log without bound.
const STDERR_LINES_KEPT: usize = 200;

/// The lines of a client program's standard error worth keeping: warnings and errors, not the
/// progress chatter of `--verbose`.
pub fn notable_stderr(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim_end).filter(|l| {
        let lower = l.to_ascii_lowercase();
        ["warning", "error", "fatal", "notice", "detail", "hint"]
            .iter()
            .any(|w| lower.contains(w))
    })
}

/// Time left at `rate` bytes per second with `done` of `total` bytes handled.
pub fn eta_ms(done: u64, total: Option<u64>, rate: f64) -> Option<u64> {
    let total = total?;
    if !(rate.is_finite() && rate > 0.0) || done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64;
    Some((left / rate * 1000.0).round() as u64)
}

/// Receives progress; must be cheap (it is called from the data path, throttled).
pub type ProgressSink = Arc<dyn Fn(&JobProgress) + Send + Sync>;

/// Shared cancel flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Helper that stamps and throttles progress reports for one job.
pub struct Reporter {
    pub job: JobProgress,
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
    phase_started: Instant,
    last_sent: Option<Instant>,
    sink: ProgressSink,
    log: Arc<Mutex<Vec<JobLogEntry>>>,
    stderr_kept: usize,
}

/// What outlives a [`Reporter`] that was moved away (into a worker thread): enough to record
/// the job's run even when it failed before it could hand the reporter back.
#[derive(Clone)]
pub struct JobTrace {
    pub job_id: String,
    pub kind: JobKind,
    pub started_at: chrono::DateTime<chrono::Utc>,
    started: Instant,
    log: Arc<Mutex<Vec<JobLogEntry>>>,
}

impl JobTrace {
    pub fn log(&self) -> Vec<JobLogEntry> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Append the outcome unless the reporter already logged it.
    pub fn ensure_outcome(&self, text: String) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.last().is_none_or(|e| e.kind != JobLogKind::Outcome) {
            log.push(JobLogEntry {
                at: chrono::Utc::now().to_rfc3339(),
                kind: JobLogKind::Outcome,
                text,
            });
        }
    }
}

impl Reporter {
    pub fn new(kind: JobKind, project: &str, sink: ProgressSink) -> Self {
        Reporter {
            job: JobProgress {
                job_id: uuid::Uuid::new_v4().to_string(),
                kind,
                project: project.to_string(),
                status: JobStatus::Running,
                phase: "starting".into(),
                bytes: 0,
                rate_bytes_per_sec: 0.0,
                elapsed_ms: 0,
                message: None,
                total_bytes: None,
                total_is_estimate: false,
                eta_ms: None,
                log: Vec::new(),
            },
            started: Instant::now(),
            started_at: chrono::Utc::now(),
            phase_started: Instant::now(),
            last_sent: None,
            sink,
            log: Arc::default(),
            stderr_kept: 0,
        }
    }

    /// A handle on the job's identity and log that outlives the reporter.
    pub fn trace(&self) -> JobTrace {
        JobTrace {
            job_id: self.job.job_id.clone(),
            kind: self.job.kind,
            started_at: self.started_at,
            started: self.started,
            log: self.log.clone(),
        }
    }

    fn push_log(&mut self, kind: JobLogKind, text: String) {
        let entry = JobLogEntry {
            at: chrono::Utc::now().to_rfc3339(),
            kind,
            text,
        };
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(entry.clone());
        self.job.log.push(entry);
    }

    /// Log an external command line exactly as run (rendered without any password).
    pub fn command(&mut self, line: &str) {
        self.push_log(JobLogKind::Command, line.to_string());
        self.force();
    }

    /// Log the notable lines of a client program's standard error.
    pub fn stderr(&mut self, program: &str, text: &str) {
        let mut any = false;
        for line in notable_stderr(text) {
            if self.stderr_kept >= STDERR_LINES_KEPT {
                break;
            }
            self.stderr_kept += 1;
            let text = if line.starts_with(&format!("{program}:")) {
                line.to_string()
            } else {
                format!("{program}: {line}")
            };
            self.push_log(JobLogKind::Stderr, text);
            any = true;
        }
        if any {
            self.force();
        }
    }

    /// The bytes the current phase will handle, when known (`estimate`: not a count).
    pub fn total(&mut self, total: Option<u64>, estimate: bool) {
        self.job.total_bytes = total;
        self.job.total_is_estimate = estimate && total.is_some();
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn stamp(&mut self) {
        self.job.elapsed_ms = self.started.elapsed().as_millis() as u64;
        let secs = self.phase_started.elapsed().as_secs_f64();
        self.job.rate_bytes_per_sec = if secs > 0.0 {
            self.job.bytes as f64 / secs
        } else {
            0.0
        };
        self.job.eta_ms = eta_ms(
            self.job.bytes,
            self.job.total_bytes,
            self.job.rate_bytes_per_sec,
        );
    }

    /// New phase: bytes restart from zero, the total is unknown until set, and the change is
    /// logged and always reported.
    pub fn phase(&mut self, phase: &str) {
        self.job.phase = phase.to_string();
        self.job.bytes = 0;
        self.job.total_bytes = None;
        self.job.total_is_estimate = false;
        self.phase_started = Instant::now();
        self.push_log(JobLogKind::Phase, phase.to_string());
        self.force();
    }

    /// Bytes done so far in this phase; reported at most ten times a second.
    pub fn bytes(&mut self, bytes: u64) {
        self.job.bytes = bytes;
        if self
            .last_sent
            .is_none_or(|t| t.elapsed().as_millis() >= 100)
        {
            self.force();
        }
    }

    pub fn force(&mut self) {
        self.stamp();
        self.last_sent = Some(Instant::now());
        (self.sink)(&self.job);
    }

    /// Report the job as failed, or cancelled when that is why it stopped.
    pub fn fail(&mut self, e: &crate::Error) {
        let status = if e.code == crate::ErrorCode::Cancelled {
            JobStatus::Cancelled
        } else {
            JobStatus::Failed
        };
        self.end(
            status,
            Some(e.message.clone()),
            outcome_text(status, Some(e)),
        );
    }

    pub fn finish(&mut self, status: JobStatus, message: Option<String>) {
        let text = match &message {
            Some(m) => format!("{}: {m}", status_word(status)),
            None => status_word(status).to_string(),
        };
        self.end(status, message, text);
    }

    fn end(&mut self, status: JobStatus, message: Option<String>, outcome: String) {
        self.job.status = status;
        self.job.message = message;
        self.job.eta_ms = None;
        self.push_log(JobLogKind::Outcome, outcome);
        self.force();
    }
}

fn status_word(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "succeeded",
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
    }
}

/// The outcome line of a job: its status and, when it failed, the error's code and message.
pub fn outcome_text(status: JobStatus, e: Option<&crate::Error>) -> String {
    match e {
        Some(e) => format!(
            "{} [{}]: {}",
            status_word(status),
            e.code.as_str(),
            e.message
        ),
        None => status_word(status).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> ProgressSink {
        Arc::new(|_| {})
    }

    #[test]
    fn eta_is_the_bytes_left_at_the_rate() {
        // 250 of 1000 bytes at 50 B/s: 750 bytes left, 15 s.
        assert_eq!(eta_ms(250, Some(1000), 50.0), Some(15_000));
        // Past an estimate: nothing left, not a negative time.
        assert_eq!(eta_ms(1200, Some(1000), 50.0), Some(0));
        assert_eq!(eta_ms(250, None, 50.0), None);
        assert_eq!(eta_ms(250, Some(1000), 0.0), None);
        assert_eq!(eta_ms(0, Some(1000), 0.0), None);
        assert_eq!(eta_ms(10, Some(1000), f64::NAN), None);
    }

    #[test]
    fn a_phase_forgets_the_previous_total_and_is_logged() {
        let mut rep = Reporter::new(JobKind::Backup, "p", quiet());
        rep.phase("dumping");
        rep.total(Some(1000), true);
        rep.bytes(100);
        rep.force();
        assert_eq!(rep.job.total_bytes, Some(1000));
        assert!(rep.job.total_is_estimate);
        rep.phase("storing");
        assert_eq!(rep.job.total_bytes, None);
        assert!(!rep.job.total_is_estimate);
        assert_eq!(rep.job.eta_ms, None);
        let phases: Vec<_> = rep
            .trace()
            .log()
            .into_iter()
            .filter(|e| e.kind == JobLogKind::Phase)
            .map(|e| e.text)
            .collect();
        assert_eq!(phases, ["dumping", "storing"]);
    }

    #[test]
    fn the_log_keeps_commands_warnings_and_the_outcome_in_order() {
        let mut rep = Reporter::new(JobKind::Backup, "p", quiet());
        let trace = rep.trace();
        rep.command("pg_dump --format=directory --jobs=2");
        rep.stderr(
            "pg_dump",
            "pg_dump: reading extensions\npg_dump: warning: there are circular foreign-key constraints\n",
        );
        rep.fail(&crate::Error::new(
            crate::ErrorCode::ToolFailed,
            "pg_dump failed",
        ));
        let log = trace.log();
        let kinds: Vec<_> = log.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [JobLogKind::Command, JobLogKind::Stderr, JobLogKind::Outcome]
        );
        assert_eq!(
            log[1].text,
            "pg_dump: warning: there are circular foreign-key constraints"
        );
        assert_eq!(log[2].text, "failed [tool_failed]: pg_dump failed");
        assert_eq!(rep.job.log, log);
        // The outcome is logged once.
        trace.ensure_outcome("failed".into());
        assert_eq!(trace.log().len(), 3);
    }
}
