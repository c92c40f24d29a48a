//! A big table restored into a new database: its rows stream from the repository over several
//! COPY sessions at once and come back whole (escapes, bytea, a hostile name); a cancel while it
//! loads, or a damage found late in the stream, leaves no database behind, and a full verify
//! names the damaged object.

use pgsteward::backup::codec::Compression;
use pgsteward::backup::logical::DumpOptions;
use pgsteward::backup::{RestoreTarget, VerifyTier};
use pgsteward::jobs::{CancelToken, JobLogKind};
use pgsteward::steward::{BackupOptions, RestoreOptions};
use pgsteward::ErrorCode;

use crate::harness::{quiet, table_checksums, Home, Pg};
use crate::on_each_version;

/// About 85 MB of rows in one table (over the 64 MiB from which a table loads over several
/// sessions), a small table that references it, and indexes to build afterwards.
const SCHEMA: &str = r#"
CREATE TABLE "Groß ""Lager""; x" (id int PRIMARY KEY, "Wert
mit Umbruch" text, raw bytea, at timestamptz);
INSERT INTO "Groß ""Lager""; x"
  SELECT g,
         CASE WHEN g % 1000 = 0 THEN E'tab\there\nnewline \\ backslash \\. ü' ELSE repeat(md5(g::text), 20) END,
         decode(md5((g * 3)::text), 'hex'),
         timestamptz '2026-01-01' + g * interval '1 second'
  FROM generate_series(1, 120000) g;
CREATE INDEX ON "Groß ""Lager""; x" (at);
CREATE TABLE refs (id int PRIMARY KEY, lager int REFERENCES "Groß ""Lager""; x" (id));
INSERT INTO refs SELECT g, g * 7 FROM generate_series(1, 1000) g;
"#;

async fn a_big_table_loads_over_several_sessions_and_a_cancel_or_damage_leaves_nothing(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql("app", SCHEMA);
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    let before = table_checksums(&pg, "app");
    assert_eq!(before.len(), 2, "{before:?}");

    let opts = BackupOptions {
        dump: DumpOptions {
            directory: true,
            jobs: 2,
            compression: Compression::Zstd,
        },
        globals: false,
    };
    let b = home
        .st
        .backup_create_with("app", opts, quiet(), CancelToken::default())
        .await
        .unwrap();
    assert!(b.plaintext_bytes > 70 << 20, "{}", b.plaintext_bytes);

    let restore = |name: &str| {
        let target = RestoreTarget::NewDatabase { name: name.into() };
        let (home, id) = (&home, b.id.clone());
        async move {
            let opts = RestoreOptions {
                jobs: 2,
                globals: false,
            };
            home.st
                .backup_restore_with("app", &id, &target, opts, quiet(), CancelToken::default())
                .await
        }
    };
    let r = home
        .st
        .backup_verify("app", Some(&b.id), VerifyTier::Full, 1.0, quiet())
        .await
        .unwrap();
    assert!(r[0].ok, "{:?}", r[0]);
    restore("copy").await.unwrap();
    assert_eq!(table_checksums(&pg, "copy"), before);
    let indexes = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'";
    assert_eq!(pg.sql("copy", indexes), pg.sql("app", indexes));
    let fks = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'";
    assert_eq!(pg.sql("copy", fks).trim(), "1");
    // The job log says how the big table was loaded.
    let runs = home.st.job_runs("app", 10).await.unwrap();
    let log = home.st.job_run("app", &runs[0].job_id).await.unwrap().log;
    assert!(
        log.iter().any(|e| e.kind == JobLogKind::Phase
            && e.text.contains("Lager")
            && e.text.ends_with("over 2 sessions")),
        "{log:?}"
    );
    // ... and the exact statement those sessions ran.
    assert!(
        log.iter().any(|e| e.kind == JobLogKind::Command
            && e.text.contains("COPY public.\"Groß \"\"Lager\"\"; x\"")
            && e.text.contains("FROM stdin")),
        "{log:?}"
    );

    // Cancelled while the big table loads: the sessions stop and the new database goes.
    let cancel = CancelToken::default();
    let on_load = {
        let cancel = cancel.clone();
        std::sync::Arc::new(move |p: &pgsteward::jobs::JobProgress| {
            if p.phase.starts_with("loading") && p.bytes > 0 {
                cancel.cancel();
            }
        }) as pgsteward::jobs::ProgressSink
    };
    let err = home
        .st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "halfway".into(),
            },
            RestoreOptions {
                jobs: 2,
                globals: false,
            },
            on_load,
            cancel,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Cancelled, "{err:?}");
    let exists = "SELECT count(*) FROM pg_database WHERE datname = 'halfway'";
    assert_eq!(pg.sql("postgres", exists).trim(), "0");

    // Damage near the end of the big table's object: most rows have already gone to the
    // server when it is found.
    let dir = home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .join("dump");
    let victim = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut raw = std::fs::read(&victim).unwrap();
    let at = raw.len() - 2000;
    raw[at] ^= 0x40;
    std::fs::write(&victim, &raw).unwrap();

    let databases = "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database";
    let dbs_before = pg.sql("postgres", databases);
    let err = restore("copy2").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt, "{err:?}");
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.message.contains(&name), "{}", err.message);
    assert_eq!(pg.sql("postgres", databases), dbs_before);
    let r = home
        .st
        .backup_verify("app", Some(&b.id), VerifyTier::Full, 1.0, quiet())
        .await
        .unwrap();
    assert!(!r[0].ok && r[0].message.contains(&name), "{:?}", r[0]);
    let scratch = home.path().join("projects/app/scratch");
    assert!(std::fs::read_dir(scratch).map_or(true, |mut d| d.next().is_none()));
}
on_each_version!(a_big_table_loads_over_several_sessions_and_a_cancel_or_damage_leaves_nothing);
