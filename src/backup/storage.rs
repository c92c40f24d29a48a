//! Which storage a project's backup repository uses, as saved with the project.
//!
//! Local (the default: `projects/<name>/backups` in the data folder) or an S3 bucket. Secrets
//! never appear here; the S3 secret access key is passed in from the keyring when a storage is
//! opened.

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
