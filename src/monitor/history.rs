//! The history store: one SQLite file per project (inside the project's folder of the data
//! directory) holding samples, rolled-up series, per-query deltas and slow-query events.
//!
//! Schema (all times are UTC milliseconds since the epoch, `ts`):
//! - `samples(ts, server_epoch, interval_s, failures)`: one row per sampling pass, with the
//!   collectors that failed and why (JSON).
//! - `metrics(metric, ts, label, value)`: the narrow table of raw points (rates and gauges);
//!   primary key `(metric, ts, label)`, so "metric X between t1 and t2" is one index range.
//! - `metrics_minute`, `metrics_hour`: the same keyed by bucket start, with `v_avg, v_min,
//!   v_max, n` (n = raw points in the bucket).
//! - `counters(metric, label, value, epoch)`: the last reading of each cumulative counter, so a
//!   rate can be computed by the next sample even from another process (the CLI).
//! - `statements(ts, queryid, interval_s, calls, total_ms, rows, shared_blks_read,
//!   temp_blks_written)`: per-query increases between two samples; `statements_hour` holds their
//!   hourly sums; `statement_counters` the last cumulative reading per query;
//!   `statement_text(queryid, query)` the text.
//! - `events(id, ts, kind, key, ...)`: slow-query events, `key` unique so a query run is
//!   recorded once.
//! - `meta(key, value)`: roll-up watermarks.
//! - `table_trends(ts, schema_name, table_name, ...)`: dead tuples, size and bloat of the
//!   largest tables and of the whole database (empty names) each time a plan reads them.
//! - `maintenance_runs(id, run_id, mode, kind, ...)`: every maintenance action run, with dead
//!   tuples and sizes before and after, duration, outcome and the reason of a failure (written
//!   and read by `crate::maintain::history`).
//! - `schedule_runs(id, job, due_at, ...)`: each scheduled backup, verify or recovery test run
//!   and its outcome (the latest 500; `crate::schedule`).
//! - `job_runs(id, job_id, kind, backup_id, ...)`: each backup, restore, verify and recovery
//!   test with its outcome, error code and log as JSON (the latest 500; `crate::joblog`).
//!
//! Roll-ups are incremental: compaction folds every complete minute of raw points newer than
//! the minute watermark into `metrics_minute` and every complete hour of minutes into
//! `metrics_hour`, then deletes what is past its retention (raw a day, minutes 30 days, hours a
//! year, maintenance runs a year by default; see [`HistoryRetention`]). Raw statement deltas are summed per hour the same
//! way. Points written later with a timestamp before a watermark are not rolled up again.
//!
//! This file holds the types, the schema and opening the store; writing is in `write`,
//! compaction in `rollup`, and reading series, events and samples back in `read`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use ts_rs::TS;

use crate::error::{Error, ErrorCode, Result};

use super::collect::{CollectorFailure, StatementCounters};

mod read;
mod rollup;
mod write;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// How long after a minute ends it is rolled up.
pub const ROLLUP_GRACE_MS: i64 = 2 * MINUTE_MS;

/// How long each resolution of the history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct HistoryRetention {
    /// Raw samples (and raw per-query deltas).
    pub raw_hours: u32,
    /// Per-minute roll-ups.
    pub minute_days: u32,
    /// Per-hour roll-ups (and hourly per-query sums).
    pub hour_days: u32,
    /// Slow-query events.
    pub event_days: u32,
    /// Maintenance action runs (`maintenance_runs`); MAINTENANCE_HISTORY_DAYS.
    pub maintenance_days: u32,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention {
            raw_hours: 24,
            minute_days: 30,
            hour_days: 365,
            event_days: 30,
            maintenance_days: 365,
        }
    }
}

impl HistoryRetention {
    pub fn raw_ms(&self) -> i64 {
        self.raw_hours as i64 * HOUR_MS
    }
    pub fn minute_ms(&self) -> i64 {
        self.minute_days as i64 * DAY_MS
    }
    pub fn hour_ms(&self) -> i64 {
        self.hour_days as i64 * DAY_MS
    }
    pub fn event_ms(&self) -> i64 {
        self.event_days as i64 * DAY_MS
    }
    pub fn maintenance_ms(&self) -> i64 {
        self.maintenance_days as i64 * DAY_MS
    }

