//! Monitoring history against real servers: rates that reflect the work done, collectors that
//! fail alone, a pg_monitor-only role, the background sampler, database sizes, and the CLI.
//! Roll-ups and retention are in history_rollups.rs, top queries and slow-query events in
//! history_queries.rs.

use pgsteward::monitor::{HistoryRange, Metric, Resolution, SampleReport};
use serde_json::Value;

use crate::harness::{cli, Home, Pg};
use crate::on_each_version;

/// Two hundred committed transactions, each its own, visible in the statistics on return.
///
/// A backend publishes its counters when idle at most once a second, or when it exits (after
/// its client has gone): the session asks for its counters to be flushed before it answers.
async fn commit_200(pg: &Pg) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&pg.uri("postgres"))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DO $$ BEGIN FOR i IN 1..200 LOOP INSERT INTO w VALUES (i); COMMIT; END LOOP; END $$",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

fn ok_collectors(r: &SampleReport) -> Vec<&'static str> {
    r.collectors_ok.iter().map(|c| c.as_str()).collect()
}

async fn sampling_twice_reflects_the_work_done(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE TABLE w (i int)");
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));

    let first = home.st.sample_now("p").await.unwrap();
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(ok_collectors(&first).len(), 8, "{first:?}");
    assert!(
        first.deltas.is_empty(),
        "no rates without a previous sample"
    );
    assert_eq!(first.metric("max_connections", ""), Some(100.0));
    assert!(first.metric("connections", "total").unwrap() >= 1.0);
    assert!(first.metric("database_size_bytes", "postgres").unwrap() > 0.0);
    // The test servers preload pg_stat_statements, but the extension is not created yet.
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.contains("CREATE EXTENSION pg_stat_statements")),
        "{:?}",
        first.notes
    );

    commit_200(&pg).await;
    let second = home.st.sample_now("p").await.unwrap();
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    let commits = second.delta("xact_commit").unwrap();
    assert!(commits >= 200.0, "commit delta {commits}");
    assert!(second.metric("commits_per_s", "").unwrap() > 0.0);
    assert!(second.metric("tps", "").unwrap() > 0.0);
    assert!(second.metric("tuples_written_per_s", "").unwrap() > 0.0);
    assert!(second.metric("wal_bytes_per_s", "").unwrap() > 0.0);
    assert!(second.delta("tup_inserted").unwrap() >= 200.0);
    for m in &second.metrics {
        assert!(m.value >= 0.0, "{m:?}");
    }

    let h = home
        .st
        .history_series(
            "p",
            &[Metric::Tps, Metric::Connections, Metric::DatabaseSizeBytes],
            HistoryRange::Last15m,
        )
        .await
        .unwrap();
    assert_eq!(h.resolution, Resolution::Raw);
    let tps: Vec<_> = h
        .series
        .iter()
        .filter(|s| s.metric == Metric::Tps)
        .collect();
    assert_eq!(tps.len(), 1);
    assert_eq!(tps[0].points.len(), 1);
    assert!(tps[0].points[0].value > 0.0);
    assert!(tps[0].chart_svg().starts_with("<svg"));
    let total = h
        .series
        .iter()
        .find(|s| s.metric == Metric::Connections && s.label == "total")
        .unwrap();
    assert_eq!(total.points.len(), 2);
    assert!(h
        .series
        .iter()
        .any(|s| s.metric == Metric::DatabaseSizeBytes && s.label == "postgres"));

    // One SQLite file in the project's folder, in WAL mode.
    let file = home.path().join("projects/p/history.sqlite");
    assert!(file.exists(), "{}", file.display());
    let store = home.st.history_store("p").await.unwrap();
    assert_eq!(store.journal_mode().await.unwrap(), "wal");

    // After a restart the first sample compares with nothing (the counters belong to the
    // previous run of the server), then rates resume.
    pg.cluster.stop().unwrap();
    pg.cluster.start().unwrap();
    let after_restart = home.st.sample_now("p").await.unwrap();
    assert!(
        after_restart.deltas.is_empty(),
        "{:?}",
        after_restart.deltas
    );
    commit_200(&pg).await;
    let resumed = home.st.sample_now("p").await.unwrap();
    assert!(resumed.delta("xact_commit").unwrap() >= 200.0);

    // Removing the project removes its history: a new project of that name starts afresh.
    drop(store);
    home.st.remove("p", false).unwrap();
    assert!(!file.exists());
    home.add_uri("p", &pg.uri("postgres"));
    let fresh = home.st.sample_now("p").await.unwrap();
    assert!(fresh.deltas.is_empty(), "{:?}", fresh.deltas);
}
on_each_version!(sampling_twice_reflects_the_work_done);

