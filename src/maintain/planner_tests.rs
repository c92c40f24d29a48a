//! Unit tests of the planner: thresholds, minimum sizes, wraparound, quoting, REINDEX only on
//! measured bloat, and ids that follow the object.

use super::*;
use crate::maintain::bloat::{estimate_table, FigureSource};

fn entry(name: &str, live: i64, dead: i64, modified: i64, heap: i64, analyzed: bool) -> TableEntry {
    let stats = TableStats {
        oid: name
            .bytes()
            .fold(16384i64, |h, b| (h * 31 + b as i64) % 1_000_000_007),
        schema: "public".into(),
        name: name.into(),
        live_tuples: live,
        dead_tuples: dead,
        mod_since_analyze: modified,
        reltuples: if analyzed { live as f64 } else { -1.0 },
        relpages: heap / 8192,
        seq_scan: 0,
        seq_tup_read: 0,
        idx_scan: 0,
        last_vacuum: None,
        last_autovacuum: None,
        last_analyze: analyzed.then(|| "2026-01-01T00:00:00Z".into()),
        last_autoanalyze: None,
        heap_bytes: heap,
        toast_bytes: 0,
        index_bytes: 0,
        xid_age: 100,
        fillfactor: 100.0,
        options: vec![],
        columns: 2,
        columns_with_stats: 2,
        data_width: 40.0,
        has_nulls: false,
    };
    let cfg = MaintenanceConfig::default();
    TableEntry {
        estimate: estimate_table(&stats, 8192),
        below_minimum: below_minimum(&stats, &cfg),
        measured: None,
        stats,
    }
}

fn plan(tables: &[TableEntry]) -> Vec<PlannedAction> {
    plan_actions(
        tables,
        &[],
        200_000_000,
        false,
        &MaintenanceConfig::default(),
        &PlanRequest::default(),
    )
    .unwrap()
    .0
}

#[test]
fn thresholds_pick_the_statement() {
    const MB: i64 = 1024 * 1024;
    let a = plan(&[
        entry("dead", 70_000, 30_000, 0, 10 * MB, true),
        entry("fine", 90_000, 10_000, 1000, 10 * MB, true),
        entry("fresh", 50_000, 0, 50_000, 10 * MB, false),
        entry("both", 50_000, 50_000, 20_000, 10 * MB, true),
    ]);
    let kinds: Vec<_> = a.iter().map(|a| (a.table.as_str(), a.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("both", ActionKind::VacuumAnalyze),
            ("dead", ActionKind::Vacuum),
            ("fresh", ActionKind::Analyze)
        ]
    );
    assert_eq!(a[1].sql, "VACUUM \"public\".\"dead\"");
    assert_eq!(a[1].lock, "ShareUpdateExclusiveLock");
    assert!(a[1].evidence[0].contains("30.0 %"), "{:?}", a[1].evidence);
    let ids: Vec<u64> = a.iter().map(|a| a.id).collect();
    assert_eq!(ids[1], action_id(ActionKind::Vacuum, a[1].id as i64 / 10));
    let picked = select(&a, false, &[ids[2], ids[0], ids[2]]).unwrap();
    assert_eq!(
        picked.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    assert_eq!(select(&a, true, &[]).unwrap().len(), 3);
    assert!(a.iter().all(|a| a.statement_timeout_seconds >= 300.0));
}

#[test]
fn ids_follow_the_object_not_the_position() {
    const MB: i64 = 1024 * 1024;
    let dead = || entry("dead", 70_000, 30_000, 0, 10 * MB, true);
    let fresh = || entry("fresh", 50_000, 0, 50_000, 10 * MB, false);
    let first = plan(&[dead(), fresh()]);
    let again = plan(&[dead(), fresh()]);
    let ids = |p: &[PlannedAction]| p.iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    // A table that needs nothing any more drops out; the other keeps its id.
    let fewer = plan(&[
        entry("both", 50_000, 50_000, 20_000, 10 * MB, true),
        fresh(),
    ]);
    let fresh_id = first.iter().find(|a| a.table == "fresh").unwrap().id;
    assert_eq!(
        fewer.iter().find(|a| a.table == "fresh").unwrap().id,
        fresh_id
    );
    let dead_id = first.iter().find(|a| a.table == "dead").unwrap().id;
    let e = select(&fewer, false, &[dead_id]).unwrap_err();
    assert_eq!(e.code, ErrorCode::PlanChanged);
    // The same table wanting another statement now is named in the error.
    let changed = plan(&[entry("dead", 50_000, 50_000, 20_000, 10 * MB, true)]);
    let e = select(&changed, false, &[dead_id]).unwrap_err();
    assert_eq!(e.code, ErrorCode::PlanChanged);
    assert!(e.message.contains("vacuum_analyze"), "{}", e.message);
}

#[test]
fn small_tables_are_left_alone_unless_wraparound_nears() {
    let mut tiny = entry("tiny", 500, 400, 500, 64 * 1024, true);
    assert!(plan(std::slice::from_ref(&tiny)).is_empty());
    tiny.stats.xid_age = 170_000_000;
    let a = plan(&[tiny]);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, ActionKind::VacuumFreeze);
    assert_eq!(a[0].sql, "VACUUM (FREEZE) \"public\".\"tiny\"");
}

