//! Parallel logical backups: `pg_dump --format=directory --jobs=N` into a private scratch folder,
//! then every file of it compressed, sealed, hashed and stored as its own object, N at a time;
//! and back: every object fetched and authenticated into a scratch folder ([`super::fetch`])
//! before a single byte reaches the server, then `pg_restore --jobs=N`.
//!
//! The scratch folders are [`super::scratch`]'s: mode 0700, removed on success, failure and
//! cancel alike, and after a crash by the next job. pg_dump and pg_restore run in their own process group, so a cancel stops their
//! worker processes too.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::codec::{Compression, Encoder};
use super::crypto::{self, SealWriter, SEGMENT};
use super::logical::{collect_stderr, tool_failed};
use super::logical::{RestoreMode, ToolInvocation};
use super::pipeline::{SealPipe, THREADED_MIN};
use super::repo::{Manifest, ObjectEntry, Storage};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

/// Objects of the dump folder are named `dump/<file><codec suffix>.sealed`.
pub const DUMP_PREFIX: &str = "dump/";
/// The globals (roles, tablespaces), when taken: `globals.sql<codec suffix>.sealed`.
pub const GLOBALS_FILE: &str = "globals.sql";
pub const MAX_JOBS: usize = 8;
const CHUNK: usize = 256 * 1024;
const TICK: Duration = Duration::from_millis(100);

/// Sleeps for polling a short or long wait: from 2 ms, doubling up to [`TICK`], so quick
/// commands do not each cost a whole tick.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(2))
    }
    fn sleep(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(TICK);
    }
}

/// `BACKUP_JOBS`, else the number of CPUs; at least 1, at most 8.
pub fn jobs_from_env() -> Result<usize> {
    match std::env::var("BACKUP_JOBS") {
        Ok(v) if !v.trim().is_empty() => {
            let n: usize = v.trim().parse().map_err(|_| {
                Error::invalid_input(format!("BACKUP_JOBS: {v:?} is not a number of jobs"))
            })?;
            Ok(n.clamp(1, MAX_JOBS))
        }
        _ => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_JOBS)),
    }
}

/// `BACKUP_GLOBALS=1` (or true, yes, on).
pub fn globals_from_env() -> bool {
    std::env::var("BACKUP_GLOBALS")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// A command line as it was run, for the manifest (passwords only ever go through the
/// environment, so none appear here).
pub fn render(program: &Path, args: &[String]) -> String {
    let quote = |a: &str| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@+".contains(c))
        {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run a client program to completion in its own process group; a cancel kills the group.
/// `tick` runs at least every 100 ms while it works.
pub(crate) fn run_tool(
    tool: &ToolInvocation,
    args: &[String],
    what: &str,
    cancel: &CancelToken,
    mut tick: impl FnMut(),
) -> Result<String> {
    let mut cmd: Command = tool.command();
    cmd.args(args).process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            ErrorCode::ToolFailed,
            format!("could not start {}: {e}", tool.program.display()),
        )
    })?;
    let stderr = collect_stderr(&mut child);
    let mut backoff = Backoff::new();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let text = stderr.join().unwrap_or_default();
                return if status.success() {
                    Ok(text)
                } else {
                    Err(tool_failed(what, &text))
                };
            }
            Ok(None) => {}
            Err(e) => return Err(Error::io(&format!("waiting for {what}"), e)),
        }
        if cancel.is_cancelled() {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            let _ = stderr.join();
            return Err(Error::new(
                ErrorCode::Cancelled,
                format!("{what} was cancelled."),
            ));
        }
        tick();
        backoff.sleep();
    }
}

/// `pg_dump` arguments for a directory-format dump into `out`.
pub fn dump_args(conninfo: &str, out: &Path, jobs: usize, snapshot: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--format=directory".to_string(),
        format!("--jobs={jobs}"),
        // Accepted by every supported pg_dump (before 16 it is the level, from 16 the method).
        "--compress=0".to_string(),
        "--no-password".to_string(),
        "--lock-wait-timeout=30000".to_string(),
        format!("--file={}", out.display()),
    ];
    if let Some(s) = snapshot {
        args.push(format!("--snapshot={s}"));
    }
    args.push(format!("--dbname={conninfo}"));
    args
}

