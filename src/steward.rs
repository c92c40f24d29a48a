//! The core's front door: one value the GUI shell and the CLI both drive.
//!
//! It owns the project store, one pool per project (rebuilt when settings change), the recent
//! samples of each project, and the flows that cross modules (test a connection, take or restore
//! a backup). Everything here is plain async Rust with no UI dependency.
//!
//! This file holds projects, pools and connection tests; each domain's flows are in a submodule
//! (`inspect`, `history`, `monitoring`, `backups`, `upkeep`, `recovery`, `maintain`, ...).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use sqlx::{Connection, Row};
use ts_rs::TS;
use zeroize::Zeroizing;

use crate::backup::{repo, BackupSummary, Storage};
use crate::conn::session::{connect_options, pick_password};
use crate::conn::spec::{ConnSpec, ProcessEnv, Resolved};
use crate::conn::{Pool, PoolConfig, PoolMetrics, SessionLimits};
use crate::error::{Error, ErrorCode, Result};
use crate::monitor::{HistoryOptions, HistoryRetention, HistoryStore, SampleReport, SampleRing};
use crate::project::{Project, ProjectInput, ProjectStore, ProjectSummary};
use crate::secrets::{SecretKind, Secrets};
use crate::sql;

mod backups;
mod history;
mod inspect;
mod maintain;
mod monitoring;
mod otlp;
mod recovery;
mod schedule;
mod storage;
mod tuning;
mod upkeep;
pub use backups::{BackupChoices, BackupDefaults, BackupOptions, RestoreOptions};
pub use maintain::{MaintenanceSettings, MaintenanceStatus};
pub use otlp::{OtlpInfo, PushReport};
pub use recovery::{AmcheckReport, RecoveryReport};
pub use schedule::{DueRun, JobSchedule, RunDueReport, ScheduleReport};
pub use storage::{CopyReport, StorageInfo};
pub use upkeep::{KeyRotation, KitImport, PruneReport};

/// Result of testing a connection.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ConnectionTest {
    pub server_version: String,
    pub server_version_num: i32,
    pub current_user: String,
    pub database: String,
    pub latency_ms: f64,
    pub ssl: bool,
}

/// Seconds between dashboard samples while the page is visible.
pub const DASHBOARD_INTERVAL_SECONDS: u32 = 5;

/// A pool with the settings and password it was built from, to notice when they change.
type CachedPool = (ConnSpec, Option<Zeroizing<String>>, Pool);

pub struct Steward {
    store: ProjectStore,
    secrets: Secrets,
    pools: Mutex<HashMap<String, CachedPool>>,
    rings: Mutex<HashMap<String, SampleRing>>,
    histories: Mutex<HashMap<String, HistoryStore>>,
    history_opts: HistoryOptions,
    /// Alert rule states per project (evaluated after each history sample).
    alert_engines: Mutex<HashMap<String, crate::monitor::alerts::AlertEngine>>,
    /// The latest history sample of each project, for exporters.
    latest: Mutex<HashMap<String, SampleReport>>,
    /// The latest availability probe of each project: (up, latency in ms).
    probes: Mutex<HashMap<String, (bool, Option<f64>)>>,
    pool_config: PoolConfig,
    limits: SessionLimits,
    /// Part size of S3 multipart uploads.
    s3_part_size: usize,
    /// OTLP export counters per project, shared with exports running in the background.
    otlp: Arc<Mutex<HashMap<String, otlp::OtlpState>>>,
    /// When this process opened the data folder (the start of cumulative counters).
    started_ms: i64,
}

