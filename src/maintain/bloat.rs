//! Bloat: how much of a table or B-tree index is empty space.
//!
//! Two sources, always labelled. The estimate needs no extension: it compares the pages a
//! relation has with the pages its rows would need, from the row count, the average column
//! widths in `pg_stats`, tuple headers, alignment and fillfactor. It is cheap but blind in known
//! places (TOAST-heavy tables, tiny relations, partial and expression indexes, missing
//! statistics, deduplicated B-trees on 13+), so those rows carry caveats and are never acted
//! on by themselves. The measurement reads the pages with `pgstattuple` / `pgstatindex`
//! (or `pgstattuple_approx` for large tables) and is what a REINDEX is justified by.

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::stats::{IndexStats, TableStats};
use crate::conn::PooledConn;
use crate::error::Result;
use crate::sql;

const PAGE_HEADER: f64 = 24.0;
const ITEM_ID: f64 = 4.0;
const HEAP_TUPLE_HEADER: f64 = 23.0;
const INDEX_TUPLE_HEADER: f64 = 8.0;
const BTREE_SPECIAL: f64 = 16.0;
const MAXALIGN: f64 = 8.0;
/// Relations with fewer pages than this are too small for the estimate to mean anything.
const TINY_PAGES: i64 = 128;

/// Whether a figure was estimated from statistics or measured by reading pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FigureSource {
    Estimated,
    /// pgstattuple or pgstatindex read every page.
    Measured,
    /// pgstattuple_approx (visibility map plus a sample of pages).
    MeasuredApprox,
}

/// Why an estimate cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum BloatCaveat {
    /// No ANALYZE yet, or some columns have no statistics (or the role cannot read them).
    MissingStatistics,
    /// Most of the data lives in TOAST, which the estimate does not see.
    ToastHeavy,
    /// Too few pages for a percentage to mean anything.
    Tiny,
    PartialIndex,
    ExpressionIndex,
    /// B-tree deduplication (PostgreSQL 13+) stores duplicates compactly: the estimate
    /// overstates the space the index needs.
    Deduplicated,
    /// Not a B-tree: no estimate.
    NotBtree,
}

/// Bloat of one relation.
#[derive(Debug, Clone, Serialize, TS)]
pub struct BloatFigure {
    pub source: FigureSource,
    /// Share of the relation that is not live data, percent.
    pub bloat_percent: f64,
    #[ts(type = "number")]
    pub bloat_bytes: i64,
    #[ts(type = "number")]
    pub actual_bytes: i64,
    /// Dead tuples, percent (measured tables only).
    pub dead_percent: Option<f64>,
    /// Reasons the figure is unreliable; empty for a measured figure.
    pub caveats: Vec<BloatCaveat>,
}

impl BloatFigure {
    pub fn reliable(&self) -> bool {
        self.caveats.is_empty()
    }
}

fn align(v: f64) -> f64 {
    (v / MAXALIGN).ceil() * MAXALIGN
}

/// Expected pages and bloat from a per-tuple size.
fn estimate(
    relpages: i64,
    reltuples: f64,
    tuple_bytes: f64,
    usable: f64,
    extra_pages: f64,
    block: f64,
) -> (f64, i64) {
    let per_page = (usable / (tuple_bytes + ITEM_ID)).floor().max(1.0);
    let expected = (reltuples.max(0.0) / per_page).ceil() + extra_pages;
    let actual = relpages as f64;
    if actual <= 0.0 {
        return (0.0, 0);
    }
    let bloat_pages = (actual - expected).max(0.0);
    (bloat_pages / actual * 100.0, (bloat_pages * block) as i64)
}

/// The no-extension estimate for a table.
pub fn estimate_table(t: &TableStats, block_size: i64) -> BloatFigure {
    let block = block_size as f64;
    let bitmap = if t.has_nulls {
        (t.columns as f64 / 8.0).ceil()
    } else {
        0.0
    };
    let tuple = align(HEAP_TUPLE_HEADER + bitmap) + align(t.data_width);
    let usable = (block - PAGE_HEADER) * t.fillfactor / 100.0;
    let (pct, bytes) = estimate(t.relpages, t.reltuples, tuple, usable, 0.0, block);
    let mut caveats = Vec::new();
    if t.reltuples < 0.0 || t.columns_with_stats < t.columns {
        caveats.push(BloatCaveat::MissingStatistics);
    }
    if t.toast_bytes > t.heap_bytes {
        caveats.push(BloatCaveat::ToastHeavy);
    }
    if t.relpages < TINY_PAGES {
        caveats.push(BloatCaveat::Tiny);
    }
    BloatFigure {
        source: FigureSource::Estimated,
        bloat_percent: round1(pct),
        bloat_bytes: bytes,
        actual_bytes: t.relpages * block_size,
        dead_percent: None,
        caveats,
    }
}

