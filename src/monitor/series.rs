//! Time-range queries for the dashboard: "series of these metrics over the last hour" at the
//! resolution that covers the range (raw points, per-minute or per-hour roll-ups, picked
//! automatically), as points the UI can chart, and their SVG charts.
//!
//! About `statement_mean_ms`: it is the mean execution time of all statements over each sampling
//! interval (sum of time / sum of calls from pg_stat_statements deltas), not a percentile. A
//! few slow calls among many fast ones barely move it.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::charts;
use crate::error::{Error, Result};

use super::history::{HistoryRetention, HistoryStore, Resolution, DAY_MS, HOUR_MS, MINUTE_MS};

/// A metric the history keeps, by the name it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Transactions (commits + rollbacks, all databases) per second.
    Tps,
    CommitsPerS,
    RollbacksPerS,
    /// Client connections by state (labels: active, idle, idle_in_transaction, other, total).
    Connections,
    MaxConnections,
    /// Share of block reads served from shared buffers over each interval (0..1).
    CacheHitRatio,
    /// Rows returned by scans plus rows fetched by index, per second.
    TuplesReadPerS,
    /// Rows inserted, updated and deleted per second.
    TuplesWrittenPerS,
    TempFilesPerS,
    TempBytesPerS,
    DeadlocksPerS,
    CheckpointsTimedPerS,
    CheckpointsRequestedPerS,
    /// WAL written per second (from the WAL position).
    WalBytesPerS,
    /// Replay lag per standby (label: standby name).
    ReplicationLagSeconds,
    ReplicationLagBytes,
    /// WAL kept by each replication slot (label: slot name).
    SlotRetainedBytes,
    /// Lock requests waiting.
    LocksWaiting,
    /// Size of each database (label: database).
    DatabaseSizeBytes,
    /// Mean statement execution time over each interval from pg_stat_statements deltas (not a
    /// percentile).
    StatementMeanMs,
    StatementCallsPerS,
    /// 1 when the availability probe reached the server, 0 when it did not.
    Up,
    /// Time to get a session and run `SELECT 1`.
    ProbeLatencyMs,
}

