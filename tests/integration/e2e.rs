//! End-to-end: the real application binary, driven through WebDriver under a virtual display,
//! with its own identifier and data folder (built by scripts/test.sh as the E2E variant).

use std::time::Duration;

use crate::harness::{table_checksums, Pg};
use crate::webdriver::{Driver, Session};

#[path = "e2e_backups.rs"]
mod backups;
#[path = "e2e_maintenance.rs"]
mod maintenance;
#[path = "e2e_tuning.rs"]
mod tuning;

fn app_binary() -> String {
    std::env::var("PGSTEWARD_E2E_APP").expect(
        "PGSTEWARD_E2E_APP must name the app built for end-to-end tests; run the suite with scripts/test.sh",
    )
}

const LONG: Duration = Duration::from_secs(60);

/// The app running on a profile of its own (data folder, config, cache), driven by WebDriver.
pub(crate) struct App {
    pub(crate) session: Session,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl App {
    pub(crate) fn launch() -> App {
        App::launch_with(&[])
    }

    /// [`App::launch`] with more environment for the app.
    fn launch_with(extra: &[(&str, String)]) -> App {
        let profile = tempfile::tempdir().unwrap();
        let p = |s: &str| profile.path().join(s).display().to_string();
        let mut envs = vec![
            ("PGSTEWARD_HOME", p("pgsteward")),
            ("PGSTEWARD_SANDBOX", "0".into()),
            ("XDG_CONFIG_HOME", p("config")),
            ("XDG_CACHE_HOME", p("cache")),
        ];
        envs.extend(extra.iter().cloned());
        let driver = Driver::start(&envs);
        let session = Session::launch(&driver, &app_binary());
        App {
            session,
            _driver: driver,
            _profile: profile,
        }
    }

    /// The app's own folder for this run (data folder under `pgsteward/`).
    pub(crate) fn profile(&self) -> &std::path::Path {
        self._profile.path()
    }

    /// Add a project through the form, by URI; the app then shows its dashboard.
    pub(crate) fn add_project(&self, name: &str, uri: &str) {
        let s = &self.session;
        s.click(&s.wait("add-project", LONG));
        s.type_text(&s.wait("project-name", LONG), name);
        s.click(&s.wait("conn-kind-uri", LONG));
        s.type_text(&s.wait("conn-uri", LONG), uri);
        s.click(&s.wait("project-save", LONG));
        s.wait("dash-server-version", LONG);
    }
}

#[test]
fn add_project_see_dashboard_back_up_and_restore() {
    let pg = Pg::start(15);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE \"Kunden <b>\" (id int PRIMARY KEY, name text); \
         INSERT INTO \"Kunden <b>\" SELECT g, 'Kunde ' || g FROM generate_series(1, 300) g;",
    );
    let before = table_checksums(&pg, "app");

    let app = App::launch();
    let s = &app.session;
    let long = LONG;
    app.add_project("e2e", &pg.uri("app"));

    // The dashboard shows the server version and a chart.
    let version = s.until("the server version", long, || {
        s.find_all("dash-server-version")
            .first()
            .map(|e| s.text(e))
            .filter(|t| t.contains("15."))
    });
    assert!(version.contains("15."), "{version}");
    s.until("a chart", long, || {
        s.find_all("dash-tps-chart")
            .first()
            .and_then(|e| s.attr(e, "src"))
            .filter(|src| src.starts_with("data:image/svg+xml"))
    });
    // Wait for a second sample so the chart has a rate to draw, then keep a picture of it.
    s.until("a TPS figure", long, || {
        s.find_all("dash-tps")
            .first()
            .map(|e| s.text(e))
            .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
    });
    s.keep_screenshot("dashboard");

    // The app asks for a recovery kit until one is exported for the project's key.
    s.wait("kit-notice", long);
    s.click(&s.wait("kit-open", long));
    s.type_text(
        &s.wait("kit-passphrase", long),
        "correct horse battery staple",
    );
    s.type_text(
        &s.wait("kit-passphrase-again", long),
        "correct horse battery staple",
    );
    s.click(&s.wait("kit-create", long));
    let kit = s.text(&s.wait("kit-text", long));
    assert!(kit.contains("pgsteward-recovery-kit-v1"), "{kit}");
    assert!(!kit.contains("correct horse"));
    s.click(&s.wait("kit-done", long));
    s.until("the notice to go", long, || {
        s.find_all("kit-notice").is_empty().then_some(())
    });

    // Back up with one click and see it listed.
    s.click(&s.wait("tab-backups", long));
    s.click(&s.wait("backup-now", long));
    let row = s.wait("backup-row", long);
    let backup_id = s.attr(&row, "data-backup-id").expect("backup id");
    assert!(!backup_id.is_empty());

