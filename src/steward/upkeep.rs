//! Keeping a project's backup repository healthy: verify in tiers, retention and garbage
//! collection, key rotation, and recovery kits. Every flow that writes to the repository holds
//! the project's repository lock, so a backup, a prune and a rotation never interleave (between
//! the GUI and the CLI too).

use std::fs::File;

use fs2::FileExt;
use serde::Serialize;
use ts_rs::TS;
use zeroize::Zeroizing;

use super::Steward;
use crate::backup::checks::CheckLog;
use crate::backup::kit::{self, RecoveryKit};
use crate::backup::retention::{self, Candidate, PruneDecision, RetentionPolicy};
use crate::backup::verify::{self, VerifyReport, VerifyTier};
use crate::backup::{repo, Manifest, Storage};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, JobKind, JobStatus, ProgressSink, Reporter};
use crate::secrets::SecretKind;

/// What a prune did (or would do, on a dry run).
#[derive(Debug, Clone, Serialize, TS)]
pub struct PruneReport {
    pub dry_run: bool,
    pub decisions: Vec<PruneDecision>,
    /// Backups deleted (none on a dry run).
    pub deleted: Vec<String>,
    /// Interrupted backups (objects without a manifest) removed.
    pub incomplete_removed: Vec<String>,
    /// Backups whose manifests could not be read: never deleted automatically.
    pub unreadable: Vec<String>,
}

/// Outcome of a key rotation.
#[derive(Debug, Clone, Serialize, TS)]
pub struct KeyRotation {
    pub old_key_id: String,
    pub new_key_id: String,
    /// Backups whose data key was re-wrapped (their objects are untouched).
    pub rewrapped: usize,
}

/// Outcome of importing a recovery kit.
#[derive(Debug, Clone, Serialize, TS)]
pub struct KitImport {
    pub key_id: String,
    /// False when the keyring already held this very key.
    pub changed: bool,
    /// Backups the imported key opens.
    pub backups_readable: usize,
}

