//! S3-compatible object storage for a backup repository.
//!
//! A project's repository is a folder (`<prefix>/<project>/`) inside a bucket. The [`Storage`]
//! trait is synchronous (the backup pipeline runs on blocking threads), so every call here drives
//! the async client on the caller's tokio runtime. Large objects go up as multipart uploads in
//! bounded parts while they are produced and come down as streams; only one part is ever held in
//! memory. Manifests and the key-check record use create-only puts: an existing one is never
//! overwritten. Transient failures are retried with exponential backoff.

use std::future::Future;
use std::io::{self, Read};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::repo::{ObjectWriter, Storage};
use crate::error::{Error, ErrorCode, Result};

mod transfer;
use transfer::{S3Reader, S3Writer};

/// Smallest part S3 accepts (except for the last one).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Part size of multipart uploads unless configured otherwise.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Where a project's backups live in an S3-compatible service. The secret access key is not
/// here: it is kept in the OS keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct S3Settings {
    pub bucket: String,
    /// Folder inside the bucket; each project gets its own folder below it.
    #[serde(default)]
    pub prefix: String,
    /// Endpoint URL of an S3-compatible service; `None` means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// Allow plain-HTTP endpoints (only for services on a trusted network).
    #[serde(default)]
    pub allow_http: bool,
    pub access_key_id: String,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

impl S3Settings {
    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::invalid_input(why.to_string()));
        if self.bucket.is_empty()
            || self.bucket.contains('/')
            || self.bucket.chars().any(char::is_whitespace)
        {
            return bad("The S3 bucket name must be non-empty, without slashes or spaces.");
        }
        if self.access_key_id.trim().is_empty() {
            return bad("The S3 access key id is empty.");
        }
        if self.region.trim().is_empty() {
            return bad("The S3 region is empty.");
        }
        if self.prefix.split('/').any(|p| p == "." || p == "..") {
            return bad("The S3 prefix may not contain '.' or '..' folders.");
        }
        if let Some(ep) = &self.endpoint {
            let url = url::Url::parse(ep).map_err(|e| {
                Error::invalid_input(format!("The S3 endpoint {ep:?} is not a URL: {e}"))
            })?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return bad("The S3 endpoint uses plain HTTP; say --s3-allow-http to allow it.")
                }
                _ => return bad("The S3 endpoint must be an http(s) URL."),
            }
        }
        Ok(())
    }

    /// `s3://bucket/prefix/project` and the endpoint, for messages and lists.
    pub fn describe(&self, project: &str) -> String {
        let mut parts: Vec<&str> = self.prefix.split('/').filter(|p| !p.is_empty()).collect();
        parts.push(project);
        let at = self
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        format!("s3://{}/{}{at}", self.bucket, parts.join("/"))
    }
}

/// A repository in an S3 bucket.
pub struct S3Storage {
    store: Arc<AmazonS3>,
    /// Path parts of the project's folder inside the bucket.
    root: Vec<String>,
    part_size: usize,
    desc: String,
}

impl S3Storage {
    /// Open the repository of `project`. Nothing is contacted until the first call.
    pub fn new(
        settings: &S3Settings,
        project: &str,
        secret_access_key: &str,
        part_size: usize,
    ) -> Result<S3Storage> {
        settings.validate()?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 5,
            retry_timeout: Duration::from_secs(120),
        };
        let options = ClientOptions::new()
            .with_timeout(Duration::from_secs(300))
            .with_connect_timeout(Duration::from_secs(10))
            .with_allow_http(settings.allow_http);
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(secret_access_key)
            .with_allow_http(settings.allow_http)
            .with_virtual_hosted_style_request(false)
            .with_retry(retry)
            .with_client_options(options);
        if let Some(ep) = &settings.endpoint {
            b = b.with_endpoint(ep);
        }
        let store = b.build().map_err(|e| {
            Error::new(
                ErrorCode::InvalidInput,
                format!("The S3 settings are not usable: {e}"),
            )
        })?;
        let mut root: Vec<String> = settings
            .prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        root.push(project.to_string());
        Ok(S3Storage {
            store: Arc::new(store),
            root,
            part_size: part_size.max(MIN_PART_SIZE),
            desc: settings.describe(project),
        })
    }

    fn path(&self, key: &str) -> Result<Path> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Error::invalid_input(format!("invalid storage key {key:?}")));
        }
        Ok(Path::from_iter(
            self.root.iter().map(String::as_str).chain(key.split('/')),
        ))
    }

    fn root_path(&self) -> Path {
        Path::from_iter(self.root.iter().map(String::as_str))
    }

    fn fail(&self, what: &str, e: object_store::Error) -> Error {
        storage_error(&self.desc, what, &e)
    }
}

