//! Keeping a backup repository trustworthy: verify tiers find damage, retention spares what it
//! must, a rotated key keeps backups restorable, and a recovery kit brings back a lost key.

use pgsteward::backup::{RestoreTarget, RetentionPolicy, VerifyTier};
use pgsteward::jobs::CancelToken;
use pgsteward::secrets::SecretKind;
use pgsteward::ErrorCode;

use crate::harness::{cli_json, cli_json_env, largest_object, quiet, table_checksums, Home, Pg};
use crate::on_each_version;

const PASSPHRASE: &str = "long enough passphrase 42";

fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE \"Orders \"\"EU\"\"\" (id int PRIMARY KEY, note text); \
         INSERT INTO \"Orders \"\"EU\"\"\" SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 4000) g;",
    );
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    (pg, home)
}

async fn backup(home: &Home) -> String {
    home.st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap()
        .id
}

fn object(home: &Home, id: &str) -> std::path::PathBuf {
    largest_object(&home.path().join("projects/app/backups").join(id))
}

async fn restore_new(home: &Home, id: &str, db: &str) -> pgsteward::Result<()> {
    home.st
        .backup_restore(
            "app",
            id,
            &RestoreTarget::NewDatabase { name: db.into() },
            quiet(),
            CancelToken::default(),
        )
        .await
        .map(|_| ())
}

async fn verify_tiers_tell_intact_from_damaged(major: u32) {
    let (_pg, home) = setup(major);
    let intact = backup(&home).await;
    let flipped = backup(&home).await;
    let truncated = backup(&home).await;

    // Damage two of them: one bit in the middle, and a cut-off tail.
    let p = object(&home, &flipped);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&p, &bytes).unwrap();
    let p = object(&home, &truncated);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 100)
        .unwrap();

    let verdict = |tier: VerifyTier, fraction: f64| {
        let st = home.st.clone();
        async move {
            let mut v: Vec<(String, bool)> = st
                .backup_verify("app", None, tier, fraction, quiet())
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.backup_id, r.ok))
                .collect();
            v.sort();
            v
        }
    };
    let expect = |ok: [bool; 3]| {
        let mut v = vec![
            (intact.clone(), ok[0]),
            (flipped.clone(), ok[1]),
            (truncated.clone(), ok[2]),
        ];
        v.sort();
        v
    };
    // Quick sees sizes only: the flipped bit passes, the truncation does not.
    assert_eq!(
        verdict(VerifyTier::Quick, 1.0).await,
        expect([true, true, false])
    );
    // Reading every segment (sampled at 100 %) or everything (full) finds both.
    assert_eq!(
        verdict(VerifyTier::Sampled, 1.0).await,
        expect([true, false, false])
    );
    assert_eq!(
        verdict(VerifyTier::Full, 1.0).await,
        expect([true, false, false])
    );

    // The CLI fails with backup_corrupt and says which one.
    let (ok, v) = cli_json(
        &home,
        &["--json", "backup", "verify", "app", &flipped],
        None,
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "backup_corrupt", "{v}");
    assert_eq!(v["reports"][0]["backup_id"], flipped.as_str());
    assert_eq!(v["reports"][0]["ok"], false);
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "backup",
            "verify",
            "app",
            &intact,
            "--tier",
            "sampled",
            "--fraction",
            "0.5",
        ],
        None,
    );
    assert!(ok, "{v}");
    assert_eq!(v["reports"][0]["ok"], true);
    let (ok, v) = cli_json(
        &home,
        &["--json", "backup", "verify", "app", "--tier", "thorough"],
        None,
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");
}
on_each_version!(verify_tiers_tell_intact_from_damaged);

async fn prune_keeps_the_newest_and_the_newest_verified(major: u32) {
    let (_pg, home) = setup(major);
    let oldest = backup(&home).await;
    let middle = backup(&home).await;
    let newest = backup(&home).await;
    home.st
        .backup_verify("app", Some(&oldest), VerifyTier::Full, 1.0, quiet())
        .await
        .unwrap();
    // An interrupted backup: objects, no manifest.
    let leftover = home
        .path()
        .join("projects/app/backups/20200101T000000Z-deadbeef");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("dump.zst.sealed"), b"partial").unwrap();

    // Without --yes the CLI refuses and deletes nothing.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "backup",
            "prune",
            "app",
            "--keep",
            "1",
            "--max-age-days",
            "0",
        ],
        None,
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "confirmation_required", "{v}");
    assert_eq!(home.st.backup_list("app").unwrap().len(), 3);
    assert!(leftover.exists());

    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "backup",
            "prune",
            "app",
            "--keep",
            "1",
            "--max-age-days",
            "0",
            "--yes",
        ],
        None,
    );
    assert!(ok, "{v}");
    assert_eq!(v["deleted"], serde_json::json!([middle]));
    let mut left: Vec<String> = home
        .st
        .backup_list("app")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    left.sort();
    assert_eq!(left, vec![oldest.clone(), newest.clone()]);
    assert!(!leftover.exists(), "the interrupted backup was removed");

    // A policy that would delete everything is refused.
    let err = home
        .st
        .backup_prune(
            "app",
            &RetentionPolicy {
                keep_last: Some(0),
                max_age_days: None,
            },
            false,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
}
on_each_version!(prune_keeps_the_newest_and_the_newest_verified);

