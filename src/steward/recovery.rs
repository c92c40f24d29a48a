//! Recovery tests: a backup is only as good as a restore of it. This restores a backup into a
//! throwaway PostgreSQL of the same major version, compares every table with the facts recorded
//! at backup time, runs amcheck on the B-tree indexes, measures the time to restore (RTO) and
//! removes the throwaway server.

use std::time::Instant;

use serde::Serialize;
use sqlx::{Connection, Row};
use ts_rs::TS;

use super::Steward;
use crate::backup::facts;
use crate::backup::logical::{self, RestoreMode, ToolInvocation};
use crate::backup::repo;
use crate::backup::verify::{VerifyReport, VerifyTier};
use crate::cluster::{Cluster, ClusterOptions};
use crate::error::{Error, ErrorCode, Result};
use crate::jobs::{CancelToken, JobKind, JobStatus, ProgressSink, Reporter};
use crate::sql;

#[derive(Debug, Clone, Serialize, TS)]
pub struct AmcheckReport {
    pub indexes_checked: u32,
    /// Index and error for each index that failed.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct RecoveryReport {
    pub backup_id: String,
    pub server_major: u32,
    pub ok: bool,
    pub message: String,
    /// Time from starting the restore (including its verification) to a usable database.
    #[ts(type = "number")]
    pub rto_ms: u64,
    pub tables_recorded: u32,
    pub tables_compared: u32,
    pub checksums_compared: u32,
    pub mismatches: Vec<String>,
    /// `None` when amcheck is not available for that server.
    pub amcheck: Option<AmcheckReport>,
    pub tested_at: String,
}

