//! Backup and restore flows of a project: the options (jobs, compression, globals) from the
//! environment and the command line, the snapshot the table facts and pg_dump share, version-
//! matched client programs, and the restore targets (a new database, or the same one after
//! confirmation).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use super::Steward;
use crate::backup::codec::Compression;
use crate::backup::directory;
use crate::backup::logical::{self, BackupPlan, DumpOptions, GlobalsDump, ToolInvocation};
use crate::backup::{repo, BackupSummary, RestoreReport, RestoreTarget};
use crate::conn::session::{self, libpq_conninfo};
use crate::conn::Pool;
use crate::error::{Error, ErrorCode, Result};
use crate::ident::{check_database_name, quote_ident};
use crate::jobs::{CancelToken, JobKind, JobStatus, ProgressSink, Reporter};
use crate::pgbin;
use crate::project::Project;
use crate::sql;

/// How a backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupOptions {
    pub dump: DumpOptions,
    /// Also keep the globals (roles, tablespaces) from `pg_dumpall --globals-only`.
    pub globals: bool,
}

impl BackupOptions {
    /// `BACKUP_JOBS` (default: the CPUs, 1 to 8), `BACKUP_COMPRESSION` (zstd, gzip, none),
    /// `BACKUP_GLOBALS` (1 to keep the globals) and `BACKUP_FORMAT` (directory or custom).
    pub fn from_env() -> Result<BackupOptions> {
        Ok(BackupOptions {
            dump: DumpOptions::from_env()?,
            globals: directory::globals_from_env(),
        })
    }

    pub fn with_jobs(mut self, jobs: Option<usize>) -> Self {
        if let Some(j) = jobs {
            self.dump.jobs = j.clamp(1, directory::MAX_JOBS);
        }
        self
    }

    pub fn with_compression(mut self, c: Option<Compression>) -> Self {
        if let Some(c) = c {
            self.dump.compression = c;
        }
        self
    }

    /// Apply the user's choices; a value out of range is `invalid_input`, never clamped.
    pub fn choose(mut self, c: &BackupChoices) -> Result<Self> {
        if let Some(j) = c.jobs {
            let max = max_jobs();
            if j == 0 || j as usize > max {
                return Err(Error::invalid_input(format!(
                    "Parallel jobs must be between 1 and {max} (the CPUs of this computer, at most {}); got {j}.",
                    directory::MAX_JOBS
                )));
            }
            self.dump.jobs = j as usize;
        }
        if let Some(name) = &c.compression {
            self.dump.compression = name.trim().parse()?;
        }
        if let Some(g) = c.globals {
            self.globals = g;
        }
        Ok(self)
    }

    pub fn defaults(&self) -> BackupDefaults {
        BackupDefaults {
            jobs: self.dump.jobs.min(max_jobs()) as u32,
            max_jobs: max_jobs() as u32,
            compression: self.dump.compression.codec().to_string(),
            globals: self.globals,
            format: if self.dump.directory {
                "directory"
            } else {
                "custom"
            }
            .into(),
        }
    }
}

/// What the user chose for one backup (the app's "Back up now" form); `None` keeps the
/// environment's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct BackupChoices {
    /// Parallel pg_dump jobs and uploads, 1 to the CPUs (at most 8).
    pub jobs: Option<u32>,
    /// `zstd`, `gzip` or `none`.
    pub compression: Option<String>,
    /// Also keep the globals (roles, tablespaces).
    pub globals: Option<bool>,
}

/// The defaults the "Back up now" form starts from, and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BackupDefaults {
    pub jobs: u32,
    /// The most jobs allowed: this computer's CPUs, at most 8.
    pub max_jobs: u32,
    pub compression: String,
    pub globals: bool,
    /// `directory` (parallel) or `custom` (one stream, one job), from `BACKUP_FORMAT`.
    pub format: String,
}

