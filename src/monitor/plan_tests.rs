//! Unit tests of the plan reader on EXPLAIN output saved from PostgreSQL 15 and 18 (the fixtures
//! folder): each rule, without a server.

use super::*;

fn fixture(name: &str) -> ParsedPlan {
    let text = match name {
        "seqscan15" => include_str!("fixtures/explain-seqscan15.json"),
        "seqscan18" => include_str!("fixtures/explain-seqscan18.json"),
        "spill18" => include_str!("fixtures/explain-spill18.json"),
        "hashspill15" => include_str!("fixtures/explain-hashspill15.json"),
        "nestloop18" => include_str!("fixtures/explain-nestloop18.json"),
        "misest18" => include_str!("fixtures/explain-misest18.json"),
        "delete15" => include_str!("fixtures/explain-delete15.json"),
        "plain15" => include_str!("fixtures/explain-plain15.json"),
        "never18" => include_str!("fixtures/explain-never18.json"),
        "cte-delete15" => include_str!("fixtures/explain-cte-delete15.json"),
        _ => unreachable!(),
    };
    parse(text).unwrap()
}

fn kinds(p: &ParsedPlan) -> Vec<HintKind> {
    p.hints.iter().map(|h| h.kind).collect()
}

fn walk<'a>(n: &'a PlanNode, out: &mut Vec<&'a PlanNode>) {
    out.push(n);
    for c in &n.children {
        walk(c, out);
    }
}

#[test]
fn selective_seq_scan_on_a_large_table_gets_the_index_hint() {
    for name in ["seqscan15", "seqscan18"] {
        let p = fixture(name);
        let r = &p.root;
        assert_eq!(r.node_type, "Seq Scan");
        assert_eq!(r.relation.as_deref(), Some("orders"));
        assert_eq!(r.actual_rows_total, Some(100.0));
        assert_eq!(r.rows_removed_by_filter, Some(49900.0));
        assert_eq!(kinds(&p), vec![HintKind::SeqScanSelective], "{name}");
        let msg = &p.hints[0].message;
        assert!(msg.contains("read 50000 rows to keep 100 (0.2 %)"), "{msg}");
        assert!(msg.contains("status = 'open'"), "{msg}");
        assert_eq!(p.hints[0].node_id, 0);
        let b = r.buffers.as_ref().unwrap();
        assert_eq!((b.shared_hit, b.shared_read), (569, 0));
        assert!(p.planning_ms.is_some() && p.execution_ms.is_some());
        assert_eq!(r.misestimate.as_ref().unwrap().level, MisestimateLevel::Ok);
    }
}

#[test]
fn sort_spilling_to_disk_is_flagged() {
    let p = fixture("spill18");
    assert_eq!(p.root.node_type, "Sort");
    assert_eq!(p.root.sort_space_type.as_deref(), Some("Disk"));
    assert_eq!(p.root.sort_key, vec!["o.note", "o.id"]);
    assert!(p.root.buffers.as_ref().unwrap().temp_written > 0);
    assert!(kinds(&p).contains(&HintKind::SortSpill));
    assert!(!kinds(&p).contains(&HintKind::HashSpill), "one batch only");
}

#[test]
fn hash_with_several_batches_is_flagged() {
    let p = fixture("hashspill15");
    let mut all = Vec::new();
    walk(&p.root, &mut all);
    let hash = all.iter().find(|n| n.node_type == "Hash").unwrap();
    assert_eq!(hash.hash_batches, Some(32));
    let h: Vec<_> = p
        .hints
        .iter()
        .filter(|h| h.kind == HintKind::HashSpill)
        .collect();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].node_id, hash.id);
    assert!(h[0].message.contains("32 batches"));
}

#[test]
fn nested_loop_with_many_outer_rows_is_flagged() {
    let p = fixture("nestloop18");
    assert_eq!(p.root.node_type, "Aggregate");
    let nl = &p.root.children[0];
    assert_eq!(nl.node_type, "Nested Loop");
    let h: Vec<_> = p
        .hints
        .iter()
        .filter(|h| h.kind == HintKind::NestedLoopManyOuter)
        .collect();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].node_id, nl.id);
    assert!(
        h[0].message.contains("yielded 50000 rows"),
        "{}",
        h[0].message
    );
    // The Memoize under it ran once per outer row.
    let memo = &nl.children[1];
    assert_eq!(memo.node_type, "Memoize");
    assert_eq!(memo.loops, Some(50000.0));
}

#[test]
fn misestimate_factor_level_and_hint() {
    let p = fixture("misest18");
    let m = p.root.misestimate.as_ref().unwrap();
    assert!(m.underestimated);
    assert!((m.factor - 1000.0 / 9.0).abs() < 1e-9);
    assert_eq!(m.level, MisestimateLevel::Hundredfold);
    assert!(kinds(&p).contains(&HintKind::Misestimate));
    assert_eq!(MisestimateLevel::of(9.99), MisestimateLevel::Ok);
    assert_eq!(MisestimateLevel::of(10.0), MisestimateLevel::Tenfold);
    assert_eq!(MisestimateLevel::of(100.0), MisestimateLevel::Hundredfold);
    assert_eq!(MisestimateLevel::of(1000.0), MisestimateLevel::Thousandfold);
}

