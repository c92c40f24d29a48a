//! Restoring a backup: every object authenticated first (a directory-format dump fetched into a
//! private scratch folder), then pg_restore; the globals applied only when asked.
//!
//! Into the same database a restore is always one transaction with one job. A directory-format
//! backup into a new database runs `pg_restore --jobs=N` (which cannot be one transaction); the
//! caller drops that new database again when the restore fails. There, big tables are not
//! fetched first: [`super::split_copy`] streams their authenticated rows over N COPY sessions
//! of pgsteward's own.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::postgres::PgConnectOptions;

use super::directory::{self, GLOBALS_FILE};
use super::fetch;
use super::logical::{
    collect_stderr, custom_object, map_read_err, open_plaintext, tool_failed, unwrap_dek, verify,
    ToolInvocation,
};
use super::repo::{Manifest, ObjectEntry, Storage};
use super::split_copy;
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

const CHUNK: usize = 256 * 1024;

/// How pg_restore treats the target.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreMode {
    /// Drop existing objects first (restore into the same database). Always one transaction
    /// with one job: pg_restore cannot run parallel jobs in one transaction.
    pub clean: bool,
    /// Skip ownership and grants (a throwaway server without the original roles).
    pub no_owner: bool,
    /// Parallel pg_restore jobs for a directory-format backup into a new database.
    pub jobs: usize,
}

/// A backup whose every object was authenticated, ready to restore. Its scratch folder (the
/// fetched dump of a directory-format backup, the globals) is removed on drop.
pub struct Prepared {
    scratch: super::scratch::Scratch,
    folder: bool,
    globals: bool,
    /// Big tables' data left in the repository, loaded over several sessions at restore.
    streamed: Vec<String>,
}

impl Prepared {
    fn dump_dir(&self) -> PathBuf {
        self.scratch.path().join("dump")
    }
    fn globals_file(&self) -> PathBuf {
        self.scratch.path().join(GLOBALS_FILE)
    }
    /// Whether the backup holds the globals (roles, tablespaces).
    pub fn has_globals(&self) -> bool {
        self.globals
    }
    /// Whether every object was authenticated already (else the big tables are, while they
    /// load).
    pub fn checked_everything(&self) -> bool {
        self.streamed.is_empty()
    }
}

