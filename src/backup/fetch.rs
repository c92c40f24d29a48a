//! Reading a backup's objects back: each one authenticated segment by segment, decompressed,
//! and checked against the manifest (plaintext size and SHA-256, stored size) into a file of a
//! scratch folder for pg_restore, or into nothing for a full verify. A damaged object is
//! `backup_corrupt` and names the object; objects are read N at a time.

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::directory::{dump_bytes, dump_file, is_globals, parallel};
use super::logical::{corrupt, map_object_err, open_plaintext, Plaintext};
use super::pipeline::{Digester, THREADED_MIN};
use super::repo::{Manifest, ObjectEntry, Storage};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

/// Plaintext bytes read at once.
const CHUNK: usize = 256 * 1024;

/// Decrypt, decompress and write one object to `dest` (a new file, mode 0600; `None`: only
/// check it), checking its size and plaintext digest; a damaged object is `backup_corrupt`.
fn fetch_object(
    storage: &dyn Storage,
    manifest: &Manifest,
    dek: &[u8; 32],
    obj: &ObjectEntry,
    dest: Option<&Path>,
    total: &AtomicU64,
    stop: &AtomicBool,
) -> Result<()> {
    let id = &manifest.backup_id;
    let mut dec = open_plaintext(storage, manifest, dek, obj)?;
    let mut out = match dest {
        Some(dest) => Some(BufWriter::with_capacity(
            1 << 20,
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|e| Error::io("writing the fetched backup", e))?,
        )),
        None => None,
    };
    let mut hasher = Digester::new(obj.plaintext_bytes >= THREADED_MIN);
    let mut plain = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorCode::Cancelled,
                "The restore was cancelled.",
            ));
        }
        let n = dec
            .read(&mut buf)
            .map_err(|e| map_object_err(id, &obj.name, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        plain += n as u64;
        if let Some(out) = out.as_mut() {
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("writing the fetched backup", e))?;
        }
        total.fetch_add(n as u64, Ordering::Relaxed);
    }
    check_end(id, obj, &mut dec, plain, hasher)?;
    // No fsync: the scratch folder is read back at once and removed; a crash leaves nothing
    // to trust in it anyway.
    match out {
        Some(out) => out
            .into_inner()
            .map(drop)
            .map_err(|e| Error::io("writing the fetched backup", e.into_error())),
        None => Ok(()),
    }
}

/// The checks once an object was read to its end: nothing left unread (the stored bytes were
/// authenticated segment by segment, so their count is what is left to check), then the
/// plaintext's size and SHA-256 against the manifest.
pub(crate) fn check_end(
    id: &str,
    obj: &ObjectEntry,
    dec: &mut Plaintext,
    plain: u64,
    hasher: Digester,
) -> Result<()> {
    dec.drain_inner()
        .map_err(|e| map_object_err(id, &obj.name, e))?;
    let stored = dec.get_ref().stored_len();
    if plain != obj.plaintext_bytes || hex::encode(hasher.finish()) != obj.plaintext_sha256 {
        return Err(corrupt(
            id,
            format!("{} does not match its recorded digest", obj.name),
        ));
    }
    if stored != obj.stored_bytes {
        return Err(corrupt(
            id,
            format!("{} has trailing or missing bytes", obj.name),
        ));
    }
    Ok(())
}

/// Authenticate, decompress and hash one object without keeping it (full verify).
pub fn check_object(
    storage: &dyn Storage,
    manifest: &Manifest,
    dek: &[u8; 32],
    obj: &ObjectEntry,
    total: &AtomicU64,
    stop: &AtomicBool,
) -> Result<()> {
    fetch_object(storage, manifest, dek, obj, None, total, stop)
}

/// Fetch and authenticate every object of a directory-format backup but those named in
/// `skip`: the dump files into `dump_dir` (created), the globals to `globals` when given (else
/// they are only checked). Returns the plaintext bytes of the dump files.
#[allow(clippy::too_many_arguments)]
pub fn fetch(
    storage: &dyn Storage,
    manifest: &Manifest,
    dek: &[u8; 32],
    dump_dir: &Path,
    globals: Option<&Path>,
    skip: &[&str],
    jobs: usize,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<u64> {
    let id = &manifest.backup_id;
    fs::create_dir_all(dump_dir).map_err(|e| Error::io("creating the restore folder", e))?;
    let mut work: Vec<(&ObjectEntry, Option<PathBuf>)> = Vec::new();
    for obj in &manifest.objects {
        if skip.contains(&obj.name.as_str()) {
            continue;
        }
        if let Some(file) = dump_file(obj) {
            work.push((obj, Some(dump_dir.join(file))));
        } else if is_globals(obj) {
            work.push((obj, globals.map(Path::to_path_buf)));
        } else {
            return Err(corrupt(
                id,
                format!("it holds an unknown object {}", obj.name),
            ));
        }
    }
    if !manifest
        .objects
        .iter()
        .any(|o| dump_file(o) == Some("toc.dat"))
    {
        return Err(corrupt(id, "it has no table of contents (toc.dat)"));
    }
    work.sort_by_key(|w| std::cmp::Reverse(w.0.plaintext_bytes));
    let total = AtomicU64::new(0);
    rep.phase("fetching and authenticating");
    rep.total(Some(work.iter().map(|w| w.0.plaintext_bytes).sum()), false);
    parallel(
        jobs,
        &work,
        |(obj, dest), stop| {
            fetch_object(storage, manifest, dek, obj, dest.as_deref(), &total, stop)
        },
        &total,
        rep,
        cancel,
    )?;
    Ok(dump_bytes(manifest))
}

/// Fetch and authenticate one object into `dest` (a new file).
pub fn fetch_one(
    storage: &dyn Storage,
    manifest: &Manifest,
    dek: &[u8; 32],
    obj: &ObjectEntry,
    dest: &Path,
) -> Result<()> {
    let total = AtomicU64::new(0);
    fetch_object(
        storage,
        manifest,
        dek,
        obj,
        Some(dest),
        &total,
        &AtomicBool::new(false),
    )
}
