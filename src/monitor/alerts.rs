//! Alerts: rules with the product's default thresholds, evaluated after every sample, with
//! hysteresis so a value that hovers around a threshold does not spam.
//!
//! A rule fires after its condition holds for `for_samples` consecutive samples and resolves
//! only once the value is back past the clearing threshold (a margin inside the firing one)
//! for as many samples. Each firing is one record in the project's history, closed when it
//! resolves; the engine reports transitions so the app can notify.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{Error, Result};

/// The rules pgsteward knows. Thresholds are the defaults of the reference requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// The availability probe could not reach the server.
    ServerDown,
    /// More than 10 slow-query events in the last hour.
    SlowQueries,
    /// Mean statement time over the interval above 100 ms (a mean, not a percentile).
    StatementLatency,
    /// The app's pool for the project more than 80 % in use.
    PoolUtilisation,
    /// Cache hit ratio below 90 %.
    CacheHitRatio,
    /// More than 2 backups in a row failed.
    BackupFailures,
    /// A maintenance action failed within the last 24 hours and no maintenance run has fully
    /// succeeded since.
    MaintenanceFailures,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

impl AlertRule {
    pub const ALL: [AlertRule; 7] = [
        AlertRule::ServerDown,
        AlertRule::SlowQueries,
        AlertRule::StatementLatency,
        AlertRule::PoolUtilisation,
        AlertRule::CacheHitRatio,
        AlertRule::BackupFailures,
        AlertRule::MaintenanceFailures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::ServerDown => "server_down",
            AlertRule::SlowQueries => "slow_queries",
            AlertRule::StatementLatency => "statement_latency",
            AlertRule::PoolUtilisation => "pool_utilisation",
            AlertRule::CacheHitRatio => "cache_hit_ratio",
            AlertRule::BackupFailures => "backup_failures",
            AlertRule::MaintenanceFailures => "maintenance_failures",
        }
    }

    pub fn parse(s: &str) -> Result<AlertRule> {
        AlertRule::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "unknown alert rule {s:?}; known: {}",
                    AlertRule::ALL.map(|r| r.as_str()).join(", ")
                ))
            })
    }

    /// (direction, firing threshold, clearing threshold, samples needed, unit)
    pub fn defaults(self) -> (Direction, f64, f64, u32, &'static str) {
        match self {
            AlertRule::ServerDown => (Direction::Below, 1.0, 1.0, 2, "up"),
            AlertRule::SlowQueries => (Direction::Above, 10.0, 8.0, 1, "events/h"),
            AlertRule::StatementLatency => (Direction::Above, 100.0, 80.0, 2, "ms"),
            AlertRule::PoolUtilisation => (Direction::Above, 0.8, 0.7, 2, "ratio"),
            AlertRule::CacheHitRatio => (Direction::Below, 0.9, 0.92, 3, "ratio"),
            AlertRule::BackupFailures => (Direction::Above, 2.0, 0.5, 1, "failures"),
            AlertRule::MaintenanceFailures => (Direction::Above, 0.0, 0.0, 1, "failures"),
        }
    }

    fn describe(self, value: f64, threshold: f64) -> String {
        match self {
            AlertRule::ServerDown => "The server does not answer the availability probe.".into(),
            AlertRule::SlowQueries => format!(
                "{value:.0} slow queries in the last hour (alert above {threshold:.0})."
            ),
            AlertRule::StatementLatency => format!(
                "Statements took {value:.1} ms on average over the last interval (alert above {threshold:.0} ms; a mean, not a percentile)."
            ),
            AlertRule::PoolUtilisation => format!(
                "pgsteward's pool for this project is {:.0} % in use (alert above {:.0} %).",
                value * 100.0,
                threshold * 100.0
            ),
            AlertRule::CacheHitRatio => format!(
                "Cache hit ratio {:.1} % (alert below {:.0} %): the working set may not fit in shared_buffers.",
                value * 100.0,
                threshold * 100.0
            ),
            AlertRule::BackupFailures => format!(
                "The last {value:.0} backups failed (alert above {threshold:.0})."
            ),
            AlertRule::MaintenanceFailures => format!(
                "{value:.0} maintenance action(s) failed in the last 24 h and no maintenance run fully succeeded since (alert above {threshold:.0}); see `maintain history`."
            ),
        }
    }
}

