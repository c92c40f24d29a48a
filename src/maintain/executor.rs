//! The executor: runs planned actions one statement at a time on a dedicated session with a
//! lock_timeout and a statement_timeout sized to the object, while a second session polls the
//! `pg_stat_progress_*` views and the impact guard. A crossed limit or a cancel request sends
//! `pg_cancel_backend` to the running statement. The dedicated session is discarded afterwards,
//! so its timeouts never leak back into the pool.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use super::guard;
use super::planner::{ActionKind, PlannedAction};
use super::MaintenanceConfig;
use crate::conn::{Pool, PooledConn, MARK};
use crate::error::{Error, Result};
use crate::ident::quote_ident;
use crate::jobs::CancelToken;
use crate::sql;

/// How a run picks its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// The DBA picked the actions.
    Approve,
    /// Everything planned, only inside the maintenance window.
    Automatic,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Approve => "approve",
            RunMode::Automatic => "automatic",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    Succeeded,
    Failed,
    /// Stopped by the impact guard or on request.
    Cancelled,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Succeeded => "succeeded",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Cancelled => "cancelled",
        }
    }
}

/// What running one action did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ActionRun {
    #[ts(type = "number")]
    pub action_id: u64,
    pub kind: ActionKind,
    pub schema: String,
    pub table: String,
    pub index: Option<String>,
    pub sql: String,
    pub outcome: ActionOutcome,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// The impact guard stopped it.
    pub guard_tripped: bool,
    /// Unix milliseconds.
    #[ts(type = "number")]
    pub started_at: i64,
    #[ts(type = "number")]
    pub duration_ms: i64,
    #[ts(type = "number | null")]
    pub dead_before: Option<i64>,
    #[ts(type = "number | null")]
    pub dead_after: Option<i64>,
    /// Bytes of the table (with TOAST and indexes), or of the index for a REINDEX.
    #[ts(type = "number | null")]
    pub size_before: Option<i64>,
    #[ts(type = "number | null")]
    pub size_after: Option<i64>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunReport {
    pub project: String,
    pub run_id: String,
    pub mode: RunMode,
    /// Time of day the window was judged by, and in which zone.
    pub local_time: String,
    pub time_zone: String,
    pub inside_window: bool,
    pub runs: Vec<ActionRun>,
    /// Why the run stopped before the end of its list (window closed, guard, cancel).
    pub stopped: Option<String>,
}

/// Where the running action is, from the pg_stat_progress_* views.
#[derive(Debug, Clone, Serialize, TS)]
pub struct MaintenanceProgress {
    #[ts(type = "number")]
    pub action_id: u64,
    pub kind: ActionKind,
    /// The table or index worked on.
    pub target: String,
    /// PostgreSQL's phase name ("scanning heap", "building index"...), when it reports one.
    pub phase: Option<String>,
    /// Bytes of the table scanned so far (or blocks done for an index build).
    #[ts(type = "number")]
    pub bytes_done: i64,
    #[ts(type = "number")]
    pub elapsed_ms: i64,
}

/// Receives progress; called at most once per guard poll.
pub type MaintenanceSink = std::sync::Arc<dyn Fn(&MaintenanceProgress) + Send + Sync>;

/// Dead tuples and size of what an action works on.
async fn measure(conn: &mut PooledConn, a: &PlannedAction) -> (Option<i64>, Option<i64>) {
    let Ok(table) = a.qualified_table() else {
        return (None, None);
    };
    let index = a.qualified_index().ok().flatten();
    let r = sqlx::query(sql!(
        "SELECT (SELECT n_dead_tup FROM pg_stat_all_tables WHERE relid = to_regclass($1)) AS dead,
                CASE WHEN $2::text IS NULL THEN pg_total_relation_size(to_regclass($1))
                     ELSE pg_relation_size(to_regclass($2)) END AS size
           FROM (SELECT pg_stat_clear_snapshot()) s"
    ))
    .bind(&table)
    .bind(if a.kind == ActionKind::Reindex {
        index
    } else {
        None
    })
    .fetch_one(&mut **conn)
    .await;
    match r {
        Ok(r) => (r.get("dead"), r.get("size")),
        Err(_) => (None, None),
    }
}

/// One line of progress for the running statement, from the pg_stat_progress_* views.
async fn progress(conn: &mut PooledConn, pid: i32, kind: ActionKind) -> Option<(String, i64)> {
    let q = match kind {
        ActionKind::Analyze => return None,
        ActionKind::Reindex => sql!(
            "SELECT phase, (blocks_done * current_setting('block_size')::int8) AS done
               FROM pg_stat_progress_create_index WHERE pid = $1"
        ),
        ActionKind::Cluster => sql!(
            "SELECT phase, (heap_blks_scanned * current_setting('block_size')::int8) AS done
               FROM pg_stat_progress_cluster WHERE pid = $1"
        ),
        _ => sql!(
            "SELECT phase, (heap_blks_scanned * current_setting('block_size')::int8) AS done
               FROM pg_stat_progress_vacuum WHERE pid = $1"
        ),
    };
    let r = sqlx::query(q)
        .bind(pid)
        .fetch_optional(&mut **conn)
        .await
        .ok()??;
    Some((r.get("phase"), r.get("done")))
}

