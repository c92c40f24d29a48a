//! Backups in S3 storage, against a local S3-compatible server (s3s-fs) that checks request
//! signatures: round trips, what lands in the bucket, wrong credentials, create-only manifests,
//! multipart uploads, a server that goes away mid-upload, and the verification tiers
//! (copies to a second bucket are in s3_copy.rs).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsteward::backup::{
    RestoreTarget, S3Settings, S3Storage, Storage, StorageSettings, VerifyTier,
};
use pgsteward::jobs::{CancelToken, JobProgress, ProgressSink};
use pgsteward::{ErrorCode, Steward};
use tempfile::TempDir;

use crate::harness::{cli_json, largest_object, quiet, table_checksums, Home, Pg};
use crate::on_each_version;

pub(crate) const BUCKET: &str = "backups";
pub(crate) const COPY_BUCKET: &str = "offsite";

/// A local s3s-fs server on a free port, with random credentials, serving a temporary folder
/// (each bucket is a folder in it). Stopped on drop.
pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    root: TempDir,
}

fn s3s_fs_binary() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let in_cargo = home.join(".cargo/bin/s3s-fs");
    if in_cargo.is_file() {
        return in_cargo;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("s3s-fs");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("s3s-fs (a local S3-compatible server) is required for the S3 tests: run scripts/install-deps.sh");
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        for b in [BUCKET, COPY_BUCKET] {
            std::fs::create_dir(root.path().join(b)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = S3Server {
            child: None,
            port,
            access_key: format!("AK{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            secret_key: uuid::Uuid::new_v4().simple().to_string(),
            root,
        };
        s.resume();
        s
    }

    /// Start (again) on the same port and folder.
    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn settings(&self, bucket: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            prefix: "pgsteward/test".into(),
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            allow_http: true,
            access_key_id: self.access_key.clone(),
        }
    }

    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.path().join(bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn named(files: &[PathBuf], name: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()) == Some(name))
        .cloned()
        .collect()
}

const SCHEMA: &str = r#"
CREATE TABLE "Ärger's Tabelle" (id serial PRIMARY KEY, wert text, doc jsonb);
INSERT INTO "Ärger's Tabelle" (wert, doc) SELECT 'Grüße ✓ ' || g, jsonb_build_object('n', g) FROM generate_series(1, 3000) g;
CREATE TABLE orders (id int PRIMARY KEY, amount numeric(12,2));
INSERT INTO orders SELECT g, g * 1.25 FROM generate_series(1, 5000) g;
"#;

/// Incompressible-ish text: ~19 MiB of md5 hex, well over 6 MiB after zstd.
const NOISE: &str = "CREATE TABLE noise AS SELECT g, md5(g::text || random()::text) || md5(random()::text) || md5(random()::text) AS t FROM generate_series(1, 200000) g";

fn home_with_part_size(part: usize) -> Home {
    let dir = tempfile::tempdir().unwrap();
    let st = Steward::open(dir.path()).unwrap().with_s3_part_size(part);
    Home { dir, st }
}

pub(crate) fn setup(major: u32, home: Home, s3: &S3Server) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql("app", SCHEMA);
    home.add_uri("app", &pg.uri("app"));
    home.st
        .set_storage(
            "app",
            StorageSettings::S3(s3.settings(BUCKET)),
            Some(&s3.secret_key),
            true,
        )
        .unwrap();
    (pg, home)
}

pub(crate) async fn restore_new(home: &Home, id: &str, db: &str) {
    home.st
        .backup_restore(
            "app",
            id,
            &RestoreTarget::NewDatabase { name: db.into() },
            quiet(),
            CancelToken::default(),
        )
        .await
        .unwrap();
}

