//! Stopping a running job from the webview (a backup, a restore, a maintenance run).

use tauri::State;

use super::CmdResult;
use crate::jobs::{CancellableJob, RunningJobs};

/// Ask the project's running job of `kind` to stop; false when none runs. The job itself
/// reports how it ended (its command returns a `cancelled` error or a report that says so).
#[tauri::command]
pub fn job_cancel(
    jobs: State<'_, RunningJobs>,
    name: String,
    kind: CancellableJob,
) -> CmdResult<bool> {
    Ok(jobs.cancel(&name, kind))
}
