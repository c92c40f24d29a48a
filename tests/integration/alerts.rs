//! Availability and alerts: a server that stops answering is recorded as down, the alert fires
//! once and clears once when it is back; a maintenance action that fails raises the maintenance
//! alert until a run succeeds; the Prometheus exposition passes promtool.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use pgsteward::conn::breaker::BreakerConfig;
use pgsteward::conn::PoolConfig;
use pgsteward::jobs::CancelToken;
use pgsteward::maintain::{ActionKind, ActionOutcome, MaintenanceConfig, PlanRequest, RunMode};
use pgsteward::monitor::alerts::AlertRule;
use pgsteward::Steward;

use crate::harness::{cli, cli_json, Home, Pg};
use crate::on_each_version;

async fn server_down_alert_fires_once_and_clears(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    // While the server is down the circuit breaker opens and probes fail fast (still "down");
    // a short recovery time lets the test see the way back without waiting a minute.
    let cfg = PoolConfig {
        backoff_base: Duration::from_millis(10),
        breaker: BreakerConfig {
            failure_threshold: 5,
            recovery_timeout: Duration::from_millis(500),
        },
        ..PoolConfig::default()
    };
    let st = &Steward::open(home.path()).unwrap().with_pool_config(cfg);

    st.sample_now("p").await.unwrap();
    st.sample_now("p").await.unwrap();
    pg.cluster.stop().unwrap();
    // Down for three probes: the rule needs two in a row, then stays firing without repeating.
    for _ in 0..3 {
        st.sample_now("p").await.unwrap_err();
    }
    let firing = st.alerts("p").await.unwrap().firing;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0].rule, "server_down");
    assert_eq!(st.alerts_firing("p"), vec![AlertRule::ServerDown]);

    pg.cluster.start().unwrap();
    // The pool may hold sessions from before the restart (probes discard them) and the circuit
    // may still be open: it lets a trial through once its recovery time has passed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let first_back = st.sample_now("p").await;
    let second_back = st.sample_now("p").await.unwrap();
    let resolved: Vec<_> = first_back
        .into_iter()
        .chain([second_back])
        .flat_map(|r| r.alerts)
        .collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert!(!resolved[0].firing);
    st.sample_now("p").await.unwrap();

    let report = st.alerts("p").await.unwrap();
    assert!(report.firing.is_empty());
    assert_eq!(report.history.len(), 1, "one alert, not one per probe");
    assert!(report.history[0].ended_at.is_some());

    // 3 of 8 probes failed.
    let a = st.availability("p").await.unwrap();
    let day = &a.windows[0];
    assert_eq!(day.window, "24h");
    assert_eq!((day.probes, day.down), (8, 3));
    assert_eq!(day.meets_target, Some(false));

    // Thresholds and switches through the CLI; bad input is refused.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "alerts",
            "p",
            "--set",
            "slow_queries=25",
            "--disable",
            "pool_utilisation",
        ],
        None,
    );
    assert!(ok, "{v}");
    let rules = v["rules"].as_array().unwrap();
    let rule = |n: &str| rules.iter().find(|r| r["rule"] == n).unwrap().clone();
    assert_eq!(rule("slow_queries")["threshold"], 25.0);
    assert_eq!(rule("pool_utilisation")["enabled"], false);
    let (ok, v) = cli_json(&home, &["--json", "alerts", "p", "--set", "nosuch=1"], None);
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");
}
on_each_version!(server_down_alert_fires_once_and_clears);

