//! Health checks: the slow-burning problems that take a server down if nobody looks.
//!
//! Transaction id and multixact wraparound, sequences running out, invalid indexes, replication
//! slots that nobody reads but that keep WAL, connection headroom, a poor cache hit ratio, and
//! pg_stat_statements missing or overflowing. Each check gives ok / warning / critical, the
//! figure it judged and a sentence saying what to do. Each runs in its own read-only transaction
//! with its own timeout, so a check that fails or hangs becomes an "unknown" result carrying the
//! error while the others still run. Every query works for a role with only `pg_monitor`.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};
use ts_rs::TS;

use crate::conn::{Pool, MARK};
use crate::error::{Error, ErrorCode, Result};
use crate::ident::quote_ident;
use crate::sql;

/// Distance in transaction ids (or multixact ids) between the oldest unfrozen one and
/// wraparound: 2^31 - 1.
pub const WRAP_LIMIT: i64 = 2_147_483_647;
/// Fewer ids than this left is critical. PostgreSQL stops handing out new ones at 3 million.
pub const WRAP_CRITICAL_REMAINING: i64 = 10_000_000;
pub const SEQUENCE_WARNING: f64 = 0.80;
pub const SEQUENCE_CRITICAL: f64 = 0.95;
pub const CONNECTIONS_WARNING: f64 = 0.80;
pub const CONNECTIONS_CRITICAL: f64 = 0.95;
pub const CACHE_HIT_WARNING: f64 = 0.90;
/// Below this many block reads the cache hit ratio says nothing yet.
pub const CACHE_MIN_BLOCKS: f64 = 10_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Warning,
    Critical,
    /// The check could not run; its error says why.
    Unknown,
}

impl HealthStatus {
    fn rank(self) -> u8 {
        match self {
            HealthStatus::Ok => 0,
            HealthStatus::Unknown => 1,
            HealthStatus::Warning => 2,
            HealthStatus::Critical => 3,
        }
    }

    /// The more serious of two.
    pub fn worst(self, other: HealthStatus) -> HealthStatus {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Warning => "warning",
            HealthStatus::Critical => "critical",
            HealthStatus::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    XidWraparound,
    MultixactWraparound,
    OldestTables,
    Sequences,
    InvalidIndexes,
    ReplicationSlots,
    Connections,
    CacheHitRatio,
    PgStatStatements,
}

impl CheckId {
    pub const ALL: [CheckId; 9] = [
        CheckId::XidWraparound,
        CheckId::MultixactWraparound,
        CheckId::OldestTables,
        CheckId::Sequences,
        CheckId::InvalidIndexes,
        CheckId::ReplicationSlots,
        CheckId::Connections,
        CheckId::CacheHitRatio,
        CheckId::PgStatStatements,
    ];

    pub fn title(self) -> &'static str {
        match self {
            CheckId::XidWraparound => "Transaction id wraparound",
            CheckId::MultixactWraparound => "Multixact id wraparound",
            CheckId::OldestTables => "Tables with the oldest unfrozen rows",
            CheckId::Sequences => "Sequences near exhaustion",
            CheckId::InvalidIndexes => "Invalid indexes",
            CheckId::ReplicationSlots => "Inactive replication slots",
            CheckId::Connections => "Connection headroom",
            CheckId::CacheHitRatio => "Cache hit ratio",
            CheckId::PgStatStatements => "pg_stat_statements",
        }
    }
}

/// One object a check looked at (a database, a table, a sequence...).
#[derive(Debug, Clone, Serialize, TS)]
pub struct HealthItem {
    pub name: String,
    pub status: HealthStatus,
    pub value: Option<f64>,
    pub figure: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct HealthCheck {
    pub id: CheckId,
    pub title: String,
    pub status: HealthStatus,
    /// The figure judged, as a number (its meaning depends on the check).
    pub value: Option<f64>,
    /// The figure judged, for people ("1.2 % of max", "98.5 %").
    pub figure: String,
    /// What it means and what to do.
    pub message: String,
    pub items: Vec<HealthItem>,
    /// Why the check could not run (status unknown).
    pub error: Option<Error>,
    pub duration_ms: f64,
}

impl HealthCheck {
    fn new(
        id: CheckId,
        status: HealthStatus,
        value: Option<f64>,
        figure: String,
        message: String,
    ) -> Self {
        HealthCheck {
            id,
            title: id.title().to_string(),
            status,
            value,
            figure,
            message,
            items: Vec::new(),
            error: None,
            duration_ms: 0.0,
        }
    }