/// A rule's settings for one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct RuleConfig {
    pub rule: AlertRule,
    pub enabled: bool,
    pub direction: Direction,
    pub threshold: f64,
    /// The value has to come back past this to resolve.
    pub clear: f64,
    pub for_samples: u32,
    pub unit: String,
}

impl RuleConfig {
    pub fn default_for(rule: AlertRule) -> Self {
        let (direction, threshold, clear, for_samples, unit) = rule.defaults();
        RuleConfig {
            rule,
            enabled: true,
            direction,
            threshold,
            clear,
            for_samples,
            unit: unit.into(),
        }
    }

    fn breaches(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v > self.threshold,
            Direction::Below => v < self.threshold,
        }
    }

    fn cleared(&self, v: f64) -> bool {
        match self.direction {
            Direction::Above => v <= self.clear,
            Direction::Below => v >= self.clear,
        }
    }

    fn worse(&self, a: f64, b: f64) -> f64 {
        match self.direction {
            Direction::Above => a.max(b),
            Direction::Below => a.min(b),
        }
    }
}

/// Per-project alert settings, stored as `alerts.json` in the project's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct AlertConfig {
    pub rules: Vec<RuleConfig>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            rules: AlertRule::ALL.map(RuleConfig::default_for).to_vec(),
        }
    }
}

impl AlertConfig {
    pub fn load(project_dir: &Path) -> Result<AlertConfig> {
        let mut cfg = AlertConfig::default();
        let saved: AlertConfig = match std::fs::read(project_dir.join("alerts.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::invalid_input(format!("alerts.json is not valid: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cfg),
            Err(e) => return Err(Error::io("reading alerts.json", e)),
        };
        for r in saved.rules {
            if let Some(slot) = cfg.rules.iter_mut().find(|x| x.rule == r.rule) {
                *slot = r;
            }
        }
        Ok(cfg)
    }

    pub fn save(&self, project_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(project_dir)
            .map_err(|e| Error::io("creating the project folder", e))?;
        let tmp = project_dir.join("alerts.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serializable"))
            .map_err(|e| Error::io("writing alerts.json", e))?;
        std::fs::rename(&tmp, project_dir.join("alerts.json"))
            .map_err(|e| Error::io("writing alerts.json", e))
    }

    /// Change one rule: a new firing threshold (the clearing one keeps its margin) and/or
    /// enabled state.
    pub fn set(
        &mut self,
        rule: AlertRule,
        threshold: Option<f64>,
        enabled: Option<bool>,
    ) -> Result<()> {
        let r = self
            .rules
            .iter_mut()
            .find(|r| r.rule == rule)
            .expect("every rule has a config");
        if let Some(t) = threshold {
            if !t.is_finite() || t < 0.0 {
                return Err(Error::invalid_input(format!(
                    "threshold for {} must be a number at least 0",
                    rule.as_str()
                )));
            }
            let (_, def_t, def_c, _, _) = rule.defaults();
            r.clear = if def_t == 0.0 { t } else { t * def_c / def_t };
            r.threshold = t;
        }
        if let Some(e) = enabled {
            r.enabled = e;
        }
        Ok(())
    }
}

/// One firing of a rule, as kept in the history.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct AlertRecord {
    #[ts(type = "number")]
    pub id: i64,
    pub rule: String,
    #[ts(type = "number")]
    pub started_at: i64,
    /// `None` while it is still firing.
    #[ts(type = "number | null")]
    pub ended_at: Option<i64>,
    /// The value that made it fire.
    pub value: f64,
    /// The worst value while it fired.
    pub worst: f64,
    pub threshold: f64,
    pub message: String,
}

/// A change the app should tell the user about.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct AlertTransition {
    pub rule: AlertRule,
    pub firing: bool,
    pub value: f64,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