async fn a_forbidden_view_fails_alone_and_pg_monitor_is_enough(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE EXTENSION pg_stat_statements;
         CREATE ROLE plain LOGIN PASSWORD 'plain-pw';
         CREATE ROLE watcher LOGIN PASSWORD 'watch-pw'; GRANT pg_monitor TO watcher;
         CREATE TABLE w (i int); GRANT INSERT ON w TO plain;",
    );
    let home = Home::new();
    // A role with no monitoring rights, on a server where the slots view is locked down.
    pg.sql(
        "postgres",
        "REVOKE SELECT ON pg_replication_slots FROM PUBLIC",
    );
    home.add_uri("plain", &pg.cluster.uri("plain", "plain-pw", "postgres"));
    home.add_uri("mon", &pg.cluster.uri("watcher", "watch-pw", "postgres"));
    home.st.sample_now("plain").await.unwrap();
    commit_200(&pg).await;
    let r = home.st.sample_now("plain").await.unwrap();
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    let f = &r.failures[0];
    assert_eq!(f.collector, "replication");
    assert_eq!(f.code, "permission_denied");
    assert!(f.message.contains("pg_monitor"), "{}", f.message);
    assert!(!ok_collectors(&r).contains(&"replication"));
    for c in [
        "database",
        "activity",
        "statements",
        "checkpoints",
        "wal",
        "locks",
        "sizes",
    ] {
        assert!(ok_collectors(&r).contains(&c), "{c}: {r:?}");
    }
    // The rest is stored, and the failure is recorded with the sample.
    assert!(r.delta("xact_commit").unwrap() >= 200.0);
    let store = home.st.history_store("plain").await.unwrap();
    let (_, failures) = store.last_sample().await.unwrap().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].collector, "replication");
    let h = home
        .st
        .history_series("plain", &[Metric::Tps], HistoryRange::Last15m)
        .await
        .unwrap();
    assert_eq!(h.series.len(), 1);

    // With the default privileges back, a role with only pg_monitor reads everything.
    pg.sql(
        "postgres",
        "GRANT SELECT ON pg_replication_slots TO PUBLIC;
         SELECT pg_create_physical_replication_slot('kept', true)",
    );
    home.st.sample_now("mon").await.unwrap();
    commit_200(&pg).await;
    let r = home.st.sample_now("mon").await.unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(ok_collectors(&r).len(), 8);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert!(r.statements_recorded > 0);
    assert!(r.metric("slot_retained_bytes", "kept").is_some(), "{r:?}");
    assert!(r.metric("statement_mean_ms", "").is_some());
}
on_each_version!(a_forbidden_view_fails_alone_and_pg_monitor_is_enough);

async fn a_slow_collector_times_out_alone(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE EXTENSION pg_stat_statements");
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let opts = pgsteward::monitor::HistoryOptions {
        collect: pgsteward::monitor::CollectOptions {
            collector_timeout: std::time::Duration::from_millis(300),
            timeout_overrides: vec![],
            ..Default::default()
        },
        ..Default::default()
    };
    let store = home.st.history_store("p").await.unwrap();
    let pool = home.st.pool("p").unwrap();
    // Another session holds ACCESS EXCLUSIVE on the pg_stat_statements view, so reading it
    // waits until the collector's timeout ends the wait; the other collectors are unaffected.
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let locker = tokio::spawn({
        let uri = pg.uri("postgres");
        async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&uri).await.unwrap();
            let mut tx = c.begin().await.unwrap();
            sqlx::query("LOCK TABLE pg_stat_statements IN ACCESS EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.await;
            tx.rollback().await.unwrap();
        }
    });
    locked_rx.await.unwrap();
    let r = pgsteward::monitor::sampler::sample("p", &pool, &store, &opts)
        .await
        .unwrap();
    release_tx.send(()).unwrap();
    locker.await.unwrap();
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert_eq!(r.failures[0].collector, "statements");
    assert!(
        r.failures[0].message.contains("0.3 s"),
        "{}",
        r.failures[0].message
    );
    assert_eq!(ok_collectors(&r).len(), 7);
    assert!(r.metric("max_connections", "").is_some());
}
on_each_version!(a_slow_collector_times_out_alone);

async fn the_background_sampler_stops_with_its_handle(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let store = home.st.history_store("p").await.unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let s = seen.clone();
    let handle = home
        .st
        .start_sampler_with(
            "p",
            std::time::Duration::from_millis(200),
            Some(std::sync::Arc::new(move |r| {
                assert!(r.is_ok(), "{r:?}");
                s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })),
        )
        .unwrap();
    while handle.state().samples < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(handle.is_running());
    handle.stop().await;
    let stored = store.sample_count().await.unwrap();
    assert!(stored >= 3);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(store.sample_count().await.unwrap(), stored);
    // Rates flowed between the background samples.
    let h = home
        .st
        .history_series("p", &[Metric::Tps], HistoryRange::Last15m)
        .await
        .unwrap();
    assert!(h.series[0].points.len() >= 2);

    // Dropping the handle stops it too.
    let handle = home
        .st
        .start_sampler("p", std::time::Duration::from_millis(200))
        .unwrap();
    while handle.state().samples < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(handle);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after_drop = store.sample_count().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(store.sample_count().await.unwrap(), after_drop);
    assert!(home
        .st
        .start_sampler("nope", std::time::Duration::from_secs(1))
        .is_err());
}
on_each_version!(the_background_sampler_stops_with_its_handle);