    /// Defaults with MAINTENANCE_HISTORY_DAYS honoured.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut r = HistoryRetention::default();
        if let Some(v) = var("MAINTENANCE_HISTORY_DAYS").filter(|v| !v.trim().is_empty()) {
            r.maintenance_days = match v.trim().parse::<u32>() {
                Ok(d) if d >= 1 => d,
                _ => {
                    return Err(Error::invalid_input(format!(
                        "MAINTENANCE_HISTORY_DAYS must be a whole number of days (1 or more), not \"{v}\"."
                    )))
                }
            };
        }
        Ok(r)
    }
}

/// Resolution of a stored series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

/// One raw point to store.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub metric: String,
    pub label: String,
    pub value: f64,
}

/// A cumulative counter's last reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterState {
    pub value: f64,
    pub epoch: f64,
}

/// Increase of one query's counters between two samples.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StatementDelta {
    pub queryid: String,
    pub interval_s: f64,
    pub calls: f64,
    pub total_ms: f64,
    pub rows: f64,
    pub shared_blks_read: f64,
    pub temp_blks_written: f64,
}

/// Something the sampler noticed that deserves a line in the history.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct QueryEvent {
    #[ts(type = "number")]
    pub ts: i64,
    /// `slow_statement` (mean over an interval above the threshold, from pg_stat_statements)
    /// or `long_running` (an active session running longer than the threshold).
    pub kind: String,
    pub queryid: Option<String>,
    pub pid: Option<i32>,
    pub database: Option<String>,
    pub user: Option<String>,
    /// Mean time per call over the interval (slow_statement) or time running so far
    /// (long_running), in milliseconds.
    pub duration_ms: f64,
    pub calls: Option<f64>,
    pub threshold_ms: f64,
    pub query: String,
    /// When the query run started (long_running), UTC ms; with the pid it names the run.
    #[ts(type = "number | null")]
    pub started_at: Option<i64>,
}

impl QueryEvent {
    /// What makes two events the same event (a long-running query seen by several samples).
    pub fn key(&self) -> String {
        match self.kind.as_str() {
            "long_running" => format!(
                "long_running:{}:{}",
                self.pid.unwrap_or_default(),
                self.started_at.unwrap_or_default()
            ),
            _ => format!(
                "{}:{}:{}",
                self.kind,
                self.queryid.as_deref().unwrap_or(""),
                self.ts
            ),
        }
    }
}

/// Everything one sample writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct SampleWrite {
    pub ts: i64,
    pub server_epoch: f64,
    pub interval_s: Option<f64>,
    pub failures: Vec<CollectorFailure>,
    pub metrics: Vec<MetricRow>,
    /// New last readings of counters (only those read by collectors that succeeded).
    pub counters: Vec<(String, String, CounterState)>,
    /// When set, replaces the per-query last readings.
    pub statement_counters: Option<(f64, Vec<StatementCounters>)>,
    pub statements: Vec<StatementDelta>,
    pub events: Vec<QueryEvent>,
}

/// One bucket of a series read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub ts: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub n: i64,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct CompactReport {
    pub project: String,
    #[ts(type = "number")]
    pub minute_rows_written: u64,
    #[ts(type = "number")]
    pub hour_rows_written: u64,
    #[ts(type = "number")]
    pub raw_rows_deleted: u64,
    #[ts(type = "number")]
    pub minute_rows_deleted: u64,
    #[ts(type = "number")]
    pub hour_rows_deleted: u64,
    #[ts(type = "number")]
    pub statement_rows_deleted: u64,
    #[ts(type = "number")]
    pub events_deleted: u64,
    /// Maintenance action runs older than their retention.
    #[ts(type = "number")]
    pub maintenance_runs_deleted: u64,
}

