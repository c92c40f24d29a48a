//! Evidence-based advice: what the server's own statistics say about its settings.
//!
//! Static rules ignore what the server actually does; this reads the counters (cache hits,
//! temporary files and the statements that spilled, requested against timed checkpoints,
//! connections in use) and the logging a DBA needs, and turns each into a finding with its
//! evidence, the expected effect and a confidence. [`gather`] reads, [`advise`] judges (pure).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::bounds::ServerSetting;
use super::pgtune::{fmt_kb, TuneValue};
use super::Group;
use crate::conn::{PooledConn, MARK};
use crate::error::Result;
use crate::ident::quote_ident;
use crate::sql;

/// Below this cache hit ratio shared_buffers is worth a look.
pub const CACHE_HIT_TARGET: f64 = 0.90;
/// Fewer block reads than this say nothing about the cache yet.
pub const CACHE_MIN_BLOCKS: i64 = 10_000;
/// Share of max_connections in use from which pooling is advised.
pub const CONNECTIONS_NEAR: f64 = 0.80;
/// Requested checkpoints must reach this count before they are judged.
pub const CHECKPOINT_MIN_REQUESTED: i64 = 3;

/// How sure the advice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// A statement that wrote temporary files (from pg_stat_statements).
#[derive(Debug, Clone, Serialize, TS)]
pub struct Spill {
    pub query: String,
    #[ts(type = "number")]
    pub calls: i64,
    /// Temporary data written, in kB.
    #[ts(type = "number")]
    pub temp_kb: i64,
}

/// The counters the advice is judged on.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub blks_hit: i64,
    pub blks_read: i64,
    pub temp_files: i64,
    pub temp_bytes: i64,
    /// `None` when pg_stat_statements is not available in this database.
    pub spills: Option<Vec<Spill>>,
    pub checkpoints_timed: i64,
    pub checkpoints_requested: i64,
    pub connections: i64,
    pub max_connections: i64,
    pub stats_reset: Option<String>,
    /// What pgsteward's own monitoring history saw recently; judged before the lifetime
    /// counters, which can average away what happens now.
    pub recent: Option<Recent>,
}

/// Figures over the last days of the project's monitoring history.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// How far back the history reaches, in days (at most the window asked for).
    pub days: f64,
    pub cache_hit_ratio: Option<f64>,
    pub temp_bytes_per_s: Option<f64>,
    pub checkpoints_timed_per_s: Option<f64>,
    pub checkpoints_requested_per_s: Option<f64>,
    /// Highest number of client connections seen.
    pub peak_connections: Option<f64>,
}

impl Recent {
    fn label(&self) -> String {
        if self.days >= 1.0 {
            format!(
                "over the last {:.0} days of pgsteward's monitoring history",
                self.days
            )
        } else {
            format!(
                "over the last {:.0} hours of pgsteward's monitoring history",
                (self.days * 24.0).max(1.0)
            )
        }
    }
}

/// One piece of advice.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The setting it is about; `None` for advice that is not a setting (pooling).
    pub setting: Option<&'static str>,
    pub title: &'static str,
    pub group: Group,
    /// A value this evidence asks for.
    pub value: Option<TuneValue>,
    /// Only a floor: the hardware baseline may recommend more.
    pub at_least: bool,
    pub evidence: String,
    pub expected_effect: String,
    pub confidence: Confidence,
}

