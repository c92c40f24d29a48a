//! The monitoring loop's front door: a sample is an availability probe, then the collectors,
//! then the alert rules; plus the availability and alert reports and their settings.

use std::collections::HashMap;
use std::time::Duration;

use super::Steward;
use crate::error::Result;
use crate::monitor::alerts::{AlertConfig, AlertEngine, AlertRule, AlertWrite, AlertsReport};
use crate::monitor::availability::{self, AvailabilityReport};
use crate::monitor::exporter::ProjectView;
use crate::monitor::history::{HistoryStore, DAY_MS, HOUR_MS};
use crate::monitor::{sampler, SampleReport};

/// How far back a failed maintenance action keeps the maintenance alert firing.
const MAINTENANCE_FAILURE_WINDOW_MS: i64 = DAY_MS;

/// How long the availability probe waits for the server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Steward {
    /// Take one history sample of the project's server now and store it: probe (up/down and
    /// latency), collectors, then alert rules. When the server is down the probe is stored and
    /// the error returned.
    pub async fn sample_now(&self, name: &str) -> Result<SampleReport> {
        let store = self.history_store(name).await?;
        let pool = self.pool(name)?;
        let probe = availability::probe(&pool, PROBE_TIMEOUT).await;
        let now = chrono::Utc::now().timestamp_millis();
        store.write_points(now, &probe.rows()).await?;
        self.probes
            .lock()
            .unwrap()
            .insert(name.to_string(), (probe.up, probe.latency_ms));
        if let Some(e) = probe.error {
            let values = HashMap::from([(AlertRule::ServerDown, 0.0)]);
            self.evaluate_alerts(name, &store, values, now).await?;
            return Err(e);
        }
        let mut report = sampler::sample(name, &pool, &store, &self.history_opts).await?;
        let values = self.alert_values(name, &store, &report).await?;
        report.alerts = self
            .evaluate_alerts(name, &store, values, report.ts)
            .await?;
        self.latest
            .lock()
            .unwrap()
            .insert(name.to_string(), report.clone());
        Ok(report)
    }

    /// The latest sample taken in this process, if any.
    pub fn latest_sample(&self, name: &str) -> Option<SampleReport> {
        self.latest.lock().unwrap().get(name).cloned()
    }

    /// The latest probe in this process: reached or not, and its latency.
    pub fn latest_probe(&self, name: &str) -> Option<(bool, Option<f64>)> {
        self.probes.lock().unwrap().get(name).copied()
    }

    /// What the exporters (Prometheus and OTLP) know of the project now.
    pub fn project_view(&self, name: &str) -> ProjectView {
        ProjectView {
            project: name.to_string(),
            sample: self.latest_sample(name),
            probe: self.latest_probe(name),
            pool: self.pool_metrics(name).ok(),
            firing: self.alerts_firing(name),
            otlp_failures: self.otlp_failures(name),
        }
    }

    /// Rules firing for the project, as this process last evaluated them.
    pub fn alerts_firing(&self, name: &str) -> Vec<AlertRule> {
        self.alert_engines
            .lock()
            .unwrap()
            .get(name)
            .map(|e| e.firing())
            .unwrap_or_default()
    }

    /// What each rule looks at, from this sample.
    async fn alert_values(
        &self,
        name: &str,
        store: &HistoryStore,
        report: &SampleReport,
    ) -> Result<HashMap<AlertRule, f64>> {
        let mut v = HashMap::from([(AlertRule::ServerDown, 1.0)]);
        let hour_ago = report.ts - HOUR_MS;
        let slow = store.events(hour_ago, report.ts + 1, 10_000).await?.len();
        v.insert(AlertRule::SlowQueries, slow as f64);
        if let Some(ms) = report.metric("statement_mean_ms", "") {
            v.insert(AlertRule::StatementLatency, ms);
        }
        if let Some(r) = report.metric("cache_hit_ratio", "") {
            v.insert(AlertRule::CacheHitRatio, r);
        }
        if let Ok(m) = self.pool_metrics(name) {
            let cap = (m.size + m.max_overflow).max(1) as f64;
            v.insert(AlertRule::PoolUtilisation, m.in_use as f64 / cap);
        }
        v.insert(
            AlertRule::BackupFailures,
            self.consecutive_backup_failures(name)? as f64,
        );
        let failed = crate::maintain::history::unresolved_failures(
            store.sqlite(),
            report.ts - MAINTENANCE_FAILURE_WINDOW_MS,
        )
        .await?;
        v.insert(AlertRule::MaintenanceFailures, failed as f64);
        Ok(v)
    }

    async fn evaluate_alerts(
        &self,
        name: &str,
        store: &HistoryStore,
        values: HashMap<AlertRule, f64>,
        now: i64,
    ) -> Result<Vec<crate::monitor::alerts::AlertTransition>> {
        let cfg = AlertConfig::load(&self.store.project_dir(name)?)?;
        if !self.alert_engines.lock().unwrap().contains_key(name) {
            let open = store.alerts(now, now).await?;
            self.alert_engines
                .lock()
                .unwrap()
                .entry(name.to_string())
                .or_insert_with(|| AlertEngine::resume(&open));
        }
        let (writes, transitions) = {
            let mut engines = self.alert_engines.lock().unwrap();
            let engine = engines.get_mut(name).expect("inserted above");
            engine.evaluate(&cfg, &values, now)
        };
        for w in writes {
            match w {
                AlertWrite::Open { rule, record } => {
                    let id = store.alert_open(&record).await?;
                    if let Some(e) = self.alert_engines.lock().unwrap().get_mut(name) {
                        e.opened(rule, id);
                    }
                }
                AlertWrite::Close {
                    id,
                    ended_at,
                    worst,
                    ..
                } => {
                    if id >= 0 {
                        store.alert_close(id, ended_at, worst).await?;
                    }
                }
            }
        }
        for t in &transitions {
            tracing::info!(
                project = name,
                rule = t.rule.as_str(),
                firing = t.firing,
                "{}",
                t.message
            );
        }
        Ok(transitions)
    }

    /// Availability over 24 h, 7 d and 30 d from the stored probes.
    pub async fn availability(&self, name: &str) -> Result<AvailabilityReport> {
        let store = self.history_store(name).await?;
        availability::report(
            name,
            &store,
            &self.history_opts.retention,
            chrono::Utc::now().timestamp_millis(),
        )
        .await
    }

    /// Rules, firing alerts and the last 7 days of alerts.
    pub async fn alerts(&self, name: &str) -> Result<AlertsReport> {
        let store = self.history_store(name).await?;
        let cfg = AlertConfig::load(&self.store.project_dir(name)?)?;
        let now = chrono::Utc::now().timestamp_millis();
        let history = store.alerts(now - 7 * DAY_MS, now + 1).await?;
        Ok(AlertsReport {
            project: name.to_string(),
            rules: cfg.rules,
            firing: history
                .iter()
                .filter(|a| a.ended_at.is_none())
                .cloned()
                .collect(),
            history,
        })
    }

    /// Change one rule of a project: its threshold and/or whether it is enabled.
    pub fn alerts_configure(
        &self,
        name: &str,
        rule: AlertRule,
        threshold: Option<f64>,
        enabled: Option<bool>,
    ) -> Result<AlertConfig> {
        self.store.get(name)?;
        let dir = self.store.project_dir(name)?;
        let mut cfg = AlertConfig::load(&dir)?;
        cfg.set(rule, threshold, enabled)?;
        cfg.save(&dir)?;
        Ok(cfg)
    }

    /// What the monitoring history saw over the last 7 days, for the tuning advisor; `None`
    /// when the project has no history yet.
    pub(crate) async fn recent_evidence(&self, name: &str) -> Option<crate::tune::advisor::Recent> {
        use crate::monitor::{HistoryRange, Metric};
        let h = self
            .history_series(
                name,
                &[
                    Metric::CacheHitRatio,
                    Metric::TempBytesPerS,
                    Metric::CheckpointsTimedPerS,
                    Metric::CheckpointsRequestedPerS,
                    Metric::Connections,
                ],
                HistoryRange::Last7d,
            )
            .await
            .ok()?;
        let mean = |m: Metric, label: &str| {
            let pts: Vec<f64> = h
                .series
                .iter()
                .filter(|s| s.metric == m && s.label == label)
                .flat_map(|s| s.points.iter().map(|p| p.value))
                .collect();
            (!pts.is_empty()).then(|| pts.iter().sum::<f64>() / pts.len() as f64)
        };
        let first = h
            .series
            .iter()
            .flat_map(|s| s.points.first().map(|p| p.t))
            .min()?;
        let peak = h
            .series
            .iter()
            .filter(|s| s.metric == Metric::Connections && s.label == "total")
            .flat_map(|s| s.points.iter().map(|p| p.max))
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        Some(crate::tune::advisor::Recent {
            days: ((h.to - first) as f64 / DAY_MS as f64).min(7.0),
            cache_hit_ratio: mean(Metric::CacheHitRatio, ""),
            temp_bytes_per_s: mean(Metric::TempBytesPerS, ""),
            checkpoints_timed_per_s: mean(Metric::CheckpointsTimedPerS, ""),
            checkpoints_requested_per_s: mean(Metric::CheckpointsRequestedPerS, ""),
            peak_connections: peak,
        })
    }
}
