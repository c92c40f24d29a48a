//! Logical backups: pg_dump → compression → sealed segments → storage, and back through
//! pg_restore.
//!
//! The stages are separate values chained as writers (source, codec, crypto, storage) so the
//! backup platform can swap any of them. New backups are directory-format dumps taken and stored
//! in parallel (see [`super::directory`]); single-stream custom-format backups (format 1, or
//! `BACKUP_FORMAT=custom`) are still written and read here. Restore authenticates every object
//! before a single byte reaches the server.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::codec::{Compression, Decoder};
use super::crypto::{self, OpenReader};
use super::directory::{self, Sealer, Upload, GLOBALS_FILE};
use super::fetch;
use super::pipeline::{Prefetch, THREADED_MIN};
use super::repo::{Manifest, ObjectEntry, Storage, FORMAT_VERSION, MANIFEST};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

/// The object of a single-stream (custom-format) backup with the default compression.
pub const DUMP_OBJECT: &str = "dump.zst.sealed";
const CHUNK: usize = 256 * 1024;

/// How to run a PostgreSQL client program against the server.
pub struct ToolInvocation {
    pub program: PathBuf,
    /// libpq key=value string without password.
    pub conninfo: String,
    /// Given to the child through its environment only.
    pub password: Option<Zeroizing<String>>,
}

impl ToolInvocation {
    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.env_remove("PGPASSWORD");
        if let Some(p) = &self.password {
            c.env("PGPASSWORD", p.as_str());
        }
        c.current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

/// What a backup is of, and where it goes.
pub struct BackupPlan<'a> {
    pub storage: &'a dyn Storage,
    pub kek: &'a [u8; 32],
    pub repository: String,
    pub project: String,
    pub database: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub dump: ToolInvocation,
    /// Dump this exported snapshot (`pg_export_snapshot()`), so facts read in it match.
    pub snapshot: Option<String>,
    pub tables: Vec<super::facts::TableFact>,
    /// The facts, when they are still being read (in the snapshot, while pg_dump runs): they
    /// arrive here before the manifest is written, and a failure to read them fails the backup.
    pub tables_later: Option<std::sync::mpsc::Receiver<Result<Vec<super::facts::TableFact>>>>,
    pub options: DumpOptions,
    /// Where the private scratch folder is made.
    pub scratch_parent: PathBuf,
    /// `pg_dumpall` for the globals, when they are to be kept.
    pub globals: Option<GlobalsDump>,
    /// Heap and TOAST bytes of the tables to dump: what the dump phase's progress is measured
    /// against (an estimate: pg_dump's output is text, not pages).
    pub dump_estimate: Option<u64>,
}

/// How a backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    /// pg_dump directory format, stored file by file (else one custom-format stream).
    pub directory: bool,
    pub jobs: usize,
    pub compression: Compression,
}

impl DumpOptions {
    /// From `BACKUP_JOBS`, `BACKUP_COMPRESSION` and `BACKUP_FORMAT` (directory, or custom).
    pub fn from_env() -> crate::error::Result<DumpOptions> {
        let directory = match std::env::var("BACKUP_FORMAT").as_deref().map(str::trim) {
            Err(_) | Ok("") | Ok("directory") => true,
            Ok("custom") => false,
            Ok(other) => {
                return Err(Error::invalid_input(format!(
                    "BACKUP_FORMAT: unknown format {other:?}: use directory or custom"
                )))
            }
        };
        Ok(DumpOptions {
            directory,
            jobs: directory::jobs_from_env()?,
            compression: Compression::from_env()?,
        })
    }
}

/// `pg_dumpall --globals-only`: roles (without passwords when `no_role_passwords`) and
/// tablespaces.
pub struct GlobalsDump {
    pub tool: ToolInvocation,
    pub no_role_passwords: bool,
}

pub(crate) fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    })
}