/// Read the counters; needs only `pg_monitor`.
pub async fn gather(conn: &mut PooledConn, major: u32) -> Result<Evidence> {
    let row = sqlx::query(sql!(
        "SELECT coalesce(sum(blks_hit), 0)::int8 AS hit,
                coalesce(sum(blks_read), 0)::int8 AS read,
                coalesce(sum(temp_files), 0)::int8 AS temp_files,
                coalesce(sum(temp_bytes), 0)::int8 AS temp_bytes,
                min(stats_reset)::text AS reset,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 AS conns,
                current_setting('max_connections')::int8 AS max_conns
           FROM pg_stat_database"
    ))
    .fetch_one(&mut **conn)
    .await?;
    let (timed, requested): (i64, i64) = if major >= 17 {
        sqlx::query_as(sql!(
            "SELECT num_timed::int8, num_requested::int8 FROM pg_stat_checkpointer"
        ))
        .fetch_one(&mut **conn)
        .await?
    } else {
        sqlx::query_as(sql!(
            "SELECT checkpoints_timed::int8, checkpoints_req::int8 FROM pg_stat_bgwriter"
        ))
        .fetch_one(&mut **conn)
        .await?
    };
    let spills = spills(conn).await;
    Ok(Evidence {
        blks_hit: row.get("hit"),
        blks_read: row.get("read"),
        temp_files: row.get("temp_files"),
        temp_bytes: row.get("temp_bytes"),
        spills,
        checkpoints_timed: timed,
        checkpoints_requested: requested,
        connections: row.get("conns"),
        max_connections: row.get("max_conns"),
        stats_reset: row.get("reset"),
        recent: None,
    })
}

/// The statements that wrote the most temporary data; `None` when pg_stat_statements cannot be
/// read here (not created in this database, or not loaded).
async fn spills(conn: &mut PooledConn) -> Option<Vec<Spill>> {
    let nsp: Option<String> = sqlx::query_scalar(sql!(
        "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_stat_statements'"
    ))
    .fetch_optional(&mut **conn)
    .await
    .ok()
    .flatten();
    let schema = quote_ident(&nsp?).ok()?;
    let stmt = format!(
        "{MARK} SELECT query, calls::int8 AS calls,
                (temp_blks_written * current_setting('block_size')::int8 / 1024)::int8 AS temp_kb
           FROM {schema}.pg_stat_statements
          WHERE temp_blks_written > 0
          ORDER BY temp_blks_written DESC
          LIMIT 5"
    );
    let rows = sqlx::query(&stmt).fetch_all(&mut **conn).await.ok()?;
    Some(
        rows.into_iter()
            .map(|r| Spill {
                query: r.get("query"),
                calls: r.get("calls"),
                temp_kb: r.get("temp_kb"),
            })
            .collect(),
    )
}

fn current(settings: &HashMap<String, ServerSetting>, name: &str) -> Option<TuneValue> {
    settings.get(name).and_then(|s| s.value())
}

fn text(settings: &HashMap<String, ServerSetting>, name: &str) -> Option<String> {
    settings.get(name).map(|s| s.setting.clone())
}

fn ms_of(v: Option<TuneValue>) -> Option<i64> {
    match v {
        Some(TuneValue::Ms(ms)) => Some(ms),
        Some(TuneValue::Int(i)) => Some(i),
        _ => None,
    }
}

fn one_line(q: &str, max: usize) -> String {
    let flat = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    } else {
        flat
    }
}

