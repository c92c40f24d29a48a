//! The impact guard: while a maintenance statement runs, a second session watches what it does
//! to everyone else (sessions queued behind its locks, how busy the server is, how far replicas
//! fall behind) and says when a limit is crossed, so the executor cancels the statement and
//! records why. The limits come from the defaults, then the environment
//! (`MAINTENANCE_GUARD_*`), then the project's `maintenance.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use crate::conn::PooledConn;
use crate::error::{Error, Result};
use crate::sql;

/// Limits the guard enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct GuardLimits {
    /// Sessions allowed to wait on a lock the maintenance session holds ...
    pub max_waiting_sessions: u32,
    /// ... once they have waited this long, seconds.
    pub lock_wait_grace_seconds: f64,
    /// Active client sessions (besides maintenance) above which it stops; `None`: no limit.
    pub max_active_sessions: Option<u32>,
    /// Mean time the other active client statements have been running, milliseconds, above
    /// which it stops; `None`: no limit.
    #[ts(type = "number | null")]
    #[serde(default)]
    pub max_statement_latency_ms: Option<u64>,
    /// Replication lag (bytes of WAL not yet replayed on a standby) above which it stops.
    #[ts(type = "number | null")]
    pub max_replication_lag_bytes: Option<i64>,
    /// How often the guard (and progress) looks, milliseconds.
    #[ts(type = "number")]
    pub poll_interval_ms: u64,
}

impl Default for GuardLimits {
    fn default() -> Self {
        GuardLimits {
            max_waiting_sessions: 0,
            lock_wait_grace_seconds: 5.0,
            max_active_sessions: Some(100),
            max_statement_latency_ms: None,
            max_replication_lag_bytes: Some(1024 * 1024 * 1024),
            poll_interval_ms: 500,
        }
    }
}

/// What the guard saw.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    /// Sessions waiting on the maintenance session's locks longer than the grace period.
    pub waiting: i64,
    pub active: i64,
    /// Mean running time of the other active client statements, ms (`None`: there are none).
    pub latency_ms: Option<f64>,
    pub lag_bytes: Option<i64>,
}

/// The settings a project can override, by name, with the environment variable of each.
pub const SETTINGS: [(&str, &str); 5] = [
    ("max_lock_waiters", "MAINTENANCE_GUARD_MAX_LOCK_WAITERS"),
    ("lock_wait_seconds", "MAINTENANCE_GUARD_LOCK_WAIT_SECONDS"),
    (
        "max_active_sessions",
        "MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS",
    ),
    (
        "max_statement_latency_ms",
        "MAINTENANCE_GUARD_MAX_STATEMENT_LATENCY_MS",
    ),
    (
        "max_replication_lag",
        "MAINTENANCE_GUARD_MAX_REPLICATION_LAG",
    ),
];

fn off(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "off" | "none" | "unlimited"
    )
}

/// The error for a name that is not in [`SETTINGS`].
pub fn unknown(name: &str) -> Error {
    Error::invalid_input(format!(
        "\"{name}\" is not a guard limit; known: {}.",
        SETTINGS.map(|(n, _)| n).join(", ")
    ))
}

fn bad(key: &str, v: &str, what: &str) -> Error {
    Error::invalid_input(format!("{key} must be {what}, not \"{v}\"."))
}

