//! The model of a query plan, read from `EXPLAIN (FORMAT JSON)`, with the hints a DBA would give.
//!
//! PostgreSQL's JSON plan is complete but raw: times are per loop and include children, row
//! counts are per loop, buffers include children. This module turns it into a tree a person
//! can read (inclusive and exclusive time, estimated against actual rows with a misestimate
//! factor, buffers, loops) and points at the usual suspects: a sequential scan of a large table
//! that keeps few rows, a sort or hash that spilled to disk, a row estimate off by 100× or more,
//! a nested loop driven by many outer rows. [`parse`] is a pure function of the JSON text so
//! every rule is tested on fixtures without a server.

use serde::Serialize;
use serde_json::{Map, Value};
use ts_rs::TS;

use crate::error::{Error, Result};

/// A sequential scan reading more rows than this...
pub const SEQ_SCAN_LARGE_ROWS: f64 = 10_000.0;
/// ...and keeping less than this share of them gets the index hint.
pub const SEQ_SCAN_SELECTIVE_SHARE: f64 = 0.10;
/// Misestimates from this factor on get a hint.
pub const MISESTIMATE_HINT_FACTOR: f64 = 100.0;
/// A nested loop whose outer side yields more rows than this gets a hint.
pub const NESTED_LOOP_OUTER_ROWS: f64 = 10_000.0;

/// How far the row estimate was from the actual count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MisestimateLevel {
    /// Less than 10× off.
    Ok,
    /// 10× or more.
    Tenfold,
    /// 100× or more.
    Hundredfold,
    /// 1000× or more.
    Thousandfold,
}