impl Steward {
    /// Restore a backup (default: the newest) into a throwaway server and check it. The run
    /// and its log are kept in the project's history store; a restore that differs from the
    /// backup is recorded as failed (`backup_corrupt`).
    pub async fn backup_test_recovery(
        &self,
        name: &str,
        backup_id: Option<&str>,
        sink: ProgressSink,
    ) -> Result<RecoveryReport> {
        self.store.get(name)?;
        let rep = Reporter::new(JobKind::Restore, name, sink);
        let trace = rep.trace();
        let out = self.recovery_inner(name, backup_id, rep).await;
        let verdict = match &out {
            Ok(r) if !r.ok => Err(Error::new(ErrorCode::BackupCorrupt, r.message.clone())),
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        let id = out
            .as_ref()
            .map(|r| r.backup_id.as_str())
            .ok()
            .or(backup_id);
        self.record_job(name, &trace, "recovery_test", id, &verdict)
            .await;
        out
    }

    async fn recovery_inner(
        &self,
        name: &str,
        backup_id: Option<&str>,
        mut rep: Reporter,
    ) -> Result<RecoveryReport> {
        let kek = self.settled_backup_key(name)?;
        let storage = self.storage(name)?;
        let manifest = match backup_id {
            Some(id) => repo::load(&storage, &kek, id)?,
            None => repo::list(&storage, &kek)?
                .0
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::BackupNotFound,
                        format!("Project \"{name}\" has no backup to test."),
                    )
                })?,
        };
        let major = (manifest.server_version_num / 10000) as u32;
        let (_, bin_dir) = Cluster::find_binaries(Some(major)).map_err(|e| {
            Error::new(
                ErrorCode::ToolMissing,
                format!(
                    "A recovery test needs the PostgreSQL {major} server programs to start a throwaway server: {}",
                    e.message
                ),
            )
        })?;
        rep.phase("starting a throwaway server");
        let dir = tempfile::Builder::new()
            .prefix("pgsw-recovery")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| Error::io("creating the throwaway server's folder", e))?;
        let password = uuid::Uuid::new_v4().simple().to_string();
        let opts = ClusterOptions {
            password: password.clone(),
            ..ClusterOptions::default()
        };
        let cluster = {
            let (d, b) = (dir.path().to_path_buf(), bin_dir.clone());
            tokio::task::spawn_blocking(move || {
                let c = Cluster::init(&d, &b, major, &opts)?;
                c.start()?;
                Ok::<Cluster, Error>(c)
            })
            .await
            .map_err(|e| Error::internal(format!("throwaway server: {e}")))??
        };
        for line in cluster.commands_run() {
            rep.command(&line);
        }
        let target = "recovery_test";
        let admin_uri = cluster.uri("postgres", &password, "postgres");
        let mut admin = sqlx::PgConnection::connect(&admin_uri).await?;
        sqlx::query(sql!("CREATE DATABASE recovery_test TEMPLATE template0"))
            .execute(&mut admin)
            .await?;
        let _ = admin.close().await;

        let started = Instant::now();
        let restore_tool = bin_dir.join("pg_restore");
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname={target} sslmode=disable",
            cluster.port
        );
        let target_options = cluster
            .uri("postgres", &password, target)
            .parse::<sqlx::postgres::PgConnectOptions>()?
            .application_name(crate::conn::session::APPLICATION_NAME);
        let restored = {
            let pw = zeroize::Zeroizing::new(password.clone());
            let manifest = manifest.clone();
            let kek = kek.clone();
            let scratch = dir.path().join("scratch");
            tokio::task::spawn_blocking(move || {
                let mode = RestoreMode {
                    clean: false,
                    no_owner: true,
                    jobs: crate::backup::directory::jobs_from_env()?,
                };
                let prepared = logical::prepare(
                    &storage,
                    &kek,
                    &manifest,
                    &scratch,
                    mode,
                    &mut rep,
                    &CancelToken::default(),
                )?;
                let tool = ToolInvocation {
                    program: restore_tool,
                    conninfo,
                    password: Some(pw),
                };
                let n = logical::restore(
                    &storage,
                    &kek,
                    &manifest,
                    &prepared,
                    &tool,
                    &target_options,
                    mode,
                    &mut rep,
                    &CancelToken::default(),
                );
                Ok::<_, Error>((n, rep))
            })
            .await
            .map_err(|e| Error::internal(format!("restore task: {e}")))?
        };
        let (restore_result, mut rep) = match restored {
            Ok(x) => x,
            Err(e) => return Err(e),
        };
        let rto_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = restore_result {
            rep.fail(&e);
            return Err(e);
        }

        rep.phase("comparing tables");
        let mut conn =
            sqlx::PgConnection::connect(&cluster.uri("postgres", &password, target)).await?;
        sqlx::query(sql!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .execute(&mut conn)
            .await?;
        let after = facts::read(&mut conn).await?;
        sqlx::query(sql!("ROLLBACK")).execute(&mut conn).await?;
        let mismatches = facts::compare(&manifest.tables, &after);
        let compared = manifest
            .tables
            .iter()
            .filter(|t| t.rows != facts::UNKNOWN)
            .count() as u32;
        let checksums = manifest
            .tables
            .iter()
            .filter(|t| {
                t.checksum.is_some()
                    && after
                        .iter()
                        .any(|a| a.name == t.name && a.checksum.is_some())
            })
            .count() as u32;

        rep.phase("checking indexes");
        let amcheck = run_amcheck(&mut conn).await;
        let _ = conn.close().await;
        drop(cluster);
        drop(dir);

        let amcheck_failed = amcheck.as_ref().is_some_and(|a| !a.failures.is_empty());
        let ok = mismatches.is_empty() && !amcheck_failed;
        let message = if ok {
            format!(
                "restored in {:.1} s; {compared} table(s) match ({checksums} by checksum){}",
                rto_ms as f64 / 1000.0,
                match &amcheck {
                    Some(a) => format!("; amcheck passed on {} index(es)", a.indexes_checked),
                    None => "; amcheck not available".into(),
                }
            )
        } else {
            let mut why = mismatches.clone();
            if let Some(a) = &amcheck {
                why.extend(a.failures.iter().cloned());
            }
            format!("the restore differs from the backup: {}", why.join("; "))
        };
        let report = RecoveryReport {
            backup_id: manifest.backup_id.clone(),
            server_major: major,
            ok,
            message: message.clone(),
            rto_ms,
            tables_recorded: manifest.tables.len() as u32,
            tables_compared: compared,
            checksums_compared: checksums,
            mismatches,
            amcheck,
            tested_at: chrono::Utc::now().to_rfc3339(),
        };
        self.check_log(name)?.record(&VerifyReport {
            backup_id: manifest.backup_id.clone(),
            tier: VerifyTier::Recovery,
            ok,
            message: message.clone(),
            bytes_read: manifest.objects.iter().map(|o| o.stored_bytes).sum(),
            duration_ms: rto_ms,
            verified_at: report.tested_at.clone(),
        })?;
        rep.finish(
            if ok {
                JobStatus::Succeeded
            } else {
                JobStatus::Failed
            },
            Some(message),
        );
        Ok(report)
    }
}

/// `bt_index_check` on every valid B-tree index of the restored database.
async fn run_amcheck(conn: &mut sqlx::PgConnection) -> Option<AmcheckReport> {
    sqlx::query(sql!("CREATE EXTENSION IF NOT EXISTS amcheck"))
        .execute(&mut *conn)
        .await
        .ok()?;
    let rows = sqlx::query(sql!(
        "SELECT c.oid::int8 AS oid, format('%I.%I', n.nspname, c.relname) AS name
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
          WHERE a.amname = 'btree' AND i.indisvalid AND i.indisready
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
          ORDER BY 2"
    ))
    .fetch_all(&mut *conn)
    .await
    .ok()?;
    let mut report = AmcheckReport {
        indexes_checked: 0,
        failures: Vec::new(),
    };
    for r in rows {
        let oid: i64 = r.get("oid");
        let name: String = r.get("name");
        match sqlx::query(sql!("SELECT bt_index_check($1::oid, true)"))
            .bind(oid)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => report.indexes_checked += 1,
            Err(e) => report.failures.push(format!("index {name}: {e}")),
        }
    }
    Some(report)
}
