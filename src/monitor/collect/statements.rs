//! The statements collector: cumulative pg_stat_statements counters per query (with its text,
//! cut to a bounded length), once the extension is found readable in the current database.

use sqlx::{PgConnection, Row};

use super::{enable_statements_instructions, Collected, StatementCounters};
use crate::conn::MARK;
use crate::error::Result;
use crate::ident::quote_ident;
use crate::sql;

/// Whether pg_stat_statements can be read in the current database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementsAccess {
    /// It can, in this schema.
    Readable(String),
    /// It cannot: how to enable it, as instructions for the user.
    Missing(String),
}

impl StatementsAccess {
    /// The instructions to enable it, when it cannot be read.
    pub fn missing(self) -> Option<String> {
        match self {
            StatementsAccess::Readable(_) => None,
            StatementsAccess::Missing(how) => Some(how),
        }
    }
}

/// Whether pg_stat_statements can be read in the current database, and in which schema.
///
/// `shared_preload_libraries` is only visible to roles with pg_read_all_settings (pg_monitor has
/// it); for other roles the extension is probed directly.
pub async fn statements_schema(c: &mut PgConnection) -> Result<StatementsAccess> {
    let r = sqlx::query(sql!("SELECT /* pgsteward */ (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS spl,
                (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'pg_stat_statements') AS nsp,
                current_database()::text AS db"
    ))
    .fetch_one(&mut *c)
    .await?;
    let db: String = r.get("db");
    let preloaded = r.get::<Option<String>, _>("spl").map(|spl| {
        spl.split(',')
            .map(|s| s.trim().trim_matches('"').trim())
            .any(|s| s == "pg_stat_statements" || s.ends_with("/pg_stat_statements"))
    });
    let nsp: Option<String> = r.get("nsp");
    match (preloaded, nsp) {
        (Some(false), _) => Ok(StatementsAccess::Missing(enable_statements_instructions(
            &db, false,
        ))),
        (_, None) => Ok(StatementsAccess::Missing(enable_statements_instructions(
            &db,
            preloaded.unwrap_or(false),
        ))),
        (Some(true), Some(nsp)) => Ok(StatementsAccess::Readable(nsp)),
        (None, Some(nsp)) => {
            // Cannot see the setting: ask the view; it refuses when the library is not loaded.
            let probe = format!(
                "{MARK} SELECT {MARK} 1 FROM {}.pg_stat_statements LIMIT 1",
                quote_ident(&nsp)?
            );
            // A refusal aborts the caller's transaction, if any; it is the last statement then.
            let res = sqlx::query(&probe)
                .persistent(false)
                .fetch_optional(&mut *c)
                .await;
            match res {
                Ok(_) => Ok(StatementsAccess::Readable(nsp)),
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55000") => Ok(
                    StatementsAccess::Missing(enable_statements_instructions(&db, false)),
                ),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Longest query text kept in the history.
const MAX_QUERY_TEXT: usize = 4000;

pub(super) async fn statements(c: &mut PgConnection, out: &mut Collected) -> Result<()> {
    let nsp = match statements_schema(c).await? {
        StatementsAccess::Readable(nsp) => nsp,
        StatementsAccess::Missing(how) => {
            out.note = Some(how);
            return Ok(());
        }
    };
    let schema = quote_ident(&nsp)?;
    // Column names changed in 13 (total_time -> total_exec_time); an extension not yet updated
    // after a server upgrade keeps the old ones, so ask the view itself.
    let cols: Vec<String> = sqlx::query_scalar(sql!(
        "SELECT /* pgsteward */ attname::text FROM pg_attribute
          WHERE attrelid = to_regclass(format('%I.pg_stat_statements', $1::text))
            AND attname IN ('total_exec_time', 'total_time') AND NOT attisdropped"
    ))
    .bind(&nsp)
    .fetch_all(&mut *c)
    .await?;
    let total = if cols.iter().any(|c| c == "total_exec_time") {
        "total_exec_time"
    } else {
        "total_time"
    };
    // pgsteward's own statements are left out: they are the monitor, not the workload. They are
    // recognised by the marker comment; PostgreSQL 18 drops a *leading* comment from the text
    // it records, so the collectors also carry the marker after their first keyword.
    let stmt = format!(
        "{MARK} SELECT {MARK} queryid::text AS queryid, min(query) AS query,
                sum(calls)::float8 AS calls, sum({total})::float8 AS total_ms,
                sum(rows)::float8 AS rows, sum(shared_blks_read)::float8 AS shared_blks_read,
                sum(temp_blks_written)::float8 AS temp_blks_written
           FROM {schema}.pg_stat_statements
          WHERE queryid IS NOT NULL AND strpos(query, '{MARK}') = 0
          GROUP BY queryid"
    );
    let rows = sqlx::query(&stmt)
        .persistent(false)
        .fetch_all(&mut *c)
        .await?;
    let list = rows
        .into_iter()
        .map(|r| {
            let mut query: String = r.get::<Option<String>, _>("query").unwrap_or_default();
            if query.len() > MAX_QUERY_TEXT {
                let mut cut = MAX_QUERY_TEXT;
                while !query.is_char_boundary(cut) {
                    cut -= 1;
                }
                query.truncate(cut);
            }
            StatementCounters {
                queryid: r.get("queryid"),
                query,
                calls: r.get("calls"),
                total_ms: r.get("total_ms"),
                rows: r.get("rows"),
                shared_blks_read: r.get("shared_blks_read"),
                temp_blks_written: r.get("temp_blks_written"),
            }
        })
        .collect();
    out.statements = Some(list);
    Ok(())
}
