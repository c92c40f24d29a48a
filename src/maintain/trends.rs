//! Table trends: dead tuples, size and bloat of the database and of its largest tables, kept
//! in the project's history store each time a plan reads the statistics, so the maintenance
//! page can chart them over time (has VACUUM kept up? is a table growing?).
//!
//! A snapshot is one row per tracked table plus one row for the whole database (empty schema
//! and table names). At most one snapshot is kept per [`SNAPSHOT_EVERY_MS`]; per-table rows are
//! kept for the [`TRACKED_TABLES`] largest tables and every table with a planned action, so a
//! database with 20,000 tables does not write 20,000 rows each time. Snapshots older than
//! [`DAILY_AFTER_DAYS`] are thinned to one a day and dropped after [`KEEP_DAYS`].

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::planner::{MaintenancePlan, TableEntry};
use crate::charts::{Line, TimeChart};
use crate::error::{Error, ErrorCode, Result};
use crate::monitor::history::HistoryStore;

pub const SNAPSHOT_EVERY_MS: i64 = 10 * 60 * 1000;
pub const TRACKED_TABLES: usize = 500;
pub const DAILY_AFTER_DAYS: i64 = 30;
pub const KEEP_DAYS: i64 = 365;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One point of a table's (or the database's) trend.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct TrendPoint {
    #[ts(type = "number")]
    pub ts: i64,
    #[ts(type = "number")]
    pub live_tuples: i64,
    #[ts(type = "number")]
    pub dead_tuples: i64,
    #[ts(type = "number")]
    pub total_bytes: i64,
    /// Estimated, or measured where a measurement was at hand when the snapshot was taken.
    #[ts(type = "number")]
    pub bloat_bytes: i64,
    /// The bloat figure was measured (pgstattuple), not estimated.
    pub measured: bool,
}

/// A trend chart as an SVG document.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TrendChart {
    pub id: String,
    pub title: String,
    pub svg: String,
}

/// Trends of the database or of one table over a range.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenanceTrends {
    pub project: String,
    /// `None` for the whole database.
    pub schema: Option<String>,
    pub table: Option<String>,
    pub points: Vec<TrendPoint>,
    pub charts: Vec<TrendChart>,
}

fn db_err(context: &str, e: sqlx::Error) -> Error {
    Error::new(ErrorCode::Io, format!("table trends, {context}: {e}"))
}

fn bloat_of(t: &TableEntry) -> (i64, bool) {
    match &t.measured {
        Some(m) => (m.bloat_bytes, true),
        None => (t.estimate.bloat_bytes, false),
    }
}

fn total_bytes(t: &TableEntry) -> i64 {
    t.stats.heap_bytes + t.stats.toast_bytes + t.stats.index_bytes
}

/// Store a snapshot of the plan's tables at `now_ms` unless one was stored less than
/// [`SNAPSHOT_EVERY_MS`] ago; thin and drop old snapshots. True when a snapshot was written.
pub async fn record(store: &HistoryStore, plan: &MaintenancePlan, now_ms: i64) -> Result<bool> {
    let db = store.sqlite();
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT max(ts) FROM table_trends WHERE schema_name = '' AND table_name = ''",
    )
    .fetch_one(db)
    .await
    .map_err(|e| db_err("reading the last snapshot", e))?;
    if last.is_some_and(|l| now_ms - l < SNAPSHOT_EVERY_MS && now_ms >= l) {
        return Ok(false);
    }
    let acted: HashSet<(&str, &str)> = plan
        .actions
        .iter()
        .map(|a| (a.schema.as_str(), a.table.as_str()))
        .collect();
    let mut by_size: Vec<&TableEntry> = plan.tables.iter().collect();
    by_size.sort_by_key(|t| std::cmp::Reverse(total_bytes(t)));
    let tracked: Vec<&TableEntry> = by_size
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            *i < TRACKED_TABLES || acted.contains(&(t.stats.schema.as_str(), t.stats.name.as_str()))
        })
        .map(|(_, t)| *t)
        .collect();

    let mut tx = db.begin().await.map_err(|e| db_err("begin", e))?;
    let insert = "INSERT OR REPLACE INTO table_trends (ts, schema_name, table_name, live_tuples,
                  dead_tuples, total_bytes, bloat_bytes, measured, tables)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let (mut live, mut dead, mut size, mut bloat, mut all_measured) =
        (0i64, 0i64, 0i64, 0i64, true);
    for t in &plan.tables {
        let (b, m) = bloat_of(t);
        live += t.stats.live_tuples;
        dead += t.stats.dead_tuples;
        size += total_bytes(t);
        bloat += b;
        all_measured &= m;
    }
    sqlx::query(insert)
        .bind(now_ms)
        .bind("")
        .bind("")
        .bind(live)
        .bind(dead)
        .bind(size)
        .bind(bloat)
        .bind(all_measured && !plan.tables.is_empty())
        .bind(plan.tables.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("writing the database snapshot", e))?;
    for t in tracked {
        let (b, m) = bloat_of(t);
        sqlx::query(insert)
            .bind(now_ms)
            .bind(&t.stats.schema)
            .bind(&t.stats.name)
            .bind(t.stats.live_tuples)
            .bind(t.stats.dead_tuples)
            .bind(total_bytes(t))
            .bind(b)
            .bind(m)
            .bind(1i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("writing a table snapshot", e))?;
    }
    // Older than DAILY_AFTER_DAYS: keep the first snapshot of each UTC day; past KEEP_DAYS: none.
    sqlx::query("DELETE FROM table_trends WHERE ts < ?")
        .bind(now_ms - KEEP_DAYS * DAY_MS)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("dropping old snapshots", e))?;
    sqlx::query(
        "DELETE FROM table_trends WHERE ts < ?1 AND ts NOT IN (
           SELECT min(ts) FROM table_trends WHERE ts < ?1 AND schema_name = '' AND table_name = ''
            GROUP BY ts / ?2)",
    )
    .bind(now_ms - DAILY_AFTER_DAYS * DAY_MS)
    .bind(DAY_MS)
    .execute(&mut *tx)
    .await
    .map_err(|e| db_err("thinning old snapshots", e))?;
    tx.commit().await.map_err(|e| db_err("commit", e))?;
    Ok(true)
}