async fn s3_backup_restores_identical_tables(major: u32) {
    let s3 = S3Server::start();
    let (pg, home) = setup(major, Home::new(), &s3);
    let before = table_checksums(&pg, "app");
    assert_eq!(before.len(), 2);

    let info = home.st.storage_info("app").unwrap();
    assert!(info.has_secret && info.location.starts_with("s3://backups/pgsteward/test/app"));
    // The secret is in the keyring, never in the project file.
    let projects = std::fs::read_to_string(home.path().join("projects.json")).unwrap();
    assert!(projects.contains(&s3.access_key) && !projects.contains(&s3.secret_key));

    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let listed: Vec<String> = home
        .st
        .backup_list("app")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(listed, vec![b.id.clone()]);

    // The objects are in the bucket, under the project's folder, and none is plaintext.
    let folder = s3.bucket_dir(BUCKET).join("pgsteward/test/app");
    assert!(folder.join(&b.id).join("dump/toc.dat.zst.sealed").is_file());
    assert!(folder.join(&b.id).join("manifest.json").is_file());
    assert!(folder.join("keycheck.json").is_file());
    // (Manifests are authenticated, not encrypted: they name tables and count rows, but hold
    // no row data.)
    for f in files_under(&s3.bucket_dir(BUCKET)) {
        let raw = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("Grüße"), "{f:?} holds row data");
        if f.to_string_lossy().ends_with(".sealed") {
            assert!(
                !text.contains("Ärger") && !text.contains("orders"),
                "{f:?} is plaintext"
            );
        }
    }
    assert!(!home
        .path()
        .join("projects/app/backups")
        .join(&b.id)
        .exists());

    restore_new(&home, &b.id, "app_from_s3").await;
    assert_eq!(table_checksums(&pg, "app_from_s3"), before);

    // Create-only: a manifest is never overwritten, not even with its own bytes.
    let storage = S3Storage::new(&s3.settings(BUCKET), "app", &s3.secret_key, 0).unwrap();
    let key = format!("{}/manifest.json", b.id);
    let original = storage.get(&key).unwrap().unwrap();
    let err = storage.put_new(&key, b"{\"forged\": true}").unwrap_err();
    assert_eq!(err.code, ErrorCode::StorageFailed, "{err:?}");
    assert!(err.message.contains("never overwritten"), "{}", err.message);
    assert_eq!(storage.get(&key).unwrap().unwrap(), original);
    assert_eq!(home.st.backup_list("app").unwrap().len(), 1);

    // Verification tiers read through S3: quick (sizes), sampled (ranged reads), full.
    for tier in [VerifyTier::Quick, VerifyTier::Sampled, VerifyTier::Full] {
        let r = home
            .st
            .backup_verify("app", Some(&b.id), tier, 0.5, quiet())
            .await
            .unwrap();
        assert!(r.len() == 1 && r[0].ok, "{tier:?}: {r:?}");
        if tier != VerifyTier::Quick {
            assert!(r[0].bytes_read > 0);
        }
    }
    // A byte flipped in the stored object is caught by the full check.
    let obj = largest_object(&folder.join(&b.id));
    let mut raw = std::fs::read(&obj).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x40;
    std::fs::write(&obj, &raw).unwrap();
    let r = home
        .st
        .backup_verify("app", Some(&b.id), VerifyTier::Full, 1.0, quiet())
        .await
        .unwrap();
    assert!(!r[0].ok, "{r:?}");
}
on_each_version!(s3_backup_restores_identical_tables);