/// The no-extension estimate for a B-tree index (leaf level; inner pages are a rounding error).
pub fn estimate_index(i: &IndexStats, block_size: i64, server_version_num: i32) -> BloatFigure {
    let block = block_size as f64;
    let tuple = align(INDEX_TUPLE_HEADER + i.data_width);
    let usable = (block - PAGE_HEADER - BTREE_SPECIAL) * i.fillfactor / 100.0;
    // One metapage, plus the root when the index has more than one level.
    let (pct, bytes) = estimate(i.relpages, i.reltuples, tuple, usable, 1.0, block);
    let mut caveats = Vec::new();
    if i.method != "btree" {
        caveats.push(BloatCaveat::NotBtree);
    }
    let indexed = i.columns.iter().filter(|c| **c > 0).count() as i64;
    if i.reltuples < 0.0 || i.columns_with_stats < indexed {
        caveats.push(BloatCaveat::MissingStatistics);
    }
    if i.partial {
        caveats.push(BloatCaveat::PartialIndex);
    }
    if i.expression {
        caveats.push(BloatCaveat::ExpressionIndex);
    }
    if i.relpages < TINY_PAGES {
        caveats.push(BloatCaveat::Tiny);
    }
    if server_version_num >= 130000
        && i.method == "btree"
        && !i.unique
        && i.deduplicate_items
        && has_duplicates(i.leading_n_distinct, i.reltuples)
    {
        caveats.push(BloatCaveat::Deduplicated);
    }
    BloatFigure {
        source: FigureSource::Estimated,
        bloat_percent: round1(pct),
        bloat_bytes: bytes,
        actual_bytes: i.relpages * block_size,
        dead_percent: None,
        caveats,
    }
}