    fn unknown(id: CheckId, error: Error) -> Self {
        let mut c = HealthCheck::new(
            id,
            HealthStatus::Unknown,
            None,
            "n/a".into(),
            format!("The check could not run: {}", error.message),
        );
        c.error = Some(error);
        c
    }
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct HealthReport {
    /// Database the per-database checks looked at.
    pub database: String,
    pub server_version: String,
    /// The most serious status of all checks.
    pub status: HealthStatus,
    pub checks: Vec<HealthCheck>,
    pub checked_at: String,
}

#[derive(Debug, Clone, Copy)]
pub struct HealthOptions {
    /// Time each check may take (server-side statement_timeout; the client waits a little longer).
    pub check_timeout: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            check_timeout: Duration::from_secs(5),
        }
    }
}

struct Ctx {
    version_num: i32,
    database: String,
}

/// Run every check. Fails as a whole only when no connection can be had at all.
pub async fn run(pool: &Pool, opts: &HealthOptions) -> Result<HealthReport> {
    let mut first = pool.acquire().await?;
    let row = sqlx::query(sql!(
        "SELECT current_setting('server_version') AS v,
                current_setting('server_version_num')::int AS n,
                current_database()::text AS db"
    ))
    .fetch_one(&mut *first)
    .await?;
    let ctx = Ctx {
        version_num: row.get("n"),
        database: row.get("db"),
    };
    let server_version: String = row.get("v");
    let mut conn = Some(first);
    let mut checks = Vec::new();
    for id in CheckId::ALL {
        let started = Instant::now();
        if conn.is_none() {
            match pool.acquire().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    checks.push(HealthCheck::unknown(id, e));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("a connection");
        let outcome = tokio::time::timeout(
            opts.check_timeout + Duration::from_secs(2),
            run_one(id, c, &ctx, opts.check_timeout),
        )
        .await;
        let mut check = match outcome {
            Ok(Ok(check)) => check,
            Ok(Err(e)) => {
                // The session may be fine, but a fresh one for the next check costs little.
                c.discard();
                conn = None;
                HealthCheck::unknown(id, timeout_sentence(e, opts))
            }
            Err(_) => {
                c.discard();
                conn = None;
                HealthCheck::unknown(
                    id,
                    Error::new(
                        ErrorCode::QueryFailed,
                        format!(
                            "The check did not finish within {} s.",
                            opts.check_timeout.as_secs_f64()
                        ),
                    ),
                )
            }
        };
        check.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        checks.push(check);
    }
    let status = checks
        .iter()
        .fold(HealthStatus::Ok, |s, c| s.worst(c.status));
    Ok(HealthReport {
        database: ctx.database,
        server_version,
        status,
        checks,
        checked_at: chrono::Utc::now().to_rfc3339(),
    })
}

fn timeout_sentence(e: Error, opts: &HealthOptions) -> Error {
    if e.sqlstate.as_deref() == Some("57014") {
        e.with_context(&format!(
            "The check ran longer than {} s and was cancelled",
            opts.check_timeout.as_secs_f64()
        ))
    } else {
        e
    }
}

async fn run_one(
    id: CheckId,
    conn: &mut PgConnection,
    ctx: &Ctx,
    timeout: Duration,
) -> Result<HealthCheck> {
    let mut tx = conn.begin_with(sql!("BEGIN READ ONLY")).await?;
    sqlx::query(sql!("SELECT set_config('statement_timeout', $1, true)"))
        .bind(format!("{}ms", timeout.as_millis().max(1)))
        .execute(&mut *tx)
        .await?;
    let c: &mut PgConnection = &mut tx;
    let check = match id {
        CheckId::XidWraparound => wraparound(c, false).await?,
        CheckId::MultixactWraparound => wraparound(c, true).await?,
        CheckId::OldestTables => oldest_tables(c, ctx).await?,
        CheckId::Sequences => sequences(c, ctx).await?,
        CheckId::InvalidIndexes => invalid_indexes(c, ctx).await?,
        CheckId::ReplicationSlots => replication_slots(c).await?,
        CheckId::Connections => connections(c).await?,
        CheckId::CacheHitRatio => cache_hit(c).await?,
        CheckId::PgStatStatements => pg_stat_statements(c, ctx).await?,
    };
    tx.rollback().await?;
    Ok(check)
}

fn millions(n: i64) -> String {
    if n.abs() < 1_000_000 {
        n.to_string()
    } else {
        format!("{:.1} million", n as f64 / 1e6)
    }
}

fn human_bytes(b: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
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

/// Status for an id age, given the `*_freeze_max_age` at which autovacuum forces a freeze.
///
/// Critical when fewer than [`WRAP_CRITICAL_REMAINING`] ids remain; warning once the age is
/// more than halfway from the forced-freeze point to the limit (anti-wraparound vacuum is not
/// keeping up); ok before that.
pub fn wraparound_status(age: i64, freeze_max_age: i64) -> HealthStatus {
    let remaining = WRAP_LIMIT - age;
    let fma = freeze_max_age.clamp(0, WRAP_LIMIT);
    if remaining < WRAP_CRITICAL_REMAINING {
        HealthStatus::Critical
    } else if age > fma + (WRAP_LIMIT - fma) / 2 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    }
}

fn wraparound_sentence(what: &str, setting: &str, age: i64, fma: i64) -> String {
    let remaining = WRAP_LIMIT - age;
    match wraparound_status(age, fma) {
        HealthStatus::Critical => format!(
            "Only {} {what} ids are left before wraparound; PostgreSQL stops accepting writes when 3 million remain. \
             VACUUM (FREEZE) the oldest tables now, after ending whatever holds vacuum back \
             (long transactions, prepared transactions, unused replication slots).",
            millions(remaining)
        ),
        HealthStatus::Warning => format!(
            "{} {what} ids left: autovacuum should have frozen this long ago ({setting} = {}). Something holds it back: \
             look for long transactions, prepared transactions or unused replication slots, then VACUUM (FREEZE) the oldest tables.",
            millions(remaining),
            millions(fma)
        ),
        _ if age > fma => format!(
            "Age {} is past {setting} ({}): an anti-wraparound autovacuum is due or running. {} left.",
            millions(age),
            millions(fma),
            millions(remaining)
        ),
        _ => format!(
            "{} {what} ids left; autovacuum forces a freeze at age {} ({setting}).",
            millions(remaining),
            millions(fma)
        ),
    }
}

async fn wraparound(c: &mut PgConnection, multixact: bool) -> Result<HealthCheck> {
    let rows = if multixact {
        sqlx::query(sql!(
            "SELECT datname::text AS name, mxid_age(datminmxid)::int8 AS age,
                    current_setting('autovacuum_multixact_freeze_max_age')::int8 AS fma
               FROM pg_database ORDER BY 2 DESC, 1"
        ))
        .fetch_all(&mut *c)
        .await?
    } else {
        sqlx::query(sql!(
            "SELECT datname::text AS name, age(datfrozenxid)::int8 AS age,
                    current_setting('autovacuum_freeze_max_age')::int8 AS fma
               FROM pg_database ORDER BY 2 DESC, 1"
        ))
        .fetch_all(&mut *c)
        .await?
    };
    let (id, what, setting) = if multixact {
        (
            CheckId::MultixactWraparound,
            "multixact",
            "autovacuum_multixact_freeze_max_age",
        )
    } else {
        (
            CheckId::XidWraparound,
            "transaction",
            "autovacuum_freeze_max_age",
        )
    };
    let items: Vec<HealthItem> = rows
        .iter()
        .map(|r| {
            let age: i64 = r.get("age");
            let fma: i64 = r.get("fma");
            HealthItem {
                name: r.get("name"),
                status: wraparound_status(age, fma),
                value: Some((WRAP_LIMIT - age) as f64),
                figure: format!("age {}, {} left", millions(age), millions(WRAP_LIMIT - age)),
                message: wraparound_sentence(what, setting, age, fma),
            }
        })
        .collect();
    let Some(worst) = rows.first() else {
        return Ok(HealthCheck::new(
            id,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            "No databases are visible.".into(),
        ));
    };
    let (name, age, fma): (String, i64, i64) =
        (worst.get("name"), worst.get("age"), worst.get("fma"));
    let mut check = HealthCheck::new(
        id,
        items
            .iter()
            .fold(HealthStatus::Ok, |s, i| s.worst(i.status)),
        Some((WRAP_LIMIT - age) as f64),
        format!("{} left in {name}", millions(WRAP_LIMIT - age)),
        format!(
            "Oldest database: {name}. {}",
            wraparound_sentence(what, setting, age, fma)
        ),
    );
    check.items = items;
    Ok(check)
}

async fn oldest_tables(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT c.oid::regclass::text AS name,
                (SELECT t.oid::regclass::text FROM pg_class t WHERE t.reltoastrelid = c.oid) AS owner,
                age(c.relfrozenxid)::int8 AS age,
                current_setting('autovacuum_freeze_max_age')::int8 AS fma
           FROM pg_class c
          WHERE c.relkind IN ('r', 'm', 't')
          ORDER BY age(c.relfrozenxid) DESC, 1
          LIMIT 5"
    ))
    .fetch_all(&mut *c)
    .await?;
    let items: Vec<HealthItem> = rows
        .iter()
        .map(|r| {
            let name: String = r.get("name");
            let owner: Option<String> = r.get("owner");
            let age: i64 = r.get("age");
            let fma: i64 = r.get("fma");
            let status = wraparound_status(age, fma);
            let target = owner.clone().unwrap_or_else(|| name.clone());
            HealthItem {
                name: match &owner {
                    Some(o) => format!("{name} (TOAST of {o})"),
                    None => name,
                },
                status,
                value: Some(age as f64),
                figure: format!("age {}", millions(age)),
                message: if status == HealthStatus::Ok {
                    wraparound_sentence("transaction", "autovacuum_freeze_max_age", age, fma)
                } else {
                    format!(
                        "{} Run VACUUM (FREEZE, VERBOSE) {target};",
                        wraparound_sentence("transaction", "autovacuum_freeze_max_age", age, fma)
                    )
                },
            }
        })
        .collect();
    let status = items
        .iter()
        .fold(HealthStatus::Ok, |s, i| s.worst(i.status));
    let mut check = match items.first() {
        Some(top) => HealthCheck::new(
            CheckId::OldestTables,
            status,
            top.value,
            format!("{}: {}", top.name, top.figure),
            format!(
                "The {} tables of database {} with the oldest unfrozen rows; vacuum freezes them before wraparound.",
                items.len(),
                ctx.database
            ),
        ),
        None => HealthCheck::new(
            CheckId::OldestTables,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            format!("Database {} has no tables.", ctx.database),
        ),
    };
    check.items = items;
    Ok(check)
}