/// Bytes from "1073741824", "512MB", "1 GB" (units of 1024, as PostgreSQL reads them).
fn parse_bytes(v: &str) -> Option<i64> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult: i64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl GuardLimits {
    /// Set one limit by its name in [`SETTINGS`] from text; `key` names the source in errors.
    /// "off" lifts the limits that can be lifted (active sessions, latency, replication lag).
    pub fn set(&mut self, name: &str, key: &str, v: &str) -> Result<()> {
        let t = v.trim();
        match name {
            "max_lock_waiters" => {
                self.max_waiting_sessions = t
                    .parse()
                    .map_err(|_| bad(key, v, "a whole number of sessions (0 or more)"))?
            }
            "lock_wait_seconds" => {
                self.lock_wait_grace_seconds = match t.parse::<f64>() {
                    Ok(s) if s.is_finite() && s >= 0.0 => s,
                    _ => return Err(bad(key, v, "a number of seconds (0 or more)")),
                }
            }
            "max_active_sessions" => {
                self.max_active_sessions = if off(t) {
                    None
                } else {
                    Some(
                        t.parse()
                            .map_err(|_| bad(key, v, "a whole number of sessions, or off"))?,
                    )
                }
            }
            "max_statement_latency_ms" => {
                self.max_statement_latency_ms = if off(t) {
                    None
                } else {
                    Some(
                        t.parse()
                            .map_err(|_| bad(key, v, "a whole number of milliseconds, or off"))?,
                    )
                }
            }
            "max_replication_lag" => {
                self.max_replication_lag_bytes = if off(t) {
                    None
                } else {
                    Some(parse_bytes(t).ok_or_else(|| {
                        bad(key, v, "a size such as 1073741824, 512MB or 1GB, or off")
                    })?)
                }
            }
            _ => return Err(unknown(name)),
        }
        Ok(())
    }

    /// Apply the `MAINTENANCE_GUARD_*` variables that are set.
    pub fn apply_vars(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        for (name, key) in SETTINGS {
            if let Some(v) = var(key).filter(|v| !v.trim().is_empty()) {
                self.set(name, key, &v)?;
            }
        }
        Ok(())
    }

    /// Apply a project's overrides.
    pub fn apply_project(&mut self, p: &ProjectGuard) -> Result<()> {
        for (name, v) in &p.guard {
            self.set(name, &format!("{name} in maintenance.json"), v)?;
        }
        Ok(())
    }
}

/// A project's own maintenance settings, stored as `maintenance.json` in its folder; they win
/// over the environment. Values are text in the syntax of the environment variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
pub struct ProjectGuard {
    /// Guard limits, by the names of [`SETTINGS`].
    #[serde(default)]
    pub guard: BTreeMap<String, String>,
    /// Window, time zone and thresholds, by the names of [`super::PLAN_SETTINGS`].
    #[serde(default)]
    pub plan: BTreeMap<String, String>,
}

impl ProjectGuard {
    const FILE: &'static str = "maintenance.json";

    pub fn load(project_dir: &Path) -> Result<ProjectGuard> {
        match std::fs::read(project_dir.join(Self::FILE)) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::invalid_input(format!("maintenance.json is not valid: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProjectGuard::default()),
            Err(e) => Err(Error::io("reading maintenance.json", e)),
        }
    }

    pub fn save(&self, project_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(project_dir)
            .map_err(|e| Error::io("creating the project folder", e))?;
        let tmp = project_dir.join("maintenance.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serializable"))
            .map_err(|e| Error::io("writing maintenance.json", e))?;
        std::fs::rename(&tmp, project_dir.join(Self::FILE))
            .map_err(|e| Error::io("writing maintenance.json", e))
    }
}

/// The reason to stop, if a limit is crossed.
pub fn verdict(o: &Observation, l: &GuardLimits) -> Option<String> {
    if o.waiting > l.max_waiting_sessions as i64 {
        return Some(format!(
            "{} session(s) waited more than {} s on a lock held by the maintenance statement (limit {}).",
            o.waiting, l.lock_wait_grace_seconds, l.max_waiting_sessions
        ));
    }
    if let Some(max) = l.max_active_sessions {
        if o.active > max as i64 {
            return Some(format!(
                "{} active sessions on the server (limit {max}).",
                o.active
            ));
        }
    }
    if let (Some(ms), Some(max)) = (o.latency_ms, l.max_statement_latency_ms) {
        if ms > max as f64 {
            return Some(format!(
                "The other active statements had been running {ms:.0} ms on average (limit {max} ms)."
            ));
        }
    }
    if let (Some(lag), Some(max)) = (o.lag_bytes, l.max_replication_lag_bytes) {
        if lag > max {
            return Some(format!(
                "Replication lag reached {lag} bytes (limit {max})."
            ));
        }
    }
    None
}

