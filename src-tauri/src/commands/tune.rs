//! Tuning commands: the saved hardware profile, recommendations, and applying or rolling back
//! chosen settings. The webview confirms an apply or a rollback before calling these.

use pgsteward::tune::{ApplyReport, HardwareProfile, ProfileInput, SettingChange, TuneReport};
use tauri::State;

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub fn tune_profile(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<Option<HardwareProfile>> {
    state.steward.tune_profile(&name)
}

#[tauri::command]
pub async fn tune_profile_save(
    state: State<'_, AppState>,
    name: String,
    input: ProfileInput,
) -> CmdResult<HardwareProfile> {
    state.steward.tune_profile_save(&name, &input).await
}

#[tauri::command]
pub async fn tune_recommend(
    state: State<'_, AppState>,
    name: String,
    input: ProfileInput,
) -> CmdResult<TuneReport> {
    state.steward.tune_recommend(&name, &input).await
}

#[tauri::command]
pub async fn tune_apply(
    state: State<'_, AppState>,
    name: String,
    changes: Vec<SettingChange>,
) -> CmdResult<ApplyReport> {
    state.steward.tune_apply(&name, &changes).await
}

#[tauri::command]
pub async fn tune_rollback(state: State<'_, AppState>, name: String) -> CmdResult<ApplyReport> {
    state.steward.tune_rollback(&name).await
}
