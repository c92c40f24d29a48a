//! `pgsteward`: the command-line face of the core, for servers, cron jobs and scripts.
//!
//! Human output by default, `--json` for scripts. On failure it prints the error's stable code
//! and exits with status 1 (2 for usage errors).

mod backup;
mod history;
mod maintain;
mod output;
mod report;
mod schedule;
mod storage;
mod tune;
mod upkeep;
mod watch;

use std::io::Read;

use clap::{Args, Parser, Subcommand};
use output::{human_bytes, out};
use pgsteward::conn::spec::{ConnectionInput, SslMode};
use pgsteward::monitor::{ActivityFilter, ExplainOptions};
use pgsteward::project::ProjectInput;
use pgsteward::{sandbox, Error, ErrorCode, Steward};
use report::{print_activity, print_explain, print_health};

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
    /// Configuration recommendations from the hardware and the server's statistics; apply or roll back.
    Tune {
        name: String,
        #[command(flatten)]
        args: tune::TuneArgs,
    },
    /// Monitoring history: sample, show series, run the sampler, compact.
    #[command(subcommand)]
    History(history::HistoryCmd),
    /// Top statements over a time range, from the stored pg_stat_statements deltas.
    Queries {
        name: String,
        /// 15m, 1h, 24h, 7d or 30d.
        #[arg(long, default_value = "24h")]
        range: String,
        /// total, mean, calls, rows, read or temp.
        #[arg(long, default_value = "total")]
        sort: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Encrypted logical backups.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Metrics for Prometheus (`metrics serve` samples projects and serves them on loopback) and
    /// OpenTelemetry (`metrics push` samples a project and exports it over OTLP).
    #[command(subcommand)]
    Metrics(watch::MetricsCmd),
    /// Alert rules of a project (thresholds, on/off) and its alerts of the last 7 days.
    Alerts(watch::AlertsArgs),
    /// Availability of a project's server over 24 h, 7 d and 30 d, from the probes.
    Availability { name: String },
    /// A live terminal view: server figures, sessions and who blocks whom, redrawn until Ctrl-C.
    Top {
        name: String,
        /// Seconds between frames.
        #[arg(long, default_value_t = 2)]
        interval: u64,
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
    },
    /// The project's backup key: rotate it, export or import a recovery kit.
    #[command(subcommand)]
    Key(upkeep::KeyCmd),
    /// Statistics-driven VACUUM, ANALYZE, REINDEX and CLUSTER: plan, run, status, history.
    #[command(subcommand)]
    Maintain(maintain::MaintainCmd),
    /// Backup schedules: show, set, and run what is due (for system cron or a systemd timer).
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// Index health: unused, duplicate, redundant and invalid indexes; missing-index candidates.
    Indexes { name: String },
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
    /// Where the project's backups are written: local (default) or an S3 bucket. Without
    /// options, shows the settings.
    Storage {
        name: String,
        /// Go back to the local backup folder.
        #[arg(long, conflicts_with_all = ["s3_bucket", "folder"])]
        local: bool,
        /// Write backups into this folder (each project in its own subfolder).
        #[arg(long, conflicts_with = "s3_bucket")]
        folder: Option<String>,
        #[command(flatten)]
        s3: storage::S3Args,
    },
    /// The S3 bucket that `backup copy` copies backups to. Without options, shows it.
    CopyTarget {
        name: String,
        /// Remove the copy target (backups already copied stay there).
        #[arg(long, conflicts_with = "s3_bucket")]
        none: bool,
        #[command(flatten)]
        s3: storage::S3Args,
    },
    /// Export each sample's metrics over OTLP/HTTP to an OpenTelemetry collector (while
    /// `history run`, `metrics serve` or the app sample, and on `metrics push`). Without
    /// options, shows the setting and this process's export counts.
    Otlp {
        name: String,
        #[command(flatten)]
        otlp: watch::OtlpArgs,
    },
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
enum SandboxCmd {
    /// Create (first time) and start the sandbox; adds the "sandbox" project.
    Start,
    /// Stop the sandbox server.
    Stop,
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
                    println!("added project {} ({})", s.name, s.description);
                    println!(
                        "Its backups are encrypted with a key kept in this machine's keyring. Export a recovery kit now and keep it elsewhere:\n  pgsteward key export-kit {} --out {}.kit",
                        s.name, s.name
                    );
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
            ProjectCmd::Storage {
                name,
                local,
                folder,
                s3,
            } => storage::storage(&st, json, &name, local, folder, &s3)?,
            ProjectCmd::CopyTarget { name, none, s3 } => {
                storage::copy_target(&st, json, &name, none, &s3)?
            }
            ProjectCmd::Otlp { name, otlp } => watch::otlp(&st, json, &name, &otlp)?,
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
        Cmd::Tune { name, args } => tune::run(&st, &name, args, json).await?,
        Cmd::History(h) => history::run(&st, h, json).await?,
        Cmd::Queries {
            name,
            range,
            sort,
            limit,
        } => history::queries(&st, &name, &range, &sort, limit, json).await?,
        Cmd::Backup(b) => backup::run(&st, json, b).await?,
        Cmd::Key(k) => upkeep::key(&st, json, k)?,
        Cmd::Metrics(m) => watch::metrics(&st, json, m).await?,
        Cmd::Alerts(a) => watch::alerts(&st, json, a).await?,
        Cmd::Availability { name } => watch::availability(&st, json, &name).await?,
        Cmd::Top {
            name,
            interval,
            once,
        } => watch::top(&st, &name, interval, once).await?,
        Cmd::Maintain(m) => maintain::run(&st, json, m).await?,
        Cmd::Schedule(s) => schedule::run(&st, json, s).await?,
        Cmd::Indexes { name } => maintain::indexes(&st, json, &name).await?,
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
