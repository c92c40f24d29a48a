//! Copying backups to a second storage (an off-site copy).
//!
//! Objects go first, each streamed and then read back from the target and compared with the
//! manifest's `stored_bytes` and `stored_sha256`; the manifest goes last, create-only, with its
//! exact bytes (so its MAC still holds), and is read back and authenticated. A copy that fails
//! anywhere is removed from the target, so the target never lists a partial backup.

use std::io::Read;

use sha2::{Digest, Sha256};

use super::repo::{self, Manifest, Storage, MANIFEST};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

const CHUNK: usize = 256 * 1024;

/// Copy one backup (authenticated `manifest`) from `src` to `dst`. Returns false when the
/// target already held it (its manifest authenticates and its objects have the right sizes).
pub fn copy_backup(
    src: &dyn Storage,
    dst: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<bool> {
    let id = &manifest.backup_id;
    let mkey = format!("{id}/{MANIFEST}");
    if let Some(bytes) = dst.get(&mkey)? {
        let there = Manifest::decode(&bytes, kek, id)?;
        for o in &there.objects {
            if dst.size(&format!("{id}/{}", o.name))? != Some(o.stored_bytes) {
                return Err(Error::new(
                    ErrorCode::BackupCorrupt,
                    format!(
                        "Backup {id} on {} has a manifest but its object {} is missing or has the wrong size.",
                        dst.describe(),
                        o.name
                    ),
                ));
            }
        }
        return Ok(false);
    }
    let manifest_bytes = src.get(&mkey)?.ok_or_else(|| {
        Error::new(
            ErrorCode::BackupNotFound,
            format!("Backup {id} has no manifest any more."),
        )
    })?;
    // Leftovers of an interrupted copy are replaced.
    dst.delete_prefix(id)?;
    let result = copy_inner(src, dst, kek, manifest, &manifest_bytes, rep, cancel);
    if result.is_err() {
        let _ = dst.delete_prefix(id);
    }
    result.map(|()| true)
}

fn digest_of(
    reader: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io("reading a backup object", e)),
        };
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

fn copy_inner(
    src: &dyn Storage,
    dst: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    manifest_bytes: &[u8],
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<()> {
    let id = &manifest.backup_id;
    let mut done = 0u64;
    // Every object is written, then read back: twice its stored bytes in all.
    rep.phase(&format!("copying {id} (each object read back and checked)"));
    rep.total(
        Some(2 * manifest.objects.iter().map(|o| o.stored_bytes).sum::<u64>()),
        false,
    );
    for obj in &manifest.objects {
        let key = format!("{id}/{}", obj.name);
        let mut reader = src.open(&key)?;
        let mut writer = dst.create(&key)?;
        let (n, sum) = digest_of(&mut reader, |chunk| {
            if cancel.is_cancelled() {
                return Err(Error::new(ErrorCode::Cancelled, "The copy was cancelled."));
            }
            std::io::Write::write_all(&mut writer, chunk)
                .map_err(|e| Error::from_io("writing the copy", e))?;
            done += chunk.len() as u64;
            rep.bytes(done);
            Ok(())
        })?;
        if n != obj.stored_bytes || sum != obj.stored_sha256 {
            return Err(Error::new(
                ErrorCode::BackupCorrupt,
                format!(
                    "Backup {id}: the source's {} does not match its manifest; nothing was copied.",
                    obj.name
                ),
            ));
        }
        writer.commit()?;
        // What landed on the target is what the manifest describes.
        let (n, sum) = digest_of(&mut *dst.open(&key)?, |chunk| {
            done += chunk.len() as u64;
            rep.bytes(done);
            Ok(())
        })?;
        if n != obj.stored_bytes || sum != obj.stored_sha256 {
            return Err(Error::new(
                ErrorCode::StorageFailed,
                format!(
                    "Backup {id}: {} on {} does not match the original after copying.",
                    obj.name,
                    dst.describe()
                ),
            ));
        }
    }
    let mkey = format!("{id}/{MANIFEST}");
    dst.put_new(&mkey, manifest_bytes)?;
    let back = dst.get(&mkey)?.ok_or_else(|| {
        Error::new(
            ErrorCode::StorageFailed,
            format!(
                "Backup {id}: the manifest is missing on {} right after writing it.",
                dst.describe()
            ),
        )
    })?;
    let copied = Manifest::decode(&back, kek, id)?;
    if copied != *manifest {
        return Err(Error::new(
            ErrorCode::StorageFailed,
            format!(
                "Backup {id}: the manifest on {} differs from the original.",
                dst.describe()
            ),
        ));
    }
    Ok(())
}

/// Ids of the authentic backups on `storage` (what a target lists after a copy).
pub fn listed_ids(storage: &dyn Storage, kek: &[u8; 32]) -> Result<Vec<String>> {
    Ok(repo::list(storage, kek)?
        .0
        .into_iter()
        .map(|m| m.backup_id)
        .collect())
}
