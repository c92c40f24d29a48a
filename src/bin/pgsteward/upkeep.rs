//! `pgsteward backup verify|prune` and `pgsteward key rotate|export-kit|import-kit`: keeping a
//! project's backup repository trustworthy.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use pgsteward::backup::kit::RecoveryKit;
use pgsteward::backup::{RetentionPolicy, VerifyTier};
use pgsteward::{Error, ErrorCode, Steward};

use crate::output::{confirm, human_bytes, out, progress, read_secret};

#[derive(Args)]
pub struct VerifyArgs {
    name: String,
    /// One backup (default: every backup of the project).
    backup_id: Option<String>,
    /// quick (objects present with their sizes), sampled (a random share of segments
    /// authenticated) or full (every byte authenticated and hashed).
    #[arg(long, default_value = "full")]
    tier: String,
    /// Share of segments the sampled tier reads (0 < f <= 1).
    #[arg(long, default_value_t = 0.1)]
    fraction: f64,
}

#[derive(Args)]
pub struct PruneArgs {
    name: String,
    /// Keep at least this many of the newest backups.
    #[arg(long)]
    keep: Option<usize>,
    /// Keep every backup younger than this many days (default BACKUP_RETENTION_DAYS or 30).
    #[arg(long)]
    max_age_days: Option<u32>,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete without asking.
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    name: String,
    backup_id: String,
    /// Where to write the decrypted pg_dump output (must not exist): a file for single-stream
    /// backups, a folder that `pg_restore` reads for directory-format ones.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Replace the project's backup key; backups stay readable (their data keys are re-wrapped).
    Rotate {
        name: String,
        #[arg(long)]
        yes: bool,
    },
    /// Write the backup key sealed under a passphrase (Argon2id) to a file, to keep apart.
    ExportKit {
        name: String,
        /// Where to write the kit.
        #[arg(long)]
        out: PathBuf,
        /// Read the passphrase from standard input instead of asking.
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Put the backup key from a recovery kit into this machine's keyring.
    ImportKit {
        name: String,
        kit: PathBuf,
        #[arg(long)]
        passphrase_stdin: bool,
        /// Replace a different key that still opens this project's backups.
        #[arg(long)]
        replace: bool,
    },
}

pub async fn verify(st: &Steward, json: bool, a: VerifyArgs) -> Result<(), Error> {
    let tier: VerifyTier = a.tier.parse()?;
    let (sink, bar) = progress(json);
    let r = st
        .backup_verify(&a.name, a.backup_id.as_deref(), tier, a.fraction, sink)
        .await;
    bar.clear();
    let reports = r?;
    let bad = reports.iter().filter(|r| !r.ok).count();
    let failure = (bad > 0).then(|| {
        Error::new(
            ErrorCode::BackupCorrupt,
            format!("{bad} of {} backup(s) failed verification", reports.len()),
        )
    });
    if json {
        // One document: the reports, and the error when something is damaged.
        let mut doc = serde_json::json!({ "reports": reports });
        if let Some(e) = &failure {
            doc["error"] = serde_json::to_value(e).expect("serializable");
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
        if failure.is_some() {
            std::process::exit(1);
        }
        return Ok(());
    }
    if reports.is_empty() {
        println!("no backups of {} to verify", a.name);
    }
    for r in &reports {
        println!(
            "{}  {}  {:<7} {}  ({} read, {:.1} s)",
            r.backup_id,
            if r.ok { "OK     " } else { "DAMAGED" },
            r.tier.as_str(),
            r.message,
            human_bytes(r.bytes_read as f64),
            r.duration_ms as f64 / 1000.0
        );
    }
    failure.map_or(Ok(()), Err)
}

pub async fn export(st: &Steward, json: bool, a: ExportArgs) -> Result<(), Error> {
    let (sink, bar) = progress(json);
    let r = st.backup_export(&a.name, &a.backup_id, &a.out, sink).await;
    bar.clear();
    let bytes = r?;
    out(
        json,
        &serde_json::json!({"file": a.out, "bytes": bytes}),
        |_| {
            println!(
            "{} written ({}): a standard pg_dump archive, e.g. `pg_restore --list {}`. It is NOT encrypted.",
            a.out.display(),
            human_bytes(bytes as f64),
            a.out.display()
        )
        },
    );
    Ok(())
}

pub async fn test_recovery(
    st: &Steward,
    json: bool,
    name: &str,
    backup_id: Option<&str>,
) -> Result<(), Error> {
    let (sink, bar) = progress(json);
    let r = st.backup_test_recovery(name, backup_id, sink).await;
    bar.clear();
    let report = r?;
    out(json, &report, |r| {
        println!(
            "{}  {}  PostgreSQL {}: {}",
            r.backup_id,
            if r.ok { "RECOVERED" } else { "FAILED" },
            r.server_major,
            r.message
        );
    });
    if report.ok {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// `backup show NAME ID`: the job that made a backup (or any job, by its id) with its log: the
/// phases, the commands exactly as run, pg_dump's warnings and the outcome.
pub async fn show(st: &Steward, json: bool, name: &str, id: &str) -> Result<(), Error> {
    let run = st.job_run(name, id).await?;
    out(json, &run, |r| {
        println!(
            "{} {}  {}  started {}, {:.1} s{}",
            r.kind,
            r.backup_id.as_deref().unwrap_or(&r.job_id),
            r.outcome,
            r.started_at,
            r.duration_ms as f64 / 1000.0,
            r.code
                .as_ref()
                .map(|c| format!("  [{c}] {}", r.message))
                .unwrap_or_default()
        );
        for e in &r.log {
            let kind = match e.kind {
                pgsteward::jobs::JobLogKind::Phase => "phase",
                pgsteward::jobs::JobLogKind::Command => "$",
                pgsteward::jobs::JobLogKind::Stderr => "stderr",
                pgsteward::jobs::JobLogKind::Outcome => "outcome",
            };
            println!("{}  {kind:<7} {}", e.at, e.text);
        }
    });
    Ok(())
}

pub fn prune(st: &Steward, json: bool, a: PruneArgs) -> Result<(), Error> {
    let mut policy = RetentionPolicy::from_env()?;
    if a.keep.is_some() {
        policy.keep_last = a.keep;
        if a.max_age_days.is_none() {
            policy.max_age_days = None;
        }
    }
    if a.max_age_days.is_some() {
        policy.max_age_days = a.max_age_days;
    }
    let plan = st.backup_prune(&a.name, &policy, true)?;
    let doomed: Vec<String> = plan
        .decisions
        .iter()
        .filter(|d| d.delete)
        .map(|d| format!("{}  ({})", d.backup_id, d.reason))
        .chain(
            plan.incomplete_removed
                .iter()
                .map(|id| format!("{id}  (interrupted, no manifest)")),
        )
        .collect();
    let report = if a.dry_run || doomed.is_empty() {
        plan
    } else {
        confirm(
            a.yes,
            json,
            &doomed,
            &format!("Delete these {} backup(s)?", doomed.len()),
            &format!(
                "Pruning would delete {} backup(s): {}. Repeat with --yes to confirm, or --dry-run to look.",
                doomed.len(),
                doomed.join(", ")
            ),
        )?;
        st.backup_prune(&a.name, &policy, false)?
    };
    out(json, &report, |r| {
        for d in &r.decisions {
            let verb = match (d.delete, r.dry_run) {
                (false, _) => "keep  ",
                (true, true) => "would delete",
                (true, false) => "deleted",
            };
            println!("{verb}  {}  {}", d.backup_id, d.reason);
        }
        for id in &r.incomplete_removed {
            let verb = if r.dry_run { "would remove" } else { "removed" };
            println!("{verb}  {id}  interrupted backup (no manifest)");
        }
        for id in &r.unreadable {
            println!("left  {id}  its manifest cannot be read; check it with `backup verify`");
        }
    });
    Ok(())
}

pub fn key(st: &Steward, json: bool, cmd: KeyCmd) -> Result<(), Error> {
    match cmd {
        KeyCmd::Rotate { name, yes } => {
            confirm(
                yes,
                json,
                &[],
                &format!("Rotate the backup key of {name}? Export a new recovery kit afterwards."),
                "Rotating replaces the project's backup key (recovery kits made before stop working). Repeat with --yes to confirm.",
            )?;
            let r = st.key_rotate(&name)?;
            out(json, &r, |r| {
                println!(
                    "backup key {} replaced by {}; {} backup(s) re-wrapped. Export a new recovery kit: pgsteward key export-kit {name} --out FILE",
                    r.old_key_id, r.new_key_id, r.rewrapped
                )
            });
        }
        KeyCmd::ExportKit {
            name,
            out: path,
            passphrase_stdin,
        } => {
            if path.exists() {
                return Err(Error::invalid_input(format!(
                    "{} exists already; choose another file",
                    path.display()
                )));
            }
            let pass = read_secret(passphrase_stdin, "Passphrase for the recovery kit")?;
            if !passphrase_stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let again = read_secret(false, "Repeat the passphrase")?;
                if *again != *pass {
                    return Err(Error::invalid_input("the passphrases differ"));
                }
            }
            let kit = st.key_export_kit(&name, &pass)?;
            write_new(
                &path,
                &serde_json::to_vec_pretty(&kit).expect("serializable"),
            )?;
            out(
                json,
                &serde_json::json!({"file": path, "key_id": kit.key_id}),
                |_| {
                    println!(
                    "recovery kit for {name} (key {}) written to {}. Keep it away from this machine; without the passphrase it is useless.",
                    kit.key_id,
                    path.display()
                )
                },
            );
        }
        KeyCmd::ImportKit {
            name,
            kit,
            passphrase_stdin,
            replace,
        } => {
            let bytes =
                std::fs::read(&kit).map_err(|e| Error::io("reading the recovery kit", e))?;
            let parsed: RecoveryKit = serde_json::from_slice(&bytes)
                .map_err(|_| Error::invalid_input("that file is not a pgsteward recovery kit"))?;
            let pass = read_secret(passphrase_stdin, "Passphrase of the recovery kit")?;
            let r = st.key_import_kit(&name, &parsed, &pass, replace)?;
            out(json, &r, |r| {
                if r.changed {
                    println!(
                        "backup key {} is now {name}'s key; {} backup(s) readable",
                        r.key_id, r.backups_readable
                    );
                } else {
                    println!("{name} already had key {}; nothing changed", r.key_id);
                }
            });
        }
    }
    Ok(())
}

/// Write a file that must not exist yet, readable by its owner only.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("writing the recovery kit", e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("writing the recovery kit", e))
}