/// Judge the evidence against the current settings. `slow_ms` is the project's slow query
/// threshold, used for log_min_duration_statement.
pub fn advise(
    ev: &Evidence,
    settings: &HashMap<String, ServerSetting>,
    slow_ms: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let since = ev
        .stats_reset
        .as_deref()
        .map(|r| format!(" since {r}"))
        .unwrap_or_else(|| " since the statistics were last reset".into());

    let blocks = ev.blks_hit + ev.blks_read;
    if let Some(ratio) = ev.recent.as_ref().and_then(|r| r.cache_hit_ratio) {
        if ratio < CACHE_HIT_TARGET {
            out.push(Finding {
                setting: Some("shared_buffers"),
                title: "Cache hit ratio below 90 %",
                group: Group::Memory,
                value: None,
                at_least: true,
                evidence: format!(
                    "{:.1} % of block reads were served from shared buffers on average {}.",
                    ratio * 100.0,
                    ev.recent.as_ref().map(Recent::label).unwrap_or_default()
                ),
                expected_effect: "More reads served from memory, fewer from disk.".into(),
                confidence: Confidence::High,
            });
        }
    } else if blocks >= CACHE_MIN_BLOCKS {
        let ratio = ev.blks_hit as f64 / blocks as f64;
        if ratio < CACHE_HIT_TARGET {
            out.push(Finding {
                setting: Some("shared_buffers"),
                title: "Cache hit ratio below 90 %",
                group: Group::Memory,
                value: None,
                at_least: true,
                evidence: format!(
                    "{:.1} % of {blocks} block reads were served from shared buffers{since}.",
                    ratio * 100.0
                ),
                expected_effect: "More reads served from memory, fewer from disk.".into(),
                confidence: Confidence::Medium,
            });
        }
    }

    if ev.temp_files > 0 {
        let mut evidence = format!(
            "{} temporary files ({}) were written{since}: sorts and hashes did not fit in work_mem.",
            ev.temp_files,
            fmt_kb((ev.temp_bytes / 1024).max(0) as u64)
        );
        if let Some(r) = &ev.recent {
            if let Some(rate) = r.temp_bytes_per_s.filter(|v| *v > 0.0) {
                evidence.push_str(&format!(
                    " Recently {}/s on average {}.",
                    fmt_kb((rate / 1024.0) as u64),
                    r.label()
                ));
            }
        }
        match &ev.spills {
            Some(list) if !list.is_empty() => {
                evidence.push_str(" Statements that spilled most:");
                for s in list {
                    evidence.push_str(&format!(
                        " [{} in {} calls] {};",
                        fmt_kb(s.temp_kb.max(0) as u64),
                        s.calls,
                        one_line(&s.query, 120)
                    ));
                }
            }
            Some(_) => {}
            None => evidence.push_str(
                " pg_stat_statements is not available here, so the statements are not known.",
            ),
        }
        let doubled = match current(settings, "work_mem") {
            Some(TuneValue::Kb(kb)) => Some(TuneValue::Kb(kb * 2)),
            _ => None,
        };
        out.push(Finding {
            setting: Some("work_mem"),
            title: "Queries write temporary files",
            group: Group::Memory,
            value: doubled,
            at_least: true,
            evidence,
            expected_effect:
                "Sorts and hashes stay in memory; watch total memory: work_mem is per operation."
                    .into(),
            confidence: if ev.spills.as_ref().is_some_and(|l| !l.is_empty()) {
                Confidence::High
            } else {
                Confidence::Medium
            },
        });
    }

    let recent_checkpoints = ev.recent.as_ref().and_then(|r| {
        let (t, q) = (r.checkpoints_timed_per_s?, r.checkpoints_requested_per_s?);
        Some((t, q, r.label()))
    });
    let lifetime_says = ev.checkpoints_requested >= CHECKPOINT_MIN_REQUESTED
        && ev.checkpoints_requested > ev.checkpoints_timed;
    let checkpoint_evidence = match &recent_checkpoints {
        // Recent history decides when it saw checkpoints at all.
        Some((t, q, label)) if t + q > 0.0 => (*q > *t).then(|| {
            format!(
                "{:.1} requested against {:.1} timed checkpoints per hour {label}: WAL fills max_wal_size before checkpoint_timeout.",
                q * 3600.0,
                t * 3600.0
            )
        }),
        _ => lifetime_says.then(|| {
            format!(
                "{} requested against {} timed checkpoints{since}: WAL fills max_wal_size before checkpoint_timeout.",
                ev.checkpoints_requested, ev.checkpoints_timed
            )
        }),
    };
    if let Some(evidence) = checkpoint_evidence {
        let doubled = match current(settings, "max_wal_size") {
            Some(TuneValue::Kb(kb)) => Some(TuneValue::Kb(kb * 2)),
            _ => None,
        };
        out.push(Finding {
            setting: Some("max_wal_size"),
            title: "Requested checkpoints outnumber timed ones",
            group: Group::Wal,
            value: doubled,
            at_least: true,
            evidence,
            expected_effect: "Fewer, calmer checkpoints and less full-page-write WAL.".into(),
            confidence: Confidence::Medium,
        });
    }

    let peak = ev
        .recent
        .as_ref()
        .and_then(|r| r.peak_connections)
        .unwrap_or(0.0)
        .max(ev.connections as f64);
    if ev.max_connections > 0 && peak >= CONNECTIONS_NEAR * ev.max_connections as f64 {
        out.push(Finding {
            setting: None,
            title: "Connections near max_connections: use a pooler",
            group: Group::Connections,
            value: None,
            at_least: false,
            evidence: match &ev.recent {
                Some(r) if r.peak_connections.is_some() => format!(
                    "{} of {} connections are in use now; the peak was {:.0} {}.",
                    ev.connections,
                    ev.max_connections,
                    peak,
                    r.label()
                ),
                _ => format!(
                    "{} of {} connections are in use.",
                    ev.connections, ev.max_connections
                ),
            },
            expected_effect: "A pooler (PgBouncer in transaction mode, or the application's pool) \
                serves many clients with few server connections; raising max_connections instead \
                costs memory per connection."
                .into(),
            confidence: Confidence::High,
        });
    }

    // Logging a DBA needs.
    let lmds = ms_of(current(settings, "log_min_duration_statement"));
    if lmds.is_some_and(|v| v < 0 || v > slow_ms) {
        out.push(Finding {
            setting: Some("log_min_duration_statement"),
            title: "Log slow statements",
            group: Group::Logging,
            value: Some(TuneValue::Ms(slow_ms)),
            at_least: false,
            evidence: format!(
                "Statements slower than the project's threshold ({slow_ms} ms) are not all logged now."
            ),
            expected_effect: "Slow statements appear in the server log with their duration."
                .into(),
            confidence: Confidence::High,
        });
    }
    for (name, title, effect) in [
        (
            "log_checkpoints",
            "Log checkpoints",
            "Each checkpoint's cause and duration in the log.",
        ),
        (
            "log_lock_waits",
            "Log lock waits",
            "Waits longer than deadlock_timeout are logged with who blocked whom.",
        ),
        (
            "track_io_timing",
            "Time I/O",
            "Read and write times in pg_stat_statements, EXPLAIN (BUFFERS) and pg_stat_database; small overhead on most hardware (check with pg_test_timing).",
        ),
    ] {
        if text(settings, name).as_deref() == Some("off") {
            out.push(Finding {
                setting: Some(name),
                title,
                group: Group::Logging,
                value: Some(TuneValue::Text("on".into())),
                at_least: false,
                evidence: format!("{name} is off."),
                expected_effect: effect.into(),
                confidence: Confidence::High,
            });
        }
    }
    let lamd = ms_of(current(settings, "log_autovacuum_min_duration"));
    if lamd.is_some_and(|v| !(0..=10_000).contains(&v)) {
        out.push(Finding {
            setting: Some("log_autovacuum_min_duration"),
            title: "Log autovacuum runs",
            group: Group::Logging,
            value: Some(TuneValue::Ms(10_000)),
            at_least: false,
            evidence:
                "Autovacuum runs shorter than the current threshold leave no trace in the log."
                    .into(),
            expected_effect: "Autovacuum runs over 10 s are logged with what they removed.".into(),
            confidence: Confidence::Medium,
        });
    }
    if ms_of(current(settings, "idle_in_transaction_session_timeout")) == Some(0) {
        out.push(Finding {
            setting: Some("idle_in_transaction_session_timeout"),
            title: "End sessions left idle in a transaction",
            group: Group::Connections,
            value: Some(TuneValue::Ms(600_000)),
            at_least: false,
            evidence: "No limit: a forgotten open transaction holds locks and stops vacuum from removing dead rows."
                .into(),
            expected_effect: "Sessions idle in a transaction for 10 minutes are ended.".into(),
            confidence: Confidence::Medium,
        });
    }
    if ms_of(current(settings, "statement_timeout")) == Some(0) {
        out.push(Finding {
            setting: Some("statement_timeout"),
            title: "Limit statement run time",
            group: Group::Connections,
            value: Some(TuneValue::Ms(300_000)),
            at_least: false,
            evidence: "No limit: a runaway statement runs until someone cancels it.".into(),
            expected_effect: "Statements over 5 minutes are cancelled. Give batch and maintenance roles their own value (ALTER ROLE ... SET statement_timeout).".into(),
            confidence: Confidence::Low,
        });
    }
    out
}

#[cfg(test)]
#[path = "advisor_tests.rs"]
mod tests;