async fn rotated_key_keeps_backups_restorable(major: u32) {
    let (pg, home) = setup(major);
    let before = table_checksums(&pg, "app");
    let id = backup(&home).await;
    let old_kit = home.st.key_export_kit("app", PASSPHRASE).unwrap();
    let stored_before = std::fs::read(object(&home, &id)).unwrap();

    let (ok, v) = cli_json(&home, &["--json", "key", "rotate", "app"], None);
    assert!(!ok);
    assert_eq!(v["error"]["code"], "confirmation_required");
    let (ok, v) = cli_json(&home, &["--json", "key", "rotate", "app", "--yes"], None);
    assert!(ok, "{v}");
    assert_eq!(v["rewrapped"], 1);
    assert_ne!(v["old_key_id"], v["new_key_id"]);
    // No data was re-encrypted: the object is byte for byte the same.
    assert_eq!(std::fs::read(object(&home, &id)).unwrap(), stored_before);

    restore_new(&home, &id, "after_rotation").await.unwrap();
    assert_eq!(table_checksums(&pg, "after_rotation"), before);
    // A new backup after the rotation works with the new key.
    backup(&home).await;

    // The kit made before the rotation holds the old key: it no longer opens the repository.
    let err = home
        .st
        .key_import_kit("app", &old_kit, PASSPHRASE, true)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongKey);
    assert_eq!(home.st.backup_list("app").unwrap().len(), 2);
}
on_each_version!(rotated_key_keeps_backups_restorable);

async fn an_interrupted_rotation_finishes_on_next_use(major: u32) {
    let (_pg, home) = setup(major);
    let id = backup(&home).await;
    // A rotation that stopped right after choosing its new key.
    let next = pgsteward::backup::crypto::random_key();
    home.st
        .secrets()
        .set_key("app", SecretKind::BackupKeyNext, &next)
        .unwrap();
    let listed = home.st.backup_list("app").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    let current = home
        .st
        .secrets()
        .key("app", SecretKind::BackupKey)
        .unwrap()
        .unwrap();
    assert_eq!(*current, *next, "the pending key became the project's key");
    assert!(home
        .st
        .secrets()
        .get("app", SecretKind::BackupKeyNext)
        .unwrap()
        .is_none());
    home.st
        .backup_verify("app", Some(&id), VerifyTier::Full, 1.0, quiet())
        .await
        .map(|r| assert!(r[0].ok))
        .unwrap();
}
on_each_version!(an_interrupted_rotation_finishes_on_next_use);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_keyring_is_recovered_from_the_kit() {
    let (pg, home) = setup(15);
    let before = table_checksums(&pg, "app");
    let id = backup(&home).await;
    let kit_path = home.path().join("app.kit");
    let kit_arg = kit_path.display().to_string();
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "key",
            "export-kit",
            "app",
            "--out",
            &kit_arg,
            "--passphrase-stdin",
        ],
        Some(&format!("{PASSPHRASE}\n")),
    );
    assert!(ok, "{v}");
    let kit_text = std::fs::read_to_string(&kit_path).unwrap();
    assert!(!kit_text.contains(PASSPHRASE));
    // A short passphrase is refused.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "key",
            "export-kit",
            "app",
            "--out",
            &format!("{kit_arg}2"),
            "--passphrase-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "invalid_input");

    // The keyring loses the key. The next backup makes a fresh key, which does not open the
    // repository: it is refused before writing anything.
    home.st
        .secrets()
        .delete("app", SecretKind::BackupKey)
        .unwrap();
    let dirs = || {
        std::fs::read_dir(home.path().join("projects/app/backups"))
            .unwrap()
            .count()
    };
    let count = dirs();
    let err = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongKey, "{}", err.message);
    assert_eq!(dirs(), count, "nothing was written");

    // A wrong passphrase opens nothing; the right one brings the key back.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "key",
            "import-kit",
            "app",
            &kit_arg,
            "--passphrase-stdin",
        ],
        Some("long enough passphrase 43\n"),
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "wrong_key");
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "key",
            "import-kit",
            "app",
            &kit_arg,
            "--passphrase-stdin",
        ],
        Some(&format!("{PASSPHRASE}\n")),
    );
    assert!(ok, "{v}");
    assert_eq!(v["backups_readable"], 1);
    restore_new(&home, &id, "recovered").await.unwrap();
    assert_eq!(table_checksums(&pg, "recovered"), before);
}

