//! Long-running jobs the webview can stop: each backup, restore or maintenance run registers a
//! cancel token under its project and kind while it runs, and `job_cancel` trips it. The core
//! checks the token between steps (and cancels the server statement that is running).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pgsteward::jobs::CancelToken;

/// What a job does; one of each may run per project at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellableJob {
    Backup,
    Restore,
    Maintenance,
}

#[derive(Default, Clone)]
pub struct RunningJobs(Arc<Mutex<HashMap<(String, CancellableJob), CancelToken>>>);

/// Removes the job from the registry when the command returns, however it ends.
pub struct Registered {
    jobs: RunningJobs,
    key: (String, CancellableJob),
    pub token: CancelToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.jobs.0.lock().expect("jobs lock").remove(&self.key);
    }
}

impl RunningJobs {
    /// Register a job; a second one of the same kind for the same project is refused (the
    /// core's own locks would refuse it too, with less to say).
    pub fn start(&self, project: &str, kind: CancellableJob) -> pgsteward::Result<Registered> {
        let key = (project.to_string(), kind);
        let mut map = self.0.lock().expect("jobs lock");
        if map.contains_key(&key) {
            return Err(pgsteward::Error::invalid_input(format!(
                "A {} of project \"{project}\" is already running; wait for it or cancel it.",
                kind.label()
            )));
        }
        let token = CancelToken::default();
        map.insert(key.clone(), token.clone());
        Ok(Registered {
            jobs: self.clone(),
            key,
            token,
        })
    }

    /// Trip the job's token; false when no such job runs.
    pub fn cancel(&self, project: &str, kind: CancellableJob) -> bool {
        match self
            .0
            .lock()
            .expect("jobs lock")
            .get(&(project.to_string(), kind))
        {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}

impl CancellableJob {
    fn label(self) -> &'static str {
        match self {
            CancellableJob::Backup => "backup",
            CancellableJob::Restore => "restore",
            CancellableJob::Maintenance => "maintenance run",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_cancellable_while_registered_and_gone_after() {
        let jobs = RunningJobs::default();
        let r = jobs.start("p", CancellableJob::Backup).unwrap();
        assert!(jobs.start("p", CancellableJob::Backup).is_err());
        assert!(jobs.start("q", CancellableJob::Backup).is_ok());
        assert!(!r.token.is_cancelled());
        assert!(jobs.cancel("p", CancellableJob::Backup));
        assert!(r.token.is_cancelled());
        drop(r);
        assert!(!jobs.cancel("p", CancellableJob::Backup));
        assert!(jobs.start("p", CancellableJob::Backup).is_ok());
    }
}
