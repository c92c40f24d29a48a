//! Backup schedule commands: show a project's schedules and set them.

use pgsteward::schedule::ScheduleChange;
use pgsteward::steward::ScheduleReport;
use tauri::State;

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub async fn schedule_show(state: State<'_, AppState>, name: String) -> CmdResult<ScheduleReport> {
    state.steward.schedule_show(&name).await
}

/// Set the given jobs (all or none: an invalid expression changes nothing).
#[tauri::command]
pub async fn schedule_set(
    state: State<'_, AppState>,
    name: String,
    changes: Vec<ScheduleChange>,
) -> CmdResult<ScheduleReport> {
    let changes: Vec<_> = changes.into_iter().map(|c| (c.job, c.cron)).collect();
    state.steward.schedule_set(&name, &changes).await
}
