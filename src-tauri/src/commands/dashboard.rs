//! The dashboard samples only when the page asks, which it does only while visible.

use pgsteward::monitor::DashboardSnapshot;
use tauri::{AppHandle, State};

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub async fn dashboard_sample(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<DashboardSnapshot> {
    let snapshot = state.steward.dashboard_sample(&name).await?;
    crate::settings::remember_project(&app, &name);
    Ok(snapshot)
}
