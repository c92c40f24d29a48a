//! Queries over a time range from the stored pg_stat_statements deltas (what ran in that
//! window, not since the last reset): top statements by a chosen cost, one statement's series,
//! and the slow-query events. When pg_stat_statements is missing the report says exactly how to
//! enable it instead of failing.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use crate::charts;
use crate::conn::Pool;
use crate::error::{Error, ErrorCode, Result};

use super::collect::statements_schema;
use super::history::{HistoryRetention, HistoryStore, QueryEvent, Resolution, HOUR_MS, MINUTE_MS};
use super::series::{pick_resolution, HistoryRange};

/// What "top" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum QuerySort {
    /// Total execution time.
    Total,
    /// Mean execution time per call.
    Mean,
    Calls,
    Rows,
    /// Shared blocks read from outside shared buffers.
    Read,
    /// Temporary blocks written.
    Temp,
}

impl QuerySort {
    pub fn parse(s: &str) -> Result<QuerySort> {
        Ok(match s {
            "total" => QuerySort::Total,
            "mean" => QuerySort::Mean,
            "calls" => QuerySort::Calls,
            "rows" => QuerySort::Rows,
            "read" => QuerySort::Read,
            "temp" => QuerySort::Temp,
            _ => {
                return Err(Error::invalid_input(format!(
                    "Unknown sort \"{s}\"; use total, mean, calls, rows, read or temp."
                )))
            }
        })
    }

    fn column(self) -> &'static str {
        match self {
            QuerySort::Total => "total_ms",
            QuerySort::Mean => "mean_ms",
            QuerySort::Calls => "calls",
            QuerySort::Rows => "rows",
            QuerySort::Read => "shared_blks_read",
            QuerySort::Temp => "temp_blks_written",
        }
    }
}

/// One statement's cost over the range.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TopQuery {
    pub queryid: String,
    pub query: String,
    pub calls: f64,
    pub total_ms: f64,
    /// total_ms / calls over the range: a mean, not a percentile.
    pub mean_ms: f64,
    pub rows: f64,
    pub shared_blks_read: f64,
    pub temp_blks_written: f64,
    /// Share of all statement time in the range (0..1).
    pub share_of_total: f64,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct TopQueries {
    pub project: String,
    #[ts(type = "number")]
    pub from: i64,
    #[ts(type = "number")]
    pub to: i64,
    pub sort: QuerySort,
    pub queries: Vec<TopQuery>,
    /// Whether the server currently has pg_stat_statements ready (None: could not ask).
    pub statements_available: Option<bool>,
    /// How to enable pg_stat_statements, when it is missing.
    pub enable_instructions: Option<String>,
}

/// `None` when pg_stat_statements is ready in the project's database, else how to enable it.
pub async fn statements_status(pool: &Pool) -> Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    Ok(statements_schema(&mut conn).await?.missing())
}

fn db_err(context: &str, e: sqlx::Error) -> Error {
    Error::new(ErrorCode::Io, format!("history store, {context}: {e}"))
}

/// Top statements over `[from, to)` from the stored deltas.
pub async fn top_queries(
    store: &HistoryStore,
    from: i64,
    to: i64,
    sort: QuerySort,
    limit: u32,
) -> Result<Vec<TopQuery>> {
    let raw_from = store.statements_raw_from().await?;
    let h_from = from.div_euclid(HOUR_MS) * HOUR_MS;
    let h_to = to.min(raw_from);
    let r_from = from.max(raw_from);
    let stmt = format!(
        "WITH d AS (
            SELECT queryid, calls, total_ms, rows, shared_blks_read, temp_blks_written
              FROM statements_hour WHERE ts >= ?1 AND ts < ?2
            UNION ALL
            SELECT queryid, calls, total_ms, rows, shared_blks_read, temp_blks_written
              FROM statements WHERE ts >= ?3 AND ts < ?4
         ), q AS (
            SELECT queryid, sum(calls) AS calls, sum(total_ms) AS total_ms, sum(rows) AS rows,
                   sum(shared_blks_read) AS shared_blks_read, sum(temp_blks_written) AS temp_blks_written,
                   sum(total_ms) / max(sum(calls), 1) AS mean_ms
              FROM d GROUP BY queryid HAVING sum(calls) > 0
         )
         SELECT q.*, coalesce(t.query, '') AS query, (SELECT sum(total_ms) FROM q) AS all_ms
           FROM q LEFT JOIN statement_text t ON t.queryid = q.queryid
          ORDER BY {} DESC, q.queryid LIMIT ?5",
        sort.column()
    );
    let rows = sqlx::query(&stmt)
        .bind(h_from)
        .bind(h_to)
        .bind(r_from)
        .bind(to)
        .bind(limit as i64)
        .fetch_all(store.sqlite())
        .await
        .map_err(|e| db_err("reading top queries", e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let all: f64 = r.get::<Option<f64>, _>("all_ms").unwrap_or(0.0);
            let total: f64 = r.get("total_ms");
            TopQuery {
                queryid: r.get("queryid"),
                query: r.get("query"),
                calls: r.get("calls"),
                total_ms: total,
                mean_ms: r.get("mean_ms"),
                rows: r.get("rows"),
                shared_blks_read: r.get("shared_blks_read"),
                temp_blks_written: r.get("temp_blks_written"),
                share_of_total: if all > 0.0 { total / all } else { 0.0 },
            }
        })
        .collect())
}

