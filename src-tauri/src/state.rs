//! What the shell keeps between commands: the core, and the sandbox's background activity.

use std::sync::{Arc, Mutex};

use pgsteward::{sandbox, Steward};

pub struct AppState {
    pub steward: Arc<Steward>,
    activity: Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
}

impl AppState {
    pub fn new(steward: Arc<Steward>) -> Self {
        AppState {
            steward,
            activity: Mutex::new(None),
        }
    }

    /// Keep the sandbox busy while the app runs, so its charts move.
    pub fn ensure_sandbox_activity(&self) {
        let mut slot = self.activity.lock().unwrap();
        if slot.is_some() {
            return;
        }
        if let Ok(pool) = self.steward.pool(sandbox::PROJECT) {
            *slot = Some(tauri::async_runtime::spawn(async move {
                let _ = sandbox::spawn_activity(pool).await;
            }));
        }
    }

    /// If a sandbox project exists from an earlier run, start its server again in the background.
    pub fn resume_sandbox(&self) {
        let is_sandbox = self
            .steward
            .store()
            .get(sandbox::PROJECT)
            .map(|p| p.sandbox)
            .unwrap_or(false);
        if !is_sandbox {
            return;
        }
        let st = self.steward.clone();
        tauri::async_runtime::spawn(async move {
            if let Err(e) = sandbox::start(&st).await {
                tracing::warn!(error = %e, "could not restart the sandbox");
            }
        });
        self.ensure_sandbox_activity();
    }
}
