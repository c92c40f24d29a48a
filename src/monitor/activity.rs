//! Live sessions: who is connected, what each one runs, what it waits for and who blocks it.
//!
//! The first question in an incident is "what is the server doing right now". This reads
//! `pg_stat_activity` once, with the filters applied in SQL as bound parameters, and flags what a
//! DBA looks for first: work running longer than a threshold, sessions idle inside an open
//! transaction (they hold locks and stop vacuum), and sessions waiting on a lock, with the pids
//! that block them from `pg_blocking_pids`. The session pgsteward reads through is listed like
//! any other but never counted as long-running. Needs only `pg_monitor` (without it, other
//! roles' queries read as `<insufficient privilege>`).

use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use crate::conn::PooledConn;
use crate::error::{Error, Result};
use crate::sql;

/// Characters of query text kept per session.
pub const QUERY_TEXT_LIMIT: i32 = 2048;
/// Sessions returned when the filter does not say.
pub const DEFAULT_LIMIT: u32 = 500;
pub const MAX_LIMIT: u32 = 10_000;
/// Work running longer than this is flagged when the filter does not say.
pub const DEFAULT_LONG_RUNNING_SECONDS: f64 = 60.0;

/// The values `pg_stat_activity.state` takes.
pub const STATES: &[&str] = &[
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

/// Which sessions to list. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
#[ts(optional_fields)]
pub struct ActivityFilter {
    /// A `pg_stat_activity` state; `idle-in-transaction` and `idle_in_transaction` are accepted.
    pub state: Option<String>,
    pub user: Option<String>,
    pub application: Option<String>,
    pub database: Option<String>,
    /// Only sessions whose open transaction or running query has lasted at least this long.
    /// Sessions idle outside a transaction have no such duration and are left out.
    pub min_duration_seconds: Option<f64>,
    /// Flag work running longer than this (default 60 s).
    pub long_running_seconds: Option<f64>,
    /// At most this many sessions (default 500).
    pub limit: Option<u32>,
}

/// Normalise a state the way people type it; `None` when it is not a state PostgreSQL has.
pub fn normalize_state(s: &str) -> Option<String> {
    let n = s.trim().to_ascii_lowercase().replace(['-', '_'], " ");
    STATES.contains(&n.as_str()).then_some(n)
}

fn check_seconds(what: &str, v: Option<f64>) -> Result<Option<f64>> {
    match v {
        Some(s) if !s.is_finite() || s < 0.0 => Err(Error::invalid_input(format!(
            "{what} must be a number of seconds, 0 or more."
        ))),
        other => Ok(other),
    }
}

/// One session.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Session {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub database: Option<String>,
    /// Client address; `None` for a Unix socket or a background process.
    pub client_addr: Option<String>,
    /// "client backend", "autovacuum worker", "walsender"...
    pub backend_type: Option<String>,
    pub state: Option<String>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    /// Current or last query, at most [`QUERY_TEXT_LIMIT`] characters.
    pub query: Option<String>,
    pub query_truncated: bool,
    pub backend_seconds: Option<f64>,
    /// Age of the open transaction.
    pub xact_seconds: Option<f64>,
    /// Time since the current (or last) query started.
    pub query_seconds: Option<f64>,
    /// Time since the state last changed.
    pub state_seconds: Option<f64>,
    /// Sessions holding the lock this one waits for.
    pub blocked_by: Vec<i32>,
    /// Running a query or holding a transaction open longer than the threshold.
    pub long_running: bool,
    pub idle_in_transaction: bool,
    /// The session pgsteward read this list through.
    pub own_session: bool,
    /// A session of pgsteward (its application name), this process's or another's.
    pub pgsteward: bool,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct ActivityReport {
    pub sessions: Vec<Session>,
    /// More sessions matched than the limit allowed.
    pub truncated: bool,
    pub long_running_seconds: f64,
    /// Backend pid of the session that read the list.
    pub own_pid: i32,
    pub sampled_at: String,
}

/// List sessions. One statement; filters are bound parameters.
pub async fn list(conn: &mut PooledConn, filter: &ActivityFilter) -> Result<ActivityReport> {
    let state = match filter.state.as_deref().filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(s) => Some(normalize_state(s).ok_or_else(|| {
            Error::invalid_input(format!(
                "\"{s}\" is not a session state; use one of: {}.",
                STATES.join(", ")
            ))
        })?),
    };
    let min_duration = check_seconds("The minimum duration", filter.min_duration_seconds)?;
    let threshold = check_seconds("The long-running threshold", filter.long_running_seconds)?
        .unwrap_or(DEFAULT_LONG_RUNNING_SECONDS);
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::invalid_input(format!(
            "The limit must be between 1 and {MAX_LIMIT}."
        )));
    }
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let rows = sqlx::query(sql!(
        "SELECT a.pid, a.usename::text AS usename, a.application_name, a.datname::text AS datname,
                host(a.client_addr) AS client_addr, a.backend_type, a.state,
                a.wait_event_type, a.wait_event,
                left(a.query, $7) AS query, coalesce(length(a.query) > $7, false) AS query_truncated,
                extract(epoch FROM clock_timestamp() - a.backend_start)::float8 AS backend_s,
                extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS xact_s,
                extract(epoch FROM clock_timestamp() - a.query_start)::float8 AS query_s,
                extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS state_s,
                CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid)
                     ELSE '{}'::int4[] END AS blocked_by,
                a.pid = pg_backend_pid() AS own
           FROM pg_stat_activity a
          WHERE ($1::text IS NULL OR a.state = $1)
            AND ($2::text IS NULL OR a.usename::text = $2)
            AND ($3::text IS NULL OR a.application_name = $3)
            AND ($4::text IS NULL OR a.datname::text = $4)
            AND ($5::float8 IS NULL OR
                 greatest(extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
                          CASE WHEN a.state = 'active'
                               THEN extract(epoch FROM clock_timestamp() - a.query_start)::float8 END) >= $5)
          ORDER BY (a.state IS NULL OR a.state = 'idle'),
                   coalesce(a.xact_start, a.query_start, a.backend_start) NULLS LAST, a.pid
          LIMIT $6"
    ))
    .bind(state)
    .bind(nonempty(&filter.user))
    .bind(nonempty(&filter.application))
    .bind(nonempty(&filter.database))
    .bind(min_duration)
    .bind(limit as i64 + 1)
    .bind(QUERY_TEXT_LIMIT)
    .fetch_all(&mut **conn)
    .await?;
    let own_pid: i32 = sqlx::query_scalar(sql!("SELECT pg_backend_pid()"))
        .fetch_one(&mut **conn)
        .await?;
    let truncated = rows.len() > limit as usize;
    let sessions = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let state: Option<String> = r.get("state");
            let backend_type: Option<String> = r.get("backend_type");
            let application: Option<String> = r.get("application_name");
            let xact_s: Option<f64> = r.get("xact_s");
            let query_s: Option<f64> = r.get("query_s");
            let own: bool = r.get("own");
            let active = state.as_deref() == Some("active");
            let client = backend_type.as_deref() == Some("client backend");
            let long_running = !own
                && client
                && (xact_s.is_some_and(|s| s > threshold)
                    || (active && query_s.is_some_and(|s| s > threshold)));
            Session {
                pid: r.get("pid"),
                user: r.get("usename"),
                pgsteward: application.as_deref() == Some(crate::conn::session::APPLICATION_NAME),
                application: application.filter(|a| !a.is_empty()),
                database: r.get("datname"),
                client_addr: r.get("client_addr"),
                idle_in_transaction: state
                    .as_deref()
                    .is_some_and(|s| s.starts_with("idle in transaction")),
                state,
                backend_type,
                wait_event_type: r.get("wait_event_type"),
                wait_event: r.get("wait_event"),
                query: r.get("query"),
                query_truncated: r.get("query_truncated"),
                backend_seconds: r.get("backend_s"),
                xact_seconds: xact_s,
                query_seconds: query_s,
                state_seconds: r.get("state_s"),
                blocked_by: r
                    .get::<Option<Vec<i32>>, _>("blocked_by")
                    .unwrap_or_default(),
                long_running,
                own_session: own,
            }
        })
        .collect();
    Ok(ActivityReport {
        sessions,
        truncated,
        long_running_seconds: threshold,
        own_pid,
        sampled_at: chrono::Utc::now().to_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_normalised() {
        assert_eq!(
            normalize_state("idle-in-transaction").as_deref(),
            Some("idle in transaction")
        );
        assert_eq!(
            normalize_state(" Idle_In_Transaction ").as_deref(),
            Some("idle in transaction")
        );
        assert_eq!(normalize_state("ACTIVE").as_deref(), Some("active"));
        assert_eq!(normalize_state("running"), None);
        assert_eq!(normalize_state("active' OR true --"), None);
    }

    #[test]
    fn filters_deserialize_from_partial_json() {
        let f: ActivityFilter = serde_json::from_str(r#"{"state": "active"}"#).unwrap();
        assert_eq!(f.state.as_deref(), Some("active"));
        assert_eq!(f.limit, None);
        assert!(check_seconds("x", Some(-1.0)).is_err());
        assert!(check_seconds("x", Some(f64::NAN)).is_err());
        assert_eq!(check_seconds("x", Some(2.5)).unwrap(), Some(2.5));
    }
}