impl Steward {
    pub fn open(root: impl Into<PathBuf>) -> Result<Arc<Self>> {
        let store = ProjectStore::open(root)?;
        let secrets = Secrets::new(store.instance_id()?);
        Ok(Arc::new(Steward {
            store,
            secrets,
            pools: Mutex::new(HashMap::new()),
            rings: Mutex::new(HashMap::new()),
            histories: Mutex::new(HashMap::new()),
            history_opts: HistoryOptions {
                retention: HistoryRetention::from_env()?,
                ..HistoryOptions::default()
            },
            alert_engines: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            pool_config: PoolConfig::from_env(),
            limits: SessionLimits::from_env(),
            s3_part_size: crate::backup::s3::DEFAULT_PART_SIZE,
            otlp: Default::default(),
            started_ms: chrono::Utc::now().timestamp_millis(),
        }))
    }

    pub fn open_default() -> Result<Arc<Self>> {
        Self::open(crate::project::data_dir())
    }

    pub fn with_pool_config(self: Arc<Self>, cfg: PoolConfig) -> Arc<Self> {
        let mut s = Arc::try_unwrap(self).unwrap_or_else(|_| panic!("configure before sharing"));
        s.pool_config = cfg;
        Arc::new(s)
    }

    /// Sampling and history settings (collector timeout, slow-query threshold, retention).
    pub fn with_history_options(self: Arc<Self>, opts: HistoryOptions) -> Arc<Self> {
        let mut s = Arc::try_unwrap(self).unwrap_or_else(|_| panic!("configure before sharing"));
        s.history_opts = opts;
        Arc::new(s)
    }

    /// Part size of S3 multipart uploads (at least 5 MiB; S3's minimum).
    pub fn with_s3_part_size(self: Arc<Self>, bytes: usize) -> Arc<Self> {
        let mut s = Arc::try_unwrap(self).unwrap_or_else(|_| panic!("configure before sharing"));
        s.s3_part_size = bytes.max(crate::backup::s3::MIN_PART_SIZE);
        Arc::new(s)
    }

    pub fn history_options(&self) -> &HistoryOptions {
        &self.history_opts
    }

    pub fn store(&self) -> &ProjectStore {
        &self.store
    }

