//! TypeScript forms of the types that cross IPC, generated from the Rust definitions.
//!
//! `ui/src/lib/bindings.ts` is produced by [`typescript`]; a test fails when the committed file
//! differs, and `UPDATE_BINDINGS=1 cargo test -p pgsteward --lib bindings` rewrites it.

use ts_rs::{Config, TS};

use crate::backup::facts::TableFact;
use crate::backup::{
    BackupSummary, PruneDecision, RestoreReport, RestoreTarget, S3Settings, StorageSettings,
    VerifyReport, VerifyTier,
};
use crate::conn::breaker::CircuitState;
use crate::conn::spec::{ConnectionInput, SslMode};
use crate::conn::PoolMetrics;
use crate::error::{Error, ErrorCode};
use crate::joblog::JobRun;
use crate::jobs::{JobKind, JobLogEntry, JobLogKind, JobProgress, JobStatus};
use crate::maintain::{
    ActionKind, ActionOutcome, ActionRun, AutovacuumAdvice, AutovacuumReport, AutovacuumWorker,
    BloatCaveat, BloatFigure, FigureSource, GuardLimits, IndexEntry, IndexFinding,
    IndexFindingKind, IndexReport, IndexStats, MaintenanceConfig, MaintenanceHistory,
    MaintenancePlan, MaintenanceProgress, MaintenanceRecord, MaintenanceTrends, MaintenanceWindow,
    MissingIndex, MissingIndexSource, PlanRequest, PlannedAction, RunMode, RunReport, RunRequest,
    RunningMaintenance, TableEntry, TableStats, TrendChart, TrendPoint,
};
use crate::monitor::alerts::{
    AlertConfig, AlertRecord, AlertRule, AlertTransition, AlertsReport, Direction, RuleConfig,
};
use crate::monitor::availability::{AvailabilityReport, AvailabilityWindow};
use crate::monitor::otlp::OtlpSettings;
use crate::monitor::{
    ActivityFilter, ActivityReport, BlockingNode, BlockingTree, Buffers, CheckId,
    ConnectionsByState, DashboardSnapshot, ExplainReport, HealthCheck, HealthItem, HealthReport,
    HealthStatus, HintKind, Misestimate, MisestimateLevel, PlanHint, PlanNode, Session, SignalKind,
    SignalOutcome, TriggerTime,
};
use crate::monitor::{
    CollectorFailure, CollectorId, CompactReport, CounterDelta, HistoryChart, HistoryCharts,
    HistoryRange, HistoryRetention, HistorySeries, Metric, MetricValue, QueryCharts, QueryEvent,
    QueryPoint, QuerySeries, QuerySort, Resolution, SampleReport, SamplerState, Series,
    SeriesPoint, TopQueries, TopQuery,
};
use crate::project::{ProjectInput, ProjectSummary};
use crate::schedule::{ScheduleChange, ScheduleRun, ScheduledJob};
use crate::steward::{
    AmcheckReport, BackupChoices, BackupDefaults, ConnectionTest, CopyReport, DueRun, JobSchedule,
    KeyRotation, KitImport, MaintenanceSettings, MaintenanceStatus, OtlpInfo, PruneReport,
    RecoveryReport, RunDueReport, ScheduleReport, StorageInfo,
};
use crate::tune::{
    AppliedSetting, ApplyReport, Confidence, DbSize, Group, HardwareProfile, MemoryBudget,
    MemoryParts, OsKind, ProfileInput, ProfileSource, Recommendation, RecommendationGroup,
    SettingChange, StorageKind, TakesEffect, TuneBasis, TuneReport, Workload,
};

/// Information about the running app, for the UI.
#[derive(Debug, Clone, serde::Serialize, TS)]
pub struct AppInfo {
    pub version: String,
    pub data_dir: String,
    /// Start the sandbox without asking when there is no project.
    pub auto_sandbox: bool,
}

