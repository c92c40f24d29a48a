//! Local PostgreSQL clusters that pgsteward creates and runs itself: the sandbox the app offers
//! when no project exists, and the throwaway servers of the test harness.
//!
//! `initdb` refuses to run as root, so when pgsteward runs as root the cluster belongs to the
//! unprivileged `postgres` user (or `PGSTEWARD_CLUSTER_USER`) and every server program runs as it.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::pgbin;

/// Options for a new cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Superuser password (host connections use scram-sha-256; local socket uses trust).
    pub password: String,
    /// Extra `postgresql.conf` lines.
    pub settings: Vec<String>,
    /// Extra `pg_hba.conf` lines placed before the defaults.
    pub hba: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            password: "postgres".into(),
            settings: vec![],
            hba: vec![],
        }
    }
}

/// A cluster on disk; running while `start` has been called and `stop` not yet.
#[derive(Debug)]
pub struct Cluster {
    pub bin_dir: PathBuf,
    pub major: u32,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    run_as: Option<(u32, u32)>,
    stop_on_drop: bool,
    /// Each server program run on this cluster, as a command line (for a job's log).
    ran: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("finding a free port", e))?;
    Ok(l.local_addr()
        .map_err(|e| Error::io("finding a free port", e))?
        .port())
}

/// The user to run server programs as: `None` means ourselves (not root).
fn cluster_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    let name = std::env::var("PGSTEWARD_CLUSTER_USER").unwrap_or_else(|_| "postgres".into());
    let user = nix::unistd::User::from_name(&name)
        .map_err(|e| Error::internal(format!("looking up user {name}: {e}")))?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ToolMissing,
                format!(
                    "Running as root, pgsteward runs PostgreSQL as the unprivileged user \"{name}\", which does not exist. \
                     Install the postgresql package (it creates it) or set PGSTEWARD_CLUSTER_USER."
                ),
            )
        })?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| Error::io("chown", e))?;
    if path.is_dir() {
        for e in fs::read_dir(path)
            .map_err(|e| Error::io("chown", e))?
            .flatten()
        {
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

impl Cluster {
    /// The server programs of `major`, or of the newest version found when `major` is None.
    pub fn find_binaries(major: Option<u32>) -> Result<(u32, PathBuf)> {
        let installs = pgbin::server_installs();
        let pick = match major {
            Some(m) => installs.into_iter().find(|(v, _)| *v == m),
            None => installs.into_iter().next(),
        };
        pick.ok_or_else(|| {
            Error::new(
                ErrorCode::ToolMissing,
                format!(
                    "No PostgreSQL {}server programs (initdb, postgres, pg_ctl) were found. Install the postgresql package \
                     or point PGSTEWARD_PG_BIN_DIRS at their folder.",
                    major.map(|m| format!("{m} ")).unwrap_or_default()
                ),
            )
        })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin_dir.join(program));
        c.current_dir("/");
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
            c.env_remove("HOME");
        }
        c.stdin(Stdio::null());
        c
    }

    /// The server programs run on this cluster so far, as command lines.
    pub fn commands_run(&self) -> Vec<String> {
        self.ran
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn run(&self, mut c: Command, what: &str) -> Result<()> {
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.ran
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(crate::backup::directory::render(
                std::path::Path::new(c.get_program()),
                &args,
            ));
        let out = c.output().map_err(|e| {
            Error::new(
                ErrorCode::ToolFailed,
                format!("{what} could not start: {e}"),
            )
        })?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorCode::ToolFailed,
                format!(
                    "{what} failed: {}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
            ));
        }
        Ok(())
    }

    /// Create a new cluster in `dir` (which must not exist or be empty).
    pub fn init(dir: &Path, bin_dir: &Path, major: u32, opts: &ClusterOptions) -> Result<Cluster> {
        let run_as = cluster_user()?;
        let data_dir = dir.join("data");
        // Unix socket paths are limited to ~100 bytes: keep the socket folder short.
        let socket_dir = PathBuf::from(format!(
            "/tmp/pgsw-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        fs::create_dir_all(&data_dir).map_err(|e| Error::io("creating the cluster folder", e))?;
        fs::create_dir_all(&socket_dir).map_err(|e| Error::io("creating the socket folder", e))?;
        let pwfile = dir.join("pwfile");
        fs::write(&pwfile, &opts.password)
            .map_err(|e| Error::io("writing the initdb password file", e))?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("chmod", e))?;
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("chmod", e))?;
        if let Some((uid, gid)) = run_as {
            // The parent must be traversable by the cluster user.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o711))
                .map_err(|e| Error::io("chmod", e))?;
            chown_tree(&data_dir, uid, gid)?;
            chown_tree(&pwfile, uid, gid)?;
            chown_tree(&socket_dir, uid, gid)?;
        }
        let c = Cluster {
            bin_dir: bin_dir.to_path_buf(),
            major,
            data_dir: data_dir.clone(),
            socket_dir,
            port: free_port()?,
            run_as,
            stop_on_drop: true,
            ran: Default::default(),
        };
        let mut init = c.cmd("initdb");
        init.arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("--no-sync");
        let res = c.run(init, "initdb");
        let _ = fs::remove_file(&pwfile);
        res?;
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            "shared_preload_libraries = 'pg_stat_statements'".to_string(),
            "fsync = off".to_string(),
            "max_connections = 100".to_string(),
            "log_min_messages = warning".to_string(),
        ];
        conf.extend(opts.settings.iter().cloned());
        let conf_path = data_dir.join("postgresql.auto.conf");
        let mut text = fs::read_to_string(&conf_path).unwrap_or_default();
        for line in conf {
            text.push_str(&line);
            text.push('\n');
        }
        fs::write(&conf_path, text).map_err(|e| Error::io("writing settings", e))?;
        if !opts.hba.is_empty() {
            let hba_path = data_dir.join("pg_hba.conf");
            let old =
                fs::read_to_string(&hba_path).map_err(|e| Error::io("reading pg_hba.conf", e))?;
            let mut text = opts.hba.join("\n");
            text.push('\n');
            text.push_str(&old);
            fs::write(&hba_path, text).map_err(|e| Error::io("writing pg_hba.conf", e))?;
        }
        if let Some((uid, gid)) = run_as {
            chown_tree(&data_dir, uid, gid)?;
        }
        Ok(c)
    }

    /// Re-open a cluster created earlier (the sandbox across app restarts).
    pub fn open(dir: &Path, port: u16, socket_dir: &Path) -> Result<Cluster> {
        let data_dir = dir.join("data");
        let version = fs::read_to_string(data_dir.join("PG_VERSION"))
            .map_err(|e| Error::io("reading the cluster version", e))?;
        let major: u32 = version
            .trim()
            .parse()
            .map_err(|_| Error::internal("bad PG_VERSION"))?;
        let (_, bin_dir) = Cluster::find_binaries(Some(major))?;
        let run_as = cluster_user()?;
        fs::create_dir_all(socket_dir).map_err(|e| Error::io("creating the socket folder", e))?;
        if let Some((uid, gid)) = run_as {
            chown_tree(socket_dir, uid, gid)?;
        }
        Ok(Cluster {
            bin_dir,
            major,
            data_dir,
            socket_dir: socket_dir.to_path_buf(),
            port,
            run_as,
            stop_on_drop: false,
            ran: Default::default(),
        })
    }

    /// Keep the server running after this value is dropped.
    pub fn detach(&mut self) {
        self.stop_on_drop = false;
    }

    pub fn is_running(&self) -> bool {
        let mut c = self.cmd("pg_ctl");
        c.arg("status")
            .arg("-D")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().map(|s| s.success()).unwrap_or(false)
    }

    pub fn start(&self) -> Result<()> {
        let log = self.data_dir.join("server.log");
        let mut c = self.cmd("pg_ctl");
        c.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .arg("-w")
            .args(["-t", "60"])
            .arg("-o")
            .arg(format!("-p {} -k {}", self.port, self.socket_dir.display()))
            .stdout(Stdio::null());
        self.run(c, "starting PostgreSQL").map_err(|mut e| {
            if let Ok(text) = fs::read_to_string(&log) {
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                e.message.push_str(&format!(
                    " — server log: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            e
        })
    }

    pub fn stop(&self) -> Result<()> {
        let mut c = self.cmd("pg_ctl");
        c.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.run(c, "stopping PostgreSQL")
    }

    /// Run SQL through psql over the unix socket as the superuser (setup only, never user input).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let psql = pgbin::find("psql", self.major, Some(&self.bin_dir))
            .or_else(|_| pgbin::find("psql", 15, None))?;
        let mut c = Command::new(psql);
        c.current_dir("/")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null());
        let out = c
            .output()
            .map_err(|e| Error::new(ErrorCode::ToolFailed, format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorCode::ToolFailed,
                format!("psql: {}", String::from_utf8_lossy(&out.stderr).trim()),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Wait until the server accepts TCP connections.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::new(
            ErrorCode::ConnectFailed,
            "the local server did not start listening in time",
        ))
    }

    pub fn uri(&self, user: &str, password: &str, db: &str) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}?sslmode=disable",
            enc(user),
            enc(password),
            self.port,
            enc(db)
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.stop();
            let _ = fs::remove_dir_all(&self.socket_dir);
        }
    }
}
