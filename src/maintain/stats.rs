//! What the planner decides from: per-table and per-index statistics of the project's
//! database, read in two statements from `pg_class`, `pg_stat_user_tables`,
//! `pg_stat_user_indexes` and `pg_stats` (the inputs of the bloat estimate come along).
//! Needs `pg_monitor` (column statistics of tables the role cannot read are missing, and the
//! bloat estimate then says so).

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use crate::conn::PooledConn;
use crate::error::Result;
use crate::sql;

/// One table (or materialized view).
#[derive(Debug, Clone, Serialize, TS)]
pub struct TableStats {
    #[ts(type = "number")]
    pub oid: i64,
    pub schema: String,
    pub name: String,
    #[ts(type = "number")]
    pub live_tuples: i64,
    #[ts(type = "number")]
    pub dead_tuples: i64,
    /// Rows inserted, updated or deleted since the last ANALYZE.
    #[ts(type = "number")]
    pub mod_since_analyze: i64,
    /// The planner's row count (-1 when never analyzed or vacuumed).
    pub reltuples: f64,
    #[ts(type = "number")]
    pub relpages: i64,
    #[ts(type = "number")]
    pub seq_scan: i64,
    #[ts(type = "number")]
    pub seq_tup_read: i64,
    #[ts(type = "number")]
    pub idx_scan: i64,
    pub last_vacuum: Option<String>,
    pub last_autovacuum: Option<String>,
    pub last_analyze: Option<String>,
    pub last_autoanalyze: Option<String>,
    #[ts(type = "number")]
    pub heap_bytes: i64,
    #[ts(type = "number")]
    pub toast_bytes: i64,
    #[ts(type = "number")]
    pub index_bytes: i64,
    /// age(relfrozenxid).
    #[ts(type = "number")]
    pub xid_age: i64,
    pub fillfactor: f64,
    /// `reloptions` as "name=value".
    pub options: Vec<String>,
    // Inputs of the bloat estimate.
    #[ts(type = "number")]
    pub columns: i64,
    #[ts(type = "number")]
    pub columns_with_stats: i64,
    /// Sum over columns of (1 - null_frac) × avg_width, bytes.
    pub data_width: f64,
    pub has_nulls: bool,
}

/// One index.
#[derive(Debug, Clone, Serialize, TS)]
pub struct IndexStats {
    #[ts(type = "number")]
    pub oid: i64,
    #[ts(type = "number")]
    pub table_oid: i64,
    pub schema: String,
    pub table: String,
    pub name: String,
    /// Access method: btree, hash, gin, gist, brin...
    pub method: String,
    #[ts(type = "number")]
    pub scans: i64,
    #[ts(type = "number")]
    pub bytes: i64,
    #[ts(type = "number")]
    pub relpages: i64,
    pub reltuples: f64,
    pub valid: bool,
    pub unique: bool,
    pub primary: bool,
    pub partial: bool,
    pub expression: bool,
    /// Backs a constraint (primary key, unique, exclusion) or one depends on it (foreign key).
    pub backs_constraint: bool,
    /// Column numbers (0 for an expression), key columns first.
    pub columns: Vec<i16>,
    #[ts(type = "number")]
    pub key_columns: i64,
    pub definition: String,
    pub fillfactor: f64,
    pub deduplicate_items: bool,
    // Inputs of the bloat estimate.
    /// Sum of avg_width of the indexed columns, bytes.
    pub data_width: f64,
    #[ts(type = "number")]
    pub columns_with_stats: i64,
    /// n_distinct of the leading column (negative: a fraction of the rows).
    pub leading_n_distinct: Option<f64>,
    /// Same method, columns, operator classes, expressions and predicate as another index.
    #[serde(skip)]
    #[ts(skip)]
    pub signature: String,
}

