//! A backup repository in a folder on the local filesystem (the default storage): one file per
//! object under the folder, written through a buffer and synced to disk on commit; keys are
//! checked so that none leaves the folder.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::repo::{ObjectWriter, Storage};
use crate::error::{Error, ErrorCode, Result};

/// A file being written on local storage.
struct LocalWriter(std::io::BufWriter<fs::File>);

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn commit(self: Box<Self>) -> Result<()> {
        let f = self
            .0
            .into_inner()
            .map_err(|e| Error::io("writing a backup object", e.into_error()))?;
        f.sync_all()
            .map_err(|e| Error::io("writing a backup object", e))
    }
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
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let p = self.path(key)?;
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating the backup folder", e))?;
        }
        let f = fs::File::create(&p).map_err(|e| Error::io("creating a backup object", e))?;
        Ok(Box::new(LocalWriter(std::io::BufWriter::with_capacity(
            1 << 20,
            f,
        ))))
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
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating the backup folder", e))?;
        }
        let tmp = p.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp).map_err(|e| Error::io("writing the manifest", e))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io("writing the manifest", e))?;
        }
        fs::rename(&tmp, &p).map_err(|e| Error::io("committing the manifest", e))
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(key)?;
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating the backup folder", e))?;
        }
        let tmp = p.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        {
            let mut f = fs::File::create(&tmp).map_err(|e| Error::io("writing the manifest", e))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io("writing the manifest", e))?;
        }
        // A hard link never replaces an existing file: the create-only commit.
        let linked = fs::hard_link(&tmp, &p);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::new(
                ErrorCode::StorageFailed,
                format!(
                    "{key} already exists in {}; it is never overwritten.",
                    self.describe()
                ),
            )),
            Err(e) => Err(Error::io("committing the manifest", e)),
        }
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

    fn size(&self, key: &str) -> Result<Option<u64>> {
        match fs::metadata(self.path(key)?) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading a backup object's size", e)),
        }
    }

    fn read_at(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::io::{Seek, SeekFrom};
        let mut f =
            fs::File::open(self.path(key)?).map_err(|e| Error::io("opening a backup object", e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("reading a backup object", e))?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("reading a backup object", e))?;
        Ok(buf)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
