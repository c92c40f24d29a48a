//! Monitoring and diagnostics: samples of the server's statistics and the rates computed between
//! them, live sessions and lock waits, the actions a DBA takes on a session, safe EXPLAIN, and
//! health checks.
//!
//! The walking skeleton keeps the recent samples of each project in memory and renders the
//! dashboard from them; the history store (SQLite, roll-ups) arrives with the monitoring issue.

pub mod actions;
pub mod activity;
pub mod dashboard;
pub mod explain;
pub mod health;
pub mod locks;
pub mod plan;
pub mod sqllex;

pub use actions::{SignalKind, SignalOutcome};
pub use activity::{ActivityFilter, ActivityReport, Session};
pub use dashboard::{ConnectionsByState, DashboardSnapshot, RawSample, SampleRing};
pub use explain::{ExplainOptions, ExplainReport};
pub use health::{CheckId, HealthCheck, HealthItem, HealthOptions, HealthReport, HealthStatus};
pub use locks::{BlockingNode, BlockingTree};
pub use plan::{Buffers, HintKind, Misestimate, MisestimateLevel, PlanHint, PlanNode, TriggerTime};
