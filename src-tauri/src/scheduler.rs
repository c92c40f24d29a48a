//! The app's background scheduler and its desktop notifications: every 30 s it runs the
//! scheduled jobs that are due (the same `run-due` as the CLI, under the same per-project
//! lock), and tells the user when a scheduled or background job ends. The tray icon keeps the
//! app (and so the schedules) running while its window is closed.

use std::sync::Arc;
use std::time::Duration;

use pgsteward::Steward;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;

/// Seconds between checks for due jobs.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Event the window hears after each scheduled run (to refresh the Schedules panel).
pub const SCHEDULE_EVENT: &str = "schedule-run";

/// A desktop notification; without a notification service it fails quietly.
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!(error = %e, "desktop notification not shown");
    }
}

/// Tell the user how a job started from the window ended, when the window is not in front
/// (they may have turned to something else while it ran).
pub fn job_ended<T>(app: &AppHandle, project: &str, what: &str, r: &pgsteward::Result<T>) {
    let in_front = app
        .get_webview_window("main")
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false);
    if in_front {
        return;
    }
    match r {
        Ok(_) => notify(app, &format!("pgsteward: {project} — {what} finished"), ""),
        Err(e) if e.code == pgsteward::ErrorCode::Cancelled => {}
        Err(e) => notify(
            app,
            &format!("pgsteward: {project} — {what} failed"),
            &e.message,
        ),
    }
}

/// Run due jobs now and every 30 s after (the first pass catches up a run missed while the
/// app was closed).
pub fn spawn(app: AppHandle, steward: Arc<Steward>) {
    tauri::async_runtime::spawn(async move {
        loop {
            match steward.schedule_run_due(&[]).await {
                Ok(report) => {
                    for r in &report.runs {
                        let verb = match r.outcome.as_str() {
                            "succeeded" => "finished",
                            "failed" => "failed",
                            _ => "skipped",
                        };
                        notify(
                            &app,
                            &format!(
                                "pgsteward: {} — scheduled {} {verb}",
                                r.project,
                                r.job.label()
                            ),
                            &r.message,
                        );
                        let _ = app.emit(SCHEDULE_EVENT, r);
                    }
                    for p in &report.problems {
                        tracing::warn!(problem = %p, "schedule not run");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduler pass failed"),
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    });
}

/// Present when the tray icon was made.
pub struct HasTray;

/// The tray icon: Show brings the window back, Quit ends the app.
pub fn tray(app: &tauri::App) -> tauri::Result<()> {
    let show = MenuItem::with_id(app, "show", "Show", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut b = TrayIconBuilder::with_id("main")
        .tooltip("pgsteward")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.show();
                    let _ = w.unminimize();
                    let _ = w.set_focus();
                }
                if let Some(s) = app.try_state::<crate::state::AppState>() {
                    let _ = s.set_hidden(false);
                }
            }
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        b = b.icon(icon.clone());
    }
    b.build(app)?;
    Ok(())
}