/// Authenticate every object of a backup, fetching a directory-format dump (and the globals)
/// into a private scratch folder under `scratch_parent`. Nothing reaches a server here. Big
/// tables of a directory-format backup restored into a new database with several jobs are left
/// for [`restore`], which authenticates them as it loads them.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    scratch_parent: &Path,
    mode: RestoreMode,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Prepared> {
    let dek = unwrap_dek(manifest, kek)?;
    let scratch = super::scratch::scratch(scratch_parent)?;
    let globals_obj = manifest.objects.iter().find(|o| directory::is_globals(o));
    let folder = manifest.is_directory();
    let streamed = if folder && !mode.clean && mode.jobs > 1 {
        manifest
            .objects
            .iter()
            .filter(|o| split_copy::splittable(o))
            .map(|o| o.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    let prepared = Prepared {
        scratch,
        folder,
        globals: globals_obj.is_some(),
        streamed,
    };
    if prepared.folder {
        let globals = prepared.globals_file();
        let skip: Vec<&str> = prepared.streamed.iter().map(String::as_str).collect();
        fetch::fetch(
            storage,
            manifest,
            &dek,
            &prepared.dump_dir(),
            Some(&globals),
            &skip,
            mode.jobs,
            rep,
            cancel,
        )?;
    } else {
        verify(storage, kek, manifest, rep)?;
        if let Some(g) = globals_obj {
            fetch::fetch_one(storage, manifest, &dek, g, &prepared.globals_file())?;
        }
    }
    Ok(prepared)
}

/// Restore a prepared backup. In one transaction (an error leaves the target as it was),
/// except a directory-format backup with several jobs into a new database, which the caller
/// drops again when this fails. `target` reaches the same database as `restore_tool`, for the
/// sessions that load big tables.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    prepared: &Prepared,
    restore_tool: &ToolInvocation,
    target: &PgConnectOptions,
    mode: RestoreMode,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<u64> {
    if prepared.folder {
        if prepared.checked_everything() {
            directory::restore_folder(&prepared.dump_dir(), restore_tool, mode, rep, cancel)?;
        } else {
            restore_streamed(
                storage,
                kek,
                manifest,
                prepared,
                restore_tool,
                target,
                mode,
                rep,
                cancel,
            )?;
        }
        return Ok(directory::dump_bytes(manifest));
    }
    restore_stream(storage, kek, manifest, restore_tool, mode, rep, cancel)
}

/// Restore a directory-format backup whose big tables were left in the repository: loaded
/// over several sessions of pgsteward's own.
#[allow(clippy::too_many_arguments)]
fn restore_streamed(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    prepared: &Prepared,
    restore_tool: &ToolInvocation,
    target: &PgConnectOptions,
    mode: RestoreMode,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<()> {
    let dek = unwrap_dek(manifest, kek)?;
    let big: Vec<&ObjectEntry> = manifest
        .objects
        .iter()
        .filter(|o| prepared.streamed.contains(&o.name))
        .collect();
    split_copy::SplitRestore {
        storage,
        manifest,
        dek: &dek,
        pg_restore: restore_tool,
        target,
        mode,
    }
    .run(
        &prepared.dump_dir(),
        &prepared.scratch.path().join("split"),
        &big,
        rep,
        cancel,
    )
}

/// Apply the globals of a prepared backup with psql; returns the errors of statements that
/// failed (roles that already exist).
pub fn apply_globals(
    prepared: &Prepared,
    psql: &ToolInvocation,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Vec<String>> {
    if !prepared.globals {
        return Err(Error::invalid_input(
            "This backup has no globals: it was taken without --globals.",
        ));
    }
    directory::apply_globals(psql, &prepared.globals_file(), rep, cancel)
}

/// Stream a verified custom-format backup into pg_restore, in one transaction.
pub(crate) fn restore_stream(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    restore_tool: &ToolInvocation,
    mode: RestoreMode,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<u64> {
    let dek = unwrap_dek(manifest, kek)?;
    let obj = custom_object(manifest)?;
    rep.phase("restoring");
    rep.total(Some(obj.plaintext_bytes), false);
    let mut args: Vec<String> = ["--exit-on-error", "--single-transaction", "--no-password"]
        .map(String::from)
        .to_vec();
    args.push(format!("--dbname={}", restore_tool.conninfo));
    if mode.clean {
        args.extend(["--clean".into(), "--if-exists".into()]);
    }
    if mode.no_owner {
        args.extend(["--no-owner".into(), "--no-privileges".into()]);
    }
    rep.command(&directory::render(&restore_tool.program, &args));
    let mut cmd = restore_tool.command();
    cmd.args(&args).stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            ErrorCode::ToolFailed,
            format!("could not start {}: {e}", restore_tool.program.display()),
        )
    })?;
    let stderr = collect_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("stdin piped");
    let mut dec = open_plaintext(storage, manifest, &dek, obj)?;
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let pump: Result<()> = (|| loop {
        if cancel.is_cancelled() {
            return Err(Error::new(
                ErrorCode::Cancelled,
                "The restore was cancelled; the transaction was rolled back.",
            ));
        }
        let n = dec
            .read(&mut buf)
            .map_err(|e| map_read_err(&manifest.backup_id, e))?;
        if n == 0 {
            return Ok(());
        }
        total += n as u64;
        if let Err(e) = stdin.write_all(&buf[..n]) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(()); // pg_restore stopped early; its exit status says why
            }
            return Err(Error::io("feeding pg_restore", e));
        }
        rep.bytes(total);
    })();
    if pump.is_err() {
        // Kill before closing stdin so pg_restore never commits a partial restore.
        let _ = child.kill();
    }
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for pg_restore", e))?;
    let err_text = stderr.join().unwrap_or_default();
    pump?;
    if !status.success() {
        return Err(tool_failed("pg_restore", &err_text));
    }
    rep.stderr("pg_restore", &err_text);
    Ok(total)
}
