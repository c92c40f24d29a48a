//! `pgsteward maintain plan|run|status|guard|history` and `pgsteward indexes`: statistics-driven
//! VACUUM, ANALYZE, REINDEX and CLUSTER, and index health.

use clap::{Args, Subcommand};
use pgsteward::jobs::CancelToken;
use pgsteward::maintain::{
    planner, FigureSource, MaintenanceConfig, PlanRequest, PlannedAction, RunMode, RunRequest,
};
use pgsteward::{Error, Steward};

use std::sync::Arc;

use pgsteward::maintain::{MaintenanceProgress, MaintenanceSink};

use crate::output::{confirm, human_bytes, human_duration, out, Spinner};

/// A spinner showing the running statement's phase, on a terminal only.
fn progress(json: bool) -> (MaintenanceSink, Spinner) {
    let spinner = Spinner::start(json);
    let Some(b) = spinner.handle() else {
        return (Arc::new(|_: &MaintenanceProgress| {}), spinner);
    };
    let sink: MaintenanceSink = Arc::new(move |p: &MaintenanceProgress| {
        b.set_message(format!(
            "[{}] {} {}: {}, {} scanned, {:.1} s",
            p.action_id,
            p.kind.as_str(),
            p.target,
            p.phase.as_deref().unwrap_or("running"),
            human_bytes(p.bytes_done as f64),
            p.elapsed_ms as f64 / 1000.0
        ));
    });
    (sink, spinner)
}

#[derive(Args, Clone)]
pub struct PlanArgs {
    /// CLUSTER this table (name or schema.name); needs --index.
    #[arg(long, requires = "index")]
    cluster: Option<String>,
    /// The index CLUSTER orders the table by.
    #[arg(long, requires = "cluster")]
    index: Option<String>,
    /// Measure candidate tables exactly with pgstattuple (reads their pages).
    #[arg(long)]
    measure: bool,
}

impl PlanArgs {
    fn request(&self) -> PlanRequest {
        PlanRequest {
            cluster_table: self.cluster.clone(),
            cluster_index: self.index.clone(),
            measure: self.measure,
        }
    }
}

