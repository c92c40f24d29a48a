//! Monitoring and diagnostics: samples of the server's statistics and the rates computed between
//! them, live sessions and lock waits, the actions a DBA takes on a session, safe EXPLAIN, and
//! health checks.
//!
//! The dashboard keeps the recent samples of each project in memory for its live view. The
//! history is kept per project in a SQLite store: collectors (one per family of statistics
//! views, each failing alone) feed the sampler, which turns counters into rates and writes them
//! with per-query deltas and slow-query events; roll-ups per minute and per hour keep a year in
//! little space; series and top-query reports read it back for any time range. Each pass
//! starts with an availability probe and ends with the alert rules (with hysteresis); the
//! exporter serves the latest values in Prometheus' text format, and the OTLP exporter pushes
//! the same set to an OpenTelemetry collector.

pub mod actions;
pub mod activity;
pub mod alerts;
pub mod availability;
pub mod collect;
pub mod dashboard;
pub mod explain;
pub mod exporter;
pub mod health;
pub mod history;
pub mod locks;
pub mod otlp;
pub mod plan;
pub mod queries;
pub mod rates;
pub mod sampler;
pub mod series;
pub mod sqllex;

pub use actions::{SignalKind, SignalOutcome};
pub use activity::{ActivityFilter, ActivityReport, Session};
pub use collect::{CollectOptions, CollectorFailure, CollectorId};
pub use dashboard::{ConnectionsByState, DashboardSnapshot, RawSample, SampleRing};
pub use explain::{ExplainOptions, ExplainReport};
pub use health::{CheckId, HealthCheck, HealthItem, HealthOptions, HealthReport, HealthStatus};
pub use history::{CompactReport, HistoryRetention, HistoryStore, QueryEvent, Resolution};
pub use locks::{BlockingNode, BlockingTree};
pub use plan::{Buffers, HintKind, Misestimate, MisestimateLevel, PlanHint, PlanNode, TriggerTime};
pub use queries::{QueryCharts, QueryPoint, QuerySeries, QuerySort, TopQueries, TopQuery};
pub use sampler::{
    CounterDelta, HistoryOptions, MetricValue, SampleReport, SamplerHandle, SamplerState,
};
pub use series::{
    HistoryChart, HistoryCharts, HistoryRange, HistorySeries, Metric, Series, SeriesPoint,
};
