//! The backup repository of one project: storage, manifests, listing.
//!
//! Layout under the project's storage prefix: `<backup-id>/dump/<file>.zst.sealed` (one object
//! per file of a directory-format dump; format 1 had one `dump.zst.sealed`) and
//! `<backup-id>/manifest.json` (written last, atomically and create-only: the commit). A backup
//! whose manifest is missing was interrupted and is never listed as restorable. Storage is a
//! local folder ([`LocalStorage`]) or an S3 bucket ([`super::s3::S3Storage`]).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::crypto;
pub use super::local::LocalStorage;
use crate::error::{Error, ErrorCode, Result};

pub const MANIFEST: &str = "manifest.json";
/// Object at the repository's root that proves which project key the repository belongs to.
pub const KEYCHECK: &str = "keycheck.json";
/// Version written; every version back to 1 is read.
pub const FORMAT_VERSION: u32 = 2;

/// An object being written. Nothing is visible under its key before [`ObjectWriter::commit`];
/// a writer dropped without it leaves no object (or, on a local folder, one that no manifest
/// names).
pub trait ObjectWriter: Write + Send {
    /// Finish the object: flush, make it durable and visible.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Where a repository keeps its objects: a local folder or an S3 bucket.
pub trait Storage: Send + Sync {
    /// Start writing a (possibly large) object; it is streamed, never held whole in memory.
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>>;
    /// Write a small object so that readers see all of it or none of it (replacing it).
    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Write a small object atomically only if it does not exist yet; an existing one is left
    /// alone and the call fails with `storage_failed`. Manifests are committed this way.
    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Top-level names (backup ids).
    fn list(&self) -> Result<Vec<String>>;
    fn delete_prefix(&self, prefix: &str) -> Result<()>;
    /// Size of an object, `None` when it does not exist.
    fn size(&self, key: &str) -> Result<Option<u64>>;
    /// `len` bytes of an object from `offset` (fewer at its end).
    fn read_at(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Human description of where things are.
    fn describe(&self) -> String;
}

impl<T: Storage + ?Sized> Storage for Box<T> {
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        (**self).create(key)
    }
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        (**self).open(key)
    }
    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()> {
        (**self).put_atomic(key, bytes)
    }
    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<()> {
        (**self).put_new(key, bytes)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn list(&self) -> Result<Vec<String>> {
        (**self).list()
    }
    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        (**self).delete_prefix(prefix)
    }
    fn size(&self, key: &str) -> Result<Option<u64>> {
        (**self).size(key)
    }
    fn read_at(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        (**self).read_at(key, offset, len)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// One stored object of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectEntry {
    pub name: String,
    /// What the plaintext is: a pg_dump custom-format archive.
    pub content: String,
    pub codec: String,
    pub plaintext_bytes: u64,
    pub plaintext_sha256: String,
    pub stored_bytes: u64,
    pub stored_sha256: String,
    pub segment_size: u32,
}

/// Everything needed to check and restore a backup. Authenticated by the project key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub backup_id: String,
    pub repository: String,
    pub project: String,
    pub database: String,
    pub created_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub server_version: String,
    pub server_version_num: i32,
    pub dump_tool_version: String,
    pub tool_version: String,
    /// Identifier of the key-encryption key that wrapped the data key.
    pub kek_id: String,
    /// The backup's data key, wrapped by the project key (base64).
    pub wrapped_key: String,
    pub objects: Vec<ObjectEntry>,
    /// Row counts and checksums of the tables, read in the snapshot that was dumped.
    #[serde(default)]
    pub tables: Vec<super::facts::TableFact>,
    /// pg_dump's output format: "directory" (one object per file) or "custom" (one stream;
    /// every format-1 backup).
    #[serde(default = "custom_format")]
    pub dump_format: String,
    /// Codec of the dump's objects: zstd, gzip or none.
    #[serde(default = "zstd_codec")]
    pub compression: String,
    /// Parallel pg_dump jobs.
    #[serde(default = "one_job")]
    pub jobs: u32,
    /// The commands run to take the backup (passwords never appear in them).
    #[serde(default)]
    pub commands: Vec<String>,
}

fn custom_format() -> String {
    "custom".into()
}
fn zstd_codec() -> String {
    "zstd".into()
}
fn one_job() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
struct ManifestFile {
    /// The manifest's JSON text, exactly as authenticated.
    body: String,
    mac: String,
}

/// What lists show of a backup.
#[derive(Debug, Clone, Serialize, TS)]
pub struct BackupSummary {
    pub id: String,
    pub project: String,
    pub database: String,
    pub created_at: String,
    pub finished_at: String,
    pub server_version: String,
    #[ts(type = "number")]
    pub plaintext_bytes: u64,
    #[ts(type = "number")]
    pub stored_bytes: u64,
    #[ts(type = "number")]
    pub duration_ms: u64,
    /// The latest verification of this backup (a restore counts as a full one), if any.
    pub last_check: Option<super::verify::VerifyReport>,
}

