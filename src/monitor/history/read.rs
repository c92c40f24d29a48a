//! Reading the history back: a metric's buckets at a resolution (reaching the latest sample
//! through the finer tables), the newest points, events and the last sample's failures.

use sqlx::Row;

use super::{db_err, Bucket, HistoryStore, QueryEvent, Resolution, HOUR_MS, MINUTE_MS};
use crate::error::Result;
use crate::monitor::collect::CollectorFailure;

impl HistoryStore {
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
