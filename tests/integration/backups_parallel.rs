//! Directory-format backups taken and restored with parallel jobs: hostile names, TOAST,
//! partitions, large objects; gzip; tampering; globals; and backups of the old single-stream
//! format that must keep restoring.

use pgsteward::backup::codec::Compression;
use pgsteward::backup::logical::DumpOptions;
use pgsteward::backup::{RestoreTarget, VerifyTier};
use pgsteward::jobs::CancelToken;
use pgsteward::steward::{BackupOptions, RestoreOptions};
use pgsteward::ErrorCode;

use crate::harness::{cli_json_env, quiet, table_checksums, Home, Pg};
use crate::on_each_version;

const HOSTILE_SCHEMA: &str = r#"
CREATE SCHEMA "Lager ""Nord"" ü";
CREATE TABLE "Lager ""Nord"" ü"."Bestände mit Leerzeichen" (id bigserial PRIMARY KEY, "Menge ✓" int, doc text);
INSERT INTO "Lager ""Nord"" ü"."Bestände mit Leerzeichen" ("Menge ✓", doc)
  SELECT g, repeat(md5(g::text), 40) FROM generate_series(1, 3000) g;
CREATE TABLE big_toast (id int PRIMARY KEY, payload text, blob bytea);
INSERT INTO big_toast SELECT g, string_agg(md5(g::text || x::text), '' ORDER BY x), decode(string_agg(md5(x::text || g::text), '' ORDER BY x), 'hex')
  FROM generate_series(1, 40) g, generate_series(1, 600) x GROUP BY g;
CREATE TABLE "events; DROP TABLE x" (id int, at date, note text) PARTITION BY RANGE (at);
CREATE TABLE "events 2025" PARTITION OF "events; DROP TABLE x" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE "events 2026" PARTITION OF "events; DROP TABLE x" FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO "events; DROP TABLE x" SELECT g, date '2025-01-01' + (g % 700), 'é' || g FROM generate_series(1, 4000) g;
CREATE SEQUENCE "Zähler" START 100;
SELECT setval('"Zähler"', 777);
CREATE VIEW "Übersicht" AS SELECT at, count(*) AS n FROM "events; DROP TABLE x" GROUP BY at;
CREATE FUNCTION "doppelt"(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
SELECT lo_from_bytea(424242, decode(repeat(md5('large object'), 20000), 'hex'));
"#;

fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql("app", HOSTILE_SCHEMA);
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

fn options(jobs: usize, compression: Compression) -> BackupOptions {
    BackupOptions {
        dump: DumpOptions {
            directory: true,
            jobs,
            compression,
        },
        globals: false,
    }
}

fn restore_opts(jobs: usize) -> RestoreOptions {
    RestoreOptions {
        jobs,
        globals: false,
    }
}

/// What a user would compare besides table contents: the large object, the sequence, the view
/// and the function.
fn extras(pg: &Pg, db: &str) -> String {
    pg.sql(
        db,
        r#"SELECT md5(lo_get(424242)) || ' ' || last_value || ' ' || (SELECT sum(n) FROM "Übersicht") || ' ' || "doppelt"(21) FROM "Zähler""#,
    )
}

fn objects(home: &Home, id: &str) -> Vec<String> {
    let dir = home
        .path()
        .join("projects/app/backups")
        .join(id)
        .join("dump");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn scratch_is_empty(home: &Home) -> bool {
    match std::fs::read_dir(home.path().join("projects/app/scratch")) {
        Ok(rd) => rd.count() == 0,
        Err(_) => true,
    }
}

async fn a_parallel_backup_restores_a_hostile_schema(major: u32) {
    let (pg, home) = setup(major);
    let before = table_checksums(&pg, "app");
    assert_eq!(before.len(), 5, "{before:?}");
    let extras_before = extras(&pg, "app");

    let b = home
        .st
        .backup_create_with(
            "app",
            options(2, Compression::Zstd),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    // One object per file of the dump: the table of contents and a file per table (and blob).
    let names = objects(&home, &b.id);
    assert!(
        names.contains(&"toc.dat.zst.sealed".to_string()),
        "{names:?}"
    );
    assert!(names.len() >= 6, "{names:?}");
    assert!(scratch_is_empty(&home));
    for n in &names {
        let raw = std::fs::read(
            home.path()
                .join("projects/app/backups")
                .join(&b.id)
                .join("dump")
                .join(n),
        )
        .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("Bestände"));
    }

    for tier in [VerifyTier::Quick, VerifyTier::Sampled, VerifyTier::Full] {
        let r = home
            .st
            .backup_verify("app", Some(&b.id), tier, 0.2, quiet())
            .await
            .unwrap();
        assert!(r.iter().all(|r| r.ok), "{tier:?}: {r:?}");
    }

    let report = home
        .st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "Kopie 1 ü".into(),
            },
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.database, "Kopie 1 ü");
    assert_eq!(table_checksums(&pg, "Kopie 1 ü"), before);
    assert_eq!(extras(&pg, "Kopie 1 ü"), extras_before);
    assert!(scratch_is_empty(&home));

    // Into the same database (one transaction, one job) after a change.
    pg.sql(
        "app",
        r#"DELETE FROM big_toast WHERE id > 3; SELECT lo_unlink(424242)"#,
    );
    home.st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::SameDatabase {
                confirm: "app".into(),
            },
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(table_checksums(&pg, "app"), before);
    assert_eq!(extras(&pg, "app"), extras_before);

    // Export: a folder stock pg_restore reads.
    let out = home.path().join("exported");
    home.st
        .backup_export("app", &b.id, &out, quiet())
        .await
        .unwrap();
    let bin = pgsteward::pgbin::find("pg_restore", major, None).unwrap();
    let listed = std::process::Command::new(bin)
        .arg("--list")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let toc = String::from_utf8_lossy(&listed.stdout);
    assert!(toc.contains("big_toast") && toc.contains("BLOB"), "{toc}");

    // The recovery test restores the new layout too.
    let rec = home
        .st
        .backup_test_recovery("app", Some(&b.id), quiet())
        .await
        .unwrap();
    assert!(rec.ok, "{rec:?}");
}
on_each_version!(a_parallel_backup_restores_a_hostile_schema);