impl Metric {
    pub const ALL: [Metric; 23] = [
        Metric::Tps,
        Metric::CommitsPerS,
        Metric::RollbacksPerS,
        Metric::Connections,
        Metric::MaxConnections,
        Metric::CacheHitRatio,
        Metric::TuplesReadPerS,
        Metric::TuplesWrittenPerS,
        Metric::TempFilesPerS,
        Metric::TempBytesPerS,
        Metric::DeadlocksPerS,
        Metric::CheckpointsTimedPerS,
        Metric::CheckpointsRequestedPerS,
        Metric::WalBytesPerS,
        Metric::ReplicationLagSeconds,
        Metric::ReplicationLagBytes,
        Metric::SlotRetainedBytes,
        Metric::LocksWaiting,
        Metric::DatabaseSizeBytes,
        Metric::StatementMeanMs,
        Metric::StatementCallsPerS,
        Metric::Up,
        Metric::ProbeLatencyMs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Tps => "tps",
            Metric::CommitsPerS => "commits_per_s",
            Metric::RollbacksPerS => "rollbacks_per_s",
            Metric::Connections => "connections",
            Metric::MaxConnections => "max_connections",
            Metric::CacheHitRatio => "cache_hit_ratio",
            Metric::TuplesReadPerS => "tuples_read_per_s",
            Metric::TuplesWrittenPerS => "tuples_written_per_s",
            Metric::TempFilesPerS => "temp_files_per_s",
            Metric::TempBytesPerS => "temp_bytes_per_s",
            Metric::DeadlocksPerS => "deadlocks_per_s",
            Metric::CheckpointsTimedPerS => "checkpoints_timed_per_s",
            Metric::CheckpointsRequestedPerS => "checkpoints_requested_per_s",
            Metric::WalBytesPerS => "wal_bytes_per_s",
            Metric::ReplicationLagSeconds => "replication_lag_seconds",
            Metric::ReplicationLagBytes => "replication_lag_bytes",
            Metric::SlotRetainedBytes => "slot_retained_bytes",
            Metric::LocksWaiting => "locks_waiting",
            Metric::DatabaseSizeBytes => "database_size_bytes",
            Metric::StatementMeanMs => "statement_mean_ms",
            Metric::StatementCallsPerS => "statement_calls_per_s",
            Metric::Up => "up",
            Metric::ProbeLatencyMs => "probe_latency_ms",
        }
    }

    pub fn parse(s: &str) -> Result<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "Unknown metric \"{s}\". Known: {}.",
                    Metric::ALL.map(|m| m.as_str()).join(", ")
                ))
            })
    }

    /// Title and unit for charts and tables.
    pub fn title_unit(self) -> (&'static str, &'static str) {
        match self {
            Metric::Tps => ("Transactions per second", "tx/s"),
            Metric::CommitsPerS => ("Commits per second", "/s"),
            Metric::RollbacksPerS => ("Rollbacks per second", "/s"),
            Metric::Connections => ("Connections", "sessions"),
            Metric::MaxConnections => ("max_connections", "sessions"),
            Metric::CacheHitRatio => ("Cache hit ratio", "%"),
            Metric::TuplesReadPerS => ("Rows read per second", "rows/s"),
            Metric::TuplesWrittenPerS => ("Rows written per second", "rows/s"),
            Metric::TempFilesPerS => ("Temporary files per second", "files/s"),
            Metric::TempBytesPerS => ("Temporary bytes per second", "B/s"),
            Metric::DeadlocksPerS => ("Deadlocks per second", "/s"),
            Metric::CheckpointsTimedPerS => ("Timed checkpoints per second", "/s"),
            Metric::CheckpointsRequestedPerS => ("Requested checkpoints per second", "/s"),
            Metric::WalBytesPerS => ("WAL written per second", "B/s"),
            Metric::ReplicationLagSeconds => ("Replication replay lag", "s"),
            Metric::ReplicationLagBytes => ("Replication lag", "B"),
            Metric::SlotRetainedBytes => ("WAL retained by slots", "B"),
            Metric::LocksWaiting => ("Lock requests waiting", "locks"),
            Metric::DatabaseSizeBytes => ("Database size", "B"),
            Metric::StatementMeanMs => ("Statement mean time over each interval", "ms"),
            Metric::StatementCallsPerS => ("Statement calls per second", "calls/s"),
            Metric::Up => ("Server reachable", "up"),
            Metric::ProbeLatencyMs => ("Probe latency", "ms"),
        }
    }
}

/// A time range of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HistoryRange {
    Last15m,
    Last1h,
    Last24h,
    Last7d,
    Last30d,
    /// Explicit bounds, UTC milliseconds since the epoch.
    Between {
        #[ts(type = "number")]
        from: i64,
        #[ts(type = "number")]
        to: i64,
    },
}

impl HistoryRange {
    /// "15m", "1h", "24h", "7d", "30d".
    pub fn parse(s: &str) -> Result<HistoryRange> {
        Ok(match s {
            "15m" => HistoryRange::Last15m,
            "1h" => HistoryRange::Last1h,
            "24h" | "1d" => HistoryRange::Last24h,
            "7d" => HistoryRange::Last7d,
            "30d" => HistoryRange::Last30d,
            _ => {
                return Err(Error::invalid_input(format!(
                    "Unknown range \"{s}\"; use 15m, 1h, 24h, 7d or 30d."
                )))
            }
        })
    }

    /// `[from, to)` in ms, relative to `now` for the "last ..." ranges.
    pub fn bounds(self, now: i64) -> Result<(i64, i64)> {
        let back = |ms: i64| Ok((now - ms, now + 1));
        match self {
            HistoryRange::Last15m => back(15 * MINUTE_MS),
            HistoryRange::Last1h => back(HOUR_MS),
            HistoryRange::Last24h => back(DAY_MS),
            HistoryRange::Last7d => back(7 * DAY_MS),
            HistoryRange::Last30d => back(30 * DAY_MS),
            HistoryRange::Between { from, to } if from < to => Ok((from, to)),
            HistoryRange::Between { .. } => {
                Err(Error::invalid_input("The range must start before it ends."))
            }
        }
    }
}

