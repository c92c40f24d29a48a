//! What pgsteward has found when it checked each backup (verify and restore), kept in the
//! project's folder so lists can say "verified" and retention can spare the newest verified one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::verify::{VerifyReport, VerifyTier};
use crate::error::{Error, Result};

const FILE: &str = "backup-checks.json";
/// Reports kept per backup.
const KEEP: usize = 10;

pub struct CheckLog {
    path: PathBuf,
}

type Reports = BTreeMap<String, Vec<VerifyReport>>;

impl CheckLog {
    pub fn new(project_dir: &Path) -> Self {
        CheckLog {
            path: project_dir.join(FILE),
        }
    }

    fn read(&self) -> Result<Reports> {
        match fs::read(&self.path) {
            Ok(b) => Ok(serde_json::from_slice(&b).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Reports::new()),
            Err(e) => Err(Error::io("reading the backup check log", e)),
        }
    }

    /// Newest reports first, for one backup.
    pub fn reports(&self, backup_id: &str) -> Result<Vec<VerifyReport>> {
        Ok(self.read()?.remove(backup_id).unwrap_or_default())
    }

    /// True when a full verification (or a recovery test) of the backup succeeded at least once.
    pub fn fully_verified(&self, backup_id: &str) -> Result<bool> {
        Ok(self
            .reports(backup_id)?
            .iter()
            .any(|r| r.ok && matches!(r.tier, VerifyTier::Full | VerifyTier::Recovery)))
    }

    /// Record a report (under a lock, so the GUI and the CLI can both write).
    pub fn record(&self, report: &VerifyReport) -> Result<()> {
        self.update(|all| {
            let list = all.entry(report.backup_id.clone()).or_default();
            list.insert(0, report.clone());
            list.truncate(KEEP);
        })
    }

    /// Forget deleted backups.
    pub fn forget(&self, backup_ids: &[String]) -> Result<()> {
        self.update(|all| {
            for id in backup_ids {
                all.remove(id);
            }
        })
    }

    fn update(&self, f: impl FnOnce(&mut Reports)) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("creating the project folder", e))?;
        }
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))
            .map_err(|e| Error::io("locking the backup check log", e))?;
        lock.lock_exclusive()
            .map_err(|e| Error::io("locking the backup check log", e))?;
        let mut all = self.read()?;
        f(&mut all);
        let tmp = self.path.with_extension("tmp");
        let mut file =
            fs::File::create(&tmp).map_err(|e| Error::io("writing the backup check log", e))?;
        file.write_all(&serde_json::to_vec_pretty(&all).expect("serializable"))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io("writing the backup check log", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| Error::io("writing the backup check log", e))
    }
}
