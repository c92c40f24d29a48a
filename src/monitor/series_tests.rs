//! Unit tests of series: the resolution a range gets, and charts grouping series and marking
//! limits.

use super::*;

#[test]
fn resolution_follows_the_range() {
    let r = HistoryRetention::default();
    let now = 1_000 * DAY_MS;
    let pick = |range: HistoryRange| {
        let (f, t) = range.bounds(now).unwrap();
        pick_resolution(f, t, now, &r)
    };
    assert_eq!(pick(HistoryRange::Last15m), Resolution::Raw);
    assert_eq!(pick(HistoryRange::Last1h), Resolution::Raw);
    assert_eq!(pick(HistoryRange::Last24h), Resolution::Minute);
    assert_eq!(pick(HistoryRange::Last7d), Resolution::Minute);
    assert_eq!(pick(HistoryRange::Last30d), Resolution::Hour);
    // An hour long ago: raw points are gone, minutes remain.
    let old = HistoryRange::Between {
        from: now - 3 * DAY_MS,
        to: now - 3 * DAY_MS + HOUR_MS,
    };
    assert_eq!(pick(old), Resolution::Minute);
    for m in Metric::ALL {
        assert_eq!(Metric::parse(m.as_str()).unwrap(), m);
    }
}

fn series(metric: Metric, label: &str, values: &[f64]) -> Series {
    let (title, unit) = metric.title_unit();
    Series {
        metric,
        label: label.into(),
        title: title.into(),
        unit: unit.into(),
        points: values
            .iter()
            .enumerate()
            .map(|(i, v)| SeriesPoint {
                t: 1_700_000_000_000 + i as i64 * MINUTE_MS,
                value: *v,
                min: *v,
                max: *v,
            })
            .collect(),
    }
}

#[test]
fn charts_group_the_series_and_mark_limits() {
    let h = HistorySeries {
        project: "p".into(),
        from: 1_700_000_000_000 - MINUTE_MS,
        to: 1_700_000_000_000 + 15 * MINUTE_MS,
        resolution: Resolution::Raw,
        series: vec![
            series(Metric::Tps, "", &[1.0, 2.0]),
            series(Metric::Connections, "active", &[1.0, 2.0]),
            series(Metric::Connections, "idle_in_transaction", &[0.0, 1.0]),
            series(Metric::Connections, "total", &[3.0, 4.0]),
            series(Metric::MaxConnections, "", &[100.0, 100.0]),
            series(Metric::CacheHitRatio, "", &[0.5, 0.99]),
        ],
    };
    let c = history_charts(&h);
    assert_eq!(c.charts.len(), PANELS.len());
    assert_eq!(c.points, 2 + 4 + 2);
    let get = |id: &str| c.charts.iter().find(|x| x.id == id).unwrap();
    let conn = get("connections");
    assert_eq!(conn.points, 4, "total is not drawn as a state");
    assert!(conn.svg.contains("max_connections"));
    assert!(conn.svg.contains("idle_in_transaction"));
    assert!(get("cache_hit_ratio").svg.contains("target 90 %"));
    assert_eq!(get("deadlocks").points, 0);
    assert!(get("statement_mean")
        .note
        .as_deref()
        .unwrap()
        .contains("not a percentile"));
    let empty = history_charts(&HistorySeries {
        series: vec![],
        ..h
    });
    assert_eq!(empty.points, 0);
}
