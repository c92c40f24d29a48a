//! The sampler: one pass reads every collector, turns counters into rates against the previous
//! readings kept in the history store, derives the dashboard's figures (TPS, cache hit ratio,
//! statement mean latency over the interval...), detects slow queries, and writes it all in one
//! transaction. A background loop repeats it at an interval until its handle is dropped.
//!
//! The previous readings live in the store, not in memory, so two `pgsteward history sample`
//! runs a minute apart give rates just like the GUI's loop does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use ts_rs::TS;

use crate::conn::Pool;
use crate::error::Result;

use super::collect::{
    self, CollectOptions, Collected, Collection, CollectorFailure, CollectorId, StatementCounters,
};
use super::history::{
    CounterState, HistoryRetention, HistoryStore, MetricRow, QueryEvent, SampleWrite,
    StatementDelta,
};
use super::rates::{self, Reading};

/// Settings of sampling and history, with the product's defaults.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub collect: CollectOptions,
    pub retention: HistoryRetention,
    /// The background sampler compacts the store this often.
    pub compact_every: Duration,
    /// Time between samples of a background sampler while someone is looking.
    pub interval: Duration,
    /// Time between samples while the app is hidden or minimised.
    pub background_interval: Duration,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            collect: CollectOptions::default(),
            retention: HistoryRetention::default(),
            compact_every: Duration::from_secs(300),
            interval: Duration::from_secs(10),
            background_interval: Duration::from_secs(30),
        }
    }
}

/// One stored value of a sample.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct MetricValue {
    pub metric: String,
    pub label: String,
    pub value: f64,
}

/// How much a cumulative counter grew since the previous sample.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct CounterDelta {
    pub counter: String,
    pub label: String,
    pub delta: f64,
    /// Server time between the two readings.
    pub seconds: f64,
}

/// What one sampling pass read and stored.
#[derive(Debug, Clone, Serialize, TS)]
pub struct SampleReport {
    pub project: String,
    #[ts(type = "number")]
    pub ts: i64,
    pub sampled_at: String,
    pub server_version_num: i32,
    /// Collectors that read their views.
    pub collectors_ok: Vec<CollectorId>,
    /// Collectors that failed, and why; the rest of the sample is stored regardless.
    pub failures: Vec<CollectorFailure>,
    /// Rates and gauges stored with this sample. Rates need a previous sample: the first
    /// sample of a project stores gauges only.
    pub metrics: Vec<MetricValue>,
    pub deltas: Vec<CounterDelta>,
    /// Queries whose pg_stat_statements counters moved since the previous sample.
    pub statements_recorded: u32,
    /// Slow-query events recorded by this sample.
    pub events: Vec<QueryEvent>,
    /// Things worth knowing that are not failures (e.g. how to enable pg_stat_statements).
    pub notes: Vec<String>,
    /// Alerts that fired or resolved with this sample.
    pub alerts: Vec<super::alerts::AlertTransition>,
}

impl SampleReport {
    pub fn metric(&self, metric: &str, label: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.metric == metric && m.label == label)
            .map(|m| m.value)
    }

    pub fn delta(&self, counter: &str) -> Option<f64> {
        self.deltas
            .iter()
            .find(|d| d.counter == counter && d.label.is_empty())
            .map(|d| d.delta)
    }
}

/// Name of the rate stored for a counter.
pub fn rate_name(counter: &str) -> String {
    match counter {
        "xact_commit" => "commits_per_s".into(),
        "xact_rollback" => "rollbacks_per_s".into(),
        "wal_lsn" => "wal_bytes_per_s".into(),
        other => format!("{other}_per_s"),
    }
}

/// Name under which the statements collector keeps the time of its last reading.
const STATEMENTS_CLOCK: &str = "statements_entries";

/// Name under which the server's start time is kept with the counters.
const SERVER_START: &str = "server_start";

/// The server start time as a number to keep with the counters (a hash of its text: only
/// equality matters).
fn server_identity(started: &str) -> f64 {
    // FNV-1a, folded to 52 bits so it is exact as an f64.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in started.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 12) as f64
}

