//! Maintenance flows of a project: build the plan (statistics, bloat estimates, measurements
//! where they decide), run it in approve or automatic mode with the window and the impact
//! guard, and read back status, history and index health. One maintenance run per project at a
//! time (a lock file in the project's folder, shared by the GUI and the CLI).

use std::fs::File;

use chrono::NaiveTime;
use fs2::FileExt;
use serde::Serialize;
use ts_rs::TS;

use super::Steward;
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::CancelToken;
use crate::maintain::executor::MaintenanceSink;
use crate::maintain::{
    autovacuum, bloat, executor, guard, history, hypo, indexes, planner, stats, trends,
    AutovacuumReport, IndexEntry, IndexReport, MaintenanceConfig, MaintenanceHistory,
    MaintenancePlan, MaintenanceRecord, MaintenanceTrends, MaintenanceWindow, PlanRequest, RunMode,
    RunReport, RunRequest, RunningMaintenance, TableEntry,
};
use crate::maintain::{PlannedAction, ProjectGuard};
use crate::monitor::series::HistoryRange;
use crate::sql;

/// Where maintenance stands for a project.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenanceStatus {
    pub project: String,
    pub window: MaintenanceWindow,
    pub time_zone: String,
    pub local_time: String,
    pub inside_window: bool,
    pub pgstattuple_installed: bool,
    /// VACUUM, CREATE INDEX / REINDEX and CLUSTER running on the server now.
    pub running: Vec<RunningMaintenance>,
    pub autovacuum: AutovacuumReport,
    pub last_run: Option<MaintenanceRecord>,
    pub success_rate_percent: Option<f64>,
    pub target_percent: f64,
}

/// A project's own maintenance settings and the configuration in force.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenanceSettings {
    pub project: String,
    /// Set for this project (`maintenance.json`), by name (window, zone, thresholds and guard
    /// limits); they win over the environment.
    pub overrides: std::collections::BTreeMap<String, String>,
    /// Defaults, then the environment, then the overrides.
    pub config: MaintenanceConfig,
}

/// Where a run's actions come from.
enum Selection<'a> {
    /// Plan now and pick by the request.
    Request(&'a RunRequest),
    /// Actions of a plan already shown.
    Given(Vec<PlannedAction>),
}

