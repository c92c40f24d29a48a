//! Facts about a database's tables recorded at backup time, read in the very snapshot pg_dump
//! dumps (`pg_export_snapshot` + `pg_dump --snapshot`), so a recovery test can tell whether a
//! restore brought back exactly what was backed up.
//!
//! Every table gets its row count; tables up to [`CHECKSUM_MAX_BYTES`] also get a checksum of
//! their rows (md5 of the sorted md5s of each row's text form, with output settings pinned so
//! two servers print rows alike). Larger tables are counted only: checksumming them would cost
//! the server a full sort, which a backup should not.

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use ts_rs::TS;

use crate::error::Result;
use crate::sql;

/// Tables above this size are counted, not checksummed.
pub const CHECKSUM_MAX_BYTES: i64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct TableFact {
    /// Schema-qualified, quoted as SQL needs it.
    pub name: String,
    #[ts(type = "number")]
    pub rows: i64,
    pub checksum: Option<String>,
}

/// Pin what changes a row's text form between servers (run inside the reading transaction).
const PIN_OUTPUT: &str = sql!(
    "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
            set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '3', true),
            set_config('bytea_output', 'hex', true)"
);

/// Facts of every ordinary table outside the system schemas, by name. Runs in the caller's
/// transaction (REPEATABLE READ for a consistent picture).
pub async fn read(conn: &mut PgConnection) -> Result<Vec<TableFact>> {
    sqlx::query(PIN_OUTPUT).execute(&mut *conn).await?;
    let tables = sqlx::query(sql!(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_relation_size(c.oid) AS bytes
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
            AND c.relpersistence = 'p'
          ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let mut facts = Vec::with_capacity(tables.len());
    for t in tables {
        let name: String = t.get("name");
        let bytes: i64 = t.get("bytes");
        // `name` comes from format('%I.%I'): quoted by the server itself.
        let q = if bytes <= CHECKSUM_MAX_BYTES {
            format!(
                "{} SELECT count(*) AS n, md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) AS sum \
                 FROM (SELECT md5(t::text) AS h FROM {name} t) s",
                crate::conn::MARK
            )
        } else {
            format!(
                "{} SELECT count(*) AS n, NULL::text AS sum FROM {name}",
                crate::conn::MARK
            )
        };
        // A table that cannot be read (timeout, privilege) is recorded as unknown; the
        // savepoint keeps the transaction, and with it the exported snapshot, usable.
        sqlx::query(sql!("SAVEPOINT pgsteward_fact"))
            .execute(&mut *conn)
            .await?;
        match sqlx::query(&q).fetch_one(&mut *conn).await {
            Ok(r) => {
                sqlx::query(sql!("RELEASE SAVEPOINT pgsteward_fact"))
                    .execute(&mut *conn)
                    .await?;
                facts.push(TableFact {
                    name,
                    rows: r.get("n"),
                    checksum: r.get("sum"),
                });
            }
            Err(e) => {
                tracing::warn!(table = %name, error = %e, "table not counted for the backup's facts");
                sqlx::query(sql!("ROLLBACK TO SAVEPOINT pgsteward_fact"))
                    .execute(&mut *conn)
                    .await?;
                facts.push(TableFact {
                    name,
                    rows: UNKNOWN,
                    checksum: None,
                });
            }
        }
    }
    Ok(facts)
}

/// `rows` of a table that could not be read at backup time.
pub const UNKNOWN: i64 = -1;

/// Differences between the facts recorded at backup time and those of a restore, one sentence
/// each; empty when they agree. A checksum is compared only when both sides have one.
pub fn compare(recorded: &[TableFact], restored: &[TableFact]) -> Vec<String> {
    let mut out = Vec::new();
    for r in recorded.iter().filter(|r| r.rows != UNKNOWN) {
        match restored.iter().find(|x| x.name == r.name) {
            None => out.push(format!("{} is missing after the restore", r.name)),
            Some(x) if x.rows != r.rows => out.push(format!(
                "{} has {} rows after the restore, {} at backup time",
                r.name, x.rows, r.rows
            )),
            Some(x) => {
                if let (Some(a), Some(b)) = (&r.checksum, &x.checksum) {
                    if a != b {
                        out.push(format!(
                            "{} has the same number of rows but different contents",
                            r.name
                        ));
                    }
                }
            }
        }
    }
    for x in restored {
        if !recorded.iter().any(|r| r.name == x.name) && !recorded.is_empty() {
            out.push(format!(
                "{} appears after the restore but was not backed up",
                x.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, rows: i64, sum: Option<&str>) -> TableFact {
        TableFact {
            name: name.into(),
            rows,
            checksum: sum.map(str::to_string),
        }
    }

    #[test]
    fn differences_are_named() {
        let before = [f("a", 3, Some("x")), f("b", 5, Some("y")), f("c", 1, None)];
        assert!(compare(&before, &before).is_empty());
        let after = [f("a", 3, Some("z")), f("c", 2, None), f("d", 0, Some("w"))];
        let d = compare(&before, &after);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[0].contains("different contents"));
        assert!(d[1].contains("b is missing"));
        assert!(d[2].contains("2 rows after the restore, 1 at backup time"));
        assert!(d[3].contains("d appears"));
        // A table counted only (too large to checksum) is compared by count.
        assert!(compare(&[f("e", 9, None)], &[f("e", 9, Some("q"))]).is_empty());
    }
}
