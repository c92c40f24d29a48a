//! A project's backup storage: local or S3, a copy target, and copying backups to it.
//!
//! Non-secret settings are saved with the project; the S3 secret access keys are kept only in
//! the OS keyring. Saving S3 settings first checks that the service accepts the credentials
//! (unless told not to), so a typo is caught before the first backup.

use serde::Serialize;
use ts_rs::TS;

use super::Steward;
use crate::backup::copy;
use crate::backup::{repo, S3Settings, Storage, StorageSettings};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, JobKind, JobStatus, ProgressSink, Reporter};
use crate::secrets::SecretKind;

/// What the UI and CLI show of a project's backup storage. Holds no secret.
#[derive(Debug, Clone, Serialize, TS)]
pub struct StorageInfo {
    pub storage: StorageSettings,
    /// Where backups are written, in words.
    pub location: String,
    /// An S3 secret access key is in the keyring for `storage`.
    pub has_secret: bool,
    pub copy_target: Option<S3Settings>,
    pub copy_location: Option<String>,
    pub copy_has_secret: bool,
}

/// What `backup copy` did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CopyReport {
    /// The copy target, in words.
    pub target: String,
    /// Backups copied and verified on the target.
    pub copied: Vec<String>,
    /// Backups the target already held (their manifests authenticate there).
    pub already_there: Vec<String>,
    /// Every backup the target lists afterwards.
    pub target_backups: Vec<String>,
}

impl Steward {
    fn local_backup_dir(&self, name: &str) -> Result<std::path::PathBuf> {
        Ok(self.store.project_dir(name)?.join("backups"))
    }

    /// The storage of a project's backup repository, as configured.
    pub(crate) fn storage(&self, name: &str) -> Result<Box<dyn Storage>> {
        let project = self.store.get(name)?;
        let secret = match &project.storage {
            StorageSettings::Local | StorageSettings::Folder { .. } => None,
            StorageSettings::S3(_) => self.secrets.get(name, SecretKind::S3SecretKey)?,
        };
        project.storage.open(
            name,
            self.local_backup_dir(name)?,
            secret.as_deref().map(|s| s.as_str()),
            self.s3_part_size,
        )
    }

    /// The project's copy target; `invalid_input` when it has none.
    fn copy_storage(&self, name: &str) -> Result<Box<dyn Storage>> {
        let project = self.store.get(name)?;
        let Some(target) = project.copy_target else {
            return Err(Error::invalid_input(format!(
                "Project \"{name}\" has no copy target. Set one with `pgsteward project copy-target {name} --s3-bucket ...`."
            )));
        };
        let secret = self.secrets.get(name, SecretKind::CopyS3SecretKey)?;
        StorageSettings::S3(target)
            .open(
                name,
                self.local_backup_dir(name)?,
                secret.as_deref().map(|s| s.as_str()),
                self.s3_part_size,
            )
            .map_err(|e| e.with_context("the copy target"))
    }

    /// Delete the backups a project keeps in S3 (on removal with its backups).
    pub(crate) fn delete_remote_backups(&self, name: &str) -> Result<()> {
        let project = self.store.get(name)?;
        if project.storage.is_s3() {
            let storage = self.storage(name)?;
            for id in storage.list()? {
                storage.delete_prefix(&id)?;
            }
            storage.delete_prefix(repo::KEYCHECK)?;
        }
        self.secrets.delete(name, SecretKind::S3SecretKey)?;
        self.secrets.delete(name, SecretKind::CopyS3SecretKey)?;
        Ok(())
    }

    pub fn storage_info(&self, name: &str) -> Result<StorageInfo> {
        let project = self.store.get(name)?;
        let location = match &project.storage {
            StorageSettings::Local => self.local_backup_dir(name)?.display().to_string(),
            StorageSettings::Folder { path } => {
                std::path::Path::new(path).join(name).display().to_string()
            }
            StorageSettings::S3(s) => s.describe(name),
        };
        Ok(StorageInfo {
            has_secret: project.storage.is_s3()
                && self.secrets.get(name, SecretKind::S3SecretKey)?.is_some(),
            location,
            copy_location: project.copy_target.as_ref().map(|t| t.describe(name)),
            copy_has_secret: project.copy_target.is_some()
                && self
                    .secrets
                    .get(name, SecretKind::CopyS3SecretKey)?
                    .is_some(),
            copy_target: project.copy_target,
            storage: project.storage,
        })
    }

    /// Open S3 settings with `secret` (or the stored one) and list the folder: the service
    /// must accept the credentials and the bucket must exist.
    fn check_s3(
        &self,
        name: &str,
        s: &S3Settings,
        secret: Option<&str>,
        kind: SecretKind,
    ) -> Result<()> {
        s.validate()?;
        let stored = match secret {
            Some(_) => None,
            None => self.secrets.get(name, kind)?,
        };
        let secret = secret.or(stored.as_deref().map(|s| s.as_str()));
        let storage = StorageSettings::S3(s.clone()).open(
            name,
            self.local_backup_dir(name)?,
            secret,
            self.s3_part_size,
        )?;
        storage.list().map(|_| ())
    }

