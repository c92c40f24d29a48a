//! The backup repository of one project: storage, manifests, listing.
//!
//! Layout under the project's storage prefix: `<backup-id>/dump.zst.sealed` (the object) and
//! `<backup-id>/manifest.json` (written last, atomically: the commit). A backup whose manifest
//! is missing was interrupted and is never listed as restorable.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::crypto;
use crate::error::{Error, ErrorCode, Result};

pub const MANIFEST: &str = "manifest.json";
pub const FORMAT_VERSION: u32 = 1;

/// Where a repository keeps its objects. Local folders now; object stores (S3) plug in here.
pub trait Storage: Send + Sync {
    fn create(&self, key: &str) -> Result<Box<dyn Write + Send>>;
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>>;
    /// Write a small object so that readers see all of it or none of it.
    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Top-level names (backup ids).
    fn list(&self) -> Result<Vec<String>>;
    fn delete_prefix(&self, prefix: &str) -> Result<()>;
    /// Human description of where things are.
    fn describe(&self) -> String;
}

/// A folder on the local filesystem.
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            || key.starts_with('/')
        {
            return Err(Error::invalid_input(format!("invalid storage key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Storage for LocalStorage {
    fn create(&self, key: &str) -> Result<Box<dyn Write + Send>> {
        let p = self.path(key)?;
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating the backup folder", e))?;
        }
        let f = fs::File::create(&p).map_err(|e| Error::io("creating a backup object", e))?;
        Ok(Box::new(std::io::BufWriter::with_capacity(1 << 20, f)))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.path(key)?;
        let f = fs::File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorCode::BackupCorrupt,
                    format!("the backup object {key} is missing"),
                )
            } else {
                Error::io("opening a backup object", e)
            }
        })?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
    }

    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(key)?;
        let tmp = p.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp).map_err(|e| Error::io("writing the manifest", e))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io("writing the manifest", e))?;
        }
        fs::rename(&tmp, &p).map_err(|e| Error::io("committing the manifest", e))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading a backup manifest", e)),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io("listing backups", e)),
        };
        Ok(rd
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let p = self.path(prefix)?;
        match fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("deleting a backup", e)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
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
}

impl Manifest {
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
        if m.format != FORMAT_VERSION {
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