/// The file a dump object holds, from its name; `None` for objects that are not dump files.
pub fn dump_file(obj: &ObjectEntry) -> Option<&str> {
    let c = Compression::from_codec(&obj.codec)?;
    let file = obj
        .name
        .strip_prefix(DUMP_PREFIX)?
        .strip_suffix(".sealed")?
        .strip_suffix(c.suffix())?;
    safe_file_name(file).then_some(file)
}

/// Names pg_dump gives the files of a directory archive (toc.dat, 1234.dat, blob_1.dat, ...).
pub(crate) fn safe_file_name(f: &str) -> bool {
    !f.is_empty()
        && !f.starts_with('.')
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

pub fn is_globals(obj: &ObjectEntry) -> bool {
    Compression::from_codec(&obj.codec)
        .is_some_and(|c| obj.name == format!("{GLOBALS_FILE}{}.sealed", c.suffix()))
}

/// The plaintext bytes of a directory-format backup's dump files (what pg_restore reads).
pub fn dump_bytes(manifest: &Manifest) -> u64 {
    manifest
        .objects
        .iter()
        .filter(|o| dump_file(o).is_some())
        .map(|o| o.plaintext_bytes)
        .sum()
}

/// What to seal and where.
pub struct Sealer<'a> {
    pub storage: &'a dyn Storage,
    pub repository: &'a str,
    pub backup_id: &'a str,
    pub dek: &'a [u8; 32],
    pub compression: Compression,
}

/// One file to store: its path and the object name and content description to give it.
pub struct Upload {
    pub path: PathBuf,
    pub name: String,
    pub content: String,
}

impl Sealer<'_> {
    /// Start object `name`: its storage sink, sealed (on a thread of its own when `threaded`)
    /// and compressed. Write the plaintext to it, then [`Sealer::finish`] it.
    pub fn open(&self, name: &str, threaded: bool) -> Result<Encoder<SealPipe>> {
        let sink = self.storage.create(&format!("{}/{name}", self.backup_id))?;
        let aad = crypto::object_aad(self.repository, self.backup_id, name);
        let sealed = SealPipe::new(
            SealWriter::new(sink, self.dek, aad)
                .map_err(|e| Error::from_io("writing the backup", e))?,
            threaded,
        );
        Encoder::new(self.compression, sealed)
            .map_err(|e| Error::from_io("starting the compression", e))
    }

    /// End an object [`Sealer::open`] started: flush its compression and last segment, commit
    /// it to storage, and describe it for the manifest (`plain` bytes hashed by `hasher`).
    pub fn finish(
        &self,
        enc: Encoder<SealPipe>,
        name: String,
        content: String,
        plain: u64,
        hasher: Sha256,
    ) -> Result<ObjectEntry> {
        let sealed = enc
            .finish()
            .map_err(|e| Error::from_io("finishing the compression", e))?;
        let (sink, stored_bytes, stored_digest) = sealed
            .finish()
            .map_err(|e| Error::from_io("writing the backup", e))?;
        sink.commit()?;
        Ok(ObjectEntry {
            name,
            content,
            codec: self.compression.codec().into(),
            plaintext_bytes: plain,
            plaintext_sha256: hex::encode(hasher.finalize()),
            stored_bytes,
            stored_sha256: hex::encode(stored_digest),
            segment_size: SEGMENT as u32,
        })
    }

    /// Compress, seal and store one file; returns its manifest entry.
    pub fn store(&self, up: &Upload, total: &AtomicU64, stop: &AtomicBool) -> Result<ObjectEntry> {
        let mut file = fs::File::open(&up.path).map_err(|e| Error::io("reading a dump file", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading a dump file", e))?
            .len();
        let mut enc = self.open(&up.name, len >= THREADED_MIN)?;
        let mut hasher = Sha256::new();
        let mut plain = 0u64;
        let mut buf = vec![0u8; CHUNK];
        read_into_object(
            &mut file,
            &mut enc,
            &mut hasher,
            &mut plain,
            total,
            stop,
            &mut buf,
        )?;
        self.finish(enc, up.name.clone(), up.content.clone(), plain, hasher)
    }
}

/// Read `file` up to its current end into an object [`Sealer::open`] started: each chunk is
/// hashed, counted (in `plain` and `total`) and written. A `stop` ends it as cancelled.
pub(crate) fn read_into_object(
    file: &mut fs::File,
    enc: &mut Encoder<SealPipe>,
    hasher: &mut Sha256,
    plain: &mut u64,
    total: &AtomicU64,
    stop: &AtomicBool,
    buf: &mut [u8],
) -> Result<()> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorCode::Cancelled,
                "The backup was cancelled.",
            ));
        }
        let n = match file.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading a dump file", e)),
        };
        hasher.update(&buf[..n]);
        *plain += n as u64;
        enc.write_all(&buf[..n])
            .map_err(|e| Error::from_io("writing the backup", e))?;
        total.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Run `work` on every item with `jobs` threads. The first failure stops the others (a real
/// error wins over the cancellations it caused); a cancel stops them all. Results keep the
/// order of `items`.
pub fn parallel<I: Sync, T: Send>(
    jobs: usize,
    items: &[I],
    work: impl Fn(&I, &AtomicBool) -> Result<T> + Sync,
    progress: &AtomicU64,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    match work(&items[i], &stop) {
                        Ok(t) => done
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((i, t)),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut f = failed
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if f.as_ref()
                                .is_none_or(|old| old.code == ErrorCode::Cancelled)
                            {
                                *f = Some(e);
                            }
                            break;
                        }
                    }
                })
            })
            .collect();
        let mut backoff = Backoff::new();
        while workers.iter().any(|w| !w.is_finished()) {
            if cancel.is_cancelled() {
                stop.store(true, Ordering::Relaxed);
            }
            rep.bytes(progress.load(Ordering::Relaxed));
            backoff.sleep();
        }
    });
    rep.bytes(progress.load(Ordering::Relaxed));
    if let Some(e) = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(Error::new(ErrorCode::Cancelled, "The job was cancelled."));
    }
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