async fn wrong_secret_is_refused_and_nothing_listed(major: u32) {
    let s3 = S3Server::start();
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql("app", SCHEMA);
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));

    // Checked before saving: the server's signature check refuses it, nothing changes.
    let err = home
        .st
        .set_storage(
            "app",
            StorageSettings::S3(s3.settings(BUCKET)),
            Some("not-the-secret"),
            true,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::StorageFailed, "{err:?}");
    assert!(err.message.contains("secret access key"), "{}", err.message);
    assert_eq!(
        home.st.storage_info("app").unwrap().storage,
        StorageSettings::Local
    );

    // Saved without the check: listing and backing up fail clearly, nothing is written.
    home.st
        .set_storage(
            "app",
            StorageSettings::S3(s3.settings(BUCKET)),
            Some("not-the-secret"),
            false,
        )
        .unwrap();
    let err = home.st.backup_list("app").unwrap_err();
    assert_eq!(err.code, ErrorCode::StorageFailed, "{err:?}");
    assert!(err.message.contains("credentials"), "{}", err.message);
    let err = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::StorageFailed, "{err:?}");
    assert!(files_under(&s3.bucket_dir(BUCKET)).is_empty());

    // The CLI sets the right secret from standard input and reports JSON; then it works.
    let (ok, v) = cli_json(
        &home,
        &[
            "--json",
            "project",
            "storage",
            "app",
            "--s3-bucket",
            BUCKET,
            "--s3-endpoint",
            &s3.endpoint(),
            "--s3-prefix",
            "pgsteward/test",
            "--s3-allow-http",
            "--s3-access-key-id",
            &s3.access_key,
            "--s3-secret-stdin",
        ],
        Some(&format!("{}\n", s3.secret_key)),
    );
    assert!(ok, "{v}");
    assert_eq!(v["storage"]["kind"], "s3");
    assert_eq!(v["has_secret"], true);
    assert!(home.st.backup_list("app").unwrap().is_empty());
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let (ok, v) = cli_json(&home, &["--json", "backup", "list", "app"], None);
    assert!(ok, "{v}");
    assert_eq!(v[0]["id"], b.id.as_str());

    // Back to local storage: its (empty) folder is listed again.
    let (ok, v) = cli_json(
        &home,
        &["--json", "project", "storage", "app", "--local"],
        None,
    );
    assert!(ok, "{v}");
    assert_eq!(v["storage"]["kind"], "local");
    assert!(home.st.backup_list("app").unwrap().is_empty());
}
on_each_version!(wrong_secret_is_refused_and_nothing_listed);

async fn backup_larger_than_a_part_round_trips(major: u32) {
    let s3 = S3Server::start();
    let (pg, home) = setup(major, home_with_part_size(5 << 20), &s3);
    pg.sql("app", NOISE);
    let before = table_checksums(&pg, "app");
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    assert!(
        b.stored_bytes > 6 << 20,
        "stored {} bytes: not more than one part",
        b.stored_bytes
    );
    // The table's file alone went up in several parts.
    let obj = largest_object(&s3.bucket_dir(BUCKET).join("pgsteward/test/app").join(&b.id));
    assert!(std::fs::metadata(&obj).unwrap().len() > 6 << 20);
    restore_new(&home, &b.id, "big_copy").await;
    assert_eq!(table_checksums(&pg, "big_copy"), before);
}
on_each_version!(backup_larger_than_a_part_round_trips);

async fn server_stopped_mid_upload_fails_cleanly(major: u32) {
    let mut s3 = S3Server::start();
    let (pg, home) = setup(major, home_with_part_size(5 << 20), &s3);
    pg.sql("app", NOISE);

    // Stop the server once a good part of the dump has gone through (at least one part is up).
    let pid = Arc::new(AtomicU32::new(s3.pid()));
    let killed = Arc::new(AtomicBool::new(false));
    let (p2, k2) = (pid.clone(), killed.clone());
    let sink: ProgressSink = Arc::new(move |p: &JobProgress| {
        if p.phase == "dumping" && p.bytes > 14 << 20 && !k2.swap(true, Ordering::SeqCst) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p2.load(Ordering::SeqCst) as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let started = Instant::now();
    let err = home
        .st
        .backup_create("app", sink, CancelToken::default())
        .await
        .unwrap_err();
    assert!(
        killed.load(Ordering::SeqCst),
        "the server was never stopped"
    );
    assert!(
        matches!(err.code, ErrorCode::StorageFailed | ErrorCode::Io),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    s3.stop();

    // Back up: nothing is listed, no manifest exists, and the next backup works.
    s3.resume();
    assert!(home.st.backup_list("app").unwrap().is_empty());
    assert!(named(&files_under(&s3.bucket_dir(BUCKET)), "manifest.json").is_empty());
    let b = home
        .st
        .backup_create("app", quiet(), CancelToken::default())
        .await
        .unwrap();
    let ids: Vec<String> = home
        .st
        .backup_list("app")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, vec![b.id]);
}
on_each_version!(server_stopped_mid_upload_fails_cleanly);
