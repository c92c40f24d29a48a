//! `pgsteward backup create|list|show|verify|prune|export|copy|test-recovery|restore`: the
//! backup commands, each a thin call into the core with a progress bar on a terminal.

use clap::Subcommand;
use pgsteward::backup::RestoreTarget;
use pgsteward::jobs::CancelToken;
use pgsteward::{Error, Steward};

use crate::output::{human_bytes, out, progress};
use crate::{storage, upkeep};

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Take an encrypted logical backup now (pg_dump directory format, parallel jobs).
    Create {
        name: String,
        /// Also keep the globals: roles (without passwords when they cannot be read) and
        /// tablespaces, from pg_dumpall (default: BACKUP_GLOBALS).
        #[arg(long)]
        globals: bool,
        /// Parallel pg_dump jobs and uploads, 1 to 8 (default: BACKUP_JOBS, else the CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// zstd, gzip or none (default: BACKUP_COMPRESSION, else zstd).
        #[arg(long)]
        compression: Option<String>,
    },
    /// List a project's backups.
    List { name: String },
    /// The job that made a backup (or any backup job, by its job id) with its log: phases,
    /// the commands exactly as run, warnings, the outcome.
    Show { name: String, id: String },
    /// Check backups: quick, sampled or full (default) verification.
    Verify(upkeep::VerifyArgs),
    /// Delete backups the retention policy lets go, and interrupted ones.
    Prune(upkeep::PruneArgs),
    /// Write a backup's decrypted pg_dump archive to a file, for stock tools.
    Export(upkeep::ExportArgs),
    /// Copy backups (one, or all the target lacks) to the project's copy target, verified there.
    Copy {
        name: String,
        backup_id: Option<String>,
    },
    /// Restore a backup (default: the newest) into a throwaway server, compare every table with
    /// the backup's records, run amcheck, and report the time to restore.
    TestRecovery {
        name: String,
        backup_id: Option<String>,
    },
    /// Restore a backup.
    Restore {
        name: String,
        backup_id: String,
        /// Create this database and restore into it.
        #[arg(
            long,
            conflicts_with = "same_database",
            required_unless_present = "same_database"
        )]
        new_database: Option<String>,
        /// Replace the contents of the backed-up database (needs --confirm DBNAME).
        #[arg(long)]
        same_database: bool,
        /// Parallel pg_restore jobs into a new database (default: BACKUP_JOBS, else the CPUs);
        /// a restore into the same database always runs in one transaction with one job.
        #[arg(long)]
        jobs: Option<usize>,
        /// First apply the backup's globals (roles, tablespaces); never done by default.
        #[arg(long)]
        globals: bool,
        /// The database name, repeated, to confirm a restore into the same database.
        #[arg(long, requires = "same_database")]
        confirm: Option<String>,
    },
}

pub async fn run(st: &Steward, json: bool, b: BackupCmd) -> Result<(), Error> {
    match b {
        BackupCmd::Create {
            name,
            globals,
            jobs,
            compression,
        } => {
            let compression = compression
                .map(|c| c.parse::<pgsteward::backup::codec::Compression>())
                .transpose()?;
            let mut opts = pgsteward::steward::BackupOptions::from_env()?
                .with_jobs(jobs)
                .with_compression(compression);
            opts.globals |= globals;
            let (sink, bar) = progress(json);
            let r = st
                .backup_create_with(&name, opts, sink, CancelToken::default())
                .await;
            bar.clear();
            let s = r?;
            out(json, &s, |s| {
                println!(
                    "backup {} of {}: {} dumped, {} stored, {:.1} s",
                    s.id,
                    s.database,
                    human_bytes(s.plaintext_bytes as f64),
                    human_bytes(s.stored_bytes as f64),
                    s.duration_ms as f64 / 1000.0
                )
            });
        }
        BackupCmd::List { name } => {
            let list = st.backup_list(&name)?;
            out(json, &list, |l| {
                if l.is_empty() {
                    println!("no backups of {name} yet");
                }
                for b in l {
                    println!(
                        "{}  {}  PostgreSQL {}  {} ({} stored)",
                        b.id,
                        b.database,
                        b.server_version,
                        human_bytes(b.plaintext_bytes as f64),
                        human_bytes(b.stored_bytes as f64)
                    );
                }
            });
        }
        BackupCmd::Show { name, id } => upkeep::show(st, json, &name, &id).await?,
        BackupCmd::Verify(a) => upkeep::verify(st, json, a).await?,
        BackupCmd::Prune(a) => upkeep::prune(st, json, a)?,
        BackupCmd::Export(a) => upkeep::export(st, json, a).await?,
        BackupCmd::Copy { name, backup_id } => {
            storage::copy(st, json, &name, backup_id.as_deref()).await?
        }
        BackupCmd::TestRecovery { name, backup_id } => {
            upkeep::test_recovery(st, json, &name, backup_id.as_deref()).await?
        }
        BackupCmd::Restore {
            name,
            backup_id,
            new_database,
            same_database,
            confirm,
            jobs,
            globals,
        } => {
            let mut opts = pgsteward::steward::RestoreOptions::from_env()?;
            if let Some(j) = jobs {
                opts.jobs = j.clamp(1, pgsteward::backup::directory::MAX_JOBS);
            }
            opts.globals = globals;
            let target = if same_database {
                RestoreTarget::SameDatabase {
                    confirm: confirm.unwrap_or_default(),
                }
            } else {
                RestoreTarget::NewDatabase {
                    name: new_database.unwrap_or_default(),
                }
            };
            let (sink, bar) = progress(json);
            let r = st
                .backup_restore_with(
                    &name,
                    &backup_id,
                    &target,
                    opts,
                    sink,
                    CancelToken::default(),
                )
                .await;
            bar.clear();
            let rep = r?;
            out(json, &rep, |r| {
                println!(
                    "restored {} into {} ({}, {:.1} s)",
                    r.backup_id,
                    r.database,
                    human_bytes(r.bytes as f64),
                    r.duration_ms as f64 / 1000.0
                );
                for n in &r.notes {
                    println!("  {n}");
                }
            });
        }
    }
    Ok(())
}
