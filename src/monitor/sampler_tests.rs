//! Unit tests of the sampler: the first sample has no rates and the next has, a counter reset
//! gives no negative rate, and statement counters become deltas, mean latency and slow events.

use super::*;
use crate::monitor::collect::Reading as R;

fn coll(epoch: f64, commits: f64, hit: f64, read: f64) -> Collection {
    let counters = vec![
        R {
            name: "xact_commit",
            label: String::new(),
            value: commits,
        },
        R {
            name: "xact_rollback",
            label: String::new(),
            value: 0.0,
        },
        R {
            name: "blks_hit",
            label: String::new(),
            value: hit,
        },
        R {
            name: "blks_read",
            label: String::new(),
            value: read,
        },
    ];
    Collection {
        server_version_num: 180000,
        database: "d".into(),
        server_started: "2026-01-01 00:00:00+00".into(),
        outputs: vec![(
            CollectorId::Database,
            Collected {
                epoch,
                counters,
                ..Default::default()
            },
        )],
        failures: vec![],
    }
}

fn state(b: &Built) -> HashMap<(String, String), CounterState> {
    b.write
        .counters
        .iter()
        .map(|(m, l, s)| ((m.clone(), l.clone()), *s))
        .collect()
}

fn metric(b: &Built, name: &str) -> Option<f64> {
    b.write
        .metrics
        .iter()
        .find(|m| m.metric == name)
        .map(|m| m.value)
}

#[test]
fn first_sample_has_no_rates_then_rates_follow() {
    let none = HashMap::new();
    let nost = HashMap::new();
    let first = build(1, &coll(100.0, 1000.0, 90.0, 10.0), &none, &nost, 1000.0);
    assert_eq!(metric(&first, "tps"), None);
    let second = build(
        2,
        &coll(102.0, 1200.0, 189.0, 11.0),
        &state(&first),
        &nost,
        1000.0,
    );
    assert_eq!(metric(&second, "tps"), Some(100.0));
    assert_eq!(metric(&second, "commits_per_s"), Some(100.0));
    assert_eq!(metric(&second, "cache_hit_ratio"), Some(0.99));
    assert_eq!(second.write.interval_s, Some(2.0));
}

#[test]
fn counter_reset_gives_no_negative_rate() {
    let none = HashMap::new();
    let nost = HashMap::new();
    let first = build(1, &coll(100.0, 50_000.0, 900.0, 100.0), &none, &nost, 1e3);
    let after_reset = build(2, &coll(110.0, 20.0, 5.0, 5.0), &state(&first), &nost, 1e3);
    for m in &after_reset.write.metrics {
        assert!(m.value >= 0.0, "{m:?}");
    }
    assert_eq!(metric(&after_reset, "tps"), Some(2.0));
    assert!(after_reset.deltas.iter().all(|d| d.delta >= 0.0));
}

#[test]
fn statements_give_deltas_mean_latency_and_slow_events() {
    let mk = |epoch: f64, calls: f64, total: f64| {
        let mut c = coll(epoch, 0.0, 0.0, 0.0);
        c.outputs.push((
            CollectorId::Statements,
            Collected {
                epoch,
                statements: Some(vec![
                    StatementCounters {
                        queryid: "1".into(),
                        query: "SELECT pg_sleep($1)".into(),
                        calls,
                        total_ms: total,
                        rows: calls,
                        shared_blks_read: 0.0,
                        temp_blks_written: 0.0,
                    },
                    StatementCounters {
                        queryid: "2".into(),
                        query: "SELECT 1".into(),
                        calls: 10.0,
                        total_ms: 1.0,
                        rows: 10.0,
                        shared_blks_read: 0.0,
                        temp_blks_written: 0.0,
                    },
                ]),
                ..Default::default()
            },
        ));
        c
    };
    let none = HashMap::new();
    let first = build(1, &mk(100.0, 5.0, 100.0), &none, &HashMap::new(), 1000.0);
    assert!(first.write.statements.is_empty());
    let prev_st: HashMap<String, (StatementCounters, f64)> = first
        .write
        .statement_counters
        .clone()
        .unwrap()
        .1
        .into_iter()
        .map(|s| (s.queryid.clone(), (s, 100.0)))
        .collect();
    let second = build(2, &mk(110.0, 7.0, 3100.0), &state(&first), &prev_st, 1000.0);
    // Query 2 did not run: no delta for it.
    assert_eq!(second.write.statements.len(), 1);
    let d = &second.write.statements[0];
    assert_eq!((d.calls, d.total_ms, d.interval_s), (2.0, 3000.0, 10.0));
    assert_eq!(metric(&second, "statement_mean_ms"), Some(1500.0));
    assert_eq!(second.write.events.len(), 1);
    assert_eq!(second.write.events[0].kind, "slow_statement");
    assert_eq!(second.write.events[0].duration_ms, 1500.0);
    // pg_stat_statements_reset(): counters drop, nothing goes negative.
    let third = build(3, &mk(120.0, 1.0, 2.0), &state(&second), &prev_st, 1000.0);
    assert!(third
        .write
        .statements
        .iter()
        .all(|d| d.calls >= 0.0 && d.total_ms >= 0.0));
}
