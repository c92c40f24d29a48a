//! Which storage a project's backup repository uses, as saved with the project.
//!
//! Local (the default: `projects/<name>/backups` in the data folder), a folder the user chose
//! (`<folder>/<name>`), or an S3 bucket. Secrets
//! never appear here; the S3 secret access key is passed in from the keyring when a storage is
//! opened.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::repo::{LocalStorage, Storage};
use super::s3::{S3Settings, S3Storage};
use crate::error::Result;

/// Where a project's backups are written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageSettings {
    /// The project's folder in the pgsteward data folder.
    #[default]
    Local,
    /// A folder of an S3 bucket (S3 or an S3-compatible service).
    S3(S3Settings),
    /// A local folder the user chose (another disk, a mounted network share); each project
    /// gets its own folder `<path>/<project>` in it, as in a bucket.
    Folder { path: String },
}

impl StorageSettings {
    /// Open the storage; `local_root` is the project's local backup folder and `secret` the S3
    /// secret access key (required for S3).
    pub fn open(
        &self,
        project: &str,
        local_root: PathBuf,
        secret: Option<&str>,
        part_size: usize,
    ) -> Result<Box<dyn Storage>> {
        match self {
            StorageSettings::Local => Ok(Box::new(LocalStorage::new(local_root))),
            StorageSettings::Folder { path } => Ok(Box::new(LocalStorage::new(
                PathBuf::from(path).join(project),
            ))),
            StorageSettings::S3(s) => {
                let secret = secret.ok_or_else(|| {
                    crate::error::Error::new(
                        crate::error::ErrorCode::SecretMissing,
                        format!(
                            "The S3 secret access key for {} is not in the keyring. Set it again with `pgsteward project storage {project} ... --s3-secret-stdin`.",
                            s.describe(project)
                        ),
                    )
                })?;
                Ok(Box::new(S3Storage::new(s, project, secret, part_size)?))
            }
        }
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, StorageSettings::S3(_))
    }

    /// A chosen folder must be an absolute path; it is created (mode 0700) when missing and
    /// must be writable. Other settings pass.
    pub fn prepare_folder(&self) -> Result<()> {
        let StorageSettings::Folder { path } = self else {
            return Ok(());
        };
        let p = std::path::Path::new(path);
        if path.trim().is_empty() || !p.is_absolute() {
            return Err(crate::error::Error::invalid_input(format!(
                "The backup folder must be an absolute path; got {path:?}."
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p)
            .map_err(|e| {
                crate::error::Error::io(&format!("creating the backup folder {path}"), e)
            })?;
        let probe = p.join(format!(
            ".pgsteward-probe-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&probe, b"").map_err(|e| {
            crate::error::Error::io(&format!("writing into the backup folder {path}"), e)
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_as_tagged_json() {
        let local = serde_json::to_value(StorageSettings::Local).unwrap();
        assert_eq!(local, serde_json::json!({"kind": "local"}));
        let s3 = StorageSettings::S3(S3Settings {
            bucket: "b".into(),
            prefix: "p".into(),
            endpoint: None,
            region: "eu-west-1".into(),
            allow_http: false,
            access_key_id: "AK".into(),
        });
        let v = serde_json::to_value(&s3).unwrap();
        assert_eq!(v["kind"], "s3");
        assert_eq!(v["bucket"], "b");
        assert!(v.get("secret_access_key").is_none());
        let back: StorageSettings = serde_json::from_value(v).unwrap();
        assert_eq!(back, s3);
    }

    #[test]
    fn a_chosen_folder_round_trips_and_must_be_absolute() {
        let f = StorageSettings::Folder {
            path: "/mnt/backups".into(),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "folder", "path": "/mnt/backups"})
        );
        assert_eq!(serde_json::from_value::<StorageSettings>(v).unwrap(), f);
        let relative = StorageSettings::Folder {
            path: "backups".into(),
        };
        assert_eq!(
            relative.prepare_folder().unwrap_err().code,
            crate::error::ErrorCode::InvalidInput
        );
    }

    #[test]
    fn s3_without_a_secret_is_refused() {
        let s3 = StorageSettings::S3(S3Settings {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            allow_http: false,
            access_key_id: "AK".into(),
        });
        let err = s3
            .open("p", PathBuf::from("/nonexistent"), None, 0)
            .err()
            .unwrap();
        assert_eq!(err.code, crate::error::ErrorCode::SecretMissing);
    }
}
