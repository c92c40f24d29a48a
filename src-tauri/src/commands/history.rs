//! Monitoring history: the background sampler of each opened project, the dashboard's charts
//! over a time range, top queries and slow-query events, and the app's own pool metrics.

use pgsteward::conn::PoolMetrics;
use pgsteward::monitor::{
    HistoryCharts, HistoryRange, QueryCharts, QueryEvent, QuerySort, SamplerState, TopQueries,
};
use tauri::State;

use super::CmdResult;
use crate::state::AppState;

/// Start sampling the project into its history while the app runs (once per project).
#[tauri::command]
pub async fn history_sampler_start(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<SamplerState> {
    state.ensure_sampler(&name)
}

/// The window was hidden or shown: samplers slow down or speed up.
#[tauri::command]
pub async fn history_visibility(state: State<'_, AppState>, hidden: bool) -> CmdResult<()> {
    state.set_hidden(hidden)
}

#[tauri::command]
pub async fn history_charts(
    state: State<'_, AppState>,
    name: String,
    range: HistoryRange,
) -> CmdResult<HistoryCharts> {
    state.steward.history_charts(&name, range).await
}

#[tauri::command]
pub async fn history_top_queries(
    state: State<'_, AppState>,
    name: String,
    range: HistoryRange,
    sort: QuerySort,
) -> CmdResult<TopQueries> {
    state.steward.top_queries(&name, range, sort, 50).await
}

#[tauri::command]
pub async fn history_query_charts(
    state: State<'_, AppState>,
    name: String,
    queryid: String,
    range: HistoryRange,
) -> CmdResult<QueryCharts> {
    state.steward.query_charts(&name, &queryid, range).await
}

#[tauri::command]
pub async fn history_slow_events(
    state: State<'_, AppState>,
    name: String,
    range: HistoryRange,
) -> CmdResult<Vec<QueryEvent>> {
    state.steward.slow_query_events(&name, range).await
}

#[tauri::command]
pub fn pool_metrics(state: State<'_, AppState>, name: String) -> CmdResult<PoolMetrics> {
    state.steward.pool_metrics(&name)
}

/// Alert rules, firing alerts and the last 7 days of alerts.
#[tauri::command]
pub async fn alerts_report(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<pgsteward::monitor::alerts::AlertsReport> {
    state.steward.alerts(&name).await
}

/// Change one alert rule: threshold and/or on/off.
#[tauri::command]
pub async fn alerts_configure(
    state: State<'_, AppState>,
    name: String,
    rule: pgsteward::monitor::alerts::AlertRule,
    threshold: Option<f64>,
    enabled: Option<bool>,
) -> CmdResult<pgsteward::monitor::alerts::AlertConfig> {
    state
        .steward
        .alerts_configure(&name, rule, threshold, enabled)
}

/// Where the project's metrics are exported over OTLP, and how the exports went.
#[tauri::command]
pub async fn otlp_info(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<pgsteward::steward::OtlpInfo> {
    state.steward.otlp_info(&name)
}

/// Set (or with `null`, remove) the OTLP endpoint; a header set from the CLI is kept.
#[tauri::command]
pub async fn otlp_configure(
    state: State<'_, AppState>,
    name: String,
    endpoint: Option<String>,
) -> CmdResult<pgsteward::steward::OtlpInfo> {
    state.steward.set_otlp_endpoint(&name, endpoint)
}

/// Availability over 24 h, 7 d and 30 d from the background probes.
#[tauri::command]
pub async fn availability_report(
    state: State<'_, AppState>,
    name: String,
) -> CmdResult<pgsteward::monitor::availability::AvailabilityReport> {
    state.steward.availability(&name).await
}