async fn export_gives_a_standard_archive_and_refuses_damage(major: u32) {
    let (_pg, home) = setup(major);
    let id = backup(&home).await;
    let out = home.path().join("export.dir");
    let out_arg = out.display().to_string();
    let (ok, v) = cli_json(
        &home,
        &["--json", "backup", "export", "app", &id, "--out", &out_arg],
        None,
    );
    assert!(ok, "{v}");
    // Stock pg_restore reads it.
    let pg_restore = pgsteward::pgbin::find("pg_restore", major, None).unwrap();
    let listing = std::process::Command::new(pg_restore)
        .arg("--list")
        .arg(&out)
        .output()
        .unwrap();
    assert!(listing.status.success());
    assert!(String::from_utf8_lossy(&listing.stdout).contains("Orders \"EU\""));
    use std::os::unix::fs::PermissionsExt;
    // A directory-format backup exports as a folder only its owner can read.
    assert!(out.is_dir());
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // An existing file is never overwritten.
    let (ok, v) = cli_json(
        &home,
        &["--json", "backup", "export", "app", &id, "--out", &out_arg],
        None,
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "io");

    // A damaged backup exports nothing.
    let p = object(&home, &id);
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    let bad = home.path().join("bad.dir");
    let err = home
        .st
        .backup_export("app", &id, &bad, quiet())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackupCorrupt);
    assert!(!bad.exists(), "no partial archive is left behind");
}
on_each_version!(export_gives_a_standard_archive_and_refuses_damage);

async fn recovery_test_restores_into_a_throwaway_server_while_writes_go_on(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        "CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), amount float8, tags text[]); \
         CREATE INDEX ON events (at); \
         CREATE TABLE measures (city text, day date, v numeric) PARTITION BY RANGE (day); \
         CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); \
         CREATE TABLE measures_2025 PARTITION OF measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01'); \
         INSERT INTO measures SELECT 'Zürich', DATE '2024-01-01' + g, g / 7.0 FROM generate_series(0, 700) g; \
         INSERT INTO events (amount, tags) SELECT g * 0.1, ARRAY['a', 'b'] FROM generate_series(1, 2000) g;",
    );
    // Writes keep coming while the backup runs: the recorded facts and the dump must still
    // describe the same moment.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, uri) = (stop.clone(), pg.uri("app"));
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&uri).await.unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sqlx::query("INSERT INTO events (amount) VALUES (random())")
                    .execute(&mut c)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let id = backup(&home).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0);

    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    let (ok, v) = cli_json_env(
        &home,
        &["--json", "backup", "test-recovery", "app"],
        None,
        &[("TMPDIR", scratch.path())],
    );
    assert!(ok, "{v}");
    assert_eq!(v["backup_id"], id.as_str());
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["server_major"], major);
    // Orders, events and the two partitions.
    assert_eq!(v["tables_compared"], 4, "{v}");
    assert_eq!(v["checksums_compared"], 4);
    assert!(
        v["amcheck"]["indexes_checked"].as_u64().unwrap() >= 2,
        "{v}"
    );
    assert!(v["amcheck"]["failures"].as_array().unwrap().is_empty());
    // The throwaway server was removed with its folder.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    let listed = home.st.backup_list("app").unwrap();
    let check = listed[0].last_check.as_ref().unwrap();
    assert_eq!(check.tier, pgsteward::backup::VerifyTier::Recovery);
    assert!(check.ok);
    // Its log names the throwaway server's programs and the restore, in the order they ran.
    let runs = home.st.job_runs("app", 10).await.unwrap();
    let run = runs.iter().find(|r| r.kind == "recovery_test").unwrap();
    let run = home.st.job_run("app", &run.job_id).await.unwrap();
    let programs: Vec<String> = run
        .log
        .iter()
        .filter(|e| e.kind == pgsteward::jobs::JobLogKind::Command)
        .filter_map(|e| e.text.split(' ').next())
        .filter_map(|p| p.rsplit('/').next().map(str::to_string))
        .collect();
    assert_eq!(programs[..2], ["initdb", "pg_ctl"], "{programs:?}");
    assert!(programs.iter().any(|p| p == "pg_restore"), "{programs:?}");
}
on_each_version!(recovery_test_restores_into_a_throwaway_server_while_writes_go_on);