struct RuleState {
    /// Consecutive samples in breach (while quiet) or cleared (while firing).
    streak: u32,
    /// Open alert: its record id and worst value.
    open: Option<(i64, f64)>,
}

/// Rule states of one project.
#[derive(Debug, Default)]
pub struct AlertEngine {
    states: HashMap<AlertRule, RuleState>,
}

/// What the engine wants written after one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertWrite {
    Open {
        rule: AlertRule,
        record: AlertRecord,
    },
    Close {
        rule: AlertRule,
        id: i64,
        ended_at: i64,
        worst: f64,
    },
}

impl AlertEngine {
    /// An engine that knows which alerts are open (from the history, after a restart).
    pub fn resume(open: &[AlertRecord]) -> AlertEngine {
        let mut e = AlertEngine::default();
        for a in open.iter().filter(|a| a.ended_at.is_none()) {
            if let Ok(rule) = AlertRule::parse(&a.rule) {
                e.states.entry(rule).or_default().open = Some((a.id, a.worst));
            }
        }
        e
    }

    /// The rules currently firing.
    pub fn firing(&self) -> Vec<AlertRule> {
        let mut v: Vec<AlertRule> = self
            .states
            .iter()
            .filter(|(_, s)| s.open.is_some())
            .map(|(r, _)| *r)
            .collect();
        v.sort_by_key(|r| r.as_str());
        v
    }

    /// Feed one sample's values (rules without a value this time keep their state). Returns the
    /// records to write and the transitions to announce. `assign` gives each new record its id
    /// once written; the caller calls [`AlertEngine::opened`] with it.
    pub fn evaluate(
        &mut self,
        cfg: &AlertConfig,
        values: &HashMap<AlertRule, f64>,
        now: i64,
    ) -> (Vec<AlertWrite>, Vec<AlertTransition>) {
        let mut writes = Vec::new();
        let mut transitions = Vec::new();
        for rc in &cfg.rules {
            let state = self.states.entry(rc.rule).or_default();
            if !rc.enabled {
                if let Some((id, worst)) = state.open.take() {
                    writes.push(AlertWrite::Close {
                        rule: rc.rule,
                        id,
                        ended_at: now,
                        worst,
                    });
                }
                state.streak = 0;
                continue;
            }
            let Some(&v) = values.get(&rc.rule) else {
                continue;
            };
            match state.open {
                None => {
                    state.streak = if rc.breaches(v) { state.streak + 1 } else { 0 };
                    if state.streak >= rc.for_samples.max(1) {
                        state.streak = 0;
                        let message = rc.rule.describe(v, rc.threshold);
                        state.open = Some((-1, v));
                        writes.push(AlertWrite::Open {
                            rule: rc.rule,
                            record: AlertRecord {
                                id: -1,
                                rule: rc.rule.as_str().into(),
                                started_at: now,
                                ended_at: None,
                                value: v,
                                worst: v,
                                threshold: rc.threshold,
                                message: message.clone(),
                            },
                        });
                        transitions.push(AlertTransition {
                            rule: rc.rule,
                            firing: true,
                            value: v,
                            message,
                        });
                    }
                }
                Some((id, worst)) => {
                    let worst = rc.worse(worst, v);
                    state.open = Some((id, worst));
                    state.streak = if rc.cleared(v) { state.streak + 1 } else { 0 };
                    if state.streak >= rc.for_samples.max(1) {
                        state.streak = 0;
                        state.open = None;
                        writes.push(AlertWrite::Close {
                            rule: rc.rule,
                            id,
                            ended_at: now,
                            worst,
                        });
                        transitions.push(AlertTransition {
                            rule: rc.rule,
                            firing: false,
                            value: v,
                            message: format!("Resolved: {}", rc.rule.describe(v, rc.threshold)),
                        });
                    }
                }
            }
        }
        (writes, transitions)
    }

