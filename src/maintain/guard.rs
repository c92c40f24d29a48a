//! The impact guard: while a maintenance statement runs, a second session watches what it does
//! to everyone else (sessions queued behind its locks, how busy the server is, how far replicas
//! fall behind) and says when a limit is crossed, so the executor cancels the statement and
//! records why.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use crate::conn::PooledConn;
use crate::error::Result;
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
    pub lag_bytes: Option<i64>,
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
    }
}
