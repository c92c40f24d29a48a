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

/// One chart of the history view, rendered by the core.
#[derive(Debug, Clone, Serialize, TS)]
pub struct HistoryChart {
    /// Stable name for the UI: "tps", "connections", "cache_hit_ratio", ...
    pub id: String,
    pub title: String,
    /// What the reader must know to read it right (e.g. a mean is not a percentile).
    pub note: Option<String>,
    /// Points drawn over all its lines; 0 when the range holds no data for it.
    pub points: u32,
    pub svg: String,
}

/// The charts of the dashboard over a time range.
#[derive(Debug, Clone, Serialize, TS)]
pub struct HistoryCharts {
    pub project: String,
    #[ts(type = "number")]
    pub from: i64,
    #[ts(type = "number")]
    pub to: i64,
    pub resolution: Resolution,
    /// Points over all charts; 0 when there is no history for the range yet.
    pub points: u32,
    pub charts: Vec<HistoryChart>,
}

/// The metrics the history charts draw.
pub const CHART_METRICS: [Metric; 17] = [
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
    Metric::DatabaseSizeBytes,
    Metric::StatementMeanMs,
];

/// Cache hit ratio below this is worth a look.
pub const CACHE_HIT_TARGET: f64 = 0.9;

/// Which lines a chart takes from the series.
enum Lines {
    /// One line per label of the metric (standbys, databases...), except the ones listed.
    PerLabel(Metric, &'static [&'static str]),
    /// Server-wide metrics, each a line with a short name.
    Each(&'static [(Metric, &'static str)]),
}

struct Panel {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    lines: Lines,
    note: Option<&'static str>,
}

const PANELS: [Panel; 13] = [
    Panel {
        id: "tps",
        title: "Transactions per second",
        unit: "tx/s",
        lines: Lines::Each(&[(Metric::Tps, "tps")]),
        note: None,
    },
    Panel {
        id: "commits_rollbacks",
        title: "Commits and rollbacks per second",
        unit: "/s",
        lines: Lines::Each(&[
            (Metric::CommitsPerS, "commits"),
            (Metric::RollbacksPerS, "rollbacks"),
        ]),
        note: None,
    },
    Panel {
        id: "connections",
        title: "Connections by state",
        unit: "sessions",
        lines: Lines::PerLabel(Metric::Connections, &["total"]),
        note: Some("Dashed line: max_connections."),
    },
    Panel {
        id: "cache_hit_ratio",
        title: "Cache hit ratio",
        unit: "%",
        lines: Lines::Each(&[(Metric::CacheHitRatio, "hit ratio")]),
        note: Some("Dashed line: the 90 % target; below it, reads often go to disk."),
    },
    Panel {
        id: "tuples",
        title: "Rows read and written per second",
        unit: "rows/s",
        lines: Lines::Each(&[
            (Metric::TuplesReadPerS, "read"),
            (Metric::TuplesWrittenPerS, "written"),
        ]),
        note: None,
    },
    Panel {
        id: "temp_files",
        title: "Temporary files per second",
        unit: "files/s",
        lines: Lines::Each(&[(Metric::TempFilesPerS, "files")]),
        note: None,
    },
    Panel {
        id: "temp_bytes",
        title: "Temporary bytes per second",
        unit: "B/s",
        lines: Lines::Each(&[(Metric::TempBytesPerS, "bytes")]),
        note: None,
    },
    Panel {
        id: "deadlocks",
        title: "Deadlocks per second",
        unit: "/s",
        lines: Lines::Each(&[(Metric::DeadlocksPerS, "deadlocks")]),
        note: None,
    },
    Panel {
        id: "checkpoints",
        title: "Checkpoints per second, timed vs requested",
        unit: "/s",
        lines: Lines::Each(&[
            (Metric::CheckpointsTimedPerS, "timed"),
            (Metric::CheckpointsRequestedPerS, "requested"),
        ]),
        note: Some("Many requested checkpoints usually mean max_wal_size is too small."),
    },
    Panel {
        id: "wal",
        title: "WAL written per second",
        unit: "B/s",
        lines: Lines::Each(&[(Metric::WalBytesPerS, "WAL")]),
        note: None,
    },
    Panel {
        id: "replication_lag",
        title: "Replication replay lag per standby",
        unit: "s",
        lines: Lines::PerLabel(Metric::ReplicationLagSeconds, &[]),
        note: Some("No line when the server has no standby."),
    },
    Panel {
        id: "database_size",
        title: "Database size",
        unit: "B",
        lines: Lines::PerLabel(Metric::DatabaseSizeBytes, &[]),
        note: None,
    },
    Panel {
        id: "statement_mean",
        title: "Statement mean time (mean per interval, not a percentile)",
        unit: "ms",
        lines: Lines::Each(&[(Metric::StatementMeanMs, "mean")]),
        note: Some(
            "Mean over each interval, not a percentile: a few slow calls among many fast ones barely move it. From pg_stat_statements.",
        ),
    },
];

fn chart_points(s: &Series) -> Vec<(DateTime<Utc>, f64)> {
    let pct = s.metric == Metric::CacheHitRatio;
    s.points
        .iter()
        .filter_map(|p| {
            charts::utc_ms(p.t).map(|t| (t, if pct { p.value * 100.0 } else { p.value }))
        })
        .collect()
}

/// The dashboard's charts from series read with (at least) [`CHART_METRICS`].
pub fn history_charts(h: &HistorySeries) -> HistoryCharts {
    let x_range = charts::utc_ms(h.from).zip(charts::utc_ms(h.to));
    let find = |m: Metric| h.series.iter().filter(move |s| s.metric == m);
    let mut out = Vec::new();
    for p in &PANELS {
        let lines: Vec<charts::Line> = match &p.lines {
            Lines::PerLabel(m, skip) => find(*m)
                .filter(|s| !skip.contains(&s.label.as_str()))
                .map(|s| charts::Line {
                    label: s.label.clone(),
                    points: chart_points(s),
                })
                .collect(),
            Lines::Each(list) => list
                .iter()
                .filter_map(|(m, label)| {
                    find(*m).next().map(|s| charts::Line {
                        label: label.to_string(),
                        points: chart_points(s),
                    })
                })
                .collect(),
        };
        let mut marks = Vec::new();
        let mut y_range = None;
        match p.id {
            "connections" => {
                let max = find(Metric::MaxConnections)
                    .flat_map(|s| s.points.iter().map(|p| p.max))
                    .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
                if let Some(max) = max {
                    marks.push(("max_connections".to_string(), max));
                }
            }
            "cache_hit_ratio" => {
                marks.push(("target 90 %".to_string(), CACHE_HIT_TARGET * 100.0));
                y_range = Some((0.0, 100.0));
            }
            _ => {}
        }
        let chart = charts::TimeChart {
            title: p.title.to_string(),
            unit: p.unit.to_string(),
            lines,
            y_range,
            marks,
            x_range,
            empty_text: if p.id == "replication_lag" {
                "no standby in this range".into()
            } else {
                "no data in this range".into()
            },
        };
        let points: usize = chart.lines.iter().map(|l| l.points.len()).sum();
        out.push(HistoryChart {
            id: p.id.to_string(),
            title: p.title.to_string(),
            note: p.note.map(str::to_string),
            points: points as u32,
            svg: chart.svg(),
        });
    }
    HistoryCharts {
        project: h.project.clone(),
        from: h.from,
        to: h.to,
        resolution: h.resolution,
        points: out.iter().map(|c| c.points).sum(),
        charts: out,
    }
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
#[path = "series_tests.rs"]
mod tests;