/// `pg_restore`'s options for `mode`, without the folder.
pub(crate) fn restore_args(tool: &ToolInvocation, mode: RestoreMode) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--format=directory".into(),
        "--exit-on-error".into(),
        "--no-password".into(),
        format!("--dbname={}", tool.conninfo),
    ];
    if mode.jobs > 1 && !mode.clean {
        args.push(format!("--jobs={}", mode.jobs.min(MAX_JOBS)));
    } else {
        args.push("--single-transaction".into());
    }
    if mode.clean {
        args.extend(["--clean".into(), "--if-exists".into()]);
    }
    if mode.no_owner {
        args.extend(["--no-owner".into(), "--no-privileges".into()]);
    }
    args
}

/// `pg_restore` of a fetched dump folder. Into the same database (`clean`), or with one job,
/// it runs in one transaction; otherwise with `jobs` parallel jobs (pg_restore cannot combine
/// them with one transaction), into a new database that is dropped again if it fails.
pub fn restore_folder(
    dump_dir: &Path,
    tool: &ToolInvocation,
    mode: RestoreMode,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Vec<String>> {
    let mut args = restore_args(tool, mode);
    args.push(dump_dir.display().to_string());
    rep.phase("restoring");
    let line = render(&tool.program, &args);
    rep.command(&line);
    let err = run_tool(tool, &args, "pg_restore", cancel, || {})?;
    rep.stderr("pg_restore", &err);
    Ok(vec![line])
}

/// Apply a fetched globals script with psql. Statements that fail (a role that already exists)
/// do not stop the others; their errors are returned.
pub fn apply_globals(
    psql: &ToolInvocation,
    file: &Path,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Vec<String>> {
    let args: Vec<String> = vec![
        "--no-psqlrc".into(),
        "--quiet".into(),
        "--no-password".into(),
        "--set=ON_ERROR_STOP=0".into(),
        format!("--file={}", file.display()),
        format!("--dbname={}", psql.conninfo),
    ];
    rep.command(&render(&psql.program, &args));
    let err = run_tool(psql, &args, "psql (globals)", cancel, || {})?;
    rep.stderr("psql", &err);
    Ok(err
        .lines()
        .filter(|l| l.contains("ERROR:"))
        .map(|l| {
            l.split_once("ERROR:")
                .map(|x| x.1)
                .unwrap_or(l)
                .trim()
                .to_string()
        })
        .collect())
}
