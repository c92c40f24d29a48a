//! Collectors of the server as a whole: checkpoints and background writes, WAL, replication
//! and slots, locks, and database sizes.

use sqlx::{PgConnection, Row};

use super::{reading, Collected, Collection};
use crate::error::Result;
use crate::sql;

pub(super) async fn checkpoints(
    c: &mut PgConnection,
    ctx: &Collection,
    out: &mut Collected,
) -> Result<()> {
    let r = if ctx.server_version_num >= 170000 {
        sqlx::query(sql!("SELECT /* pgsteward */ num_timed::float8 AS timed, num_requested::float8 AS req FROM pg_stat_checkpointer"
        ))
        .fetch_one(&mut *c)
        .await?
    } else {
        sqlx::query(sql!("SELECT /* pgsteward */ checkpoints_timed::float8 AS timed, checkpoints_req::float8 AS req FROM pg_stat_bgwriter"
        ))
        .fetch_one(&mut *c)
        .await?
    };
    out.counters
        .push(reading("checkpoints_timed", "", r.get("timed")));
    out.counters
        .push(reading("checkpoints_requested", "", r.get("req")));
    Ok(())
}

pub(super) async fn wal(c: &mut PgConnection, ctx: &Collection, out: &mut Collected) -> Result<()> {
    let lsn: Option<f64> = sqlx::query_scalar(sql!("SELECT /* pgsteward */ (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END
                 - '0/0'::pg_lsn)::float8"
    ))
    .fetch_one(&mut *c)
    .await?;
    if let Some(lsn) = lsn {
        out.counters.push(reading("wal_lsn", "", lsn));
    }
    if ctx.server_version_num >= 140000 {
        let r = sqlx::query(sql!("SELECT /* pgsteward */ wal_records::float8 AS records, wal_fpi::float8 AS fpi FROM pg_stat_wal"
        ))
        .fetch_one(&mut *c)
        .await?;
        out.counters
            .push(reading("wal_records", "", r.get("records")));
        out.counters.push(reading("wal_fpi", "", r.get("fpi")));
    }
    Ok(())
}

pub(super) async fn replication(c: &mut PgConnection, out: &mut Collected) -> Result<()> {
    let standbys = sqlx::query(sql!("SELECT /* pgsteward */ coalesce(nullif(application_name, ''), client_addr::text, pid::text) AS name,
                coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_s,
                coalesce(pg_wal_lsn_diff(
                    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
                    replay_lsn), 0)::float8 AS lag_bytes
           FROM pg_stat_replication"
    ))
    .fetch_all(&mut *c)
    .await?;
    for r in standbys {
        let name: String = r.get("name");
        out.gauges.push(reading(
            "replication_lag_seconds",
            name.clone(),
            r.get("lag_s"),
        ));
        out.gauges
            .push(reading("replication_lag_bytes", name, r.get("lag_bytes")));
    }
    let slots = sqlx::query(sql!("SELECT /* pgsteward */ slot_name::text AS name,
                coalesce(pg_wal_lsn_diff(
                    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
                    restart_lsn), 0)::float8 AS retained
           FROM pg_replication_slots"
    ))
    .fetch_all(&mut *c)
    .await?;
    for r in slots {
        out.gauges.push(reading(
            "slot_retained_bytes",
            r.get::<String, _>("name"),
            r.get("retained"),
        ));
    }
    Ok(())
}

/// Sessions waiting for a lock, from their wait events. Each waiting session waits for exactly
/// one lock, so this is the count of lock requests not granted; reading pg_locks instead would
/// take every lock-manager partition lock and every session's fast-path lock on each sample,
/// which stalls a busy server's transactions (it cost read-only pgbench several percent).
pub(super) async fn locks(c: &mut PgConnection, out: &mut Collected) -> Result<()> {
    let n: f64 = sqlx::query_scalar(sql!(
        "SELECT /* pgsteward */ count(*)::float8 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    ))
    .fetch_one(&mut *c)
    .await?;
    out.gauges.push(reading("locks_waiting", "", n));
    Ok(())
}

pub(super) async fn sizes(c: &mut PgConnection, out: &mut Collected) -> Result<()> {
    let rows = sqlx::query(sql!("SELECT /* pgsteward */ datname::text AS name, pg_database_size(oid)::float8 AS bytes
           FROM pg_database
          WHERE datallowconn
            AND (has_database_privilege(oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'USAGE'))"
    ))
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        out.gauges.push(reading(
            "database_size_bytes",
            r.get::<String, _>("name"),
            r.get("bytes"),
        ));
    }
    Ok(())
}
