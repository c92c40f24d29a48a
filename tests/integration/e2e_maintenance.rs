//! End-to-end: the Maintenance page in the real app: the window, the plan, an approved VACUUM
//! and its record.

use std::time::Duration;

use super::{App, LONG};
use crate::harness::Pg;

/// A table with many dead rows: the status panel shows the (closed) window, the table list
/// badges the table, "Run in window" waits and Stop leaves it untouched; ticking the VACUUM
/// alone and running it now does it, the history shows the run succeeded, and the dead tuples
/// are gone. A table named with quotes, HTML and non-ASCII letters is listed as plain text.
#[test]
fn maintenance_runs_the_approved_vacuum_and_records_it() {
    let pg = Pg::start(15);
    let hostile = "Ünïcode \"q\" <i>x</i>";
    pg.sql(
        "postgres",
        &format!("CREATE TABLE \"{}\" (id int)", hostile.replace('"', "\"\"")),
    );
    pg.sql(
        "postgres",
        "CREATE TABLE bloated (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = off)",
    );
    pg.sql(
        "postgres",
        "INSERT INTO bloated SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g",
    );
    pg.sql("postgres", "DELETE FROM bloated WHERE id <= 30000");
    let dead = || -> i64 {
        pg.sql(
            "postgres",
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'bloated'",
        )
        .trim()
        .parse()
        .unwrap_or(0)
    };
    let t0 = std::time::Instant::now();
    while dead() < 30_000 {
        assert!(t0.elapsed() < LONG, "dead tuples not counted: {}", dead());
        std::thread::sleep(Duration::from_millis(200));
    }

    // A window that opens two hours from now (UTC), so "Run in window" has to wait.
    let now = chrono::Utc::now();
    let hhmm = |h: i64| {
        (now + chrono::Duration::hours(h))
            .format("%H:%M")
            .to_string()
    };
    let app = App::launch_with(&[
        ("MAINTENANCE_TIME_ZONE", "UTC".into()),
        ("MAINTENANCE_WINDOW_START", hhmm(2)),
        ("MAINTENANCE_WINDOW_END", hhmm(3)),
    ]);
    let s = &app.session;
    app.add_project("maint", &pg.uri("postgres"));
    s.click(&s.wait("tab-maintenance", LONG));

    let window = s.wait("maint-window", LONG);
    assert_eq!(s.attr(&window, "data-inside").as_deref(), Some("false"));
    let text = s.text(&window);
    assert!(text.contains(&hhmm(2)) && text.contains("UTC"), "{text}");

    // Settings: a wrong threshold is refused and not saved; a right one is saved.
    s.click(&s.wait("maint-settings-toggle", LONG));
    let field = s.wait("maint-setting-vacuum_threshold_percent", LONG);
    s.type_text(&field, "lots");
    s.click(&s.wait("maint-settings-save", LONG));
    let err = s.wait("maint-settings-error", LONG);
    assert!(s.text(&err).contains("percentage"), "{}", s.text(&err));
    s.clear(&field);
    s.type_text(&field, "15");
    s.click(&s.wait("maint-settings-save", LONG));
    s.wait("maint-settings-saved", LONG);
    s.click(&s.wait("maint-settings-toggle", LONG));

    // The table list badges the table for a VACUUM and shows the odd name as it is.
    let badged = s.until("the table list with the bloated table", LONG, || {
        s.find_all("maint-table-row").into_iter().find(|r| {
            s.attr(r, "data-table").as_deref() == Some("bloated")
                && s.find_all_within(r, "maint-badge")
                    .iter()
                    .any(|b| s.text(b) == "vacuum")
        })
    });
    assert!(s.text(&badged).contains("public.bloated"));
    let odd = s
        .find_all("maint-table-row")
        .into_iter()
        .find(|r| s.attr(r, "data-table").as_deref() == Some(hostile))
        .expect("the table with the odd name is listed");
    assert!(
        s.text(&odd).contains(&format!("public.{hostile}")),
        "{}",
        s.text(&odd)
    );

    // Tick the VACUUM of the table and nothing else.
    let actions = s.until("the planned VACUUM", LONG, || {
        let all = s.find_all("maint-action");
        all.iter()
            .any(|a| {
                s.attr(a, "data-table").as_deref() == Some("bloated")
                    && s.attr(a, "data-kind")
                        .is_some_and(|k| k.starts_with("vacuum"))
            })
            .then_some(all)
    });
    s.keep_screenshot("maintenance-plan");
    let mut vacuum_sql = None;
    for a in &actions {
        let kind = s.attr(a, "data-kind").unwrap_or_default();
        let want = vacuum_sql.is_none()
            && s.attr(a, "data-table").as_deref() == Some("bloated")
            && kind.starts_with("vacuum");
        if want {
            let sql = s.attr(a, "data-sql").unwrap_or_default();
            assert!(sql.starts_with("VACUUM"), "{sql}");
            s.click(&s.find_all_within(a, "maint-check")[0]);
            vacuum_sql = Some(sql);
        }
    }
    let vacuum_sql = vacuum_sql.expect("a VACUUM of the table");

    // The confirmation lists that statement alone.
    s.click(&s.wait("maint-run", LONG));
    s.wait("maint-dialog", LONG);
    let listed: Vec<String> = s
        .find_all("maint-confirm-item")
        .iter()
        .map(|e| s.text(e))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains(&vacuum_sql), "{listed:?}");

    // Run in window: it waits for the window; Stop ends the wait and nothing ran.
    s.click(&s.wait("maint-confirm-window", LONG));
    s.wait("maint-waiting", LONG);
    s.click(&s.wait("maint-dialog-stop", LONG));
    s.until("the run to report it was cancelled", LONG, || {
        s.find_all("maint-dialog")
            .first()
            .map(|d| s.text(d))
            .filter(|t| t.contains("nothing ran"))
    });
    assert!(dead() >= 30_000, "the stopped run touched the table");

    s.click(&s.wait("maint-confirm", LONG));

    // History records it as succeeded; the server's dead tuples dropped.
    let row = s.until("a successful history row", LONG, || {
        s.find_all("maint-history-row")
            .into_iter()
            .find(|r| s.attr(r, "data-sql").as_deref() == Some(vacuum_sql.as_str()))
    });
    s.keep_screenshot("maintenance-history");
    assert_eq!(s.attr(&row, "data-outcome").as_deref(), Some("succeeded"));
    let t0 = std::time::Instant::now();
    while dead() >= 30_000 {
        assert!(t0.elapsed() < LONG, "dead tuples still {}", dead());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dead() < 1_000, "dead tuples after VACUUM: {}", dead());
}