#[test]
fn freeze_comes_first_and_odd_names_are_quoted() {
    const MB: i64 = 1024 * 1024;
    let mut old = entry("zz", 100_000, 0, 0, 10 * MB, true);
    old.stats.xid_age = 190_000_000;
    let odd = entry("Ärger's \"T\"", 70_000, 30_000, 0, 10 * MB, true);
    let a = plan(&[odd, old]);
    assert_eq!(a[0].table, "zz");
    assert_eq!(a[1].sql, "VACUUM \"public\".\"Ärger's \"\"T\"\"\"");
}

#[test]
fn reindex_only_on_a_measured_figure() {
    const MB: i64 = 1024 * 1024;
    let t = entry("t", 100_000, 0, 0, 10 * MB, true);
    let stats = IndexStats {
        oid: 99,
        table_oid: t.stats.oid,
        schema: "public".into(),
        table: "t".into(),
        name: "t_k".into(),
        method: "btree".into(),
        scans: 10,
        bytes: 8 * MB,
        relpages: 1024,
        reltuples: 100_000.0,
        valid: true,
        unique: false,
        primary: false,
        partial: false,
        expression: false,
        backs_constraint: false,
        columns: vec![2],
        key_columns: 1,
        definition: String::new(),
        fillfactor: 90.0,
        deduplicate_items: true,
        data_width: 4.0,
        columns_with_stats: 1,
        leading_n_distinct: Some(-1.0),
        signature: String::new(),
    };
    let estimate = crate::maintain::bloat::estimate_index(&stats, 8192, 150000);
    assert!(estimate.bloat_percent > 30.0);
    let mut ix = IndexEntry {
        stats,
        estimate,
        measured: None,
    };
    let cfg = MaintenanceConfig::default();
    assert!(worth_measuring(&ix, &cfg, false));
    let run = |ix: &IndexEntry| {
        plan_actions(
            std::slice::from_ref(&t),
            std::slice::from_ref(ix),
            200_000_000,
            true,
            &cfg,
            &PlanRequest::default(),
        )
        .unwrap()
    };
    let (a, notes) = run(&ix);
    assert!(a.is_empty());
    assert_eq!(notes.len(), 1);
    ix.measured = Some(BloatFigure {
        source: FigureSource::Measured,
        bloat_percent: 55.0,
        bloat_bytes: 4 * MB,
        actual_bytes: 8 * MB,
        dead_percent: None,
        caveats: vec![],
    });
    let (a, _) = run(&ix);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].sql, "REINDEX INDEX CONCURRENTLY \"public\".\"t_k\"");
    assert_eq!(a[0].bloat.as_ref().unwrap().source, FigureSource::Measured);
    // CLUSTER only on request, and never on an index of another table.
    let req = PlanRequest {
        cluster_table: Some("t".into()),
        cluster_index: Some("t_k".into()),
        measure: false,
    };
    let (a, _) = plan_actions(
        std::slice::from_ref(&t),
        std::slice::from_ref(&ix),
        200_000_000,
        true,
        &cfg,
        &req,
    )
    .unwrap();
    let c = a.iter().find(|a| a.kind == ActionKind::Cluster).unwrap();
    assert_eq!(c.sql, "CLUSTER \"public\".\"t\" USING \"t_k\"");
    assert_eq!(c.lock, "AccessExclusiveLock");
    let bad = PlanRequest {
        cluster_index: Some("nope".into()),
        ..req
    };
    assert!(plan_actions(&[t], &[ix], 200_000_000, true, &cfg, &bad).is_err());
}
