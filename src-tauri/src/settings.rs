//! GUI-only preferences, kept with tauri-plugin-store in the app's data folder. Projects are not
//! here: they belong to the core (shared with the CLI).

use serde_json::json;
use tauri::AppHandle;
use tauri_plugin_store::StoreExt;

const FILE: &str = "settings.json";

/// Remember the project the user looked at last.
pub fn remember_project(app: &AppHandle, name: &str) {
    if let Ok(store) = app.store(FILE) {
        if store
            .get("last_project")
            .and_then(|v| v.as_str().map(str::to_string))
            .as_deref()
            != Some(name)
        {
            store.set("last_project", json!(name));
            let _ = store.save();
        }
    }
}

/// Whether to start the sandbox without asking when no project exists: on for first runs and
/// when `PGSTEWARD_SANDBOX=1`; `PGSTEWARD_SANDBOX=0` turns it off.
pub fn auto_sandbox(app: &AppHandle) -> bool {
    match std::env::var("PGSTEWARD_SANDBOX").ok().as_deref() {
        Some("1") | Some("true") => return true,
        Some("0") | Some("false") => return false,
        _ => {}
    }
    app.store(FILE)
        .ok()
        .and_then(|s| s.get("auto_sandbox"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}
