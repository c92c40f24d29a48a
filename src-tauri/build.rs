//! Declares the app's IPC commands so capabilities can grant exactly these and nothing else.

fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "app_info",
            "project_list",
            "project_create",
            "project_update",
            "project_remove",
            "project_test",
            "project_test_input",
            "dashboard_sample",
            "backup_list",
            "backup_create",
            "backup_restore",
            "backup_verify",
            "backup_test_recovery",
            "sandbox_start",
            "activity_list",
            "blocking_tree",
            "backend_cancel",
            "backend_terminate",
            "explain_run",
            "health_check",
            "tune_profile",
            "tune_profile_save",
            "tune_recommend",
            "tune_apply",
            "tune_rollback",
            "history_sampler_start",
            "history_visibility",
            "history_charts",
            "history_top_queries",
            "history_query_charts",
            "history_slow_events",
            "pool_metrics",
            "alerts_report",
            "alerts_configure",
            "availability_report",
        ]),
    ))
    .expect("tauri build script");
}
