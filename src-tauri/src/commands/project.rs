//! Project commands. Passwords come in from the form and go straight to the keyring; nothing
//! sent back to the webview contains one.

use pgsteward::project::{ProjectInput, ProjectSummary};
use pgsteward::steward::ConnectionTest;
use tauri::State;

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub fn project_list(state: State<'_, AppState>) -> CmdResult<Vec<ProjectSummary>> {
    state.steward.list()
}

#[tauri::command]
pub fn project_create(
    state: State<'_, AppState>,
    input: ProjectInput,
) -> CmdResult<ProjectSummary> {
    state.steward.create(&input)
}

/// A renamed project's sampler stops; the UI starts one under the new name when it opens it.
#[tauri::command]
pub async fn project_update(
    state: State<'_, AppState>,
    name: String,
    input: ProjectInput,
) -> CmdResult<ProjectSummary> {
    if input.name != name {
        state.stop_sampler(&name).await;
    }
    state.steward.update(&name, &input)
}

/// Its history sampler stops first, so no sample is written while the project goes.
#[tauri::command]
pub async fn project_remove(
    state: State<'_, AppState>,
    name: String,
    delete_backups: bool,
) -> CmdResult<()> {
    state.stop_sampler(&name).await;
    state.steward.remove(&name, delete_backups)
}

#[tauri::command]
pub async fn project_test(state: State<'_, AppState>, name: String) -> CmdResult<ConnectionTest> {
    state.steward.test(&name).await
}

#[tauri::command]
pub async fn project_test_input(
    state: State<'_, AppState>,
    input: ProjectInput,
) -> CmdResult<ConnectionTest> {
    state.steward.test_input(&input).await
}