async fn a_gzip_backup_from_the_command_line_restores(major: u32) {
    let (pg, home) = setup(major);
    let before = table_checksums(&pg, "app");
    let gz = std::path::Path::new("gzip");
    let two = std::path::Path::new("2");
    let env = [("BACKUP_COMPRESSION", gz), ("BACKUP_JOBS", two)];
    let (ok, v) = cli_json_env(&home, &["backup", "create", "app", "--json"], None, &env);
    assert!(ok, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let names = objects(&home, &id);
    assert!(names.iter().all(|n| n.ends_with(".gz.sealed")), "{names:?}");
    let (ok, v) = cli_json_env(
        &home,
        &[
            "backup",
            "restore",
            "app",
            &id,
            "--new-database",
            "from gzip",
            "--jobs",
            "2",
            "--json",
        ],
        None,
        &env,
    );
    assert!(ok, "{v}");
    assert_eq!(table_checksums(&pg, "from gzip"), before);
    assert_eq!(extras(&pg, "from gzip"), extras(&pg, "app"));

    // A cancelled backup leaves neither objects nor scratch files behind.
    let cancel = CancelToken::default();
    cancel.cancel();
    let err = home
        .st
        .backup_create_with("app", options(2, Compression::Gzip), quiet(), cancel)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Cancelled, "{err:?}");
    assert!(scratch_is_empty(&home));
    assert_eq!(home.st.backup_list("app").unwrap().len(), 1);
    let folders = std::fs::read_dir(home.path().join("projects/app/backups"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(folders, 1);
}
on_each_version!(a_gzip_backup_from_the_command_line_restores);

async fn a_tampered_table_file_is_refused_before_the_target_is_touched(major: u32) {
    let (pg, home) = setup(major);
    let b = home
        .st
        .backup_create_with(
            "app",
            options(2, Compression::Zstd),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    // The largest data file: a table's rows.
    let dir = home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .join("dump");
    let victim = objects(&home, &b.id)
        .into_iter()
        .filter(|n| n != "toc.dat.zst.sealed")
        .max_by_key(|n| std::fs::metadata(dir.join(n)).unwrap().len())
        .unwrap();
    let path = dir.join(&victim);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x01;
    std::fs::write(&path, &raw).unwrap();

    let databases = "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database";
    let dbs_before = pg.sql("postgres", databases);
    let err = home
        .st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "fresh".into(),
            },
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt, "{err:?}");
    assert!(err.message.contains(&victim), "{}", err.message);
    assert_eq!(pg.sql("postgres", databases), dbs_before);

    pg.sql(
        "app",
        "CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)",
    );
    let before = table_checksums(&pg, "app");
    let err = home
        .st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::SameDatabase {
                confirm: "app".into(),
            },
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt);
    assert_eq!(table_checksums(&pg, "app"), before);
    assert!(scratch_is_empty(&home));

    let r = home
        .st
        .backup_verify("app", Some(&b.id), VerifyTier::Full, 1.0, quiet())
        .await
        .unwrap();
    assert!(!r[0].ok);
}
on_each_version!(a_tampered_table_file_is_refused_before_the_target_is_touched);