/// Drop the invalid indexes an unfinished REINDEX CONCURRENTLY of `a` left on its table;
/// returns a sentence for the record (empty when there were none).
async fn drop_leftovers(conn: &mut PooledConn, a: &PlannedAction) -> String {
    let (Ok(Some(index)), Some(name)) = (a.qualified_index(), a.index.as_deref()) else {
        return String::new();
    };
    let Ok(table) = a.qualified_table() else {
        return String::new();
    };
    let found: Vec<(String, String)> = sqlx::query_as(sql!(
        "SELECT n.nspname::text, c.relname::text
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT i.indisvalid AND i.indrelid = to_regclass($1)
            AND c.oid <> coalesce(to_regclass($2), 0)
            AND strpos(c.relname, '_ccnew') > 0
            AND starts_with(c.relname, left($3, 20))"
    ))
    .bind(&table)
    .bind(&index)
    .bind(name)
    .fetch_all(&mut **conn)
    .await
    .unwrap_or_default();
    let mut dropped = Vec::new();
    for (schema, rel) in found {
        let (Ok(qs), Ok(qr)) = (quote_ident(&schema), quote_ident(&rel)) else {
            continue;
        };
        let stmt = format!("{MARK} DROP INDEX CONCURRENTLY IF EXISTS {qs}.{qr}");
        if sqlx::Executor::execute(&mut **conn, stmt.as_str())
            .await
            .is_ok()
        {
            dropped.push(rel);
        }
    }
    if dropped.is_empty() {
        String::new()
    } else {
        format!(
            " The unfinished rebuild's invalid index ({}) was dropped.",
            dropped.join(", ")
        )
    }
}

async fn cancel_backend(conn: &mut PooledConn, pid: i32) {
    let _ = sqlx::query(sql!("SELECT pg_cancel_backend($1)"))
        .bind(pid)
        .execute(&mut **conn)
        .await;
}

/// Run one action to its end; failures are part of the result, never an early return.
pub async fn run_action(
    pool: &Pool,
    a: &PlannedAction,
    cfg: &MaintenanceConfig,
    cancel: &CancelToken,
    sink: &MaintenanceSink,
) -> ActionRun {
    let started_at = chrono::Utc::now().timestamp_millis();
    let t0 = Instant::now();
    let mut run = ActionRun {
        action_id: a.id,
        kind: a.kind,
        schema: a.schema.clone(),
        table: a.table.clone(),
        index: a.index.clone(),
        sql: a.sql.clone(),
        outcome: ActionOutcome::Failed,
        reason: None,
        guard_tripped: false,
        started_at,
        duration_ms: 0,
        dead_before: None,
        dead_after: None,
        size_before: None,
        size_after: None,
    };
    let mut progress = MaintenanceProgress {
        action_id: a.id,
        kind: a.kind,
        target: a.index.clone().unwrap_or_else(|| a.table.clone()),
        phase: None,
        bytes_done: 0,
        elapsed_ms: 0,
    };
    sink(&progress);
    match execute(pool, a, cfg, cancel, sink, &mut progress, &mut run).await {
        Ok(()) => run.outcome = ActionOutcome::Succeeded,
        Err(e) => {
            if run.reason.is_none() {
                run.reason = Some(e.message.clone());
            }
            if run.outcome != ActionOutcome::Cancelled {
                run.outcome = ActionOutcome::Failed;
            }
        }
    }
    run.duration_ms = t0.elapsed().as_millis() as i64;
    run
}

