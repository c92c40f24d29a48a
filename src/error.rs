//! The one error type of the core.
//!
//! Every failure a user can meet carries a stable machine-readable [`ErrorCode`], the SQLSTATE
//! when the server gave one, and a sentence a person can act on. The shell sends it to the
//! webview as `{code, message, sqlstate}`; the CLI prints it and exits non-zero.

use serde::Serialize;
use ts_rs::TS;

/// Stable codes. Scripts and the UI match on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The connection settings could not be parsed.
    InvalidConnection,
    /// A value the user gave is not acceptable (a project name, a database name...).
    InvalidInput,
    /// No project of that name exists.
    ProjectNotFound,
    /// A project of that name already exists.
    ProjectExists,
    /// The server refused the credentials (SQLSTATE 28P01 / 28000).
    AuthFailed,
    /// The role lacks a privilege the action needs (SQLSTATE 42501).
    PermissionDenied,
    /// The server could not be reached.
    ConnectFailed,
    /// The circuit breaker is open: recent attempts failed, new ones fail fast.
    CircuitOpen,
    /// No connection became free within the pool timeout.
    PoolTimeout,
    /// The server returned an error for a statement.
    QueryFailed,
    /// The OS keyring service is missing, locked or refused access.
    KeyringUnavailable,
    /// A secret expected in the keyring is not there.
    SecretMissing,
    /// A backup failed its authentication or digest checks.
    BackupCorrupt,
    /// No backup with that id.
    BackupNotFound,
    /// The key in the keyring does not open this backup.
    WrongKey,
    /// A PostgreSQL client or server program of the needed version is missing.
    ToolMissing,
    /// An external program (pg_dump, pg_restore, initdb...) failed.
    ToolFailed,
    /// A destructive action was asked for without the confirmation it needs.
    ConfirmationRequired,
    /// The operation was cancelled.
    Cancelled,
    /// Another job holds what this one needs (e.g. a backup is running in the same repository).
    Busy,
    /// Reading or writing local files failed.
    Io,
    /// The backup storage (an S3 service) refused or failed a request, or an object that must
    /// not be replaced already exists there.
    StorageFailed,
    /// A maintenance action id from an earlier plan is not in the plan now (the statistics
    /// changed, or the object is gone): show the plan again.
    PlanChanged,
    /// The OTLP endpoint could not be reached (refused, unresolvable, timed out), even after
    /// retries.
    OtlpUnreachable,
    /// The OTLP endpoint answered the export with an error status.
    OtlpRejected,
    /// Anything else; the message says what.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidConnection => "invalid_connection",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::ProjectNotFound => "project_not_found",
            ErrorCode::ProjectExists => "project_exists",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::ConnectFailed => "connect_failed",
            ErrorCode::CircuitOpen => "circuit_open",
            ErrorCode::PoolTimeout => "pool_timeout",
            ErrorCode::QueryFailed => "query_failed",
            ErrorCode::KeyringUnavailable => "keyring_unavailable",
            ErrorCode::SecretMissing => "secret_missing",
            ErrorCode::BackupCorrupt => "backup_corrupt",
            ErrorCode::BackupNotFound => "backup_not_found",
            ErrorCode::WrongKey => "wrong_key",
            ErrorCode::ToolMissing => "tool_missing",
            ErrorCode::ToolFailed => "tool_failed",
            ErrorCode::ConfirmationRequired => "confirmation_required",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Io => "io",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::Busy => "busy",
            ErrorCode::PlanChanged => "plan_changed",
            ErrorCode::OtlpUnreachable => "otlp_unreachable",
            ErrorCode::OtlpRejected => "otlp_rejected",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error every core API returns.
#[derive(Debug, Clone, Serialize, TS, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// SQLSTATE reported by the server, when there was one.
    pub sqlstate: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            sqlstate: None,
        }
    }

    pub fn with_sqlstate(mut self, sqlstate: Option<String>) -> Self {
        self.sqlstate = sqlstate;
        self
    }

    /// Put a sentence in front of the message, keeping the code and the SQLSTATE.
    pub fn with_context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidInput, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }

    pub fn io(context: &str, err: std::io::Error) -> Self {
        Error::new(ErrorCode::Io, format!("{context}: {err}"))
    }

    /// The error a storage layer carried through an `io::Error`, if there is one.
    pub fn inside_io(err: &std::io::Error) -> Option<Error> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .cloned()
    }

    /// Like [`Error::io`], but keeps the code of an error that a storage layer carried through
    /// the `io::Error` (an S3 failure stays `storage_failed`).
    pub fn from_io(context: &str, err: std::io::Error) -> Self {
        match Error::inside_io(&err) {
            Some(inner) => inner.with_context(context),
            None => Error::io(context, err),
        }
    }

    /// Translate a driver error, keeping the SQLSTATE and choosing the code a user would expect.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => {
                let state = db.code().map(|c| c.to_string());
                let code = match state.as_deref() {
                    Some("28P01") | Some("28000") => ErrorCode::AuthFailed,
                    Some("42501") => ErrorCode::PermissionDenied,
                    Some(s) if s.starts_with("08") || s == "3D000" || s == "57P03" => {
                        ErrorCode::ConnectFailed
                    }
                    _ => ErrorCode::QueryFailed,
                };
                let message = match code {
                    ErrorCode::AuthFailed => format!(
                        "The server refused the user name or password ({}). Check the password stored for this project.",
                        db.message()
                    ),
                    ErrorCode::PermissionDenied => format!(
                        "The role lacks a privilege this needs: {}",
                        db.message()
                    ),
                    _ => db.message().to_string(),
                };
                Error::new(code, message).with_sqlstate(state)
            }
            sqlx::Error::Io(e) => Error::new(
                ErrorCode::ConnectFailed,
                format!("Could not reach the server: {e}"),
            ),
            sqlx::Error::Tls(e) => Error::new(
                ErrorCode::ConnectFailed,
                format!("TLS negotiation with the server failed: {e}"),
            ),
            sqlx::Error::PoolTimedOut => Error::new(
                ErrorCode::PoolTimeout,
                "No connection became available in time.",
            ),
            sqlx::Error::Configuration(e) => Error::new(
                ErrorCode::InvalidConnection,
                format!("Invalid connection settings: {e}"),
            ),
            _ => Error::new(ErrorCode::QueryFailed, err.to_string()),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::from_sqlx(err)
    }
}
