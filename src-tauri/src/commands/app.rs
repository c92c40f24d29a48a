//! App-level commands: information for the UI and the sandbox.

use pgsteward::bindings::AppInfo;
use pgsteward::project::ProjectSummary;
use tauri::{AppHandle, State};

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub fn app_info(app: AppHandle, state: State<'_, AppState>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        data_dir: state.steward.store().root().display().to_string(),
        auto_sandbox: crate::settings::auto_sandbox(&app),
    }
}

#[tauri::command]
pub async fn sandbox_start(state: State<'_, AppState>) -> CmdResult<ProjectSummary> {
    let summary = pgsteward::sandbox::start(&state.steward).await?;
    state.ensure_sandbox_activity();
    Ok(summary)
}