    /// The keyring entries of this data folder.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn summary(&self, p: &Project) -> ProjectSummary {
        let has_pw = self
            .secrets
            .get(&p.name, SecretKind::Password)
            .map(|s| s.is_some())
            .unwrap_or(false);
        p.summary(has_pw)
    }

    pub fn list(&self) -> Result<Vec<ProjectSummary>> {
        Ok(self.store.list()?.iter().map(|p| self.summary(p)).collect())
    }

    pub fn get(&self, name: &str) -> Result<ProjectSummary> {
        Ok(self.summary(&self.store.get(name)?))
    }

    /// Add a project. A password given in the input or inside the URI goes to the keyring.
    pub fn create(&self, input: &ProjectInput) -> Result<ProjectSummary> {
        self.create_with(input, false)
    }

    pub(crate) fn create_with(
        &self,
        input: &ProjectInput,
        sandbox: bool,
    ) -> Result<ProjectSummary> {
        crate::project::validate_name(&input.name)?;
        let (spec, pw_in_conn) = ConnSpec::from_input(&input.connection)?;
        spec.resolve(&ProcessEnv)?; // refuse what cannot be resolved now (unknown service...)
        let password = input
            .password
            .clone()
            .filter(|p| !p.is_empty())
            .or(pw_in_conn);
        if self.store.get(&input.name).is_ok() {
            return Err(Error::new(
                ErrorCode::ProjectExists,
                format!("A project named \"{}\" already exists.", input.name),
            ));
        }
        if let Some(pw) = &password {
            self.secrets.set(&input.name, SecretKind::Password, pw)?;
        }
        let project = Project {
            name: input.name.clone(),
            conn: spec,
            created_at: chrono::Utc::now(),
            pg_bin_dir: None,
            sandbox,
            storage: Default::default(),
            copy_target: None,
            otlp: None,
        };
        if let Err(e) = self.store.insert(project.clone()) {
            if password.is_some() {
                let _ = self.secrets.delete(&input.name, SecretKind::Password);
            }
            return Err(e);
        }
        Ok(self.summary(&project))
    }

    /// Change a project's name or connection. `password: None` keeps the stored password.
    pub fn update(&self, name: &str, input: &ProjectInput) -> Result<ProjectSummary> {
        let old = self.store.get(name)?;
        let (spec, pw_in_conn) = ConnSpec::from_input(&input.connection)?;
        spec.resolve(&ProcessEnv)?;
        let new_password = input
            .password
            .clone()
            .filter(|p| !p.is_empty())
            .or(pw_in_conn);
        let renamed = input.name != name;
        if renamed && !self.backup_ids(name)?.is_empty() {
            return Err(Error::invalid_input(
                "This project has backups; renaming it would separate them from their key. Keep the name.",
            ));
        }
        let project = Project {
            name: input.name.clone(),
            conn: spec,
            created_at: old.created_at,
            pg_bin_dir: old.pg_bin_dir.clone(),
            sandbox: old.sandbox,
            storage: old.storage.clone(),
            copy_target: old.copy_target.clone(),
            otlp: old.otlp.clone(),
        };
        self.store.replace(name, project.clone())?;
        if renamed {
            for kind in [
                SecretKind::Password,
                SecretKind::S3SecretKey,
                SecretKind::CopyS3SecretKey,
                SecretKind::OtlpHeader,
            ] {
                if let Some(v) = self.secrets.get(name, kind)? {
                    self.secrets.set(&input.name, kind, &v)?;
                }
                self.secrets.delete(name, kind)?;
            }
        }
        if let Some(pw) = &new_password {
            self.secrets.set(&input.name, SecretKind::Password, pw)?;
        }
        self.forget(name);
        Ok(self.summary(&project))
    }

    fn forget(&self, name: &str) {
        self.pools.lock().unwrap().remove(name);
        self.rings.lock().unwrap().remove(name);
        self.histories.lock().unwrap().remove(name);
        self.alert_engines.lock().unwrap().remove(name);
        self.latest.lock().unwrap().remove(name);
        self.probes.lock().unwrap().remove(name);
    }

    fn backup_ids(&self, name: &str) -> Result<Vec<String>> {
        self.storage(name)?.list()
    }

    /// Remove a project and its password. Its backups and backup key are deleted only when
    /// `delete_backups` is set; otherwise both are kept so the backups stay restorable.
    pub fn remove(&self, name: &str, delete_backups: bool) -> Result<()> {
        self.store.get(name)?;
        let dir = self.store.project_dir(name)?;
        self.secrets.delete(name, SecretKind::Password)?;
        if delete_backups {
            self.delete_remote_backups(name)?;
            self.secrets.delete(name, SecretKind::BackupKey)?;
            self.secrets.delete(name, SecretKind::BackupKeyNext)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io("deleting the project's backups", e))?;
            }
        }
        // The project's S3 settings go with it, and so do their secrets.
        self.secrets.delete(name, SecretKind::S3SecretKey)?;
        self.secrets.delete(name, SecretKind::CopyS3SecretKey)?;
        self.secrets.delete(name, SecretKind::OtlpHeader)?;
        self.store.remove(name)?;
        self.forget(name);
        // The history goes with the project (a new project of the same name starts afresh).
        crate::monitor::history::delete_files(&dir);
        Ok(())
    }

    /// Resolved settings and password of a project.
    fn credentials(&self, project: &Project) -> Result<(Resolved, Option<Zeroizing<String>>)> {
        let r = project.conn.resolve(&ProcessEnv)?;
        let stored = self.secrets.get(&project.name, SecretKind::Password)?;
        let pw = pick_password(stored.as_deref().map(|s| s.as_str()), &r, &ProcessEnv)
            .map(Zeroizing::new);
        Ok((r, pw))
    }

    /// The pool of a project, created on first use.
    pub fn pool(&self, name: &str) -> Result<Pool> {
        let project = self.store.get(name)?;
        let (r, pw) = self.credentials(&project)?;
        let mut pools = self.pools.lock().unwrap();
        if let Some((spec, old_pw, pool)) = pools.get(name) {
            if *spec == project.conn && old_pw.as_deref() == pw.as_deref() {
                return Ok(pool.clone());
            }
        }
        let pool = Pool::new(
            connect_options(&r, pw.as_deref().map(|s| s.as_str()), self.limits),
            self.pool_config.clone(),
        );
        pools.insert(name.to_string(), (project.conn.clone(), pw, pool.clone()));
        Ok(pool)
    }

    pub fn pool_metrics(&self, name: &str) -> Result<PoolMetrics> {
        Ok(self.pool(name)?.metrics())
    }

    pub async fn test(&self, name: &str) -> Result<ConnectionTest> {
        let pool = self.pool(name)?;
        let started = Instant::now();
        let mut conn = pool.acquire().await?;
        probe(&mut conn, started).await
    }

    /// Test settings before saving them; uses a one-off connection, not a pool.
    pub async fn test_input(&self, input: &ProjectInput) -> Result<ConnectionTest> {
        let (spec, pw_in_conn) = ConnSpec::from_input(&input.connection)?;
        let r = spec.resolve(&ProcessEnv)?;
        let typed = input
            .password
            .clone()
            .filter(|p| !p.is_empty())
            .or(pw_in_conn);
        // The stored password of a project is offered only to the server it was stored for:
        // a form edited to point elsewhere must not send it to another host.
        let stored = match (&typed, self.store.get(&input.name)) {
            (None, Ok(project)) => {
                let same_target = project
                    .conn
                    .resolve(&ProcessEnv)
                    .map(|old| {
                        (old.host, old.port, old.user) == (r.host.clone(), r.port, r.user.clone())
                    })
                    .unwrap_or(false);
                if same_target {
                    self.secrets
                        .get(&input.name, SecretKind::Password)
                        .ok()
                        .flatten()
                } else {
                    None
                }
            }
            _ => None,
        };
        let explicit = typed.map(Zeroizing::new).or(stored);
        let pw = pick_password(explicit.as_deref().map(|s| s.as_str()), &r, &ProcessEnv)
            .map(Zeroizing::new);
        let started = Instant::now();
        let mut conn = sqlx::PgConnection::connect_with(&connect_options(
            &r,
            pw.as_deref().map(|s| s.as_str()),
            self.limits,
        ))
        .await?;
        let res = probe(&mut conn, started).await;
        let _ = conn.close().await;
        res
    }

    pub fn backup_list(&self, name: &str) -> Result<Vec<BackupSummary>> {
        self.store.get(name)?;
        let storage = self.storage(name)?;
        if storage.list()?.is_empty() {
            return Ok(vec![]);
        }
        let kek = self.settled_backup_key(name)?;
        let (ok, bad) = repo::list(&storage, &kek)?;
        for (id, e) in bad {
            tracing::warn!(backup = %id, error = %e, "backup manifest is not usable");
        }
        let log = self.check_log(name)?;
        ok.iter()
            .map(|m| {
                let mut s = m.summary();
                s.last_check = log.reports(&m.backup_id)?.into_iter().next();
                Ok(s)
            })
            .collect()
    }
}

async fn probe(conn: &mut sqlx::PgConnection, started: Instant) -> Result<ConnectionTest> {
    let row = sqlx::query(sql!(
        "SELECT current_setting('server_version') AS v,
                current_setting('server_version_num')::int AS n,
                current_user::text AS u,
                current_database()::text AS d,
                coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl"
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok(ConnectionTest {
        server_version: row.get("v"),
        server_version_num: row.get("n"),
        current_user: row.get("u"),
        database: row.get("d"),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        ssl: row.get("ssl"),
    })
}
