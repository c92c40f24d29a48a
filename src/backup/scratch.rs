//! Private scratch folders for the plaintext of a backup or restore while it runs: mode 0700,
//! removed when the job ends however it ends, and — because a killed process cannot clean
//! up — removed by the next job when the process that made them is gone (each holds a lock
//! for its owner's life).

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// A private scratch folder (0700) holding plaintext while a backup or restore runs, removed
/// when dropped. The process holds an exclusive lock on a file inside it for its whole life,
/// so a folder whose lock can be taken was left by a process that died (kill -9, power loss):
/// [`scratch`] removes those before making a new one, so no plaintext dump outlives its job.
pub struct Scratch {
    dir: tempfile::TempDir,
    _lock: fs::File,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

const SCRATCH_PREFIX: &str = "pgsw-scratch-";
const SCRATCH_LOCK: &str = ".in-use";

/// Remove scratch folders under `parent` that no living process holds. Returns how many.
pub fn remove_abandoned_scratch(parent: &Path) -> usize {
    use fs2::FileExt;
    let Ok(entries) = fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(SCRATCH_PREFIX) || !e.path().is_dir() {
            continue;
        }
        let lock = e.path().join(SCRATCH_LOCK);
        let abandoned = match fs::File::open(&lock) {
            Ok(f) => f.try_lock_exclusive().is_ok(),
            // Made but not locked yet by its owner, or from before locks: only when old.
            Err(_) => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600)),
        };
        if abandoned && fs::remove_dir_all(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// A new private scratch folder under `parent`, after removing abandoned ones.
pub fn scratch(parent: &Path) -> Result<Scratch> {
    use fs2::FileExt;
    fs::create_dir_all(parent).map_err(|e| Error::io("creating the scratch folder", e))?;
    let gone = remove_abandoned_scratch(parent);
    if gone > 0 {
        tracing::info!("removed {gone} scratch folder(s) left by an interrupted job");
    }
    let dir = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(parent)
        .map_err(|e| Error::io("creating the scratch folder", e))?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("creating the scratch folder", e))?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.path().join(SCRATCH_LOCK))
        .map_err(|e| Error::io("creating the scratch folder", e))?;
    lock.try_lock_exclusive()
        .map_err(|e| Error::io("locking the scratch folder", e))?;
    Ok(Scratch { dir, _lock: lock })
}