/// Smallest and largest value a column type holds, for the types sequences feed.
fn column_range(column_type: Option<&str>) -> (i64, i64) {
    match column_type {
        Some("smallint") => (i16::MIN as i64, i16::MAX as i64),
        Some("integer") => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Share (0..1) of a sequence's usable range already consumed. The range is the sequence's
/// own, narrowed to the type of the column it feeds (a bigint sequence behind an integer
/// column runs out at 2^31 - 1).
pub fn sequence_usage(
    last: Option<i64>,
    min: i64,
    max: i64,
    increment: i64,
    column_type: Option<&str>,
) -> f64 {
    let (col_lo, col_hi) = column_range(column_type);
    let Some(last) = last else { return 0.0 };
    let (used, span) = if increment >= 0 {
        let hi = max.min(col_hi) as i128;
        (last as i128 - min as i128, hi - min as i128)
    } else {
        let lo = min.max(col_lo) as i128;
        (max as i128 - last as i128, max as i128 - lo)
    };
    if span <= 0 {
        return 1.0;
    }
    (used as f64 / span as f64).clamp(0.0, 1.0)
}

async fn sequences(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT format('%I.%I', s.schemaname, s.sequencename) AS name,
                has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
                s.last_value, s.min_value, s.max_value, s.increment_by, s.cycle,
                o.column_type, o.column_name
           FROM pg_sequences s
           JOIN pg_namespace n ON n.nspname = s.schemaname
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
           LEFT JOIN LATERAL (
                SELECT format_type(a.atttypid, NULL) AS column_type,
                       format('%s.%I', d.refobjid::regclass, a.attname) AS column_name
                  FROM pg_depend d
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
                   AND d.deptype IN ('a', 'i')
                 LIMIT 1) o ON true
          ORDER BY 1
          LIMIT 100000"
    ))
    .fetch_all(&mut *c)
    .await?;
    let mut unreadable = 0usize;
    let mut scored: Vec<(f64, HealthItem)> = Vec::new();
    for r in &rows {
        let name: String = r.get("name");
        if !r.get::<bool, _>("readable") {
            unreadable += 1;
            continue;
        }
        let last: Option<i64> = r.get("last_value");
        let (min, max, inc): (i64, i64, i64) = (
            r.get("min_value"),
            r.get("max_value"),
            r.get("increment_by"),
        );
        let cycle: bool = r.get("cycle");
        let column_type: Option<String> = r.get("column_type");
        let column_name: Option<String> = r.get("column_name");
        let (col_lo, col_hi) = column_range(column_type.as_deref());
        let column_limits = if inc >= 0 { col_hi < max } else { col_lo > min };
        if cycle && !column_limits {
            continue; // wraps around by design
        }
        let used = sequence_usage(last, min, max, inc, column_type.as_deref());
        let status = if used >= SEQUENCE_CRITICAL {
            HealthStatus::Critical
        } else if used >= SEQUENCE_WARNING {
            HealthStatus::Warning
        } else {
            HealthStatus::Ok
        };
        let limit = if column_limits {
            format!(
                "the {} column {} it feeds",
                column_type.as_deref().unwrap_or("?"),
                column_name.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "its {} {}",
                if inc >= 0 { "maximum" } else { "minimum" },
                if inc >= 0 { max } else { min }
            )
        };
        let message = match status {
            HealthStatus::Ok => format!("{:.1} % of its range used.", used * 100.0),
            _ => format!(
                "{name} has used {:.1} % of the values allowed by {limit} (last value {}). When it runs out, inserts fail: \
                 widen it now (ALTER SEQUENCE {name} AS bigint MAXVALUE ..., and ALTER TABLE ... ALTER COLUMN ... TYPE bigint for the column).",
                used * 100.0,
                last.map(|l| l.to_string()).unwrap_or_else(|| "none".into())
            ),
        };
        scored.push((
            used,
            HealthItem {
                name,
                status,
                value: Some(used * 100.0),
                figure: format!("{:.1} %", used * 100.0),
                message,
            },
        ));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let status = scored
        .iter()
        .fold(HealthStatus::Ok, |s, (_, i)| s.worst(i.status));
    let flagged = scored
        .iter()
        .filter(|(_, i)| i.status != HealthStatus::Ok)
        .count();
    let unreadable_note = if unreadable > 0 {
        format!(
            " {unreadable} sequence(s) could not be read by this role (reading a sequence needs SELECT or USAGE on it, or pg_read_all_data)."
        )
    } else {
        String::new()
    };
    let mut check = match scored.first() {
        Some((top, item)) => HealthCheck::new(
            CheckId::Sequences,
            status,
            Some(top * 100.0),
            format!("{} at {:.1} %", item.name, top * 100.0),
            format!(
                "{} of {} sequence(s) in database {} have used more than {:.0} % of their range.{unreadable_note}",
                flagged,
                scored.len(),
                ctx.database,
                SEQUENCE_WARNING * 100.0
            ),
        ),
        None => HealthCheck::new(
            CheckId::Sequences,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            format!(
                "No sequence in database {} can run out.{unreadable_note}",
                ctx.database
            ),
        ),
    };
    // The flagged ones, and at least the top few for context.
    check.items = scored
        .into_iter()
        .enumerate()
        .filter(|(i, (_, item))| item.status != HealthStatus::Ok || *i < 3)
        .take(20)
        .map(|(_, (_, item))| item)
        .collect();
    Ok(check)
}

async fn invalid_indexes(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tbl,
                pg_relation_size(i.indexrelid)::float8 AS bytes
           FROM pg_index i
          WHERE NOT i.indisvalid
            AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                             WHERE p.index_relid = i.indexrelid)
          ORDER BY 1
          LIMIT 100"
    ))
    .fetch_all(&mut *c)
    .await?;
    let items: Vec<HealthItem> = rows
        .iter()
        .map(|r| {
            let name: String = r.get("name");
            let table: String = r.get("tbl");
            let bytes: f64 = r.get("bytes");
            HealthItem {
                message: format!(
                    "Invalid index on {table}: queries do not use it, yet every write still maintains it. A failed CREATE INDEX \
                     CONCURRENTLY leaves one behind. DROP INDEX CONCURRENTLY {name}; fix the cause (e.g. duplicate values for a \
                     unique index) and create it again, or REINDEX INDEX CONCURRENTLY {name}."
                ),
                name,
                status: HealthStatus::Warning,
                value: Some(bytes),
                figure: human_bytes(bytes),
            }
        })
        .collect();
    let n = items.len();
    let mut check = HealthCheck::new(
        CheckId::InvalidIndexes,
        if n == 0 {
            HealthStatus::Ok
        } else {
            HealthStatus::Warning
        },
        Some(n as f64),
        format!("{n} invalid"),
        if n == 0 {
            format!("Every index of database {} is valid.", ctx.database)
        } else {
            format!(
                "{n} index(es) of database {} are invalid: not used by queries, still maintained on every write.",
                ctx.database
            )
        },
    );
    check.items = items;
    Ok(check)
}

