//! Projects: one PostgreSQL target each, with its settings and its own folder.
//!
//! The list lives in `projects.json` in the data folder, shared by the GUI and the CLI; writes
//! take a file lock and replace the file atomically. A project's folder (backups, later its
//! history) is `projects/<name>/`, so names are checked to never escape it. Secrets are not
//! here: they are in the keyring (see [`crate::secrets`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use fs2::FileExt;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::backup::{S3Settings, StorageSettings};
use crate::conn::spec::{ConnSpec, ConnectionInput, SslMode};
use crate::error::{Error, ErrorCode, Result};

/// The data folder: `PGSTEWARD_HOME`, else the platform data folder + `pgsteward`.
pub fn data_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("PGSTEWARD_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pgsteward")
}

/// A stored project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Project {
    pub name: String,
    pub conn: ConnSpec,
    pub created_at: DateTime<Utc>,
    /// Folder holding pg_dump/pg_restore to use, when the user chose one.
    #[serde(default)]
    pub pg_bin_dir: Option<String>,
    /// True for the sandbox cluster pgsteward runs itself.
    #[serde(default)]
    pub sandbox: bool,
    /// Where backups are written (local folder unless set).
    #[serde(default)]
    pub storage: StorageSettings,
    /// A second storage that `backup copy` copies backups to.
    #[serde(default)]
    pub copy_target: Option<S3Settings>,
    /// Where each sample's metrics are exported over OTLP, when set.
    #[serde(default)]
    pub otlp: Option<crate::monitor::otlp::OtlpSettings>,
}

/// What the UI and CLI show of a project. Holds no secret, only whether one is stored.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ProjectSummary {
    pub name: String,
    pub description: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    pub service: Option<String>,
    pub has_password: bool,
    pub sandbox: bool,
    pub created_at: String,
}

/// A project as entered in the form or on the command line.
#[derive(Debug, Clone, Deserialize, Serialize, TS)]
pub struct ProjectInput {
    pub name: String,
    pub connection: ConnectionInput,
    /// Typed password; `None` keeps the stored one (on edit) or uses PGPASSWORD/.pgpass.
    pub password: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    projects: Vec<Project>,
}

/// Refuse names that are empty, too long, or could escape the project's folder.
pub fn validate_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name.chars().count() > 64 {
        Some("is longer than 64 characters")
    } else if name == "." || name == ".." || name.starts_with('.') {
        Some("starts with a dot")
    } else if name.contains(['/', '\\']) {
        Some("contains a slash")
    } else if name.chars().any(|c| c.is_control()) {
        Some("contains a control character")
    } else if name.trim() != name {
        Some("starts or ends with a space")
    } else if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
    {
        Some("may contain only letters, digits, spaces, '-', '_' and '.'")
    } else {
        None
    };
    match why {
        Some(w) => Err(Error::invalid_input(format!(
            "The project name \"{}\" {w}.",
            name.escape_default()
        ))),
        None => Ok(()),
    }
}

/// The projects of one data folder.
#[derive(Debug, Clone)]
pub struct ProjectStore {
    root: PathBuf,
}

