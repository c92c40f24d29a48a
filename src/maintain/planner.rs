//! The planner: which maintenance each table and index needs, and why.
//!
//! Pure: it takes the statistics, the bloat figures (estimated and, where read, measured) and
//! the thresholds, and returns actions. Tables under the minimum size are left alone unless
//! their transaction id age nears `autovacuum_freeze_max_age`, which puts a VACUUM (FREEZE)
//! first. A REINDEX is only proposed on a measured figure; CLUSTER only when asked for.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::bloat::{BloatCaveat, BloatFigure};
use super::stats::{IndexStats, TableStats};
use super::MaintenanceConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::ident::quote_ident;

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    VacuumFreeze,
    Vacuum,
    VacuumAnalyze,
    Analyze,
    Reindex,
    Cluster,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::VacuumFreeze => "vacuum_freeze",
            ActionKind::Vacuum => "vacuum",
            ActionKind::VacuumAnalyze => "vacuum_analyze",
            ActionKind::Analyze => "analyze",
            ActionKind::Reindex => "reindex",
            ActionKind::Cluster => "cluster",
        }
    }

    /// The heaviest lock the statement takes on its table.
    pub fn lock(self) -> &'static str {
        match self {
            ActionKind::Cluster => "AccessExclusiveLock",
            _ => "ShareUpdateExclusiveLock",
        }
    }

    /// The last digit of an action's id.
    fn digit(self) -> u64 {
        match self {
            ActionKind::VacuumFreeze => 1,
            ActionKind::Vacuum => 2,
            ActionKind::VacuumAnalyze => 3,
            ActionKind::Analyze => 4,
            ActionKind::Reindex => 5,
            ActionKind::Cluster => 6,
        }
    }

    fn order(self) -> u8 {
        match self {
            ActionKind::VacuumFreeze => 0,
            ActionKind::Vacuum | ActionKind::VacuumAnalyze => 1,
            ActionKind::Analyze => 2,
            ActionKind::Reindex => 3,
            ActionKind::Cluster => 4,
        }
    }
}

/// One proposed statement.
#[derive(Debug, Clone, Serialize, TS)]
pub struct PlannedAction {
    /// Stable id: the oid of the relation worked on (the index for REINDEX, else the table) times
    /// ten plus a digit for the kind, so two plans of an unchanged database give an action the
    /// same id and `run --ids` from an earlier plan runs the action meant, or fails.
    #[ts(type = "number")]
    pub id: u64,
    pub kind: ActionKind,
    pub schema: String,
    pub table: String,
    pub index: Option<String>,
    /// The statement, identifiers quoted.
    pub sql: String,
    /// The lock it takes on the table.
    pub lock: String,
    /// The facts that call for it, one sentence each.
    pub evidence: Vec<String>,
    /// An estimate from the relation sizes, not a promise.
    pub estimated_seconds: f64,
    /// The statement_timeout it runs under.
    pub statement_timeout_seconds: f64,
    /// Bytes of the relations it works on.
    #[ts(type = "number")]
    pub bytes: i64,
    /// Bloat figure behind a REINDEX (measured) or seen on the table.
    pub bloat: Option<BloatFigure>,
}

impl PlannedAction {
    /// The table's name quoted for SQL.
    pub fn qualified_table(&self) -> Result<String> {
        Ok(format!(
            "{}.{}",
            quote_ident(&self.schema)?,
            quote_ident(&self.table)?
        ))
    }

    /// The index's name quoted for SQL, when the action is about one.
    pub fn qualified_index(&self) -> Result<Option<String>> {
        self.index
            .as_deref()
            .map(|i| {
                Ok(format!(
                    "{}.{}",
                    quote_ident(&self.schema)?,
                    quote_ident(i)?
                ))
            })
            .transpose()
    }
}

/// What the DBA asks of the planner beyond the thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct PlanRequest {
    /// CLUSTER this table (name or schema.name) ...
    pub cluster_table: Option<String>,
    /// ... on this index.
    pub cluster_index: Option<String>,
    /// Measure the tables with actions exactly (pgstattuple) instead of estimating only.
    pub measure: bool,
}

/// A table with its bloat figures.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TableEntry {
    pub stats: TableStats,
    pub estimate: BloatFigure,
    pub measured: Option<BloatFigure>,
    /// Left out of the plan for being under the minimum size.
    pub below_minimum: bool,
}

/// An index with its bloat figures.
#[derive(Debug, Clone, Serialize, TS)]
pub struct IndexEntry {
    pub stats: IndexStats,
    pub estimate: BloatFigure,
    pub measured: Option<BloatFigure>,
}