#[test]
fn delete_plan_names_the_operation_and_trigger_time() {
    let p = fixture("delete15");
    assert_eq!(p.root.node_type, "Delete");
    assert_eq!(p.root.relation.as_deref(), Some("orders"));
    assert_eq!(p.root.children[0].node_type, "Index Scan");
    assert_eq!(p.root.children[0].index.as_deref(), Some("orders_pkey"));
    assert_eq!(p.triggers.len(), 1);
    assert_eq!(
        p.triggers[0].constraint.as_deref(),
        Some("items_order_id_fkey")
    );
    assert_eq!(p.triggers[0].calls, 100.0);
}

#[test]
fn times_are_inclusive_over_loops_and_exclusive_without_children() {
    let p = fixture("nestloop18");
    let mut all = Vec::new();
    walk(&p.root, &mut all);
    for n in &all {
        let inc = n.inclusive_ms.unwrap();
        let exc = n.exclusive_ms.unwrap();
        assert!(exc >= 0.0 && exc <= inc + 1e-9, "{}", n.node_type);
        let kids: f64 = n.children.iter().map(|c| c.inclusive_ms.unwrap()).sum();
        assert!((exc - (inc - kids).max(0.0)).abs() < 1e-9);
    }
    let memo = &p.root.children[0].children[1];
    // Per-loop time × loops.
    let raw: Value =
        serde_json::from_str(include_str!("fixtures/explain-nestloop18.json")).unwrap();
    let per_loop = raw[0]["Plan"]["Plans"][0]["Plans"][1]["Actual Total Time"]
        .as_f64()
        .unwrap();
    assert!((memo.inclusive_ms.unwrap() - per_loop * 50000.0).abs() < 1e-6);
    // Ids follow a depth-first walk.
    let ids: Vec<u32> = all.iter().map(|n| n.id).collect();
    assert_eq!(ids, (0..all.len() as u32).collect::<Vec<_>>());
}

#[test]
fn cte_time_is_not_subtracted_twice() {
    let p = fixture("cte-delete15");
    let agg = &p.root;
    let (cte, scan) = (&agg.children[0], &agg.children[1]);
    assert_eq!(cte.node_type, "Delete");
    assert_eq!(cte.subplan.as_deref(), Some("CTE d"));
    assert_eq!(scan.node_type, "CTE Scan");
    let want = agg.inclusive_ms.unwrap() - scan.inclusive_ms.unwrap();
    assert!((agg.exclusive_ms.unwrap() - want).abs() < 1e-9);
    assert!(agg.exclusive_ms.unwrap() > 0.0);
}

#[test]
fn plan_without_analyze_has_estimates_only() {
    let p = fixture("plain15");
    assert_eq!(p.root.node_type, "Hash Join");
    assert_eq!(p.root.join_cond.as_deref(), Some("(o.customer = c.id)"));
    assert!(p.root.actual_rows.is_none() && p.root.inclusive_ms.is_none());
    assert!(p.root.misestimate.is_none() && p.root.buffers.is_none());
    assert!(p.execution_ms.is_none());
    assert!(p.hints.is_empty());
    assert_eq!(p.root.children[0].index_cond.as_deref(), Some("(id < 10)"));
}

#[test]
fn never_executed_nodes_get_no_misestimate() {
    let p = fixture("never18");
    let mut all = Vec::new();
    walk(&p.root, &mut all);
    let never = all.iter().find(|n| n.loops == Some(0.0)).unwrap();
    assert!(never.misestimate.is_none());
    assert_eq!(never.inclusive_ms, Some(0.0));
    assert!(p.hints.is_empty());
}

#[test]
fn malformed_plans_are_errors_not_panics() {
    for bad in [
        "",
        "{}",
        "[]",
        "[1]",
        "[{}]",
        r#"[{"Plan": {}}]"#,
        r#"[{"Plan": {"Node Type": "Result", "Plans": [3]}}]"#,
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    let deep = format!(
        "[{{\"Plan\": {}{}}}]",
        r#"{"Node Type": "Result", "Plans": ["#.repeat(1100),
        "]}".repeat(1100)
    );
    assert!(parse(&deep).is_err());
}

#[test]
fn a_small_hand_written_plan() {
    // A nested loop whose outer side is only estimated (no ANALYZE) still gets the hint.
    let json = r#"[{"Plan": {"Node Type": "Nested Loop", "Plan Rows": 50000, "Total Cost": 1.0,
        "Plans": [
          {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "a", "Plan Rows": 20000},
          {"Node Type": "Index Scan", "Parent Relationship": "Inner", "Relation Name": "b", "Index Name": "b_pkey", "Plan Rows": 1}
        ]}}]"#;
    let p = parse(json).unwrap();
    assert_eq!(kinds(&p), vec![HintKind::NestedLoopManyOuter]);
    assert!(p.hints[0]
        .message
        .contains("is expected to yield 20000 rows"));
}
