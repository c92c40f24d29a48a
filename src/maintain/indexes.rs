//! Index health: indexes that cost writes and space without serving reads (unused, duplicate,
//! redundant), invalid ones left by a failed concurrent build, and tables read by sequential
//! scans that might want one (candidates from statements, checked with hypopg: [`super::hypo`]). Constraint-backing indexes are never called unused: dropping
//! them would drop the constraint (or break a foreign key).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::stats::{IndexStats, TableStats};
use crate::conn::PooledConn;
use crate::error::Result;
use crate::ident::quote_ident;
use crate::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum IndexFindingKind {
    /// Never scanned since statistics were reset.
    Unused,
    /// Same table, method, columns, operator classes, expressions and predicate as another.
    Duplicate,
    /// Its columns are the leading columns of another index, which can serve its queries.
    Redundant,
    /// A failed concurrent build left it; it costs writes and serves nothing.
    Invalid,
}

/// One thing wrong with an index.
#[derive(Debug, Clone, Serialize, TS)]
pub struct IndexFinding {
    pub kind: IndexFindingKind,
    pub schema: String,
    pub table: String,
    pub index: String,
    #[ts(type = "number")]
    pub bytes: i64,
    #[ts(type = "number")]
    pub scans: i64,
    /// The other index (for duplicate and redundant).
    pub other: Option<String>,
    pub detail: String,
    /// What to do about it.
    pub sql: String,
}

/// Where a missing-index candidate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MissingIndexSource {
    /// A recorded statement (pg_stat_statements) scans the table sequentially with a
    /// selective filter on the column.
    Statement,
    /// The table's counters show many sequential scans of many rows; the column was picked from
    /// the column statistics.
    TableScans,
}

/// A table that might want an index.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MissingIndex {
    pub schema: String,
    pub table: String,
    pub column: String,
    #[ts(type = "number")]
    pub seq_scan: i64,
    #[ts(type = "number")]
    pub avg_rows_per_seq_scan: i64,
    pub sql: String,
    /// Checked with hypopg: the statement's estimated cost drops with the index.
    pub validated: bool,
    pub note: String,
    pub source: MissingIndexSource,
    /// The statement that would use it (normalised by pg_stat_statements).
    pub statement: Option<String>,
    #[ts(type = "number | null")]
    pub calls: Option<i64>,
    /// Estimated cost of the statement now (generic plan) ...
    pub cost_before: Option<f64>,
    /// ... and with a hypothetical index on the column (hypopg).
    pub cost_after: Option<f64>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct IndexReport {
    pub project: String,
    pub findings: Vec<IndexFinding>,
    pub missing: Vec<MissingIndex>,
    /// Indexes looked at.
    pub indexes: Vec<IndexStats>,
    pub stats_reset: Option<String>,
    /// hypopg installed in the database (candidates can be validated).
    pub hypopg_installed: bool,
    /// What limited the candidates (missing extensions, statements left out).
    pub notes: Vec<String>,
}

pub(crate) fn qualified(schema: &str, name: &str) -> Result<String> {
    Ok(format!("{}.{}", quote_ident(schema)?, quote_ident(name)?))
}

/// Unused, duplicate, redundant and invalid indexes.
pub fn findings(indexes: &[IndexStats]) -> Result<Vec<IndexFinding>> {
    let mut out = Vec::new();
    let finding =
        |kind, i: &IndexStats, other: Option<&IndexStats>, detail: String, sql: String| {
            IndexFinding {
                kind,
                schema: i.schema.clone(),
                table: i.table.clone(),
                index: i.name.clone(),
                bytes: i.bytes,
                scans: i.scans,
                other: other.map(|o| o.name.clone()),
                detail,
                sql,
            }
        };
    let mut seen: HashMap<&str, &IndexStats> = HashMap::new();
    for i in indexes {
        let q = qualified(&i.schema, &i.name)?;
        let drop = format!("DROP INDEX CONCURRENTLY {q}");
        if !i.valid {
            out.push(finding(
                IndexFindingKind::Invalid,
                i,
                None,
                "Invalid (a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY failed): it is maintained on every write but never used.".into(),
                format!("{drop}  -- or: REINDEX INDEX CONCURRENTLY {q}"),
            ));
            continue;
        }
        if let Some(first) = seen.get(i.signature.as_str()) {
            if !i.backs_constraint {
                out.push(finding(
                    IndexFindingKind::Duplicate,
                    i,
                    Some(first),
                    format!("Same definition as {}.", first.name),
                    drop.clone(),
                ));
                continue;
            }
        } else {
            seen.insert(&i.signature, i);
        }
        if i.scans == 0 && !i.backs_constraint && !i.unique {
            out.push(finding(
                IndexFindingKind::Unused,
                i,
                None,
                "Never scanned since the statistics were last reset.".into(),
                drop.clone(),
            ));
        }
    }
    // Redundant: plain indexes whose key columns lead a wider index on the same table.
    let duplicates: Vec<(String, String)> = out
        .iter()
        .filter(|f| f.kind == IndexFindingKind::Duplicate)
        .map(|f| (f.schema.clone(), f.index.clone()))
        .collect();
    for i in indexes {
        if !i.valid
            || i.unique
            || i.backs_constraint
            || i.partial
            || i.expression
            || duplicates.contains(&(i.schema.clone(), i.name.clone()))
        {
            continue;
        }
        let keys = &i.columns[..i.key_columns as usize];
        let wider = indexes.iter().find(|o| {
            o.oid != i.oid
                && o.valid
                && o.table_oid == i.table_oid
                && o.method == i.method
                && !o.partial
                && o.key_columns as usize > keys.len()
                && o.columns[..o.key_columns as usize].starts_with(keys)
        });
        if let Some(o) = wider {
            out.push(finding(
                IndexFindingKind::Redundant,
                i,
                Some(o),
                format!(
                    "Its columns lead {}, which can serve the same lookups.",
                    o.name
                ),
                format!("DROP INDEX CONCURRENTLY {}", qualified(&i.schema, &i.name)?),
            ));
        }
    }
    Ok(out)
}