/// The plan and what it was built from.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenancePlan {
    pub project: String,
    pub generated_at: String,
    pub config: MaintenanceConfig,
    pub actions: Vec<PlannedAction>,
    pub tables: Vec<TableEntry>,
    pub indexes: Vec<IndexEntry>,
    #[ts(type = "number")]
    pub autovacuum_freeze_max_age: i64,
    pub pgstattuple_installed: bool,
    /// Things the DBA should know (an unconfirmed bloat estimate, a missing extension...).
    pub notes: Vec<String>,
}

// Throughput assumptions behind the duration estimates, bytes per second.
const VACUUM_RATE: f64 = 150.0 * 1024.0 * 1024.0;
const ANALYZE_RATE: f64 = 200.0 * 1024.0 * 1024.0;
/// ANALYZE samples about 300 × default_statistics_target pages at most.
const ANALYZE_MAX_BYTES: f64 = 30_000.0 * 8192.0;
const BUILD_RATE: f64 = 60.0 * 1024.0 * 1024.0;

fn estimated_seconds(kind: ActionKind, heap: i64, indexes: i64, index: i64) -> f64 {
    let s = match kind {
        ActionKind::VacuumFreeze | ActionKind::Vacuum => (heap + indexes) as f64 / VACUUM_RATE,
        ActionKind::VacuumAnalyze => {
            (heap + indexes) as f64 / VACUUM_RATE
                + (heap as f64).min(ANALYZE_MAX_BYTES) / ANALYZE_RATE
        }
        ActionKind::Analyze => (heap as f64).min(ANALYZE_MAX_BYTES) / ANALYZE_RATE,
        // Reads the table twice (build and validate) and writes the index.
        ActionKind::Reindex => (2 * heap + index) as f64 / BUILD_RATE,
        ActionKind::Cluster => 2.0 * (heap + indexes) as f64 / BUILD_RATE,
    };
    (s.max(0.1) * 10.0).round() / 10.0
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        part / whole * 100.0
    }
}

fn pct(v: f64) -> String {
    format!("{v:.1} %")
}

/// Whether a table is below the minimum size the planner bothers with.
pub fn below_minimum(t: &TableStats, cfg: &MaintenanceConfig) -> bool {
    (t.live_tuples + t.dead_tuples) < cfg.min_rows || t.heap_bytes < cfg.min_bytes
}

/// Indexes worth measuring before a REINDEX can be proposed: valid B-trees of a useful size
/// whose estimate reaches the threshold; with `explicit` (the DBA asked for measurements) also
/// those whose estimate is useless (partial, expression, missing statistics). A deduplicated
/// B-tree under the threshold is not measured: there the estimate only overstates.
pub fn worth_measuring(i: &IndexEntry, cfg: &MaintenanceConfig, explicit: bool) -> bool {
    i.stats.valid
        && i.stats.method == "btree"
        && i.stats.bytes >= cfg.min_bytes
        && (i.estimate.bloat_percent >= cfg.reindex_threshold_percent
            || (explicit
                && i.estimate.caveats.iter().any(|c| {
                    matches!(
                        c,
                        BloatCaveat::PartialIndex
                            | BloatCaveat::ExpressionIndex
                            | BloatCaveat::MissingStatistics
                    )
                })))
}

/// The id of an action of `kind` on the relation `oid` (never a position in the list).
pub fn action_id(kind: ActionKind, oid: i64) -> u64 {
    (oid as u64) * 10 + kind.digit()
}

