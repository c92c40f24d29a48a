//! Logical backups: pg_dump → zstd → sealed segments → storage, and back through pg_restore.
//!
//! The stages are separate values chained as writers (source, codec, crypto, storage) so the
//! backup platform can swap any of them. Restore authenticates the whole object before a single
//! byte reaches the server, then streams it again into pg_restore inside one transaction.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::crypto::{self, OpenReader, SealWriter, SEGMENT};
use super::repo::{Manifest, ObjectEntry, Storage, FORMAT_VERSION, MANIFEST};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, Reporter};

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
    fn command(&self) -> Command {
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
}

fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    })
}

fn tool_failed(what: &str, stderr: &str) -> Error {
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
    };
    manifest.wrapped_key = base64::engine::general_purpose::STANDARD.encode(crypto::wrap_key(
        plan.kek,
        &dek,
        &manifest.wrap_aad(),
    ));

    rep.phase("dumping");
    let mut cmd = plan.dump.command();
    cmd.args([
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--lock-wait-timeout=30000",
    ])
    .arg(format!("--dbname={}", plan.dump.conninfo))
    .stdout(Stdio::piped());
    if let Some(snap) = &plan.snapshot {
        cmd.arg(format!("--snapshot={snap}"));
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            ErrorCode::ToolFailed,
            format!("could not start {}: {e}", plan.dump.program.display()),
        )
    })?;
    let stderr = collect_stderr(&mut child);
    let mut stdout = child.stdout.take().expect("stdout piped");

    let sink = plan.storage.create(&format!("{backup_id}/{DUMP_OBJECT}"))?;
    let aad = crypto::object_aad(&plan.repository, backup_id, DUMP_OBJECT);
    let sealed =
        SealWriter::new(sink, &dek, aad).map_err(|e| Error::io("writing the backup", e))?;
    let mut encoder =
        zstd::stream::write::Encoder::new(sealed, 3).map_err(|e| Error::io("starting zstd", e))?;
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
    let sealed = encoder
        .finish()
        .map_err(|e| Error::from_io("finishing zstd", e))?;
    let (sink, stored_bytes, stored_digest) = sealed
        .finish()
        .map_err(|e| Error::from_io("writing the backup", e))?;
    sink.commit()?;
    rep.bytes(total);

    let finished = chrono::Utc::now();
    manifest.finished_at = finished.to_rfc3339();
    manifest.duration_ms = (finished - started_at).num_milliseconds().max(0) as u64;
    manifest.objects.push(ObjectEntry {
        name: DUMP_OBJECT.into(),
        content: "pg_dump custom archive".into(),
        codec: "zstd".into(),
        plaintext_bytes: total,
        plaintext_sha256: hex::encode(hasher.finalize()),
        stored_bytes,
        stored_sha256: hex::encode(stored_digest),
        segment_size: SEGMENT as u32,
    });
    // The commit: only now does the backup exist. Create-only: a manifest is never replaced.
    plan.storage.put_new(
        &format!("{backup_id}/{MANIFEST}"),
        &manifest.encode(plan.kek),
    )?;
    Ok(manifest)
}

fn corrupt(backup_id: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::BackupCorrupt,
        format!("Backup {backup_id} is damaged: {why}. Nothing was restored."),
    )
}

fn map_read_err(backup_id: &str, e: io::Error) -> Error {
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

/// Decrypted and decompressed view of one stored object.
type Plaintext<'a> =
    zstd::stream::read::Decoder<'a, io::BufReader<OpenReader<Box<dyn Read + Send>>>>;

fn open_plaintext<'a>(
    storage: &'a dyn Storage,
    manifest: &Manifest,
    dek: &[u8; 32],
    obj: &ObjectEntry,
) -> Result<Plaintext<'a>> {
    let raw = storage.open(&format!("{}/{}", manifest.backup_id, obj.name))?;
    let aad = crypto::object_aad(&manifest.repository, &manifest.backup_id, &obj.name);
    let reader =
        OpenReader::new(raw, dek, aad).map_err(|e| map_read_err(&manifest.backup_id, e))?;
    zstd::stream::read::Decoder::new(reader).map_err(|e| map_read_err(&manifest.backup_id, e))
}

pub(crate) fn unwrap_dek(manifest: &Manifest, kek: &[u8; 32]) -> Result<crypto::DataKey> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(&manifest.wrapped_key)
        .map_err(|_| corrupt(&manifest.backup_id, "the wrapped data key is not readable"))?;
    crypto::unwrap_key(kek, &wrapped, &manifest.wrap_aad())
}

/// Read every byte of the backup, authenticating segments and checking both digests.
pub fn verify(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    rep: &mut Reporter,
) -> Result<()> {
    let dek = unwrap_dek(manifest, kek)?;
    rep.phase("verifying");
    for obj in &manifest.objects {
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
            total += n as u64;
            rep.bytes(total);
        }
        let (stored, stored_digest) = dec.get_ref().get_ref().stored_digest();
        if total != obj.plaintext_bytes || hex::encode(hasher.finalize()) != obj.plaintext_sha256 {
            return Err(corrupt(
                &manifest.backup_id,
                format!("{} does not match its recorded digest", obj.name),
            ));
        }
        if stored != obj.stored_bytes || hex::encode(stored_digest) != obj.stored_sha256 {
            return Err(corrupt(
                &manifest.backup_id,
                format!("{} has trailing or missing bytes", obj.name),
            ));
        }
    }
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
    let obj = manifest
        .objects
        .iter()
        .find(|o| o.name == DUMP_OBJECT)
        .ok_or_else(|| corrupt(&manifest.backup_id, "it has no dump object"))?;
    rep.phase("exporting");
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

/// How pg_restore treats the target.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreMode {
    /// Drop existing objects first (restore into the same database).
    pub clean: bool,
    /// Skip ownership and grants (a throwaway server without the original roles).
    pub no_owner: bool,
}

/// Stream a verified backup into pg_restore. Runs in one transaction: an error leaves the
/// target as it was.
pub fn restore(
    storage: &dyn Storage,
    kek: &[u8; 32],
    manifest: &Manifest,
    restore_tool: &ToolInvocation,
    mode: RestoreMode,
    rep: &mut Reporter,
    cancel: &CancelToken,
) -> Result<u64> {
    let dek = unwrap_dek(manifest, kek)?;
    let obj = manifest
        .objects
        .iter()
        .find(|o| o.name == DUMP_OBJECT)
        .ok_or_else(|| corrupt(&manifest.backup_id, "it has no dump object"))?;
    rep.phase("restoring");
    let mut cmd = restore_tool.command();
    cmd.args(["--exit-on-error", "--single-transaction", "--no-password"])
        .arg(format!("--dbname={}", restore_tool.conninfo))
        .stdin(Stdio::piped());
    if mode.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if mode.no_owner {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
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
    Ok(total)
}