async fn failed_maintenance_alert_fires_once_and_clears(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE TABLE orders (id int, note text) WITH (autovacuum_enabled = false);
         INSERT INTO orders SELECT g, repeat('n', 80) FROM generate_series(1, 50000) g;",
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let st = &home.st;
    let quiet: pgsteward::maintain::MaintenanceSink = std::sync::Arc::new(|_| {});
    let cfg = MaintenanceConfig {
        lock_timeout_seconds: 1.0,
        ..MaintenanceConfig::default()
    };

    let first = st.sample_now("p").await.unwrap();
    assert!(first.alerts.is_empty(), "{:?}", first.alerts);
    let plan = st
        .maintain_plan("p", &cfg, &PlanRequest::default())
        .await
        .unwrap();
    let analyze: Vec<_> = plan
        .actions
        .into_iter()
        .filter(|a| a.table == "orders" && a.kind == ActionKind::Analyze)
        .collect();
    assert_eq!(analyze.len(), 1, "a never-analyzed table gets an ANALYZE");

    // Another session holds the table exclusively: the ANALYZE cannot get its lock and fails.
    let locker = crate::maintain::psql_child(
        &pg,
        "postgres",
        "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_locks WHERE relation = 'orders'::regclass AND mode = 'AccessExclusiveLock' AND granted",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = st
        .maintain_run_actions(
            "p",
            &cfg,
            RunMode::Approve,
            analyze.clone(),
            CancelToken::default(),
            quiet.clone(),
        )
        .await
        .unwrap();
    pg.sql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
    );
    let _ = locker.wait_with_output();
    let run = &report.runs[0];
    assert_eq!(run.outcome, ActionOutcome::Failed, "{run:?}");
    assert!(
        run.reason
            .as_deref()
            .unwrap_or("")
            .contains("conflicting lock"),
        "{run:?}"
    );

    // The next sample raises the alert; later ones keep it without repeating it.
    let fired = st.sample_now("p").await.unwrap().alerts;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].firing && fired[0].rule == AlertRule::MaintenanceFailures);
    assert_eq!(fired[0].value, 1.0);
    assert!(st.sample_now("p").await.unwrap().alerts.is_empty());
    let (ok, v) = cli_json(&home, &["--json", "alerts", "p"], None);
    assert!(ok, "{v}");
    assert_eq!(v["firing"][0]["rule"], "maintenance_failures", "{v}");

    // The same action run again without the lock succeeds, and the alert clears.
    let again = st
        .maintain_run_actions(
            "p",
            &cfg,
            RunMode::Approve,
            analyze,
            CancelToken::default(),
            quiet,
        )
        .await
        .unwrap();
    assert_eq!(again.runs[0].outcome, ActionOutcome::Succeeded);
    let cleared = st.sample_now("p").await.unwrap().alerts;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(!cleared[0].firing && cleared[0].rule == AlertRule::MaintenanceFailures);
    assert!(st.sample_now("p").await.unwrap().alerts.is_empty());
    let report = st.alerts("p").await.unwrap();
    assert!(report.firing.is_empty());
    let records: Vec<_> = report
        .history
        .iter()
        .filter(|a| a.rule == "maintenance_failures")
        .collect();
    assert_eq!(records.len(), 1, "one alert: {records:?}");
    assert!(records[0].ended_at.is_some());
}
on_each_version!(failed_maintenance_alert_fires_once_and_clears);

fn promtool() -> std::path::PathBuf {
    for p in [
        std::env::var("PGSTEWARD_PROMTOOL").unwrap_or_default(),
        "/opt/pgsteward/tools/bin/promtool".into(),
        format!(
            "{}/.local/share/pgsteward-tools/bin/promtool",
            std::env::var("HOME").unwrap_or_default()
        ),
    ] {
        if !p.is_empty() && std::path::Path::new(&p).exists() {
            return p.into();
        }
    }
    "promtool".into()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_exposition_passes_promtool() {
    let pg = Pg::start(15);
    let home = Home::new();
    pg.sql("postgres", "CREATE DATABASE \"we\"\"ird\\db\"");
    home.add_uri("shop eu", &pg.uri("postgres"));

    // Only loopback addresses are served.
    let (ok, v) = cli_json(
        &home,
        &["--json", "metrics", "serve", "--listen", "0.0.0.0:9187"],
        None,
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");

    let port = pgsteward::cluster::free_port().unwrap();
    let mut child = std::process::Command::new(cli())
        .args([
            "metrics",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--interval",
            "1",
        ])
        .env("PGSTEWARD_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        // Rates need two samples.
        if let Some(r) = http_get(port, "/metrics") {
            if r.contains("pgsteward_transactions_per_second{") {
                break r.split_once("\r\n\r\n").unwrap().1.to_string();
            }
        }
        assert!(Instant::now() < deadline, "no rates served within a minute");
        std::thread::sleep(Duration::from_millis(300));
    };
    let not_found = http_get(port, "/").unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    assert!(not_found.starts_with("HTTP/1.1 404"));

    assert!(
        body.contains("pgsteward_up{project=\"shop eu\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("pgsteward_pool_acquisitions_total{project="));
    assert!(body.contains("pgsteward_circuit_state{project=\"shop eu\",state=\"closed\"} 1\n"));
    assert!(body.contains("pgsteward_connections{project=\"shop eu\",state=\"active\"}"));
    // A database name with a quote and a backslash is escaped, not broken.
    assert!(body.contains("database=\"we\\\"ird\\\\db\"}"), "{body}");

    let mut check = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (installed by scripts/install-deps.sh)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