async fn replication_slots(c: &mut PgConnection) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT slot_name::text AS name, slot_type, database::text AS db, wal_status,
                pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                     ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained,
                xmin IS NOT NULL OR catalog_xmin IS NOT NULL AS holds_xmin
           FROM pg_replication_slots
          WHERE NOT active
          ORDER BY retained DESC NULLS LAST, 1"
    ))
    .fetch_all(&mut *c)
    .await?;
    let mut items = Vec::new();
    let mut total = 0.0;
    for r in &rows {
        let name: String = r.get("name");
        let retained: Option<f64> = r.get("retained");
        let wal_status: Option<String> = r.get("wal_status");
        let holds_xmin: bool = r.get("holds_xmin");
        if retained.is_none() && !holds_xmin {
            continue; // reserves nothing yet
        }
        let bytes = retained.unwrap_or(0.0).max(0.0);
        total += bytes;
        let status = match wal_status.as_deref() {
            Some("lost") | Some("unreserved") => HealthStatus::Critical,
            _ => HealthStatus::Warning,
        };
        let kind: Option<String> = r.get("slot_type");
        let db: Option<String> = r.get("db");
        items.push(HealthItem {
            message: format!(
                "Inactive {} slot{} keeps {} of WAL{}{}. If its consumer is gone for good, drop it: SELECT pg_drop_replication_slot('{}');",
                kind.as_deref().unwrap_or(""),
                db.map(|d| format!(" (database {d})")).unwrap_or_default(),
                human_bytes(bytes),
                if holds_xmin { " and holds back vacuum's xmin horizon" } else { "" },
                match wal_status.as_deref() {
                    Some("lost") => "; the WAL it needs is already gone, it can no longer be used",
                    Some("unreserved") => "; the WAL it needs is about to be removed",
                    _ => "",
                },
                name.replace('\'', "''")
            ),
            name,
            status,
            value: Some(bytes),
            figure: human_bytes(bytes),
        });
    }
    let status = items
        .iter()
        .fold(HealthStatus::Ok, |s, i| s.worst(i.status));
    let mut check = HealthCheck::new(
        CheckId::ReplicationSlots,
        status,
        Some(total),
        format!("{} inactive, {} retained", items.len(), human_bytes(total)),
        if items.is_empty() {
            "No inactive replication slot holds WAL.".into()
        } else {
            format!(
                "{} inactive replication slot(s) keep {} of WAL on disk; the disk fills up if nobody reads them.",
                items.len(),
                human_bytes(total)
            )
        },
    );
    check.items = items;
    Ok(check)
}