pub(crate) fn tool_failed(what: &str, stderr: &str) -> Error {
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(6)
        .collect();
    Error::new(
        ErrorCode::ToolFailed,
        format!(
            "{what} failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ),
    )
}

fn version_line(program: &PathBuf) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Take a logical backup. On any failure the partial objects are deleted and no manifest exists.
pub fn create(plan: BackupPlan<'_>, rep: &mut Reporter, cancel: &CancelToken) -> Result<Manifest> {
    let started_at = chrono::Utc::now();
    let backup_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let result = create_inner(&plan, &backup_id, started_at, rep, cancel);
    if result.is_err() {
        let _ = plan.storage.delete_prefix(&backup_id);
    }
    result
}

fn create_inner(
    plan: &BackupPlan<'_>,
    backup_id: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<Manifest> {
    let dek = crypto::random_key();
    let mut manifest = Manifest {
        format: FORMAT_VERSION,
        backup_id: backup_id.to_string(),
        repository: plan.repository.clone(),
        project: plan.project.clone(),
        database: plan.database.clone(),
        created_at: started_at.to_rfc3339(),
        finished_at: String::new(),
        duration_ms: 0,
        server_version: plan.server_version.clone(),
        server_version_num: plan.server_version_num,
        dump_tool_version: version_line(&plan.dump.program),
        tool_version: format!("pgsteward {}", env!("CARGO_PKG_VERSION")),
        kek_id: crypto::key_id(plan.kek),
        wrapped_key: String::new(),
        objects: vec![],
        tables: plan.tables.clone(),
        dump_format: if plan.options.directory {
            "directory".into()
        } else {
            "custom".into()
        },
        compression: plan.options.compression.codec().into(),
        jobs: if plan.options.directory {
            plan.options.jobs as u32
        } else {
            1
        },
        commands: vec![],
    };
    manifest.wrapped_key = base64::engine::general_purpose::STANDARD.encode(crypto::wrap_key(
        plan.kek,
        &dek,
        &manifest.wrap_aad(),
    ));

    let scratch = super::scratch::scratch(&plan.scratch_parent)?;
    let sealer = Sealer {
        storage: plan.storage,
        repository: &plan.repository,
        backup_id,
        dek: &dek,
        compression: plan.options.compression,
    };
    rep.phase("dumping");
    rep.total(plan.dump_estimate, true);
    if plan.options.directory {
        let out = scratch.path().join("dump");
        let args = directory::dump_args(
            &plan.dump.conninfo,
            &out,
            plan.options.jobs,
            plan.snapshot.as_deref(),
        );
        let line = directory::render(&plan.dump.program, &args);
        rep.command(&line);
        manifest.commands.push(line);
        // Stored while pg_dump writes: see super::stream.
        manifest.objects = super::stream::dump_and_store(
            &plan.dump,
            &args,
            &out,
            &sealer,
            plan.options.jobs,
            rep,
            cancel,
        )?;
    } else {
        manifest.objects.push(stream_custom(
            plan,
            &sealer,
            &mut manifest.commands,
            rep,
            cancel,
        )?);
    }
    if let Some(g) = &plan.globals {
        rep.phase("dumping globals");
        let path = scratch.path().join(GLOBALS_FILE);
        let mut args = vec![
            "--globals-only".to_string(),
            "--no-password".to_string(),
            format!("--file={}", path.display()),
        ];
        if g.no_role_passwords {
            args.push("--no-role-passwords".into());
        }
        args.push(format!("--dbname={}", g.tool.conninfo));
        let line = directory::render(&g.tool.program, &args);
        rep.command(&line);
        manifest.commands.push(line);
        let err = directory::run_tool(&g.tool, &args, "pg_dumpall", cancel, || {})?;
        rep.stderr("pg_dumpall", &err);
        let up = Upload {
            path,
            name: format!("{GLOBALS_FILE}{}.sealed", plan.options.compression.suffix()),
            content: "pg_dumpall --globals-only script".into(),
        };
        let total = std::sync::atomic::AtomicU64::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        manifest.objects.push(sealer.store(&up, &total, &stop)?);
    }
    drop(scratch);
    if let Some(rx) = &plan.tables_later {
        manifest.tables = rx
            .recv()
            .map_err(|_| Error::internal("the table facts were never read"))??;
    }

    let finished = chrono::Utc::now();
    manifest.finished_at = finished.to_rfc3339();
    manifest.duration_ms = (finished - started_at).num_milliseconds().max(0) as u64;
    // The commit: only now does the backup exist. Create-only: a manifest is never replaced.
    plan.storage.put_new(
        &format!("{backup_id}/{MANIFEST}"),
        &manifest.encode(plan.kek),
    )?;
    Ok(manifest)
}

/// One `pg_dump --format=custom` stream, compressed and sealed as it is produced.
fn stream_custom(
    plan: &BackupPlan<'_>,
    sealer: &Sealer<'_>,
    commands: &mut Vec<String>,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<ObjectEntry> {
    let name = format!("dump{}.sealed", sealer.compression.suffix());
    let mut args: Vec<String> = [
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--lock-wait-timeout=30000",
    ]
    .map(String::from)
    .to_vec();
    if let Some(snap) = &plan.snapshot {
        args.push(format!("--snapshot={snap}"));
    }
    args.push(format!("--dbname={}", plan.dump.conninfo));
    let line = directory::render(&plan.dump.program, &args);
    rep.command(&line);
    commands.push(line);
    let mut cmd = plan.dump.command();
    cmd.args(&args).stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            ErrorCode::ToolFailed,
            format!("could not start {}: {e}", plan.dump.program.display()),
        )
    })?;
    let stderr = collect_stderr(&mut child);
    let mut stdout = child.stdout.take().expect("stdout piped");

    let mut encoder = sealer.open(&name, true)?;
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; CHUNK];
    let pump: Result<()> = (|| loop {
        if cancel.is_cancelled() {
            return Err(Error::new(
                ErrorCode::Cancelled,
                "The backup was cancelled.",
            ));
        }
        let n = match stdout.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading pg_dump output", e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        encoder
            .write_all(&buf[..n])
            .map_err(|e| Error::from_io("writing the backup", e))?;
        rep.bytes(total);
    })();
    if pump.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for pg_dump", e))?;
    let err_text = stderr.join().unwrap_or_default();
    pump?;
    if !status.success() {
        return Err(tool_failed("pg_dump", &err_text));
    }
    rep.stderr("pg_dump", &err_text);
    let entry = sealer.finish(
        encoder,
        name,
        "pg_dump custom archive".into(),
        total,
        hasher,
    )?;
    rep.bytes(total);
    Ok(entry)
}