/// Whether the leading column repeats values enough for deduplication to matter.
fn has_duplicates(n_distinct: Option<f64>, reltuples: f64) -> bool {
    match n_distinct {
        None => true,
        Some(d) if d < 0.0 => d > -0.9,
        Some(d) => reltuples > 0.0 && d < reltuples * 0.9,
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Whether pgstattuple is installed in the project's database.
pub async fn pgstattuple_installed(conn: &mut PooledConn) -> Result<bool> {
    Ok(sqlx::query_scalar(sql!(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple')"
    ))
    .fetch_one(&mut **conn)
    .await?)
}

/// Measure a table: pgstattuple, or pgstattuple_approx when `approx`.
pub async fn measure_table(conn: &mut PooledConn, oid: i64, approx: bool) -> Result<BloatFigure> {
    let (q, source) = if approx {
        (
            sql!(
                "SELECT table_len::int8 AS len, approx_free_space::int8 AS free,
                        dead_tuple_len::int8 AS dead_len, dead_tuple_percent::float8 AS dead_pct
                   FROM pgstattuple_approx($1::oid::regclass)"
            ),
            FigureSource::MeasuredApprox,
        )
    } else {
        (
            sql!(
                "SELECT table_len::int8 AS len, free_space::int8 AS free,
                        dead_tuple_len::int8 AS dead_len, dead_tuple_percent::float8 AS dead_pct
                   FROM pgstattuple($1::oid::regclass)"
            ),
            FigureSource::Measured,
        )
    };
    let r = sqlx::query(q).bind(oid).fetch_one(&mut **conn).await?;
    let len: i64 = r.get("len");
    let waste = r.get::<i64, _>("free") + r.get::<i64, _>("dead_len");
    Ok(BloatFigure {
        source,
        bloat_percent: if len > 0 {
            round1(waste as f64 / len as f64 * 100.0)
        } else {
            0.0
        },
        bloat_bytes: waste,
        actual_bytes: len,
        dead_percent: Some(r.get("dead_pct")),
        caveats: vec![],
    })
}

/// Measure a B-tree index with pgstatindex: bloat is the room the leaf pages leave unused
/// below their fillfactor, plus empty and deleted pages.
pub async fn measure_index(
    conn: &mut PooledConn,
    oid: i64,
    fillfactor: f64,
) -> Result<BloatFigure> {
    let r = sqlx::query(sql!(
        "SELECT index_size::int8 AS len, leaf_pages::int8 AS leaf, empty_pages::int8 AS empty,
                deleted_pages::int8 AS deleted, avg_leaf_density::float8 AS density
           FROM pgstatindex($1::oid::regclass)"
    ))
    .bind(oid)
    .fetch_one(&mut **conn)
    .await?;
    let len: i64 = r.get("len");
    let density: f64 = r.get("density");
    let pct = index_bloat_from_density(
        density,
        fillfactor,
        r.get("leaf"),
        r.get::<i64, _>("empty") + r.get::<i64, _>("deleted"),
    );
    Ok(BloatFigure {
        source: FigureSource::Measured,
        bloat_percent: round1(pct),
        bloat_bytes: (len as f64 * pct / 100.0) as i64,
        actual_bytes: len,
        dead_percent: None,
        caveats: vec![],
    })
}

/// Bloat percent of an index from pgstatindex's leaf density (NaN for an empty index).
pub fn index_bloat_from_density(density: f64, fillfactor: f64, leaf: i64, unused: i64) -> f64 {
    let total = (leaf + unused) as f64;
    if total <= 0.0 || !density.is_finite() {
        return 0.0;
    }
    let used = leaf as f64 * (density / fillfactor).min(1.0);
    ((1.0 - used / total) * 100.0).clamp(0.0, 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(relpages: i64, reltuples: f64, width: f64) -> TableStats {
        TableStats {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            live_tuples: reltuples as i64,
            dead_tuples: 0,
            mod_since_analyze: 0,
            reltuples,
            relpages,
            seq_scan: 0,
            seq_tup_read: 0,
            idx_scan: 0,
            last_vacuum: None,
            last_autovacuum: None,
            last_analyze: None,
            last_autoanalyze: None,
            heap_bytes: relpages * 8192,
            toast_bytes: 0,
            index_bytes: 0,
            xid_age: 0,
            fillfactor: 100.0,
            options: vec![],
            columns: 2,
            columns_with_stats: 2,
            data_width: width,
            has_nulls: false,
        }
    }

    #[test]
    fn table_estimate_matches_hand_arithmetic() {
        // 24-byte header + 40 bytes of data = 64 bytes + 4-byte item id: 120 tuples per page.
        let t = table(1000, 60_000.0, 40.0);
        let f = estimate_table(&t, 8192);
        // 60000 / 120 = 500 pages expected of 1000: half is bloat.
        assert_eq!(f.bloat_percent, 50.0);
        assert_eq!(f.bloat_bytes, 500 * 8192);
        assert!(f.reliable());
        // A tight table has none.
        assert_eq!(
            estimate_table(&table(500, 60_000.0, 40.0), 8192).bloat_percent,
            0.0
        );
        // Fillfactor leaves room on purpose: that room is not bloat.
        let mut ff = table(1000, 60_000.0, 40.0);
        ff.fillfactor = 50.0;
        assert!(estimate_table(&ff, 8192).bloat_percent < 1.0);
    }

    #[test]
    fn unreliable_tables_say_why() {
        let mut t = table(10, -1.0, 40.0);
        t.toast_bytes = t.heap_bytes * 3;
        let f = estimate_table(&t, 8192);
        assert!(f.caveats.contains(&BloatCaveat::MissingStatistics));
        assert!(f.caveats.contains(&BloatCaveat::ToastHeavy));
        assert!(f.caveats.contains(&BloatCaveat::Tiny));
        assert_eq!(f.source, FigureSource::Estimated);
    }

    #[test]
    fn index_density_to_bloat() {
        // Leaves packed to the fillfactor: no bloat.
        assert_eq!(index_bloat_from_density(90.0, 90.0, 100, 0), 0.0);
        // Leaves a third full, and as many empty pages again as leaves: 5/6 wasted.
        let b = index_bloat_from_density(30.0, 90.0, 100, 100);
        assert!((b - 83.33).abs() < 0.1, "{b}");
        assert_eq!(index_bloat_from_density(f64::NAN, 90.0, 0, 0), 0.0);
    }

    #[test]
    fn duplicates_matter_only_when_values_repeat() {
        assert!(!has_duplicates(Some(-1.0), 1000.0));
        assert!(has_duplicates(Some(-0.2), 1000.0));
        assert!(has_duplicates(Some(10.0), 1000.0));
        assert!(!has_duplicates(Some(1000.0), 1000.0));
    }
}