fn run(home: &Home, args: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(cli())
        .args(args)
        .env("PGSTEWARD_HOME", home.path())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

async fn history_commands_speak_json(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE EXTENSION pg_stat_statements; CREATE TABLE w (i int)",
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));

    let (ok, v) = run(&home, &["--json", "history", "sample", "p"]);
    assert!(ok, "{v}");
    assert_eq!(v["failures"].as_array().unwrap().len(), 0, "{v}");
    commit_200(&pg).await;
    pg.sql("postgres", "SELECT pg_sleep(1.05)");
    let (ok, v) = run(&home, &["--json", "history", "sample", "p"]);
    assert!(ok, "{v}");
    let commits = v["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["counter"] == "xact_commit")
        .unwrap()["delta"]
        .as_f64()
        .unwrap();
    assert!(commits >= 200.0, "{v}");

    let (ok, v) = run(
        &home,
        &[
            "--json", "history", "show", "p", "--range", "1h", "--metric", "tps",
        ],
    );
    assert!(ok, "{v}");
    assert_eq!(v["resolution"], "raw");
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    assert_eq!(series[0]["metric"], "tps");
    assert!(series[0]["points"][0]["value"].as_f64().unwrap() > 0.0);

    let (ok, v) = run(
        &home,
        &["--json", "queries", "p", "--range", "24h", "--sort", "mean"],
    );
    assert!(ok, "{v}");
    assert_eq!(v["sort"], "mean");
    assert!(
        v["queries"][0]["query"]
            .as_str()
            .unwrap()
            .contains("pg_sleep"),
        "{v}"
    );

    // `history run` samples until interrupted, one JSON report per line.
    let store = home.st.history_store("p").await.unwrap();
    let before = store.sample_count().await.unwrap();
    let child = std::process::Command::new(cli())
        .args(["--json", "history", "run", "p", "--interval", "200ms"])
        .env("PGSTEWARD_HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Four stored: at least three printed (a Ctrl-C may land between storing a sample and
    // printing its report).
    while store.sample_count().await.unwrap() < before + 4 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(lines.iter().all(|l| l["project"] == "p"));

    let (ok, v) = run(&home, &["--json", "history", "compact"]);
    assert!(ok, "{v}");
    assert_eq!(v[0]["project"], "p");

    let (ok, v) = run(
        &home,
        &["--json", "history", "show", "p", "--metric", "nope"],
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");
    let (ok, v) = run(&home, &["--json", "queries", "p", "--sort", "fastest"]);
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");
}
on_each_version!(history_commands_speak_json);

/// Database sizes (which stat every file) are read once every few minutes, and the samples in
/// between repeat the last reading, so charts and exporters always have a value.
async fn database_sizes_are_read_every_few_minutes_not_every_sample(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE EXTENSION pg_stat_statements");
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let size_reads = || -> i64 {
        pg.sql(
            "postgres",
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%pg_database_size(oid)%'",
        )
        .trim()
        .parse()
        .unwrap()
    };
    let first = home.st.sample_now("p").await.unwrap();
    let size = first.metric("database_size_bytes", "postgres").unwrap();
    assert!(size > 0.0);
    assert_eq!(size_reads(), 1);
    for _ in 0..3 {
        let s = home.st.sample_now("p").await.unwrap();
        assert_eq!(s.metric("database_size_bytes", "postgres"), Some(size));
    }
    assert_eq!(size_reads(), 1, "sizes were read again within minutes");

    // Once the last real reading is older than the interval, sizes are read again (the
    // repeated readings in between do not count as reads).
    {
        use sqlx::Connection;
        let file = home.path().join("projects/p/history.sqlite");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let old = chrono::Utc::now().timestamp_millis()
            - pgsteward::monitor::sampler::SIZES_EVERY_MS
            - 1000;
        let moved = sqlx::query("UPDATE meta SET value = ? WHERE key = 'sizes_read_at'")
            .bind(old)
            .execute(&mut db)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(moved, 1);
    }
    home.st.sample_now("p").await.unwrap();
    assert_eq!(size_reads(), 2);
    home.st.sample_now("p").await.unwrap();
    assert_eq!(size_reads(), 2, "and then not again within minutes");
}
on_each_version!(database_sizes_are_read_every_few_minutes_not_every_sample);