/// Look at the server on behalf of the maintenance session `pid`.
pub async fn observe(conn: &mut PooledConn, pid: i32, l: &GuardLimits) -> Result<Observation> {
    let r = sqlx::query(sql!(
        "SELECT (SELECT count(*) FROM pg_stat_activity a
                  WHERE a.wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(a.pid))
                    AND clock_timestamp() - a.state_change >= make_interval(secs => $2)) AS waiting,
                (SELECT count(*) FROM pg_stat_activity a
                  WHERE a.state = 'active' AND a.backend_type = 'client backend'
                    AND a.pid <> $1 AND a.pid <> pg_backend_pid()) AS active,
                (SELECT avg(extract(epoch FROM clock_timestamp() - a.query_start) * 1000)::float8
                   FROM pg_stat_activity a
                  WHERE a.state = 'active' AND a.backend_type = 'client backend'
                    AND a.pid <> $1 AND a.pid <> pg_backend_pid()) AS latency,
                CASE WHEN pg_is_in_recovery() THEN NULL
                     ELSE (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn))::int8
                             FROM pg_stat_replication r) END AS lag"
    ))
    .bind(pid)
    .bind(l.lock_wait_grace_seconds)
    .fetch_one(&mut **conn)
    .await?;
    Ok(Observation {
        waiting: r.get("waiting"),
        active: r.get("active"),
        latency_ms: r.get("latency"),
        lag_bytes: r.get("lag"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_stops_with_its_reason() {
        let l = GuardLimits::default();
        assert_eq!(verdict(&Observation::default(), &l), None);
        let w = verdict(
            &Observation {
                waiting: 1,
                ..Default::default()
            },
            &l,
        )
        .unwrap();
        assert!(w.contains("waited"), "{w}");
        let a = verdict(
            &Observation {
                active: 101,
                ..Default::default()
            },
            &l,
        )
        .unwrap();
        assert!(a.contains("active"), "{a}");
        let r = verdict(
            &Observation {
                lag_bytes: Some(2 << 30),
                ..Default::default()
            },
            &l,
        )
        .unwrap();
        assert!(r.contains("Replication lag"), "{r}");
        let off = GuardLimits {
            max_active_sessions: None,
            ..l
        };
        assert_eq!(
            verdict(
                &Observation {
                    active: 500,
                    ..Default::default()
                },
                &off
            ),
            None
        );
        let slow = Observation {
            latency_ms: Some(2500.0),
            ..Default::default()
        };
        assert_eq!(verdict(&slow, &l), None, "no latency limit by default");
        let tight = GuardLimits {
            max_statement_latency_ms: Some(2000),
            ..GuardLimits::default()
        };
        assert!(verdict(&slow, &tight).unwrap().contains("2500 ms"));
    }

    #[test]
    fn limits_from_variables() {
        let mut l = GuardLimits::default();
        l.apply_vars(|k| match k {
            "MAINTENANCE_GUARD_MAX_LOCK_WAITERS" => Some("2".into()),
            "MAINTENANCE_GUARD_LOCK_WAIT_SECONDS" => Some("1.5".into()),
            "MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS" => Some("off".into()),
            "MAINTENANCE_GUARD_MAX_STATEMENT_LATENCY_MS" => Some(" 800 ".into()),
            "MAINTENANCE_GUARD_MAX_REPLICATION_LAG" => Some("512MB".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(l.max_waiting_sessions, 2);
        assert_eq!(l.lock_wait_grace_seconds, 1.5);
        assert_eq!(l.max_active_sessions, None);
        assert_eq!(l.max_statement_latency_ms, Some(800));
        assert_eq!(l.max_replication_lag_bytes, Some(512 << 20));
        let mut d = GuardLimits::default();
        d.apply_vars(|_| None).unwrap();
        assert_eq!(d, GuardLimits::default());
        for (k, v) in [
            ("MAINTENANCE_GUARD_MAX_LOCK_WAITERS", "-1"),
            ("MAINTENANCE_GUARD_MAX_LOCK_WAITERS", "off"),
            ("MAINTENANCE_GUARD_LOCK_WAIT_SECONDS", "soon"),
            ("MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS", "1e3"),
            ("MAINTENANCE_GUARD_MAX_REPLICATION_LAG", "1 PB"),
        ] {
            let e = GuardLimits::default()
                .apply_vars(|x| (x == k).then(|| v.to_string()))
                .unwrap_err();
            assert!(e.message.contains(k), "{}", e.message);
        }
        assert_eq!(parse_bytes("1 GB"), Some(1 << 30));
        assert_eq!(parse_bytes("4096"), Some(4096));
    }

    #[test]
    fn project_overrides_win_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ProjectGuard::load(dir.path()).unwrap(),
            ProjectGuard::default()
        );
        let mut p = ProjectGuard::default();
        p.guard.insert("max_active_sessions".into(), "20".into());
        p.save(dir.path()).unwrap();
        let mut l = GuardLimits::default();
        l.apply_vars(|k| (k == "MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS").then(|| "50".into()))
            .unwrap();
        l.apply_project(&ProjectGuard::load(dir.path()).unwrap())
            .unwrap();
        assert_eq!(l.max_active_sessions, Some(20));
        p.guard.insert("nonsense".into(), "1".into());
        assert!(GuardLimits::default().apply_project(&p).is_err());
    }
}
