//! Availability: each sampling pass first probes the server (a session from the pool and
//! `SELECT 1`) and records up or down with the latency; availability over 24 h, 7 d and 30 d is
//! the share of probes that reached the server, against the 99.9 % target. It speaks only of
//! the time pgsteward was watching: the report says how many probes it rests on.

use std::time::{Duration, Instant};

use serde::Serialize;
use ts_rs::TS;

use super::history::{HistoryRetention, HistoryStore, MetricRow, DAY_MS, HOUR_MS};
use super::series::{pick_resolution, Metric};
use crate::conn::Pool;
use crate::error::{Error, Result};
use crate::sql;

/// The availability target (REL-001).
pub const TARGET: f64 = 0.999;

/// Outcome of one probe.
#[derive(Debug, Clone)]
pub struct Probe {
    pub up: bool,
    pub latency_ms: Option<f64>,
    pub error: Option<Error>,
}

impl Probe {
    pub fn rows(&self) -> Vec<MetricRow> {
        let mut rows = vec![MetricRow {
            metric: Metric::Up.as_str().into(),
            label: String::new(),
            value: if self.up { 1.0 } else { 0.0 },
        }];
        if let Some(ms) = self.latency_ms {
            rows.push(MetricRow {
                metric: Metric::ProbeLatencyMs.as_str().into(),
                label: String::new(),
                value: ms,
            });
        }
        rows
    }
}

/// Reach the server through the pool within `timeout`.
pub async fn probe(pool: &Pool, timeout: Duration) -> Probe {
    let started = Instant::now();
    let once = || async {
        let mut conn = pool.acquire().await?;
        sqlx::query(sql!("SELECT 1"))
            .execute(&mut *conn)
            .await
            .inspect_err(|_| conn.discard())?;
        Ok::<(), Error>(())
    };
    // Idle pooled sessions can be dead after a server restart: drop them and try once more,
    // which tells a restarted server from one that is down.
    let attempt = async {
        match once().await {
            Err(e) if super::collect::session_gone(&e) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), pool.close_idle()).await;
                once().await
            }
            r => r,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Probe {
            up: true,
            latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            error: None,
        },
        Ok(Err(e)) => Probe {
            up: false,
            latency_ms: None,
            error: Some(e),
        },
        Err(_) => Probe {
            up: false,
            latency_ms: None,
            error: Some(Error::new(
                crate::error::ErrorCode::ConnectFailed,
                format!("the server did not answer within {} s", timeout.as_secs()),
            )),
        },
    }
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct AvailabilityWindow {
    /// "24h", "7d" or "30d".
    pub window: String,
    /// Share of probes that reached the server; `None` without probes.
    pub ratio: Option<f64>,
    #[ts(type = "number")]
    pub probes: i64,
    #[ts(type = "number")]
    pub down: i64,
    pub meets_target: Option<bool>,
    /// Mean probe latency over the window.
    pub mean_latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct AvailabilityReport {
    pub project: String,
    pub target: f64,
    pub windows: Vec<AvailabilityWindow>,
}

/// Availability over the last 24 h, 7 d and 30 d from the stored probes.
pub async fn report(
    project: &str,
    store: &HistoryStore,
    retention: &HistoryRetention,
    now: i64,
) -> Result<AvailabilityReport> {
    let mut windows = Vec::new();
    for (label, span) in [
        ("24h", 24 * HOUR_MS),
        ("7d", 7 * DAY_MS),
        ("30d", 30 * DAY_MS),
    ] {
        let from = now - span;
        let res = pick_resolution(from, now, now, retention);
        let sum = |metric: Metric| async move {
            let b = store.buckets(metric.as_str(), res, from, now + 1).await?;
            let (s, n) = b
                .values()
                .flatten()
                .fold((0.0, 0i64), |(s, n), x| (s + x.sum, n + x.n));
            Ok::<(f64, i64), Error>((s, n))
        };
        let (ups, probes) = sum(Metric::Up).await?;
        let (lat, lat_n) = sum(Metric::ProbeLatencyMs).await?;
        let ratio = (probes > 0).then(|| ups / probes as f64);
        windows.push(AvailabilityWindow {
            window: label.into(),
            ratio,
            probes,
            down: probes - ups.round() as i64,
            meets_target: ratio.map(|r| r >= TARGET),
            mean_latency_ms: (lat_n > 0).then(|| lat / lat_n as f64),
        });
    }
    Ok(AvailabilityReport {
        project: project.into(),
        target: TARGET,
        windows,
    })
}
