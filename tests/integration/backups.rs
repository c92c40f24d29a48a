//! Backup and restore round trips, and what happens to damaged backups.

use pgsteward::backup::RestoreTarget;
use pgsteward::jobs::CancelToken;
use pgsteward::ErrorCode;

use crate::harness::{largest_object, quiet, table_checksums, Home, Pg};
use crate::on_each_version;

/// Tables whose names need quoting, and values that test encodings and types.
const AWKWARD_SCHEMA: &str = r#"
CREATE SCHEMA "Sales ""EU""";
CREATE TABLE "Sales ""EU"""."order lines" (id int PRIMARY KEY, note text, amount numeric(12,2));
CREATE TABLE "Ärger's Tabelle" (id serial PRIMARY KEY, wert text, tags text[], doc jsonb);
CREATE TABLE "drop table x; --" (v bytea);
INSERT INTO "Sales ""EU"""."order lines" SELECT g, 'line ' || g || E'\ttab ''quote''', g * 1.25 FROM generate_series(1, 5000) g;
INSERT INTO "Ärger's Tabelle" (wert, tags, doc) SELECT 'Grüße ✓ ' || g, ARRAY['a', 'ö', 'x"y'], jsonb_build_object('n', g) FROM generate_series(1, 500) g;
INSERT INTO "drop table x; --" SELECT decode(md5(g::text), 'hex') FROM generate_series(1, 100) g;
"#;

fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql("app", AWKWARD_SCHEMA);
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

async fn backup_then_restore_gives_identical_tables(major: u32) {
    let (pg, home) = setup(major);
    let before = table_checksums(&pg, "app");
    assert_eq!(before.len(), 3);

    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let p2 = progress.clone();
    let sink: pgsteward::jobs::ProgressSink =
        std::sync::Arc::new(move |p| p2.lock().unwrap().push(p.clone()));
    let b = home
        .st
        .backup_create("app", sink, CancelToken::default())
        .await
        .unwrap();
    assert_eq!(b.database, "app");
    assert!(b.plaintext_bytes > 0 && b.stored_bytes > 0);
    let events = progress.lock().unwrap().clone();
    assert_eq!(
        events.last().unwrap().status,
        pgsteward::jobs::JobStatus::Succeeded
    );
    assert!(events.iter().any(|e| e.phase == "dumping" && e.bytes > 0));

    let listed = home.st.backup_list("app").unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        vec![b.id.clone()]
    );

    // The stored object is not the plaintext: no table data readable on disk.
    let obj = largest_object(&home.path().join("projects/app/backups").join(&b.id));
    let raw = std::fs::read(&obj).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("Grüße"));

    let report = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "app copy \"1\"".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.database, "app copy \"1\"");
    assert_eq!(table_checksums(&pg, "app copy \"1\""), before);

    // Restoring into the same database needs the name typed back, then replaces the contents.
    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::SameDatabase {
                confirm: "yes".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ConfirmationRequired);
    pg.sql(
        "app",
        "DELETE FROM \"Ärger's Tabelle\" WHERE id > 10; CREATE TABLE later (x int)",
    );
    home.st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::SameDatabase {
                confirm: "app".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    let after: Vec<_> = table_checksums(&pg, "app")
        .into_iter()
        .filter(|(t, _)| t != "public.later")
        .collect();
    assert_eq!(after, before);

    // An existing database is never overwritten by a "new database" restore.
    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase { name: "app".into() },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
}
on_each_version!(backup_then_restore_gives_identical_tables);

async fn a_flipped_byte_is_backup_corrupt_and_changes_nothing(major: u32) {
    let (pg, home) = setup(major);
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let obj = largest_object(&home.path().join("projects/app/backups").join(&b.id));
    let mut raw = std::fs::read(&obj).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0x01;
    std::fs::write(&obj, &raw).unwrap();

    let databases_before = pg.sql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
    );
    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "fresh".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt, "{err:?}");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
        ),
        databases_before
    );

    // Into the same database: still refused before anything is dropped.
    pg.sql(
        "app",
        "CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)",
    );
    let before = table_checksums(&pg, "app");
    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::SameDatabase {
                confirm: "app".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt);
    assert_eq!(table_checksums(&pg, "app"), before);

    // A damaged manifest is also detected.
    let man = home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .join("manifest.json");
    let text = std::fs::read_to_string(&man).unwrap().replace(
        "\\\"database\\\": \\\"app\\\"",
        "\\\"database\\\": \\\"other\\\"",
    );
    std::fs::write(&man, text).unwrap();
    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "fresh2".into(),
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt, "{err:?}");
}
on_each_version!(a_flipped_byte_is_backup_corrupt_and_changes_nothing);

#[tokio::test]
async fn an_interrupted_backup_is_never_listed() {
    let (_pg, home) = setup(15);
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    // Simulate a crash before the commit: an object without a manifest.
    let dir = home
        .path()
        .join("projects/app/backups/20990101T000000Z-deadbeef");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump.zst.sealed"), b"partial").unwrap();
    let ids: Vec<String> = home
        .st
        .backup_list("app")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, vec![b.id]);

    // A cancelled backup leaves nothing behind either.
    let cancel = CancelToken::default();
    cancel.cancel();
    let err = home
        .st
        .backup_create("app", quiet(), cancel)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Cancelled);
    assert_eq!(home.st.backup_list("app").unwrap().len(), 1);
}

#[tokio::test]
async fn a_backup_from_another_project_key_is_wrong_key() {
    let (_pg, home) = setup(15);
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    // Replace the project's key in the keyring with another one.
    use base64::Engine;
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    home.st
        .secrets()
        .set("app", pgsteward::secrets::SecretKind::BackupKey, &other)
        .unwrap();
    let err = home
        .st
        .backup_restore(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase { name: "x".into() },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongKey, "{err:?}");
}