/// Build the plan's actions (ids from kind and oid, see [`action_id`]) and notes.
pub fn plan_actions(
    tables: &[TableEntry],
    indexes: &[IndexEntry],
    freeze_max_age: i64,
    pgstattuple: bool,
    cfg: &MaintenanceConfig,
    req: &PlanRequest,
) -> Result<(Vec<PlannedAction>, Vec<String>)> {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    let by_oid: HashMap<i64, &TableEntry> = tables.iter().map(|t| (t.stats.oid, t)).collect();
    let timeout = |est: f64| (est * 10.0).max(cfg.min_statement_timeout_seconds);

    for t in tables {
        let s = &t.stats;
        let qt = format!("{}.{}", quote_ident(&s.schema)?, quote_ident(&s.name)?);
        let mut evidence = Vec::new();
        let freeze_limit = (freeze_max_age as f64 * cfg.freeze_age_fraction) as i64;
        let freeze = freeze_max_age > 0 && s.xid_age > freeze_limit;
        if freeze {
            evidence.push(format!(
                "Transaction id age {} is past {:.0} % of autovacuum_freeze_max_age ({}).",
                s.xid_age,
                cfg.freeze_age_fraction * 100.0,
                freeze_max_age
            ));
        }
        if t.below_minimum && !freeze {
            continue;
        }
        let total = (s.live_tuples + s.dead_tuples) as f64;
        let dead_pct = percent(s.dead_tuples as f64, total);
        let vacuum = !t.below_minimum && dead_pct >= cfg.vacuum_threshold_percent;
        if vacuum {
            evidence.push(format!(
                "{} dead of {} tuples ({}), threshold {}.",
                s.dead_tuples,
                total as i64,
                pct(dead_pct),
                pct(cfg.vacuum_threshold_percent)
            ));
            if let Some(m) = &t.measured {
                evidence.push(format!(
                    "Measured with {}: {} dead tuples, {} of the table unused.",
                    if m.source == super::bloat::FigureSource::MeasuredApprox {
                        "pgstattuple_approx"
                    } else {
                        "pgstattuple"
                    },
                    pct(m.dead_percent.unwrap_or(0.0)),
                    pct(m.bloat_percent)
                ));
            }
        }
        let never_analyzed = s.last_analyze.is_none() && s.last_autoanalyze.is_none();
        let base = if s.reltuples > 0.0 {
            s.reltuples
        } else {
            s.live_tuples as f64
        };
        let mod_pct = percent(s.mod_since_analyze as f64, base);
        let analyze = !t.below_minimum
            && s.mod_since_analyze > 0
            && (never_analyzed || mod_pct >= cfg.analyze_threshold_percent);
        if analyze {
            evidence.push(if never_analyzed {
                format!(
                    "Never analyzed; {} rows changed since it was created: the planner has no statistics.",
                    s.mod_since_analyze
                )
            } else {
                format!(
                    "{} rows changed since the last ANALYZE ({} of {} rows), threshold {}.",
                    s.mod_since_analyze,
                    pct(mod_pct),
                    base as i64,
                    pct(cfg.analyze_threshold_percent)
                )
            });
        }
        let (kind, sql) = match (freeze, vacuum, analyze) {
            (true, _, true) => (
                ActionKind::VacuumFreeze,
                format!("VACUUM (FREEZE, ANALYZE) {qt}"),
            ),
            (true, _, false) => (ActionKind::VacuumFreeze, format!("VACUUM (FREEZE) {qt}")),
            (false, true, true) => (ActionKind::VacuumAnalyze, format!("VACUUM (ANALYZE) {qt}")),
            (false, true, false) => (ActionKind::Vacuum, format!("VACUUM {qt}")),
            (false, false, true) => (ActionKind::Analyze, format!("ANALYZE {qt}")),
            (false, false, false) => continue,
        };
        let est = estimated_seconds(kind, s.heap_bytes + s.toast_bytes, s.index_bytes, 0);
        actions.push(PlannedAction {
            id: action_id(kind, s.oid),
            kind,
            schema: s.schema.clone(),
            table: s.name.clone(),
            index: None,
            sql,
            lock: kind.lock().into(),
            evidence,
            estimated_seconds: est,
            statement_timeout_seconds: timeout(est),
            bytes: s.heap_bytes + s.toast_bytes + s.index_bytes,
            bloat: Some(t.measured.clone().unwrap_or_else(|| t.estimate.clone())),
        });
    }

    for i in indexes {
        let s = &i.stats;
        let Some(t) = by_oid.get(&s.table_oid) else {
            continue;
        };
        let over = i.estimate.bloat_percent >= cfg.reindex_threshold_percent;
        match &i.measured {
            Some(m) if m.bloat_percent >= cfg.reindex_threshold_percent => {
                let qi = format!("{}.{}", quote_ident(&s.schema)?, quote_ident(&s.name)?);
                let est = estimated_seconds(ActionKind::Reindex, t.stats.heap_bytes, 0, s.bytes);
                let mut evidence = vec![format!(
                    "pgstatindex measured {} bloat ({} of {} bytes), threshold {}.",
                    pct(m.bloat_percent),
                    m.bloat_bytes,
                    m.actual_bytes,
                    pct(cfg.reindex_threshold_percent)
                )];
                evidence.push(format!(
                    "The statistics-based estimate said {}{}.",
                    pct(i.estimate.bloat_percent),
                    if i.estimate.reliable() {
                        String::new()
                    } else {
                        format!(" (unreliable: {:?})", i.estimate.caveats)
                    }
                ));
                actions.push(PlannedAction {
                    id: action_id(ActionKind::Reindex, s.oid),
                    kind: ActionKind::Reindex,
                    schema: s.schema.clone(),
                    table: s.table.clone(),
                    index: Some(s.name.clone()),
                    sql: format!("REINDEX INDEX CONCURRENTLY {qi}"),
                    lock: ActionKind::Reindex.lock().into(),
                    evidence,
                    estimated_seconds: est,
                    statement_timeout_seconds: timeout(est),
                    bytes: s.bytes,
                    bloat: Some(m.clone()),
                });
            }
            Some(_) => {}
            None if over && s.bytes >= cfg.min_bytes && s.valid => notes.push(format!(
                "Index {}.{} is estimated {} bloated{}; {} before a REINDEX is proposed.",
                s.schema,
                s.name,
                pct(i.estimate.bloat_percent),
                if i.estimate.reliable() {
                    ""
                } else {
                    " (estimate unreliable)"
                },
                if pgstattuple {
                    "it was not measured"
                } else {
                    "install pgstattuple (CREATE EXTENSION pgstattuple) so it can be measured"
                }
            )),
            None => {}
        }
    }

    if req.cluster_table.is_some() || req.cluster_index.is_some() {
        let (Some(table), Some(index)) = (&req.cluster_table, &req.cluster_index) else {
            return Err(Error::invalid_input(
                "CLUSTER needs both a table and the index to order it by.",
            ));
        };
        let t = find_table(tables, table)?;
        let s = &t.stats;
        let idx = indexes
            .iter()
            .find(|i| i.stats.table_oid == s.oid && i.stats.name == *index)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "Table {}.{} has no index named \"{index}\".",
                    s.schema, s.name
                ))
            })?;
        if !idx.stats.valid || idx.stats.partial || idx.stats.method != "btree" {
            return Err(Error::invalid_input(format!(
                "CLUSTER needs a valid, non-partial B-tree index; \"{index}\" is not one."
            )));
        }
        let est = estimated_seconds(
            ActionKind::Cluster,
            s.heap_bytes + s.toast_bytes,
            s.index_bytes,
            0,
        );
        actions.push(PlannedAction {
            id: action_id(ActionKind::Cluster, s.oid),
            kind: ActionKind::Cluster,
            schema: s.schema.clone(),
            table: s.name.clone(),
            index: Some(index.clone()),
            sql: format!(
                "CLUSTER {}.{} USING {}",
                quote_ident(&s.schema)?,
                quote_ident(&s.name)?,
                quote_ident(index)?
            ),
            lock: ActionKind::Cluster.lock().into(),
            evidence: vec![format!(
                "Requested: rewrite the table in the order of {index}. Nobody can read or write the table while it runs."
            )],
            estimated_seconds: est,
            statement_timeout_seconds: timeout(est),
            bytes: s.heap_bytes + s.toast_bytes + s.index_bytes,
            bloat: Some(t.measured.clone().unwrap_or_else(|| t.estimate.clone())),
        });
    }

    actions.sort_by(|a, b| {
        (a.kind.order(), &a.schema, &a.table, &a.index).cmp(&(
            b.kind.order(),
            &b.schema,
            &b.table,
            &b.index,
        ))
    });
    Ok((actions, notes))
}