/// How often database sizes are read (`pg_database_size` stats every file; on a database
/// with thousands of tables it dominates a sample's server time).
pub const SIZES_EVERY_MS: i64 = 5 * 60 * 1000;

/// Take one sample of `pool`'s server into `store`.
pub async fn sample(
    project: &str,
    pool: &Pool,
    store: &HistoryStore,
    opts: &HistoryOptions,
) -> Result<SampleReport> {
    // Database sizes stat every file of every database: read them at most every
    // SIZES_EVERY_MS and repeat the last reading in between.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let read_recently = store
        .sizes_read_at()
        .await?
        .is_some_and(|t| (0..SIZES_EVERY_MS).contains(&(now_ms - t)));
    let recent_sizes = if read_recently {
        store.latest_points("database_size_bytes").await?
    } else {
        None
    };
    let mut copts = opts.collect.clone();
    if recent_sizes.is_some() {
        let all: Vec<CollectorId> = if copts.only.is_empty() {
            CollectorId::ALL.to_vec()
        } else {
            copts.only.clone()
        };
        copts.only = all
            .into_iter()
            .filter(|c| *c != CollectorId::Sizes)
            .collect();
    }
    let mut collection = collect::collect(pool, &copts).await?;
    let sizes_read = collection
        .outputs
        .iter()
        .any(|(id, _)| *id == CollectorId::Sizes);
    if sizes_read {
        store.set_sizes_read_at(now_ms).await?;
    }
    if let Some((_, sizes)) = recent_sizes {
        if opts.collect.only.is_empty() || opts.collect.only.contains(&CollectorId::Sizes) {
            collection.outputs.push((
                CollectorId::Sizes,
                Collected {
                    gauges: sizes
                        .into_iter()
                        .map(|(label, value)| collect::Reading {
                            name: "database_size_bytes",
                            label,
                            value,
                        })
                        .collect(),
                    ..Default::default()
                },
            ));
        }
    }
    let mut prev = store.counters().await?;
    let mut prev_statements = store.statement_counters().await?;
    // Readings from before a restart of the server, or from another server (the project now
    // points elsewhere), are not compared with: the first sample after it stores no rates.
    let identity = server_identity(&collection.server_started);
    if prev
        .get(&(SERVER_START.to_string(), String::new()))
        .is_some_and(|s| s.value != identity)
    {
        prev.clear();
        prev_statements.clear();
    }
    let now = chrono::Utc::now();
    let ts = now.timestamp_millis();
    let mut built = build(
        ts,
        &collection,
        &prev,
        &prev_statements,
        opts.collect.slow_query_threshold_ms,
    );
    built.write.counters.push((
        SERVER_START.into(),
        String::new(),
        CounterState {
            value: identity,
            epoch: built.write.server_epoch,
        },
    ));
    store.write_sample(&built.write).await?;
    Ok(SampleReport {
        project: project.to_string(),
        ts,
        sampled_at: now.to_rfc3339(),
        server_version_num: collection.server_version_num,
        collectors_ok: collection.outputs.iter().map(|(id, _)| *id).collect(),
        failures: collection.failures.clone(),
        metrics: built
            .write
            .metrics
            .iter()
            .map(|m| MetricValue {
                metric: m.metric.clone(),
                label: m.label.clone(),
                value: m.value,
            })
            .collect(),
        deltas: built.deltas,
        statements_recorded: built.write.statements.len() as u32,
        events: built.write.events,
        notes: collection
            .outputs
            .iter()
            .filter_map(|(_, c)| c.note.clone())
            .collect(),
        alerts: Vec::new(),
    })
}

/// What a collection becomes once compared with the previous readings.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub write: SampleWrite,
    pub deltas: Vec<CounterDelta>,
}