    // Restore it into a new database.
    s.click(&s.wait("restore-open", long));
    s.click(&s.wait("restore-mode-new", long));
    let name = s.wait("restore-new-name", long);
    s.clear(&name);
    s.type_text(&name, "app_restored");
    s.click(&s.wait("restore-submit", long));
    s.wait("restore-result", long);

    // The rows are there, identical.
    assert_eq!(table_checksums(&pg, "app_restored"), before);

    // A recovery test restores it once more, into a throwaway server, and marks it verified.
    s.click(&s.wait("restore-close", long));
    s.click(&s.wait("backup-test-recovery", long));
    let check = s.until("the recovery test's verdict", long, || {
        s.find_all("backup-check")
            .first()
            .map(|c| s.text(c))
            .filter(|t| t.contains("recovery"))
    });
    assert!(check.contains("verified"), "{check}");

    // Schedules: the default full backup at 02:00; a malformed expression is flagged before
    // saving, an impossible one is refused by the core, a valid one is saved for the project.
    s.wait("schedules", long);
    let full_input = || {
        let row = s
            .find_all("schedule-row")
            .into_iter()
            .find(|r| s.attr(r, "data-job").as_deref() == Some("full"))
            .expect("full backup row");
        s.find_all_within(&row, "schedule-cron").remove(0)
    };
    let full_value = || {
        s.script(
            "return document.querySelector('[data-job=\"full\"] [data-testid=\"schedule-cron\"]').value",
        )
    };
    s.until("the default full schedule", long, || {
        (full_value() == "0 2 * * *").then_some(())
    });
    let set_full = |text: &str| {
        let input = full_input();
        s.clear(&input);
        s.type_text(&input, text);
    };
    set_full("0 2 * *");
    let problem = s.text(&s.wait("schedule-problem", long));
    assert!(problem.contains("5 fields"), "{problem}");
    assert_eq!(
        s.script("return document.querySelector('[data-testid=\"schedule-save\"]').disabled"),
        true
    );
    set_full("0 25 * * *");
    s.click(&s.wait("schedule-save", long));
    let refused = s.text(&s.wait("schedule-error", long));
    assert!(refused.contains("0 25 * * *"), "{refused}");
    let file = app
        ._profile
        .path()
        .join("pgsteward/projects/e2e/schedule.json");
    assert!(!file.exists());
    set_full("15 1 * * *");
    s.click(&s.wait("schedule-save", long));
    s.until("the schedule saved", long, || {
        std::fs::read_to_string(&file)
            .ok()
            .filter(|t| t.contains("15 1 * * *"))
    });
    s.until("the error to go", long, || {
        s.find_all("schedule-error").is_empty().then_some(())
    });
}