/// The finest resolution that still holds `from` and keeps a chart readable: raw points up to
/// two hours (while raw points are kept), minutes up to a week (within their retention), hours
/// beyond.
pub fn pick_resolution(from: i64, to: i64, now: i64, r: &HistoryRetention) -> Resolution {
    let span = to - from;
    if span <= 2 * HOUR_MS && from >= now - r.raw_ms() {
        Resolution::Raw
    } else if span <= 7 * DAY_MS + HOUR_MS && from >= now - r.minute_ms() {
        Resolution::Minute
    } else {
        Resolution::Hour
    }
}

/// One point of a series: the average over its bucket (the value itself at raw resolution),
/// with the bucket's minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, TS)]
pub struct SeriesPoint {
    /// Bucket start (the sample time at raw resolution), UTC ms.
    #[ts(type = "number")]
    pub t: i64,
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct Series {
    pub metric: Metric,
    /// Standby, slot, database or connection state; empty for server-wide metrics.
    pub label: String,
    pub title: String,
    pub unit: String,
    pub points: Vec<SeriesPoint>,
}

impl Series {
    /// The series as an SVG line chart (ratios shown in %).
    pub fn chart_svg(&self) -> String {
        let pct = self.metric == Metric::CacheHitRatio;
        let points: Vec<(DateTime<Utc>, f64)> = self
            .points
            .iter()
            .filter_map(|p| {
                Utc.timestamp_millis_opt(p.t)
                    .single()
                    .map(|t| (t, if pct { p.value * 100.0 } else { p.value }))
            })
            .collect();
        let title = if self.label.is_empty() {
            self.title.clone()
        } else {
            format!("{} ({})", self.title, self.label)
        };
        charts::line_chart_svg(&title, &self.unit, &points, pct.then_some((0.0, 100.0)))
    }
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct HistorySeries {
    pub project: String,
    #[ts(type = "number")]
    pub from: i64,
    #[ts(type = "number")]
    pub to: i64,
    pub resolution: Resolution,
    pub series: Vec<Series>,
}

/// Read `metrics` over `range` from the store.
pub async fn history_series(
    project: &str,
    store: &HistoryStore,
    metrics: &[Metric],
    range: HistoryRange,
    retention: &HistoryRetention,
    now: i64,
) -> Result<HistorySeries> {
    let (from, to) = range.bounds(now)?;
    let resolution = pick_resolution(from, to, now, retention);
    let mut series = Vec::new();
    for m in metrics {
        let (title, unit) = m.title_unit();
        for (label, buckets) in store.buckets(m.as_str(), resolution, from, to).await? {
            series.push(Series {
                metric: *m,
                label,
                title: title.to_string(),
                unit: unit.to_string(),
                points: buckets
                    .into_iter()
                    .filter(|b| b.n > 0)
                    .map(|b| SeriesPoint {
                        t: b.ts,
                        value: b.sum / b.n as f64,
                        min: b.min,
                        max: b.max,
                    })
                    .collect(),
            });
        }
    }
    Ok(HistorySeries {
        project: project.to_string(),
        from,
        to,
        resolution,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_the_range() {
        let r = HistoryRetention::default();
        let now = 1_000 * DAY_MS;
        let pick = |range: HistoryRange| {
            let (f, t) = range.bounds(now).unwrap();
            pick_resolution(f, t, now, &r)
        };
        assert_eq!(pick(HistoryRange::Last15m), Resolution::Raw);
        assert_eq!(pick(HistoryRange::Last1h), Resolution::Raw);
        assert_eq!(pick(HistoryRange::Last24h), Resolution::Minute);
        assert_eq!(pick(HistoryRange::Last7d), Resolution::Minute);
        assert_eq!(pick(HistoryRange::Last30d), Resolution::Hour);
        // An hour long ago: raw points are gone, minutes remain.
        let old = HistoryRange::Between {
            from: now - 3 * DAY_MS,
            to: now - 3 * DAY_MS + HOUR_MS,
        };
        assert_eq!(pick(old), Resolution::Minute);
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()).unwrap(), m);
        }
    }
}
