//! Collectors: one per family of statistics views, each reading the server in its own read-only
//! transaction with its own timeout.
//!
//! A collector that is slow, forbidden or missing on this server version fails alone: the
//! sample keeps what the others read and records which collector failed and why. Every query
//! works for a role that has only `pg_monitor`, and adapts to the server version (13 to 18).
//! Collectors return raw readings (cumulative counters and gauges); the sampler turns counters
//! into rates.
//!
//! This file holds the readings' types, the runner and the database and activity collectors;
//! pg_stat_statements is read in `statements`, the server-wide views in `server`.

use std::time::Duration;

use serde::Serialize;
use sqlx::{PgConnection, Row};
use ts_rs::TS;

use crate::conn::Pool;
use crate::error::{Error, ErrorCode, Result};
use crate::sql;

mod server;
mod statements;

pub use statements::{statements_schema, StatementsAccess};

/// The families of statistics a sample is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CollectorId {
    /// pg_stat_database: transactions, blocks, tuples, temp files, deadlocks.
    Database,
    /// pg_stat_activity: connections by state, max_connections, long-running queries.
    Activity,
    /// pg_stat_statements, when installed: per-query counters.
    Statements,
    /// pg_stat_checkpointer (17+) or pg_stat_bgwriter: checkpoints timed and requested.
    Checkpoints,
    /// WAL position and, where present, pg_stat_wal.
    Wal,
    /// pg_stat_replication lag per standby and WAL retained by replication slots.
    Replication,
    /// Lock requests waiting (sessions whose wait event is a lock).
    Locks,
    /// Size of each database.
    Sizes,
}

impl CollectorId {
    pub const ALL: [CollectorId; 8] = [
        CollectorId::Database,
        CollectorId::Activity,
        CollectorId::Statements,
        CollectorId::Checkpoints,
        CollectorId::Wal,
        CollectorId::Replication,
        CollectorId::Locks,
        CollectorId::Sizes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CollectorId::Database => "database",
            CollectorId::Activity => "activity",
            CollectorId::Statements => "statements",
            CollectorId::Checkpoints => "checkpoints",
            CollectorId::Wal => "wal",
            CollectorId::Replication => "replication",
            CollectorId::Locks => "locks",
            CollectorId::Sizes => "sizes",
        }
    }
}

/// A collector that could not read its views, and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, TS)]
pub struct CollectorFailure {
    pub collector: String,
    pub code: String,
    pub message: String,
}

/// One value read from the server: a cumulative counter or a gauge, with an optional label
/// (a database, a standby, a slot, a connection state).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub name: &'static str,
    pub label: String,
    pub value: f64,
}

fn reading(name: &'static str, label: impl Into<String>, value: f64) -> Reading {
    Reading {
        name,
        label: label.into(),
        value,
    }
}

/// Cumulative pg_stat_statements counters of one query id (summed over users and databases).
#[derive(Debug, Clone, PartialEq)]
pub struct StatementCounters {
    pub queryid: String,
    pub query: String,
    pub calls: f64,
    pub total_ms: f64,
    pub rows: f64,
    pub shared_blks_read: f64,
    pub temp_blks_written: f64,
}

/// An active session whose query has run longer than the slow-query threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRunning {
    pub pid: i32,
    pub database: Option<String>,
    pub user: Option<String>,
    pub query: String,
    pub running_ms: f64,
    /// Server clock when the query started; with the pid it identifies the query run.
    pub query_start_epoch: f64,
}

/// What one collector read.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Server clock when the collector read its views.
    pub epoch: f64,
    pub counters: Vec<Reading>,
    pub gauges: Vec<Reading>,
    /// Set by the statements collector when pg_stat_statements is readable.
    pub statements: Option<Vec<StatementCounters>>,
    pub long_running: Vec<LongRunning>,
    /// Something the user should know that is not a failure (e.g. how to enable an extension).
    pub note: Option<String>,
}