/// Pure part of sampling: rates, derived figures, statement deltas and events.
pub fn build(
    ts: i64,
    c: &Collection,
    prev: &HashMap<(String, String), CounterState>,
    prev_statements: &HashMap<String, (StatementCounters, f64)>,
    threshold_ms: f64,
) -> Built {
    let mut b = Built::default();
    b.write.ts = ts;
    b.write.failures = c.failures.clone();
    let mut server_epoch = None;
    let mut inc: HashMap<&str, (f64, f64)> = HashMap::new(); // counter -> (increase, seconds)
    for (_, out) in &c.outputs {
        server_epoch.get_or_insert(out.epoch);
        for g in &out.gauges {
            b.write.metrics.push(MetricRow {
                metric: g.name.to_string(),
                label: g.label.clone(),
                value: g.value,
            });
        }
        for r in &out.counters {
            let key = (r.name.to_string(), r.label.clone());
            let cur = Reading {
                value: r.value,
                epoch: out.epoch,
            };
            if let Some(p) = prev.get(&key) {
                let p = Reading {
                    value: p.value,
                    epoch: p.epoch,
                };
                if let Some((d, rate)) = rates::delta(p, cur) {
                    b.write.metrics.push(MetricRow {
                        metric: rate_name(r.name),
                        label: r.label.clone(),
                        value: rate,
                    });
                    b.deltas.push(CounterDelta {
                        counter: r.name.to_string(),
                        label: r.label.clone(),
                        delta: d,
                        seconds: out.epoch - p.epoch,
                    });
                    if r.label.is_empty() {
                        inc.insert(r.name, (d, out.epoch - p.epoch));
                    }
                }
            }
            b.write.counters.push((
                key.0,
                key.1,
                CounterState {
                    value: r.value,
                    epoch: out.epoch,
                },
            ));
        }
    }
    b.write.server_epoch = server_epoch.unwrap_or(ts as f64 / 1000.0);
    b.write.interval_s = inc.get("xact_commit").map(|(_, s)| *s);
    // Derived figures, when all their parts moved over the same interval.
    let sum_rate = |names: &[&str]| -> Option<f64> {
        let mut total = 0.0;
        let mut secs = None;
        for n in names {
            let (d, s) = inc.get(n)?;
            total += d;
            secs = Some(*s);
        }
        secs.filter(|s| *s > 0.0).map(|s| total / s)
    };
    let mut derived = |metric: &str, value: Option<f64>| {
        if let Some(v) = value {
            b.write.metrics.push(MetricRow {
                metric: metric.to_string(),
                label: String::new(),
                value: v,
            });
        }
    };
    derived("tps", sum_rate(&["xact_commit", "xact_rollback"]));
    derived(
        "tuples_read_per_s",
        sum_rate(&["tup_returned", "tup_fetched"]),
    );
    derived(
        "tuples_written_per_s",
        sum_rate(&["tup_inserted", "tup_updated", "tup_deleted"]),
    );
    if let (Some((hit, _)), Some((read, _))) = (inc.get("blks_hit"), inc.get("blks_read")) {
        derived("cache_hit_ratio", rates::ratio(*hit, *read));
    }
    if let Some(out) = c.get(CollectorId::Statements) {
        statements(&mut b, ts, out, prev, prev_statements, threshold_ms);
    }
    if let Some(out) = c.get(CollectorId::Activity) {
        for l in &out.long_running {
            b.write.events.push(QueryEvent {
                ts,
                kind: "long_running".into(),
                queryid: None,
                pid: Some(l.pid),
                database: l.database.clone(),
                user: l.user.clone(),
                duration_ms: l.running_ms,
                calls: None,
                threshold_ms,
                query: l.query.clone(),
                started_at: Some((l.query_start_epoch * 1000.0) as i64),
            });
        }
    }
    b
}