impl Manifest {
    /// A directory-format dump stored file by file.
    pub fn is_directory(&self) -> bool {
        self.dump_format == "directory"
    }

    pub fn summary(&self) -> BackupSummary {
        BackupSummary {
            id: self.backup_id.clone(),
            project: self.project.clone(),
            database: self.database.clone(),
            created_at: self.created_at.clone(),
            finished_at: self.finished_at.clone(),
            server_version: self.server_version.clone(),
            plaintext_bytes: self.objects.iter().map(|o| o.plaintext_bytes).sum(),
            stored_bytes: self.objects.iter().map(|o| o.stored_bytes).sum(),
            duration_ms: self.duration_ms,
            last_check: None,
        }
    }

    pub fn wrap_aad(&self) -> Vec<u8> {
        format!(
            "pgsteward/v1/data-key\0{}\0{}",
            self.repository, self.backup_id
        )
        .into_bytes()
    }

    pub fn encode(&self, kek: &[u8; 32]) -> Vec<u8> {
        let body = serde_json::to_string_pretty(self).expect("serializable");
        let mac = crypto::manifest_mac(kek, body.as_bytes());
        serde_json::to_vec_pretty(&ManifestFile { body, mac }).expect("serializable")
    }

    /// The same manifest with its data key wrapped by `new_kek` instead of `old_kek`; the backup's
    /// objects are untouched (they are sealed with the data key, which does not change).
    pub fn rewrap(&self, old_kek: &[u8; 32], new_kek: &[u8; 32]) -> Result<Manifest> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let wrapped = b64.decode(&self.wrapped_key).map_err(|_| {
            Error::new(
                ErrorCode::BackupCorrupt,
                format!(
                    "Backup {}: the wrapped data key is not readable",
                    self.backup_id
                ),
            )
        })?;
        let dek = crypto::unwrap_key(old_kek, &wrapped, &self.wrap_aad())?;
        let mut m = self.clone();
        m.kek_id = crypto::key_id(new_kek);
        m.wrapped_key = b64.encode(crypto::wrap_key(new_kek, &dek, &m.wrap_aad()));
        Ok(m)
    }

    /// Parse and authenticate a manifest. A manifest made with another key is `wrong_key`;
    /// one that fails its MAC with the right key is `backup_corrupt`.
    pub fn decode(bytes: &[u8], kek: &[u8; 32], expected_id: &str) -> Result<Manifest> {
        let corrupt = |why: &str| {
            Error::new(
                ErrorCode::BackupCorrupt,
                format!("Backup {expected_id}: {why}"),
            )
        };
        let file: ManifestFile =
            serde_json::from_slice(bytes).map_err(|_| corrupt("the manifest is not readable"))?;
        let m: Manifest = serde_json::from_str(&file.body)
            .map_err(|_| corrupt("the manifest is not readable"))?;
        if m.kek_id != crypto::key_id(kek) {
            return Err(Error::new(
                ErrorCode::WrongKey,
                format!(
                    "Backup {expected_id} was made with another backup key (key id {}); the key in this project's keyring has id {}. \
                     Restore the right key (recovery kit) into the keyring to read it.",
                    m.kek_id,
                    crypto::key_id(kek)
                ),
            ));
        }
        if !crypto::manifest_mac_ok(kek, file.body.as_bytes(), &file.mac) {
            return Err(corrupt(
                "the manifest fails authentication (it was altered)",
            ));
        }
        if m.backup_id != expected_id {
            return Err(corrupt("the manifest belongs to another backup"));
        }
        if !(1..=FORMAT_VERSION).contains(&m.format)
            || !matches!(m.dump_format.as_str(), "custom" | "directory")
        {
            return Err(corrupt(&format!(
                "format version {} is not supported",
                m.format
            )));
        }
        Ok(m)
    }
}

/// Authentic manifests, and the ids of backups whose manifests failed with why.
pub type Listing = (Vec<Manifest>, Vec<(String, Error)>);

/// Backups of one project whose manifests are present and authentic, newest first. Backups
/// with damaged manifests are reported in the second list.
pub fn list(storage: &dyn Storage, kek: &[u8; 32]) -> Result<Listing> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for id in storage.list()? {
        match storage.get(&format!("{id}/{MANIFEST}"))? {
            None => continue, // interrupted or in progress: not a backup
            Some(bytes) => match Manifest::decode(&bytes, kek, &id) {
                Ok(m) => ok.push(m),
                Err(e) => bad.push((id, e)),
            },
        }
    }
    ok.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.backup_id.cmp(&a.backup_id))
    });
    Ok((ok, bad))
}