/// Everything one sampling pass read.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub server_version_num: i32,
    pub database: String,
    /// When the server (postmaster) started: counters read before a different start belong to
    /// another run of the server, or to another server.
    pub server_started: String,
    pub outputs: Vec<(CollectorId, Collected)>,
    pub failures: Vec<CollectorFailure>,
}

impl Collection {
    pub fn get(&self, id: CollectorId) -> Option<&Collected> {
        self.outputs.iter().find(|(c, _)| *c == id).map(|(_, o)| o)
    }
}

#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Time each collector may take (server-side statement_timeout; the client waits a little
    /// longer, then abandons the session).
    pub collector_timeout: Duration,
    /// Collectors that get a different time than `collector_timeout`.
    pub timeout_overrides: Vec<(CollectorId, Duration)>,
    /// Active queries running longer than this are reported as long-running.
    pub slow_query_threshold_ms: f64,
    /// Collectors to run; all when empty.
    pub only: Vec<CollectorId>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            collector_timeout: Duration::from_secs(5),
            // Reading pg_stat_statements with thousands of entries takes longer than a view.
            timeout_overrides: vec![(CollectorId::Statements, Duration::from_secs(10))],
            slow_query_threshold_ms: slow_query_threshold_ms(),
            only: Vec::new(),
        }
    }
}

impl CollectOptions {
    /// The time collector `id` may take.
    pub fn timeout_for(&self, id: CollectorId) -> Duration {
        self.timeout_overrides
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, t)| *t)
            .unwrap_or(self.collector_timeout)
    }
}

/// The slow-query threshold: `SLOW_QUERY_THRESHOLD_MS` when set, else 1000 ms.
pub fn slow_query_threshold_ms() -> f64 {
    std::env::var("SLOW_QUERY_THRESHOLD_MS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(1000.0)
}

/// How to get pg_stat_statements, for a server where it is missing.
pub fn enable_statements_instructions(database: &str, preloaded: bool) -> String {
    if preloaded {
        format!(
            "pg_stat_statements is loaded but the extension is not created in database {database}. \
             Run CREATE EXTENSION pg_stat_statements; there as a superuser; query statistics are recorded from the next sample on."
        )
    } else {
        format!(
            "pg_stat_statements is not loaded, so no query statistics can be recorded. To enable it: \
             add pg_stat_statements to shared_preload_libraries in postgresql.conf \
             (shared_preload_libraries = 'pg_stat_statements', keeping any libraries already listed), \
             restart the server, then run CREATE EXTENSION pg_stat_statements; in database {database} as a superuser."
        )
    }
}

/// Run the collectors. Fails as a whole only when no connection can be had at all.
pub async fn collect(pool: &Pool, opts: &CollectOptions) -> Result<Collection> {
    // Pooled sessions can be dead (the server restarted since they were used): drop the idle
    // ones and retry once with a fresh session, which tells them from a server that is down.
    let (first, row) = match first_contact(pool).await {
        Ok(r) => r,
        Err(e) if session_gone(&e) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), pool.close_idle()).await;
            first_contact(pool).await?
        }
        Err(e) => return Err(e),
    };
    let mut out = Collection {
        server_version_num: row.get("n"),
        database: row.get("db"),
        server_started: row.get("started"),
        ..Default::default()
    };
    let mut conn = Some(first);
    for id in CollectorId::ALL {
        if !opts.only.is_empty() && !opts.only.contains(&id) {
            continue;
        }
        if conn.is_none() {
            match pool.acquire().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    out.failures.push(failure(id, &e));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("a connection");
        let limit = opts.timeout_for(id);
        let res = tokio::time::timeout(
            limit + Duration::from_secs(2),
            run_one(id, c, &out, opts, limit),
        )
        .await;
        match res {
            Ok(Ok(collected)) => out.outputs.push((id, collected)),
            Ok(Err(e)) => {
                c.discard();
                conn = None;
                let e = if e.sqlstate.as_deref() == Some("57014") {
                    e.with_context(&format!(
                        "The collector ran longer than {} s and was cancelled",
                        limit.as_secs_f64()
                    ))
                } else {
                    e
                };
                out.failures.push(failure(id, &e));
            }
            Err(_) => {
                c.discard();
                conn = None;
                out.failures.push(failure(
                    id,
                    &Error::new(
                        ErrorCode::QueryFailed,
                        format!(
                            "The collector did not finish within {} s.",
                            limit.as_secs_f64()
                        ),
                    ),
                ));
            }
        }
    }
    Ok(out)
}

