//! Maintenance over time: plan ids that stay put while nothing changes (and a stale one that is
//! refused), impact guard limits taken from the environment and the project, and maintenance
//! runs pruned from the history by age.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgsteward::jobs::CancelToken;
use pgsteward::maintain::{MaintenanceConfig, PlanRequest, RunMode, RunRequest};

use crate::harness::{cli_json, cli_json_env, Pg};
use crate::maintain::setup;
use crate::on_each_version;

fn ids_by_table(plan: &serde_json::Value) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["table"].as_str().unwrap().to_string(),
                a["id"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn plan_ids_stay_while_nothing_changes(major: u32) {
    let (pg, home) = setup(major);
    // Two tables never analyzed: each gets an ANALYZE.
    pg.sql(
        "app",
        "CREATE TABLE a (id int, pad text) WITH (autovacuum_enabled = false);
         CREATE TABLE b (id int, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO a SELECT g, repeat('a', 60) FROM generate_series(1, 30000) g;
         INSERT INTO b SELECT g, repeat('b', 60) FROM generate_series(1, 30000) g;",
    );
    let plan = || {
        let (ok, p) = cli_json(&home, &["--json", "maintain", "plan", "app"], None);
        assert!(ok, "{p}");
        ids_by_table(&p)
    };
    let first = plan();
    assert_eq!(
        first.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(plan(), first, "the same plan twice, the same ids");
    let (a_id, b_id) = (first[0].1, first[1].1);

    // An id from that plan runs the action meant: b's, though it is second in the list.
    let (ok, run) = cli_json(
        &home,
        &[
            "--json",
            "maintain",
            "run",
            "app",
            "--only",
            &b_id.to_string(),
            "--yes",
        ],
        None,
    );
    assert!(ok, "{run}");
    assert_eq!(run["runs"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(run["runs"][0]["table"], "b");
    assert_eq!(run["runs"][0]["action_id"], b_id);
    assert_eq!(run["runs"][0]["outcome"], "succeeded");

    // Now b needs nothing: a keeps its id, and b's old id is refused with a stable code.
    assert_eq!(plan(), vec![("a".to_string(), a_id)]);
    let (ok, stale) = cli_json(
        &home,
        &[
            "--json",
            "maintain",
            "run",
            "app",
            "--ids",
            &b_id.to_string(),
            "--yes",
        ],
        None,
    );
    assert!(!ok);
    assert_eq!(stale["error"]["code"], "plan_changed", "{stale}");
    assert_eq!(plan(), vec![("a".to_string(), a_id)], "nothing else ran");
}
on_each_version!(plan_ids_stay_while_nothing_changes);

/// psql started in the background.
fn psql_child(pg: &Pg, sql: &str) -> Child {
    let psql = pgsteward::pgbin::find("psql", pg.cluster.major, Some(&pg.cluster.bin_dir)).unwrap();
    Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-h"])
        .arg(&pg.cluster.socket_dir)
        .args(["-p", &pg.port().to_string(), "-U", "postgres", "-d", "app"])
        .args(["-c", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn guard_limit_from_the_environment_stops_a_run(major: u32) {
    let (pg, home) = setup(major);
    // The CLUSTER rebuilds an expression index that sleeps per row: it would take 20 s.
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
    // One other session is busy; the limit from the environment allows none.
    let mut busy = psql_child(&pg, "SELECT pg_sleep(60)");
    for _ in 0..50 {
        let n = pg.sql(
            "app",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'",
        );
        if n == "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = [("MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS", Path::new("0"))];
    let (ok, g) = cli_json_env(&home, &["--json", "maintain", "guard", "app"], None, &env);
    assert!(ok, "{g}");
    assert_eq!(g["config"]["guard"]["max_active_sessions"], 0);
    let t0 = std::time::Instant::now();
    let (ok, run) = cli_json_env(
        &home,
        &[
            "--json",
            "maintain",
            "run",
            "app",
            "--all",
            "--yes",
            "--cluster",
            "g",
            "--index",
            "g_pkey",
        ],
        None,
        &env,
    );
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(!ok, "a cancelled action makes the command fail: {run}");
    let r = &run["runs"][0];
    assert_eq!(r["kind"], "cluster", "{run}");
    assert_eq!(r["outcome"], "cancelled", "{run}");
    assert_eq!(r["guard_tripped"], true, "{run}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("active sessions") && reason.contains("limit 0"),
        "{reason}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "it did not run to the end"
    );

    // A project's own limit wins over the environment; a wrong one is refused.
    let (ok, g) = cli_json_env(
        &home,
        &[
            "--json",
            "maintain",
            "guard",
            "app",
            "--set",
            "max_active_sessions=7",
            "--set",
            "max_replication_lag=256MB",
        ],
        None,
        &env,
    );
    assert!(ok, "{g}");
    assert_eq!(g["config"]["guard"]["max_active_sessions"], 7);
    assert_eq!(g["config"]["guard"]["max_replication_lag_bytes"], 256 << 20);
    assert_eq!(g["overrides"]["max_active_sessions"], "7");
    let (ok, bad) = cli_json(
        &home,
        &[
            "--json",
            "maintain",
            "guard",
            "app",
            "--set",
            "max_lock_waiters=many",
        ],
        None,
    );
    assert!(!ok);
    assert_eq!(bad["error"]["code"], "invalid_input");
    let (ok, g) = cli_json_env(
        &home,
        &[
            "--json",
            "maintain",
            "guard",
            "app",
            "--unset",
            "max_active_sessions",
        ],
        None,
        &env,
    );
    assert!(ok, "{g}");
    assert_eq!(g["config"]["guard"]["max_active_sessions"], 0);
    let (ok, bad) = cli_json_env(
        &home,
        &["--json", "maintain", "plan", "app"],
        None,
        &[("MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS", Path::new("lots"))],
    );
    assert!(!ok);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAINTENANCE_GUARD_MAX_ACTIVE_SESSIONS"),
        "{bad}"
    );
}
on_each_version!(guard_limit_from_the_environment_stops_a_run);

async fn old_maintenance_runs_are_pruned_by_compaction(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        "CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c SELECT generate_series(1, 100);",
    );
    let req = RunRequest {
        mode: RunMode::Approve,
        ids: vec![],
        all: true,
        plan: PlanRequest {
            cluster_table: Some("c".into()),
            cluster_index: Some("c_pkey".into()),
            measure: false,
        },
    };
    let cfg = MaintenanceConfig::default();
    let quiet: pgsteward::maintain::MaintenanceSink = std::sync::Arc::new(|_| {});
    for _ in 0..2 {
        let r = home
            .st
            .maintain_run("app", &cfg, &req, CancelToken::default(), quiet.clone())
            .await
            .unwrap();
        assert_eq!(r.runs.len(), 1, "{r:?}");
    }
    // Age the first run by 400 days, the second by 40, in the store itself.
    let file = home.path().join("projects/app/history.sqlite");
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let day: i64 = 86_400_000;
    for (id_rank, days) in [(0i64, 400i64), (1, 40)] {
        sqlx::query(
            "UPDATE maintenance_runs SET started_at = started_at - ?
              WHERE id = (SELECT id FROM maintenance_runs ORDER BY id LIMIT 1 OFFSET ?)",
        )
        .bind(days * day)
        .bind(id_rank)
        .execute(&db)
        .await
        .unwrap();
    }
    db.close().await;

    // The default keeps a year: the 400-day-old run goes.
    let (ok, rep) = cli_json(&home, &["--json", "history", "compact", "app"], None);
    assert!(ok, "{rep}");
    assert_eq!(rep[0]["maintenance_runs_deleted"], 1, "{rep}");
    let (ok, h) = cli_json(&home, &["--json", "maintain", "history", "app"], None);
    assert!(ok, "{h}");
    assert_eq!(h["records"].as_array().unwrap().len(), 1, "{h}");

    // MAINTENANCE_HISTORY_DAYS=30 takes the 40-day-old one too.
    let env = [("MAINTENANCE_HISTORY_DAYS", Path::new("30"))];
    let (ok, rep) = cli_json_env(&home, &["--json", "history", "compact", "app"], None, &env);
    assert!(ok, "{rep}");
    assert_eq!(rep[0]["maintenance_runs_deleted"], 1, "{rep}");
    let (ok, h) = cli_json(&home, &["--json", "maintain", "history", "app"], None);
    assert!(ok, "{h}");
    assert!(h["records"].as_array().unwrap().is_empty(), "{h}");
    let (ok, bad) = cli_json_env(
        &home,
        &["--json", "history", "compact", "app"],
        None,
        &[("MAINTENANCE_HISTORY_DAYS", Path::new("0"))],
    );
    assert!(!ok);
    assert_eq!(bad["error"]["code"], "invalid_input");
}
on_each_version!(old_maintenance_runs_are_pruned_by_compaction);

/// A project's own window, time zone and threshold win over the environment and decide the
/// plan and the status; a bad value in a batch saves none of it; unsetting restores the
/// environment's value.
async fn project_settings_move_the_window_and_the_thresholds(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        "CREATE TABLE churn (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO churn SELECT g, repeat('x', 60) FROM generate_series(1, 20000) g;
         ANALYZE churn;",
    );
    // 10 % dead: under the default 20 % threshold.
    pg.sql("app", "DELETE FROM churn WHERE id % 10 = 0");
    let env = [("VACUUM_THRESHOLD_PERCENT", Path::new("20"))];
    let vacuum_planned = |plan: &serde_json::Value| {
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["table"] == "churn" && a["kind"].as_str().unwrap().starts_with("vacuum"))
    };
    let (ok, plan) = cli_json_env(&home, &["--json", "maintain", "plan", "app"], None, &env);
    assert!(ok, "{plan}");
    assert!(!vacuum_planned(&plan), "10 % dead is under 20 %");

    // A window that cannot contain the current UTC time, and a 5 % threshold.
    let now = chrono::Utc::now();
    let hhmm = |h: i64| {
        (now + chrono::Duration::hours(h))
            .format("%H:%M")
            .to_string()
    };
    let (start, end) = (hhmm(2), hhmm(3));
    let (ok, s) = cli_json_env(
        &home,
        &[
            "--json",
            "maintain",
            "settings",
            "app",
            "--set",
            &format!("window_start={start}"),
            "--set",
            &format!("window_end={end}"),
            "--set",
            "time_zone=UTC",
            "--set",
            "vacuum_threshold_percent=5",
        ],
        None,
        &env,
    );
    assert!(ok, "{s}");
    assert_eq!(s["config"]["vacuum_threshold_percent"], 5.0);
    assert_eq!(s["overrides"]["time_zone"], "UTC");
    let (ok, plan) = cli_json_env(&home, &["--json", "maintain", "plan", "app"], None, &env);
    assert!(ok, "{plan}");
    assert!(vacuum_planned(&plan), "10 % dead is over the project's 5 %");
    let (ok, status) = cli_json_env(&home, &["--json", "maintain", "status", "app"], None, &env);
    assert!(ok, "{status}");
    assert_eq!(status["inside_window"], false, "{status}");
    assert_eq!(status["time_zone"], "UTC");
    assert!(status["window"]["start"]
        .as_str()
        .unwrap()
        .starts_with(&start));
    // Automatic mode keeps to the project's window: nothing runs.
    let (ok, run) = cli_json_env(
        &home,
        &["--json", "maintain", "run", "app", "--window", "--yes"],
        None,
        &env,
    );
    assert!(ok, "{run}");
    assert_eq!(run["runs"].as_array().unwrap().len(), 0, "{run}");

    // One bad value: nothing of the batch is saved.
    let (ok, bad) = cli_json(
        &home,
        &[
            "--json",
            "maintain",
            "settings",
            "app",
            "--set",
            "analyze_threshold_percent=7",
            "--set",
            "window_end=25:99",
        ],
        None,
    );
    assert!(!ok);
    assert_eq!(bad["error"]["code"], "invalid_input");
    let (_, s) = cli_json_env(
        &home,
        &["--json", "maintain", "settings", "app"],
        None,
        &env,
    );
    assert!(
        s["overrides"].get("analyze_threshold_percent").is_none(),
        "{s}"
    );
    assert_eq!(s["overrides"]["window_end"], end.as_str());
    let (ok, bad) = cli_json(
        &home,
        &["--json", "maintain", "settings", "app", "--set", "nosuch=1"],
        None,
    );
    assert!(!ok);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("window_start"),
        "{bad}"
    );

    // Unset: the environment's threshold applies again.
    let (ok, s) = cli_json_env(
        &home,
        &[
            "--json",
            "maintain",
            "settings",
            "app",
            "--unset",
            "vacuum_threshold_percent",
        ],
        None,
        &env,
    );
    assert!(ok, "{s}");
    assert_eq!(s["config"]["vacuum_threshold_percent"], 20.0);
}
on_each_version!(project_settings_move_the_window_and_the_thresholds);