/// Names and queries with markup show as text; a three-session chain (A holds a row, B waits
/// for A, C queues behind both) shows as one tree rooted at A with B and C under it, and
/// terminating A from the Activity page frees both; EXPLAIN of a table with markup in its name
/// shows it as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_pages_show_markup_as_text_and_free_a_blocked_session() {
    use sqlx::Connection;
    let pg = Pg::start(15);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE \"<img src=x onerror=alert(1)>\" (id int PRIMARY KEY, v int); \
         INSERT INTO \"<img src=x onerror=alert(1)>\" SELECT g, 0 FROM generate_series(1, 20000) g; ANALYZE;",
    );
    let uri = pg.uri("app");
    let connect = |app: &'static str| {
        let uri = format!("{uri}&application_name={}", urlencode(app));
        async move { sqlx::PgConnection::connect(&uri).await.unwrap() }
    };
    // A holds a row lock in an open transaction; B waits for it.
    let mut a = connect("<b>holder</b>").await;
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("UPDATE \"<img src=x onerror=alert(1)>\" SET v = 1 WHERE id = 1")
        .execute(&mut a)
        .await
        .unwrap();
    let a_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let mut b = connect("<script>waiter</script>").await;
    let b_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut b)
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        sqlx::query("UPDATE \"<img src=x onerror=alert(1)>\" SET v = 2 WHERE id = 1")
            .execute(&mut b)
            .await
            .map(|r| r.rows_affected())
    });
    let blocked = |pid: i32| {
        pg.sql(
            "app",
            &format!("SELECT cardinality(pg_blocking_pids({pid})) > 0"),
        )
        .trim()
            == "t"
    };
    let t0 = std::time::Instant::now();
    while !blocked(b_pid) {
        assert!(t0.elapsed() < LONG, "B never waited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = connect("third").await;
    let c_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let third = tokio::spawn(async move {
        sqlx::query("UPDATE \"<img src=x onerror=alert(1)>\" SET v = 3 WHERE id = 1")
            .execute(&mut c)
            .await
            .map(|r| r.rows_affected())
    });

    let ui = tokio::task::spawn_blocking(move || {
        let app = App::launch();
        let s = &app.session;
        app.add_project("diag", &pg.uri("app"));
        s.click(&s.wait("tab-activity", LONG));

        // The holder is a root of the blocking tree, with the waiter under it.
        let root = s.until("the holder as a root blocker", LONG, || {
            s.find_all("blocking-node")
                .into_iter()
                .find(|n| s.attr(n, "data-pid").as_deref() == Some(&a_pid.to_string()))
        });
        // One root; B and C are in its subtree (they wait on it, directly or through B).
        let below = s.until("B and C under the root", LONG, || {
            let pids: Vec<String> = s
                .find_all_within(&root, "blocking-node")
                .iter()
                .filter_map(|n| s.attr(n, "data-pid"))
                .collect();
            (pids.contains(&b_pid.to_string()) && pids.contains(&c_pid.to_string())).then_some(pids)
        });
        assert!(!below.contains(&a_pid.to_string()), "{below:?}");
        let roots = s
            .script("return document.querySelectorAll('[data-testid=blocking-node].root').length;");
        assert_eq!(roots, serde_json::json!(1));
        s.keep_screenshot("blocking-tree");
        let tree_text = s.text(&s.wait("blocking-tree", LONG));
        assert!(
            tree_text.contains("<img src=x onerror=alert(1)>") || tree_text.contains("UPDATE"),
            "{tree_text}"
        );
        // Markup from the server is text: no element was made from it.
        let injected = s.script(
            "return document.querySelectorAll('[onerror], body script:not([src])').length;",
        );
        assert_eq!(injected, serde_json::json!(0));
        let rows: Vec<String> = s
            .find_all("activity-row")
            .iter()
            .map(|r| s.text(r))
            .collect();
        assert!(
            rows.iter().any(|t| t.contains("<script>waiter</script>")),
            "{rows:?}"
        );

        // Terminate the root blocker, confirming in the dialog that names it.
        let terminate = s
            .find_all_within(&root, "session-terminate")
            .into_iter()
            .next()
            .expect("terminate button on the root blocker");
        s.click(&terminate);
        let dialog = s.wait("signal-dialog", LONG);
        assert!(s.text(&dialog).contains(&a_pid.to_string()));
        s.click(&s.wait("signal-confirm", LONG));

        // EXPLAIN shows the table name as text.
        s.click(&s.wait("tab-explain", LONG));
        s.type_text(
            &s.wait("explain-sql", LONG),
            "SELECT * FROM \"<img src=x onerror=alert(1)>\" WHERE v = 5",
        );
        s.click(&s.wait("explain-run", LONG));
        let node = s.until("a plan", LONG, || {
            s.find_all("plan-node").into_iter().next()
        });
        assert!(
            s.text(&node).contains("<img src=x onerror=alert(1)>"),
            "{}",
            s.text(&node)
        );
        assert!(
            !s.find_all("plan-hint").is_empty(),
            "a selective seq scan on 20,000 rows gets a hint"
        );
    });
    ui.await.unwrap();
    // The waiter got its lock once the holder was terminated.
    let updated = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("waiter freed")
        .unwrap();
    assert_eq!(updated.unwrap(), 1);
    let updated = tokio::time::timeout(Duration::from_secs(60), third)
        .await
        .expect("third session freed")
        .unwrap();
    assert_eq!(updated.unwrap(), 1);
}

/// The app samples an opened project into its history in the background: a slow statement run
/// meanwhile is listed on the Queries tab over the last 15 minutes (with its chart, its slow-query
/// events and an Explain hand-off), the dashboard's 15 min range shows charts, and an OTLP
/// endpoint set on the Alerts page receives every sample.
#[test]
fn history_lists_a_slow_statement_and_charts_the_last_15_minutes() {
    let pg = Pg::start_with(
        15,
        pgsteward::cluster::ClusterOptions {
            settings: vec!["shared_preload_libraries = 'pg_stat_statements'".into()],
            ..Default::default()
        },
        |_| {},
    );
    pg.sql("postgres", "CREATE EXTENSION pg_stat_statements");
    // Sample every second so the test does not wait for the default interval.
    let app = App::launch_with(&[("PGSTEWARD_SAMPLE_INTERVAL_MS", "1000".into())]);
    let s = &app.session;
    app.add_project("hist", &pg.uri("postgres"));

    // The statement, as pg_stat_statements keeps it, carries this alias.
    let needle = "needle_e2e";
    s.click(&s.wait("tab-queries", LONG));
    s.click(&s.wait("queries-range-15m", LONG));
    // Run the slow statement between samples until the list (re-read every 10 s) shows it:
    // the sampler's first pass only takes a baseline.
    let mut runs = 0;
    let row = s.until(
        "the slow statement in the top queries",
        Duration::from_secs(120),
        || {
            let found = s
                .find_all("query-row")
                .into_iter()
                .find(|r| s.text(r).contains(needle));
            if found.is_none() && runs < 8 {
                pg.sql("postgres", &format!("SELECT pg_sleep(1.2) AS {needle}"));
                runs += 1;
            }
            found
        },
    );
    let listed = s.text(&row);
    assert!(listed.contains("pg_sleep"), "{listed}");

    // Its chart, then Explain with the statement prefilled.
    let open = s
        .find_all_within(&row, "query-open")
        .into_iter()
        .next()
        .expect("a button on the row");
    s.click(&open);
    s.until("the statement's chart", LONG, || {
        s.find_all("query-calls-chart")
            .first()
            .and_then(|e| s.attr(e, "src"))
            .filter(|src| src.starts_with("data:image/svg+xml"))
    });
    assert!(s.text(&s.wait("query-text", LONG)).contains(needle));
    // Each sampling interval held one call of 1.2 s: a mean above the 1 s threshold.
    s.until("a slow-query event for it", LONG, || {
        s.find_all("slow-event")
            .into_iter()
            .find(|e| s.text(e).contains(needle))
    });
    s.keep_screenshot("queries");
    s.click(&s.wait("query-explain", LONG));
    s.wait("explain-sql", LONG);
    let prefilled = s.script("return document.querySelector('[data-testid=explain-sql]').value;");
    assert!(
        prefilled.as_str().unwrap_or_default().contains(needle),
        "{prefilled}"
    );
    s.wait("explain-placeholders", LONG);

    // The dashboard over the last 15 minutes: charts drawn from the samples taken so far.
    s.click(&s.wait("tab-dashboard", LONG));
    s.click(&s.wait("dash-range-15m", LONG));
    let charts = s.until("history charts", LONG, || {
        let charts = s.find_all("hist-chart");
        let tps_points = charts
            .iter()
            .find(|c| s.attr(c, "data-chart-id").as_deref() == Some("tps"))
            .and_then(|c| s.attr(c, "data-points"))
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        (tps_points > 0).then_some(charts.len())
    });
    assert!(charts >= 12, "{charts} charts");
    assert!(s.find_all("hist-empty").is_empty());
    let tps = s.wait("hist-chart-tps", LONG);
    assert!(s
        .attr(&tps, "src")
        .is_some_and(|src| src.starts_with("data:image/svg+xml")));
    s.keep_screenshot("dashboard-15m");

    // Every sample began with an availability probe: the Alerts page shows 100 % over 24 h.
    s.click(&s.wait("tab-alerts", LONG));
    let day = s.until("availability over 24 h", LONG, || {
        s.find_all("availability-24h")
            .first()
            .map(|e| s.text(e))
            .filter(|t| t.contains('%'))
    });
    assert!(day.contains("100.0 %"), "{day}");
    assert_eq!(s.find_all("alert-rule").len(), 7);
    // The slow statements above may well have made the latency or slow-query rule fire (the
    // rules themselves are tested against real servers elsewhere); either way the section says.
    s.until("the firing section", LONG, || {
        (!s.find_all("alerts-none").is_empty() || !s.find_all("alert-firing").is_empty())
            .then_some(())
    });

    // An OTLP endpoint typed on the same page: the background sampler exports every sample to a
    // real collector from then on, and the page counts the exports.
    let rotel = crate::harness::Rotel::start();
    s.type_text(&s.wait("otlp-endpoint", LONG), &rotel.endpoint());
    s.click(&s.wait("otlp-save", LONG));
    let status = s.until("exports counted on the page", LONG, || {
        let t = s.text(&s.wait("otlp-status", LONG));
        let sent: u64 = t
            .split(" sent")
            .next()
            .and_then(|b| b.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (sent >= 1).then_some(t)
    });
    assert!(status.contains("/v1/metrics"), "{status}");
    s.keep_screenshot("alerts-otlp");
    let out = rotel.wait_for(|o| o.contains("pgsteward.project: Str(hist)"));
    assert!(out.contains("pgsteward.project: Str(hist)"), "{out}");
    assert!(out.contains("Name: pgsteward_max_connections"), "{out}");
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