impl MisestimateLevel {
    pub fn of(factor: f64) -> Self {
        if factor >= 1000.0 {
            MisestimateLevel::Thousandfold
        } else if factor >= 100.0 {
            MisestimateLevel::Hundredfold
        } else if factor >= 10.0 {
            MisestimateLevel::Tenfold
        } else {
            MisestimateLevel::Ok
        }
    }
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct Misestimate {
    /// max(estimated, actual) / min(estimated, actual), both per loop and counted as at least 1.
    pub factor: f64,
    /// The planner expected fewer rows than came.
    pub underestimated: bool,
    pub level: MisestimateLevel,
}

/// Buffer counters of a node, including its children (as PostgreSQL reports them).
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct Buffers {
    #[ts(type = "number")]
    pub shared_hit: u64,
    #[ts(type = "number")]
    pub shared_read: u64,
    #[ts(type = "number")]
    pub shared_dirtied: u64,
    #[ts(type = "number")]
    pub shared_written: u64,
    #[ts(type = "number")]
    pub local_hit: u64,
    #[ts(type = "number")]
    pub local_read: u64,
    #[ts(type = "number")]
    pub temp_read: u64,
    #[ts(type = "number")]
    pub temp_written: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum HintKind {
    /// A sequential scan of a large table kept a small share of its rows.
    SeqScanSelective,
    /// A sort wrote to disk.
    SortSpill,
    /// A hash (join or aggregate) needed more than one batch.
    HashSpill,
    /// The row estimate was off by 100× or more.
    Misestimate,
    /// A nested loop ran its inner side for many outer rows.
    NestedLoopManyOuter,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct PlanHint {
    /// `id` of the node the hint is about.
    pub node_id: u32,
    pub kind: HintKind,
    pub message: String,
}

/// One node of the plan tree.
#[derive(Debug, Clone, Serialize, TS)]
pub struct PlanNode {
    /// Position in a depth-first walk, from 0 at the root.
    pub id: u32,
    /// "Seq Scan", "Hash Join", "Sort"... (for ModifyTable, the operation: "Delete"...).
    pub node_type: String,
    /// "Outer", "Inner", "InitPlan", "SubPlan"...
    pub parent_relationship: Option<String>,
    pub join_type: Option<String>,
    pub relation: Option<String>,
    pub alias: Option<String>,
    pub index: Option<String>,
    /// "Subplan Name" ("CTE d", "InitPlan 1"...) of a subplan's top node, or the CTE a CTE Scan reads.
    pub subplan: Option<String>,
    pub filter: Option<String>,
    pub index_cond: Option<String>,
    /// Hash, merge or join condition.
    pub join_cond: Option<String>,
    pub sort_key: Vec<String>,
    pub startup_cost: f64,
    pub total_cost: f64,
    /// Rows the planner expected, per loop.
    pub estimated_rows: f64,
    /// Rows produced, per loop (ANALYZE only).
    pub actual_rows: Option<f64>,
    /// Times the node ran (ANALYZE only; 0 = never executed).
    pub loops: Option<f64>,
    /// Rows produced over all loops.
    pub actual_rows_total: Option<f64>,
    /// Rows read and thrown away by the filter, over all loops.
    pub rows_removed_by_filter: Option<f64>,
    pub misestimate: Option<Misestimate>,
    /// Time in this node and its children over all loops, in milliseconds.
    pub inclusive_ms: Option<f64>,
    /// Time in this node alone (inclusive minus children, never below 0), in milliseconds.
    /// A CTE's own plan is not subtracted from its owner: the CTE Scan reading it counts it.
    pub exclusive_ms: Option<f64>,
    pub buffers: Option<Buffers>,
    pub workers_planned: Option<u32>,
    pub workers_launched: Option<u32>,
    pub sort_method: Option<String>,
    /// "Memory" or "Disk".
    pub sort_space_type: Option<String>,
    pub sort_space_kb: Option<f64>,
    pub hash_batches: Option<u32>,
    pub original_hash_batches: Option<u32>,
    pub hints: Vec<PlanHint>,
    pub children: Vec<PlanNode>,
}

/// Time a trigger took (foreign keys are enforced by triggers: a classic hidden cost).
#[derive(Debug, Clone, Serialize, TS)]
pub struct TriggerTime {
    pub name: String,
    pub relation: Option<String>,
    pub constraint: Option<String>,
    pub time_ms: f64,
    pub calls: f64,
}

/// A parsed plan: the tree, totals and every hint in tree order.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ParsedPlan {
    pub root: PlanNode,
    /// Plans of further queries the statement was rewritten into (rules); rarely present.
    pub other_roots: Vec<PlanNode>,
    pub planning_ms: Option<f64>,
    pub execution_ms: Option<f64>,
    pub triggers: Vec<TriggerTime>,
    pub hints: Vec<PlanHint>,
}

fn bad(what: &str) -> Error {
    Error::internal(format!(
        "The plan PostgreSQL returned is not as expected: {what}."
    ))
}

fn f(o: &Map<String, Value>, k: &str) -> Option<f64> {
    o.get(k).and_then(Value::as_f64)
}

fn s(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

fn u(o: &Map<String, Value>, k: &str) -> u64 {
    o.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn fmt_rows(n: f64) -> String {
    let r = n.round();
    if (n - r).abs() < 1e-9 {
        format!("{r:.0}")
    } else {
        format!("{n:.2}")
    }
}

fn label(n: &PlanNode) -> String {
    match (&n.relation, &n.index) {
        (Some(r), _) => format!("{} on {r}", n.node_type),
        (None, Some(i)) => format!("{} on {i}", n.node_type),
        _ => n.node_type.clone(),
    }
}

/// Parse the output of `EXPLAIN (FORMAT JSON)` (with or without ANALYZE).
pub fn parse(json: &str) -> Result<ParsedPlan> {
    let v: Value = serde_json::from_str(json).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let top = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("no plan in the output"))?;
    let mut roots = Vec::new();
    let mut planning_ms = None;
    let mut execution_ms = None;
    let mut triggers = Vec::new();
    let mut next_id = 0u32;
    for entry in top {
        let o = entry
            .as_object()
            .ok_or_else(|| bad("a plan entry is not an object"))?;
        let plan = o
            .get("Plan")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("an entry has no \"Plan\""))?;
        roots.push(node(plan, &mut next_id, 0)?);
        if let Some(p) = f(o, "Planning Time") {
            *planning_ms.get_or_insert(0.0) += p;
        }
        if let Some(e) = f(o, "Execution Time") {
            *execution_ms.get_or_insert(0.0) += e;
        }
        for t in o
            .get("Triggers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = t.as_object() {
                triggers.push(TriggerTime {
                    name: s(t, "Trigger Name").unwrap_or_default(),
                    relation: s(t, "Relation"),
                    constraint: s(t, "Constraint Name"),
                    time_ms: f(t, "Time").unwrap_or(0.0),
                    calls: f(t, "Calls").unwrap_or(0.0),
                });
            }
        }
    }
    let mut hints = Vec::new();
    for r in &mut roots {
        add_hints(r, &mut hints);
    }
    let mut roots = roots.into_iter();
    let root = roots.next().expect("at least one plan");
    Ok(ParsedPlan {
        root,
        other_roots: roots.collect(),
        planning_ms,
        execution_ms,
        triggers,
        hints,
    })
}

/// Deepest nesting accepted; PostgreSQL's own limit on plan depth is far below this in practice.
const MAX_DEPTH: usize = 1000;

fn node(o: &Map<String, Value>, next_id: &mut u32, depth: usize) -> Result<PlanNode> {
    if depth > MAX_DEPTH {
        return Err(bad("the plan is nested too deeply"));
    }
    let id = *next_id;
    *next_id += 1;
    let raw_type = s(o, "Node Type").ok_or_else(|| bad("a node has no \"Node Type\""))?;
    let node_type = match (raw_type.as_str(), s(o, "Operation")) {
        ("ModifyTable", Some(op)) => op,
        _ => raw_type,
    };
    let loops = f(o, "Actual Loops");
    let actual_rows = loops.and(f(o, "Actual Rows"));
    let estimated_rows = f(o, "Plan Rows").unwrap_or(0.0);
    let per_loop_ms = loops.and(f(o, "Actual Total Time"));
    let has_buffers = o.contains_key("Shared Hit Blocks");
    let mut children = Vec::new();
    for c in o
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let c = c
            .as_object()
            .ok_or_else(|| bad("a child plan is not an object"))?;
        children.push(node(c, next_id, depth + 1)?);
    }
    let inclusive_ms = match (per_loop_ms, loops) {
        (Some(t), Some(l)) => Some(t * l),
        _ => None,
    };
    // A CTE's plan hangs under the node that owns it, but its time is counted in the CTE Scan
    // nodes that read it: subtracting it as well would count it twice.
    let exclusive_ms = inclusive_ms.map(|inc| {
        let kids: f64 = children
            .iter()
            .filter(|c| !is_cte_plan(c))
            .filter_map(|c| c.inclusive_ms)
            .sum();
        (inc - kids).max(0.0)
    });
    let misestimate = match (actual_rows, loops) {
        (Some(a), Some(l)) if l > 0.0 => {
            let (e1, a1) = (estimated_rows.max(1.0), a.max(1.0));
            let factor = e1.max(a1) / e1.min(a1);
            Some(Misestimate {
                factor,
                underestimated: a1 > e1,
                level: MisestimateLevel::of(factor),
            })
        }
        _ => None,
    };
    let join_cond = s(o, "Hash Cond")
        .or_else(|| s(o, "Merge Cond"))
        .or_else(|| s(o, "Join Filter"));
    let subplan = s(o, "Subplan Name").or_else(|| s(o, "CTE Name"));
    let sort_key = o
        .get("Sort Key")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let relation = s(o, "Relation Name").map(|r| match s(o, "Schema") {
        Some(schema) => format!("{schema}.{r}"),
        None => r,
    });
    Ok(PlanNode {
        id,
        node_type,
        parent_relationship: s(o, "Parent Relationship"),
        join_type: s(o, "Join Type"),
        relation,
        alias: s(o, "Alias"),
        index: s(o, "Index Name"),
        subplan,
        filter: s(o, "Filter"),
        index_cond: s(o, "Index Cond"),
        join_cond,
        sort_key,
        startup_cost: f(o, "Startup Cost").unwrap_or(0.0),
        total_cost: f(o, "Total Cost").unwrap_or(0.0),
        estimated_rows,
        actual_rows,
        loops,
        actual_rows_total: actual_rows.zip(loops).map(|(r, l)| r * l),
        rows_removed_by_filter: loops
            .and(f(o, "Rows Removed by Filter"))
            .zip(loops)
            .map(|(r, l)| r * l),
        misestimate,
        inclusive_ms,
        exclusive_ms,
        buffers: has_buffers.then(|| Buffers {
            shared_hit: u(o, "Shared Hit Blocks"),
            shared_read: u(o, "Shared Read Blocks"),
            shared_dirtied: u(o, "Shared Dirtied Blocks"),
            shared_written: u(o, "Shared Written Blocks"),
            local_hit: u(o, "Local Hit Blocks"),
            local_read: u(o, "Local Read Blocks"),
            temp_read: u(o, "Temp Read Blocks"),
            temp_written: u(o, "Temp Written Blocks"),
        }),
        workers_planned: f(o, "Workers Planned").map(|w| w as u32),
        workers_launched: f(o, "Workers Launched").map(|w| w as u32),
        sort_method: s(o, "Sort Method"),
        sort_space_type: s(o, "Sort Space Type"),
        sort_space_kb: f(o, "Sort Space Used"),
        hash_batches: f(o, "Hash Batches")
            .or_else(|| f(o, "HashAgg Batches"))
            .map(|b| b as u32),
        original_hash_batches: f(o, "Original Hash Batches").map(|b| b as u32),
        hints: Vec::new(),
        children,
    })
}