fn statements(
    b: &mut Built,
    ts: i64,
    out: &Collected,
    prev: &HashMap<(String, String), CounterState>,
    prev_statements: &HashMap<String, (StatementCounters, f64)>,
    threshold_ms: f64,
) {
    let Some(list) = &out.statements else {
        return;
    };
    b.write.counters.push((
        STATEMENTS_CLOCK.into(),
        String::new(),
        CounterState {
            value: list.len() as f64,
            epoch: out.epoch,
        },
    ));
    b.write.statement_counters = Some((out.epoch, list.clone()));
    // Without an earlier reading there is nothing to compare with.
    let Some(prev_clock) = prev.get(&(STATEMENTS_CLOCK.to_string(), String::new())) else {
        return;
    };
    let dt = out.epoch - prev_clock.epoch;
    if dt.is_nan() || dt <= 0.0 {
        return;
    }
    let (mut calls, mut total) = (0.0, 0.0);
    for s in list {
        let d = match prev_statements.get(&s.queryid) {
            Some((p, _)) if s.calls >= p.calls => StatementDelta {
                queryid: s.queryid.clone(),
                interval_s: dt,
                calls: s.calls - p.calls,
                total_ms: rates::increase(p.total_ms, s.total_ms),
                rows: rates::increase(p.rows, s.rows),
                shared_blks_read: rates::increase(p.shared_blks_read, s.shared_blks_read),
                temp_blks_written: rates::increase(p.temp_blks_written, s.temp_blks_written),
            },
            // New since the previous reading, or reset (calls went down): everything it holds
            // accumulated since then.
            _ => StatementDelta {
                queryid: s.queryid.clone(),
                interval_s: dt,
                calls: s.calls,
                total_ms: s.total_ms,
                rows: s.rows,
                shared_blks_read: s.shared_blks_read,
                temp_blks_written: s.temp_blks_written,
            },
        };
        if d.calls <= 0.0 {
            continue;
        }
        calls += d.calls;
        total += d.total_ms;
        let mean = d.total_ms / d.calls;
        if mean > threshold_ms {
            b.write.events.push(QueryEvent {
                ts,
                kind: "slow_statement".into(),
                queryid: Some(s.queryid.clone()),
                pid: None,
                database: None,
                user: None,
                duration_ms: mean,
                calls: Some(d.calls),
                threshold_ms,
                query: s.query.clone(),
                started_at: None,
            });
        }
        b.write.statements.push(d);
    }
    let mut push = |metric: &str, value: f64| {
        b.write.metrics.push(MetricRow {
            metric: metric.into(),
            label: String::new(),
            value,
        })
    };
    push("statement_calls_per_s", calls / dt);
    if calls > 0.0 {
        push("statement_mean_ms", total / calls);
    }
}

/// A running background sampler. Dropping it (or calling [`SamplerHandle::stop`]) stops the
/// loop after the pass in progress, if any.
pub struct SamplerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    state: Arc<Mutex<SamplerState>>,
}

/// What the background sampler did last.
#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct SamplerState {
    #[ts(type = "number")]
    pub samples: u64,
    #[ts(type = "number")]
    pub errors: u64,
    pub last_error: Option<crate::error::Error>,
    pub last_sampled_at: Option<String>,
}

/// Called after each pass with its report (for live updates in the UI).
pub type OnSample = Arc<dyn Fn(&Result<SampleReport>) + Send + Sync>;

impl SamplerHandle {
    /// Start a loop that calls `pass` every `interval` (first pass at once) and `compact` every
    /// `compact_every`.
    pub fn spawn<P, PF, C, CF>(
        interval: Duration,
        compact_every: Duration,
        pass: P,
        compact: C,
        on_sample: Option<OnSample>,
    ) -> SamplerHandle
    where
        P: Fn() -> PF + Send + 'static,
        PF: std::future::Future<Output = Result<SampleReport>> + Send,
        C: Fn() -> CF + Send + 'static,
        CF: std::future::Future<Output = Result<()>> + Send,
    {
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::new(Mutex::new(SamplerState::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_compact = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tick.tick() => {}
                }
                let r = tokio::select! {
                    _ = &mut rx => break,
                    r = pass() => r,
                };
                {
                    let mut s = st.lock().unwrap();
                    match &r {
                        Ok(rep) => {
                            s.samples += 1;
                            s.last_sampled_at = Some(rep.sampled_at.clone());
                        }
                        Err(e) => {
                            s.errors += 1;
                            s.last_error = Some(e.clone());
                        }
                    }
                }
                if let Some(cb) = &on_sample {
                    cb(&r);
                }
                if last_compact.elapsed() >= compact_every {
                    last_compact = tokio::time::Instant::now();
                    if let Err(e) = compact().await {
                        tracing::warn!(error = %e, "history compaction failed");
                    }
                }
            }
        });
        SamplerHandle {
            stop: Some(tx),
            task: Some(task),
            state,
        }
    }

    pub fn state(&self) -> SamplerState {
        self.state.lock().unwrap().clone()
    }

    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop the loop and wait for it to end.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
