//! End-to-end: the real application binary, driven through WebDriver under a virtual display,
//! with its own identifier and data folder (built by scripts/test.sh as the E2E variant).

use std::time::Duration;

use crate::harness::{table_checksums, Pg};
use crate::webdriver::{Driver, Session};

fn app_binary() -> String {
    std::env::var("PGSTEWARD_E2E_APP").expect(
        "PGSTEWARD_E2E_APP must name the app built for end-to-end tests; run the suite with scripts/test.sh",
    )
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

    let profile = tempfile::tempdir().unwrap();
    let p = |s: &str| profile.path().join(s).display().to_string();
    let driver = Driver::start(&[
        ("PGSTEWARD_HOME", p("pgsteward")),
        ("PGSTEWARD_SANDBOX", "0".into()),
        ("XDG_CONFIG_HOME", p("config")),
        ("XDG_CACHE_HOME", p("cache")),
    ]);
    let s = Session::launch(&driver, &app_binary());
    let long = Duration::from_secs(60);

    // Add a project through the form, by URI.
    let add = s.wait("add-project", long);
    s.click(&add);
    s.type_text(&s.wait("project-name", long), "e2e");
    s.click(&s.wait("conn-kind-uri", long));
    s.type_text(&s.wait("conn-uri", long), &pg.uri("app"));
    s.click(&s.wait("project-save", long));

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
    drop(s);
}
