//! The first dashboard: server version, uptime, database size, connections by state, and
//! transactions per second and cache hit ratio as true rates between two samples.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use crate::charts;
use crate::conn::PooledConn;
use crate::error::Result;
use crate::sql;

#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct ConnectionsByState {
    pub active: u32,
    pub idle: u32,
    pub idle_in_transaction: u32,
    pub other: u32,
    pub total: u32,
    pub max_connections: u32,
}

/// Cumulative counters read from the server at one instant.
#[derive(Debug, Clone)]
pub struct RawSample {
    pub at: DateTime<Utc>,
    /// Server clock (seconds since epoch) when the counters were read; rates use it.
    pub server_epoch: f64,
    pub xacts: i64,
    pub blks_hit: i64,
    pub blks_read: i64,
    pub server_version: String,
    pub uptime_seconds: f64,
    pub database: String,
    pub database_size_bytes: i64,
    pub connections: ConnectionsByState,
}

/// What the dashboard shows after one sampling tick.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DashboardSnapshot {
    pub project: String,
    pub server_version: String,
    pub uptime_seconds: f64,
    pub database: String,
    #[ts(type = "number")]
    pub database_size_bytes: i64,
    pub connections: ConnectionsByState,
    /// Transactions (commits + rollbacks, all databases) per second since the previous sample.
    pub tps: Option<f64>,
    /// Share of block reads served from shared buffers since the previous sample (0..1).
    pub cache_hit_ratio: Option<f64>,
    pub tps_chart_svg: String,
    pub cache_chart_svg: String,
    pub sampled_at: String,
    pub interval_seconds: u32,
}

/// One point of the rate series.
#[derive(Debug, Clone, Copy)]
pub struct RatePoint {
    pub at: DateTime<Utc>,
    pub tps: f64,
    pub cache_hit: Option<f64>,
}

/// Read the counters. Three small statements on pg_stat views; needs only `pg_monitor`.
pub async fn read_sample(conn: &mut PooledConn) -> Result<RawSample> {
    let row = sqlx::query(sql!(
        "SELECT current_setting('server_version') AS version,
                extract(epoch FROM clock_timestamp())::float8 AS now_epoch,
                extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())::float8 AS uptime,
                current_database() AS db,
                pg_database_size(current_database()) AS db_size,
                current_setting('max_connections')::int AS max_conn"
    ))
    .fetch_one(&mut **conn)
    .await?;
    let totals = sqlx::query(sql!(
        "SELECT coalesce(sum(xact_commit + xact_rollback), 0)::int8 AS xacts,
                coalesce(sum(blks_hit), 0)::int8 AS hit,
                coalesce(sum(blks_read), 0)::int8 AS read
           FROM pg_stat_database"
    ))
    .fetch_one(&mut **conn)
    .await?;
    let states = sqlx::query(sql!(
        "SELECT coalesce(state, 'unknown') AS state, count(*)::int4 AS n
           FROM pg_stat_activity
          WHERE backend_type = 'client backend'
          GROUP BY 1"
    ))
    .fetch_all(&mut **conn)
    .await?;
    let mut c = ConnectionsByState {
        max_connections: row.get::<i32, _>("max_conn") as u32,
        ..Default::default()
    };
    for s in states {
        let n = s.get::<i32, _>("n") as u32;
        match s.get::<String, _>("state").as_str() {
            "active" => c.active += n,
            "idle" => c.idle += n,
            "idle in transaction" | "idle in transaction (aborted)" => c.idle_in_transaction += n,
            _ => c.other += n,
        }
        c.total += n;
    }
    Ok(RawSample {
        at: Utc::now(),
        server_epoch: row.get("now_epoch"),
        xacts: totals.get("xacts"),
        blks_hit: totals.get("hit"),
        blks_read: totals.get("read"),
        server_version: row.get("version"),
        uptime_seconds: row.get("uptime"),
        database: row.get("db"),
        database_size_bytes: row.get("db_size"),
        connections: c,
    })
}

