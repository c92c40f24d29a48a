//! Long operations (backup, restore) report progress through one shape, whoever shows it:
//! the GUI turns it into events, the CLI into a progress bar. Cancelling is a shared flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
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
    pub rate_bytes_per_sec: f64,
    #[ts(type = "number")]
    pub elapsed_ms: u64,
    pub message: Option<String>,
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
    last_sent: Option<Instant>,
    sink: ProgressSink,
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
            },
            started: Instant::now(),
            last_sent: None,
            sink,
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn stamp(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        self.job.elapsed_ms = (secs * 1000.0) as u64;
        self.job.rate_bytes_per_sec = if secs > 0.0 {
            self.job.bytes as f64 / secs
        } else {
            0.0
        };
    }

    /// New phase: bytes restart from zero, and the change is always reported.
    pub fn phase(&mut self, phase: &str) {
        self.job.phase = phase.to_string();
        self.job.bytes = 0;
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
        self.finish(status, Some(e.message.clone()));
    }

    pub fn finish(&mut self, status: JobStatus, message: Option<String>) {
        self.job.status = status;
        self.job.message = message;
        self.force();
    }
}
