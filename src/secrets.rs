//! Secrets in the OS keyring (Secret Service on Linux): database passwords, each project's
//! backup key-encryption key, the secret access keys of its S3 backup storage, and the header value
//! (a token) of its OTLP exports. Nothing here ever writes a secret to a file or a log.

use base64::Engine;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorCode, Result};

/// Keyring service name; `PGSTEWARD_KEYRING_SERVICE` lets test builds keep apart from real data.
pub fn service() -> String {
    std::env::var("PGSTEWARD_KEYRING_SERVICE").unwrap_or_else(|_| "pgsteward".to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The database password of a project.
    Password,
    /// The 256-bit key that wraps the data keys of the project's backups.
    BackupKey,
    /// The key a rotation is moving to, until the rotation completes.
    BackupKeyNext,
    /// The secret access key of the S3 storage of the project's backups.
    S3SecretKey,
    /// The secret access key of the S3 storage that backups are copied to.
    CopyS3SecretKey,
    /// The value of the header sent with OTLP exports (e.g. a bearer token).
    OtlpHeader,
}

impl SecretKind {
    fn suffix(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::BackupKey => "backup-key",
            SecretKind::BackupKeyNext => "backup-key-next",
            SecretKind::S3SecretKey => "s3-secret-key",
            SecretKind::CopyS3SecretKey => "copy-s3-secret-key",
            SecretKind::OtlpHeader => "otlp-header",
        }
    }
}

/// Secrets of one data folder. Entries are named `<scope>/project/<name>/<kind>`, where the scope
/// is the data folder's instance id, so two data folders (a test profile and the real one) never
/// see each other's secrets even for projects of the same name.
#[derive(Debug, Clone)]
pub struct Secrets {
    scope: String,
}

impl Secrets {
    pub fn new(scope: impl Into<String>) -> Self {
        Secrets {
            scope: scope.into(),
        }
    }

    fn entry(&self, project: &str, kind: SecretKind) -> Result<keyring::Entry> {
        keyring::Entry::new(
            &service(),
            &format!("{}/project/{project}/{}", self.scope, kind.suffix()),
        )
        .map_err(Self::map_err)
    }

    fn map_err(e: keyring::Error) -> Error {
        match e {
        keyring::Error::NoEntry => Error::new(ErrorCode::SecretMissing, "The secret is not in the keyring."),
        keyring::Error::NoStorageAccess(inner) | keyring::Error::PlatformFailure(inner) => Error::new(
            ErrorCode::KeyringUnavailable,
            format!(
                "The OS keyring is not available ({inner}). pgsteward keeps passwords and backup keys only there. \
                 Start and unlock a Secret Service provider (GNOME Keyring or KWallet) in your desktop session; \
                 on a server run inside `dbus-run-session` and unlock it with `gnome-keyring-daemon --unlock`."
            ),
        ),
        other => Error::new(ErrorCode::KeyringUnavailable, format!("Keyring error: {other}")),
    }
    }

    pub fn set(&self, project: &str, kind: SecretKind, value: &str) -> Result<()> {
        self.entry(project, kind)?
            .set_password(value)
            .map_err(Self::map_err)
    }

    /// The secret, or `None` when there is none.
    pub fn get(&self, project: &str, kind: SecretKind) -> Result<Option<Zeroizing<String>>> {
        match self.entry(project, kind)?.get_password() {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(Self::map_err(e)),
        }
    }

    pub fn delete(&self, project: &str, kind: SecretKind) -> Result<()> {
        match self.entry(project, kind)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(Self::map_err(e)),
        }
    }

    /// Check the keyring answers at all, with a clear error when it does not.
    pub fn probe(&self) -> Result<()> {
        self.get("__probe__", SecretKind::Password).map(|_| ())
    }

    /// A stored 256-bit key, or `None` when there is none.
    pub fn key(&self, project: &str, kind: SecretKind) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let Some(text) = self.get(project, kind)? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| {
                    Error::new(
                        ErrorCode::WrongKey,
                        "The backup key in the keyring is not valid base64.",
                    )
                })?,
        );
        if bytes.len() != 32 {
            return Err(Error::new(
                ErrorCode::WrongKey,
                "The backup key in the keyring is not 256 bits long.",
            ));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes);
        Ok(Some(key))
    }

    /// Store a 256-bit key and read it back: a keyring that silently drops writes must not
    /// yield backups nobody can read.
    pub fn set_key(&self, project: &str, kind: SecretKind, key: &[u8; 32]) -> Result<()> {
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
        self.set(project, kind, &text)?;
        match self.get(project, kind)? {
            Some(t) if *t == *text => Ok(()),
            _ => Err(Error::new(
                ErrorCode::KeyringUnavailable,
                "The keyring accepted the backup key but did not return it; refusing to use a key that could be lost.",
            )),
        }
    }

    /// The project's backup key, created on first use.
    pub fn backup_key(&self, project: &str) -> Result<Zeroizing<[u8; 32]>> {
        if let Some(key) = self.key(project, SecretKind::BackupKey)? {
            return Ok(key);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, key.as_mut());
        self.set_key(project, SecretKind::BackupKey, &key)?;
        Ok(key)
    }
}