/// The value of one `name=value` entry of `reloptions`.
fn option(options: &[String], name: &str) -> Option<String> {
    options.iter().find_map(|o| {
        o.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

pub async fn tables(conn: &mut PooledConn) -> Result<Vec<TableStats>> {
    let rows = sqlx::query(sql!(
        "SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name,
                coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
                coalesce(s.n_mod_since_analyze, 0) AS modified,
                c.reltuples::float8 AS reltuples, c.relpages::int8 AS relpages,
                coalesce(s.seq_scan, 0) AS seq_scan, coalesce(s.seq_tup_read, 0) AS seq_tup_read,
                coalesce(s.idx_scan, 0) AS idx_scan,
                to_char(s.last_vacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS lv,
                to_char(s.last_autovacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS lav,
                to_char(s.last_analyze AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS la,
                to_char(s.last_autoanalyze AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS laa,
                pg_relation_size(c.oid) AS heap_bytes,
                CASE WHEN c.reltoastrelid = 0 THEN 0
                     ELSE pg_total_relation_size(c.reltoastrelid) END AS toast_bytes,
                pg_indexes_size(c.oid) AS index_bytes,
                age(c.relfrozenxid)::int8 AS xid_age,
                coalesce(c.reloptions::text[], '{}') AS options,
                (SELECT count(*) FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
                st.n AS with_stats, st.width, st.nulls
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
           CROSS JOIN LATERAL (
                SELECT count(*) AS n,
                       coalesce(sum((1 - ps.null_frac) * ps.avg_width), 0)::float8 AS width,
                       coalesce(bool_or(ps.null_frac > 0), false) AS nulls
                  FROM pg_stats ps
                 WHERE ps.schemaname = n.nspname AND ps.tablename = c.relname
                   AND NOT ps.inherited) st
          WHERE c.relkind IN ('r', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname !~ '^pg_toast'
          ORDER BY n.nspname, c.relname"
    ))
    .fetch_all(&mut **conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let options: Vec<String> = r.get("options");
            TableStats {
                oid: r.get("oid"),
                schema: r.get("schema"),
                name: r.get("name"),
                live_tuples: r.get("live"),
                dead_tuples: r.get("dead"),
                mod_since_analyze: r.get("modified"),
                reltuples: r.get("reltuples"),
                relpages: r.get("relpages"),
                seq_scan: r.get("seq_scan"),
                seq_tup_read: r.get("seq_tup_read"),
                idx_scan: r.get("idx_scan"),
                last_vacuum: r.get("lv"),
                last_autovacuum: r.get("lav"),
                last_analyze: r.get("la"),
                last_autoanalyze: r.get("laa"),
                heap_bytes: r.get("heap_bytes"),
                toast_bytes: r.get("toast_bytes"),
                index_bytes: r.get("index_bytes"),
                xid_age: r.get("xid_age"),
                fillfactor: option(&options, "fillfactor")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(100.0),
                options,
                columns: r.get("columns"),
                columns_with_stats: r.get("with_stats"),
                data_width: r.get("width"),
                has_nulls: r.get("nulls"),
            }
        })
        .collect())
}

pub async fn indexes(conn: &mut PooledConn) -> Result<Vec<IndexStats>> {
    let rows = sqlx::query(sql!(
        "SELECT i.indexrelid::int8 AS oid, i.indrelid::int8 AS table_oid,
                n.nspname::text AS schema, t.relname::text AS tbl, ic.relname::text AS name,
                am.amname::text AS method, coalesce(s.idx_scan, 0) AS scans,
                pg_relation_size(i.indexrelid) AS bytes, ic.relpages::int8 AS relpages,
                ic.reltuples::float8 AS reltuples,
                i.indisvalid AS valid, i.indisunique AS uniq, i.indisprimary AS prim,
                i.indpred IS NOT NULL AS partial, i.indexprs IS NOT NULL AS expr,
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs,
                string_to_array(i.indkey::text, ' ')::int2[] AS cols,
                i.indnkeyatts::int8 AS nkey,
                pg_get_indexdef(i.indexrelid) AS def,
                coalesce(ic.reloptions::text[], '{}') AS options,
                concat_ws('|', am.amname, i.indrelid::text, i.indkey::text, i.indclass::text,
                          pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid)) AS sig,
                st.width, st.n AS with_stats,
                (SELECT ps.n_distinct::float8 FROM pg_attribute a JOIN pg_stats ps
                    ON ps.schemaname = n.nspname AND ps.tablename = t.relname
                   AND ps.attname = a.attname AND NOT ps.inherited
                  WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]) AS lead_nd
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
           JOIN pg_am am ON am.oid = ic.relam
           LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
           CROSS JOIN LATERAL (
                SELECT coalesce(sum(ps.avg_width), 0)::float8 AS width, count(*) AS n
                  FROM pg_attribute a JOIN pg_stats ps
                    ON ps.schemaname = n.nspname AND ps.tablename = t.relname
                   AND ps.attname = a.attname AND NOT ps.inherited
                 WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
                   AND a.attnum > 0) st
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname !~ '^pg_toast'
            AND t.relkind IN ('r', 'm')
          ORDER BY n.nspname, t.relname, ic.relname"
    ))
    .fetch_all(&mut **conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let options: Vec<String> = r.get("options");
            IndexStats {
                oid: r.get("oid"),
                table_oid: r.get("table_oid"),
                schema: r.get("schema"),
                table: r.get("tbl"),
                name: r.get("name"),
                method: r.get("method"),
                scans: r.get("scans"),
                bytes: r.get("bytes"),
                relpages: r.get("relpages"),
                reltuples: r.get("reltuples"),
                valid: r.get("valid"),
                unique: r.get("uniq"),
                primary: r.get("prim"),
                partial: r.get("partial"),
                expression: r.get("expr"),
                backs_constraint: r.get("backs"),
                columns: r.get("cols"),
                key_columns: r.get("nkey"),
                definition: r.get("def"),
                fillfactor: option(&options, "fillfactor")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(90.0),
                deduplicate_items: option(&options, "deduplicate_items")
                    .is_none_or(|v| !matches!(v.as_str(), "off" | "false")),
                data_width: r.get("width"),
                columns_with_stats: r.get("with_stats"),
                leading_n_distinct: r.get("lead_nd"),
                signature: r.get("sig"),
            }
        })
        .collect())
}

/// `autovacuum_freeze_max_age` and the server's version number.
pub async fn server_facts(conn: &mut PooledConn) -> Result<(i64, i32)> {
    let r = sqlx::query(sql!(
        "SELECT current_setting('autovacuum_freeze_max_age')::int8 AS fma,
                current_setting('server_version_num')::int4 AS v"
    ))
    .fetch_one(&mut **conn)
    .await?;
    Ok((r.get("fma"), r.get("v")))
}

/// Time of day now in the IANA time zone `tz`, as the server computes it, "HH:MM:SS".
pub async fn time_in_zone(conn: &mut PooledConn, tz: &str) -> Result<String> {
    sqlx::query_scalar(sql!("SELECT to_char(now() AT TIME ZONE $1, 'HH24:MI:SS')"))
        .bind(tz)
        .fetch_one(&mut **conn)
        .await
        .map_err(|e| {
            crate::Error::from(e).with_context(&format!("reading the time in zone \"{tz}\""))
        })
}
