//! Maintenance: statistics-driven VACUUM, ANALYZE, REINDEX and CLUSTER inside a window.
//!
//! The flow is statistics ([`stats`]) → bloat estimates and exact measurements ([`bloat`]) →
//! a plan of actions, each with its evidence, SQL, lock and estimated duration ([`planner`]) →
//! the executor, one statement at a time under timeouts while the impact guard watches the
//! server ([`executor`], [`guard`]) → the project's history ([`history`]). Index health
//! ([`indexes`], with missing-index candidates checked by hypopg in [`hypo`]) and autovacuum advice ([`autovacuum`]) are read-only reports beside it.

pub mod autovacuum;
pub mod bloat;
pub mod executor;
pub mod guard;
pub mod history;
pub mod hypo;
pub mod indexes;
pub mod planner;
pub mod stats;
pub mod trends;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{Error, Result};

pub use autovacuum::{AutovacuumAdvice, AutovacuumReport, AutovacuumWorker};
pub use bloat::{BloatCaveat, BloatFigure, FigureSource};
pub use executor::{
    ActionOutcome, ActionRun, MaintenanceProgress, MaintenanceSink, RunMode, RunReport, RunRequest,
    RunningMaintenance,
};
pub use guard::{GuardLimits, ProjectGuard};
pub use history::{MaintenanceHistory, MaintenanceRecord};
pub use indexes::{IndexFinding, IndexFindingKind, IndexReport, MissingIndex, MissingIndexSource};
pub use planner::{
    ActionKind, IndexEntry, MaintenancePlan, PlanRequest, PlannedAction, TableEntry,
};
pub use stats::{IndexStats, TableStats};
pub use trends::{MaintenanceTrends, TrendChart, TrendPoint};

/// The share of maintenance runs that must succeed.
pub const SUCCESS_TARGET_PERCENT: f64 = 95.0;

/// A daily window of local time; `end` before `start` means it spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct MaintenanceWindow {
    /// "HH:MM"
    #[ts(type = "string")]
    pub start: NaiveTime,
    /// "HH:MM"
    #[ts(type = "string")]
    pub end: NaiveTime,
}

impl MaintenanceWindow {
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        let p = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M:%S"))
                .map_err(|_| {
                    Error::invalid_input(format!(
                        "\"{s}\" is not a time of day; write it as HH:MM, e.g. 02:00."
                    ))
                })
        };
        Ok(MaintenanceWindow {
            start: p(start)?,
            end: p(end)?,
        })
    }

    /// Whether `t` falls inside the window (start included, end excluded). A window whose
    /// start equals its end is empty.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

impl Default for MaintenanceWindow {
    fn default() -> Self {
        MaintenanceWindow {
            start: NaiveTime::from_hms_opt(2, 0, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(6, 0, 0).expect("valid"),
        }
    }
}

/// Settings a project can set for itself (name, and the environment variable that sets it for
/// every project); the guard's limits are in [`guard::SETTINGS`].
pub const PLAN_SETTINGS: [(&str, &str); 6] = [
    ("window_start", "MAINTENANCE_WINDOW_START"),
    ("window_end", "MAINTENANCE_WINDOW_END"),
    ("time_zone", "MAINTENANCE_TIME_ZONE"),
    ("vacuum_threshold_percent", "VACUUM_THRESHOLD_PERCENT"),
    ("analyze_threshold_percent", "ANALYZE_THRESHOLD_PERCENT"),
    ("reindex_threshold_percent", "REINDEX_THRESHOLD_PERCENT"),
];

/// The error for a setting name that is neither a plan setting nor a guard limit.
pub fn unknown_setting(name: &str) -> Error {
    Error::invalid_input(format!(
        "\"{name}\" is not a maintenance setting; known: {}.",
        PLAN_SETTINGS
            .iter()
            .chain(guard::SETTINGS.iter())
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Thresholds, minimum sizes, the window and the guard's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct MaintenanceConfig {
    pub window: MaintenanceWindow,
    /// IANA time zone the window is read in (MAINTENANCE_TIME_ZONE); the computer's local time
    /// when unset.
    pub time_zone: Option<String>,
    /// VACUUM when dead tuples reach this share of all tuples (percent).
    pub vacuum_threshold_percent: f64,
    /// ANALYZE when rows changed since the last analyze reach this share (percent).
    pub analyze_threshold_percent: f64,
    /// REINDEX when measured index bloat reaches this share (percent).
    pub reindex_threshold_percent: f64,
    /// Tables with fewer rows than this are left alone (unless their xid age matters).
    #[ts(type = "number")]
    pub min_rows: i64,
    /// Tables (and indexes) smaller than this are left alone (unless their xid age matters).
    #[ts(type = "number")]
    pub min_bytes: i64,
    /// VACUUM (FREEZE) when age(relfrozenxid) passes this share of autovacuum_freeze_max_age.
    pub freeze_age_fraction: f64,
    /// Tables larger than this are measured with pgstattuple_approx instead of pgstattuple.
    #[ts(type = "number")]
    pub approx_above_bytes: i64,
    /// Index bytes a plan measures with pgstatindex by itself (it reads every page, about two
    /// minutes per GiB); `--measure` lifts the limit.
    #[ts(type = "number")]
    pub measure_budget_bytes: i64,
    /// lock_timeout of maintenance statements, in seconds.
    pub lock_timeout_seconds: f64,
    /// The smallest statement_timeout a maintenance statement gets, in seconds.
    pub min_statement_timeout_seconds: f64,
    pub guard: GuardLimits,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            window: MaintenanceWindow::default(),
            time_zone: None,
            vacuum_threshold_percent: 20.0,
            analyze_threshold_percent: 10.0,
            reindex_threshold_percent: 30.0,
            min_rows: 1000,
            min_bytes: 1024 * 1024,
            freeze_age_fraction: 0.8,
            approx_above_bytes: 1024 * 1024 * 1024,
            measure_budget_bytes: 2 * 1024 * 1024 * 1024,
            lock_timeout_seconds: 10.0,
            min_statement_timeout_seconds: 300.0,
            guard: GuardLimits::default(),
        }
    }
}

impl MaintenanceConfig {
    /// Defaults with MAINTENANCE_WINDOW_START/END, VACUUM_THRESHOLD_PERCENT,
    /// ANALYZE_THRESHOLD_PERCENT, REINDEX_THRESHOLD_PERCENT and the guard's
    /// MAINTENANCE_GUARD_* variables honoured.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Set one of [`PLAN_SETTINGS`] by its name from text, checking it (`key` names it in
    /// errors).
    pub fn set(&mut self, name: &str, key: &str, v: &str) -> Result<()> {
        let t = v.trim();
        let pct = || -> Result<f64> {
            match t.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
                _ => Err(Error::invalid_input(format!(
                    "{key} must be a percentage above 0 and at most 100, not \"{v}\"."
                ))),
            }
        };
        let hhmm = |w: NaiveTime| w.format("%H:%M").to_string();
        match name {
            "window_start" => self.window = MaintenanceWindow::parse(t, &hhmm(self.window.end))?,
            "window_end" => self.window = MaintenanceWindow::parse(&hhmm(self.window.start), t)?,
            "time_zone" => {
                let ok = !t.is_empty()
                    && t.len() <= 64
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
                if !ok {
                    return Err(Error::invalid_input(format!(
                        "{key} must be a time zone name such as Europe/Paris or UTC, not \"{v}\"."
                    )));
                }
                self.time_zone = Some(t.to_string());
            }
            "vacuum_threshold_percent" => self.vacuum_threshold_percent = pct()?,
            "analyze_threshold_percent" => self.analyze_threshold_percent = pct()?,
            "reindex_threshold_percent" => self.reindex_threshold_percent = pct()?,
            _ => return Err(unknown_setting(name)),
        }
        Ok(())
    }

