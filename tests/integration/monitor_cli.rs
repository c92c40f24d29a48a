//! The monitoring commands of the CLI: JSON for scripts, stable error codes, confirmation.

use serde_json::Value;

use crate::harness::{cli_json, Home, Pg};
use crate::on_each_version;

fn run(home: &Home, args: &[&str]) -> (bool, Value) {
    cli_json(home, args, None)
}

async fn monitoring_commands_speak_json(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g",
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));

    let (ok, v) = run(&home, &["--json", "activity", "p", "--state", "active"]);
    assert!(ok, "{v}");
    let sessions = v["activity"]["sessions"].as_array().unwrap();
    assert!(sessions.iter().any(|s| s["own_session"] == true), "{v}");
    assert!(sessions.iter().all(|s| s["state"] == "active"));
    assert!(v["blocking"]["roots"].as_array().unwrap().is_empty());

    let (ok, v) = run(&home, &["--json", "explain", "p", "--sql", "DELETE FROM t"]);
    assert!(ok, "{v}");
    assert_eq!(v["data_changing"], true);
    assert_eq!(v["plan"]["node_type"], "Delete");
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM t"), "100");

    let (ok, v) = run(
        &home,
        &["--json", "explain", "p", "--sql", "SELECT 1; SELECT 2"],
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");

    let (ok, v) = run(&home, &["--json", "health", "p"]);
    assert!(ok, "{v}");
    assert_eq!(v["checks"].as_array().unwrap().len(), 9);

    let (ok, v) = run(&home, &["--json", "terminate", "p", "12345"]);
    assert!(!ok);
    assert_eq!(v["error"]["code"], "confirmation_required");
    let (ok, v) = run(&home, &["--json", "terminate", "p", "999999", "--yes"]);
    assert!(ok, "{v}");
    assert_eq!(v["signalled"], false);
    let (ok, v) = run(&home, &["--json", "cancel", "p", "999999"]);
    assert!(ok, "{v}");
    assert_eq!(v["action"], "cancel");
}
on_each_version!(monitoring_commands_speak_json);

/// `top --once` prints one frame: the server line, then the sessions (its own among them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_prints_a_frame() {
    let pg = Pg::start(15);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let out = std::process::Command::new(crate::harness::cli())
        .args(["top", "p", "--once"])
        .env("PGSTEWARD_HOME", home.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("p — PostgreSQL 15."), "{text}");
    assert!(first.contains("connections of 100"), "{first}");
    assert!(
        text.contains("pgsteward"),
        "its own session is listed: {text}"
    );
    assert!(
        !text.contains("\x1b[2J"),
        "no screen clearing when not on a terminal"
    );
}
