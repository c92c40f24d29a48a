//! Checks of the server as a whole: invalid indexes, replication slots holding WAL, connection
//! headroom, the cache hit ratio and pg_stat_statements.

use sqlx::{PgConnection, Row};

use super::{
    human_bytes, CheckId, Ctx, HealthCheck, HealthItem, HealthStatus, CACHE_HIT_WARNING,
    CACHE_MIN_BLOCKS, CONNECTIONS_CRITICAL, CONNECTIONS_WARNING,
};
use crate::conn::MARK;
use crate::error::Result;
use crate::ident::quote_ident;
use crate::sql;

pub(super) async fn invalid_indexes(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tbl,
                pg_relation_size(i.indexrelid)::float8 AS bytes
           FROM pg_index i
          WHERE NOT i.indisvalid
            AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                             WHERE p.index_relid = i.indexrelid)
          ORDER BY 1
          LIMIT 100"
    ))
    .fetch_all(&mut *c)
    .await?;
    let items: Vec<HealthItem> = rows
        .iter()
        .map(|r| {
            let name: String = r.get("name");
            let table: String = r.get("tbl");
            let bytes: f64 = r.get("bytes");
            HealthItem {
                message: format!(
                    "Invalid index on {table}: queries do not use it, yet every write still maintains it. A failed CREATE INDEX \
                     CONCURRENTLY leaves one behind. DROP INDEX CONCURRENTLY {name}; fix the cause (e.g. duplicate values for a \
                     unique index) and create it again, or REINDEX INDEX CONCURRENTLY {name}."
                ),
                name,
                status: HealthStatus::Warning,
                value: Some(bytes),
                figure: human_bytes(bytes),
            }
        })
        .collect();
    let n = items.len();
    let mut check = HealthCheck::new(
        CheckId::InvalidIndexes,
        if n == 0 {
            HealthStatus::Ok
        } else {
            HealthStatus::Warning
        },
        Some(n as f64),
        format!("{n} invalid"),
        if n == 0 {
            format!("Every index of database {} is valid.", ctx.database)
        } else {
            format!(
                "{n} index(es) of database {} are invalid: not used by queries, still maintained on every write.",
                ctx.database
            )
        },
    );
    check.items = items;
    Ok(check)
}

pub(super) async fn replication_slots(c: &mut PgConnection) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT slot_name::text AS name, slot_type, database::text AS db, wal_status,
                pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                     ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained,
                xmin IS NOT NULL OR catalog_xmin IS NOT NULL AS holds_xmin
           FROM pg_replication_slots
          WHERE NOT active
          ORDER BY retained DESC NULLS LAST, 1"
    ))
    .fetch_all(&mut *c)
    .await?;
    let mut items = Vec::new();
    let mut total = 0.0;
    for r in &rows {
        let name: String = r.get("name");
        let retained: Option<f64> = r.get("retained");
        let wal_status: Option<String> = r.get("wal_status");
        let holds_xmin: bool = r.get("holds_xmin");
        if retained.is_none() && !holds_xmin {
            continue; // reserves nothing yet
        }
        let bytes = retained.unwrap_or(0.0).max(0.0);
        total += bytes;
        let status = match wal_status.as_deref() {
            Some("lost") | Some("unreserved") => HealthStatus::Critical,
            _ => HealthStatus::Warning,
        };
        let kind: Option<String> = r.get("slot_type");
        let db: Option<String> = r.get("db");
        items.push(HealthItem {
            message: format!(
                "Inactive {} slot{} keeps {} of WAL{}{}. If its consumer is gone for good, drop it: SELECT pg_drop_replication_slot('{}');",
                kind.as_deref().unwrap_or(""),
                db.map(|d| format!(" (database {d})")).unwrap_or_default(),
                human_bytes(bytes),
                if holds_xmin { " and holds back vacuum's xmin horizon" } else { "" },
                match wal_status.as_deref() {
                    Some("lost") => "; the WAL it needs is already gone, it can no longer be used",
                    Some("unreserved") => "; the WAL it needs is about to be removed",
                    _ => "",
                },
                name.replace('\'', "''")
            ),
            name,
            status,
            value: Some(bytes),
            figure: human_bytes(bytes),
        });
    }
    let status = items
        .iter()
        .fold(HealthStatus::Ok, |s, i| s.worst(i.status));
    let mut check = HealthCheck::new(
        CheckId::ReplicationSlots,
        status,
        Some(total),
        format!("{} inactive, {} retained", items.len(), human_bytes(total)),
        if items.is_empty() {
            "No inactive replication slot holds WAL.".into()
        } else {
            format!(
                "{} inactive replication slot(s) keep {} of WAL on disk; the disk fills up if nobody reads them.",
                items.len(),
                human_bytes(total)
            )
        },
    );
    check.items = items;
    Ok(check)
}