    /// Tell the engine the id a newly opened record got.
    pub fn opened(&mut self, rule: AlertRule, id: i64) {
        if let Some(s) = self.states.get_mut(&rule) {
            if let Some((_, worst)) = s.open {
                s.open = Some((id, worst));
            }
        }
    }
}

/// What `pgsteward alerts` and the app show.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AlertsReport {
    pub project: String,
    pub rules: Vec<RuleConfig>,
    pub firing: Vec<AlertRecord>,
    /// Alerts of the last 7 days, newest first.
    pub history: Vec<AlertRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(e: &mut AlertEngine, cfg: &AlertConfig, rule: AlertRule, vals: &[f64]) -> Vec<bool> {
        let mut out = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let (writes, tr) = e.evaluate(cfg, &HashMap::from([(rule, *v)]), i as i64);
            for w in &writes {
                if let AlertWrite::Open { rule, .. } = w {
                    e.opened(*rule, 100 + i as i64);
                }
            }
            out.extend(tr.iter().map(|t| t.firing));
        }
        out
    }

    #[test]
    fn fires_once_then_clears_once_despite_flapping() {
        let cfg = AlertConfig::default();
        let mut e = AlertEngine::default();
        // Latency: two samples over 100 ms fire; hovering between 80 and 100 neither fires
        // again nor clears; two samples at or under 80 clear.
        let t = feed(
            &mut e,
            &cfg,
            AlertRule::StatementLatency,
            &[
                50.0, 120.0, 50.0, 130.0, 140.0, 99.0, 101.0, 95.0, 70.0, 120.0, 60.0, 75.0,
            ],
        );
        assert_eq!(t, vec![true, false]);
        assert!(e.firing().is_empty());
    }

    #[test]
    fn below_rules_and_disabled_rules() {
        let mut cfg = AlertConfig::default();
        let mut e = AlertEngine::default();
        let t = feed(
            &mut e,
            &cfg,
            AlertRule::CacheHitRatio,
            &[0.85, 0.85, 0.85, 0.91, 0.93, 0.95, 0.99],
        );
        assert_eq!(t, vec![true, false]);
        // Disabling a firing rule closes it without announcing a resolution.
        feed(&mut e, &cfg, AlertRule::CacheHitRatio, &[0.5, 0.5, 0.5]);
        assert_eq!(e.firing(), vec![AlertRule::CacheHitRatio]);
        cfg.set(AlertRule::CacheHitRatio, None, Some(false))
            .unwrap();
        let (w, tr) = e.evaluate(&cfg, &HashMap::new(), 99);
        assert!(matches!(w[..], [AlertWrite::Close { .. }]));
        assert!(tr.is_empty());
        assert!(e.firing().is_empty());
    }

    #[test]
    fn resumes_open_alerts_and_checks_settings() {
        let rec = AlertRecord {
            id: 7,
            rule: "server_down".into(),
            started_at: 0,
            ended_at: None,
            value: 0.0,
            worst: 0.0,
            threshold: 1.0,
            message: String::new(),
        };
        let mut e = AlertEngine::resume(&[rec]);
        assert_eq!(e.firing(), vec![AlertRule::ServerDown]);
        let cfg = AlertConfig::default();
        let (w, _) = e.evaluate(&cfg, &HashMap::from([(AlertRule::ServerDown, 1.0)]), 1);
        assert!(w.is_empty(), "one good probe is not enough");
        let (w, tr) = e.evaluate(&cfg, &HashMap::from([(AlertRule::ServerDown, 1.0)]), 2);
        assert!(matches!(w[..], [AlertWrite::Close { id: 7, .. }]));
        assert!(!tr[0].firing);
        let mut cfg = AlertConfig::default();
        assert!(cfg.set(AlertRule::SlowQueries, Some(-1.0), None).is_err());
        cfg.set(AlertRule::SlowQueries, Some(20.0), None).unwrap();
        let r = cfg
            .rules
            .iter()
            .find(|r| r.rule == AlertRule::SlowQueries)
            .unwrap();
        assert_eq!((r.threshold, r.clear), (20.0, 16.0));
        assert!(AlertRule::parse("nope").is_err());
    }
}