/// Ids of backups that have objects but no manifest: interrupted, or still being written.
pub fn incomplete(storage: &dyn Storage) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in storage.list()? {
        if storage.get(&format!("{id}/{MANIFEST}"))?.is_none() {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}

/// Read and authenticate one backup's manifest; `backup_not_found` when it has none.
pub fn load(storage: &dyn Storage, kek: &[u8; 32], backup_id: &str) -> Result<Manifest> {
    let not_found = || {
        Error::new(
            ErrorCode::BackupNotFound,
            format!("There is no backup {backup_id}."),
        )
    };
    if backup_id.is_empty() || backup_id.contains('/') || backup_id.starts_with('.') {
        return Err(not_found());
    }
    let bytes = storage
        .get(&format!("{backup_id}/{MANIFEST}"))?
        .ok_or_else(not_found)?;
    Manifest::decode(&bytes, kek, backup_id)
}

/// The key-check record: the key id and a MAC under the project key. Every backup and rotation
/// checks it before writing a byte, so a project whose keyring lost its key (and made a fresh
/// one) refuses to mix backups under two keys instead of quietly starting a second family.
#[derive(Serialize, Deserialize)]
struct KeyCheck {
    repository: String,
    kek_id: String,
    mac: String,
}

fn keycheck_body(repository: &str, kek_id: &str) -> String {
    format!("pgsteward key check v1\0{repository}\0{kek_id}")
}

fn keycheck_record(repository: &str, kek: &[u8; 32]) -> Vec<u8> {
    let kek_id = crypto::key_id(kek);
    let rec = KeyCheck {
        repository: repository.to_string(),
        mac: crypto::manifest_mac(kek, keycheck_body(repository, &kek_id).as_bytes()),
        kek_id,
    };
    serde_json::to_vec_pretty(&rec).expect("serializable")
}

/// Replace the key-check record with one for `kek` (the end of a rotation).
pub fn write_keycheck(storage: &dyn Storage, repository: &str, kek: &[u8; 32]) -> Result<()> {
    storage.put_atomic(KEYCHECK, &keycheck_record(repository, kek))
}

/// Check that `kek` opens the repository's key-check record; write the record when the
/// repository has none yet. `wrong_key` otherwise, naming both key ids.
pub fn ensure_keycheck(storage: &dyn Storage, repository: &str, kek: &[u8; 32]) -> Result<()> {
    let Some(bytes) = storage.get(KEYCHECK)? else {
        let rec = keycheck_record(repository, kek);
        return match storage.put_new(KEYCHECK, &rec) {
            // Another writer made it first: check that one instead.
            Err(e) if storage.get(KEYCHECK)?.is_some() => {
                tracing::debug!(error = %e, "key-check record appeared meanwhile");
                ensure_keycheck(storage, repository, kek)
            }
            other => other,
        };
    };
    let rec: KeyCheck = serde_json::from_slice(&bytes).map_err(|_| {
        Error::new(
            ErrorCode::BackupCorrupt,
            "The repository's key-check record is not readable.",
        )
    })?;
    let id = crypto::key_id(kek);
    if rec.kek_id != id {
        return Err(Error::new(
            ErrorCode::WrongKey,
            format!(
                "This repository belongs to backup key {} but the keyring holds key {id}. Nothing was written. \
                 Import the project's recovery kit (pgsteward key import-kit) to restore the right key.",
                rec.kek_id
            ),
        ));
    }
    if rec.repository != repository
        || !crypto::manifest_mac_ok(kek, keycheck_body(repository, &id).as_bytes(), &rec.mac)
    {
        return Err(Error::new(
            ErrorCode::BackupCorrupt,
            "The repository's key-check record fails authentication (it was altered or copied from another repository).",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_put_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.put_new("b1/manifest.json", b"one").unwrap();
        let err = s.put_new("b1/manifest.json", b"two").unwrap_err();
        assert_eq!(err.code, ErrorCode::StorageFailed);
        assert_eq!(s.get("b1/manifest.json").unwrap().unwrap(), b"one");
        // No temporary files are left next to it.
        assert_eq!(std::fs::read_dir(dir.path().join("b1")).unwrap().count(), 1);
    }

    #[test]
    fn local_objects_appear_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        let mut w = s.create("b1/obj").unwrap();
        w.write_all(b"hello").unwrap();
        w.commit().unwrap();
        assert_eq!(s.size("b1/obj").unwrap(), Some(5));
        assert_eq!(s.read_at("b1/obj", 1, 3).unwrap(), b"ell");
        assert_eq!(s.list().unwrap(), vec!["b1".to_string()]);
    }
}
