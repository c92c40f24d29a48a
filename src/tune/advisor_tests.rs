//! Unit tests of the advisor on made-up statistics: a quiet server, a busy one, and settings that
//! need no advice.

use super::*;

fn s(name: &str, setting: &str, unit: Option<&str>, vartype: &str) -> (String, ServerSetting) {
    (
        name.to_string(),
        ServerSetting {
            name: name.into(),
            setting: setting.into(),
            unit: unit.map(Into::into),
            vartype: vartype.into(),
            min_val: None,
            max_val: None,
            enumvals: None,
            context: "sighup".into(),
            pending_restart: false,
        },
    )
}

fn defaults() -> HashMap<String, ServerSetting> {
    [
        s("work_mem", "4096", Some("kB"), "integer"),
        s("max_wal_size", "1024", Some("MB"), "integer"),
        s("log_min_duration_statement", "-1", Some("ms"), "integer"),
        s("log_checkpoints", "on", None, "bool"),
        s("log_lock_waits", "off", None, "bool"),
        s("track_io_timing", "off", None, "bool"),
        s(
            "log_autovacuum_min_duration",
            "600000",
            Some("ms"),
            "integer",
        ),
        s(
            "idle_in_transaction_session_timeout",
            "0",
            Some("ms"),
            "integer",
        ),
        s("statement_timeout", "0", Some("ms"), "integer"),
    ]
    .into_iter()
    .collect()
}

fn find<'a>(f: &'a [Finding], title_part: &str) -> Option<&'a Finding> {
    f.iter().find(|x| x.title.contains(title_part))
}

#[test]
fn a_quiet_server_gets_only_the_logging_advice() {
    let ev = Evidence {
        blks_hit: 100,
        blks_read: 900,
        max_connections: 100,
        connections: 3,
        ..Default::default()
    };
    let f = advise(&ev, &defaults(), 1000);
    let names: Vec<_> = f.iter().filter_map(|x| x.setting).collect();
    assert_eq!(
        names,
        [
            "log_min_duration_statement",
            "log_lock_waits",
            "track_io_timing",
            "log_autovacuum_min_duration",
            "idle_in_transaction_session_timeout",
            "statement_timeout"
        ]
    );
    let lm = find(&f, "slow").unwrap();
    assert_eq!(lm.value, Some(TuneValue::Ms(1000)));
}

#[test]
fn busy_server_evidence_becomes_findings() {
    let ev = Evidence {
        blks_hit: 80_000,
        blks_read: 20_000,
        temp_files: 12,
        temp_bytes: 50 * 1024 * 1024,
        spills: Some(vec![Spill {
            query: "SELECT *\n  FROM big ORDER BY x".into(),
            calls: 4,
            temp_kb: 40960,
        }]),
        checkpoints_timed: 2,
        checkpoints_requested: 9,
        connections: 90,
        max_connections: 100,
        stats_reset: None,
        recent: None,
    };
    let f = advise(&ev, &defaults(), 250);
    let cache = find(&f, "Cache hit").unwrap();
    assert!(
        cache.evidence.starts_with("80.0 % of 100000"),
        "{}",
        cache.evidence
    );
    let temp = find(&f, "temporary").unwrap();
    assert_eq!(temp.value, Some(TuneValue::Kb(8192)));
    assert!(temp.evidence.contains("12 temporary files (50MB)"));
    assert!(temp
        .evidence
        .contains("[40MB in 4 calls] SELECT * FROM big ORDER BY x;"));
    assert_eq!(temp.confidence, Confidence::High);
    let ckpt = find(&f, "checkpoints").unwrap();
    assert_eq!(ckpt.value, Some(TuneValue::Kb(2 * 1048576)));
    assert!(ckpt.evidence.starts_with("9 requested against 2 timed"));
    let pool = find(&f, "pooler").unwrap();
    assert_eq!(pool.setting, None);
    assert!(pool.evidence.contains("90 of 100"));
    assert_eq!(find(&f, "slow").unwrap().value, Some(TuneValue::Ms(250)));

    // Recent history outweighs the lifetime counters: a good cache lately means no cache
    // finding; checkpoints judged per hour lately; the peak of connections counts.
    let recent = Recent {
        days: 7.0,
        cache_hit_ratio: Some(0.995),
        temp_bytes_per_s: Some(2048.0),
        checkpoints_timed_per_s: Some(12.0 / 3600.0),
        checkpoints_requested_per_s: Some(1.0 / 3600.0),
        peak_connections: Some(97.0),
    };
    let f = advise(
        &Evidence {
            connections: 10,
            recent: Some(recent),
            ..ev.clone()
        },
        &defaults(),
        250,
    );
    assert!(find(&f, "Cache hit").is_none());
    assert!(find(&f, "checkpoints").is_none());
    let pool = find(&f, "pooler").unwrap();
    assert!(
        pool.evidence
            .contains("the peak was 97 over the last 7 days"),
        "{}",
        pool.evidence
    );
    assert!(find(&f, "temporary")
        .unwrap()
        .evidence
        .contains("Recently 2kB/s"));
}

#[test]
fn good_settings_bring_no_advice() {
    let mut st = defaults();
    for (n, v) in [
        ("log_min_duration_statement", "500"),
        ("log_lock_waits", "on"),
        ("track_io_timing", "on"),
        ("log_autovacuum_min_duration", "5000"),
        ("idle_in_transaction_session_timeout", "60000"),
        ("statement_timeout", "30000"),
    ] {
        st.get_mut(n).unwrap().setting = v.into();
    }
    let ev = Evidence {
        temp_files: 0,
        checkpoints_requested: 2,
        checkpoints_timed: 0,
        ..Default::default()
    };
    assert!(advise(&ev, &st, 1000).is_empty());
}