fn is_cte_plan(n: &PlanNode) -> bool {
    n.parent_relationship.as_deref() == Some("InitPlan")
        && n.subplan.as_deref().is_some_and(|s| s.starts_with("CTE "))
}

/// The rules. Each looks at one node (and its direct children) only.
fn hints_for(n: &PlanNode) -> Vec<(HintKind, String)> {
    let mut out = Vec::new();
    let executed = n.loops.is_some_and(|l| l > 0.0);

    if executed && n.node_type.ends_with("Seq Scan") {
        let kept = n.actual_rows_total.unwrap_or(0.0);
        let read = kept + n.rows_removed_by_filter.unwrap_or(0.0);
        if read > SEQ_SCAN_LARGE_ROWS && kept < read * SEQ_SCAN_SELECTIVE_SHARE {
            out.push((
                HintKind::SeqScanSelective,
                format!(
                    "{} read {} rows to keep {} ({:.1} %). An index matching the filter{} would let PostgreSQL read only the rows it needs.",
                    label(n),
                    fmt_rows(read),
                    fmt_rows(kept),
                    100.0 * kept / read,
                    n.filter.as_deref().map(|f| format!(" {f}")).unwrap_or_default()
                ),
            ));
        }
    }

    if n.sort_space_type.as_deref() == Some("Disk") {
        out.push((
            HintKind::SortSpill,
            format!(
                "{} spilled to disk ({}, {} kB). Raising work_mem for this query (SET work_mem) would keep it in memory; an index on the sort key could avoid the sort.",
                n.node_type,
                n.sort_method.as_deref().unwrap_or("external sort"),
                n.sort_space_kb.map(|k| format!("{k:.0}")).unwrap_or_else(|| "?".into())
            ),
        ));
    }

    if let Some(b) = n.hash_batches.filter(|b| *b > 1) {
        let grew = n
            .original_hash_batches
            .filter(|o| *o < b)
            .map(|o| format!(", planned {o}"))
            .unwrap_or_default();
        out.push((
            HintKind::HashSpill,
            format!(
                "{} needed {b} batches{grew}: the hash table did not fit in work_mem and went to disk. Raising work_mem (or hash_mem_multiplier) would keep it in one batch.",
                n.node_type
            ),
        ));
    }

    if let (Some(m), Some(a)) = (&n.misestimate, n.actual_rows) {
        if m.factor >= MISESTIMATE_HINT_FACTOR {
            out.push((
                HintKind::Misestimate,
                format!(
                    "{}: the planner expected {} rows per loop and got {} ({:.0}× {}). Plans built on such estimates go wrong; run ANALYZE on the tables involved, and for correlated columns consider CREATE STATISTICS.",
                    label(n),
                    fmt_rows(n.estimated_rows),
                    fmt_rows(a),
                    m.factor,
                    if m.underestimated { "more" } else { "fewer" }
                ),
            ));
        }
    }

    if n.node_type == "Nested Loop" {
        let outer = n
            .children
            .iter()
            .find(|c| c.parent_relationship.as_deref() == Some("Outer"))
            .or(n.children.first());
        if let Some(outer) = outer {
            let (rows, estimated) = match outer.actual_rows_total {
                Some(r) if executed => (r, false),
                _ => (outer.estimated_rows, true),
            };
            if rows > NESTED_LOOP_OUTER_ROWS {
                out.push((
                    HintKind::NestedLoopManyOuter,
                    format!(
                        "Nested Loop runs its inner side once per outer row, and the outer side {} {} rows. A hash or merge join is usually better at this size; check the row estimates and the indexes on the join columns.",
                        if estimated { "is expected to yield" } else { "yielded" },
                        fmt_rows(rows)
                    ),
                ));
            }
        }
    }
    out
}

fn add_hints(n: &mut PlanNode, all: &mut Vec<PlanHint>) {
    for (kind, message) in hints_for(n) {
        let h = PlanHint {
            node_id: n.id,
            kind,
            message,
        };
        all.push(h.clone());
        n.hints.push(h);
    }
    for c in &mut n.children {
        add_hints(c, all);
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