/// One bucket of a statement's series.
#[derive(Debug, Clone, Serialize, TS)]
pub struct QueryPoint {
    #[ts(type = "number")]
    pub t: i64,
    pub calls: f64,
    pub calls_per_s: f64,
    pub total_ms: f64,
    /// Mean time per call over the bucket (not a percentile).
    pub mean_ms: f64,
    pub rows: f64,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct QuerySeries {
    pub queryid: String,
    pub query: String,
    pub resolution: Resolution,
    pub points: Vec<QueryPoint>,
}

/// Calls and mean time of one statement over a range, bucketed like the metric series.
pub async fn query_series(
    store: &HistoryStore,
    queryid: &str,
    range: HistoryRange,
    retention: &HistoryRetention,
    now: i64,
) -> Result<QuerySeries> {
    let (from, to) = range.bounds(now)?;
    let resolution = pick_resolution(from, to, now, retention);
    let raw_from = store.statements_raw_from().await?;
    let width = match resolution {
        Resolution::Raw => 1,
        Resolution::Minute => MINUTE_MS,
        // Hourly sums are the coarsest the store has.
        Resolution::Hour => HOUR_MS,
    };
    let stmt = format!(
        "WITH d AS (
            SELECT ts, interval_s, calls, total_ms, rows FROM statements_hour
             WHERE queryid = ?1 AND ts >= ?2 AND ts < ?3
            UNION ALL
            SELECT ts, interval_s, calls, total_ms, rows FROM statements
             WHERE queryid = ?1 AND ts >= ?4 AND ts < ?5
         )
         SELECT (ts / {width}) * {width} AS b, sum(interval_s) AS secs, sum(calls) AS calls,
                sum(total_ms) AS total_ms, sum(rows) AS rows
           FROM d GROUP BY b ORDER BY b"
    );
    let rows = sqlx::query(&stmt)
        .bind(queryid)
        .bind(from.div_euclid(HOUR_MS) * HOUR_MS)
        .bind(to.min(raw_from))
        .bind(from.max(raw_from))
        .bind(to)
        .fetch_all(store.sqlite())
        .await
        .map_err(|e| db_err("reading a query series", e))?;
    let query: Option<String> =
        sqlx::query_scalar("SELECT query FROM statement_text WHERE queryid = ?")
            .bind(queryid)
            .fetch_optional(store.sqlite())
            .await
            .map_err(|e| db_err("reading a query text", e))?;
    Ok(QuerySeries {
        queryid: queryid.to_string(),
        query: query.unwrap_or_default(),
        resolution,
        points: rows
            .into_iter()
            .map(|r| {
                let calls: f64 = r.get("calls");
                let total: f64 = r.get("total_ms");
                let secs: f64 = r.get("secs");
                QueryPoint {
                    t: r.get("b"),
                    calls,
                    calls_per_s: if secs > 0.0 { calls / secs } else { 0.0 },
                    total_ms: total,
                    mean_ms: if calls > 0.0 { total / calls } else { 0.0 },
                    rows: r.get("rows"),
                }
            })
            .collect(),
    })
}

/// One statement over a range, with its charts.
#[derive(Debug, Clone, Serialize, TS)]
pub struct QueryCharts {
    pub series: QuerySeries,
    /// Calls per second over the range.
    pub calls_svg: String,
    /// Mean time per call over each bucket (not a percentile).
    pub mean_svg: String,
}

impl QuerySeries {
    /// Calls per second and mean time per call, as two charts over `[from, to)`.
    pub fn charts(self, from: i64, to: i64) -> QueryCharts {
        let x_range = charts::utc_ms(from).zip(charts::utc_ms(to));
        let line = |label: &str, f: fn(&QueryPoint) -> f64| charts::Line {
            label: label.into(),
            points: self
                .points
                .iter()
                .filter_map(|p| charts::utc_ms(p.t).map(|t| (t, f(p))))
                .collect(),
        };
        let chart = |title: &str, unit: &str, l: charts::Line| {
            charts::TimeChart {
                title: title.into(),
                unit: unit.into(),
                lines: vec![l],
                x_range,
                empty_text: "no calls in this range".into(),
                ..Default::default()
            }
            .svg()
        };
        let calls_svg = chart(
            "Calls per second",
            "calls/s",
            line("calls/s", |p| p.calls_per_s),
        );
        let mean_svg = chart(
            "Mean time per call (not a percentile)",
            "ms",
            line("mean", |p| p.mean_ms),
        );
        QueryCharts {
            series: self,
            calls_svg,
            mean_svg,
        }
    }
}

/// Slow-query events over a range, newest first.
pub async fn slow_query_events(
    store: &HistoryStore,
    range: HistoryRange,
    now: i64,
    limit: u32,
) -> Result<Vec<QueryEvent>> {
    let (from, to) = range.bounds(now)?;
    store.events(from, to, limit).await
}