/// A project's history store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HistoryStore {
    pool: SqlitePool,
    path: PathBuf,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS samples (
        ts INTEGER PRIMARY KEY, server_epoch REAL NOT NULL, interval_s REAL,
        failures TEXT NOT NULL DEFAULT '[]')",
    "CREATE TABLE IF NOT EXISTS metrics (
        metric TEXT NOT NULL, ts INTEGER NOT NULL, label TEXT NOT NULL DEFAULT '', value REAL NOT NULL,
        PRIMARY KEY (metric, ts, label)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS metrics_minute (
        metric TEXT NOT NULL, ts INTEGER NOT NULL, label TEXT NOT NULL DEFAULT '',
        v_avg REAL NOT NULL, v_min REAL NOT NULL, v_max REAL NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (metric, ts, label)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS metrics_hour (
        metric TEXT NOT NULL, ts INTEGER NOT NULL, label TEXT NOT NULL DEFAULT '',
        v_avg REAL NOT NULL, v_min REAL NOT NULL, v_max REAL NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (metric, ts, label)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS metrics_ts ON metrics (ts)",
    "CREATE TABLE IF NOT EXISTS counters (
        metric TEXT NOT NULL, label TEXT NOT NULL, value REAL NOT NULL, epoch REAL NOT NULL,
        PRIMARY KEY (metric, label)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS statements (
        ts INTEGER NOT NULL, queryid TEXT NOT NULL, interval_s REAL NOT NULL, calls REAL NOT NULL,
        total_ms REAL NOT NULL, rows REAL NOT NULL, shared_blks_read REAL NOT NULL,
        temp_blks_written REAL NOT NULL, PRIMARY KEY (ts, queryid)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS statements_query ON statements (queryid, ts)",
    "CREATE TABLE IF NOT EXISTS statements_hour (
        ts INTEGER NOT NULL, queryid TEXT NOT NULL, interval_s REAL NOT NULL, calls REAL NOT NULL,
        total_ms REAL NOT NULL, rows REAL NOT NULL, shared_blks_read REAL NOT NULL,
        temp_blks_written REAL NOT NULL, PRIMARY KEY (ts, queryid)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS statements_hour_query ON statements_hour (queryid, ts)",
    "CREATE TABLE IF NOT EXISTS statement_counters (
        queryid TEXT PRIMARY KEY, calls REAL NOT NULL, total_ms REAL NOT NULL, rows REAL NOT NULL,
        shared_blks_read REAL NOT NULL, temp_blks_written REAL NOT NULL, epoch REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS statement_text (
        queryid TEXT PRIMARY KEY, query TEXT NOT NULL, last_seen INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
        queryid TEXT, pid INTEGER, database TEXT, usr TEXT, duration_ms REAL NOT NULL, calls REAL,
        threshold_ms REAL NOT NULL, query TEXT NOT NULL, started_at INTEGER)",
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alerts (
        id INTEGER PRIMARY KEY, rule TEXT NOT NULL, started_at INTEGER NOT NULL,
        ended_at INTEGER, value REAL NOT NULL, worst REAL NOT NULL, threshold REAL NOT NULL,
        message TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (started_at)",
    "CREATE TABLE IF NOT EXISTS maintenance_runs (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, mode TEXT NOT NULL, kind TEXT NOT NULL,
        schema_name TEXT NOT NULL, table_name TEXT NOT NULL, index_name TEXT, sql TEXT NOT NULL,
        outcome TEXT NOT NULL, reason TEXT, guard_tripped INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, dead_before INTEGER,
        dead_after INTEGER, size_before INTEGER, size_after INTEGER)",
    "CREATE INDEX IF NOT EXISTS maintenance_runs_by_time ON maintenance_runs (started_at)",
    "CREATE TABLE IF NOT EXISTS table_trends (
        ts INTEGER NOT NULL, schema_name TEXT NOT NULL, table_name TEXT NOT NULL,
        live_tuples INTEGER NOT NULL, dead_tuples INTEGER NOT NULL, total_bytes INTEGER NOT NULL,
        bloat_bytes INTEGER NOT NULL, measured INTEGER NOT NULL, tables INTEGER NOT NULL,
        PRIMARY KEY (schema_name, table_name, ts))",
    "CREATE INDEX IF NOT EXISTS table_trends_by_time ON table_trends (ts)",
    "CREATE TABLE IF NOT EXISTS schedule_runs (
        id INTEGER PRIMARY KEY, job TEXT NOT NULL, due_at INTEGER NOT NULL,
        started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL,
        message TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_runs (
        id INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, backup_id TEXT,
        started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL,
        code TEXT, message TEXT NOT NULL, log TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS job_runs_by_backup ON job_runs (backup_id)",
    "PRAGMA user_version = 1",
];

fn db_err(context: &str, e: sqlx::Error) -> Error {
    Error::new(ErrorCode::Io, format!("history store, {context}: {e}"))
}

/// File name of the store inside a project's folder.
pub const FILE_NAME: &str = "history.sqlite";

/// Delete the store of the project whose folder is `dir` (with SQLite's WAL and shared-memory
/// files). Missing files are fine.
pub fn delete_files(dir: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{FILE_NAME}{suffix}")));
    }
}

impl HistoryStore {
    /// Open (creating if needed) the store of a project whose folder is `dir`.
    pub async fn open_in(dir: &Path) -> Result<HistoryStore> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the project folder", e))?;
        Self::open(&dir.join(FILE_NAME)).await
    }

    pub async fn open(path: &Path) -> Result<HistoryStore> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| db_err("options", e))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| db_err(&format!("opening {}", path.display()), e))?;
        for stmt in SCHEMA {
            sqlx::query(stmt)
                .execute(&pool)
                .await
                .map_err(|e| db_err("creating the schema", e))?;
        }
        Ok(HistoryStore {
            pool,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// SQLite's journal mode of the file (expected: "wal").
    pub async fn journal_mode(&self) -> Result<String> {
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_err("reading the journal mode", e))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Last readings of the cumulative counters.
    pub async fn counters(&self) -> Result<HashMap<(String, String), CounterState>> {
        let rows = sqlx::query("SELECT metric, label, value, epoch FROM counters")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("reading counters", e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    (r.get("metric"), r.get("label")),
                    CounterState {
                        value: r.get("value"),
                        epoch: r.get("epoch"),
                    },
                )
            })
            .collect())
    }

    /// Last cumulative readings per query: queryid -> (counters, epoch).
    pub async fn statement_counters(&self) -> Result<HashMap<String, (StatementCounters, f64)>> {
        let rows = sqlx::query(
            "SELECT queryid, calls, total_ms, rows, shared_blks_read, temp_blks_written, epoch
               FROM statement_counters",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("reading statement counters", e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let q: String = r.get("queryid");
                (
                    q.clone(),
                    (
                        StatementCounters {
                            queryid: q,
                            query: String::new(),
                            calls: r.get("calls"),
                            total_ms: r.get("total_ms"),
                            rows: r.get("rows"),
                            shared_blks_read: r.get("shared_blks_read"),
                            temp_blks_written: r.get("temp_blks_written"),
                        },
                        r.get::<f64, _>("epoch"),
                    ),
                )
            })
            .collect())
    }

    pub(crate) fn sqlite(&self) -> &SqlitePool {
        &self.pool
    }

    async fn meta(&self, key: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err("reading watermarks", e))
    }

    /// When database sizes were last read from the server (they are repeated in between).
    pub async fn sizes_read_at(&self) -> Result<Option<i64>> {
        self.meta("sizes_read_at").await
    }

    pub async fn set_sizes_read_at(&self, ts: i64) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        set_meta(&mut tx, "sizes_read_at", ts).await?;
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    /// Minute watermark: every complete minute before it is in `metrics_minute`.
    pub async fn minute_watermark(&self) -> Result<i64> {
        Ok(self.meta("minute_wm").await?.unwrap_or(i64::MIN))
    }

    /// Hour watermark: every complete hour before it is in `metrics_hour`.
    pub async fn hour_watermark(&self) -> Result<i64> {
        Ok(self.meta("hour_wm").await?.unwrap_or(i64::MIN))
    }

    /// Raw statement deltas are complete from this time on; before it, use `statements_hour`.
    pub async fn statements_raw_from(&self) -> Result<i64> {
        Ok(self.meta("stmt_raw_from").await?.unwrap_or(i64::MIN))
    }
}

async fn set_meta(tx: &mut sqlx::Transaction<'_, Sqlite>, key: &str, value: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await
    .map_err(|e| db_err("writing watermarks", e))?;
    Ok(())
}
