//! `pgsteward`: the command-line face of the core, for servers, cron jobs and scripts.
//!
//! Human output by default, `--json` for scripts. On failure it prints the error's stable code
//! and exits with status 1 (2 for usage errors).

use std::io::{IsTerminal, Read};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pgsteward::backup::RestoreTarget;
use pgsteward::conn::spec::{ConnectionInput, SslMode};
use pgsteward::jobs::{CancelToken, JobProgress, ProgressSink};
use pgsteward::monitor::{
    ActivityFilter, ActivityReport, BlockingNode, BlockingTree, ExplainOptions, ExplainReport,
    HealthReport, HealthStatus, PlanNode,
};
use pgsteward::project::ProjectInput;
use pgsteward::{sandbox, Error, ErrorCode, Steward};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "pgsteward",
    version,
    about = "Look after PostgreSQL databases: monitor, back up, restore."
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage projects (one PostgreSQL target each).
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Server status of a project: version, uptime, size, connections, TPS, cache hit ratio.
    Status {
        name: String,
        /// Seconds between the two samples the rates come from.
        #[arg(long, default_value_t = 2)]
        interval: u64,
    },
    /// Sessions of a project's server (what runs, what waits), and who blocks whom.
    Activity {
        name: String,
        /// Only sessions in this state: active, idle, idle-in-transaction, ...
        #[arg(long)]
        state: Option<String>,
        /// Only sessions of this role.
        #[arg(long)]
        user: Option<String>,
        /// Only sessions with this application_name.
        #[arg(long)]
        application: Option<String>,
        /// Only sessions connected to this database.
        #[arg(long)]
        database: Option<String>,
        /// Only sessions whose open transaction or running query has lasted this many seconds.
        #[arg(long, value_name = "SECS")]
        min_duration: Option<f64>,
        /// Flag work running longer than this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60.0)]
        long_running: f64,
        /// Show at most this many sessions.
        #[arg(long, default_value_t = 500)]
        limit: u32,
    },
    /// EXPLAIN one statement safely: it runs inside a transaction that is always rolled back.
    Explain {
        name: String,
        /// The statement; "-" reads it from standard input.
        #[arg(long)]
        sql: String,
        /// Only plan the statement, do not execute it.
        #[arg(long)]
        no_analyze: bool,
        /// Seconds the statement may run.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        timeout: u64,
    },
    /// Health checks: wraparound, sequences, invalid indexes, slots, connections, cache, pg_stat_statements.
    Health { name: String },
    /// Cancel the running query of a session (the session stays).
    Cancel { name: String, pid: i32 },
    /// Terminate a session; its open transaction is rolled back. Needs --yes.
    Terminate {
        name: String,
        pid: i32,
        /// Confirm ending the session.
        #[arg(long)]
        yes: bool,
    },
    /// Encrypted logical backups.
    #[command(subcommand)]
    Backup(BackupCmd),
    /// The local sandbox PostgreSQL.
    #[command(subcommand)]
    Sandbox(SandboxCmd),
}

#[derive(Args)]
struct ConnArgs {
    /// libpq URI, e.g. postgresql://user@host:5432/db?sslmode=require
    #[arg(long, conflicts_with_all = ["conninfo", "host", "port", "user", "dbname", "sslmode"])]
    uri: Option<String>,
    /// libpq key=value string, e.g. "service=prod" or "host=db1 dbname=app"
    #[arg(long, conflicts_with_all = ["host", "port", "user", "dbname", "sslmode"])]
    conninfo: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    dbname: Option<String>,
    /// disable, allow, prefer, require, verify-ca or verify-full
    #[arg(long)]
    sslmode: Option<String>,
    /// Read the password from standard input (it goes to the OS keyring).
    #[arg(long)]
    password_stdin: bool,
}