/// The most parallel jobs a backup may use here: the CPUs, 1 to 8.
pub fn max_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, directory::MAX_JOBS)
}

/// How a restore runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Parallel pg_restore jobs (directory-format backups into a new database).
    pub jobs: usize,
    /// Apply the backup's globals (roles, tablespaces) first; never by default.
    pub globals: bool,
}

impl RestoreOptions {
    /// `BACKUP_JOBS` jobs, no globals.
    pub fn from_env() -> Result<RestoreOptions> {
        Ok(RestoreOptions {
            jobs: directory::jobs_from_env()?,
            globals: false,
        })
    }
}

impl Steward {
    pub(crate) fn client_tool(
        &self,
        project: &Project,
        program: &str,
        major: u32,
    ) -> Result<std::path::PathBuf> {
        pgbin::find(
            program,
            major,
            project.pg_bin_dir.as_deref().map(std::path::Path::new),
        )
    }

    pub(crate) async fn server_version(&self, pool: &Pool) -> Result<(String, i32, String)> {
        let mut conn = pool.acquire().await?;
        let row = sqlx::query(sql!(
            "SELECT current_setting('server_version') AS v, current_setting('server_version_num')::int AS n, current_database() AS db"
        ))
        .fetch_one(&mut *conn)
        .await?;
        Ok((row.get("v"), row.get("n"), row.get("db")))
    }

    /// Folder under which private scratch folders of backups and restores are made.
    pub(crate) fn scratch_parent(&self, name: &str) -> Result<std::path::PathBuf> {
        Ok(self.store.project_dir(name)?.join("scratch"))
    }

    /// Take a logical backup of the project's database with the options from the environment.
    pub async fn backup_create(
        &self,
        name: &str,
        sink: ProgressSink,
        cancel: CancelToken,
    ) -> Result<BackupSummary> {
        let opts = BackupOptions::from_env()?;
        self.backup_create_with(name, opts, sink, cancel).await
    }

    /// The options a backup takes by default (from the environment), for the app's form.
    pub fn backup_defaults(&self) -> Result<BackupDefaults> {
        Ok(BackupOptions::from_env()?.defaults())
    }

    /// Take a logical backup with the environment's options overridden by `choices` (what the
    /// app's "Back up now" form sends). Invalid choices fail with `invalid_input` before
    /// anything runs.
    pub async fn backup_create_chosen(
        &self,
        name: &str,
        choices: &BackupChoices,
        sink: ProgressSink,
        cancel: CancelToken,
    ) -> Result<BackupSummary> {
        let opts = BackupOptions::from_env()?.choose(choices)?;
        self.backup_create_with(name, opts, sink, cancel).await
    }

