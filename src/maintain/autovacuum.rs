//! Autovacuum advice: per-table settings suggested from size and churn (the global scale
//! factors let a large table pile up millions of dead rows before autovacuum starts), with the
//! `ALTER TABLE ... SET (...)` statement, and the autovacuum workers running now.

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::stats::TableStats;
use crate::conn::PooledConn;
use crate::error::Result;
use crate::ident::quote_ident;
use crate::sql;

/// Tables with fewer rows than this keep the global settings.
pub const ADVICE_MIN_ROWS: f64 = 1_000_000.0;
/// Dead rows a large table should collect before autovacuum starts.
const TARGET_DEAD_ROWS: f64 = 200_000.0;
/// Changed rows before autoanalyze.
const TARGET_CHANGED_ROWS: f64 = 100_000.0;

/// Suggested settings for one table.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AutovacuumAdvice {
    pub schema: String,
    pub table: String,
    pub rows: f64,
    /// `name=value` pairs suggested.
    pub settings: Vec<String>,
    pub reason: String,
    pub sql: String,
}

/// One autovacuum worker and its progress.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AutovacuumWorker {
    pub pid: i32,
    pub database: Option<String>,
    pub relation: Option<String>,
    pub phase: Option<String>,
    /// heap_blks_scanned / heap_blks_total, percent.
    pub percent_scanned: Option<f64>,
    pub running_seconds: Option<f64>,
    pub query: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct AutovacuumReport {
    pub advice: Vec<AutovacuumAdvice>,
    pub workers: Vec<AutovacuumWorker>,
    pub max_workers: i32,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Advice for the tables whose size makes the global scale factors too lax.
pub fn advise(tables: &[TableStats]) -> Result<Vec<AutovacuumAdvice>> {
    let mut out = Vec::new();
    for t in tables {
        let rows = t.reltuples.max(t.live_tuples as f64);
        if rows < ADVICE_MIN_ROWS {
            continue;
        }
        let has = |k: &str| t.options.iter().any(|o| o.starts_with(&format!("{k}=")));
        let mut settings = Vec::new();
        if !has("autovacuum_vacuum_scale_factor") {
            let f = round3((TARGET_DEAD_ROWS / rows).clamp(0.005, 0.2));
            settings.push(format!("autovacuum_vacuum_scale_factor = {f}"));
        }
        if !has("autovacuum_analyze_scale_factor") {
            let f = round3((TARGET_CHANGED_ROWS / rows).clamp(0.002, 0.1));
            settings.push(format!("autovacuum_analyze_scale_factor = {f}"));
        }
        // Heavy churn: let the worker do more per round before it sleeps.
        let churn = t.dead_tuples as f64 / rows;
        if churn > 0.1 && !has("autovacuum_vacuum_cost_limit") {
            settings.push("autovacuum_vacuum_cost_limit = 1000".into());
        }
        if settings.is_empty() {
            continue;
        }
        out.push(AutovacuumAdvice {
            schema: t.schema.clone(),
            table: t.name.clone(),
            rows,
            reason: format!(
                "{rows:.0} rows: with the default scale factor (0.2) autovacuum waits for {:.0} dead rows; aim for about {TARGET_DEAD_ROWS:.0}{}.",
                rows * 0.2,
                if churn > 0.1 {
                    format!(", and {:.0} % of its rows are dead now", churn * 100.0)
                } else {
                    String::new()
                }
            ),
            sql: format!(
                "ALTER TABLE {}.{} SET ({})",
                quote_ident(&t.schema)?,
                quote_ident(&t.name)?,
                settings.join(", ")
            ),
            settings,
        });
    }
    Ok(out)
}

pub async fn workers(conn: &mut PooledConn) -> Result<(Vec<AutovacuumWorker>, i32)> {
    let rows = sqlx::query(sql!(
        "SELECT a.pid, a.datname::text AS db, p.relid::regclass::text AS rel, p.phase,
                CASE WHEN p.heap_blks_total > 0
                     THEN (100.0 * p.heap_blks_scanned / p.heap_blks_total)::float8 END AS pct,
                extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS secs,
                left(a.query, 300) AS query
           FROM pg_stat_activity a
           LEFT JOIN pg_stat_progress_vacuum p ON p.pid = a.pid
          WHERE a.backend_type = 'autovacuum worker'
          ORDER BY a.pid"
    ))
    .fetch_all(&mut **conn)
    .await?;
    let max: i32 = sqlx::query_scalar(sql!(
        "SELECT current_setting('autovacuum_max_workers')::int4"
    ))
    .fetch_one(&mut **conn)
    .await?;
    Ok((
        rows.iter()
            .map(|r| AutovacuumWorker {
                pid: r.get("pid"),
                database: r.get("db"),
                relation: r.get("rel"),
                phase: r.get("phase"),
                percent_scanned: r.get("pct"),
                running_seconds: r.get("secs"),
                query: r.get("query"),
            })
            .collect(),
        max,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_tables_get_tighter_scale_factors() {
        let mut t = crate::maintain::stats::TableStats {
            oid: 1,
            schema: "public".into(),
            name: "big".into(),
            live_tuples: 10_000_000,
            dead_tuples: 2_000_000,
            mod_since_analyze: 0,
            reltuples: 10_000_000.0,
            relpages: 0,
            seq_scan: 0,
            seq_tup_read: 0,
            idx_scan: 0,
            last_vacuum: None,
            last_autovacuum: None,
            last_analyze: None,
            last_autoanalyze: None,
            heap_bytes: 0,
            toast_bytes: 0,
            index_bytes: 0,
            xid_age: 0,
            fillfactor: 100.0,
            options: vec![],
            columns: 1,
            columns_with_stats: 1,
            data_width: 8.0,
            has_nulls: false,
        };
        let a = advise(std::slice::from_ref(&t)).unwrap();
        assert_eq!(
            a[0].sql,
            "ALTER TABLE \"public\".\"big\" SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01, autovacuum_vacuum_cost_limit = 1000)"
        );
        t.options = vec![
            "autovacuum_vacuum_scale_factor=0.01".into(),
            "autovacuum_analyze_scale_factor=0.01".into(),
        ];
        t.dead_tuples = 0;
        assert!(advise(std::slice::from_ref(&t)).unwrap().is_empty());
        t.reltuples = 5000.0;
        t.live_tuples = 5000;
        t.options.clear();
        assert!(advise(&[t]).unwrap().is_empty());
    }
}