impl ConnArgs {
    fn input(&self, name: &str) -> Result<ProjectInput, Error> {
        let connection = if let Some(uri) = &self.uri {
            ConnectionInput::Uri { uri: uri.clone() }
        } else if let Some(c) = &self.conninfo {
            ConnectionInput::KeyValue {
                conninfo: c.clone(),
            }
        } else {
            ConnectionInput::Fields {
                host: self.host.clone(),
                port: self.port,
                user: self.user.clone(),
                dbname: self.dbname.clone(),
                sslmode: self.sslmode.as_deref().map(SslMode::parse).transpose()?,
            }
        };
        let password = if self.password_stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::io("reading the password", e))?;
            Some(s.trim_end_matches(['\n', '\r']).to_string())
        } else {
            None
        };
        Ok(ProjectInput {
            name: name.to_string(),
            connection,
            password,
        })
    }
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// Add a project.
    Add {
        name: String,
        #[command(flatten)]
        conn: ConnArgs,
        /// Save without testing the connection first.
        #[arg(long)]
        no_test: bool,
    },
    /// List projects.
    List,
    /// Show one project.
    Show { name: String },
    /// Connect and report server version and latency.
    Test { name: String },
    /// Remove a project and its keyring entries.
    Remove {
        name: String,
        /// Also delete its backups and backup key.
        #[arg(long, conflicts_with = "keep_backups")]
        delete_backups: bool,
        /// Keep its backups (and the key that opens them).
        #[arg(long)]
        keep_backups: bool,
    },
}

#[derive(Subcommand)]
enum BackupCmd {
    /// Take an encrypted logical backup now.
    Create { name: String },
    /// List a project's backups.
    List { name: String },
    /// Restore a backup.
    Restore {
        name: String,
        backup_id: String,
        /// Create this database and restore into it.
        #[arg(
            long,
            conflicts_with = "same_database",
            required_unless_present = "same_database"
        )]
        new_database: Option<String>,
        /// Replace the contents of the backed-up database (needs --confirm DBNAME).
        #[arg(long)]
        same_database: bool,
        /// The database name, repeated, to confirm a restore into the same database.
        #[arg(long, requires = "same_database")]
        confirm: Option<String>,
    },
}

#[derive(Subcommand)]
enum SandboxCmd {
    /// Create (first time) and start the sandbox; adds the "sandbox" project.
    Start,
    /// Stop the sandbox server.
    Stop,
}

fn out<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("serializable")
        );
    } else {
        human(value);
    }
}

fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A duration for a table cell: "850ms", "12.3s", "5m03s", "2h10m", "3d04h".
fn human_duration(secs: Option<f64>) -> String {
    let Some(s) = secs.filter(|s| s.is_finite()) else {
        return "-".into();
    };
    let s = s.max(0.0);
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 86400.0 {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{}d{:02}h",
            (s / 86400.0) as u64,
            ((s % 86400.0) / 3600.0) as u64
        )
    }
}