#[derive(Subcommand)]
pub enum MaintainCmd {
    /// What needs VACUUM, ANALYZE or REINDEX, with the evidence, SQL, lock and estimated duration.
    Plan {
        name: String,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Run planned actions: picked by id, all, or (--window) all inside the maintenance window.
    Run {
        name: String,
        /// Plan ids to run, e.g. 163842,163904 (an id stays the same while the action does).
        #[arg(long, visible_alias = "only", value_delimiter = ',', conflicts_with_all = ["all", "window"])]
        ids: Vec<u64>,
        /// Every planned action.
        #[arg(long, conflicts_with = "window")]
        all: bool,
        /// Automatic mode: run the plan only inside the maintenance window.
        #[arg(long)]
        window: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// The window, maintenance running now, autovacuum workers and advice, the last run.
    Status { name: String },
    /// The window, time zone, thresholds and impact guard limits in force; --set/--unset
    /// change this project's own.
    #[command(alias = "guard")]
    Settings {
        name: String,
        /// NAME=VALUE, e.g. window_start=01:00, time_zone=Europe/Paris,
        /// vacuum_threshold_percent=15, max_lock_waiters=1, max_active_sessions=off,
        /// max_replication_lag=512MB.
        #[arg(long, value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Drop a project setting (the environment's or the default applies again).
        #[arg(long, value_name = "NAME")]
        unset: Vec<String>,
    },
    /// Past maintenance runs with before/after figures and the success rate.
    History {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Dead tuples, size and bloat over time (a snapshot is kept each time a plan is built).
    Trends {
        name: String,
        /// 24h, 7d or 30d.
        #[arg(long, default_value = "7d")]
        range: String,
        /// One table, as schema.name (the schema is required: names may contain dots).
        #[arg(long)]
        table: Option<String>,
    },
}

fn source(s: FigureSource) -> &'static str {
    match s {
        FigureSource::Estimated => "estimated",
        FigureSource::Measured => "measured",
        FigureSource::MeasuredApprox => "measured (approx)",
    }
}

fn print_action(a: &PlannedAction) {
    let target = match &a.index {
        Some(i) => format!("{}.{} ({i})", a.schema, a.table),
        None => format!("{}.{}", a.schema, a.table),
    };
    println!(
        "[{}] {:<14} {}  ~{} (estimate), {}, lock {}",
        a.id,
        a.kind.as_str(),
        target,
        human_duration(Some(a.estimated_seconds)),
        human_bytes(a.bytes as f64),
        a.lock
    );
    println!("      {}", a.sql);
    for e in &a.evidence {
        println!("      - {e}");
    }
    if let Some(b) = &a.bloat {
        let caveats = if b.caveats.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = b
                .caveats
                .iter()
                .map(|c| {
                    serde_json::to_string(c)
                        .unwrap_or_default()
                        .replace('"', "")
                })
                .collect();
            format!(", unreliable: {}", names.join(", "))
        };
        println!(
            "      - bloat {:.1} % ({}, {}{caveats})",
            b.bloat_percent,
            source(b.source),
            human_bytes(b.bloat_bytes as f64)
        );
    }
}

pub async fn run(st: &Steward, json: bool, cmd: MaintainCmd) -> Result<(), Error> {
    let cfg = MaintenanceConfig::from_env()?;
    match cmd {
        MaintainCmd::Plan { name, plan } => {
            let p = st.maintain_plan(&name, &cfg, &plan.request()).await?;
            out(json, &p, |p| {
                if p.actions.is_empty() {
                    println!("nothing to do on {}", p.project);
                }
                for a in &p.actions {
                    print_action(a);
                }
                let skipped = p.tables.iter().filter(|t| t.below_minimum).count();
                if skipped > 0 {
                    println!(
                        "{skipped} table(s) under {} rows or {} left alone",
                        p.config.min_rows,
                        human_bytes(p.config.min_bytes as f64)
                    );
                }
                for n in &p.notes {
                    println!("note: {n}");
                }
            });
        }
        MaintainCmd::Run {
            name,
            ids,
            all,
            window,
            yes,
            plan,
        } => {
            let req = RunRequest {
                mode: if window {
                    RunMode::Automatic
                } else {
                    RunMode::Approve
                },
                ids: ids.clone(),
                all,
                plan: plan.request(),
            };
            if !window && !all && ids.is_empty() {
                return Err(Error::invalid_input(
                    "Say what to run: --ids 1,3, --all, or --window for automatic mode.",
                ));
            }
            let cancel = CancelToken::default();
            let c = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    c.cancel();
                }
            });
            let (sink, bar) = progress(json);
            let r = if window {
                // Automatic mode plans only once it knows it is inside the window.
                confirm(
                    yes,
                    json,
                    &[],
                    "Run every planned action inside the maintenance window?",
                    "Running maintenance needs confirmation: add --yes.",
                )?;
                st.maintain_run(&name, &cfg, &req, cancel, sink).await
            } else {
                // Run exactly the statements shown and confirmed.
                let p = st.maintain_plan(&name, &cfg, &req.plan).await?;
                let picked = planner::select(&p.actions, all, &ids)?;
                let details: Vec<String> = picked
                    .iter()
                    .map(|a| format!("[{}] {}  (lock {})", a.id, a.sql, a.lock))
                    .collect();
                confirm(
                    yes,
                    json,
                    &details,
                    "Run these statements?",
                    "Running maintenance needs confirmation: add --yes.",
                )?;
                st.maintain_run_actions(&name, &cfg, RunMode::Approve, picked, cancel, sink)
                    .await
            };
            bar.clear();
            let rep = r?;
            let failed = rep
                .runs
                .iter()
                .any(|r| r.outcome != pgsteward::maintain::ActionOutcome::Succeeded);
            out(json, &rep, |r| {
                for a in &r.runs {
                    println!(
                        "[{}] {:<9} {}  {}  dead {} -> {}, size {} -> {}{}",
                        a.action_id,
                        a.outcome.as_str(),
                        a.sql,
                        human_duration(Some(a.duration_ms as f64 / 1000.0)),
                        a.dead_before.map_or("-".into(), |v| v.to_string()),
                        a.dead_after.map_or("-".into(), |v| v.to_string()),
                        a.size_before.map_or("-".into(), |v| human_bytes(v as f64)),
                        a.size_after.map_or("-".into(), |v| human_bytes(v as f64)),
                        a.reason
                            .as_ref()
                            .map(|r| format!("\n      {r}"))
                            .unwrap_or_default()
                    );
                }
                if r.runs.is_empty() && r.stopped.is_none() {
                    println!("nothing to run");
                }
                if let Some(s) = &r.stopped {
                    println!("stopped: {s}");
                }
            });
            if failed {
                std::process::exit(1);
            }
        }
        MaintainCmd::Status { name } => {
            let s = st.maintain_status(&name, &cfg).await?;
            out(json, &s, |s| {
                println!(
                    "window {}-{} ({}), now {}: {}",
                    s.window.start.format("%H:%M"),
                    s.window.end.format("%H:%M"),
                    s.time_zone,
                    s.local_time,
                    if s.inside_window { "inside" } else { "outside" }
                );
                println!(
                    "pgstattuple: {}",
                    if s.pgstattuple_installed {
                        "installed (exact bloat figures available)"
                    } else {
                        "not installed (bloat figures are estimates)"
                    }
                );
                for r in &s.running {
                    println!(
                        "running: pid {} {} {} {} {}",
                        r.pid,
                        r.kind,
                        r.relation.as_deref().unwrap_or("-"),
                        r.phase.as_deref().unwrap_or("-"),
                        r.percent.map_or("".into(), |p| format!("{p:.0} %"))
                    );
                }
                println!(
                    "autovacuum workers: {} of {}",
                    s.autovacuum.workers.len(),
                    s.autovacuum.max_workers
                );
                for a in &s.autovacuum.advice {
                    println!("advice: {}\n      {}", a.reason, a.sql);
                }
                match &s.last_run {
                    Some(r) => println!("last run: {} {} {}", r.kind, r.table, r.outcome),
                    None => println!("no maintenance run yet"),
                }
                if let Some(p) = s.success_rate_percent {
                    println!(
                        "success rate (30 days): {p:.1} % (target {} %)",
                        s.target_percent
                    );
                }
            });
        }
        MaintainCmd::Settings { name, set, unset } => {
            let mut changes = Vec::new();
            for kv in &set {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    Error::invalid_input(format!("--set takes NAME=VALUE, not \"{kv}\"."))
                })?;
                changes.push((k.trim().to_string(), Some(v.to_string())));
            }
            changes.extend(unset.into_iter().map(|k| (k, None)));
            let g = if changes.is_empty() {
                st.maintain_settings(&name, &cfg)?
            } else {
                st.set_maintain_settings(&name, &cfg, &changes)?
            };
            out(json, &g, |g| {
                let c = &g.config;
                println!(
                    "window: {}-{} ({})",
                    c.window.start.format("%H:%M"),
                    c.window.end.format("%H:%M"),
                    c.time_zone
                        .as_deref()
                        .unwrap_or("local time of this computer")
                );
                println!(
                    "thresholds: VACUUM at {} % dead tuples, ANALYZE at {} % changed rows, REINDEX at {} % bloat",
                    c.vacuum_threshold_percent,
                    c.analyze_threshold_percent,
                    c.reindex_threshold_percent
                );
                let l = &c.guard;
                let or_off = |v: Option<String>| v.unwrap_or_else(|| "off".into());
                println!(
                    "sessions waiting on its locks: at most {} (after {} s)",
                    l.max_waiting_sessions, l.lock_wait_grace_seconds
                );
                println!(
                    "active sessions: {}",
                    or_off(l.max_active_sessions.map(|v| v.to_string()))
                );
                println!(
                    "mean latency of active statements: {}",
                    or_off(l.max_statement_latency_ms.map(|v| format!("{v} ms")))
                );
                println!(
                    "replication lag: {}",
                    or_off(l.max_replication_lag_bytes.map(|v| human_bytes(v as f64)))
                );
                for (k, v) in &g.overrides {
                    println!("project setting: {k} = {v}");
                }
            });
        }
        MaintainCmd::History { name, limit } => {
            let h = st.maintain_history(&name, limit).await?;
            out(json, &h, |h| {
                for r in &h.records {
                    let when = chrono::DateTime::from_timestamp_millis(r.started_at)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default();
                    println!(
                        "{when}  {:<9} {:<14} {}.{}  {}  dead {} -> {}{}",
                        r.outcome,
                        r.kind,
                        r.schema,
                        r.index.as_deref().unwrap_or(&r.table),
                        human_duration(Some(r.duration_ms as f64 / 1000.0)),
                        r.dead_before.map_or("-".into(), |v| v.to_string()),
                        r.dead_after.map_or("-".into(), |v| v.to_string()),
                        r.reason
                            .as_ref()
                            .map(|s| format!("  ({s})"))
                            .unwrap_or_default()
                    );
                }
                match h.success_rate_percent {
                    Some(p) => println!(
                        "success rate over 30 days: {p:.1} % of {} run(s), target {} %: {}",
                        h.total,
                        h.target_percent,
                        if h.meets_target == Some(true) {
                            "met"
                        } else {
                            "missed"
                        }
                    ),
                    None => println!("no maintenance runs in the last 30 days"),
                }
            });
        }
        MaintainCmd::Trends { name, range, table } => {
            let range = pgsteward::monitor::series::HistoryRange::parse(&range)?;
            let one = match &table {
                None => None,
                Some(t) => Some(t.split_once('.').ok_or_else(|| {
                    pgsteward::Error::invalid_input(format!(
                        "Write the table as schema.name, e.g. public.{t}."
                    ))
                })?),
            };
            let tr = st.maintain_trends(&name, range, one).await?;
            out(json, &tr, |tr| {
                if tr.points.is_empty() {
                    println!(
                        "no snapshot in this range yet: one is kept each time a plan is built"
                    );
                }
                for p in &tr.points {
                    let when = chrono::DateTime::from_timestamp_millis(p.ts)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default();
                    println!(
                        "{when}  dead {:>12}  live {:>12}  size {:>10}  bloat {:>10} ({})",
                        p.dead_tuples,
                        p.live_tuples,
                        human_bytes(p.total_bytes as f64),
                        human_bytes(p.bloat_bytes as f64),
                        if p.measured { "measured" } else { "estimated" }
                    );
                }
            });
        }
    }
    Ok(())
}

