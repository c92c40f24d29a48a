//! Table trends: building a plan keeps a snapshot of dead tuples, size and bloat for the
//! database and its tables, shown over a range with charts (CLI and core); snapshots are kept
//! at most every ten minutes, thinned to one a day after 30 days and dropped after a year.

use pgsteward::maintain::{trends, MaintenanceConfig, PlanRequest};
use pgsteward::monitor::series::HistoryRange;

use crate::harness::{cli_json, Home, Pg};
use crate::on_each_version;

const ODD: &str = "Trend \"q\" ü";

async fn a_plan_leaves_a_snapshot_the_trends_show(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE \"Trend \"\"q\"\" ü\" (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO \"Trend \"\"q\"\" ü\" SELECT g, repeat('x', 80) FROM generate_series(1, 40000) g;",
    );
    pg.sql("app", "DELETE FROM \"Trend \"\"q\"\" ü\" WHERE id <= 10000");
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));

    // Nothing yet.
    let (ok, empty) = cli_json(
        &home,
        &["--json", "maintain", "trends", "app", "--range", "24h"],
        None,
    );
    assert!(ok, "{empty}");
    assert_eq!(empty["points"].as_array().unwrap().len(), 0);

    let (ok, plan) = cli_json(&home, &["--json", "maintain", "plan", "app"], None);
    assert!(ok, "{plan}");
    let dead_now: i64 = pg
        .sql(
            "app",
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'Trend \"q\" ü'",
        )
        .trim()
        .parse()
        .unwrap();
    assert!(dead_now >= 10_000, "{dead_now}");

    let table = format!("public.{ODD}");
    let (ok, one) = cli_json(
        &home,
        &[
            "--json", "maintain", "trends", "app", "--range", "24h", "--table", &table,
        ],
        None,
    );
    assert!(ok, "{one}");
    let points = one["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{one}");
    assert_eq!(points[0]["dead_tuples"].as_i64().unwrap(), dead_now);
    assert!(points[0]["total_bytes"].as_i64().unwrap() > 1_000_000);
    assert_eq!(one["table"], ODD);
    let charts = one["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2);
    assert!(charts[0]["svg"].as_str().unwrap().starts_with("<svg"));

    let (ok, all) = cli_json(
        &home,
        &["--json", "maintain", "trends", "app", "--range", "24h"],
        None,
    );
    assert!(ok, "{all}");
    let db = &all["points"].as_array().unwrap()[0];
    assert!(db["dead_tuples"].as_i64().unwrap() >= dead_now, "{all}");

    // A second plan right after keeps no second snapshot.
    let (ok, _) = cli_json(&home, &["--json", "maintain", "plan", "app"], None);
    assert!(ok);
    let (_, again) = cli_json(
        &home,
        &["--json", "maintain", "trends", "app", "--range", "24h"],
        None,
    );
    assert_eq!(again["points"].as_array().unwrap().len(), 1, "{again}");

    // A table given without its schema is refused with a clear message.
    let (ok, err) = cli_json(
        &home,
        &["--json", "maintain", "trends", "app", "--table", "nodot"],
        None,
    );
    assert!(!ok);
    assert_eq!(err["error"]["code"], "invalid_input", "{err}");
}

async fn old_snapshots_are_thinned_then_dropped(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 5000);",
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let cfg = MaintenanceConfig::default();
    let plan = home
        .st
        .maintain_plan("p", &cfg, &PlanRequest::default())
        .await
        .unwrap();
    let store = home.st.history_store("p").await.unwrap();
    let db = &store;
    let now = chrono::Utc::now().timestamp_millis();
    let day = 24 * 3600 * 1000;
    // Snapshots at plan time (just stored), 400 days ago, and three 40 days ago (same day).
    let forty = (now - 40 * day) / day * day + 3600 * 1000;
    for ts in [
        now - 400 * day,
        forty,
        forty + 3600 * 1000,
        forty + 2 * 3600 * 1000,
    ] {
        assert!(trends::record(db, &plan, ts).await.unwrap(), "{ts}");
    }
    // Recording again within ten minutes of the newest snapshot is skipped; a snapshot
    // filled in before it (five minutes ago) is kept, and prunes.
    assert!(!trends::record(db, &plan, now + 1000).await.unwrap());
    assert!(trends::record(db, &plan, now - 5 * 60 * 1000)
        .await
        .unwrap());
    let kept = trends::load(db, None, 0).await.unwrap();
    let ts: Vec<i64> = kept.iter().map(|p| p.ts).collect();
    assert!(
        !ts.contains(&(now - 400 * day)),
        "a year-old snapshot is dropped"
    );
    assert_eq!(
        ts.iter()
            .filter(|t| (forty..forty + day).contains(t))
            .count(),
        1,
        "one snapshot a day after 30 days: {ts:?}"
    );
    assert_eq!(ts.iter().filter(|t| **t >= now - day).count(), 2, "{ts:?}");
    // The range bounds what is shown.
    let week = home
        .st
        .maintain_trends("p", HistoryRange::Last7d, None)
        .await
        .unwrap();
    assert_eq!(week.points.len(), 2);
}

on_each_version!(a_plan_leaves_a_snapshot_the_trends_show);
on_each_version!(old_snapshots_are_thinned_then_dropped);
