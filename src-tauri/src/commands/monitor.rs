//! Diagnostics commands: live activity, the blocking tree, cancel/terminate, safe EXPLAIN,
//! health checks. The webview confirms destructive actions before calling these.

use pgsteward::monitor::{
    ActivityFilter, ActivityReport, BlockingTree, ExplainReport, HealthReport, SignalOutcome,
};
use tauri::State;

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub async fn activity_list(
    state: State<'_, AppState>,
    name: String,
    filter: ActivityFilter,
) -> CmdResult<ActivityReport> {
    state.steward.activity(&name, &filter).await
}

#[tauri::command]
pub async fn blocking_tree(state: State<'_, AppState>, name: String) -> CmdResult<BlockingTree> {
    state.steward.blocking_tree(&name).await
}

#[tauri::command]
pub async fn backend_cancel(
    state: State<'_, AppState>,
    name: String,
    pid: i32,
) -> CmdResult<SignalOutcome> {
    state.steward.cancel_backend(&name, pid).await
}

#[tauri::command]
pub async fn backend_terminate(
    state: State<'_, AppState>,
    name: String,
    pid: i32,
) -> CmdResult<SignalOutcome> {
    state.steward.terminate_backend(&name, pid).await
}

#[tauri::command]
pub async fn explain_run(
    state: State<'_, AppState>,
    name: String,
    sql: String,
    analyze: bool,
) -> CmdResult<ExplainReport> {
    state.steward.explain(&name, &sql, analyze).await
}

#[tauri::command]
pub async fn health_check(state: State<'_, AppState>, name: String) -> CmdResult<HealthReport> {
    state.steward.health(&name).await
}
