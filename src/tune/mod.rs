//! Tuning: hardware-based and evidence-based configuration recommendations, applied with
//! `ALTER SYSTEM` and rolled back from a per-project history.
//!
//! [`profile`] says what the machine is, [`pgtune`] computes PGTune's baseline from it,
//! [`bounds`] keeps every value inside what this server version accepts, [`advisor`] reads the
//! server's statistics for evidence, [`recommend`] merges both into grouped recommendations with
//! a memory budget ([`chart`]), and [`apply`] changes the server and restores it.

pub mod advisor;
pub mod apply;
pub mod bounds;
pub mod chart;
pub mod pgtune;
pub mod profile;
pub mod recommend;
pub mod server_detect;

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{Error, Result};

pub use advisor::Confidence;
pub use apply::{AppliedSetting, ApplyReport, SettingChange};
pub use pgtune::TuneValue;
pub use profile::{
    DbSize, HardwareProfile, OsKind, ProfileInput, ProfileSource, StorageKind, Workload,
};
pub use recommend::{
    MemoryBudget, MemoryParts, Recommendation, RecommendationGroup, TakesEffect, TuneBasis,
    TuneReport,
};

/// The groups recommendations are shown in, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Memory,
    Connections,
    /// WAL and checkpoints.
    Wal,
    Planner,
    Parallelism,
    Autovacuum,
    Logging,
}

impl Group {
    pub const ALL: [Group; 7] = [
        Group::Memory,
        Group::Connections,
        Group::Wal,
        Group::Planner,
        Group::Parallelism,
        Group::Autovacuum,
        Group::Logging,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Memory => "Memory",
            Group::Connections => "Connections",
            Group::Wal => "WAL and checkpoints",
            Group::Planner => "Planner",
            Group::Parallelism => "Parallelism",
            Group::Autovacuum => "Autovacuum",
            Group::Logging => "Logging",
        }
    }

    /// The group a setting belongs to.
    pub fn of(setting: &str) -> Group {
        match setting {
            "shared_buffers"
            | "effective_cache_size"
            | "maintenance_work_mem"
            | "work_mem"
            | "huge_pages" => Group::Memory,
            "max_connections" | "idle_in_transaction_session_timeout" | "statement_timeout" => {
                Group::Connections
            }
            "checkpoint_completion_target" | "wal_buffers" | "min_wal_size" | "max_wal_size" => {
                Group::Wal
            }
            "default_statistics_target" | "random_page_cost" | "effective_io_concurrency" => {
                Group::Planner
            }
            s if s.contains("parallel") || s == "max_worker_processes" => Group::Parallelism,
            s if s.starts_with("autovacuum") => Group::Autovacuum,
            _ => Group::Logging,
        }
    }
}

/// The project's slow query threshold (`SLOW_QUERY_THRESHOLD_MS`, default 1000 ms).
pub fn slow_query_threshold_ms() -> i64 {
    std::env::var("SLOW_QUERY_THRESHOLD_MS")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(1000)
}

/// Write JSON next to its final place, then rename it over (no torn files).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, what: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(what, e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(what, e))?;
    f.write_all(&serde_json::to_vec_pretty(value).expect("serializable"))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(what, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_baseline_setting_has_a_group() {
        assert_eq!(Group::of("shared_buffers"), Group::Memory);
        assert_eq!(Group::of("max_wal_size"), Group::Wal);
        assert_eq!(Group::of("max_parallel_workers"), Group::Parallelism);
        assert_eq!(Group::of("max_worker_processes"), Group::Parallelism);
        assert_eq!(Group::of("autovacuum_max_workers"), Group::Autovacuum);
        assert_eq!(Group::of("random_page_cost"), Group::Planner);
        assert_eq!(Group::of("log_lock_waits"), Group::Logging);
        assert_eq!(Group::of("statement_timeout"), Group::Connections);
    }
}
