//! Backup storage commands: where a project's backups go (its local folder, a folder the user
//! chose, or S3) and the copy target. A secret access key comes in once, goes straight to the
//! keyring, and never comes back: the webview only learns that one is stored.

use pgsteward::backup::{S3Settings, StorageSettings};
use pgsteward::steward::StorageInfo;
use tauri::State;
use zeroize::Zeroizing;

use super::CmdResult;
use crate::state::AppState;

#[tauri::command]
pub fn storage_info(state: State<'_, AppState>, name: String) -> CmdResult<StorageInfo> {
    state.steward.storage_info(&name)
}

/// Choose where backups go. `secret` (S3 only; `None` keeps the stored one) goes to the
/// keyring. With `check` the S3 service must accept the credentials first; nothing changes
/// when it does not.
#[tauri::command]
pub async fn storage_set(
    state: State<'_, AppState>,
    name: String,
    settings: StorageSettings,
    secret: Option<String>,
    check: bool,
) -> CmdResult<StorageInfo> {
    let steward = state.steward.clone();
    let secret = secret.map(Zeroizing::new);
    // Checking S3 credentials makes network requests: keep them off the async workers.
    tauri::async_runtime::spawn_blocking(move || {
        steward.set_storage(
            &name,
            settings,
            secret.as_deref().map(|s| s.as_str()),
            check,
        )
    })
    .await
    .map_err(|e| pgsteward::Error::internal(format!("storage task: {e}")))?
}

/// Set (or with `None`, remove) the S3 copy target of `backup copy`.
#[tauri::command]
pub async fn copy_target_set(
    state: State<'_, AppState>,
    name: String,
    target: Option<S3Settings>,
    secret: Option<String>,
    check: bool,
) -> CmdResult<StorageInfo> {
    let steward = state.steward.clone();
    let secret = secret.map(Zeroizing::new);
    tauri::async_runtime::spawn_blocking(move || {
        steward.set_copy_target(&name, target, secret.as_deref().map(|s| s.as_str()), check)
    })
    .await
    .map_err(|e| pgsteward::Error::internal(format!("storage task: {e}")))?
}
