//! Backups: repository format, crypto, logical source and restore.
//!
//! Stages are kept apart (source → codec → crypto → storage) so the backup platform can add
//! storage services, physical backups and WAL archiving without reshaping the path.

pub mod checks;
pub mod codec;
pub mod copy;
pub(crate) mod copy_session;
pub mod crypto;
pub mod directory;
pub mod facts;
pub mod fetch;
pub mod kit;
pub mod local;
pub mod logical;
pub mod pipeline;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod s3;
pub mod scratch;
pub mod split_copy;
pub mod storage;
pub mod stream;
pub mod verify;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use repo::{BackupSummary, LocalStorage, Manifest, ObjectWriter, Storage};
pub use retention::{PruneDecision, RetentionPolicy};
pub use s3::{S3Settings, S3Storage};
pub use storage::StorageSettings;
pub use verify::{VerifyReport, VerifyTier};

/// Where a restore goes.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestoreTarget {
    /// Create this database and restore into it.
    NewDatabase { name: String },
    /// Replace the contents of the backed-up database; `confirm` must repeat its name.
    SameDatabase { confirm: String },
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct RestoreReport {
    pub backup_id: String,
    pub database: String,
    #[ts(type = "number")]
    pub bytes: u64,
    #[ts(type = "number")]
    pub duration_ms: u64,
    /// What the user should know: globals statements that were skipped.
    pub notes: Vec<String>,
}