pub async fn indexes(st: &Steward, json: bool, name: &str) -> Result<(), Error> {
    let r = st.index_report(name).await?;
    out(json, &r, |r| {
        if r.findings.is_empty() && r.missing.is_empty() {
            println!("no index problems found in {}", r.project);
        }
        for f in &r.findings {
            println!(
                "{:<9} {}.{}  {}  {} scans  {}\n      {}",
                format!("{:?}", f.kind).to_lowercase(),
                f.schema,
                f.index,
                human_bytes(f.bytes as f64),
                f.scans,
                f.detail,
                f.sql
            );
        }
        for m in &r.missing {
            let cost = match (m.cost_before, m.cost_after) {
                (Some(b), Some(a)) => format!(", estimated cost {b:.1} -> {a:.1}"),
                _ => String::new(),
            };
            println!(
                "{} {}.{} ({}): {} seq scans of ~{} rows{cost}\n      {}\n      {}",
                if m.validated { "missing!" } else { "missing?" },
                m.schema,
                m.table,
                m.column,
                m.seq_scan,
                m.avg_rows_per_seq_scan,
                m.sql,
                m.note
            );
        }
        if let Some(s) = &r.stats_reset {
            println!("scan counts since {s}");
        }
        for n in &r.notes {
            println!("note: {n}");
        }
    });
    Ok(())
}