/// Query text on one line, cut to `max` characters.
fn one_line(q: Option<&str>, max: usize) -> String {
    let flat = q
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

fn cell(s: Option<&str>, width: usize) -> String {
    one_line(s.or(Some("-")), width)
}

fn print_activity(r: &ActivityReport, tree: &BlockingTree) {
    println!(
        "{:>7}  {:<12} {:<12} {:<16} {:<20} {:<22} {:>7} {:>7}  {:<14} QUERY",
        "PID", "USER", "DATABASE", "APPLICATION", "STATE", "WAIT", "XACT", "QUERY", "FLAGS"
    );
    for s in &r.sessions {
        let wait = match (&s.wait_event_type, &s.wait_event) {
            (Some(t), Some(e)) => Some(format!("{t}:{e}")),
            _ => None,
        };
        let mut flags = Vec::new();
        if s.long_running {
            flags.push("long".to_string());
        }
        if s.idle_in_transaction {
            flags.push("idle-tx".into());
        }
        if !s.blocked_by.is_empty() {
            flags.push(format!(
                "blocked:{}",
                s.blocked_by
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if s.own_session {
            flags.push("self".into());
        }
        println!(
            "{:>7}  {:<12} {:<12} {:<16} {:<20} {:<22} {:>7} {:>7}  {:<14} {}",
            s.pid,
            cell(s.user.as_deref(), 12),
            cell(s.database.as_deref(), 12),
            cell(s.application.as_deref().or(s.backend_type.as_deref()), 16),
            cell(s.state.as_deref(), 20),
            cell(wait.as_deref(), 22),
            human_duration(s.xact_seconds),
            human_duration(if s.state.as_deref() == Some("active") {
                s.query_seconds
            } else {
                None
            }),
            flags.join(" "),
            one_line(s.query.as_deref(), 80)
        );
    }
    let long = r.sessions.iter().filter(|s| s.long_running).count();
    let idle_tx = r.sessions.iter().filter(|s| s.idle_in_transaction).count();
    println!(
        "{} session(s){}; {long} running longer than {}s, {idle_tx} idle in transaction",
        r.sessions.len(),
        if r.truncated { " (more not shown)" } else { "" },
        r.long_running_seconds
    );
    println!();
    if tree.roots.is_empty() {
        println!("No session waits for a lock held by another.");
        return;
    }
    println!(
        "Blocking ({} waiting{}):",
        tree.waiting,
        if tree.cycles {
            "; a wait cycle: the deadlock detector will cancel one of them"
        } else {
            ""
        }
    );
    fn node(n: &BlockingNode, depth: usize) {
        let indent = "    ".repeat(depth);
        let lead = if depth == 0 { "" } else { "└─ " };
        let mut what = Vec::new();
        if let Some(m) = &n.waiting_for_mode {
            what.push(format!(
                "waits {m} on {}{} for {}",
                n.lock_type.as_deref().unwrap_or("?"),
                n.relation
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                human_duration(n.waiting_seconds)
            ));
        } else if let Some(s) = &n.state {
            what.push(s.clone());
        }
        if n.xact_seconds.is_some() {
            what.push(format!("xact {}", human_duration(n.xact_seconds)));
        }
        if n.blocks_total > 0 {
            what.push(format!("blocks {}", n.blocks_total));
        }
        if n.in_cycle {
            what.push("IN CYCLE".into());
        }
        if n.shown_elsewhere {
            what.push("(shown above)".into());
        }
        println!(
            "{indent}{lead}{} {} [{}] {}",
            n.pid,
            n.user.as_deref().unwrap_or("-"),
            what.join(", "),
            one_line(n.query.as_deref(), 70)
        );
        if let Some(note) = &n.note {
            println!("{indent}   note: {note}");
        }
        for c in &n.children {
            node(c, depth + 1);
        }
    }
    for r in &tree.roots {
        node(r, 0);
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.3} ms"))
        .unwrap_or_else(|| "-".into())
}

fn print_explain(r: &ExplainReport) {
    for w in &r.warnings {
        println!("warning: {w}");
    }
    if !r.warnings.is_empty() {
        println!();
    }
    fn node(n: &PlanNode, depth: usize) {
        let indent = "    ".repeat(depth);
        let lead = if depth == 0 { "" } else { "-> " };
        let mut title = n.node_type.clone();
        if let Some(j) = &n.join_type {
            if n.node_type.contains("Join") || n.node_type == "Nested Loop" {
                title = format!("{title} ({j})");
            }
        }
        if let Some(i) = &n.index {
            title.push_str(&format!(" using {i}"));
        }
        if let Some(rel) = &n.relation {
            title.push_str(&format!(" on {rel}"));
            if let Some(a) = n.alias.as_ref().filter(|a| *a != rel) {
                title.push_str(&format!(" {a}"));
            }
        }
        if let Some(sp) = &n.subplan {
            title.push_str(&format!(" [{sp}]"));
        }
        let rows = match (n.actual_rows, n.loops) {
            (_, Some(l)) if l < 1.0 => format!("rows est {:.0}, never executed", n.estimated_rows),
            (Some(a), Some(l)) => format!(
                "rows est {:.0} / actual {}{}, loops {l:.0}",
                n.estimated_rows,
                if a.fract() == 0.0 {
                    format!("{a:.0}")
                } else {
                    format!("{a:.2}")
                },
                n.misestimate
                    .as_ref()
                    .filter(|m| m.factor >= 10.0)
                    .map(|m| format!(
                        " ({:.0}× {})",
                        m.factor,
                        if m.underestimated { "under" } else { "over" }
                    ))
                    .unwrap_or_default()
            ),
            _ => format!("rows est {:.0}, cost {:.2}", n.estimated_rows, n.total_cost),
        };
        let time = match (n.inclusive_ms, n.exclusive_ms) {
            (Some(i), Some(e)) => format!("  time {} (self {})", ms(Some(i)), ms(Some(e))),
            _ => String::new(),
        };
        let bufs = n
            .buffers
            .as_ref()
            .map(|b| {
                let mut s = format!("  buffers hit {} read {}", b.shared_hit, b.shared_read);
                if b.temp_read + b.temp_written > 0 {
                    s.push_str(&format!(" temp {}/{}", b.temp_read, b.temp_written));
                }
                s
            })
            .unwrap_or_default();
        println!("{indent}{lead}{title}  ({rows}){time}{bufs}");
        let pad = format!("{indent}{}", if depth == 0 { "   " } else { "      " });
        for (label, v) in [
            ("Index Cond", &n.index_cond),
            ("Cond", &n.join_cond),
            ("Filter", &n.filter),
        ] {
            if let Some(v) = v {
                println!("{pad}{label}: {v}");
            }
        }
        if let Some(r) = n.rows_removed_by_filter.filter(|r| *r > 0.0) {
            println!("{pad}Rows removed by filter: {r:.0}");
        }
        if let Some(m) = &n.sort_method {
            println!(
                "{pad}Sort: {m}, {} {}",
                n.sort_space_kb
                    .map(|k| format!("{k:.0} kB"))
                    .unwrap_or_default(),
                n.sort_space_type.as_deref().unwrap_or("")
            );
        }
        for h in &n.hints {
            println!("{pad}HINT: {}", h.message);
        }
        for c in &n.children {
            node(c, depth + 1);
        }
    }
    node(&r.plan, 0);
    for p in &r.other_plans {
        println!();
        node(p, 0);
    }
    println!();
    if let Some(p) = r.planning_ms {
        println!("Planning time:  {p:.3} ms");
    }
    if let Some(e) = r.execution_ms {
        println!("Execution time: {e:.3} ms");
    }
    for t in &r.triggers {
        println!(
            "Trigger {}{}: {:.3} ms, {:.0} call(s)",
            t.name,
            t.relation
                .as_deref()
                .map(|r| format!(" on {r}"))
                .unwrap_or_default(),
            t.time_ms,
            t.calls
        );
    }
    if r.analyzed {
        println!("The statement was executed and rolled back.");
    }
    if !r.hints.is_empty() {
        println!("\n{} hint(s); see HINT lines above.", r.hints.len());
    }
}

fn status_label(s: HealthStatus) -> String {
    s.as_str().to_uppercase()
}

fn print_health(r: &HealthReport) {
    println!(
        "PostgreSQL {}, database {}: {}",
        r.server_version,
        r.database,
        status_label(r.status)
    );
    println!();
    for c in &r.checks {
        println!("{:<9} {:<38} {}", status_label(c.status), c.title, c.figure);
        println!("          {}", c.message);
        for i in &c.items {
            if i.status != HealthStatus::Ok || c.status != HealthStatus::Ok {
                println!(
                    "            {:<8} {} ({}): {}",
                    status_label(i.status),
                    i.name,
                    i.figure,
                    i.message
                );
            }
        }
    }
}

fn progress(json: bool) -> (ProgressSink, Option<ProgressBar>) {
    if json || !std::io::stderr().is_terminal() {
        return (Arc::new(|_: &JobProgress| {}), None);
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let b = bar.clone();
    let sink: ProgressSink = Arc::new(move |p: &JobProgress| {
        b.set_message(format!(
            "{}: {} at {}/s, {:.1} s",
            p.phase,
            human_bytes(p.bytes as f64),
            human_bytes(p.rate_bytes_per_sec),
            p.elapsed_ms as f64 / 1000.0
        ));
    });
    (sink, Some(bar))
}

async fn run(cli: Cli) -> Result<(), Error> {
    let st = Steward::open_default()?;
    let json = cli.json;
    match cli.cmd {
        Cmd::Project(p) => match p {
            ProjectCmd::Add {
                name,
                conn,
                no_test,
            } => {
                let input = conn.input(&name)?;
                if !no_test {
                    st.test_input(&input).await?;
                }
                let s = st.create(&input)?;
                out(json, &s, |s| {
                    println!("added project {} ({})", s.name, s.description)
                });
            }
            ProjectCmd::List => {
                let list = st.list()?;
                out(json, &list, |l| {
                    if l.is_empty() {
                        println!("no projects yet: add one with `pgsteward project add NAME --uri ...` or run `pgsteward sandbox start`");
                    }
                    for p in l {
                        println!(
                            "{:<24} {}{}",
                            p.name,
                            p.description,
                            if p.sandbox { "  (sandbox)" } else { "" }
                        );
                    }
                });
            }
            ProjectCmd::Show { name } => {
                let s = st.get(&name)?;
                out(json, &s, |s| {
                    println!("name:       {}", s.name);
                    println!("connection: {}", s.description);
                    println!(
                        "sslmode:    {}",
                        s.sslmode.map(|m| m.as_str()).unwrap_or("(default: prefer)")
                    );
                    println!(
                        "password:   {}",
                        if s.has_password {
                            "in the OS keyring"
                        } else {
                            "none stored (PGPASSWORD or ~/.pgpass)"
                        }
                    );
                    println!("created:    {}", s.created_at);
                });
            }
            ProjectCmd::Test { name } => {
                let t = st.test(&name).await?;
                out(json, &t, |t| {
                    println!(
                        "connected to PostgreSQL {} as {} on {} in {:.1} ms{}",
                        t.server_version,
                        t.current_user,
                        t.database,
                        t.latency_ms,
                        if t.ssl { " (TLS)" } else { "" }
                    )
                });
            }
            ProjectCmd::Remove {
                name,
                delete_backups,
                keep_backups,
            } => {
                let n = st.backup_list(&name).map(|l| l.len()).unwrap_or(0);
                if n > 0 && !delete_backups && !keep_backups {
                    return Err(Error::new(
                        ErrorCode::ConfirmationRequired,
                        format!("Project \"{name}\" has {n} backup(s). Say --delete-backups to delete them too, or --keep-backups to keep them (and their key)."),
                    ));
                }
                st.remove(&name, delete_backups)?;
                out(
                    json,
                    &serde_json::json!({"removed": name, "backups_deleted": delete_backups && n > 0}),
                    |_| {
                        println!(
                            "removed project {name}{}",
                            if delete_backups && n > 0 {
                                format!(" and its {n} backup(s)")
                            } else {
                                String::new()
                            }
                        )
                    },
                );
            }
        },
        Cmd::Status { name, interval } => {
            st.dashboard_sample(&name).await?;
            tokio::time::sleep(std::time::Duration::from_secs(interval.max(1))).await;
            let s = st.dashboard_sample(&name).await?;
            let metrics = st.pool_metrics(&name)?;
            let mut v = serde_json::to_value(&s).expect("serializable");
            if let Some(o) = v.as_object_mut() {
                o.remove("tps_chart_svg");
                o.remove("cache_chart_svg");
                o.insert(
                    "pool".into(),
                    serde_json::to_value(&metrics).expect("serializable"),
                );
            }
            out(json, &v, |_| {
                println!("server      PostgreSQL {}", s.server_version);
                println!("uptime      {:.1} h", s.uptime_seconds / 3600.0);
                println!(
                    "database    {} ({})",
                    s.database,
                    human_bytes(s.database_size_bytes as f64)
                );
                let c = &s.connections;
                println!(
                    "connections {}/{} (active {}, idle {}, idle in transaction {}, other {})",
                    c.total, c.max_connections, c.active, c.idle, c.idle_in_transaction, c.other
                );
                println!(
                    "tps         {}",
                    s.tps
                        .map(|t| format!("{t:.1}"))
                        .unwrap_or_else(|| "n/a".into())
                );
                println!(
                    "cache hit   {}",
                    s.cache_hit_ratio
                        .map(|c| format!("{:.2} %", c * 100.0))
                        .unwrap_or_else(|| "n/a (no block reads)".into())
                );
                println!(
                    "pool        circuit {:?}, {} in use, {} idle",
                    metrics.circuit, metrics.in_use, metrics.idle
                );
            });
        }
        Cmd::Activity {
            name,
            state,
            user,
            application,
            database,
            min_duration,
            long_running,
            limit,
        } => {
            let filter = ActivityFilter {
                state,
                user,
                application,
                database,
                min_duration_seconds: min_duration,
                long_running_seconds: Some(long_running),
                limit: Some(limit),
            };
            let report = st.activity(&name, &filter).await?;
            let tree = st.blocking_tree(&name).await?;
            out(
                json,
                &serde_json::json!({"activity": &report, "blocking": &tree}),
                |_| print_activity(&report, &tree),
            );
        }
        Cmd::Explain {
            name,
            sql,
            no_analyze,
            timeout,
        } => {
            let sql = if sql == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| Error::io("reading the statement", e))?;
                s
            } else {
                sql
            };
            let opts = ExplainOptions {
                analyze: !no_analyze,
                statement_timeout: std::time::Duration::from_secs(timeout.max(1)),
                ..ExplainOptions::default()
            };
            let r = st.explain_with(&name, &sql, &opts).await?;
            out(json, &r, print_explain);
        }
        Cmd::Health { name } => {
            let r = st.health(&name).await?;
            out(json, &r, print_health);
        }
        Cmd::Cancel { name, pid } => {
            let r = st.cancel_backend(&name, pid).await?;
            out(json, &r, |r| println!("{}", r.message));
        }
        Cmd::Terminate { name, pid, yes } => {
            if !yes {
                return Err(Error::new(
                    ErrorCode::ConfirmationRequired,
                    format!("Terminating session {pid} ends it and rolls back its open transaction. Repeat with --yes to confirm."),
                ));
            }
            let r = st.terminate_backend(&name, pid).await?;
            out(json, &r, |r| println!("{}", r.message));
        }
        Cmd::Backup(b) => match b {
            BackupCmd::Create { name } => {
                let (sink, bar) = progress(json);
                let r = st.backup_create(&name, sink, CancelToken::default()).await;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                let s = r?;
                out(json, &s, |s| {
                    println!(
                        "backup {} of {}: {} dumped, {} stored, {:.1} s",
                        s.id,
                        s.database,
                        human_bytes(s.plaintext_bytes as f64),
                        human_bytes(s.stored_bytes as f64),
                        s.duration_ms as f64 / 1000.0
                    )
                });
            }
            BackupCmd::List { name } => {
                let list = st.backup_list(&name)?;
                out(json, &list, |l| {
                    if l.is_empty() {
                        println!("no backups of {name} yet");
                    }
                    for b in l {
                        println!(
                            "{}  {}  PostgreSQL {}  {} ({} stored)",
                            b.id,
                            b.database,
                            b.server_version,
                            human_bytes(b.plaintext_bytes as f64),
                            human_bytes(b.stored_bytes as f64)
                        );
                    }
                });
            }
            BackupCmd::Restore {
                name,
                backup_id,
                new_database,
                same_database,
                confirm,
            } => {
                let target = if same_database {
                    RestoreTarget::SameDatabase {
                        confirm: confirm.unwrap_or_default(),
                    }
                } else {
                    RestoreTarget::NewDatabase {
                        name: new_database.unwrap_or_default(),
                    }
                };
                let (sink, bar) = progress(json);
                let r = st
                    .backup_restore(&name, &backup_id, &target, sink, CancelToken::default())
                    .await;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                let rep = r?;
                out(json, &rep, |r| {
                    println!(
                        "restored {} into {} ({}, {:.1} s)",
                        r.backup_id,
                        r.database,
                        human_bytes(r.bytes as f64),
                        r.duration_ms as f64 / 1000.0
                    )
                });
            }
        },
        Cmd::Sandbox(s) => match s {
            SandboxCmd::Start => {
                let p = sandbox::start(&st).await?;
                out(json, &p, |p| {
                    println!("sandbox running: project {} ({})", p.name, p.description)
                });
            }
            SandboxCmd::Stop => {
                let stopped = sandbox::stop(&st)?;
                out(json, &serde_json::json!({"stopped": stopped}), |_| {
                    println!(
                        "{}",
                        if stopped {
                            "sandbox stopped"
                        } else {
                            "sandbox was not running"
                        }
                    )
                });
            }
        },
    }
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGSTEWARD_LOG")
                // The driver's own notices (slow statements, server WARNINGs) would only repeat
                // what the commands report; PGSTEWARD_LOG brings them back.
                .unwrap_or_else(|_| "warn,sqlx=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let json = cli.json;
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        if json {
            println!("{}", serde_json::json!({ "error": e }));
        } else {
            eprintln!(
                "error[{}]: {}{}",
                e.code,
                e.message,
                e.sqlstate
                    .as_ref()
                    .map(|s| format!(" (SQLSTATE {s})"))
                    .unwrap_or_default()
            );
        }
        std::process::exit(1);
    }
}