    /// Apply a project's own settings (window, zone, thresholds, guard limits) over these.
    pub fn apply_project(&mut self, p: &ProjectGuard) -> Result<()> {
        for (name, v) in &p.plan {
            self.set(name, &format!("{name} in maintenance.json"), v)?;
        }
        self.guard.apply_project(p)
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = MaintenanceConfig::default();
        let start = var("MAINTENANCE_WINDOW_START");
        let end = var("MAINTENANCE_WINDOW_END");
        if start.is_some() || end.is_some() {
            c.window = MaintenanceWindow::parse(
                start.as_deref().unwrap_or("02:00"),
                end.as_deref().unwrap_or("06:00"),
            )?;
        }
        c.time_zone = var("MAINTENANCE_TIME_ZONE").filter(|z| !z.trim().is_empty());
        let pct = |k: &str, d: f64| -> Result<f64> {
            match var(k) {
                None => Ok(d),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
                    _ => Err(Error::invalid_input(format!(
                        "{k} must be a percentage above 0 and at most 100, not \"{v}\"."
                    ))),
                },
            }
        };
        c.vacuum_threshold_percent = pct("VACUUM_THRESHOLD_PERCENT", c.vacuum_threshold_percent)?;
        c.analyze_threshold_percent =
            pct("ANALYZE_THRESHOLD_PERCENT", c.analyze_threshold_percent)?;
        c.reindex_threshold_percent =
            pct("REINDEX_THRESHOLD_PERCENT", c.reindex_threshold_percent)?;
        c.guard.apply_vars(&var)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn window_contains_its_start_not_its_end() {
        let w = MaintenanceWindow::default();
        assert!(w.contains(t(2, 0)));
        assert!(w.contains(t(5, 59)));
        assert!(!w.contains(t(6, 0)));
        assert!(!w.contains(t(1, 59)));
        assert!(!w.contains(t(14, 0)));
    }

    #[test]
    fn window_across_midnight() {
        let w = MaintenanceWindow::parse("23:30", "01:00").unwrap();
        assert!(w.contains(t(23, 45)));
        assert!(w.contains(t(0, 30)));
        assert!(!w.contains(t(1, 0)));
        assert!(!w.contains(t(12, 0)));
        let empty = MaintenanceWindow::parse("03:00", "03:00").unwrap();
        assert!(!empty.contains(t(3, 0)));
    }

    #[test]
    fn config_from_variables() {
        let c = MaintenanceConfig::from_vars(|k| match k {
            "MAINTENANCE_WINDOW_START" => Some("22:00".into()),
            "VACUUM_THRESHOLD_PERCENT" => Some("15".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.window.start, t(22, 0));
        assert_eq!(c.window.end, t(6, 0));
        assert_eq!(c.vacuum_threshold_percent, 15.0);
        assert_eq!(c.analyze_threshold_percent, 10.0);
        assert!(MaintenanceConfig::from_vars(
            |k| (k == "ANALYZE_THRESHOLD_PERCENT").then(|| "0".into())
        )
        .is_err());
        assert!(MaintenanceWindow::parse("25:00", "06:00").is_err());
    }
}