pub(super) async fn connections(c: &mut PgConnection) -> Result<HealthCheck> {
    let r = sqlx::query(sql!(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 AS used,
                current_setting('max_connections')::int8 AS max_conn,
                current_setting('superuser_reserved_connections')::int8 AS su_reserved,
                coalesce(current_setting('reserved_connections', true), '0')::int8 AS reserved"
    ))
    .fetch_one(&mut *c)
    .await?;
    let used: i64 = r.get("used");
    let max: i64 = r.get("max_conn");
    let reserved: i64 = r.get::<i64, _>("su_reserved") + r.get::<i64, _>("reserved");
    let available = (max - reserved).max(1);
    let share = used as f64 / available as f64;
    let status = if share > CONNECTIONS_CRITICAL {
        HealthStatus::Critical
    } else if share > CONNECTIONS_WARNING {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    Ok(HealthCheck::new(
        CheckId::Connections,
        status,
        Some(share * 100.0),
        format!("{used} of {available} ({:.0} %)", share * 100.0),
        format!(
            "{used} client connections of the {available} open to ordinary roles (max_connections {max} minus {reserved} reserved).{}",
            if status == HealthStatus::Ok {
                String::new()
            } else {
                " When they run out, new connections are refused: put a connection pooler in front, or find idle sessions to close.".into()
            }
        ),
    ))
}

pub(super) async fn cache_hit(c: &mut PgConnection) -> Result<HealthCheck> {
    let r = sqlx::query(sql!(
        "SELECT coalesce(sum(blks_hit), 0)::float8 AS hit, coalesce(sum(blks_read), 0)::float8 AS read,
                max(stats_reset) AS reset
           FROM pg_stat_database"
    ))
    .fetch_one(&mut *c)
    .await?;
    let hit: f64 = r.get("hit");
    let read: f64 = r.get("read");
    let reset: Option<chrono::DateTime<chrono::Utc>> = r.get("reset");
    let since = match reset {
        Some(t) => format!(
            "since the statistics were last reset ({})",
            t.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "since the statistics were last reset (never, as far as the server records)".into(),
    };
    if hit + read < CACHE_MIN_BLOCKS {
        return Ok(HealthCheck::new(
            CheckId::CacheHitRatio,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            format!("Too few block reads {since} to judge ({:.0}).", hit + read),
        ));
    }
    let ratio = hit / (hit + read);
    let status = if ratio < CACHE_HIT_WARNING {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    Ok(HealthCheck::new(
        CheckId::CacheHitRatio,
        status,
        Some(ratio * 100.0),
        format!("{:.2} %", ratio * 100.0),
        format!(
            "{:.2} % of block reads in all databases were served from shared buffers {since}.{}",
            ratio * 100.0,
            if status == HealthStatus::Ok {
                ""
            } else {
                " Below 90 % the working set usually does not fit in shared_buffers: consider raising shared_buffers (and memory), \
                 or look for queries that scan large tables."
            }
        ),
    ))
}

pub(super) async fn pg_stat_statements(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let r = sqlx::query(sql!(
        "SELECT current_setting('shared_preload_libraries') AS spl,
                current_setting('pg_stat_statements.max', true) AS max,
                (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'pg_stat_statements') AS nsp"
    ))
    .fetch_one(&mut *c)
    .await?;
    let spl: String = r.get("spl");
    let preloaded = spl
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim())
        .any(|s| s == "pg_stat_statements" || s.ends_with("/pg_stat_statements"));
    let nsp: Option<String> = r.get("nsp");
    let enable = format!(
        "To enable it: add pg_stat_statements to shared_preload_libraries in postgresql.conf \
         (shared_preload_libraries = 'pg_stat_statements', keeping any libraries already listed), restart the server, \
         then run CREATE EXTENSION pg_stat_statements; in database {} as a superuser.",
        ctx.database
    );
    let missing = |what: &str, msg: String| {
        HealthCheck::new(
            CheckId::PgStatStatements,
            HealthStatus::Warning,
            None,
            what.to_string(),
            msg,
        )
    };
    if !preloaded {
        return Ok(missing(
            "not loaded",
            format!("pg_stat_statements is not loaded, so there is no record of which queries cost the most. {enable}"),
        ));
    }
    let Some(nsp) = nsp else {
        return Ok(missing(
            "extension missing",
            format!(
                "pg_stat_statements is loaded but the extension is not created in database {}. Run CREATE EXTENSION pg_stat_statements; there as a superuser.",
                ctx.database
            ),
        ));
    };
    let max: f64 = r
        .get::<Option<String>, _>("max")
        .and_then(|m| m.parse().ok())
        .unwrap_or(5000.0);
    let schema = quote_ident(&nsp)?;
    let count_sql =
        format!("{MARK} SELECT count(*)::float8 FROM {schema}.pg_stat_statements(false)");
    let entries: f64 = sqlx::query_scalar(&count_sql)
        .persistent(false)
        .fetch_one(&mut *c)
        .await?;
    let has_info: bool = sqlx::query_scalar(sql!(
        "SELECT to_regclass(format('%I.pg_stat_statements_info', $1::text)) IS NOT NULL"
    ))
    .bind(&nsp)
    .fetch_one(&mut *c)
    .await?;
    let mut dealloc = None;
    let mut reset = None;
    if ctx.version_num >= 140000 && has_info {
        let info_sql =
            format!("{MARK} SELECT dealloc::float8 AS dealloc, stats_reset FROM {schema}.pg_stat_statements_info");
        let row = sqlx::query(&info_sql)
            .persistent(false)
            .fetch_one(&mut *c)
            .await?;
        dealloc = Some(row.get::<f64, _>("dealloc"));
        reset = row.get::<Option<chrono::DateTime<chrono::Utc>>, _>("stats_reset");
    }
    let share = entries / max.max(1.0);
    let evicted = dealloc.unwrap_or(0.0);
    let status = if evicted > 0.0 || share >= 0.9 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    let since = reset
        .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let message = if evicted > 0.0 {
        format!(
            "It has evicted entries {evicted:.0} time(s){since} to make room, so statistics of rarely-run statements are being lost. \
             Raise pg_stat_statements.max (now {max:.0}; needs a restart)."
        )
    } else if share >= 0.9 {
        format!(
            "It tracks {entries:.0} statements, close to pg_stat_statements.max ({max:.0}); beyond it, entries are evicted. \
             Consider raising pg_stat_statements.max (needs a restart)."
        )
    } else {
        format!("Installed and tracking {entries:.0} of at most {max:.0} statements.")
    };
    Ok(HealthCheck::new(
        CheckId::PgStatStatements,
        status,
        Some(share * 100.0),
        format!(
            "{entries:.0} of {max:.0} entries{}",
            dealloc
                .map(|d| format!(", {d:.0} evictions"))
                .unwrap_or_default()
        ),
        message,
    ))
}
