//! Backup schedules through the CLI, as system cron would run them: a job whose time has come
//! runs once and is recorded, an invalid expression changes nothing, and BACKUP_ENABLED=false
//! turns the default schedule off.

use std::path::Path;

use chrono::{Duration, Local, Timelike, Utc};

use crate::harness::{cli_json, cli_json_env, Home, Pg};
use crate::on_each_version;

fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, note text); \
         INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
    );
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

fn job<'a>(show: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    show["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {show}"))
}

/// The daily expression of the minute that was one minute ago (local time).
fn a_minute_ago() -> String {
    let t = Local::now() - Duration::minutes(1);
    format!("{} {} * * *", t.minute(), t.hour())
}

/// Make the project's own schedules of `jobs` look as if they were set ten minutes ago.
fn set_earlier(home: &Home, jobs: &[&str]) {
    let file = home.path().join("projects/app/schedule.json");
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for job in jobs {
        s["jobs"][job]["since"] = (Utc::now() - Duration::minutes(10))
            .timestamp_millis()
            .into();
    }
    std::fs::write(&file, serde_json::to_vec(&s).unwrap()).unwrap();
}

async fn a_due_backup_runs_once_and_is_recorded(major: u32) {
    let (_pg, home) = setup(major);
    // A daily full backup at the minute that was one minute ago (local time).
    let cron = a_minute_ago();
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "schedule",
            "set",
            "app",
            "--full",
            &cron,
            "--off",
            "verify",
            "--off",
            "recovery-test",
        ],
        None,
    );
    assert!(ok, "{v}");
    assert_eq!(job(&v, "full")["cron"], cron.as_str());
    assert_eq!(job(&v, "verify")["cron"], serde_json::Value::Null);
    // As if it had been set ten minutes ago: the time one minute ago has come since.
    set_earlier(&home, &["full"]);
    assert!(home.st.backup_list("app").unwrap().is_empty());

    // While another run-due holds the project, this one leaves it alone.
    let lock = std::fs::File::create(home.path().join("projects/app/schedule.lock")).unwrap();
    fs2::FileExt::lock_exclusive(&lock).unwrap();
    let (ok, v) = cli_json(&home, &["--json", "schedule", "run-due"], None);
    assert!(ok, "{v}");
    assert_eq!(v["busy"], serde_json::json!(["app"]), "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 0);
    assert!(home.st.backup_list("app").unwrap().is_empty());
    drop(lock);

    let (ok, v) = cli_json(&home, &["--json", "schedule", "run-due"], None);
    assert!(ok, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{v}");
    assert_eq!(runs[0]["job"], "full");
    assert_eq!(runs[0]["outcome"], "succeeded", "{v}");
    let backups = home.st.backup_list("app").unwrap();
    assert_eq!(backups.len(), 1);
    assert!(runs[0]["message"]
        .as_str()
        .unwrap()
        .contains(&backups[0].id));

    // Right after, nothing is due: no second backup.
    let (ok, v) = cli_json(&home, &["--json", "schedule", "run-due", "app"], None);
    assert!(ok, "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(home.st.backup_list("app").unwrap().len(), 1);

    // The run is shown as the last one, and the next is about a day away.
    let (ok, v) = cli_json(&home, &["--json", "schedule", "show", "app"], None);
    assert!(ok, "{v}");
    let full = job(&v, "full");
    assert_eq!(full["last_run"]["outcome"], "succeeded");
    let next = chrono::DateTime::parse_from_rfc3339(full["next_run"].as_str().unwrap()).unwrap();
    let hours = (next.with_timezone(&Utc) - Utc::now()).num_hours();
    assert!((22..=24).contains(&hours), "next run {next}");

    // Verify and recovery test, due too, check the newest backup.
    let cron = a_minute_ago();
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "schedule",
            "set",
            "app",
            "--verify",
            &cron,
            "--recovery-test",
            &cron,
        ],
        None,
    );
    assert!(ok, "{v}");
    set_earlier(&home, &["verify", "recovery_test"]);
    let (ok, v) = cli_json(&home, &["--json", "schedule", "run-due", "app"], None);
    assert!(ok, "{v}");
    let runs = v["runs"].as_array().unwrap();
    let jobs: Vec<&str> = runs.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["verify", "recovery_test"], "{v}");
    for r in runs {
        assert_eq!(r["outcome"], "succeeded", "{v}");
        assert!(
            r["message"].as_str().unwrap().contains(&backups[0].id),
            "{v}"
        );
    }
    assert_eq!(home.st.backup_list("app").unwrap().len(), 1);
}
on_each_version!(a_due_backup_runs_once_and_is_recorded);

async fn an_invalid_expression_is_refused_and_changes_nothing(major: u32) {
    let (_pg, home) = setup(major);
    let (ok, before) = cli_json(&home, &["--json", "schedule", "show", "app"], None);
    assert!(ok, "{before}");
    assert_eq!(job(&before, "full")["cron"], "0 2 * * *");
    assert_eq!(job(&before, "full")["source"], "default");

    // One good expression and one bad: neither is saved.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "schedule",
            "set",
            "app",
            "--verify",
            "0 4 * * *",
            "--full",
            "0 25 * * *",
        ],
        None,
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("0 25 * * *"));

    let (ok, after) = cli_json(&home, &["--json", "schedule", "show", "app"], None);
    assert!(ok);
    for name in ["full", "verify", "recovery_test"] {
        assert_eq!(
            job(&after, name)["cron"],
            job(&before, name)["cron"],
            "{name}"
        );
        assert_eq!(job(&after, name)["source"], "default", "{name}");
    }
    assert!(!home.path().join("projects/app/schedule.json").exists());
}
on_each_version!(an_invalid_expression_is_refused_and_changes_nothing);

async fn backups_disabled_turn_the_default_schedule_off(major: u32) {
    let (_pg, home) = setup(major);
    let off: &[(&str, &Path)] = &[("BACKUP_ENABLED", Path::new("false"))];
    let (ok, v) = cli_json_env(&home, &["--json", "schedule", "show", "app"], None, off);
    assert!(ok, "{v}");
    for name in ["full", "verify", "recovery_test"] {
        assert_eq!(
            job(&v, name)["cron"],
            serde_json::Value::Null,
            "{name}: {v}"
        );
        assert_eq!(job(&v, name)["next_run"], serde_json::Value::Null);
    }
    // With the default schedule on, the full backup is at 02:00 local time.
    let (ok, v) = cli_json(&home, &["--json", "schedule", "show", "app"], None);
    assert!(ok);
    let next = chrono::DateTime::parse_from_rfc3339(job(&v, "full")["next_run"].as_str().unwrap())
        .unwrap();
    assert_eq!((next.hour(), next.minute()), (2, 0));

    let (ok, v) = cli_json_env(&home, &["--json", "schedule", "run-due"], None, off);
    assert!(ok, "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 0);
    assert!(home.st.backup_list("app").unwrap().is_empty());
}
on_each_version!(backups_disabled_turn_the_default_schedule_off);