/// Rates between two samples; `None` when counters went backwards (stats reset, restart).
pub fn rates(prev: &RawSample, cur: &RawSample) -> Option<RatePoint> {
    let dt = cur.server_epoch - prev.server_epoch;
    if dt <= 0.0
        || cur.xacts < prev.xacts
        || cur.blks_hit < prev.blks_hit
        || cur.blks_read < prev.blks_read
    {
        return None;
    }
    let hit = (cur.blks_hit - prev.blks_hit) as f64;
    let read = (cur.blks_read - prev.blks_read) as f64;
    Some(RatePoint {
        at: cur.at,
        tps: (cur.xacts - prev.xacts) as f64 / dt,
        cache_hit: if hit + read > 0.0 {
            Some(hit / (hit + read))
        } else {
            None
        },
    })
}

/// The recent samples of one project, bounded.
#[derive(Debug, Default)]
pub struct SampleRing {
    last: Option<RawSample>,
    points: VecDeque<RatePoint>,
}

/// Points kept: one hour at the default 5-second interval.
const MAX_POINTS: usize = 720;

impl SampleRing {
    /// Add a sample; returns the rates against the previous one, if any.
    pub fn push(&mut self, s: RawSample) -> Option<RatePoint> {
        let point = self.last.as_ref().and_then(|prev| rates(prev, &s));
        if let Some(p) = point {
            self.points.push_back(p);
            while self.points.len() > MAX_POINTS {
                self.points.pop_front();
            }
        }
        self.last = Some(s);
        point
    }

    pub fn points(&self) -> impl Iterator<Item = &RatePoint> {
        self.points.iter()
    }

    /// Build the snapshot the dashboard shows, charts included.
    pub fn snapshot(&self, project: &str, interval_seconds: u32) -> Option<DashboardSnapshot> {
        let s = self.last.as_ref()?;
        let last_point = self.points.back().filter(|p| p.at == s.at);
        let tps_series: Vec<(DateTime<Utc>, f64)> =
            self.points.iter().map(|p| (p.at, p.tps)).collect();
        let cache_series: Vec<(DateTime<Utc>, f64)> = self
            .points
            .iter()
            .filter_map(|p| p.cache_hit.map(|c| (p.at, c * 100.0)))
            .collect();
        Some(DashboardSnapshot {
            project: project.to_string(),
            server_version: s.server_version.clone(),
            uptime_seconds: s.uptime_seconds,
            database: s.database.clone(),
            database_size_bytes: s.database_size_bytes,
            connections: s.connections.clone(),
            tps: last_point.map(|p| p.tps),
            cache_hit_ratio: last_point.and_then(|p| p.cache_hit),
            tps_chart_svg: charts::line_chart_svg(
                "Transactions per second",
                "tx/s",
                &tps_series,
                None,
            ),
            cache_chart_svg: charts::line_chart_svg(
                "Cache hit ratio",
                "%",
                &cache_series,
                Some((0.0, 100.0)),
            ),
            sampled_at: s.at.to_rfc3339(),
            interval_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(epoch: f64, xacts: i64, hit: i64, read: i64) -> RawSample {
        RawSample {
            at: Utc::now(),
            server_epoch: epoch,
            xacts,
            blks_hit: hit,
            blks_read: read,
            server_version: "18.1".into(),
            uptime_seconds: 1.0,
            database: "d".into(),
            database_size_bytes: 1,
            connections: ConnectionsByState::default(),
        }
    }

    #[test]
    fn rates_are_per_second_over_server_time() {
        let p = rates(
            &sample(100.0, 1000, 900, 100),
            &sample(102.0, 1100, 1890, 110),
        )
        .unwrap();
        assert!((p.tps - 50.0).abs() < 1e-9);
        assert!((p.cache_hit.unwrap() - 0.99).abs() < 1e-9);
    }

    #[test]
    fn counter_reset_gives_no_rate() {
        assert!(rates(&sample(100.0, 1000, 9, 1), &sample(102.0, 10, 9, 1)).is_none());
        let mut ring = SampleRing::default();
        assert!(ring.push(sample(1.0, 1, 1, 1)).is_none());
        assert!(ring.push(sample(2.0, 5, 1, 1)).is_some());
        let snap = ring.snapshot("p", 3).unwrap();
        assert_eq!(snap.tps, Some(4.0));
        assert_eq!(snap.cache_hit_ratio, None);
        assert!(snap.tps_chart_svg.starts_with("<svg"));
    }
}
