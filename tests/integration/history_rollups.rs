//! The history store on its own (no server): minutes and hours rolled up past their watermarks,
//! and each resolution deleted past its retention.

use pgsteward::monitor::history::{MetricRow, MINUTE_MS};
use pgsteward::monitor::{
    HistoryRange, HistoryRetention, HistoryStore, Metric, QuerySort, Resolution,
};

#[tokio::test]
async fn roll_ups_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = HistoryStore::open_in(dir.path()).await.unwrap();
    let day = 86_400_000_i64;
    let now = chrono::Utc::now().timestamp_millis();
    let minute = |t: i64| t.div_euclid(MINUTE_MS) * MINUTE_MS;
    let pt = |v: f64| {
        vec![MetricRow {
            metric: "tps".into(),
            label: String::new(),
            value: v,
        }]
    };
    let ages = [400 * day, 40 * day, 3 * day, 10 * 60_000];
    for age in ages {
        let m = minute(now - age);
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            store
                .insert_points(m + 5_000 + i as i64 * 10_000, &pt(v))
                .await
                .unwrap();
        }
    }
    assert_eq!(store.row_counts().await.unwrap().0, 12);
    let retention = HistoryRetention::default();
    let rep = store.compact(&retention, now).await.unwrap();
    assert!(rep.raw_rows_deleted == 9, "{rep:?}");
    let (raw, minutes, hours) = store.row_counts().await.unwrap();
    // Raw: only the recent minute is younger than a day.
    assert_eq!(raw, 3);
    // Minutes: 3 days ago and 10 minutes ago (40 and 400 days are past 30 days).
    assert_eq!(minutes, 2);
    // Hours: 40 days and 3 days ago (400 days is past a year); the last complete hours too
    // when "10 minutes ago" falls in one.
    assert!((2..=3).contains(&hours), "{hours}");

    let three_days = minute(now - 3 * day);
    let b = store
        .buckets(
            "tps",
            Resolution::Minute,
            three_days,
            three_days + MINUTE_MS,
        )
        .await
        .unwrap();
    let b = &b[""];
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].sum / b[0].n as f64, b[0].min, b[0].max, b[0].n),
        (2.0, 1.0, 3.0, 3)
    );

    // A second compaction adds nothing twice.
    store.compact(&retention, now).await.unwrap();
    assert_eq!(store.row_counts().await.unwrap(), (raw, minutes, hours));
    let b = store
        .buckets(
            "tps",
            Resolution::Minute,
            three_days,
            three_days + MINUTE_MS,
        )
        .await
        .unwrap();
    assert_eq!(b[""][0].n, 3);

    // 30-day range: hourly points, 40 days ago is outside, 3 days ago inside.
    let h = pgsteward::monitor::series::history_series(
        "t",
        &store,
        &[Metric::Tps],
        HistoryRange::Last30d,
        &retention,
        now,
    )
    .await
    .unwrap();
    assert_eq!(h.resolution, Resolution::Hour);
    let pts = &h.series[0].points;
    assert!(pts.iter().all(|p| p.t >= now - 30 * day - 3_600_000));
    assert!(pts
        .iter()
        .any(|p| (p.value - 2.0).abs() < 1e-9 && p.max == 3.0));
    // Ten minutes ago is reachable at every resolution (not yet rolled up is read from raw).
    let h = pgsteward::monitor::series::history_series(
        "t",
        &store,
        &[Metric::Tps],
        HistoryRange::Last1h,
        &retention,
        now,
    )
    .await
    .unwrap();
    assert_eq!(h.resolution, Resolution::Raw);
    assert_eq!(h.series[0].points.len(), 3);
    // Per-query deltas: three days ago survives as an hourly sum, ten minutes ago as raw rows;
    // a range covering both adds them once each.
    let delta = |calls: f64, total_ms: f64| pgsteward::monitor::history::StatementDelta {
        queryid: "42".into(),
        interval_s: 10.0,
        calls,
        total_ms,
        rows: calls,
        shared_blks_read: 0.0,
        temp_blks_written: 0.0,
    };
    let text = [("42".to_string(), "SELECT slow_thing()".to_string())];
    // A fresh store: its watermarks start before these rows.
    let dir2 = tempfile::tempdir().unwrap();
    let st2 = HistoryStore::open_in(dir2.path()).await.unwrap();
    st2.insert_statements(now - 3 * day, &[delta(2.0, 5000.0)], &text)
        .await
        .unwrap();
    st2.insert_statements(now - 3 * day + 1000, &[delta(1.0, 1000.0)], &text)
        .await
        .unwrap();
    st2.insert_statements(now - 10 * 60_000, &[delta(4.0, 400.0)], &text)
        .await
        .unwrap();
    st2.compact(&retention, now).await.unwrap();
    st2.compact(&retention, now).await.unwrap();
    let top = |from: i64| {
        let st2 = st2.clone();
        async move {
            pgsteward::monitor::queries::top_queries(&st2, from, now + 1, QuerySort::Total, 10)
                .await
                .unwrap()
        }
    };
    let week = top(now - 7 * day).await;
    assert_eq!(week.len(), 1);
    assert_eq!((week[0].calls, week[0].total_ms), (7.0, 6400.0));
    assert_eq!(week[0].query, "SELECT slow_thing()");
    let recent = top(now - 15 * 60_000).await;
    assert_eq!((recent[0].calls, recent[0].total_ms), (4.0, 400.0));
    assert_eq!(recent[0].mean_ms, 100.0);

    // An explicit range a year and a half ago is empty: deleted.
    let h = pgsteward::monitor::series::history_series(
        "t",
        &store,
        &[Metric::Tps],
        HistoryRange::Between {
            from: now - 401 * day,
            to: now - 399 * day,
        },
        &retention,
        now,
    )
    .await
    .unwrap();
    assert!(h.series.is_empty());
}