/// Exclusive hold on a project's maintenance; released on drop.
struct MaintainLock(#[allow(dead_code)] File);

impl Steward {
    fn maintain_lock(&self, name: &str) -> Result<MaintainLock> {
        let dir = self.store.project_dir(name)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the project folder", e))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("maintain.lock"))
            .map_err(|e| Error::io("locking maintenance", e))?;
        f.try_lock_exclusive().map_err(|_| {
            Error::new(
                ErrorCode::Busy,
                format!("A maintenance run of project \"{name}\" is already going on; try again when it ends."),
            )
        })?;
        Ok(MaintainLock(f))
    }

    /// The time of day the window is judged by: (time, zone, inside the window).
    async fn window_now(
        &self,
        conn: &mut crate::conn::PooledConn,
        cfg: &MaintenanceConfig,
    ) -> Result<(String, String, bool)> {
        let (time, zone) = match &cfg.time_zone {
            Some(tz) => (stats::time_in_zone(conn, tz).await?, tz.clone()),
            None => (
                chrono::Local::now().format("%H:%M:%S").to_string(),
                "local time of this computer".to_string(),
            ),
        };
        let t = NaiveTime::parse_from_str(&time, "%H:%M:%S")
            .map_err(|_| Error::internal(format!("unexpected time of day \"{time}\"")))?;
        Ok((time, zone, cfg.window.contains(t)))
    }

    /// `cfg` with the project's own settings (`maintenance.json`) applied over it.
    pub fn maintain_config(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
    ) -> Result<MaintenanceConfig> {
        let mut c = cfg.clone();
        c.apply_project(&ProjectGuard::load(&self.store.project_dir(name)?)?)?;
        Ok(c)
    }

    /// The project's own settings and the configuration in force (defaults, environment,
    /// project).
    pub fn maintain_settings(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
    ) -> Result<MaintenanceSettings> {
        self.store.get(name)?;
        let dir = self.store.project_dir(name)?;
        let p = ProjectGuard::load(&dir)?;
        Ok(MaintenanceSettings {
            project: name.to_string(),
            overrides: p.plan.into_iter().chain(p.guard).collect(),
            config: self.maintain_config(name, cfg)?,
        })
    }

    /// Set (`Some`) or remove (`None`) project settings; every change is checked, and nothing
    /// is saved unless all of them are valid together.
    pub fn set_maintain_settings(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
        changes: &[(String, Option<String>)],
    ) -> Result<MaintenanceSettings> {
        self.store.get(name)?;
        let dir = self.store.project_dir(name)?;
        let mut p = ProjectGuard::load(&dir)?;
        for (k, v) in changes {
            let is_guard = guard::SETTINGS.iter().any(|(n, _)| n == k);
            let is_plan = crate::maintain::PLAN_SETTINGS.iter().any(|(n, _)| n == k);
            let map = match (is_guard, is_plan) {
                (true, _) => &mut p.guard,
                (_, true) => &mut p.plan,
                _ => return Err(crate::maintain::unknown_setting(k)),
            };
            match v {
                Some(v) if !v.trim().is_empty() => {
                    map.insert(k.clone(), v.trim().to_string());
                }
                _ => {
                    map.remove(k);
                }
            }
        }
        // Check the whole set as it would apply (a window's start and end go together).
        cfg.clone().apply_project(&p)?;
        p.save(&dir)?;
        self.maintain_settings(name, cfg)
    }

    /// Build the maintenance plan of a project's database.
    pub async fn maintain_plan(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
        req: &PlanRequest,
    ) -> Result<MaintenancePlan> {
        let cfg = &self.maintain_config(name, cfg)?;
        let pool = self.pool(name)?;
        let mut c = pool.acquire().await?;
        let (freeze_max_age, version) = stats::server_facts(&mut c).await?;
        let block: i64 = sqlx::query_scalar(sql!("SELECT current_setting('block_size')::int8"))
            .fetch_one(&mut *c)
            .await?;
        let table_stats = stats::tables(&mut c).await?;
        let index_stats = stats::indexes(&mut c).await?;
        let pgstattuple = bloat::pgstattuple_installed(&mut c).await?;
        let mut notes = Vec::new();

        let mut tables = Vec::new();
        for s in table_stats {
            let estimate = bloat::estimate_table(&s, block);
            let below = planner::below_minimum(&s, cfg);
            let total = (s.live_tuples + s.dead_tuples) as f64;
            let dead_pct = if total > 0.0 {
                s.dead_tuples as f64 / total * 100.0
            } else {
                0.0
            };
            let measured = if req.measure
                && pgstattuple
                && !below
                && (dead_pct >= cfg.vacuum_threshold_percent
                    || estimate.bloat_percent >= cfg.vacuum_threshold_percent)
            {
                match bloat::measure_table(&mut c, s.oid, s.heap_bytes >= cfg.approx_above_bytes)
                    .await
                {
                    Ok(m) => Some(m),
                    Err(e) => {
                        notes.push(format!(
                            "Could not measure {}.{}: {}",
                            s.schema, s.name, e.message
                        ));
                        None
                    }
                }
            } else {
                None
            };
            tables.push(TableEntry {
                stats: s,
                estimate,
                measured,
                below_minimum: below,
            });
        }
        if req.measure && !pgstattuple {
            notes.push("Exact figures need the pgstattuple extension (CREATE EXTENSION pgstattuple); every figure here is an estimate.".into());
        }

        let mut indexes = Vec::new();
        let (mut measured_bytes, mut unmeasured) = (0i64, 0usize);
        for s in index_stats {
            let estimate = bloat::estimate_index(&s, block, version);
            let mut entry = IndexEntry {
                stats: s,
                estimate,
                measured: None,
            };
            let wanted = pgstattuple && planner::worth_measuring(&entry, cfg, req.measure);
            let within_budget =
                req.measure || measured_bytes + entry.stats.bytes <= cfg.measure_budget_bytes;
            if wanted && !within_budget {
                unmeasured += 1;
            } else if wanted {
                measured_bytes += entry.stats.bytes;
                match bloat::measure_index(&mut c, entry.stats.oid, entry.stats.fillfactor).await {
                    Ok(m) => entry.measured = Some(m),
                    Err(e) => notes.push(format!(
                        "Could not measure index {}.{}: {}",
                        entry.stats.schema, entry.stats.name, e.message
                    )),
                }
            }
            indexes.push(entry);
        }
        if unmeasured > 0 {
            notes.push(format!(
                "{unmeasured} index(es) with a high bloat estimate were not measured, to keep this plan quick (pgstatindex reads every page); plan with --measure to measure them."
            ));
        }
        let (actions, plan_notes) =
            planner::plan_actions(&tables, &indexes, freeze_max_age, pgstattuple, cfg, req)?;
        notes.extend(plan_notes);
        let plan = MaintenancePlan {
            project: name.to_string(),
            generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            config: cfg.clone(),
            actions,
            tables,
            indexes,
            autovacuum_freeze_max_age: freeze_max_age,
            pgstattuple_installed: pgstattuple,
            notes,
        };
        // The trend snapshot is a by-product: a plan is still worth showing without it.
        let snapshot = match self.history_store(name).await {
            Ok(store) => trends::record(&store, &plan, chrono::Utc::now().timestamp_millis()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = snapshot {
            tracing::warn!(
                project = name,
                "table trend snapshot not stored: {}",
                e.message
            );
        }
        Ok(plan)
    }

    /// Dead tuples, size and bloat over `range` for the database, or for one table when
    /// `table` is given as (schema, name), with charts.
    pub async fn maintain_trends(
        &self,
        name: &str,
        range: HistoryRange,
        table: Option<(&str, &str)>,
    ) -> Result<MaintenanceTrends> {
        let store = self.history_store(name).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let (from, to) = range.bounds(now)?;
        let mut points = trends::load(&store, table, from).await?;
        points.retain(|p| p.ts < to);
        let subject = match table {
            Some((schema, t)) => format!("{schema}.{t}"),
            None => "all tables".to_string(),
        };
        Ok(MaintenanceTrends {
            project: name.to_string(),
            schema: table.map(|t| t.0.to_string()),
            table: table.map(|t| t.1.to_string()),
            charts: trends::charts(&points, &subject, from, to),
            points,
        })
    }

    /// Run planned actions: those picked (approve mode) or all of them inside the window
    /// (automatic mode). Every action run is recorded in the project's history.
    pub async fn maintain_run(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
        req: &RunRequest,
        cancel: CancelToken,
        sink: MaintenanceSink,
    ) -> Result<RunReport> {
        if req.mode == RunMode::Approve && !req.all && req.ids.is_empty() {
            return Err(Error::invalid_input(
                "Pick the actions to run by their plan ids, or all of them.",
            ));
        }
        self.run_maintenance(name, cfg, req.mode, Selection::Request(req), cancel, sink)
            .await
    }

    /// Run actions of a plan the DBA has just seen and approved, exactly as shown (the CLI
    /// confirms these statements; re-planning could change them in between).
    pub async fn maintain_run_actions(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
        mode: RunMode,
        actions: Vec<PlannedAction>,
        cancel: CancelToken,
        sink: MaintenanceSink,
    ) -> Result<RunReport> {
        self.run_maintenance(name, cfg, mode, Selection::Given(actions), cancel, sink)
            .await
    }

    async fn run_maintenance(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
        mode: RunMode,
        selection: Selection<'_>,
        cancel: CancelToken,
        sink: MaintenanceSink,
    ) -> Result<RunReport> {
        let _lock = self.maintain_lock(name)?;
        let cfg = &self.maintain_config(name, cfg)?;
        let pool = self.pool(name)?;
        let (local_time, time_zone, inside) = {
            let mut c = pool.acquire().await?;
            self.window_now(&mut c, cfg).await?
        };
        let mut report = RunReport {
            project: name.to_string(),
            run_id: uuid::Uuid::new_v4().to_string(),
            mode,
            local_time,
            time_zone,
            inside_window: inside,
            runs: vec![],
            stopped: None,
        };
        if mode == RunMode::Automatic && !inside {
            report.stopped = Some(format!(
                "Outside the maintenance window ({}-{}, {}; now {}): nothing ran.",
                cfg.window.start.format("%H:%M"),
                cfg.window.end.format("%H:%M"),
                report.time_zone,
                report.local_time
            ));
            return Ok(report);
        }
        let selected = match selection {
            Selection::Given(actions) => actions,
            Selection::Request(req) => {
                let plan = self.maintain_plan(name, cfg, &req.plan).await?;
                planner::select(
                    &plan.actions,
                    mode == RunMode::Automatic || req.all,
                    &req.ids,
                )?
            }
        };
        let store = self.history_store(name).await?;
        for a in &selected {
            if cancel.is_cancelled() {
                report.stopped = Some("Cancelled on request.".into());
                break;
            }
            if mode == RunMode::Automatic {
                let mut c = pool.acquire().await?;
                let (t, _, inside) = self.window_now(&mut c, cfg).await?;
                if !inside {
                    report.stopped = Some(format!("The maintenance window closed at {t}."));
                    break;
                }
            }
            let r = executor::run_action(&pool, a, cfg, &cancel, &sink).await;
            history::record(store.sqlite(), &report.run_id, mode, &r).await?;
            let (guard, cancelled, reason) = (
                r.guard_tripped,
                r.outcome == crate::maintain::ActionOutcome::Cancelled,
                r.reason.clone(),
            );
            report.runs.push(r);
            if guard || cancelled {
                report.stopped = Some(reason.unwrap_or_else(|| "Cancelled.".into()));
                break;
            }
        }
        Ok(report)
    }

    /// Wait until the project's maintenance window opens, reading the time as a run would
    /// (the server's clock in the project's zone, or this computer's). Returns false when
    /// `cancel` trips first. The window is checked every 30 s, the token every second.
    pub async fn maintain_wait_for_window(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
        cancel: &CancelToken,
    ) -> Result<bool> {
        let cfg = &self.maintain_config(name, cfg)?;
        let pool = self.pool(name)?;
        loop {
            let inside = {
                let mut c = pool.acquire().await?;
                self.window_now(&mut c, cfg).await?.2
            };
            if inside {
                return Ok(true);
            }
            for _ in 0..30 {
                if cancel.is_cancelled() {
                    return Ok(false);
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }

    /// Recent maintenance runs and the success rate against the target.
    pub async fn maintain_history(&self, name: &str, limit: u32) -> Result<MaintenanceHistory> {
        let store = self.history_store(name).await?;
        history::load(store.sqlite(), chrono::Utc::now().timestamp_millis(), limit).await
    }

    /// Window, running maintenance, autovacuum workers and advice, last run.
    pub async fn maintain_status(
        &self,
        name: &str,
        cfg: &MaintenanceConfig,
    ) -> Result<MaintenanceStatus> {
        let cfg = &self.maintain_config(name, cfg)?;
        let pool = self.pool(name)?;
        let mut c = pool.acquire().await?;
        let (local_time, time_zone, inside) = self.window_now(&mut c, cfg).await?;
        let running = executor::running(&mut c).await?;
        let tables = stats::tables(&mut c).await?;
        let (workers, max_workers) = autovacuum::workers(&mut c).await?;
        let pgstattuple = bloat::pgstattuple_installed(&mut c).await?;
        let hist = self.maintain_history(name, 1).await?;
        Ok(MaintenanceStatus {
            project: name.to_string(),
            window: cfg.window,
            time_zone,
            local_time,
            inside_window: inside,
            pgstattuple_installed: pgstattuple,
            running,
            autovacuum: AutovacuumReport {
                advice: autovacuum::advise(&tables)?,
                workers,
                max_workers,
            },
            last_run: hist.records.into_iter().next(),
            success_rate_percent: hist.success_rate_percent,
            target_percent: hist.target_percent,
        })
    }

    /// Unused, duplicate, redundant and invalid indexes, and missing-index candidates.
    pub async fn index_report(&self, name: &str) -> Result<IndexReport> {
        let pool = self.pool(name)?;
        let mut c = pool.acquire().await?;
        let idx = stats::indexes(&mut c).await?;
        let tables = stats::tables(&mut c).await?;
        let hypopg = hypo::extension_schema(&mut c, "hypopg").await?;
        // A session of its own: it holds hypothetical indexes and is closed afterwards.
        let found = {
            let mut v = pool.acquire().await?;
            hypo::from_statements(&mut v, &tables, &idx, hypopg.as_deref()).await?
        };
        let mut missing = found.candidates;
        for t in indexes::seq_scanned(&tables, 10 * 1024 * 1024) {
            if missing
                .iter()
                .any(|m| m.schema == t.schema && m.table == t.name)
            {
                continue;
            }
            if let Some(m) = indexes::missing_for(&mut c, t, &idx).await? {
                missing.push(m);
            }
        }
        let stats_reset = indexes::stats_reset(&mut c).await?;
        Ok(IndexReport {
            project: name.to_string(),
            findings: indexes::findings(&idx)?,
            missing,
            indexes: idx,
            stats_reset,
            hypopg_installed: hypopg.is_some(),
            notes: found.notes,
        })
    }
}
