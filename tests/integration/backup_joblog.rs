//! The job log of backups: the exact commands run (never a password), kept with the run in the
//! project's history store and readable afterwards, by the app and by `backup show`; and the
//! choices of the app's "Back up now" form recorded in the manifest.

use std::sync::{Arc, Mutex};

use pgsteward::jobs::{JobLogKind, JobProgress, ProgressSink};
use pgsteward::steward::BackupChoices;
use pgsteward::{ErrorCode, Steward};

use crate::harness::{cli_json, Home, Pg};
use crate::on_each_version;

fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 5000) g;",
    );
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

/// A sink that keeps every progress report.
fn recording() -> (ProgressSink, Arc<Mutex<Vec<JobProgress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (
        Arc::new(move |p: &JobProgress| s.lock().unwrap().push(p.clone())),
        seen,
    )
}

fn manifest_body(home: &Home, id: &str) -> serde_json::Value {
    let path = home
        .path()
        .join("projects/app/backups")
        .join(id)
        .join("manifest.json");
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::from_str(file["body"].as_str().unwrap()).unwrap()
}

async fn the_job_log_names_pg_dump_keeps_no_password_and_outlives_the_job(major: u32) {
    let (pg, home) = setup(major);
    let choices = BackupChoices {
        jobs: Some(1),
        compression: Some("none".into()),
        globals: Some(false),
    };
    let (sink, seen) = recording();
    let b = home
        .st
        .backup_create_chosen("app", &choices, sink, Default::default())
        .await
        .unwrap();

    // The choices are what the manifest records.
    let body = manifest_body(&home, &b.id);
    assert_eq!(body["compression"], "none");
    assert_eq!(body["jobs"], 1);
    assert_eq!(body["dump_format"], "directory");
    let manifest_commands: Vec<String> = body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();

    // Live: the progress carried the log and, while dumping, an estimated total.
    let seen = seen.lock().unwrap().clone();
    let last = seen.last().unwrap();
    assert!(last
        .log
        .iter()
        .any(|e| e.kind == JobLogKind::Command && e.text.contains("pg_dump")));
    assert!(seen.iter().any(|p| p.phase == "dumping"
        && p.total_bytes.is_some_and(|t| t > 0)
        && p.total_is_estimate));

    // Afterwards, from a fresh core (another process would see the same): the run and its log.
    let later = Steward::open(home.path()).unwrap();
    let run = later.job_run("app", &b.id).await.unwrap();
    assert_eq!(run.kind, "backup");
    assert_eq!(run.outcome, "succeeded");
    assert_eq!(run.backup_id.as_deref(), Some(b.id.as_str()));
    let commands: Vec<&str> = run
        .log
        .iter()
        .filter(|e| e.kind == JobLogKind::Command)
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(commands, manifest_commands, "one source of truth");
    let dump = commands[0];
    assert!(
        dump.contains("pg_dump --format=directory --jobs=1 "),
        "{dump}"
    );
    assert!(dump.contains("--snapshot="), "{dump}");
    assert!(dump.contains(&format!("port={}", pg.port())), "{dump}");
    let all = serde_json::to_string(&run).unwrap();
    assert!(!all.contains(&pg.password), "the log holds the password");
    assert!(run
        .log
        .iter()
        .any(|e| e.kind == JobLogKind::Phase && e.text == "dumping"));
    assert_eq!(run.log.last().unwrap().kind, JobLogKind::Outcome);
    let listed = later.job_runs("app", 10).await.unwrap();
    assert_eq!(listed[0].job_id, run.job_id);
    assert!(listed[0].log.is_empty(), "lists leave the logs out");

    // The CLI shows the same log.
    let (ok, v) = cli_json(&home, &["backup", "show", "app", &b.id, "--json"], None);
    assert!(ok, "{v}");
    assert_eq!(v["job_id"], run.job_id.as_str());
    assert!(v["log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "command" && e["text"].as_str().unwrap().contains("--jobs=1")));
    assert!(!v.to_string().contains(&pg.password));

    // A restore's log names pg_restore; a failed job keeps its code.
    home.st
        .backup_restore(
            "app",
            &b.id,
            &pgsteward::backup::RestoreTarget::NewDatabase {
                name: "copy".into(),
            },
            crate::harness::quiet(),
            Default::default(),
        )
        .await
        .unwrap();
    let runs = home.st.job_runs("app", 10).await.unwrap();
    assert_eq!(runs[0].kind, "restore");
    let restore = home.st.job_run("app", &runs[0].job_id).await.unwrap();
    assert!(
        restore
            .log
            .iter()
            .any(|e| e.kind == JobLogKind::Command
                && e.text.contains("pg_restore --format=directory"))
    );
    assert!(!serde_json::to_string(&restore)
        .unwrap()
        .contains(&pg.password));

    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &pgsteward::backup::RestoreTarget::NewDatabase {
                name: "copy".into(),
            },
            crate::harness::quiet(),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    let failed = &home.st.job_runs("app", 10).await.unwrap()[0];
    assert_eq!(failed.outcome, "failed");
    assert_eq!(failed.code.as_deref(), Some("invalid_input"));
}
on_each_version!(the_job_log_names_pg_dump_keeps_no_password_and_outlives_the_job);

async fn choices_out_of_range_are_refused_before_anything_runs(major: u32) {
    let (_pg, home) = setup(major);
    for bad in [
        BackupChoices {
            jobs: Some(0),
            ..Default::default()
        },
        BackupChoices {
            jobs: Some(999),
            ..Default::default()
        },
        BackupChoices {
            compression: Some("lz4".into()),
            ..Default::default()
        },
    ] {
        let err = home
            .st
            .backup_create_chosen("app", &bad, crate::harness::quiet(), Default::default())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput, "{bad:?}: {err}");
    }
    assert!(home.st.backup_list("app").unwrap().is_empty());
    let d = home.st.backup_defaults().unwrap();
    assert!(d.jobs >= 1 && d.jobs <= d.max_jobs, "{d:?}");
}
on_each_version!(choices_out_of_range_are_refused_before_anything_runs);
