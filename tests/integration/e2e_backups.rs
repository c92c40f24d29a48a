//! End-to-end: the Backups page's options, job log and storage panel, in the real app.

use super::{App, LONG};
use crate::harness::Pg;

/// Set a `<select>` by test id the way a user's pick does (a change event).
fn select(s: &crate::webdriver::Session, testid: &str, value: &str) {
    s.script(&format!(
        "const e = document.querySelector('[data-testid=\"{testid}\"]'); e.value = '{value}'; \
         e.dispatchEvent(new Event('change', {{ bubbles: true }})); return null;"
    ));
}

#[test]
fn back_up_with_options_shows_the_pg_dump_line_and_storage_is_saved_or_refused() {
    let pg = Pg::start(15);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g;",
    );
    let password = pg.password.clone();

    let app = App::launch();
    let s = &app.session;
    app.add_project("e2e", &pg.uri("app"));
    s.click(&s.wait("tab-backups", LONG));

    // Back up now with one job and no compression.
    s.click(&s.wait("backup-options-toggle", LONG));
    let jobs = s.wait("backup-jobs", LONG);
    s.until("the defaults in the form", LONG, || {
        let v = s.script("return document.querySelector('[data-testid=\"backup-jobs\"]').value");
        v.as_str().filter(|v| !v.is_empty()).map(|_| ())
    });
    s.clear(&jobs);
    s.type_text(&jobs, "1");
    select(s, "backup-compression", "none");
    s.click(&s.wait("backup-now", LONG));
    s.wait("backup-row", LONG);
    s.until("the job to end", LONG, || {
        s.find_all("job-progress")
            .first()
            .and_then(|e| s.attr(e, "data-status"))
            .filter(|st| st == "succeeded")
    });

    // The job's log names pg_dump with the chosen arguments, and never the password.
    s.click(&s.wait("job-log-toggle", LONG));
    let lines = s.until("the log's commands", LONG, || {
        let cmds: Vec<String> = s
            .find_all("job-log-entry")
            .iter()
            .filter(|e| s.attr(e, "data-kind").as_deref() == Some("command"))
            .map(|e| s.text(e))
            .collect();
        (!cmds.is_empty()).then_some(cmds)
    });
    let dump = lines
        .iter()
        .find(|l| l.contains("pg_dump"))
        .unwrap_or_else(|| panic!("no pg_dump line in {lines:?}"));
    assert!(dump.contains("--format=directory"), "{dump}");
    assert!(dump.contains("--jobs=1"), "{dump}");
    let log_text = s.text(&s.wait("job-log", LONG));
    assert!(!log_text.contains(&password), "the log shows the password");
    assert!(log_text.contains("succeeded"), "{log_text}");
    s.keep_screenshot("backups-job-log");

    // The same log is kept with the run: the recent jobs list opens it.
    let run = s.wait("job-run", LONG);
    assert_eq!(s.attr(&run, "data-kind").as_deref(), Some("backup"));
    s.click(&s.wait("job-run-log", LONG));
    let dialog = s.wait("job-run-dialog", LONG);
    let kept = s.text(&dialog);
    assert!(kept.contains("--jobs=1"), "{kept}");
    assert!(!kept.contains(&password));
    s.click(&s.wait("job-run-close", LONG));
    s.until("the dialog to close", LONG, || {
        s.find_all("job-run-dialog").is_empty().then_some(())
    });
    // And from the backup's own row.
    s.click(&s.wait("backup-log", LONG));
    let by_backup = s.until("the backup's log", LONG, || {
        s.find_all("job-run-dialog")
            .first()
            .map(|d| s.text(d))
            .filter(|t| t.contains("pg_dump"))
    });
    assert!(by_backup.contains("--jobs=1"), "{by_backup}");
    s.click(&s.wait("job-run-close", LONG));
    s.until("the dialog to close", LONG, || {
        s.find_all("job-run-dialog").is_empty().then_some(())
    });

    // Storage: a folder of the user's choice is saved and shown.
    let folder = app.profile().join("elsewhere");
    s.click(&s.wait("storage-kind-folder", LONG));
    s.type_text(
        &s.wait("storage-folder", LONG),
        &folder.display().to_string(),
    );
    s.click(&s.wait("storage-save", LONG));
    let expected = folder.join("e2e").display().to_string();
    s.until("the folder saved", LONG, || {
        s.find_all("storage-location")
            .first()
            .map(|e| s.text(e))
            .filter(|t| *t == expected)
    });
    assert!(folder.is_dir());
    let projects = app.profile().join("pgsteward/projects.json");
    let saved = std::fs::read_to_string(&projects).unwrap();
    assert!(saved.contains("\"folder\""), "{saved}");

    // A wrong S3 endpoint (nothing listens there) is refused with its code; nothing changes.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.click(&s.wait("storage-kind-s3", LONG));
    s.type_text(&s.wait("storage-s3-bucket", LONG), "backups");
    s.type_text(
        &s.wait("storage-s3-endpoint", LONG),
        &format!("http://127.0.0.1:{port}"),
    );
    s.type_text(&s.wait("storage-s3-key-id", LONG), "AKIDEXAMPLE");
    s.type_text(&s.wait("storage-s3-secret", LONG), "not-a-real-secret");
    s.click(&s.wait("storage-s3-allow-http", LONG));
    s.click(&s.wait("storage-save", LONG));
    let refused = s.until("the refusal", std::time::Duration::from_secs(120), || {
        s.find_all("storage-error").into_iter().next()
    });
    assert_eq!(
        s.attr(&refused, "data-code").as_deref(),
        Some("storage_failed"),
        "{}",
        s.text(&refused)
    );
    assert_eq!(std::fs::read_to_string(&projects).unwrap(), saved);
    assert_eq!(s.text(&s.wait("storage-location", LONG)), expected);
    assert!(s.find_all("storage-secret-state").is_empty());
    s.keep_screenshot("backups-storage-refused");
}
