//! The two remedies PostgreSQL offers for a session: cancel its query, or terminate it.
//!
//! They go through `pg_cancel_backend` / `pg_terminate_backend` with the pid as a bound
//! parameter. pgsteward refuses to signal the session it is speaking through, reports whether
//! the server delivered the signal (it answers false when no such backend exists), and turns the
//! server's refusal into `permission_denied` naming the privilege that is missing.

use serde::Serialize;
use ts_rs::TS;

use crate::conn::PooledConn;
use crate::error::{Error, ErrorCode, Result};
use crate::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Cancel the running query; the session stays.
    Cancel,
    /// End the session; its open transaction is rolled back.
    Terminate,
}

impl SignalKind {
    fn verb(self) -> &'static str {
        match self {
            SignalKind::Cancel => "cancel the query of",
            SignalKind::Terminate => "terminate",
        }
    }
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct SignalOutcome {
    pub pid: i32,
    pub action: SignalKind,
    /// The server sent the signal (false: no backend with that pid, e.g. it ended already).
    pub signalled: bool,
    pub message: String,
}

/// Cancel or terminate backend `pid`.
pub async fn signal(conn: &mut PooledConn, pid: i32, kind: SignalKind) -> Result<SignalOutcome> {
    if pid <= 0 {
        return Err(Error::invalid_input(format!(
            "{pid} is not a backend process id."
        )));
    }
    let own: i32 = sqlx::query_scalar(sql!("SELECT pg_backend_pid()"))
        .fetch_one(&mut **conn)
        .await?;
    if pid == own {
        return Err(Error::invalid_input(format!(
            "Session {pid} is the one pgsteward is using for this request; it will not {} itself.",
            kind.verb()
        )));
    }
    let q = match kind {
        SignalKind::Cancel => sql!("SELECT pg_cancel_backend($1)"),
        SignalKind::Terminate => sql!("SELECT pg_terminate_backend($1)"),
    };
    let sent: Option<bool> = sqlx::query_scalar(q)
        .bind(pid)
        .fetch_one(&mut **conn)
        .await
        .map_err(|e| {
            let e = Error::from(e);
            if e.code == ErrorCode::PermissionDenied {
                Error::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "The role cannot {} session {pid}. Signalling another role's session needs membership in pg_signal_backend \
                         (GRANT pg_signal_backend TO ...), and sessions of a superuser can only be signalled by a superuser. \
                         The server said: {}",
                        kind.verb(),
                        e.message.trim_start_matches("The role lacks a privilege this needs: ")
                    ),
                )
                .with_sqlstate(e.sqlstate)
            } else {
                e
            }
        })?;
    let signalled = sent.unwrap_or(false);
    let message = match (signalled, kind) {
        (true, SignalKind::Cancel) => format!("Cancel request sent to session {pid}."),
        (true, SignalKind::Terminate) => format!("Session {pid} was told to terminate."),
        (false, _) => format!("No server process has pid {pid}; it may have ended already."),
    };
    Ok(SignalOutcome {
        pid,
        action: kind,
        signalled,
        message,
    })
}
