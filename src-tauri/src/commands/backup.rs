//! Backup commands; progress goes to the webview as `job-progress` events.

use std::sync::Arc;

use pgsteward::backup::{BackupSummary, RestoreReport, RestoreTarget, VerifyReport, VerifyTier};
use pgsteward::joblog::JobRun;
use pgsteward::jobs::{JobProgress, ProgressSink};
use pgsteward::steward::{BackupChoices, BackupDefaults};
use tauri::{AppHandle, Emitter, State};

use super::CmdResult;
use crate::jobs::{CancellableJob, RunningJobs};
use crate::scheduler::job_ended;
use crate::state::AppState;

fn events(app: &AppHandle) -> ProgressSink {
    let app = app.clone();
    Arc::new(move |p: &JobProgress| {
        let _ = app.emit("job-progress", p);
    })
}

#[tauri::command]
pub fn backup_list(state: State<'_, AppState>, name: String) -> CmdResult<Vec<BackupSummary>> {
    state.steward.backup_list(&name)
}

/// Take a backup now with the form's choices (`None` fields: the environment's defaults).
#[tauri::command]
pub async fn backup_create(
    app: AppHandle,
    state: State<'_, AppState>,
    jobs: State<'_, RunningJobs>,
    name: String,
    choices: Option<BackupChoices>,
) -> CmdResult<BackupSummary> {
    let job = jobs.start(&name, CancellableJob::Backup)?;
    let r = state
        .steward
        .backup_create_chosen(
            &name,
            &choices.unwrap_or_default(),
            events(&app),
            job.token.clone(),
        )
        .await;
    job_ended(&app, &name, "backup", &r);
    r
}

#[tauri::command]
pub async fn backup_restore(
    app: AppHandle,
    state: State<'_, AppState>,
    jobs: State<'_, RunningJobs>,
    name: String,
    backup_id: String,
    target: RestoreTarget,
) -> CmdResult<RestoreReport> {
    let job = jobs.start(&name, CancellableJob::Restore)?;
    let r = state
        .steward
        .backup_restore(&name, &backup_id, &target, events(&app), job.token.clone())
        .await;
    job_ended(&app, &name, "restore", &r);
    r
}

/// What the "Back up now" form starts from: the environment's jobs, compression and globals.
#[tauri::command]
pub fn backup_defaults(state: State<'_, AppState>) -> CmdResult<BackupDefaults> {
    state.steward.backup_defaults()
}

/// The project's latest backup, restore, verify and recovery-test runs (without their logs).
#[tauri::command]
pub async fn job_runs(state: State<'_, AppState>, name: String) -> CmdResult<Vec<JobRun>> {
    state.steward.job_runs(&name, 50).await
}

/// One finished job with its log, by job id or by the id of the backup it made.
#[tauri::command]
pub async fn job_run(state: State<'_, AppState>, name: String, id: String) -> CmdResult<JobRun> {
    state.steward.job_run(&name, &id).await
}

/// Verify one backup (sampled reads 10 % of its segments).
#[tauri::command]
pub async fn backup_verify(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
    backup_id: String,
    tier: VerifyTier,
) -> CmdResult<Vec<VerifyReport>> {
    let r = state
        .steward
        .backup_verify(&name, Some(&backup_id), tier, 0.1, events(&app))
        .await;
    job_ended(&app, &name, "verify", &r);
    r
}

/// Restore a backup into a throwaway server, compare its tables, run amcheck, time it.
#[tauri::command]
pub async fn backup_test_recovery(
    app: AppHandle,
    state: State<'_, AppState>,
    name: String,
    backup_id: String,
) -> CmdResult<pgsteward::steward::RecoveryReport> {
    let r = state
        .steward
        .backup_test_recovery(&name, Some(&backup_id), events(&app))
        .await;
    job_ended(&app, &name, "recovery test", &r);
    r
}

/// The project's backup key sealed under `passphrase` (Argon2id + AES-GCM), as the kit file's
/// text for the user to keep elsewhere. The text holds no secret in the clear.
#[tauri::command]
pub async fn key_export_kit(
    state: State<'_, AppState>,
    name: String,
    passphrase: String,
) -> CmdResult<String> {
    let steward = state.steward.clone();
    let passphrase = zeroize::Zeroizing::new(passphrase);
    // Argon2id takes a moment: keep it off the async workers.
    tauri::async_runtime::spawn_blocking(move || {
        let kit = steward.key_export_kit(&name, &passphrase)?;
        Ok(serde_json::to_string_pretty(&kit).expect("serializable"))
    })
    .await
    .map_err(|e| pgsteward::Error::internal(format!("kit task: {e}")))?
}

/// Whether a recovery kit exists for the project's current backup key.
#[tauri::command]
pub fn key_kit_exported(state: State<'_, AppState>, name: String) -> CmdResult<bool> {
    state.steward.key_kit_exported(&name)
}
