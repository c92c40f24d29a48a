//! Top queries against real servers: they come from the stored pg_stat_statements deltas, slow
//! statements are recorded as events, and without the extension the report says how to enable it.

use pgsteward::cluster::ClusterOptions;
use pgsteward::monitor::{HistoryRange, QuerySort};

use crate::harness::{Home, Pg};
use crate::on_each_version;

async fn top_queries_come_from_deltas_and_slow_ones_are_recorded(major: u32) {
    let pg = Pg::start_with(major, ClusterOptions::default(), |datadir| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(datadir.join("postgresql.conf"))
            .unwrap();
        writeln!(f, "shared_preload_libraries = 'pg_stat_statements'").unwrap();
    });
    pg.sql(
        "postgres",
        "CREATE EXTENSION pg_stat_statements; CREATE TABLE fast (i int); CREATE TABLE before_table (i int)",
    );
    // Work done before sampling starts must not count: it is not in the range.
    for _ in 0..3 {
        pg.sql("postgres", "SELECT count(*) FROM before_table");
    }
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let first = home.st.sample_now("p").await.unwrap();
    assert_eq!(first.statements_recorded, 0);
    pg.sql("postgres", "SELECT pg_sleep(1.1)");
    for i in 0..20 {
        pg.sql("postgres", &format!("INSERT INTO fast VALUES ({i})"));
    }
    let second = home.st.sample_now("p").await.unwrap();
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    assert!(second.statements_recorded >= 2);
    let slow = second
        .events
        .iter()
        .find(|e| e.kind == "slow_statement")
        .unwrap_or_else(|| panic!("{:?}", second.events));
    assert!(slow.query.contains("pg_sleep"), "{slow:?}");
    assert!(slow.duration_ms > 1000.0);

    let top = home
        .st
        .top_queries("p", HistoryRange::Last15m, QuerySort::Mean, 10)
        .await
        .unwrap();
    assert_eq!(top.statements_available, Some(true));
    assert!(top.enable_instructions.is_none());
    assert!(top.queries[0].query.contains("pg_sleep"), "{top:?}");
    assert_eq!(top.queries[0].calls, 1.0);
    assert!(top.queries[0].mean_ms >= 1100.0);
    assert!(!top.queries.iter().any(|q| q.query.contains("before_table")));
    // pgsteward's own statements are the monitor, not the workload: left out on every version.
    assert!(
        !top.queries
            .iter()
            .any(|q| q.query.contains("clock_timestamp") || q.query.contains("set_config")),
        "{top:?}"
    );
    let by_calls = home
        .st
        .top_queries("p", HistoryRange::Last15m, QuerySort::Calls, 10)
        .await
        .unwrap();
    assert!(by_calls.queries[0].query.contains("INSERT INTO fast"));
    assert_eq!(by_calls.queries[0].calls, 20.0);
    // Not even the collectors' transaction control shows up.
    assert!(
        !by_calls
            .queries
            .iter()
            .any(|q| q.query.starts_with("ROLLBACK") || q.query.starts_with("BEGIN")),
        "{by_calls:?}"
    );
    let series = home
        .st
        .query_series("p", &top.queries[0].queryid, HistoryRange::Last15m)
        .await
        .unwrap();
    assert_eq!(series.points.len(), 1);
    assert!(series.points[0].mean_ms >= 1100.0);

    // A query still running past the threshold is seen live, once per run.
    let runner = {
        let uri = pg.uri("postgres");
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&uri).await.unwrap();
            sqlx::query("SELECT pg_sleep(5)")
                .execute(&mut c)
                .await
                .unwrap();
        })
    };
    loop {
        let n = pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(5)' AND clock_timestamp() - query_start > interval '1.5 seconds'",
        );
        if n == "1" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let third = home.st.sample_now("p").await.unwrap();
    let fourth = home.st.sample_now("p").await.unwrap();
    assert!(third.events.iter().any(|e| e.kind == "long_running"
        && e.query == "SELECT pg_sleep(5)"
        && e.duration_ms > 1000.0));
    assert!(fourth.events.iter().any(|e| e.kind == "long_running"));
    runner.await.unwrap();
    let events = home
        .st
        .slow_query_events("p", HistoryRange::Last15m)
        .await
        .unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "long_running").count(),
        1,
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| e.kind == "slow_statement" && e.query.contains("pg_sleep(")));
}
on_each_version!(top_queries_come_from_deltas_and_slow_ones_are_recorded);

async fn without_pg_stat_statements_the_report_says_how_to_enable_it(major: u32) {
    let pg = Pg::start_with(
        major,
        ClusterOptions {
            settings: vec!["shared_preload_libraries = ''".into()],
            ..Default::default()
        },
        |_| {},
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let r = home.st.sample_now("p").await.unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let note = r.notes.join(" ");
    assert!(note.contains("shared_preload_libraries"), "{note}");
    assert!(note.contains("restart"), "{note}");
    assert!(
        note.contains("CREATE EXTENSION pg_stat_statements"),
        "{note}"
    );
    let top = home
        .st
        .top_queries("p", HistoryRange::Last24h, QuerySort::Total, 10)
        .await
        .unwrap();
    assert!(top.queries.is_empty());
    assert_eq!(top.statements_available, Some(false));
    let how = top.enable_instructions.unwrap();
    assert!(
        how.contains("shared_preload_libraries = 'pg_stat_statements'"),
        "{how}"
    );
    assert!(how.contains("restart the server"), "{how}");
    assert!(how.contains("CREATE EXTENSION pg_stat_statements"), "{how}");
}
on_each_version!(without_pg_stat_statements_the_report_says_how_to_enable_it);