pub(crate) fn corrupt(backup_id: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::BackupCorrupt,
        format!("Backup {backup_id} is damaged: {why}. Nothing was restored."),
    )
}

pub(crate) fn map_read_err(backup_id: &str, e: io::Error) -> Error {
    if let Some(inner) = Error::inside_io(&e) {
        // The storage failed (network, credentials): not a damaged backup.
        inner.with_context("reading the backup")
    } else if crypto::is_auth_error(&e) {
        corrupt(
            backup_id,
            e.to_string().trim_start_matches("backup_corrupt: "),
        )
    } else if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::Other {
        corrupt(backup_id, e)
    } else {
        Error::from_io("reading the backup", e)
    }
}

/// [`map_read_err`] naming the object that failed.
pub(crate) fn map_object_err(backup_id: &str, object: &str, e: io::Error) -> Error {
    let err = map_read_err(backup_id, e);
    if err.code == ErrorCode::BackupCorrupt {
        let why = err
            .message
            .split_once(" is damaged: ")
            .map(|(_, w)| w.trim_end_matches(". Nothing was restored."))
            .unwrap_or(&err.message);
        corrupt(backup_id, format!("{object}: {why}"))
    } else {
        err
    }
}

/// Decrypted and decompressed view of one stored object.
pub(crate) type Plaintext = Decoder<Prefetch>;