impl ProjectStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("projects"))
            .map_err(|e| Error::io("creating the data folder", e))?;
        Ok(ProjectStore { root })
    }

    pub fn open_default() -> Result<Self> {
        Self::open(data_dir())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Random id of this data folder, made on first use; scopes its keyring entries.
    pub fn instance_id(&self) -> Result<String> {
        let path = self.root.join("instance-id");
        match fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let tmp = self.root.join("instance-id.tmp");
                fs::write(&tmp, &id).map_err(|e| Error::io("writing the instance id", e))?;
                // Another process may have raced us: keep whichever landed first.
                if fs::hard_link(&tmp, &path).is_err() {
                    let _ = fs::remove_file(&tmp);
                    return fs::read_to_string(&path)
                        .map(|s| s.trim().to_string())
                        .map_err(|e| Error::io("reading the instance id", e));
                }
                let _ = fs::remove_file(&tmp);
                Ok(id)
            }
        }
    }

    fn file(&self) -> PathBuf {
        self.root.join("projects.json")
    }

    /// Folder of one project (backups and later history live under it).
    pub fn project_dir(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self.root.join("projects").join(name))
    }

    fn read(&self) -> Result<StoreFile> {
        match fs::read(self.file()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    ErrorCode::Io,
                    format!(
                        "{} is damaged ({e}); fix or move it away",
                        self.file().display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile {
                version: 1,
                projects: vec![],
            }),
            Err(e) => Err(Error::io("reading projects.json", e)),
        }
    }

    /// Run `f` on the list under an exclusive lock and save the result atomically.
    fn update<T>(&self, f: impl FnOnce(&mut Vec<Project>) -> Result<T>) -> Result<T> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("projects.lock"))
            .map_err(|e| Error::io("opening the project lock", e))?;
        lock.lock_exclusive()
            .map_err(|e| Error::io("locking projects", e))?;
        let mut store = self.read()?;
        let out = f(&mut store.projects)?;
        store.version = 1;
        let tmp = self.root.join("projects.json.tmp");
        {
            let mut file = fs::File::create(&tmp).map_err(|e| Error::io("writing projects", e))?;
            file.write_all(&serde_json::to_vec_pretty(&store).expect("serializable"))
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io("writing projects", e))?;
        }
        fs::rename(&tmp, self.file()).map_err(|e| Error::io("saving projects", e))?;
        let _ = FileExt::unlock(&lock);
        Ok(out)
    }

    pub fn list(&self) -> Result<Vec<Project>> {
        let mut p = self.read()?.projects;
        p.sort_by_key(|a| a.name.to_lowercase());
        Ok(p)
    }

    pub fn get(&self, name: &str) -> Result<Project> {
        self.read()?
            .projects
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ProjectNotFound,
                    format!("There is no project named \"{name}\"."),
                )
            })
    }

    pub fn insert(&self, project: Project) -> Result<()> {
        validate_name(&project.name)?;
        self.update(|list| {
            if list.iter().any(|p| p.name == project.name) {
                return Err(Error::new(
                    ErrorCode::ProjectExists,
                    format!("A project named \"{}\" already exists.", project.name),
                ));
            }
            list.push(project);
            Ok(())
        })
    }

    /// Replace `old_name` with `project` (which may carry a new name).
    pub fn replace(&self, old_name: &str, project: Project) -> Result<()> {
        validate_name(&project.name)?;
        self.update(|list| {
            if project.name != old_name && list.iter().any(|p| p.name == project.name) {
                return Err(Error::new(
                    ErrorCode::ProjectExists,
                    format!("A project named \"{}\" already exists.", project.name),
                ));
            }
            let slot = list
                .iter_mut()
                .find(|p| p.name == old_name)
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::ProjectNotFound,
                        format!("There is no project named \"{old_name}\"."),
                    )
                })?;
            *slot = project;
            Ok(())
        })
    }

    pub fn remove(&self, name: &str) -> Result<Project> {
        self.update(|list| {
            let idx = list.iter().position(|p| p.name == name).ok_or_else(|| {
                Error::new(
                    ErrorCode::ProjectNotFound,
                    format!("There is no project named \"{name}\"."),
                )
            })?;
            Ok(list.remove(idx))
        })
    }
}

impl Project {
    pub fn summary(&self, has_password: bool) -> ProjectSummary {
        ProjectSummary {
            name: self.name.clone(),
            description: self.conn.describe(),
            host: self.conn.host.clone(),
            port: self.conn.port,
            user: self.conn.user.clone(),
            dbname: self.conn.dbname.clone(),
            sslmode: self.conn.sslmode,
            service: self.conn.service.clone(),
            has_password,
            sandbox: self.sandbox,
            created_at: self.created_at.to_rfc3339(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "",
            "../x",
            "/",
            "a/b",
            "..",
            ".hidden",
            "a\\b",
            "tab\there",
            " lead",
            "x;y",
        ] {
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                ErrorCode::InvalidInput,
                "{bad:?}"
            );
        }
        for good in ["prod", "Prod EU-1", "billing_db.v2", "Ünïcode"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn store_round_trip_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectStore::open(dir.path()).unwrap();
        let p = Project {
            name: "a".into(),
            conn: ConnSpec::default(),
            created_at: Utc::now(),
            pg_bin_dir: None,
            sandbox: false,
            storage: StorageSettings::default(),
            copy_target: None,
            otlp: None,
        };
        store.insert(p.clone()).unwrap();
        assert_eq!(
            store.insert(p.clone()).unwrap_err().code,
            ErrorCode::ProjectExists
        );
        let mut renamed = p.clone();
        renamed.name = "b".into();
        store.replace("a", renamed).unwrap();
        assert_eq!(store.get("a").unwrap_err().code, ErrorCode::ProjectNotFound);
        assert_eq!(store.list().unwrap().len(), 1);
        // a second store on the same folder (another process) sees the same projects
        let other = ProjectStore::open(dir.path()).unwrap();
        assert_eq!(other.get("b").unwrap().name, "b");
        store.remove("b").unwrap();
        assert!(other.list().unwrap().is_empty());
    }

    #[test]
    fn projects_saved_before_storage_settings_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("projects.json"),
            r#"{"version":1,"projects":[{"name":"old","conn":{},"created_at":"2025-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
        let store = ProjectStore::open(dir.path()).unwrap();
        let p = store.get("old").unwrap();
        assert_eq!(p.storage, StorageSettings::Local);
        assert!(p.copy_target.is_none());
    }
}
