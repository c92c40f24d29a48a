//! Fixtures the benchmarks share: a throwaway PostgreSQL server with enough connection and
//! lock slots, databases filled at scale, a pgsteward data folder with a project on it, and
//! small statistics helpers. Benchmarks print figures; they assert nothing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgsteward::cluster::{Cluster, ClusterOptions};
use pgsteward::conn::spec::ConnectionInput;
use pgsteward::project::ProjectInput;
use pgsteward::Steward;
use tempfile::TempDir;

/// The monitoring role's password in the throwaway server.
pub const MONITOR_PASSWORD: &str = "bench-monitor";

pub struct Server {
    pub cluster: Cluster,
    pub password: String,
    /// The server's own temporary folder (the data directory is `data` in it).
    pub dir: TempDir,
}

impl Server {
    /// Start PostgreSQL `major` (PGSTEWARD_BENCH_PG, default 18) with room for 300
    /// connections and 50,000+ locks.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// [`Server::start`] with more settings for postgresql.auto.conf.
    pub fn start_with(extra: &[&str]) -> Server {
        let major: u32 = std::env::var("PGSTEWARD_BENCH_PG")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(18);
        let (_, bin) = Cluster::find_binaries(Some(major))
            .unwrap_or_else(|e| panic!("PostgreSQL {major} is needed: {}", e.message));
        let dir = tempfile::Builder::new()
            .prefix("pgsw-bench")
            .tempdir_in("/tmp")
            .unwrap();
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let opts = ClusterOptions {
            password: password.clone(),
            settings: vec![
                "max_connections = 300".into(),
                "max_locks_per_transaction = 1024".into(),
                "shared_buffers = 256MB".into(),
                "synchronous_commit = off".into(),
            ]
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect(),
            hba: vec![],
        };
        let cluster = Cluster::init(dir.path(), &bin, major, &opts).unwrap();
        cluster.start().unwrap();
        let s = Server {
            cluster,
            password,
            dir,
        };
        s.sql(
            "postgres",
            &format!(
                "CREATE ROLE bench_monitor LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor"
            ),
        );
        s
    }

    pub fn major(&self) -> u32 {
        self.cluster.major
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.cluster.psql(db, sql).unwrap()
    }

    pub fn uri(&self, db: &str) -> String {
        self.cluster.uri("postgres", &self.password, db)
    }

    /// A URI of the pg_monitor-only role.
    pub fn monitor_uri(&self, db: &str) -> String {
        self.cluster.uri("bench_monitor", MONITOR_PASSWORD, db)
    }

    /// A client program of the server's version (pgbench, psql).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.cluster.bin_dir.join(name)
    }

    /// `tables` tables, each with a primary key and `rows` rows, created in batches of 500
    /// per transaction; then ANALYZE.
    pub fn fill_tables(&self, db: &str, tables: usize, rows: usize) {
        let t0 = Instant::now();
        for start in (0..tables).step_by(500) {
            let end = (start + 500).min(tables);
            self.sql(
                db,
                &format!(
                    "DO $$ BEGIN FOR i IN {start}..{} LOOP
                       EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text, n int)', i);
                       EXECUTE format('INSERT INTO t%s SELECT g, md5(g::text), g %% 7 FROM generate_series(1, {rows}) g', i);
                     END LOOP; END $$",
                    end - 1
                ),
            );
        }
        self.sql(db, "ANALYZE");
        eprintln!(
            "  (created {tables} tables of {rows} rows in {:.1} s)",
            t0.elapsed().as_secs_f64()
        );
    }
}

/// A pgsteward data folder with one project.
pub struct Home {
    pub dir: TempDir,
    pub st: Arc<Steward>,
}

impl Home {
    pub fn with_project(name: &str, uri: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let st = Steward::open(dir.path()).unwrap();
        st.create(&ProjectInput {
            name: name.into(),
            connection: ConnectionInput::Uri { uri: uri.into() },
            password: None,
        })
        .unwrap();
        Home { dir, st }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Median of some measurements.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Wall time of `f`, in milliseconds, and its result.
pub async fn timed<T, F: std::future::Future<Output = T>>(f: F) -> (f64, T) {
    let t0 = Instant::now();
    let out = f.await;
    (t0.elapsed().as_secs_f64() * 1000.0, out)
}

/// pgbench against the server, as the superuser over the socket; cheap to clone into a
/// blocking task.
#[derive(Clone)]
pub struct Pgbench {
    bin: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Server {
    pub fn pgbench(&self) -> Pgbench {
        Pgbench {
            bin: self.bin("pgbench"),
            socket: self.cluster.socket_dir.clone(),
            port: self.cluster.port,
        }
    }
}

impl Pgbench {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("-h")
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-U", "postgres"]);
        c
    }

    /// `pgbench -i` at `scale`.
    pub fn init(&self, db: &str, scale: u32) {
        let out = self
            .command()
            .args(["-i", "-q", "-s", &scale.to_string(), db])
            .output()
            .expect("pgbench -i runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run a pgbench script (the default, or the one `extra` picks: `-S` for read-only) for
    /// `secs` seconds, after pgbench's own vacuum of its small tables so rounds start alike;
    /// transactions per second.
    pub fn tps(&self, db: &str, clients: u32, secs: u64, extra: &[&str]) -> f64 {
        let out = self
            .command()
            .args([
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &secs.to_string(),
            ])
            .args(extra)
            .arg(db)
            .output()
            .expect("pgbench runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no tps in pgbench output: {text}"))
    }
}

/// Resident memory of a process in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn pause(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

/// A process and all its descendants (the app and its web content processes).
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// The numeric fields of /proc/PID/stat after the command name (`pid` may be "self"): index 11
/// and 12 are the process's user and system ticks, 13 and 14 those of the children it waited
/// for. Empty when the process is gone.
pub fn stat_fields(pid: &str) -> Vec<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect()
}

/// Own CPU seconds (user + system, children not counted) of one process.
pub fn own_cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(&pid.to_string());
    let n = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (n(11) + n(12)) / 100.0
}

/// CPU share of one core (percent) and resident memory (MiB) of a process tree over `secs`,
/// and the share of each process (by name) in it.
pub fn tree_usage(root: u32, secs: u64) -> (f64, f64, Vec<(String, f64)>) {
    let name = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let before: Vec<(u32, f64)> = process_tree(root)
        .into_iter()
        .map(|p| (p, own_cpu_seconds(p)))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = t0.elapsed().as_secs_f64();
    let mut per: Vec<(String, f64)> = Vec::new();
    for p in process_tree(root) {
        let was = before
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0.0, |(_, c)| *c);
        per.push((name(p), 100.0 * (own_cpu_seconds(p) - was) / wall));
    }
    per.sort_by(|a, b| b.1.total_cmp(&a.1));
    let cpu = per.iter().map(|(_, c)| c).sum();
    let rss: f64 = process_tree(root).into_iter().map(rss_mib).sum();
    (cpu, rss, per)
}
