//! Health checks: the slow-burning problems that take a server down if nobody looks.
//!
//! Transaction id and multixact wraparound, sequences running out, invalid indexes, replication
//! slots that nobody reads but that keep WAL, connection headroom, a poor cache hit ratio, and
//! pg_stat_statements missing or overflowing. Each check gives ok / warning / critical, the
//! figure it judged and a sentence saying what to do. Each runs in its own read-only transaction
//! with its own timeout, so a check that fails or hangs becomes an "unknown" result carrying the
//! error while the others still run. Every query works for a role with only `pg_monitor`.
//!
//! This file holds the report's types and runs the checks; the checks themselves are in
//! `wraparound`, `sequences` and `server`.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};
use ts_rs::TS;

use crate::conn::Pool;
use crate::error::{Error, ErrorCode, Result};
use crate::sql;

mod sequences;
mod server;
mod wraparound;

pub use sequences::sequence_usage;
pub use wraparound::wraparound_status;

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
        CheckId::XidWraparound => wraparound::wraparound(c, false).await?,
        CheckId::MultixactWraparound => wraparound::wraparound(c, true).await?,
        CheckId::OldestTables => wraparound::oldest_tables(c, ctx).await?,
        CheckId::Sequences => sequences::sequences(c, ctx).await?,
        CheckId::InvalidIndexes => server::invalid_indexes(c, ctx).await?,
        CheckId::ReplicationSlots => server::replication_slots(c).await?,
        CheckId::Connections => server::connections(c).await?,
        CheckId::CacheHitRatio => server::cache_hit(c).await?,
        CheckId::PgStatStatements => server::pg_stat_statements(c, ctx).await?,
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

#[cfg(test)]
mod tests {
    use super::wraparound::wraparound_sentence;
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