    /// Choose where the project's backups are written. `secret` is the S3 secret access key
    /// (kept in the keyring; `None` keeps the stored one). With `check`, the S3 service must
    /// accept the credentials before anything is saved. Backups already written elsewhere stay
    /// where they are.
    pub fn set_storage(
        &self,
        name: &str,
        settings: StorageSettings,
        secret: Option<&str>,
        check: bool,
    ) -> Result<StorageInfo> {
        let mut project = self.store.get(name)?;
        let _lock = self.repo_lock(name)?;
        if let StorageSettings::S3(s) = &settings {
            s.validate()?;
            if secret.is_none() && self.secrets.get(name, SecretKind::S3SecretKey)?.is_none() {
                return Err(Error::new(
                    ErrorCode::SecretMissing,
                    "S3 storage needs the secret access key (--s3-secret-stdin).",
                ));
            }
            if check {
                self.check_s3(name, s, secret, SecretKind::S3SecretKey)?;
            }
            if let Some(sec) = secret {
                self.secrets.set(name, SecretKind::S3SecretKey, sec)?;
            }
        } else {
            settings.prepare_folder()?;
            self.secrets.delete(name, SecretKind::S3SecretKey)?;
        }
        project.storage = settings;
        self.store.replace(name, project)?;
        self.storage_info(name)
    }

    /// Set (or with `None`, remove) the S3 storage that `backup copy` copies backups to.
    pub fn set_copy_target(
        &self,
        name: &str,
        target: Option<S3Settings>,
        secret: Option<&str>,
        check: bool,
    ) -> Result<StorageInfo> {
        let mut project = self.store.get(name)?;
        match &target {
            Some(s) => {
                s.validate()?;
                if secret.is_none()
                    && self
                        .secrets
                        .get(name, SecretKind::CopyS3SecretKey)?
                        .is_none()
                {
                    return Err(Error::new(
                        ErrorCode::SecretMissing,
                        "The copy target needs the secret access key (--s3-secret-stdin).",
                    ));
                }
                if check {
                    self.check_s3(name, s, secret, SecretKind::CopyS3SecretKey)
                        .map_err(|e| e.with_context("the copy target"))?;
                }
                if let Some(sec) = secret {
                    self.secrets.set(name, SecretKind::CopyS3SecretKey, sec)?;
                }
            }
            None => self.secrets.delete(name, SecretKind::CopyS3SecretKey)?,
        }
        project.copy_target = target;
        self.store.replace(name, project)?;
        self.storage_info(name)
    }

    /// Copy backups (one, or every one the target lacks) to the project's copy target. Each is
    /// verified on the target before its manifest is written there.
    pub async fn backup_copy(
        &self,
        name: &str,
        backup_id: Option<&str>,
        sink: ProgressSink,
        cancel: CancelToken,
    ) -> Result<CopyReport> {
        self.store.get(name)?;
        let mut rep = Reporter::new(JobKind::Copy, name, sink);
        let trace = rep.trace();
        let prepared = (|| {
            let lock = self.repo_lock(name)?;
            let kek = self.settled_backup_key(name)?;
            let src = self.storage(name)?;
            let dst = self.copy_storage(name)?;
            repo::ensure_keycheck(&src, name, &kek)?;
            let manifests = match backup_id {
                Some(id) => vec![repo::load(&src, &kek, id)?],
                None => repo::list(&src, &kek)?.0,
            };
            Ok::<_, Error>((lock, kek, src, dst, manifests))
        })();
        let (lock, kek, src, dst, manifests) = match prepared {
            Ok(p) => p,
            Err(e) => {
                rep.fail(&e);
                let r = Err(e);
                self.record_job(name, &trace, "copy", backup_id, &r).await;
                return r;
            }
        };
        let name_owned = name.to_string();
        let job = tokio::task::spawn_blocking(move || {
            let mut run = || -> Result<CopyReport> {
                repo::ensure_keycheck(&dst, &name_owned, &kek)
                    .map_err(|e| e.with_context("the copy target"))?;
                let mut report = CopyReport {
                    target: dst.describe(),
                    copied: vec![],
                    already_there: vec![],
                    target_backups: vec![],
                };
                // Oldest first, so an interrupted run leaves the older history complete.
                for m in manifests.iter().rev() {
                    if copy::copy_backup(&src, &dst, &kek, m, &mut rep, &cancel)? {
                        report.copied.push(m.backup_id.clone());
                    } else {
                        report.already_there.push(m.backup_id.clone());
                    }
                }
                report.target_backups = copy::listed_ids(&dst, &kek)?;
                Ok(report)
            };
            let r = run();
            drop(lock);
            (r, rep)
        });
        let (r, mut rep) = job
            .await
            .map_err(|e| Error::internal(format!("copy task: {e}")))?;
        match &r {
            Ok(report) => rep.finish(
                JobStatus::Succeeded,
                Some(format!(
                    "{} backup(s) copied to {}",
                    report.copied.len(),
                    report.target
                )),
            ),
            Err(e) => rep.fail(e),
        }
        self.record_job(name, &trace, "copy", backup_id, &r).await;
        r
    }
}
