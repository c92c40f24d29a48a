//! pgsteward desktop app: a thin shell. It wires the core's [`pgsteward::Steward`] to IPC
//! commands and events and holds no domain logic of its own.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod alerts;
mod commands;
mod jobs;
mod scheduler;
mod settings;
mod state;

use tauri::{Manager, WindowEvent};

/// WebKitGTK composites pages through OpenGL. Where there is no GPU (a VM, a remote desktop, a
/// virtual display) that OpenGL runs on the CPU: on the live dashboard it was two thirds of the
/// web process's CPU. pgsteward's pages change a few numbers and images every few seconds, which
/// the non-composited path paints cheaply, so it is the default. Setting
/// `WEBKIT_DISABLE_COMPOSITING_MODE` yourself (to `0` as well) leaves WebKit's choice alone.
#[cfg(target_os = "linux")]
fn prefer_cpu_painting() {
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        // Called first thing in main, before any other thread exists.
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    prefer_cpu_painting();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGSTEWARD_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .setup(|app| {
            let steward = pgsteward::Steward::open_default()?;
            let state = state::AppState::new(steward);
            state.set_on_sample(alerts::notifier(app.handle().clone()));
            state.resume_sandbox();
            scheduler::spawn(app.handle().clone(), state.steward.clone());
            // Without a tray (no status notifier on this desktop) closing the window quits.
            if let Err(e) = scheduler::tray(app) {
                tracing::warn!(error = %e, "no tray icon");
            } else {
                app.manage(scheduler::HasTray);
            }
            app.manage(state);
            app.manage(commands::maintain::ShownPlans::default());
            app.manage(jobs::RunningJobs::default());
            Ok(())
        })
        .on_window_event(|window, event| {
            // With a schedule on, closing the window hides it to the tray so jobs keep running.
            if let WindowEvent::CloseRequested { api, .. } = event {
                let app = window.app_handle();
                let keep = app.try_state::<scheduler::HasTray>().is_some()
                    && app
                        .try_state::<state::AppState>()
                        .is_some_and(|s| s.steward.schedules_enabled());
                if keep {
                    api.prevent_close();
                    let _ = window.hide();
                    if let Some(s) = app.try_state::<state::AppState>() {
                        let _ = s.set_hidden(true);
                    }
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::app::app_info,
            commands::project::project_list,
            commands::project::project_create,
            commands::project::project_update,
            commands::project::project_remove,
            commands::project::project_test,
            commands::project::project_test_input,
            commands::dashboard::dashboard_sample,
            commands::backup::backup_list,
            commands::backup::backup_create,
            commands::backup::backup_restore,
            commands::backup::backup_verify,
            commands::backup::backup_test_recovery,
            commands::backup::key_export_kit,
            commands::backup::key_kit_exported,
            commands::backup::backup_defaults,
            commands::backup::job_runs,
            commands::backup::job_run,
            commands::storage::storage_info,
            commands::storage::storage_set,
            commands::storage::copy_target_set,
            commands::app::sandbox_start,
            commands::monitor::activity_list,
            commands::monitor::blocking_tree,
            commands::monitor::backend_cancel,
            commands::monitor::backend_terminate,
            commands::monitor::explain_run,
            commands::monitor::health_check,
            commands::tune::tune_profile,
            commands::tune::tune_profile_save,
            commands::tune::tune_recommend,
            commands::tune::tune_apply,
            commands::tune::tune_rollback,
            commands::history::history_sampler_start,
            commands::history::history_visibility,
            commands::history::history_charts,
            commands::history::history_top_queries,
            commands::history::history_query_charts,
            commands::history::history_slow_events,
            commands::history::pool_metrics,
            commands::history::alerts_report,
            commands::history::alerts_configure,
            commands::history::availability_report,
            commands::history::otlp_info,
            commands::history::otlp_configure,
            commands::maintain::maintain_plan,
            commands::maintain::maintain_run,
            commands::maintain::maintain_history,
            commands::maintain::maintain_status,
            commands::maintain::index_report,
            commands::maintain::maintain_trends,
            commands::maintain::maintain_settings,
            commands::maintain::maintain_settings_set,
            commands::jobs::job_cancel,
            commands::schedule::schedule_show,
            commands::schedule::schedule_set,
        ])
        .run(tauri::generate_context!())
        .expect("error while running pgsteward");
}
