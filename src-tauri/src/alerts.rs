//! Telling the user about alerts: each transition of an alert rule (fired, resolved) found by a
//! background sample becomes a desktop notification and an `alert` event for the open window.

use std::sync::Arc;

use pgsteward::monitor::sampler::OnSample;
use pgsteward::monitor::SampleReport;
use tauri::{AppHandle, Emitter};
use tauri_plugin_notification::NotificationExt;

/// Name of the event the window hears for each alert transition.
pub const ALERT_EVENT: &str = "alert";

pub fn notifier(app: AppHandle) -> OnSample {
    Arc::new(move |r: &pgsteward::Result<SampleReport>| {
        let Ok(report) = r else { return };
        for t in &report.alerts {
            let title = if t.firing {
                format!("pgsteward: {} — {}", report.project, t.rule.as_str())
            } else {
                format!("pgsteward: {} — resolved", report.project)
            };
            // Without a notification service (e.g. a headless session) this fails quietly;
            // the alert history keeps the record either way.
            if let Err(e) = app
                .notification()
                .builder()
                .title(&title)
                .body(&t.message)
                .show()
            {
                tracing::debug!(error = %e, "desktop notification not shown");
            }
            let _ = app.emit(
                ALERT_EVENT,
                serde_json::json!({ "project": report.project, "transition": t }),
            );
        }
    })
}