async fn first_contact(pool: &Pool) -> Result<(crate::conn::PooledConn, sqlx::postgres::PgRow)> {
    let mut first = pool.acquire().await?;
    let row = sqlx::query(sql!("SELECT /* pgsteward */ current_setting('server_version_num')::int AS n, current_database()::text AS db,
                pg_postmaster_start_time()::text AS started"
    ))
    .fetch_one(&mut *first)
    .await
    .inspect_err(|_| first.discard())?;
    Ok((first, row))
}

/// The session ended under us (server restart, admin shutdown, network): worth one retry.
pub(crate) fn session_gone(e: &Error) -> bool {
    e.code == ErrorCode::ConnectFailed
        || e.sqlstate.as_deref().is_some_and(|s| s.starts_with("57P"))
}

fn failure(id: CollectorId, e: &Error) -> CollectorFailure {
    let mut message = e.message.clone();
    if e.code == ErrorCode::PermissionDenied {
        message.push_str(
            " (this collector needs pg_read_all_stats or pg_monitor: GRANT pg_monitor TO the role)",
        );
    }
    CollectorFailure {
        collector: id.as_str().to_string(),
        code: e.code.as_str().to_string(),
        message,
    }
}

async fn run_one(
    id: CollectorId,
    conn: &mut PgConnection,
    ctx: &Collection,
    opts: &CollectOptions,
    limit: Duration,
) -> Result<Collected> {
    // The transaction is opened and ended by hand so that even its ROLLBACK carries the marker
    // (and stays out of the query statistics). On any error the caller discards the session,
    // so no transaction is ever left open in the pool.
    let c = conn;
    sqlx::query(sql!("BEGIN /* pgsteward */ READ ONLY"))
        .execute(&mut *c)
        .await?;
    sqlx::query(sql!(
        "SELECT /* pgsteward */ set_config('statement_timeout', $1, true)"
    ))
    .bind(format!("{}ms", limit.as_millis().max(1)))
    .execute(&mut *c)
    .await?;
    let epoch: f64 = sqlx::query_scalar(sql!(
        "SELECT /* pgsteward */ extract(epoch FROM clock_timestamp())::float8"
    ))
    .fetch_one(&mut *c)
    .await?;
    let mut out = Collected {
        epoch,
        ..Default::default()
    };
    match id {
        CollectorId::Database => database(c, &mut out).await?,
        CollectorId::Activity => activity(c, &mut out, opts).await?,
        CollectorId::Statements => statements::statements(c, &mut out).await?,
        CollectorId::Checkpoints => server::checkpoints(c, ctx, &mut out).await?,
        CollectorId::Wal => server::wal(c, ctx, &mut out).await?,
        CollectorId::Replication => server::replication(c, &mut out).await?,
        CollectorId::Locks => server::locks(c, &mut out).await?,
        CollectorId::Sizes => server::sizes(c, &mut out).await?,
    }
    sqlx::query(sql!("ROLLBACK /* pgsteward */"))
        .execute(&mut *c)
        .await?;
    Ok(out)
}

