//! Maintenance: the plan follows the statistics (dead tuples, changes since ANALYZE, measured
//! index bloat), runs change what a DBA would look at (dead tuples, index size) and land in the
//! history, odd names are quoted, the impact guard stops a statement that makes others wait,
//! and automatic mode keeps to its window.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{Local, NaiveTime, Timelike};
use pgsteward::jobs::CancelToken;
use pgsteward::maintain::{
    ActionKind, ActionOutcome, FigureSource, MaintenanceConfig, MaintenanceWindow, PlanRequest,
    RunMode, RunRequest,
};

use crate::harness::{cli_json, Home, Pg};

/// A progress sink that drops everything.
fn quiet() -> pgsteward::maintain::MaintenanceSink {
    std::sync::Arc::new(|_: &pgsteward::maintain::MaintenanceProgress| {})
}
use crate::on_each_version;

const ODD: &str = "Ärger's \"T\"";
const ODD_SQL: &str = "\"Ärger's \"\"T\"\"\"";

/// A server with an empty database "app", and a home with the project "app" on it.
pub(crate) fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

fn approve(ids: Vec<u64>) -> RunRequest {
    RunRequest {
        mode: RunMode::Approve,
        ids,
        all: false,
        plan: PlanRequest::default(),
    }
}

/// psql started in the background (its statement may wait on a lock).
pub(crate) fn psql_child(pg: &Pg, db: &str, sql: &str) -> Child {
    let psql = pgsteward::pgbin::find("psql", pg.cluster.major, Some(&pg.cluster.bin_dir)).unwrap();
    Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-h"])
        .arg(&pg.cluster.socket_dir)
        .args([
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn dead_rows_vacuumed_fresh_tables_analyzed_tiny_ones_left_alone(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        &format!(
            "CREATE EXTENSION pgstattuple;
             CREATE TABLE {ODD_SQL} (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
             INSERT INTO {ODD_SQL} SELECT g, repeat('x', 60) FROM generate_series(1, 60000) g;
             ANALYZE {ODD_SQL};
             CREATE TABLE fresh (id int, pad text) WITH (autovacuum_enabled = false);
             CREATE TABLE tiny (id int) WITH (autovacuum_enabled = false);
             INSERT INTO tiny SELECT generate_series(1, 200);"
        ),
    );
    pg.sql("app", &format!("DELETE FROM {ODD_SQL} WHERE id % 2 = 0"));
    pg.sql("app", "DELETE FROM tiny WHERE id > 20");
    pg.sql(
        "app",
        "INSERT INTO fresh SELECT g, repeat('y', 60) FROM generate_series(1, 50000) g",
    );
    let cfg = MaintenanceConfig::default();

    let plan = home
        .st
        .maintain_plan("app", &cfg, &PlanRequest::default())
        .await
        .unwrap();
    let odd = plan
        .actions
        .iter()
        .find(|a| a.table == ODD)
        .expect("the table with half its rows deleted gets a VACUUM");
    assert!(
        matches!(odd.kind, ActionKind::Vacuum | ActionKind::VacuumAnalyze),
        "{odd:?}"
    );
    assert!(odd.sql.starts_with("VACUUM"), "{}", odd.sql);
    assert!(
        odd.sql.ends_with(&format!("\"public\".{ODD_SQL}")),
        "{}",
        odd.sql
    );
    assert_eq!(odd.lock, "ShareUpdateExclusiveLock");
    assert!(
        odd.evidence.iter().any(|e| e.contains("30000 dead")),
        "{:?}",
        odd.evidence
    );
    assert!(odd.estimated_seconds > 0.0);
    let fresh = plan.actions.iter().find(|a| a.table == "fresh").unwrap();
    assert_eq!(fresh.kind, ActionKind::Analyze);
    assert!(
        fresh.evidence[0].contains("Never analyzed"),
        "{:?}",
        fresh.evidence
    );
    assert!(
        !plan.actions.iter().any(|a| a.table == "tiny"),
        "{:?}",
        plan.actions
    );
    assert!(plan
        .tables
        .iter()
        .any(|t| t.stats.name == "tiny" && t.below_minimum));
    assert!(plan
        .tables
        .iter()
        .all(|t| t.estimate.source == FigureSource::Estimated && t.measured.is_none()));

    // On demand, pgstattuple measures the candidates, and the evidence says so.
    let measured = home
        .st
        .maintain_plan(
            "app",
            &cfg,
            &PlanRequest {
                measure: true,
                ..PlanRequest::default()
            },
        )
        .await
        .unwrap();
    let t = measured
        .tables
        .iter()
        .find(|t| t.stats.name == ODD)
        .unwrap();
    let m = t.measured.as_ref().expect("measured");
    assert_eq!(m.source, FigureSource::Measured);
    assert!(m.dead_percent.unwrap() > 20.0, "{m:?}");
    let a = measured.actions.iter().find(|a| a.table == ODD).unwrap();
    assert!(
        a.evidence.iter().any(|e| e.starts_with("Measured")),
        "{:?}",
        a.evidence
    );
    assert_eq!(a.bloat.as_ref().unwrap().source, FigureSource::Measured);
    assert_eq!(a.id, odd.id);

    // Automatic mode outside its window runs nothing and records nothing.
    let now = Local::now().time();
    let start = NaiveTime::from_hms_opt((now.hour() + 2) % 24, 0, 0).unwrap();
    let end = NaiveTime::from_hms_opt((now.hour() + 3) % 24, 0, 0).unwrap();
    let shut = MaintenanceConfig {
        window: MaintenanceWindow { start, end },
        ..cfg.clone()
    };
    let auto = RunRequest {
        mode: RunMode::Automatic,
        ..approve(vec![])
    };
    let r = home
        .st
        .maintain_run("app", &shut, &auto, CancelToken::default(), quiet())
        .await
        .unwrap();
    assert!(!r.inside_window);
    assert!(r.runs.is_empty());
    assert!(r
        .stopped
        .unwrap()
        .contains("Outside the maintenance window"));
    assert_eq!(home.st.maintain_history("app", 10).await.unwrap().total, 0);

    // Approve mode runs what was picked.
    let r = home
        .st
        .maintain_run(
            "app",
            &cfg,
            &approve(vec![odd.id, fresh.id]),
            CancelToken::default(),
            quiet(),
        )
        .await
        .unwrap();
    assert_eq!(r.runs.len(), 2, "{r:?}");
    assert!(
        r.runs.iter().all(|x| x.outcome == ActionOutcome::Succeeded),
        "{r:?}"
    );
    let h = home.st.maintain_history("app", 10).await.unwrap();
    assert_eq!(h.total, 2);
    assert_eq!(h.success_rate_percent, Some(100.0));
    assert_eq!(h.meets_target, Some(true));
    let rec = h.records.iter().find(|x| x.table == ODD).unwrap();
    assert_eq!(rec.outcome, "succeeded");
    assert_eq!(rec.dead_before, Some(30000));
    assert!(rec.dead_after.unwrap() < 1000, "{rec:?}");

    // Done is done: the next plan has no VACUUM or ANALYZE for them (the primary key, half of
    // whose entries VACUUM just removed, may now want a REINDEX: that is measured, and fine).
    let again = home
        .st
        .maintain_plan("app", &cfg, &PlanRequest::default())
        .await
        .unwrap();
    assert!(
        !again
            .actions
            .iter()
            .any(|a| (a.table == ODD || a.table == "fresh") && a.kind != ActionKind::Reindex),
        "{:?}",
        again.actions
    );

    // The same through the real binary.
    pg.sql(
        "app",
        "CREATE TABLE cli_t (id int, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO cli_t SELECT g, repeat('z', 60) FROM generate_series(1, 40000) g;
         ANALYZE cli_t;",
    );
    pg.sql("app", "DELETE FROM cli_t WHERE id <= 20000");
    let (ok, p) = cli_json(&home, &["--json", "maintain", "plan", "app"], None);
    assert!(ok, "{p}");
    let a = p["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["table"] == "cli_t")
        .expect("cli_t planned");
    let id = a["id"].as_u64().unwrap().to_string();
    let (ok, refused) = cli_json(
        &home,
        &["--json", "maintain", "run", "app", "--ids", &id],
        None,
    );
    assert!(!ok);
    assert_eq!(refused["error"]["code"], "confirmation_required");
    let (ok, run) = cli_json(
        &home,
        &["--json", "maintain", "run", "app", "--ids", &id, "--yes"],
        None,
    );
    assert!(ok, "{run}");
    assert_eq!(run["runs"][0]["outcome"], "succeeded");
    let (ok, hist) = cli_json(&home, &["--json", "maintain", "history", "app"], None);
    assert!(ok, "{hist}");
    assert_eq!(hist["total"], 3);
    let rec = &hist["records"][0];
    assert_eq!(rec["table"], "cli_t");
    assert_eq!(rec["dead_before"], 20000);
    assert!(rec["dead_after"].as_i64().unwrap() < 1000, "{rec}");
    let (ok, status) = cli_json(&home, &["--json", "maintain", "status", "app"], None);
    assert!(ok, "{status}");
    assert_eq!(status["last_run"]["table"], "cli_t");

    // Inside its window (read in a named zone, by the server) automatic mode runs the plan.
    pg.sql(
        "app",
        "CREATE TABLE auto_t (id int, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO auto_t SELECT g, repeat('a', 60) FROM generate_series(1, 40000) g;
         ANALYZE auto_t;",
    );
    pg.sql("app", "DELETE FROM auto_t WHERE id % 4 = 0");
    let utc = chrono::Utc::now().time();
    let open = MaintenanceConfig {
        window: MaintenanceWindow {
            start: NaiveTime::from_hms_opt((utc.hour() + 23) % 24, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt((utc.hour() + 2) % 24, 0, 0).unwrap(),
        },
        time_zone: Some("UTC".into()),
        ..cfg.clone()
    };
    let r = home
        .st
        .maintain_run("app", &open, &auto, CancelToken::default(), quiet())
        .await
        .unwrap();
    assert!(r.inside_window, "{r:?}");
    assert_eq!(r.time_zone, "UTC");
    let a = r
        .runs
        .iter()
        .find(|x| x.table == "auto_t")
        .expect("auto_t ran");
    assert_eq!(a.outcome, ActionOutcome::Succeeded, "{a:?}");
    assert_eq!(a.dead_before, Some(10000));
    assert!(a.dead_after.unwrap() < 1000, "{a:?}");
    let h = home.st.maintain_history("app", 50).await.unwrap();
    assert!(h
        .records
        .iter()
        .any(|x| x.table == "auto_t" && x.mode == "automatic"));
}
on_each_version!(dead_rows_vacuumed_fresh_tables_analyzed_tiny_ones_left_alone);

async fn index_bloated_by_updates_is_measured_and_reindexed(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        "CREATE EXTENSION pgstattuple;
         CREATE TABLE ix_t (id int PRIMARY KEY, k int, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO ix_t SELECT g, g, 'p' FROM generate_series(1, 100000) g;
         CREATE INDEX ix_k ON ix_t (k);",
    );
    pg.sql("app", "UPDATE ix_t SET k = k + 1000000 WHERE id % 10 <> 0");
    pg.sql("app", "VACUUM ix_t");
    pg.sql("app", "ANALYZE ix_t");
    let cfg = MaintenanceConfig::default();
    let plan = home
        .st
        .maintain_plan("app", &cfg, &PlanRequest::default())
        .await
        .unwrap();
    let entry = plan
        .indexes
        .iter()
        .find(|i| i.stats.name == "ix_k")
        .unwrap();
    let measured = entry.measured.as_ref().expect("measured with pgstatindex");
    assert_eq!(measured.source, FigureSource::Measured);
    assert!(measured.bloat_percent >= 30.0, "{measured:?}");
    let a = plan
        .actions
        .iter()
        .find(|a| a.index.as_deref() == Some("ix_k"))
        .expect("REINDEX planned");
    assert_eq!(a.kind, ActionKind::Reindex);
    assert_eq!(a.sql, "REINDEX INDEX CONCURRENTLY \"public\".\"ix_k\"");
    assert_eq!(a.lock, "ShareUpdateExclusiveLock");
    assert!(
        a.evidence[0].contains("pgstatindex measured"),
        "{:?}",
        a.evidence
    );

    let r = home
        .st
        .maintain_run(
            "app",
            &cfg,
            &approve(vec![a.id]),
            CancelToken::default(),
            quiet(),
        )
        .await
        .unwrap();
    let run = &r.runs[0];
    assert_eq!(run.outcome, ActionOutcome::Succeeded, "{run:?}");
    assert!(
        run.size_after.unwrap() < run.size_before.unwrap() * 3 / 4,
        "{run:?}"
    );
    assert_eq!(
        pg.sql(
            "app",
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_k'::regclass"
        ),
        "t"
    );
}
on_each_version!(index_bloated_by_updates_is_measured_and_reindexed);

async fn guard_cancels_a_cluster_that_makes_others_wait(major: u32) {
    let (pg, home) = setup(major);
    // Rebuilding the expression index calls slow() per row once the knob is turned up, so the
    // CLUSTER holds its lock long enough for a reader to queue behind it.
    pg.sql(
        "app",
        "CREATE TABLE knob (s float8); INSERT INTO knob VALUES (0);
         CREATE FUNCTION slow(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(s) FROM public.knob; RETURN $1; END $$;
         CREATE TABLE g (id int PRIMARY KEY, v int);
         INSERT INTO g SELECT x, x FROM generate_series(1, 400) x;
         CREATE INDEX g_slow ON g (slow(v));
         UPDATE knob SET s = 0.05;",
    );
    let mut cfg = MaintenanceConfig::default();
    cfg.guard.lock_wait_grace_seconds = 0.5;
    cfg.guard.poll_interval_ms = 200;
    let req = RunRequest {
        mode: RunMode::Approve,
        ids: vec![],
        all: true,
        plan: PlanRequest {
            cluster_table: Some("g".into()),
            cluster_index: Some("g_pkey".into()),
            measure: false,
        },
    };
    let plan = home.st.maintain_plan("app", &cfg, &req.plan).await.unwrap();
    let c = plan
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::Cluster)
        .unwrap();
    assert_eq!(c.sql, "CLUSTER \"public\".\"g\" USING \"g_pkey\"");
    assert_eq!(c.lock, "AccessExclusiveLock");
    assert_eq!(
        plan.actions.len(),
        1,
        "tiny tables get nothing else: {:?}",
        plan.actions
    );

    let st = home.st.clone();
    let run_cfg = cfg.clone();
    let phases = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = phases.clone();
    let sink: pgsteward::maintain::MaintenanceSink =
        std::sync::Arc::new(move |p: &pgsteward::maintain::MaintenanceProgress| {
            if let Some(ph) = &p.phase {
                seen.lock().unwrap().push(ph.clone());
            }
        });
    let task = tokio::spawn(async move {
        st.maintain_run("app", &run_cfg, &req, CancelToken::default(), sink)
            .await
    });
    let mut started = false;
    for _ in 0..100 {
        let n = pg.sql(
            "app",
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%CLUSTER%g_pkey%' AND pid <> pg_backend_pid()",
        );
        if n == "1" {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the CLUSTER never showed up as running");
    let reader = psql_child(&pg, "app", "SELECT count(*) FROM g");
    let report = task.await.unwrap().unwrap();
    let out = reader.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the waiting reader got through once the lock went"
    );
    let run = &report.runs[0];
    assert_eq!(run.outcome, ActionOutcome::Cancelled, "{run:?}");
    assert!(run.guard_tripped);
    assert!(
        run.reason.as_deref().unwrap().contains("impact guard"),
        "{run:?}"
    );
    assert!(report.stopped.is_some());
    // Progress came from pg_stat_progress_cluster while it ran.
    assert!(
        !phases.lock().unwrap().is_empty(),
        "no progress was reported"
    );
    let h = home.st.maintain_history("app", 10).await.unwrap();
    assert_eq!(h.records[0].outcome, "cancelled");
    assert!(h.records[0].guard_tripped);
    assert!(
        h.records[0].reason.as_deref().unwrap().contains("waited"),
        "{:?}",
        h.records[0]
    );
    assert_eq!(h.success_rate_percent, Some(0.0));
    assert_eq!(h.meets_target, Some(false));
}
on_each_version!(guard_cancels_a_cluster_that_makes_others_wait);

async fn an_unfinished_concurrent_reindex_leaves_no_invalid_index(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        "CREATE TABLE knob (s float8); INSERT INTO knob VALUES (0);
         CREATE FUNCTION slow(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(s) FROM public.knob; RETURN $1; END $$;
         CREATE TABLE r (id int PRIMARY KEY, v int);
         INSERT INTO r SELECT x, x FROM generate_series(1, 400) x;
         CREATE INDEX r_slow ON r (slow(v));
         UPDATE knob SET s = 0.05;",
    );
    let mut cfg = MaintenanceConfig::default();
    cfg.guard.lock_wait_grace_seconds = 0.5;
    cfg.guard.poll_interval_ms = 200;
    // The action as a plan would show it (the planner only proposes it on measured bloat).
    let action = pgsteward::maintain::PlannedAction {
        id: 1,
        kind: ActionKind::Reindex,
        schema: "public".into(),
        table: "r".into(),
        index: Some("r_slow".into()),
        sql: "REINDEX INDEX CONCURRENTLY \"public\".\"r_slow\"".into(),
        lock: "ShareUpdateExclusiveLock".into(),
        evidence: vec![],
        estimated_seconds: 0.1,
        statement_timeout_seconds: 300.0,
        bytes: 0,
        bloat: None,
    };
    let st = home.st.clone();
    let task = tokio::spawn(async move {
        st.maintain_run_actions(
            "app",
            &cfg,
            RunMode::Approve,
            vec![action],
            CancelToken::default(),
            quiet(),
        )
        .await
    });
    let mut started = false;
    for _ in 0..100 {
        let n = pg.sql(
            "app",
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%REINDEX%r_slow%' AND pid <> pg_backend_pid()",
        );
        if n == "1" {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the REINDEX never showed up as running");
    // A schema change queues behind the rebuild's lock: the guard stops the rebuild.
    let alter = psql_child(&pg, "app", "ALTER TABLE r ADD COLUMN note text");
    let report = task.await.unwrap().unwrap();
    assert!(alter.wait_with_output().unwrap().status.success());
    let run = &report.runs[0];
    assert_eq!(run.outcome, ActionOutcome::Cancelled, "{run:?}");
    assert!(
        run.reason.as_deref().unwrap().contains("was dropped"),
        "{run:?}"
    );
    assert_eq!(
        pg.sql("app", "SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
        "0"
    );
    assert_eq!(
        pg.sql(
            "app",
            "SELECT count(*) FROM pg_class WHERE relname = 'r_slow'"
        ),
        "1"
    );
}
on_each_version!(an_unfinished_concurrent_reindex_leaves_no_invalid_index);