/// Exclusive hold on a project's backup repository; released on drop.
pub(crate) struct RepoLock(#[allow(dead_code)] File);

impl Steward {
    pub(crate) fn repo_lock(&self, name: &str) -> Result<RepoLock> {
        let dir = self.store.project_dir(name)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the project folder", e))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("backup.lock"))
            .map_err(|e| Error::io("locking the backup repository", e))?;
        f.try_lock_exclusive().map_err(|_| {
            Error::new(
                ErrorCode::Busy,
                format!(
                    "Another job (a backup, prune or key rotation of project \"{name}\") is using its backup repository; try again when it ends."
                ),
            )
        })?;
        Ok(RepoLock(f))
    }

    /// Backups of the project that failed in a row since the last one that succeeded.
    pub fn consecutive_backup_failures(&self, name: &str) -> Result<u32> {
        let path = self.store.project_dir(name)?.join("backup-failures");
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("reading the backup failure count", e)),
        }
    }

    /// Count a failed backup, or reset the count after a good one.
    pub(crate) fn note_backup_outcome(&self, name: &str, ok: bool) {
        let Ok(dir) = self.store.project_dir(name) else {
            return;
        };
        let next = if ok {
            0
        } else {
            self.consecutive_backup_failures(name).unwrap_or(0) + 1
        };
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("backup-failures"), next.to_string());
        }
    }

    /// A failed backup counts unless it was cancelled or never started for another job.
    pub(crate) fn note_backup_failure(&self, name: &str, e: &Error) {
        if !matches!(e.code, ErrorCode::Busy | ErrorCode::Cancelled) {
            self.note_backup_outcome(name, false);
        }
    }

    pub(crate) fn check_log(&self, name: &str) -> Result<CheckLog> {
        Ok(CheckLog::new(&self.store.project_dir(name)?))
    }

    /// The project's current backup key, finishing a rotation an earlier run left half done.
    pub(crate) fn settled_backup_key(&self, name: &str) -> Result<Zeroizing<[u8; 32]>> {
        if self.secrets.get(name, SecretKind::BackupKeyNext)?.is_some() {
            let _lock = self.repo_lock(name)?;
            self.rotate_locked(name)?;
        }
        self.secrets.backup_key(name)
    }

    /// Verify one backup, or all of them, at the given tier; each outcome is recorded.
    pub async fn backup_verify(
        &self,
        name: &str,
        backup_id: Option<&str>,
        tier: VerifyTier,
        fraction: f64,
        sink: ProgressSink,
    ) -> Result<Vec<VerifyReport>> {
        self.store.get(name)?;
        let rep = Reporter::new(JobKind::Verify, name, sink);
        let trace = rep.trace();
        let out = self
            .verify_inner(name, backup_id, tier, fraction, rep)
            .await;
        // A damaged backup is a failed job, though the verify itself ran.
        let verdict = match &out {
            Ok(reports) => match reports.iter().find(|r| !r.ok) {
                Some(bad) => Err(Error::new(ErrorCode::BackupCorrupt, bad.message.clone())),
                None => Ok(()),
            },
            Err(e) => Err(e.clone()),
        };
        self.record_job(name, &trace, "verify", backup_id, &verdict)
            .await;
        out
    }

    async fn verify_inner(
        &self,
        name: &str,
        backup_id: Option<&str>,
        tier: VerifyTier,
        fraction: f64,
        mut rep: Reporter,
    ) -> Result<Vec<VerifyReport>> {
        let prepared = (|| {
            let kek = self.settled_backup_key(name)?;
            let storage = self.storage(name)?;
            let log = self.check_log(name)?;
            let manifests = match backup_id {
                Some(id) => vec![repo::load(&storage, &kek, id)?],
                None => repo::list(&storage, &kek)?.0,
            };
            Ok::<_, Error>((kek, storage, log, manifests))
        })();
        let (kek, storage, log, manifests) = match prepared {
            Ok(p) => p,
            Err(e) => {
                rep.fail(&e);
                return Err(e);
            }
        };
        let job = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for m in &manifests {
                match verify::verify(&storage, &kek, m, tier, fraction, &mut rep) {
                    Ok(r) => {
                        log.record(&r)?;
                        out.push(r);
                    }
                    Err(e) => {
                        rep.fail(&e);
                        return Err(e);
                    }
                }
            }
            let bad = out.iter().filter(|r| !r.ok).count();
            rep.finish(
                if bad == 0 {
                    JobStatus::Succeeded
                } else {
                    JobStatus::Failed
                },
                Some(format!("{} verified, {bad} damaged", out.len() - bad)),
            );
            Ok(out)
        });
        job.await
            .map_err(|e| Error::internal(format!("verify task: {e}")))?
    }

    /// Apply a retention policy (or show what it would do with `dry_run`), and remove
    /// interrupted backups.
    pub fn backup_prune(
        &self,
        name: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<PruneReport> {
        policy.check()?;
        self.store.get(name)?;
        let kek = self.settled_backup_key(name)?;
        let _lock = self.repo_lock(name)?;
        let storage = self.storage(name)?;
        let log = self.check_log(name)?;
        let (ok, bad) = repo::list(&storage, &kek)?;
        let mut candidates = Vec::new();
        for m in &ok {
            candidates.push(Candidate {
                id: m.backup_id.clone(),
                created_at: chrono::DateTime::parse_from_rfc3339(&m.created_at)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        Error::new(
                            ErrorCode::BackupCorrupt,
                            format!("Backup {} has an unreadable date", m.backup_id),
                        )
                    })?,
                verified: log.fully_verified(&m.backup_id)?,
            });
        }
        let decisions = retention::plan(&candidates, policy, chrono::Utc::now());
        let incomplete = repo::incomplete(&storage)?;
        let mut deleted = Vec::new();
        let mut incomplete_removed = Vec::new();
        if !dry_run {
            for d in decisions.iter().filter(|d| d.delete) {
                // The manifest goes first: from then on the backup is not listed anywhere.
                storage.delete_prefix(&d.backup_id)?;
                deleted.push(d.backup_id.clone());
            }
            for id in &incomplete {
                storage.delete_prefix(id)?;
                incomplete_removed.push(id.clone());
            }
            log.forget(&deleted)?;
        }
        Ok(PruneReport {
            dry_run,
            decisions,
            deleted,
            incomplete_removed: if dry_run {
                incomplete
            } else {
                incomplete_removed
            },
            unreadable: bad.into_iter().map(|(id, _)| id).collect(),
        })
    }

    /// Replace the project's backup key: every backup's data key is re-wrapped under a new
    /// key; no backup data is re-encrypted. Safe to interrupt: the next use finishes it.
    pub fn key_rotate(&self, name: &str) -> Result<KeyRotation> {
        self.store.get(name)?;
        let _lock = self.repo_lock(name)?;
        if self.secrets.get(name, SecretKind::BackupKeyNext)?.is_none() {
            let storage = self.storage(name)?;
            let old = self.secrets.backup_key(name)?;
            repo::ensure_keycheck(&storage, name, &old)?;
            let new = crate::backup::crypto::random_key();
            self.secrets
                .set_key(name, SecretKind::BackupKeyNext, &new)?;
        }
        self.rotate_locked(name)
    }

    /// Move every manifest from the current key to the pending one, then swap them.
    fn rotate_locked(&self, name: &str) -> Result<KeyRotation> {
        use crate::backup::crypto::key_id;
        let storage = self.storage(name)?;
        let old = self.secrets.backup_key(name)?;
        let new = self
            .secrets
            .key(name, SecretKind::BackupKeyNext)?
            .ok_or_else(|| Error::internal("no rotation is pending"))?;
        // The repository must belong to one of the two keys.
        if repo::ensure_keycheck(&storage, name, &new).is_err() {
            repo::ensure_keycheck(&storage, name, &old)?;
        }
        let mut rewrapped = 0;
        for id in storage.list()? {
            let Some(bytes) = storage.get(&format!("{id}/{}", repo::MANIFEST))? else {
                continue;
            };
            match Manifest::decode(&bytes, &old, &id) {
                Ok(m) => {
                    let m2 = m.rewrap(&old, &new)?;
                    storage.put_atomic(&format!("{id}/{}", repo::MANIFEST), &m2.encode(&new))?;
                    rewrapped += 1;
                }
                Err(e) if e.code == ErrorCode::WrongKey => {
                    // Already moved by an interrupted run, or not ours: it must open with the new key.
                    Manifest::decode(&bytes, &new, &id)?;
                }
                Err(e) => {
                    tracing::warn!(backup = %id, error = %e, "manifest left as it is during key rotation");
                }
            }
        }
        repo::write_keycheck(&storage, name, &new)?;
        self.secrets.set_key(name, SecretKind::BackupKey, &new)?;
        self.secrets.delete(name, SecretKind::BackupKeyNext)?;
        Ok(KeyRotation {
            old_key_id: key_id(&old),
            new_key_id: key_id(&new),
            rewrapped,
        })
    }

    /// The project's backup key sealed under `passphrase`, to keep somewhere safe.
    pub fn key_export_kit(&self, name: &str, passphrase: &str) -> Result<RecoveryKit> {
        self.store.get(name)?;
        let kek = self.settled_backup_key(name)?;
        let kit = kit::export(&kek, name, name, passphrase)?;
        // Remember which key has a kit, so the app can stop asking (a rotation asks again).
        let dir = self.store.project_dir(name)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the project folder", e))?;
        std::fs::write(dir.join("kit-exported"), &kit.key_id)
            .map_err(|e| Error::io("noting the exported kit", e))?;
        Ok(kit)
    }

    /// True when a recovery kit was exported for the project's current backup key.
    pub fn key_kit_exported(&self, name: &str) -> Result<bool> {
        self.store.get(name)?;
        let Some(kek) = self.secrets.key(name, SecretKind::BackupKey)? else {
            return Ok(false);
        };
        let noted = std::fs::read_to_string(self.store.project_dir(name)?.join("kit-exported"))
            .unwrap_or_default();
        Ok(noted.trim() == crate::backup::crypto::key_id(&kek))
    }

    /// Put the key from a recovery kit into the keyring. Replacing a different key that still
    /// opens this project's repository needs `replace`.
    pub fn key_import_kit(
        &self,
        name: &str,
        kit_file: &RecoveryKit,
        passphrase: &str,
        replace: bool,
    ) -> Result<KitImport> {
        self.store.get(name)?;
        if kit_file.repository != name {
            return Err(Error::invalid_input(format!(
                "This recovery kit belongs to project \"{}\"; its backups are bound to that name. Import it into a project of that name.",
                kit_file.repository
            )));
        }
        let key = kit::open(kit_file, passphrase)?;
        let _lock = self.repo_lock(name)?;
        let storage = self.storage(name)?;
        let current = self.secrets.key(name, SecretKind::BackupKey)?;
        let changed = match &current {
            Some(cur) if **cur == *key => false,
            Some(cur) => {
                let current_opens_repo = storage.get(repo::KEYCHECK)?.is_some()
                    && repo::ensure_keycheck(&storage, name, cur).is_ok();
                if current_opens_repo && !replace {
                    return Err(Error::new(
                        ErrorCode::ConfirmationRequired,
                        format!(
                            "Project \"{name}\" already has a backup key that opens its repository (key {}). \
                             Importing would replace it; confirm with --replace.",
                            crate::backup::crypto::key_id(cur)
                        ),
                    ));
                }
                true
            }
            None => true,
        };
        if storage.get(repo::KEYCHECK)?.is_some() {
            repo::ensure_keycheck(&storage, name, &key)?;
        }
        if changed {
            self.secrets.set_key(name, SecretKind::BackupKey, &key)?;
            self.secrets.delete(name, SecretKind::BackupKeyNext)?;
        }
        let backups_readable = repo::list(&storage, &key)?.0.len();
        Ok(KitImport {
            key_id: kit_file.key_id.clone(),
            changed,
            backups_readable,
        })
    }

    /// Write a backup's decrypted pg_dump archive to a new file (mode 0600), after a full
    /// verification; on any failure the file is removed. Stock `pg_restore` reads the result.
    /// A directory-format backup becomes a new folder (mode 0700) that `pg_restore` reads.
    pub async fn backup_export(
        &self,
        name: &str,
        backup_id: &str,
        out: &std::path::Path,
        sink: ProgressSink,
    ) -> Result<u64> {
        use std::os::unix::fs::OpenOptionsExt;
        self.store.get(name)?;
        let kek = self.settled_backup_key(name)?;
        let storage = self.storage(name)?;
        let manifest = repo::load(&storage, &kek, backup_id)?;
        if manifest.is_directory() {
            return self
                .export_folder(name, storage, kek, manifest, out, sink)
                .await;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|e| Error::io(&format!("creating {}", out.display()), e))?;
        let path = out.to_path_buf();
        let mut rep = Reporter::new(JobKind::Verify, name, sink);
        let job = tokio::task::spawn_blocking(move || {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let r = crate::backup::logical::verify(&storage, &kek, &manifest, &mut rep)
                .and_then(|()| {
                    crate::backup::logical::export(&storage, &kek, &manifest, &mut w, &mut rep)
                })
                .and_then(|n| {
                    w.into_inner()
                        .map_err(|e| Error::io("writing the exported archive", e.into_error()))?
                        .sync_all()
                        .map_err(|e| Error::io("writing the exported archive", e))?;
                    Ok(n)
                });
            match &r {
                Ok(n) => rep.finish(JobStatus::Succeeded, Some(format!("{n} bytes exported"))),
                Err(e) => rep.fail(e),
            }
            r
        });
        let r = job
            .await
            .map_err(|e| Error::internal(format!("export task: {e}")))?;
        if r.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        r
    }

    async fn export_folder(
        &self,
        name: &str,
        storage: Box<dyn crate::backup::Storage>,
        kek: Zeroizing<[u8; 32]>,
        manifest: crate::backup::Manifest,
        out: &std::path::Path,
        sink: ProgressSink,
    ) -> Result<u64> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(out)
            .map_err(|e| Error::io(&format!("creating {}", out.display()), e))?;
        let path = out.to_path_buf();
        let mut rep = Reporter::new(JobKind::Verify, name, sink);
        let jobs = crate::backup::directory::jobs_from_env()?;
        let job = tokio::task::spawn_blocking(move || {
            // Every object is authenticated and its digests checked as it is written.
            let r = crate::backup::logical::unwrap_dek(&manifest, &kek).and_then(|dek| {
                crate::backup::fetch::fetch(
                    &storage,
                    &manifest,
                    &dek,
                    &path,
                    None,
                    &[],
                    jobs,
                    &mut rep,
                    &CancelToken::default(),
                )
            });
            match &r {
                Ok(n) => rep.finish(JobStatus::Succeeded, Some(format!("{n} bytes exported"))),
                Err(e) => rep.fail(e),
            }
            r
        });
        let r = job
            .await
            .map_err(|e| Error::internal(format!("export task: {e}")))?;
        if r.is_err() {
            let _ = std::fs::remove_dir_all(out);
        }
        r
    }
}