async fn connections(c: &mut PgConnection) -> Result<HealthCheck> {
    let r = sqlx::query(sql!(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 AS used,
                current_setting('max_connections')::int8 AS max_conn,
                current_setting('superuser_reserved_connections')::int8 AS su_reserved,
                coalesce(current_setting('reserved_connections', true), '0')::int8 AS reserved"
    ))
    .fetch_one(&mut *c)
    .await?;
    let used: i64 = r.get("used");
    let max: i64 = r.get("max_conn");
    let reserved: i64 = r.get::<i64, _>("su_reserved") + r.get::<i64, _>("reserved");
    let available = (max - reserved).max(1);
    let share = used as f64 / available as f64;
    let status = if share > CONNECTIONS_CRITICAL {
        HealthStatus::Critical
    } else if share > CONNECTIONS_WARNING {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    Ok(HealthCheck::new(
        CheckId::Connections,
        status,
        Some(share * 100.0),
        format!("{used} of {available} ({:.0} %)", share * 100.0),
        format!(
            "{used} client connections of the {available} open to ordinary roles (max_connections {max} minus {reserved} reserved).{}",
            if status == HealthStatus::Ok {
                String::new()
            } else {
                " When they run out, new connections are refused: put a connection pooler in front, or find idle sessions to close.".into()
            }
        ),
    ))
}

async fn cache_hit(c: &mut PgConnection) -> Result<HealthCheck> {
    let r = sqlx::query(sql!(
        "SELECT coalesce(sum(blks_hit), 0)::float8 AS hit, coalesce(sum(blks_read), 0)::float8 AS read,
                max(stats_reset) AS reset
           FROM pg_stat_database"
    ))
    .fetch_one(&mut *c)
    .await?;
    let hit: f64 = r.get("hit");
    let read: f64 = r.get("read");
    let reset: Option<chrono::DateTime<chrono::Utc>> = r.get("reset");
    let since = match reset {
        Some(t) => format!(
            "since the statistics were last reset ({})",
            t.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "since the statistics were last reset (never, as far as the server records)".into(),
    };
    if hit + read < CACHE_MIN_BLOCKS {
        return Ok(HealthCheck::new(
            CheckId::CacheHitRatio,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            format!("Too few block reads {since} to judge ({:.0}).", hit + read),
        ));
    }
    let ratio = hit / (hit + read);
    let status = if ratio < CACHE_HIT_WARNING {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    Ok(HealthCheck::new(
        CheckId::CacheHitRatio,
        status,
        Some(ratio * 100.0),
        format!("{:.2} %", ratio * 100.0),
        format!(
            "{:.2} % of block reads in all databases were served from shared buffers {since}.{}",
            ratio * 100.0,
            if status == HealthStatus::Ok {
                ""
            } else {
                " Below 90 % the working set usually does not fit in shared_buffers: consider raising shared_buffers (and memory), \
                 or look for queries that scan large tables."
            }
        ),
    ))
}

async fn pg_stat_statements(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let r = sqlx::query(sql!(
        "SELECT current_setting('shared_preload_libraries') AS spl,
                current_setting('pg_stat_statements.max', true) AS max,
                (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'pg_stat_statements') AS nsp"
    ))
    .fetch_one(&mut *c)
    .await?;
    let spl: String = r.get("spl");
    let preloaded = spl
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim())
        .any(|s| s == "pg_stat_statements" || s.ends_with("/pg_stat_statements"));
    let nsp: Option<String> = r.get("nsp");
    let enable = format!(
        "To enable it: add pg_stat_statements to shared_preload_libraries in postgresql.conf \
         (shared_preload_libraries = 'pg_stat_statements', keeping any libraries already listed), restart the server, \
         then run CREATE EXTENSION pg_stat_statements; in database {} as a superuser.",
        ctx.database
    );
    let missing = |what: &str, msg: String| {
        HealthCheck::new(
            CheckId::PgStatStatements,
            HealthStatus::Warning,
            None,
            what.to_string(),
            msg,
        )
    };
    if !preloaded {
        return Ok(missing(
            "not loaded",
            format!("pg_stat_statements is not loaded, so there is no record of which queries cost the most. {enable}"),
        ));
    }
    let Some(nsp) = nsp else {
        return Ok(missing(
            "extension missing",
            format!(
                "pg_stat_statements is loaded but the extension is not created in database {}. Run CREATE EXTENSION pg_stat_statements; there as a superuser.",
                ctx.database
            ),
        ));
    };
    let max: f64 = r
        .get::<Option<String>, _>("max")
        .and_then(|m| m.parse().ok())
        .unwrap_or(5000.0);
    let schema = quote_ident(&nsp)?;
    let count_sql =
        format!("{MARK} SELECT count(*)::float8 FROM {schema}.pg_stat_statements(false)");
    let entries: f64 = sqlx::query_scalar(&count_sql)
        .persistent(false)
        .fetch_one(&mut *c)
        .await?;
    let has_info: bool = sqlx::query_scalar(sql!(
        "SELECT to_regclass(format('%I.pg_stat_statements_info', $1::text)) IS NOT NULL"
    ))
    .bind(&nsp)
    .fetch_one(&mut *c)
    .await?;
    let mut dealloc = None;
    let mut reset = None;
    if ctx.version_num >= 140000 && has_info {
        let info_sql =
            format!("{MARK} SELECT dealloc::float8 AS dealloc, stats_reset FROM {schema}.pg_stat_statements_info");
        let row = sqlx::query(&info_sql)
            .persistent(false)
            .fetch_one(&mut *c)
            .await?;
        dealloc = Some(row.get::<f64, _>("dealloc"));
        reset = row.get::<Option<chrono::DateTime<chrono::Utc>>, _>("stats_reset");
    }
    let share = entries / max.max(1.0);
    let evicted = dealloc.unwrap_or(0.0);
    let status = if evicted > 0.0 || share >= 0.9 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    };
    let since = reset
        .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let message = if evicted > 0.0 {
        format!(
            "It has evicted entries {evicted:.0} time(s){since} to make room, so statistics of rarely-run statements are being lost. \
             Raise pg_stat_statements.max (now {max:.0}; needs a restart)."
        )
    } else if share >= 0.9 {
        format!(
            "It tracks {entries:.0} statements, close to pg_stat_statements.max ({max:.0}); beyond it, entries are evicted. \
             Consider raising pg_stat_statements.max (needs a restart)."
        )
    } else {
        format!("Installed and tracking {entries:.0} of at most {max:.0} statements.")
    };
    Ok(HealthCheck::new(
        CheckId::PgStatStatements,
        status,
        Some(share * 100.0),
        format!(
            "{entries:.0} of {max:.0} entries{}",
            dealloc
                .map(|d| format!(", {d:.0} evictions"))
                .unwrap_or_default()
        ),
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraparound_thresholds() {
        let fma = 200_000_000;
        assert_eq!(wraparound_status(1_000, fma), HealthStatus::Ok);
        assert_eq!(wraparound_status(250_000_000, fma), HealthStatus::Ok);
        // Halfway from 200 M to 2147 M is about 1174 M.
        assert_eq!(wraparound_status(1_170_000_000, fma), HealthStatus::Ok);
        assert_eq!(wraparound_status(1_180_000_000, fma), HealthStatus::Warning);
        assert_eq!(
            wraparound_status(WRAP_LIMIT - 10_000_001, fma),
            HealthStatus::Warning
        );
        assert_eq!(
            wraparound_status(WRAP_LIMIT - 9_999_999, fma),
            HealthStatus::Critical
        );
        // With the highest allowed freeze age, only the hard margin is left.
        assert_eq!(
            wraparound_status(2_050_000_000, 2_000_000_000),
            HealthStatus::Ok
        );
        assert_eq!(
            wraparound_status(2_100_000_000, 2_000_000_000),
            HealthStatus::Warning
        );
        assert!(
            wraparound_sentence("transaction", "autovacuum_freeze_max_age", 250_000_000, fma)
                .contains("anti-wraparound autovacuum is due")
        );
    }

    #[test]
    fn sequence_usage_counts_the_column_type() {
        assert_eq!(sequence_usage(None, 1, 100, 1, None), 0.0);
        assert!((sequence_usage(Some(81), 1, 101, 1, None) - 0.8).abs() < 1e-9);
        // A bigint sequence feeding an integer column runs out at 2^31 - 1.
        let u = sequence_usage(Some(2_000_000_000), 1, i64::MAX, 1, Some("integer"));
        assert!(u > 0.93 && u < 0.94, "{u}");
        assert!(sequence_usage(Some(2_000_000_000), 1, i64::MAX, 1, Some("bigint")) < 1e-9);
        // Descending sequences count down to their minimum.
        assert!((sequence_usage(Some(-80), -101, -1, -1, None) - 0.79).abs() < 1e-9);
        // Full ranges do not overflow.
        assert_eq!(
            sequence_usage(Some(i64::MAX), i64::MIN, i64::MAX, 1, None),
            1.0
        );
        assert_eq!(sequence_usage(Some(5), 10, 10, 1, None), 1.0);
    }

    #[test]
    fn statuses_order_by_seriousness() {
        use HealthStatus::*;
        assert_eq!(Ok.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(Warning), Warning);
        assert_eq!(Critical.worst(Warning), Critical);
        assert_eq!(Warning.worst(Ok), Warning);
    }
}