/// Points of the database (`table` None) or of one table, from `from_ms` on, oldest first.
pub async fn load(
    store: &HistoryStore,
    table: Option<(&str, &str)>,
    from_ms: i64,
) -> Result<Vec<TrendPoint>> {
    let db = store.sqlite();
    let (schema, name) = table.unwrap_or(("", ""));
    let rows = sqlx::query(
        "SELECT ts, live_tuples, dead_tuples, total_bytes, bloat_bytes, measured FROM table_trends
          WHERE schema_name = ? AND table_name = ? AND ts >= ? ORDER BY ts",
    )
    .bind(schema)
    .bind(name)
    .bind(from_ms)
    .fetch_all(db)
    .await
    .map_err(|e| db_err("reading", e))?;
    Ok(rows
        .iter()
        .map(|r| TrendPoint {
            ts: r.get(0),
            live_tuples: r.get(1),
            dead_tuples: r.get(2),
            total_bytes: r.get(3),
            bloat_bytes: r.get(4),
            measured: r.get::<i64, _>(5) != 0,
        })
        .collect())
}

/// Two charts: dead tuples, and size with bloat, over `[from_ms, to_ms)`.
pub fn charts(points: &[TrendPoint], subject: &str, from_ms: i64, to_ms: i64) -> Vec<TrendChart> {
    let t = |ms: i64| Utc.timestamp_millis_opt(ms).single();
    let line = |label: &str, f: &dyn Fn(&TrendPoint) -> i64| Line {
        label: label.into(),
        points: points
            .iter()
            .filter_map(|p| t(p.ts).map(|ts| (ts, f(p) as f64)))
            .collect(),
    };
    let x_range = t(from_ms).zip(t(to_ms));
    let empty =
        "no snapshot in this range yet: one is kept each time the plan is built".to_string();
    let measured = points.iter().any(|p| p.measured);
    let bloat_label = if measured {
        "bloat (measured where marked)"
    } else {
        "bloat (estimated)"
    };
    vec![
        TrendChart {
            id: "dead_tuples".into(),
            title: format!("Dead tuples — {subject}"),
            svg: TimeChart {
                title: format!("Dead tuples — {subject}"),
                unit: "rows".into(),
                lines: vec![line("dead tuples", &|p| p.dead_tuples)],
                x_range,
                empty_text: empty.clone(),
                ..Default::default()
            }
            .svg(),
        },
        TrendChart {
            id: "size_bloat".into(),
            title: format!("Size and bloat — {subject}"),
            svg: TimeChart {
                title: format!("Size and bloat — {subject}"),
                unit: "bytes".into(),
                lines: vec![
                    line("total size", &|p| p.total_bytes),
                    line(bloat_label, &|p| p.bloat_bytes),
                ],
                x_range,
                empty_text: empty,
                ..Default::default()
            }
            .svg(),
        },
    ]
}