async fn an_old_single_stream_backup_still_restores(major: u32) {
    let (pg, home) = setup(major);
    let before = table_checksums(&pg, "app");
    let mut opts = options(1, Compression::Zstd);
    opts.dump.directory = false;
    let b = home
        .st
        .backup_create_with("app", opts, quiet(), CancelToken::default())
        .await
        .unwrap();
    // Rewrite its manifest as version 1 wrote it: no format fields, format 1.
    use base64::Engine;
    let key = home
        .st
        .secrets()
        .get("app", pgsteward::secrets::SecretKind::BackupKey)
        .unwrap()
        .unwrap();
    let kek: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(key.as_str())
        .unwrap()
        .try_into()
        .unwrap();
    let mpath = home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .join("manifest.json");
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let mut body: serde_json::Value = serde_json::from_str(file["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["dump_format"], "custom");
    let o = body.as_object_mut().unwrap();
    for k in ["dump_format", "compression", "jobs", "commands"] {
        o.remove(k);
    }
    o.insert("format".into(), 1.into());
    assert_eq!(o["objects"][0]["name"], "dump.zst.sealed");
    let text = serde_json::to_string_pretty(&body).unwrap();
    let mac = pgsteward::backup::crypto::manifest_mac(&kek, text.as_bytes());
    std::fs::write(
        &mpath,
        serde_json::to_vec(&serde_json::json!({"body": text, "mac": mac})).unwrap(),
    )
    .unwrap();

    home.st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase { name: "old".into() },
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(table_checksums(&pg, "old"), before);
    assert_eq!(extras(&pg, "old"), extras(&pg, "app"));
}
on_each_version!(an_old_single_stream_backup_still_restores);

async fn globals_are_kept_and_applied_only_when_asked(major: u32) {
    let (pg, home) = setup(major);
    pg.sql("postgres", r#"CREATE ROLE "Leser ü" NOLOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "Leser ü""#);
    pg.sql("app", r#"GRANT SELECT ON big_toast TO "Leser ü""#);
    let mut opts = options(2, Compression::Zstd);
    opts.globals = true;
    let b = home
        .st
        .backup_create_with("app", opts, quiet(), CancelToken::default())
        .await
        .unwrap();
    assert!(home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .join("globals.sql.zst.sealed")
        .exists());
    // Lose the role (and what referred to it); a restore without --globals leaves roles alone.
    pg.sql("app", r#"REVOKE ALL ON big_toast FROM "Leser ü""#);
    pg.sql("postgres", r#"DROP ROLE "Leser ü""#);
    let role = r#"SELECT count(*) FROM pg_roles WHERE rolname = 'Leser ü'"#;
    let target = RestoreTarget::NewDatabase {
        name: "with globals".into(),
    };
    let err = home
        .st
        .backup_restore_with(
            "app",
            &b.id,
            &target,
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap_err();
    // The grant needs the role: without the globals this restore fails and leaves nothing.
    assert_eq!(err.code, ErrorCode::ToolFailed, "{err:?}");
    assert_eq!(pg.sql("postgres", role), "0");
    let report = home
        .st
        .backup_restore_with(
            "app",
            &b.id,
            &target,
            RestoreOptions {
                jobs: 2,
                globals: true,
            },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(pg.sql("postgres", role), "1");
    assert!(
        report.notes.iter().any(|n| n.contains("already exists")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        table_checksums(&pg, "with globals"),
        table_checksums(&pg, "app")
    );
}
on_each_version!(globals_are_kept_and_applied_only_when_asked);

/// Tables large enough that their dump files are stored while pg_dump still writes them (the
/// follower reads each file many times before pg_dump closes it): every object holds its whole
/// file, full verify passes, and the restore brings back every row; the row counts recorded
/// while the dump ran match.
async fn files_stored_while_pg_dump_writes_them_restore_whole(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE wide_a (id int PRIMARY KEY, doc text);
         INSERT INTO wide_a SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 60000) g;
         CREATE TABLE wide_b (id int PRIMARY KEY, doc text);
         INSERT INTO wide_b SELECT g, repeat(md5((g * 7)::text), 20) FROM generate_series(1, 60000) g;
         CREATE TABLE small (id int PRIMARY KEY);
         INSERT INTO small SELECT generate_series(1, 10);",
    );
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    let before = table_checksums(&pg, "app");

    let b = home
        .st
        .backup_create_with(
            "app",
            options(2, Compression::Zstd),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    // About 40 MB of rows per wide table went through the pipeline.
    assert!(b.plaintext_bytes > 70 << 20, "{}", b.plaintext_bytes);
    assert!(scratch_is_empty(&home));
    let r = home
        .st
        .backup_verify("app", Some(&b.id), VerifyTier::Full, 1.0, quiet())
        .await
        .unwrap();
    assert!(r.iter().all(|r| r.ok), "{r:?}");

    home.st
        .backup_restore_with(
            "app",
            &b.id,
            &RestoreTarget::NewDatabase {
                name: "copy".into(),
            },
            restore_opts(2),
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
    assert_eq!(table_checksums(&pg, "copy"), before);
    let rec = home
        .st
        .backup_test_recovery("app", Some(&b.id), quiet())
        .await
        .unwrap();
    assert!(rec.ok, "{rec:?}");
}
on_each_version!(files_stored_while_pg_dump_writes_them_restore_whole);
