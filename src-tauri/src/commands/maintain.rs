//! Maintenance commands: the plan, running the actions the DBA approved, history, status and
//! the index report. Progress goes to the webview as `maintenance-progress` events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pgsteward::maintain::{
    IndexReport, MaintenanceConfig, MaintenanceHistory, MaintenancePlan, MaintenanceProgress,
    MaintenanceSink, MaintenanceTrends, PlanRequest, RunMode, RunReport,
};
use pgsteward::monitor::series::HistoryRange;
use pgsteward::steward::{MaintenanceSettings, MaintenanceStatus};
use tauri::{AppHandle, Emitter, State};

use super::CmdResult;
use crate::jobs::{CancellableJob, RunningJobs};
use crate::state::AppState;

/// The plan last shown for each project: a run takes its actions from there, exactly as the
/// DBA saw and confirmed them (planning again could change them in between).
#[derive(Default)]
pub struct ShownPlans(Mutex<HashMap<String, MaintenancePlan>>);

fn events(app: &AppHandle) -> MaintenanceSink {
    let app = app.clone();
    Arc::new(move |p: &MaintenanceProgress| {
        let _ = app.emit("maintenance-progress", p);
    })
}

#[tauri::command]
pub async fn maintain_plan(
    state: State<'_, AppState>,
    shown: State<'_, ShownPlans>,
    name: String,
    measure: bool,
) -> CmdResult<MaintenancePlan> {
    let cfg = MaintenanceConfig::from_env()?;
    let req = PlanRequest {
        measure,
        ..PlanRequest::default()
    };
    let plan = state.steward.maintain_plan(&name, &cfg, &req).await?;
    shown
        .0
        .lock()
        .expect("plans lock")
        .insert(name, plan.clone());
    Ok(plan)
}

/// Run the actions `ids` of the plan last shown; `sql` is what the DBA confirmed, one statement
/// per id, and must still match. `in_window` waits for the project's maintenance window and
/// runs them there as an automatic run would (stopping when the window closes). `job_cancel`
/// with kind `maintenance` stops the wait or the run.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn maintain_run(
    app: AppHandle,
    state: State<'_, AppState>,
    shown: State<'_, ShownPlans>,
    jobs: State<'_, RunningJobs>,
    name: String,
    ids: Vec<u64>,
    sql: Vec<String>,
    in_window: bool,
) -> CmdResult<RunReport> {
    if ids.is_empty() || ids.len() != sql.len() {
        return Err(pgsteward::Error::invalid_input(
            "Pick the actions to run, each with the statement you confirmed.",
        ));
    }
    let actions = {
        let plans = shown.0.lock().expect("plans lock");
        let plan = plans.get(&name).ok_or_else(|| {
            pgsteward::Error::invalid_input("Build the maintenance plan before running it.")
        })?;
        let mut picked = Vec::with_capacity(ids.len());
        for (id, confirmed) in ids.iter().zip(&sql) {
            match plan.actions.iter().find(|a| a.id == *id) {
                Some(a) if &a.sql == confirmed => picked.push(a.clone()),
                _ => {
                    return Err(pgsteward::Error::new(
                        pgsteward::ErrorCode::PlanChanged,
                        format!("Action {id} is not in the plan shown any more; plan again."),
                    ))
                }
            }
        }
        picked
    };
    let cfg = MaintenanceConfig::from_env()?;
    let job = jobs.start(&name, CancellableJob::Maintenance)?;
    let mode = if in_window {
        let opened = state
            .steward
            .maintain_wait_for_window(&name, &cfg, &job.token)
            .await?;
        if !opened {
            return Err(pgsteward::Error::new(
                pgsteward::ErrorCode::Cancelled,
                "Cancelled while waiting for the maintenance window; nothing ran.",
            ));
        }
        RunMode::Automatic
    } else {
        RunMode::Approve
    };
    let r = state
        .steward
        .maintain_run_actions(&name, &cfg, mode, actions, job.token.clone(), events(&app))
        .await;
    crate::scheduler::job_ended(&app, &name, "maintenance run", &r);
    r
}

#[tauri::command]
pub async fn maintain_history(
    state: State<'_, AppState>,
    name: String,
    limit: u32,
) -> CmdResult<MaintenanceHistory> {
    state.steward.maintain_history(&name, limit).await
}

#[tauri::command]
pub async fn maintain_status(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<MaintenanceStatus> {
    let cfg = MaintenanceConfig::from_env()?;
    state.steward.maintain_status(&name, &cfg).await
}

#[tauri::command]
pub async fn index_report(state: State<'_, AppState>, name: String) -> CmdResult<IndexReport> {
    state.steward.index_report(&name).await
}

/// Dead tuples, size and bloat over a range, for the database or one table (schema and table
/// both given).
#[tauri::command]
pub async fn maintain_trends(
    state: State<'_, AppState>,
    name: String,
    range: HistoryRange,
    schema: Option<String>,
    table: Option<String>,
) -> CmdResult<MaintenanceTrends> {
    let one = schema.as_deref().zip(table.as_deref());
    state.steward.maintain_trends(&name, range, one).await
}

/// The project's own maintenance settings and the configuration in force.
#[tauri::command]
pub fn maintain_settings(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<MaintenanceSettings> {
    let cfg = MaintenanceConfig::from_env()?;
    state.steward.maintain_settings(&name, &cfg)
}

/// Change the project's own settings: a value sets one, null (or empty) drops it so the
/// environment's or the default applies. Nothing is saved unless every change is valid.
#[tauri::command]
pub fn maintain_settings_set(
    state: State<'_, AppState>,
    name: String,
    changes: std::collections::BTreeMap<String, Option<String>>,
) -> CmdResult<MaintenanceSettings> {
    let cfg = MaintenanceConfig::from_env()?;
    let changes: Vec<(String, Option<String>)> = changes.into_iter().collect();
    state.steward.set_maintain_settings(&name, &cfg, &changes)
}
