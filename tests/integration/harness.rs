//! Fixtures: throwaway servers, isolated pgsteward homes, and helpers that read like the scenario.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgsteward::cluster::{Cluster, ClusterOptions};
use pgsteward::conn::spec::ConnectionInput;
use pgsteward::jobs::{JobProgress, ProgressSink};
use pgsteward::project::ProjectInput;
use pgsteward::Steward;
use tempfile::TempDir;

/// Define one test per supported PostgreSQL version from an `async fn(u32)`.
#[macro_export]
macro_rules! on_each_version {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pg15() {
                super::$name(15).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pg18() {
                super::$name(18).await
            }
        }
    };
}

/// A running throwaway server; stopped and deleted on drop.
pub struct Pg {
    pub cluster: Cluster,
    pub password: String,
    _dir: TempDir,
}

impl Pg {
    pub fn start(major: u32) -> Pg {
        Pg::start_with(major, ClusterOptions::default(), |_| {})
    }

    /// Start with options; `prepare` runs on the data folder before the server starts.
    pub fn start_with(major: u32, mut opts: ClusterOptions, prepare: impl FnOnce(&Path)) -> Pg {
        let (_, bin) = Cluster::find_binaries(Some(major)).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL {major} is required for this test: {}",
                e.message
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("pgsw-test")
            .tempdir_in("/tmp")
            .unwrap();
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        opts.password = password.clone();
        let cluster = Cluster::init(dir.path(), &bin, major, &opts).unwrap();
        prepare(&cluster.data_dir);
        cluster.start().unwrap();
        Pg {
            cluster,
            password,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.cluster.port
    }

    pub fn uri(&self, db: &str) -> String {
        self.cluster.uri("postgres", &self.password, db)
    }

    /// Run setup SQL as the superuser over the socket.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.cluster.psql(db, sql).unwrap()
    }
}

/// An isolated pgsteward data folder and the core opened on it.
pub struct Home {
    pub dir: TempDir,
    pub st: Arc<Steward>,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let st = Steward::open(dir.path()).unwrap();
        Home { dir, st }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Add a project by URI (the password inside goes to the keyring).
    pub fn add_uri(&self, name: &str, uri: &str) {
        self.st
            .create(&ProjectInput {
                name: name.into(),
                connection: ConnectionInput::Uri { uri: uri.into() },
                password: None,
            })
            .unwrap();
    }
}

/// A progress sink that drops everything.
pub fn quiet() -> ProgressSink {
    Arc::new(|_: &JobProgress| {})
}

/// Checksum of every row of every user table, by table name: what "identical contents" means.
pub fn table_checksums(pg: &Pg, db: &str) -> Vec<(String, String)> {
    let out = pg.sql(
        db,
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1",
    );
    let mut sums = Vec::new();
    for table in out.lines().filter(|l| !l.is_empty()) {
        let sum = pg.sql(
            db,
            &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM {table} t"),
        );
        sums.push((table.to_string(), sum));
    }
    sums
}

/// Path of the pgsteward CLI built for these tests.
pub fn cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgsteward"))
}

/// Run the CLI with `--json` semantics on an isolated home: (succeeded, parsed stdout).
/// `stdin` is fed to it (passwords, passphrases); otherwise stdin is empty.
pub fn cli_json(home: &Home, args: &[&str], stdin: Option<&str>) -> (bool, serde_json::Value) {
    cli_json_env(home, args, stdin, &[])
}

/// [`cli_json`] with extra environment variables.
pub fn cli_json_env(
    home: &Home,
    args: &[&str],
    stdin: Option<&str>,
    envs: &[(&str, &std::path::Path)],
) -> (bool, serde_json::Value) {
    use std::io::Write;
    let mut child = std::process::Command::new(cli())
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .env("PGSTEWARD_HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

/// A free TCP port on the loopback address (free when asked; nothing holds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real OpenTelemetry collector (Rotel) on free loopback ports that prints every metric it
/// receives to its standard output (kept in a file). Stopped on drop.
pub struct Rotel {
    child: std::process::Child,
    dir: TempDir,
    pub http_port: u16,
}

fn rotel_binary() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    for p in [
        std::env::var("PGSTEWARD_ROTEL").unwrap_or_default(),
        "/opt/pgsteward/tools/bin/rotel-agent".into(),
        format!("{home}/.local/share/pgsteward-tools/bin/rotel-agent"),
    ] {
        if !p.is_empty() && Path::new(&p).is_file() {
            return p.into();
        }
    }
    panic!("rotel-agent (an OpenTelemetry collector) is required for the OTLP tests: run scripts/install-deps.sh");
}

impl Rotel {
    pub fn start() -> Rotel {
        let dir = tempfile::tempdir().unwrap();
        let (grpc_port, http_port) = (free_port(), free_port());
        let out = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = std::process::Command::new(rotel_binary())
            .arg("start")
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc_port}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http_port}")])
            .args(["--exporter", "blackhole"])
            .args([
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ])
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel.log"))
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting rotel-agent");
        let r = Rotel {
            child,
            dir,
            http_port,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "rotel-agent did not start listening: {}",
                r.output()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        r
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Everything it printed so far (standard output, then standard error).
    pub fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stdout"), read("stderr"))
    }

    /// Wait until what it printed satisfies `done` (the debug log is written asynchronously).
    pub fn wait_for(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let out = self.output();
            if done(&out) || std::time::Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The largest stored object (`*.sealed`) of a backup folder: a table's data in a
/// directory-format backup, the whole dump in a single-stream one.
pub fn largest_object(backup_dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![backup_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".sealed") {
                let len = e.metadata().unwrap().len();
                if best.as_ref().is_none_or(|(n, _)| len > *n) {
                    best = Some((len, p));
                }
            }
        }
    }
    best.expect("the backup has objects").1
}
