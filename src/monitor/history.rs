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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use ts_rs::TS;

use crate::error::{Error, ErrorCode, Result};

use super::collect::{CollectorFailure, StatementCounters};

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

    /// Write one sample atomically.
    pub async fn write_sample(&self, w: &SampleWrite) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("starting a write", e))?;
        let failures = serde_json::to_string(&w.failures).expect("serializable");
        sqlx::query(
            "INSERT OR REPLACE INTO samples (ts, server_epoch, interval_s, failures) VALUES (?, ?, ?, ?)",
        )
        .bind(w.ts)
        .bind(w.server_epoch)
        .bind(w.interval_s)
        .bind(failures)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("writing the sample", e))?;
        for chunk in w.metrics.chunks(200) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR REPLACE INTO metrics (metric, ts, label, value) ");
            q.push_values(chunk, |mut b, m| {
                b.push_bind(&m.metric)
                    .push_bind(w.ts)
                    .push_bind(&m.label)
                    .push_bind(m.value);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing metrics", e))?;
        }
        for chunk in w.counters.chunks(200) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR REPLACE INTO counters (metric, label, value, epoch) ");
            q.push_values(chunk, |mut b, (m, l, s)| {
                b.push_bind(m)
                    .push_bind(l)
                    .push_bind(s.value)
                    .push_bind(s.epoch);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing counters", e))?;
        }
        if let Some((epoch, list)) = &w.statement_counters {
            sqlx::query("DELETE FROM statement_counters")
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("replacing statement counters", e))?;
            for chunk in list.chunks(100) {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT OR REPLACE INTO statement_counters (queryid, calls, total_ms, rows, shared_blks_read, temp_blks_written, epoch) ",
                );
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(&s.queryid)
                        .push_bind(s.calls)
                        .push_bind(s.total_ms)
                        .push_bind(s.rows)
                        .push_bind(s.shared_blks_read)
                        .push_bind(s.temp_blks_written)
                        .push_bind(*epoch);
                });
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_err("writing statement counters", e))?;
            }
            // Texts only of the queries that ran in this interval (or were never seen).
            let changed: std::collections::HashSet<&str> =
                w.statements.iter().map(|d| d.queryid.as_str()).collect();
            for s in list.iter().filter(|s| changed.contains(s.queryid.as_str())) {
                sqlx::query(
                    "INSERT INTO statement_text (queryid, query, last_seen) VALUES (?, ?, ?)
                     ON CONFLICT (queryid) DO UPDATE SET query = excluded.query, last_seen = excluded.last_seen",
                )
                .bind(&s.queryid)
                .bind(&s.query)
                .bind(w.ts)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing statement text", e))?;
            }
        }
        for chunk in w.statements.chunks(100) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO statements (ts, queryid, interval_s, calls, total_ms, rows, shared_blks_read, temp_blks_written) ",
            );
            q.push_values(chunk, |mut b, d| {
                b.push_bind(w.ts)
                    .push_bind(&d.queryid)
                    .push_bind(d.interval_s)
                    .push_bind(d.calls)
                    .push_bind(d.total_ms)
                    .push_bind(d.rows)
                    .push_bind(d.shared_blks_read)
                    .push_bind(d.temp_blks_written);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing statement deltas", e))?;
        }
        for e in &w.events {
            insert_event(&mut tx, e).await?;
        }
        tx.commit()
            .await
            .map_err(|e| db_err("committing the sample", e))
    }

    /// Store raw points at `ts` (no counters, no statements): the plain way to put history in,
    /// used by imports and tests.
    pub async fn insert_points(&self, ts: i64, rows: &[MetricRow]) -> Result<()> {
        self.write_sample(&SampleWrite {
            ts,
            server_epoch: ts as f64 / 1000.0,
            metrics: rows.to_vec(),
            ..Default::default()
        })
        .await
    }

    /// Store metric points at `ts` without making them a sample (the availability probe).
    pub async fn write_points(&self, ts: i64, rows: &[MetricRow]) -> Result<()> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR REPLACE INTO metrics (metric, ts, label, value) ");
        q.push_values(rows, |mut b, m| {
            b.push_bind(&m.metric)
                .push_bind(ts)
                .push_bind(&m.label)
                .push_bind(m.value);
        });
        q.build()
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("writing metrics", e))?;
        Ok(())
    }

    /// Open an alert; returns its id.
    pub async fn alert_open(&self, a: &super::alerts::AlertRecord) -> Result<i64> {
        let r = sqlx::query(
            "INSERT INTO alerts (rule, started_at, ended_at, value, worst, threshold, message) VALUES (?, ?, NULL, ?, ?, ?, ?)",
        )
        .bind(&a.rule)
        .bind(a.started_at)
        .bind(a.value)
        .bind(a.worst)
        .bind(a.threshold)
        .bind(&a.message)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("recording an alert", e))?;
        Ok(r.last_insert_rowid())
    }

    /// Close an open alert.
    pub async fn alert_close(&self, id: i64, ended_at: i64, worst: f64) -> Result<()> {
        sqlx::query("UPDATE alerts SET ended_at = ?, worst = ? WHERE id = ?")
            .bind(ended_at)
            .bind(worst)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("recording an alert", e))?;
        Ok(())
    }

    /// Alerts that started in `[from, to)` or are still open, newest first.
    pub async fn alerts(&self, from: i64, to: i64) -> Result<Vec<super::alerts::AlertRecord>> {
        let rows = sqlx::query(
            "SELECT id, rule, started_at, ended_at, value, worst, threshold, message FROM alerts
             WHERE (started_at >= ? AND started_at < ?) OR ended_at IS NULL
             ORDER BY started_at DESC, id DESC LIMIT 500",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("reading alerts", e))?;
        Ok(rows
            .iter()
            .map(|r| super::alerts::AlertRecord {
                id: r.get("id"),
                rule: r.get("rule"),
                started_at: r.get("started_at"),
                ended_at: r.get("ended_at"),
                value: r.get("value"),
                worst: r.get("worst"),
                threshold: r.get("threshold"),
                message: r.get("message"),
            })
            .collect())
    }

    /// Store per-query deltas at `ts`, with their texts.
    pub async fn insert_statements(
        &self,
        ts: i64,
        deltas: &[StatementDelta],
        texts: &[(String, String)],
    ) -> Result<()> {
        self.write_sample(&SampleWrite {
            ts,
            server_epoch: ts as f64 / 1000.0,
            statements: deltas.to_vec(),
            ..Default::default()
        })
        .await?;
        for (id, q) in texts {
            sqlx::query(
                "INSERT INTO statement_text (queryid, query, last_seen) VALUES (?, ?, ?)
                 ON CONFLICT (queryid) DO UPDATE SET query = excluded.query",
            )
            .bind(id)
            .bind(q)
            .bind(ts)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("writing statement text", e))?;
        }
        Ok(())
    }

    pub async fn insert_event(&self, e: &QueryEvent) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("starting a write", e))?;
        insert_event(&mut tx, e).await?;
        tx.commit().await.map_err(|e| db_err("committing", e))
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

    /// Roll up complete minutes and hours, then drop what is past retention. `now` is in ms.
    pub async fn compact(&self, retention: &HistoryRetention, now: i64) -> Result<CompactReport> {
        let mut rep = CompactReport::default();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("starting compaction", e))?;
        let get = |k: &'static str| {
            sqlx::query_scalar::<_, i64>("SELECT value FROM meta WHERE key = ?").bind(k)
        };
        let minute_wm: Option<i64> = get("minute_wm")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        let hour_wm: Option<i64> = get("hour_wm")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        let stmt_wm: Option<i64> = get("stmt_hour_wm")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        // Minutes are rolled up a little after they end, so a sample written late (a slow
        // collection, another process) still lands before its minute is folded.
        let minute_end = (now - ROLLUP_GRACE_MS).div_euclid(MINUTE_MS) * MINUTE_MS;
        let hour_end = minute_end.div_euclid(HOUR_MS) * HOUR_MS;
        let from = minute_wm.unwrap_or(i64::MIN);
        if minute_end > from {
            let r = sqlx::query(
                "INSERT INTO metrics_minute (metric, ts, label, v_avg, v_min, v_max, n)
                 SELECT metric, (ts / 60000) * 60000 AS b, label, avg(value), min(value), max(value), count(*)
                   FROM metrics WHERE ts >= ? AND ts < ?
                  GROUP BY metric, b, label
                 ON CONFLICT (metric, ts, label) DO UPDATE SET
                   v_avg = (v_avg * n + excluded.v_avg * excluded.n) / (n + excluded.n),
                   v_min = min(v_min, excluded.v_min),
                   v_max = max(v_max, excluded.v_max),
                   n = n + excluded.n",
            )
            .bind(from)
            .bind(minute_end)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("rolling up minutes", e))?;
            rep.minute_rows_written = r.rows_affected();
            set_meta(&mut tx, "minute_wm", minute_end).await?;
        }
        let from = hour_wm.unwrap_or(i64::MIN);
        if hour_end > from {
            let r = sqlx::query(
                "INSERT INTO metrics_hour (metric, ts, label, v_avg, v_min, v_max, n)
                 SELECT metric, (ts / 3600000) * 3600000 AS b, label,
                        sum(v_avg * n) / sum(n), min(v_min), max(v_max), sum(n)
                   FROM metrics_minute WHERE ts >= ? AND ts < ?
                  GROUP BY metric, b, label
                 ON CONFLICT (metric, ts, label) DO UPDATE SET
                   v_avg = (v_avg * n + excluded.v_avg * excluded.n) / (n + excluded.n),
                   v_min = min(v_min, excluded.v_min),
                   v_max = max(v_max, excluded.v_max),
                   n = n + excluded.n",
            )
            .bind(from)
            .bind(hour_end)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("rolling up hours", e))?;
            rep.hour_rows_written = r.rows_affected();
            set_meta(&mut tx, "hour_wm", hour_end).await?;
        }
        let from = stmt_wm.unwrap_or(i64::MIN);
        if hour_end > from {
            sqlx::query(
                "INSERT INTO statements_hour (ts, queryid, interval_s, calls, total_ms, rows, shared_blks_read, temp_blks_written)
                 SELECT (ts / 3600000) * 3600000 AS b, queryid, sum(interval_s), sum(calls), sum(total_ms),
                        sum(rows), sum(shared_blks_read), sum(temp_blks_written)
                   FROM statements WHERE ts >= ? AND ts < ?
                  GROUP BY b, queryid
                 ON CONFLICT (ts, queryid) DO UPDATE SET
                   interval_s = interval_s + excluded.interval_s,
                   calls = calls + excluded.calls,
                   total_ms = total_ms + excluded.total_ms,
                   rows = rows + excluded.rows,
                   shared_blks_read = shared_blks_read + excluded.shared_blks_read,
                   temp_blks_written = temp_blks_written + excluded.temp_blks_written",
            )
            .bind(from)
            .bind(hour_end)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("rolling up statements", e))?;
            set_meta(&mut tx, "stmt_hour_wm", hour_end).await?;
        }
        // Retention. Raw rows go only once rolled up (before the minute watermark).
        let raw_cut = (now - retention.raw_ms()).min(minute_end);
        let r = sqlx::query("DELETE FROM metrics WHERE ts < ?")
            .bind(raw_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old raw points", e))?;
        rep.raw_rows_deleted = r.rows_affected();
        sqlx::query("DELETE FROM samples WHERE ts < ?")
            .bind(raw_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old samples", e))?;
        let minute_cut = (now - retention.minute_ms()).min(hour_end);
        let r = sqlx::query("DELETE FROM metrics_minute WHERE ts < ?")
            .bind(minute_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old minutes", e))?;
        rep.minute_rows_deleted = r.rows_affected();
        let hour_cut = now - retention.hour_ms();
        let r = sqlx::query("DELETE FROM metrics_hour WHERE ts < ?")
            .bind(hour_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old hours", e))?;
        rep.hour_rows_deleted = r.rows_affected();
        // Raw statement deltas go in whole hours, once summed, so "raw from" is exact.
        let stmt_cut = (now - retention.raw_ms()).div_euclid(HOUR_MS) * HOUR_MS;
        let stmt_cut = stmt_cut.min(hour_end);
        let r = sqlx::query("DELETE FROM statements WHERE ts < ?")
            .bind(stmt_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old statement deltas", e))?;
        rep.statement_rows_deleted = r.rows_affected();
        let old_from: Option<i64> = get("stmt_raw_from")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        if old_from.is_none_or(|f| f < stmt_cut) {
            set_meta(&mut tx, "stmt_raw_from", stmt_cut).await?;
        }
        let r = sqlx::query("DELETE FROM statements_hour WHERE ts < ?")
            .bind(hour_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old statement sums", e))?;
        rep.statement_rows_deleted += r.rows_affected();
        sqlx::query(
            "DELETE FROM statement_text WHERE last_seen < ?
               AND queryid NOT IN (SELECT queryid FROM statements_hour)
               AND queryid NOT IN (SELECT queryid FROM statements)",
        )
        .bind(hour_cut)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("deleting old statement texts", e))?;
        let r = sqlx::query("DELETE FROM events WHERE ts < ?")
            .bind(now - retention.event_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old events", e))?;
        rep.events_deleted = r.rows_affected();
        let r = sqlx::query("DELETE FROM maintenance_runs WHERE started_at < ?")
            .bind(now - retention.maintenance_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old maintenance runs", e))?;
        rep.maintenance_runs_deleted = r.rows_affected();
        tx.commit()
            .await
            .map_err(|e| db_err("committing compaction", e))?;
        Ok(rep)
    }

    /// Buckets of one metric and label set at a resolution, over `[from, to)`.
    ///
    /// For `Minute` and `Hour`, the part not yet rolled up is aggregated on the fly from the finer
    /// tables, so a series always reaches the latest sample. Returns label -> buckets by time.
    pub async fn buckets(
        &self,
        metric: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<std::collections::BTreeMap<String, Vec<Bucket>>> {
        use std::collections::BTreeMap;
        let mwm = self.minute_watermark().await?;
        let hwm = self.hour_watermark().await?;
        let mut acc: BTreeMap<String, BTreeMap<i64, Bucket>> = BTreeMap::new();
        let mut add = |label: String, b: Bucket| {
            let e = acc.entry(label).or_default().entry(b.ts).or_insert(Bucket {
                ts: b.ts,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                n: 0,
            });
            e.sum += b.sum;
            e.min = e.min.min(b.min);
            e.max = e.max.max(b.max);
            e.n += b.n;
        };
        // (table, bucket width, lower bound, upper bound, is-rolled-up table)
        let width = match resolution {
            Resolution::Raw => 0,
            Resolution::Minute => MINUTE_MS,
            Resolution::Hour => HOUR_MS,
        };
        let mut parts: Vec<(&str, i64, i64, bool)> = Vec::new();
        match resolution {
            Resolution::Raw => parts.push(("metrics", from, to, false)),
            Resolution::Minute => {
                parts.push(("metrics_minute", from, to.min(mwm), true));
                parts.push(("metrics", from.max(mwm), to, false));
            }
            Resolution::Hour => {
                parts.push(("metrics_hour", from, to.min(hwm), true));
                parts.push(("metrics_minute", from.max(hwm), to.min(mwm), true));
                parts.push(("metrics", from.max(hwm).max(mwm), to, false));
            }
        }
        for (table, lo, hi, rolled) in parts {
            if lo >= hi {
                continue;
            }
            let bucket = if width == 0 {
                "ts".to_string()
            } else {
                format!("(ts / {width}) * {width}")
            };
            let stmt = if rolled {
                format!(
                    "SELECT label, {bucket} AS b, sum(v_avg * n) AS s, min(v_min) AS lo, max(v_max) AS hi, sum(n) AS n
                       FROM {table} WHERE metric = ? AND ts >= ? AND ts < ? GROUP BY label, b"
                )
            } else {
                format!(
                    "SELECT label, {bucket} AS b, sum(value) AS s, min(value) AS lo, max(value) AS hi, count(*) AS n
                       FROM {table} WHERE metric = ? AND ts >= ? AND ts < ? GROUP BY label, b"
                )
            };
            let rows = sqlx::query(&stmt)
                .bind(metric)
                .bind(lo)
                .bind(hi)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db_err("reading a series", e))?;
            for r in rows {
                add(
                    r.get("label"),
                    Bucket {
                        ts: r.get("b"),
                        sum: r.get("s"),
                        min: r.get("lo"),
                        max: r.get("hi"),
                        n: r.get("n"),
                    },
                );
            }
        }
        Ok(acc
            .into_iter()
            .map(|(l, m)| (l, m.into_values().collect()))
            .collect())
    }

    /// Row counts of the metric tables (raw, minute, hour), for tests and diagnostics.
    pub async fn row_counts(&self) -> Result<(i64, i64, i64)> {
        let r = sqlx::query(
            "SELECT (SELECT count(*) FROM metrics) AS a, (SELECT count(*) FROM metrics_minute) AS b,
                    (SELECT count(*) FROM metrics_hour) AS c",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_err("counting rows", e))?;
        Ok((r.get("a"), r.get("b"), r.get("c")))
    }

    /// Number of samples stored.
    /// The newest raw points of `metric`: their time and (label, value) pairs.
    pub async fn latest_points(&self, metric: &str) -> Result<Option<(i64, Vec<(String, f64)>)>> {
        let rows = sqlx::query(
            "SELECT ts, label, value FROM metrics
              WHERE metric = ?1 AND ts = (SELECT max(ts) FROM metrics WHERE metric = ?1)",
        )
        .bind(metric)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("reading the latest points", e))?;
        let Some(ts) = rows.first().map(|r| r.get::<i64, _>(0)) else {
            return Ok(None);
        };
        Ok(Some((
            ts,
            rows.iter()
                .map(|r| (r.get::<String, _>(1), r.get::<f64, _>(2)))
                .collect(),
        )))
    }

    pub async fn sample_count(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM samples")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_err("counting samples", e))
    }

    /// Events with `from <= ts < to`, newest first.
    pub async fn events(&self, from: i64, to: i64, limit: u32) -> Result<Vec<QueryEvent>> {
        let rows = sqlx::query(
            "SELECT ts, kind, queryid, pid, database, usr, duration_ms, calls, threshold_ms, query, started_at
               FROM events WHERE ts >= ? AND ts < ? ORDER BY ts DESC, id DESC LIMIT ?",
        )
        .bind(from)
        .bind(to)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("reading events", e))?;
        Ok(rows
            .into_iter()
            .map(|r| QueryEvent {
                ts: r.get("ts"),
                kind: r.get("kind"),
                queryid: r.get("queryid"),
                pid: r.get::<Option<i64>, _>("pid").map(|p| p as i32),
                database: r.get("database"),
                user: r.get("usr"),
                duration_ms: r.get("duration_ms"),
                calls: r.get("calls"),
                threshold_ms: r.get("threshold_ms"),
                query: r.get("query"),
                started_at: r.get("started_at"),
            })
            .collect())
    }

    /// The latest sample's time and failures, if any sample was taken.
    pub async fn last_sample(&self) -> Result<Option<(i64, Vec<CollectorFailure>)>> {
        let row = sqlx::query("SELECT ts, failures FROM samples ORDER BY ts DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err("reading samples", e))?;
        Ok(row.map(|r| {
            let f: String = r.get("failures");
            (r.get("ts"), serde_json::from_str(&f).unwrap_or_default())
        }))
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

async fn insert_event(tx: &mut sqlx::Transaction<'_, Sqlite>, e: &QueryEvent) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (ts, kind, key, queryid, pid, database, usr, duration_ms, calls, threshold_ms, query, started_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET duration_ms = max(duration_ms, excluded.duration_ms)",
    )
    .bind(e.ts)
    .bind(&e.kind)
    .bind(e.key())
    .bind(&e.queryid)
    .bind(e.pid.map(|p| p as i64))
    .bind(&e.database)
    .bind(&e.user)
    .bind(e.duration_ms)
    .bind(e.calls)
    .bind(e.threshold_ms)
    .bind(&e.query)
    .bind(e.started_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| db_err("writing an event", e))?;
    Ok(())
}