async fn execute(
    pool: &Pool,
    a: &PlannedAction,
    cfg: &MaintenanceConfig,
    cancel: &CancelToken,
    sink: &MaintenanceSink,
    shown: &mut MaintenanceProgress,
    run: &mut ActionRun,
) -> Result<()> {
    let t0 = Instant::now();
    let mut watch = pool.acquire().await?;
    let mut work = pool.acquire().await?;
    // The dedicated session is closed afterwards whatever happens: its settings stay with it.
    work.discard();
    (run.dead_before, run.size_before) = measure(&mut watch, a).await;
    let pid: i32 = sqlx::query_scalar(sql!("SELECT pg_backend_pid()"))
        .fetch_one(&mut *work)
        .await?;
    // VACUUM and REINDEX CONCURRENTLY refuse transaction blocks: plain SET on this session.
    let setup = format!(
        "{MARK} SET statement_timeout = {}; SET lock_timeout = {}",
        (a.statement_timeout_seconds * 1000.0).ceil() as i64,
        (cfg.lock_timeout_seconds * 1000.0).ceil() as i64
    );
    // A &str without arguments goes through the simple query protocol (like raw_sql), and its
    // boxed future stays `Send` for the GUI shell and spawned tasks.
    sqlx::Executor::execute(&mut *work, setup.as_str()).await?;
    let statement = format!("{MARK} {}", a.sql);
    let poll = Duration::from_millis(cfg.guard.poll_interval_ms.max(50));
    let mut stop: Option<(String, bool)> = None;
    let result = {
        let mut fut = sqlx::Executor::execute(&mut *work, statement.as_str());
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = &mut fut => break r,
                _ = tick.tick() => {
                    if stop.is_some() {
                        continue;
                    }
                    if cancel.is_cancelled() {
                        stop = Some(("Cancelled on request.".into(), false));
                        cancel_backend(&mut watch, pid).await;
                        continue;
                    }
                    if let Some((phase, done)) = progress(&mut watch, pid, a.kind).await {
                        shown.phase = Some(phase);
                        shown.bytes_done = done.max(0);
                    }
                    shown.elapsed_ms = t0.elapsed().as_millis() as i64;
                    sink(shown);
                    if let Ok(o) = guard::observe(&mut watch, pid, &cfg.guard).await {
                        if let Some(why) = guard::verdict(&o, &cfg.guard) {
                            tracing::warn!("maintenance guard: {why}");
                            stop = Some((why, true));
                            cancel_backend(&mut watch, pid).await;
                        }
                    }
                }
            }
        }
    };
    // A REINDEX CONCURRENTLY that did not finish leaves an invalid "<name>_ccnew" index behind,
    // which every write would keep maintaining: drop it.
    let leftovers = if result.is_err() && a.kind == ActionKind::Reindex {
        drop_leftovers(&mut watch, a).await
    } else {
        String::new()
    };
    (run.dead_after, run.size_after) = measure(&mut watch, a).await;
    let result = result.map_err(|e| {
        let e = Error::from(e);
        if leftovers.is_empty() {
            e
        } else {
            Error::new(e.code, format!("{} {leftovers}", e.message)).with_sqlstate(e.sqlstate)
        }
    });
    let stop = stop.map(|(why, guard)| (format!("{why}{leftovers}"), guard));
    match (result, stop) {
        (Ok(_), _) => Ok(()),
        (Err(e), Some((why, guard))) => {
            run.outcome = ActionOutcome::Cancelled;
            run.guard_tripped = guard;
            run.reason = Some(if guard {
                format!("Cancelled by the impact guard: {why}")
            } else {
                why
            });
            Err(e)
        }
        (Err(e), None) => {
            run.reason = Some(match e.sqlstate.as_deref() {
                Some("55P03") => format!(
                    "Could not get its {} within {} s: another session holds a conflicting lock.",
                    a.lock, cfg.lock_timeout_seconds
                ),
                Some("57014") => format!(
                    "Stopped by its statement_timeout ({} s).",
                    a.statement_timeout_seconds
                ),
                _ => e.message.clone(),
            });
            if !leftovers.is_empty() {
                if let Some(r) = run.reason.as_mut() {
                    r.push_str(&leftovers);
                }
            }
            Err(e)
        }
    }
}

/// Which actions to run, and how.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct RunRequest {
    pub mode: RunMode,
    /// Plan ids to run (approve mode).
    #[ts(type = "Array<number>")]
    pub ids: Vec<u64>,
    /// Every planned action (approve mode).
    pub all: bool,
    /// How to build the plan the ids refer to.
    pub plan: super::planner::PlanRequest,
}

/// Maintenance running on the server now (ours, autovacuum's or anyone's).
#[derive(Debug, Clone, Serialize, TS)]
pub struct RunningMaintenance {
    pub pid: i32,
    /// vacuum, create_index or cluster.
    pub kind: String,
    pub relation: Option<String>,
    pub phase: Option<String>,
    pub percent: Option<f64>,
    pub backend_type: Option<String>,
    pub application: Option<String>,
}

pub async fn running(conn: &mut PooledConn) -> Result<Vec<RunningMaintenance>> {
    let rows = sqlx::query(sql!(
        "SELECT p.pid, p.kind, p.rel, p.phase, p.pct::float8 AS pct,
                a.backend_type, a.application_name
           FROM (SELECT pid, 'vacuum' AS kind, relid::regclass::text AS rel, phase,
                        CASE WHEN heap_blks_total > 0
                             THEN 100.0 * heap_blks_scanned / heap_blks_total END AS pct
                   FROM pg_stat_progress_vacuum
                 UNION ALL
                 SELECT pid, 'create_index', relid::regclass::text, phase,
                        CASE WHEN blocks_total > 0 THEN 100.0 * blocks_done / blocks_total END
                   FROM pg_stat_progress_create_index
                 UNION ALL
                 SELECT pid, 'cluster', relid::regclass::text, phase,
                        CASE WHEN heap_blks_total > 0
                             THEN 100.0 * heap_blks_scanned / heap_blks_total END
                   FROM pg_stat_progress_cluster) p
           LEFT JOIN pg_stat_activity a ON a.pid = p.pid
          ORDER BY p.pid"
    ))
    .fetch_all(&mut **conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| RunningMaintenance {
            pid: r.get("pid"),
            kind: r.get("kind"),
            relation: r.get("rel"),
            phase: r.get("phase"),
            percent: r.get("pct"),
            backend_type: r.get("backend_type"),
            application: r.get("application_name"),
        })
        .collect())
}