/// Large tables mostly read by sequential scans of many rows.
pub fn seq_scanned(tables: &[TableStats], min_bytes: i64) -> Vec<&TableStats> {
    tables
        .iter()
        .filter(|t| {
            t.heap_bytes >= min_bytes
                && t.seq_scan >= 20
                && t.seq_scan > t.idx_scan
                && t.seq_tup_read / t.seq_scan.max(1) >= 1000
        })
        .collect()
}

/// For a table read by sequential scans, the most selective column that no index leads.
/// Unvalidated: there is no statement to plan with and without it.
pub async fn missing_for(
    conn: &mut PooledConn,
    t: &TableStats,
    indexes: &[IndexStats],
) -> Result<Option<MissingIndex>> {
    let rows = sqlx::query(sql!(
        "SELECT a.attname::text AS col, a.attnum AS num, ps.n_distinct::float8 AS nd
           FROM pg_stats ps JOIN pg_attribute a
             ON a.attrelid = $1::oid AND a.attname = ps.attname
          WHERE ps.schemaname = $2 AND ps.tablename = $3 AND NOT ps.inherited
          ORDER BY CASE WHEN ps.n_distinct < 0 THEN -ps.n_distinct * $4 ELSE ps.n_distinct END DESC"
    ))
    .bind(t.oid)
    .bind(&t.schema)
    .bind(&t.name)
    .bind(t.reltuples.max(1.0))
    .fetch_all(&mut **conn)
    .await?;
    let led: Vec<i16> = indexes
        .iter()
        .filter(|i| i.table_oid == t.oid && i.valid)
        .filter_map(|i| i.columns.first().copied())
        .collect();
    let pick = rows.iter().find(|r| {
        let num: i16 = r.get("num");
        let nd: f64 = r.get("nd");
        !led.contains(&num) && !(-0.01..=100.0).contains(&nd)
    });
    let Some(r) = pick else { return Ok(None) };
    let col: String = r.get("col");
    Ok(Some(MissingIndex {
        schema: t.schema.clone(),
        table: t.name.clone(),
        sql: format!(
            "CREATE INDEX CONCURRENTLY ON {} ({})",
            qualified(&t.schema, &t.name)?,
            quote_ident(&col)?
        ),
        column: col,
        seq_scan: t.seq_scan,
        avg_rows_per_seq_scan: t.seq_tup_read / t.seq_scan.max(1),
        validated: false,
        note: "Unvalidated: the column was picked from column statistics because the table is read by many sequential scans; no recorded statement filtering it was found to check it against.".into(),
        source: MissingIndexSource::TableScans,
        statement: None,
        calls: None,
        cost_before: None,
        cost_after: None,
    }))
}

pub async fn stats_reset(conn: &mut PooledConn) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(sql!(
        "SELECT to_char(stats_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
           FROM pg_stat_database WHERE datname = current_database()"
    ))
    .fetch_one(&mut **conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(name: &str, cols: &[i16], sig: &str) -> IndexStats {
        IndexStats {
            oid: name.len() as i64 + cols.len() as i64 * 100,
            table_oid: 1,
            schema: "public".into(),
            table: "t".into(),
            name: name.into(),
            method: "btree".into(),
            scans: 5,
            bytes: 8192,
            relpages: 1,
            reltuples: 0.0,
            valid: true,
            unique: false,
            primary: false,
            partial: false,
            expression: false,
            backs_constraint: false,
            columns: cols.to_vec(),
            key_columns: cols.len() as i64,
            definition: String::new(),
            fillfactor: 90.0,
            deduplicate_items: true,
            data_width: 4.0,
            columns_with_stats: 1,
            leading_n_distinct: None,
            signature: sig.into(),
        }
    }

    #[test]
    fn finds_each_kind_and_spares_constraints() {
        let mut pk = ix("t_pkey", &[1], "a");
        pk.unique = true;
        pk.backs_constraint = true;
        pk.scans = 0;
        let mut unused = ix("t_x", &[3], "c");
        unused.scans = 0;
        let mut invalid = ix("t_bad", &[4], "d");
        invalid.valid = false;
        let all = vec![
            pk,
            ix("t_b", &[2], "b"),
            ix("t_b_again", &[2], "b"),
            ix("t_bc", &[2, 5], "e"),
            unused,
            invalid,
        ];
        let f = findings(&all).unwrap();
        let got: Vec<_> = f.iter().map(|f| (f.kind, f.index.as_str())).collect();
        assert!(
            got.contains(&(IndexFindingKind::Duplicate, "t_b_again")),
            "{got:?}"
        );
        assert!(
            got.contains(&(IndexFindingKind::Redundant, "t_b")),
            "{got:?}"
        );
        assert!(got.contains(&(IndexFindingKind::Unused, "t_x")), "{got:?}");
        assert!(
            got.contains(&(IndexFindingKind::Invalid, "t_bad")),
            "{got:?}"
        );
        assert!(!got.iter().any(|(_, n)| *n == "t_pkey"), "{got:?}");
        assert_eq!(
            f.iter().find(|f| f.index == "t_x").unwrap().sql,
            "DROP INDEX CONCURRENTLY \"public\".\"t_x\""
        );
    }
}