pub(crate) fn open_plaintext(
    storage: &dyn Storage,
    manifest: &Manifest,
    dek: &[u8; 32],
    obj: &ObjectEntry,
) -> Result<Plaintext> {
    let codec = Compression::from_codec(&obj.codec).ok_or_else(|| {
        corrupt(
            &manifest.backup_id,
            format!("{} has an unknown codec {:?}", obj.name, obj.codec),
        )
    })?;
    let raw = storage.open(&format!("{}/{}", manifest.backup_id, obj.name))?;
    let aad = crypto::object_aad(&manifest.repository, &manifest.backup_id, &obj.name);
    let id = &manifest.backup_id;
    let reader = OpenReader::new(raw, dek, aad).map_err(|e| map_object_err(id, &obj.name, e))?;
    let reader = Prefetch::new(reader, obj.stored_bytes >= THREADED_MIN);
    Decoder::new(codec, reader).map_err(|e| map_object_err(id, &obj.name, e))
}

/// The one pg_dump stream of a custom-format backup.
pub(crate) fn custom_object(manifest: &Manifest) -> Result<&ObjectEntry> {
    manifest
        .objects
        .iter()
        .find(|o| {
            Compression::from_codec(&o.codec)
                .is_some_and(|c| o.name == format!("dump{}.sealed", c.suffix()))
        })
        .ok_or_else(|| corrupt(&manifest.backup_id, "it has no dump object"))
}

pub(crate) fn unwrap_dek(manifest: &Manifest, kek: &[u8; 32]) -> Result<crypto::DataKey> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(&manifest.wrapped_key)
        .map_err(|_| corrupt(&manifest.backup_id, "the wrapped data key is not readable"))?;
    crypto::unwrap_key(kek, &wrapped, &manifest.wrap_aad())
}

/// Read every byte of the backup, authenticating segments and checking sizes and plaintext
/// digests; objects
/// are checked `BACKUP_JOBS` at a time.
pub fn verify(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    rep: &mut Reporter,
) -> Result<()> {
    let dek = unwrap_dek(manifest, kek)?;
    rep.phase("verifying");
    rep.total(
        Some(manifest.objects.iter().map(|o| o.plaintext_bytes).sum()),
        false,
    );
    let mut objects: Vec<&ObjectEntry> = manifest.objects.iter().collect();
    objects.sort_by_key(|o| std::cmp::Reverse(o.stored_bytes));
    let total = std::sync::atomic::AtomicU64::new(0);
    directory::parallel(
        directory::jobs_from_env()?,
        &objects,
        |obj, stop| fetch::check_object(storage, manifest, &dek, obj, &total, stop),
        &total,
        rep,
        &CancelToken::default(),
    )?;
    Ok(())
}

/// Write the decrypted pg_dump archive of a (verified) backup to `out`: what stock tools read.
/// Returns the bytes written; the digest is checked again on the way.
pub fn export(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    out: &mut dyn Write,
    rep: &mut Reporter,
) -> Result<u64> {
    let dek = unwrap_dek(manifest, kek)?;
    let obj = custom_object(manifest)?;
    rep.phase("exporting");
    rep.total(Some(obj.plaintext_bytes), false);
    let mut dec = open_plaintext(storage, manifest, &dek, obj)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| map_read_err(&manifest.backup_id, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("writing the exported archive", e))?;
        total += n as u64;
        rep.bytes(total);
    }
    out.flush()
        .map_err(|e| Error::io("writing the exported archive", e))?;
    if total != obj.plaintext_bytes || hex::encode(hasher.finalize()) != obj.plaintext_sha256 {
        return Err(corrupt(
            &manifest.backup_id,
            format!("{} does not match its recorded digest", obj.name),
        ));
    }
    Ok(total)
}

pub use super::restore::{apply_globals, prepare, restore, Prepared, RestoreMode};