/// Counters of pg_stat_database, summed over all databases (the server as a whole).
pub const DATABASE_COUNTERS: [&str; 12] = [
    "xact_commit",
    "xact_rollback",
    "blks_hit",
    "blks_read",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "temp_files",
    "temp_bytes",
    "deadlocks",
];

async fn database(c: &mut PgConnection, out: &mut Collected) -> Result<()> {
    let r = sqlx::query(sql!(
        "SELECT /* pgsteward */ coalesce(sum(xact_commit), 0)::float8 AS xact_commit,
                coalesce(sum(xact_rollback), 0)::float8 AS xact_rollback,
                coalesce(sum(blks_hit), 0)::float8 AS blks_hit,
                coalesce(sum(blks_read), 0)::float8 AS blks_read,
                coalesce(sum(tup_returned), 0)::float8 AS tup_returned,
                coalesce(sum(tup_fetched), 0)::float8 AS tup_fetched,
                coalesce(sum(tup_inserted), 0)::float8 AS tup_inserted,
                coalesce(sum(tup_updated), 0)::float8 AS tup_updated,
                coalesce(sum(tup_deleted), 0)::float8 AS tup_deleted,
                coalesce(sum(temp_files), 0)::float8 AS temp_files,
                coalesce(sum(temp_bytes), 0)::float8 AS temp_bytes,
                coalesce(sum(deadlocks), 0)::float8 AS deadlocks
           FROM pg_stat_database"
    ))
    .fetch_one(&mut *c)
    .await?;
    for name in DATABASE_COUNTERS {
        out.counters.push(reading(name, "", r.get::<f64, _>(name)));
    }
    Ok(())
}

async fn activity(c: &mut PgConnection, out: &mut Collected, opts: &CollectOptions) -> Result<()> {
    let rows = sqlx::query(sql!(
        "SELECT /* pgsteward */ coalesce(state, 'unknown') AS state, count(*)::float8 AS n
           FROM pg_stat_activity
          WHERE backend_type = 'client backend'
          GROUP BY 1"
    ))
    .fetch_all(&mut *c)
    .await?;
    let (mut active, mut idle, mut iit, mut other) = (0.0, 0.0, 0.0, 0.0);
    for r in rows {
        let n: f64 = r.get("n");
        match r.get::<String, _>("state").as_str() {
            "active" => active += n,
            "idle" => idle += n,
            "idle in transaction" | "idle in transaction (aborted)" => iit += n,
            _ => other += n,
        }
    }
    for (label, v) in [
        ("active", active),
        ("idle", idle),
        ("idle_in_transaction", iit),
        ("other", other),
        ("total", active + idle + iit + other),
    ] {
        out.gauges.push(reading("connections", label, v));
    }
    let max: f64 = sqlx::query_scalar(sql!(
        "SELECT /* pgsteward */ current_setting('max_connections')::float8"
    ))
    .fetch_one(&mut *c)
    .await?;
    out.gauges.push(reading("max_connections", "", max));
    let slow = sqlx::query(sql!("SELECT /* pgsteward */ pid, datname::text AS db, usename::text AS usr, coalesce(query, '') AS query,
                (extract(epoch FROM clock_timestamp() - query_start) * 1000)::float8 AS ms,
                extract(epoch FROM query_start)::float8 AS started
           FROM pg_stat_activity
          WHERE state = 'active' AND backend_type = 'client backend'
            AND pid <> pg_backend_pid() AND query_start IS NOT NULL
            AND clock_timestamp() - query_start > make_interval(secs => $1 / 1000.0)
          ORDER BY query_start
          LIMIT 100"
    ))
    .bind(opts.slow_query_threshold_ms)
    .fetch_all(&mut *c)
    .await?;
    for r in slow {
        out.long_running.push(LongRunning {
            pid: r.get("pid"),
            database: r.get("db"),
            user: r.get("usr"),
            query: r.get("query"),
            running_ms: r.get("ms"),
            query_start_epoch: r.get("started"),
        });
    }
    Ok(())
}
