//! Copies of S3 backups to a second bucket: verified there, listed the same, and restorable.

use pgsteward::backup::StorageSettings;
use pgsteward::jobs::CancelToken;
use pgsteward::ErrorCode;

use super::s3::{files_under, restore_new, setup, S3Server, BUCKET, COPY_BUCKET};
use crate::harness::{cli_json, quiet, table_checksums, Home};
use crate::on_each_version;

async fn copy_to_second_bucket_verifies_and_lists_the_same(major: u32) {
    let s3 = S3Server::start();
    let (pg, home) = setup(major, Home::new(), &s3);
    let before = table_checksums(&pg, "app");
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            home.st
                .backup_create("app", quiet(), CancelToken::default())
                .await
                .unwrap()
                .id,
        );
    }
    ids.sort();

    // No copy target yet: a clear refusal.
    let err = home
        .st
        .backup_copy("app", None, quiet(), CancelToken::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);

    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "project",
            "copy-target",
            "app",
            "--s3-bucket",
            COPY_BUCKET,
            "--s3-endpoint",
            &s3.endpoint(),
            "--s3-prefix",
            "pgsteward/test",
            "--s3-allow-http",
            "--s3-access-key-id",
            &s3.access_key,
            "--s3-secret-stdin",
        ],
        Some(&s3.secret_key),
    );
    assert!(ok, "{v}");
    assert_eq!(v["copy_has_secret"], true);

    // An interrupted earlier copy left an object without a manifest: it is replaced.
    let leftover = s3
        .bucket_dir(COPY_BUCKET)
        .join("pgsteward/test/app")
        .join(&ids[0]);
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("dump.zst.sealed"), b"half").unwrap();

    let r = home
        .st
        .backup_copy("app", None, quiet(), CancelToken::default())
        .await
        .unwrap();
    let mut copied = r.copied.clone();
    copied.sort();
    assert_eq!(copied, ids);
    let mut there = r.target_backups.clone();
    there.sort();
    assert_eq!(there, ids);

    // Again through the CLI: nothing to copy, both already there.
    let (ok, v) = cli_json(&home, &["--json", "backup", "copy", "app"], None);
    assert!(ok, "{v}");
    assert_eq!(v["copied"].as_array().unwrap().len(), 0);
    assert_eq!(v["already_there"].as_array().unwrap().len(), 2);

    // Each copy job, the refused one included, is in the project's job history.
    let copies: Vec<_> = home
        .st
        .job_runs("app", 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "copy")
        .map(|r| (r.outcome, r.code))
        .collect();
    assert_eq!(
        copies,
        vec![
            ("succeeded".to_string(), None),
            ("succeeded".to_string(), None),
            ("failed".to_string(), Some("invalid_input".to_string())),
        ],
        "newest first"
    );

    // The copies are byte-identical and restorable from the second bucket.
    for id in &ids {
        let src = s3.bucket_dir(BUCKET).join("pgsteward/test/app").join(id);
        let dst = s3
            .bucket_dir(COPY_BUCKET)
            .join("pgsteward/test/app")
            .join(id);
        let objects = files_under(&src);
        assert!(objects.len() >= 2, "{objects:?}");
        for obj in objects {
            let rel = obj.strip_prefix(&src).unwrap();
            let a = std::fs::read(&obj).unwrap();
            let b = std::fs::read(dst.join(rel)).unwrap();
            assert!(a == b, "{id}/{rel:?} differs");
        }
    }
    home.st
        .set_storage(
            "app",
            StorageSettings::S3(s3.settings(COPY_BUCKET)),
            Some(&s3.secret_key),
            true,
        )
        .unwrap();
    let mut listed: Vec<String> = home
        .st
        .backup_list("app")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    listed.sort();
    assert_eq!(listed, ids);
    restore_new(&home, &ids[1], "from_copy").await;
    assert_eq!(table_checksums(&pg, "from_copy"), before);

    // Removing the project with its backups empties its folder in the bucket it uses.
    home.st.remove("app", true).unwrap();
    assert!(files_under(&s3.bucket_dir(COPY_BUCKET).join("pgsteward/test/app")).is_empty());
    assert!(!files_under(&s3.bucket_dir(BUCKET).join("pgsteward/test/app")).is_empty());
}
on_each_version!(copy_to_second_bucket_verifies_and_lists_the_same);