/// The actions a run takes: all of them, or those with the given ids (in the order given).
/// An id not in the plan is a `plan_changed` error, so nothing runs that the DBA did not pick.
pub fn select(actions: &[PlannedAction], all: bool, ids: &[u64]) -> Result<Vec<PlannedAction>> {
    if all {
        return Ok(actions.to_vec());
    }
    let mut v: Vec<PlannedAction> = Vec::new();
    for id in ids {
        let a = actions
            .iter()
            .find(|a| a.id == *id)
            .ok_or_else(|| stale(actions, *id))?;
        if !v.iter().any(|x| x.id == *id) {
            v.push(a.clone());
        }
    }
    Ok(v)
}

/// Why an id is not in the plan, naming what the plan now holds for the same relation.
fn stale(actions: &[PlannedAction], id: u64) -> Error {
    let same_object = actions.iter().find(|a| a.id / 10 == id / 10);
    let now = match same_object {
        Some(a) => format!(
            " For that relation the plan now has action {} ({}).",
            a.id,
            a.kind.as_str()
        ),
        None => String::new(),
    };
    Error::new(
        ErrorCode::PlanChanged,
        format!(
            "Action {id} is not in the plan now: the statistics changed or the object is gone since that plan was made.{now} Show the plan again and pick from it."
        ),
    )
}

/// A table by `name` or `schema.name`; an error when none or several match.
pub fn find_table<'a>(tables: &'a [TableEntry], spec: &str) -> Result<&'a TableEntry> {
    let exact: Vec<_> = tables
        .iter()
        .filter(|t| format!("{}.{}", t.stats.schema, t.stats.name) == spec)
        .collect();
    let found: Vec<_> = if exact.is_empty() {
        tables.iter().filter(|t| t.stats.name == spec).collect()
    } else {
        exact
    };
    match found.as_slice() {
        [t] => Ok(t),
        [] => Err(Error::invalid_input(format!("No table named \"{spec}\"."))),
        _ => Err(Error::invalid_input(format!(
            "Several tables are named \"{spec}\"; write it as schema.table."
        ))),
    }
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
