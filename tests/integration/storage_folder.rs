//! Backups into a folder of the user's choice: each project in its own subfolder, listed and
//! restorable from there; a relative path is refused and changes nothing.

use pgsteward::backup::StorageSettings;
use pgsteward::ErrorCode;

use crate::harness::{quiet, Home, Pg};
use crate::on_each_version;

async fn backups_go_to_the_chosen_folder(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g",
    );
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    let elsewhere = tempfile::tempdir().unwrap();
    let folder = elsewhere.path().join("nested/backups");

    let err = home
        .st
        .set_storage(
            "app",
            StorageSettings::Folder {
                path: "relative/backups".into(),
            },
            None,
            true,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert_eq!(
        home.st.storage_info("app").unwrap().storage,
        StorageSettings::Local
    );

    let info = home
        .st
        .set_storage(
            "app",
            StorageSettings::Folder {
                path: folder.display().to_string(),
            },
            None,
            true,
        )
        .unwrap();
    assert_eq!(info.location, folder.join("app").display().to_string());
    let b = home
        .st
        .backup_create("app", quiet(), Default::default())
        .await
        .unwrap();
    assert!(folder
        .join("app")
        .join(&b.id)
        .join("manifest.json")
        .is_file());
    assert!(!home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .exists());
    let listed = home.st.backup_list("app").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, b.id);
}
on_each_version!(backups_go_to_the_chosen_folder);