/// The whole bindings file.
pub fn typescript() -> String {
    let cfg = Config::default();
    let decls = [
        ErrorCode::decl(&cfg),
        Error::decl(&cfg),
        SslMode::decl(&cfg),
        ConnectionInput::decl(&cfg),
        ProjectInput::decl(&cfg),
        ProjectSummary::decl(&cfg),
        ConnectionTest::decl(&cfg),
        ConnectionsByState::decl(&cfg),
        DashboardSnapshot::decl(&cfg),
        ActivityFilter::decl(&cfg),
        Session::decl(&cfg),
        ActivityReport::decl(&cfg),
        BlockingNode::decl(&cfg),
        BlockingTree::decl(&cfg),
        SignalKind::decl(&cfg),
        SignalOutcome::decl(&cfg),
        MisestimateLevel::decl(&cfg),
        Misestimate::decl(&cfg),
        Buffers::decl(&cfg),
        HintKind::decl(&cfg),
        PlanHint::decl(&cfg),
        PlanNode::decl(&cfg),
        TriggerTime::decl(&cfg),
        ExplainReport::decl(&cfg),
        HealthStatus::decl(&cfg),
        CheckId::decl(&cfg),
        HealthItem::decl(&cfg),
        HealthCheck::decl(&cfg),
        HealthReport::decl(&cfg),
        BackupSummary::decl(&cfg),
        JobKind::decl(&cfg),
        JobStatus::decl(&cfg),
        JobLogKind::decl(&cfg),
        JobLogEntry::decl(&cfg),
        JobProgress::decl(&cfg),
        JobRun::decl(&cfg),
        BackupChoices::decl(&cfg),
        BackupDefaults::decl(&cfg),
        RestoreTarget::decl(&cfg),
        RestoreReport::decl(&cfg),
        VerifyTier::decl(&cfg),
        VerifyReport::decl(&cfg),
        PruneDecision::decl(&cfg),
        PruneReport::decl(&cfg),
        AlertRule::decl(&cfg),
        Direction::decl(&cfg),
        RuleConfig::decl(&cfg),
        AlertConfig::decl(&cfg),
        AlertRecord::decl(&cfg),
        AlertTransition::decl(&cfg),
        AlertsReport::decl(&cfg),
        AvailabilityWindow::decl(&cfg),
        AvailabilityReport::decl(&cfg),
        TableFact::decl(&cfg),
        AmcheckReport::decl(&cfg),
        RecoveryReport::decl(&cfg),
        KeyRotation::decl(&cfg),
        KitImport::decl(&cfg),
        S3Settings::decl(&cfg),
        StorageSettings::decl(&cfg),
        StorageInfo::decl(&cfg),
        CopyReport::decl(&cfg),
        OtlpSettings::decl(&cfg),
        OtlpInfo::decl(&cfg),
        AppInfo::decl(&cfg),
        MaintenanceWindow::decl(&cfg),
        GuardLimits::decl(&cfg),
        MaintenanceConfig::decl(&cfg),
        TableStats::decl(&cfg),
        IndexStats::decl(&cfg),
        FigureSource::decl(&cfg),
        BloatCaveat::decl(&cfg),
        BloatFigure::decl(&cfg),
        ActionKind::decl(&cfg),
        PlannedAction::decl(&cfg),
        PlanRequest::decl(&cfg),
        TableEntry::decl(&cfg),
        IndexEntry::decl(&cfg),
        MaintenancePlan::decl(&cfg),
        RunMode::decl(&cfg),
        ActionOutcome::decl(&cfg),
        ActionRun::decl(&cfg),
        RunReport::decl(&cfg),
        RunRequest::decl(&cfg),
        RunningMaintenance::decl(&cfg),
        MaintenanceProgress::decl(&cfg),
        MaintenanceRecord::decl(&cfg),
        MaintenanceHistory::decl(&cfg),
        AutovacuumAdvice::decl(&cfg),
        AutovacuumWorker::decl(&cfg),
        AutovacuumReport::decl(&cfg),
        MaintenanceStatus::decl(&cfg),
        MaintenanceSettings::decl(&cfg),
        IndexFindingKind::decl(&cfg),
        IndexFinding::decl(&cfg),
        MissingIndexSource::decl(&cfg),
        MissingIndex::decl(&cfg),
        IndexReport::decl(&cfg),
        TrendPoint::decl(&cfg),
        TrendChart::decl(&cfg),
        MaintenanceTrends::decl(&cfg),
        Workload::decl(&cfg),
        StorageKind::decl(&cfg),
        OsKind::decl(&cfg),
        DbSize::decl(&cfg),
        ProfileSource::decl(&cfg),
        HardwareProfile::decl(&cfg),
        ProfileInput::decl(&cfg),
        Group::decl(&cfg),
        Confidence::decl(&cfg),
        TuneBasis::decl(&cfg),
        TakesEffect::decl(&cfg),
        Recommendation::decl(&cfg),
        RecommendationGroup::decl(&cfg),
        MemoryParts::decl(&cfg),
        MemoryBudget::decl(&cfg),
        TuneReport::decl(&cfg),
        SettingChange::decl(&cfg),
        AppliedSetting::decl(&cfg),
        ApplyReport::decl(&cfg),
        CollectorId::decl(&cfg),
        CollectorFailure::decl(&cfg),
        MetricValue::decl(&cfg),
        CounterDelta::decl(&cfg),
        QueryEvent::decl(&cfg),
        SampleReport::decl(&cfg),
        SamplerState::decl(&cfg),
        HistoryRetention::decl(&cfg),
        CompactReport::decl(&cfg),
        Metric::decl(&cfg),
        HistoryRange::decl(&cfg),
        Resolution::decl(&cfg),
        SeriesPoint::decl(&cfg),
        Series::decl(&cfg),
        HistorySeries::decl(&cfg),
        QuerySort::decl(&cfg),
        TopQuery::decl(&cfg),
        TopQueries::decl(&cfg),
        QueryPoint::decl(&cfg),
        QuerySeries::decl(&cfg),
        HistoryChart::decl(&cfg),
        HistoryCharts::decl(&cfg),
        QueryCharts::decl(&cfg),
        CircuitState::decl(&cfg),
        PoolMetrics::decl(&cfg),
        ScheduledJob::decl(&cfg),
        ScheduleChange::decl(&cfg),
        ScheduleRun::decl(&cfg),
        JobSchedule::decl(&cfg),
        ScheduleReport::decl(&cfg),
        DueRun::decl(&cfg),
        RunDueReport::decl(&cfg),
    ];
    let mut out = String::from("// Generated from the Rust types by `UPDATE_BINDINGS=1 cargo test -p pgsteward --lib bindings`. Do not edit.\n\n");
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bindings_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/lib/bindings.ts");
        let want = super::typescript();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/src/lib/bindings.ts is out of date; run `UPDATE_BINDINGS=1 cargo test -p pgsteward --lib bindings`"
        );
    }
}