    /// Heap and TOAST bytes of the user tables: what a dump's size is estimated from.
    async fn dump_estimate(&self, pool: &Pool) -> Option<u64> {
        let mut conn = pool.acquire().await.ok()?;
        let bytes: Option<i64> = sqlx::query_scalar(sql!(
            "SELECT sum(pg_relation_size(c.oid)
                      + CASE WHEN c.reltoastrelid <> 0 THEN pg_relation_size(c.reltoastrelid) ELSE 0 END)::int8
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%'"
        ))
        .fetch_one(&mut *conn)
        .await
        .ok()?;
        bytes.map(|b| b.max(0) as u64)
    }

    /// Take a logical backup of the project's database.
    pub async fn backup_create_with(
        &self,
        name: &str,
        opts: BackupOptions,
        sink: ProgressSink,
        cancel: CancelToken,
    ) -> Result<BackupSummary> {
        let project = self.store.get(name)?;
        let mut rep = Reporter::new(JobKind::Backup, name, sink);
        let trace = rep.trace();
        let result = async {
            let lock = self.repo_lock(name)?;
            // The key is checked against the repository before any byte is written.
            let kek = self.settled_backup_key(name)?;
            repo::ensure_keycheck(&self.storage(name)?, name, &kek)?;
            let pool = self.pool(name)?;
            let (version, num, db) = self.server_version(&pool).await?;
            let pg_dump = self.client_tool(&project, "pg_dump", (num / 10000) as u32)?;
            let (r, pw) = self.credentials(&project)?;
            let storage = self.storage(name)?;
            let scratch_parent = self.scratch_parent(name)?;
            let conninfo = libpq_conninfo(&r, &db, self.limits.lock_timeout);
            let globals = if opts.globals {
                // Without access to pg_authid, pg_dumpall can only list roles without passwords.
                let can_read_authid: bool = sqlx::query_scalar(sql!(
                    "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
                ))
                .fetch_one(&mut *pool.acquire().await?)
                .await?;
                Some(GlobalsDump {
                    tool: ToolInvocation {
                        program: self.client_tool(&project, "pg_dumpall", (num / 10000) as u32)?,
                        conninfo: conninfo.clone(),
                        password: pw.clone(),
                    },
                    no_role_passwords: !can_read_authid,
                })
            } else {
                None
            };
            let name = name.to_string();
            // One snapshot for the table facts and the dump: the facts describe exactly the
            // data that was dumped, even while the database is being written to.
            let mut snap = pool.acquire().await?;
            sqlx::query(sql!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                .execute(&mut *snap)
                .await?;
            let snapshot: String = sqlx::query_scalar(sql!("SELECT pg_export_snapshot()"))
                .fetch_one(&mut *snap)
                .await?;
            let dump_estimate = self.dump_estimate(&pool).await;
            // The facts are read while pg_dump runs (it has taken the snapshot by the time
            // this transaction ends, below); the manifest waits for them.
            let (facts_tx, facts_rx) = std::sync::mpsc::sync_channel(1);
            let job = tokio::task::spawn_blocking(move || {
                let plan = BackupPlan {
                    storage: &storage,
                    kek: &kek,
                    repository: name.clone(),
                    project: name.clone(),
                    database: db,
                    server_version: version,
                    server_version_num: num,
                    dump: ToolInvocation {
                        program: pg_dump,
                        conninfo,
                        password: pw,
                    },
                    snapshot: Some(snapshot),
                    tables: Vec::new(),
                    tables_later: Some(facts_rx),
                    options: opts.dump,
                    scratch_parent,
                    globals,
                    dump_estimate,
                };
                let m = logical::create(plan, &mut rep, &cancel);
                drop(lock);
                (m, rep)
            });
            let facts = crate::backup::facts::read(&mut snap).await;
            let facts_failed = facts.is_err();
            let _ = facts_tx.send(facts);
            let out = job
                .await
                .map_err(|e| Error::internal(format!("backup task: {e}")));
            // The snapshot was only needed until pg_dump took it.
            // A failed read may have left the transaction unusable: then the connection goes.
            if facts_failed
                || sqlx::query(sql!("ROLLBACK"))
                    .execute(&mut *snap)
                    .await
                    .is_err()
            {
                snap.discard();
            }
            out
        }
        .await;
        let out = match result {
            Ok((Ok(m), mut rep)) => {
                rep.finish(
                    JobStatus::Succeeded,
                    Some(format!("backup {} written", m.backup_id)),
                );
                self.note_backup_outcome(name, true);
                Ok(m.summary())
            }
            Ok((Err(e), mut rep)) => {
                rep.fail(&e);
                self.note_backup_failure(name, &e);
                Err(e)
            }
            Err(e) => {
                self.note_backup_failure(name, &e);
                Err(e)
            }
        };
        let id = out.as_ref().ok().map(|s| s.id.clone());
        self.record_job(name, &trace, "backup", id.as_deref(), &out)
            .await;
        out
    }

    /// Restore a backup into a new database or, after confirmation, into the same one, with
    /// `BACKUP_JOBS` jobs and without the globals.
    pub async fn backup_restore(
        &self,
        name: &str,
        backup_id: &str,
        target: &RestoreTarget,
        sink: ProgressSink,
        cancel: CancelToken,
    ) -> Result<RestoreReport> {
        let opts = RestoreOptions::from_env()?;
        self.backup_restore_with(name, backup_id, target, opts, sink, cancel)
            .await
    }

    /// Restore a backup into a new database or, after confirmation, into the same one. The
    /// run and its log are kept in the project's history store.
    pub async fn backup_restore_with(
        &self,
        name: &str,
        backup_id: &str,
        target: &RestoreTarget,
        opts: RestoreOptions,
        sink: ProgressSink,
        cancel: CancelToken,
    ) -> Result<RestoreReport> {
        let rep = Reporter::new(JobKind::Restore, name, sink);
        let trace = rep.trace();
        let out = self
            .restore_inner(name, backup_id, target, opts, rep, cancel)
            .await;
        self.record_job(name, &trace, "restore", Some(backup_id), &out)
            .await;
        out
    }

    async fn restore_inner(
        &self,
        name: &str,
        backup_id: &str,
        target: &RestoreTarget,
        opts: RestoreOptions,
        mut rep: Reporter,
        cancel: CancelToken,
    ) -> Result<RestoreReport> {
        let project = self.store.get(name)?;
        let storage = self.storage(name)?;
        let kek = self.settled_backup_key(name)?;
        let manifest = repo::load(&storage, &kek, backup_id).map_err(|e| match e.code {
            ErrorCode::BackupNotFound => Error::new(
                ErrorCode::BackupNotFound,
                format!("Project \"{name}\" has no backup {backup_id}."),
            ),
            _ => e,
        })?;
        let pool = self.pool(name)?;
        let (_, num, current_db) = self.server_version(&pool).await?;
        let (target_db, clean) = match target {
            RestoreTarget::NewDatabase { name } => {
                check_database_name(name)?;
                let exists: Option<i32> =
                    sqlx::query_scalar(sql!("SELECT 1 FROM pg_database WHERE datname = $1"))
                        .bind(name)
                        .fetch_optional(&mut *pool.acquire().await?)
                        .await?;
                if exists.is_some() {
                    return Err(Error::invalid_input(format!(
                        "A database named \"{name}\" already exists; choose a new name, or restore into the same database."
                    )));
                }
                (name.clone(), false)
            }
            RestoreTarget::SameDatabase { confirm } => {
                if *confirm != manifest.database {
                    return Err(Error::new(
                        ErrorCode::ConfirmationRequired,
                        format!(
                            "Restoring into \"{}\" replaces its contents. Type the database name exactly to confirm.",
                            manifest.database
                        ),
                    ));
                }
                (manifest.database.clone(), true)
            }
        };
        let major = (num / 10000) as u32;
        let pg_restore = self.client_tool(&project, "pg_restore", major)?;
        let psql = if opts.globals {
            Some(self.client_tool(&project, "psql", major)?)
        } else {
            None
        };
        let (r, pw) = self.credentials(&project)?;

        // 1. Authenticate every byte before anything touches the server (a directory-format
        //    backup is fetched into a private scratch folder on the way).
        let mode = logical::RestoreMode {
            clean,
            no_owner: false,
            jobs: opts.jobs,
        };
        let prepare = {
            let storage = self.storage(name)?;
            let kek = kek.clone();
            let manifest = manifest.clone();
            let scratch = self.scratch_parent(name)?;
            let cancel = cancel.clone();
            tokio::task::spawn_blocking(move || {
                let r =
                    logical::prepare(&storage, &kek, &manifest, &scratch, mode, &mut rep, &cancel);
                (r, rep)
            })
            .await
            .map_err(|e| Error::internal(format!("verify task: {e}")))?
        };
        let (prepared, mut rep) = prepare;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                rep.fail(&e);
                return Err(e);
            }
        };
        if opts.globals && !prepared.has_globals() {
            let e = Error::invalid_input(format!(
                "Backup {backup_id} has no globals: it was taken without --globals. Nothing was restored."
            ));
            rep.fail(&e);
            return Err(e);
        }
        let checked_later = !prepared.checked_everything();
        let checked = crate::backup::VerifyReport {
            backup_id: backup_id.to_string(),
            tier: crate::backup::VerifyTier::Full,
            ok: true,
            message: if checked_later {
                "every byte authenticated as it was restored".into()
            } else {
                "every byte authenticated before restoring".into()
            },
            bytes_read: manifest.objects.iter().map(|o| o.stored_bytes).sum(),
            duration_ms: rep.elapsed_ms(),
            verified_at: chrono::Utc::now().to_rfc3339(),
        };
        // Big tables streamed into the new database are authenticated as they load: the
        // backup counts as fully checked once the restore succeeded.
        if !checked_later {
            let _ = self.check_log(name)?.record(&checked);
        }

        // 2. The globals first, when asked: the roles must exist before objects are owned.
        let mut notes = Vec::new();
        let prepared = match psql {
            None => prepared,
            Some(psql) => {
                rep.phase("applying globals");
                let tool = ToolInvocation {
                    program: psql,
                    conninfo: libpq_conninfo(&r, &current_db, self.limits.lock_timeout),
                    password: pw.clone(),
                };
                let cancel = cancel.clone();
                let (res, prepared, rep2) = tokio::task::spawn_blocking(move || {
                    let res = logical::apply_globals(&prepared, &tool, &mut rep, &cancel);
                    (res, prepared, rep)
                })
                .await
                .map_err(|e| Error::internal(format!("globals task: {e}")))?;
                rep = rep2;
                match res {
                    Ok(errors) => notes.extend(
                        errors
                            .into_iter()
                            .map(|e| format!("globals: {e} (statement skipped)")),
                    ),
                    Err(e) => {
                        rep.fail(&e);
                        return Err(e);
                    }
                }
                prepared
            }
        };

        // 3. Create the new database if asked; drop it again if the restore fails.
        let created = if !clean {
            let stmt = format!(
                "{} CREATE DATABASE {} TEMPLATE template0",
                session::MARK,
                quote_ident(&target_db)?
            );
            sqlx::query(&stmt)
                .execute(&mut *pool.acquire().await?)
                .await?;
            true
        } else {
            false
        };
        let conninfo = libpq_conninfo(&r, &target_db, self.limits.lock_timeout);
        let target = session::connect_options(&r, pw.as_deref().map(String::as_str), self.limits)
            .database(&target_db);
        let started = Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            let tool = ToolInvocation {
                program: pg_restore,
                conninfo,
                password: pw,
            };
            let res = logical::restore(
                &storage, &kek, &manifest, &prepared, &tool, &target, mode, &mut rep, &cancel,
            );
            drop(prepared);
            (res, rep)
        })
        .await
        .map_err(|e| Error::internal(format!("restore task: {e}")))?;
        let (res, mut rep) = job;
        match res {
            Ok(bytes) => {
                if checked_later {
                    let _ = self.check_log(name)?.record(&checked);
                }
                rep.finish(
                    JobStatus::Succeeded,
                    Some(format!("restored into {target_db}")),
                );
                Ok(RestoreReport {
                    backup_id: backup_id.to_string(),
                    database: target_db,
                    bytes,
                    duration_ms: started.elapsed().as_millis() as u64,
                    notes,
                })
            }
            Err(e) => {
                if created && target_db != current_db {
                    let stmt = format!(
                        "{} DROP DATABASE IF EXISTS {}",
                        session::MARK,
                        quote_ident(&target_db)?
                    );
                    if let Ok(mut c) = pool.acquire().await {
                        let _ = sqlx::query(&stmt).execute(&mut *c).await;
                    }
                }
                rep.fail(&e);
                Err(e)
            }
        }
    }
}