fn storage_error(desc: &str, what: &str, e: &object_store::Error) -> Error {
    let text = e.to_string();
    let refused = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
        "403",
    ]
    .iter()
    .any(|s| text.contains(s));
    let hint = if refused {
        " The S3 service refused the request's credentials: check the access key id and the secret \
         access key (pgsteward project storage)."
    } else {
        ""
    };
    Error::new(
        ErrorCode::StorageFailed,
        format!("S3 {what} failed ({desc}): {text}.{hint}"),
    )
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// Run a future to completion from synchronous code: on the current multi-threaded runtime
/// (from a blocking thread, or by moving a worker aside), else on a small runtime of our own.
fn block<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        _ => {
            static OWN: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
            let rt = OWN.get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("pgsteward-s3")
                    .enable_all()
                    .build()
                    .expect("tokio runtime for S3")
            });
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut))
                    .join()
                    .expect("S3 call panicked")
            })
        }
    }
}

fn io_err(e: Error) -> io::Error {
    io::Error::other(e)
}

impl Storage for S3Storage {
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer::new(
            self.store.clone(),
            self.path(key)?,
            self.desc.clone(),
            self.part_size,
        )))
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path(key)?;
        let res = block(self.store.get(&path)).map_err(|e| {
            if is_not_found(&e) {
                Error::new(
                    ErrorCode::BackupCorrupt,
                    format!("the backup object {key} is missing"),
                )
            } else {
                self.fail("download", e)
            }
        })?;
        let size = res.meta.size;
        Ok(Box::new(S3Reader::new(
            self.store.clone(),
            path,
            self.desc.clone(),
            size,
            res.into_stream(),
        )))
    }

    fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        block(
            self.store
                .put(&path, PutPayload::from(Bytes::copy_from_slice(bytes))),
        )
        .map(|_| ())
        .map_err(|e| self.fail("upload", e))
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let exists = || {
            Error::new(
                ErrorCode::StorageFailed,
                format!(
                    "{key} already exists in {}; it is never overwritten.",
                    self.desc
                ),
            )
        };
        // The service is asked to refuse an existing object (If-None-Match); the look first
        // also covers services that ignore that condition.
        if self.size(key)?.is_some() {
            return Err(exists());
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match block(self.store.put_opts(
            &path,
            PutPayload::from(Bytes::copy_from_slice(bytes)),
            opts,
        )) {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
            Err(e) => Err(self.fail("upload", e)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let r = block(async move {
            let res = store.get(&path).await?;
            res.bytes().await
        });
        match r {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail("download", e)),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        let root = self.root_path();
        let res = block(self.store.list_with_delimiter(Some(&root)))
            .map_err(|e| self.fail("listing", e))?;
        Ok(res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix)?;
        let store = self.store.clone();
        block(async move {
            let mut found: Vec<Path> = store
                .list(Some(&path))
                .map(|m| m.map(|m| m.location))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<object_store::Result<_>>()?;
            // A key that is an object itself (not a folder), like the key-check record.
            if found.is_empty() {
                match store.head(&path).await {
                    Ok(_) => found.push(path),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            for loc in found {
                match store.delete(&loc).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .map_err(|e| self.fail("delete", e))
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match block(self.store.head(&path)) {
            Ok(m) => Ok(Some(m.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail("metadata request", e)),
        }
    }

    fn read_at(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(vec![]);
        }
        let path = self.path(key)?;
        let store = self.store.clone();
        let r = block(async move {
            let size = store.head(&path).await?.size;
            if offset >= size {
                return Ok(Bytes::new());
            }
            let end = size.min(offset + len as u64);
            store.get_range(&path, offset..end).await
        });
        r.map(|b| b.to_vec())
            .map_err(|e| self.fail("ranged read", e))
    }

    fn describe(&self) -> String {
        self.desc.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        S3Settings {
            bucket: "b".into(),
            prefix: "backups/team".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            allow_http: true,
            access_key_id: "AK".into(),
        }
    }

    #[test]
    fn keys_live_under_the_project_folder() {
        let s = S3Storage::new(&settings(), "my proj", "secret", 1).unwrap();
        assert_eq!(s.part_size, MIN_PART_SIZE);
        let p = s.path("20250101T000000Z-abcd/manifest.json").unwrap();
        assert!(p.as_ref().starts_with("backups/team/my"));
        assert!(p.as_ref().ends_with("/20250101T000000Z-abcd/manifest.json"));
        for bad in ["", "/x", "a//b", "../x", "a/./b"] {
            assert!(s.path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            s.describe(),
            "s3://b/backups/team/my proj at http://127.0.0.1:9000"
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut s = settings();
        s.allow_http = false;
        assert!(s.validate().is_err(), "plain http needs allow_http");
        let mut s = settings();
        s.bucket = "a/b".into();
        assert!(s.validate().is_err());
        let mut s = settings();
        s.access_key_id = " ".into();
        assert!(s.validate().is_err());
        settings().validate().unwrap();
    }

    #[test]
    fn old_settings_files_load_with_defaults() {
        let s: S3Settings = serde_json::from_str(r#"{"bucket":"b","access_key_id":"k"}"#).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.prefix, "");
        assert!(!s.allow_http && s.endpoint.is_none());
    }
}
