//! pgBackRest beside pgsteward in the backup benchmark: its configuration on the bench's
//! cluster (zst level 3, aes-256-cbc, process-max 2, WAL archived by archive-push), its full
//! backup, and its restore into an empty folder with the time the restored cluster takes to
//! start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::common::Server;
use super::{as_user, chown_to, cluster_user, gb, run, tree_bytes, Figures};

/// pgBackRest on the bench's cluster: configuration, repository and lock folder in `dir`,
/// every command run as the cluster's OS user.
pub(super) struct BackRest {
    dir: PathBuf,
    conf: PathBuf,
    user: Option<nix::unistd::User>,
    options: String,
}

impl BackRest {
    pub(super) fn setup(server: &Server, dir: &Path) -> BackRest {
        let user = cluster_user();
        for d in ["", "repo", "lock", "log"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).unwrap();
            chown_to(&p, &user);
        }
        let options = "repo1-cipher-type=aes-256-cbc compress-type=zst compress-level=3 \
                       process-max=2 start-fast=y archive-check=y (WAL archived by archive-push), \
                       repo on local disk";
        let conf = dir.join("pgbackrest.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\nrepo1-path={repo}\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=bench-{pass}\n\
                 repo1-retention-full=1\ncompress-type=zst\ncompress-level=3\nprocess-max=2\nstart-fast=y\n\
                 lock-path={lock}\nlog-path={log}\nlog-level-console=warn\nlog-level-file=off\n\n\
                 [bench]\npg1-path={data}\npg1-port={port}\npg1-socket-path={socket}\npg1-user=postgres\n",
                repo = dir.join("repo").display(),
                pass = uuid::Uuid::new_v4().simple(),
                lock = dir.join("lock").display(),
                log = dir.join("log").display(),
                data = server.cluster.data_dir.display(),
                port = server.cluster.port,
                socket = server.cluster.socket_dir.display(),
            ),
        )
        .unwrap();
        chown_to(&conf, &user);
        BackRest {
            dir: dir.to_path_buf(),
            conf,
            user,
            options: options.into(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("pgbackrest");
        c.current_dir("/")
            .arg(format!("--config={}", self.conf.display()))
            .arg("--stanza=bench")
            .args(args);
        as_user(&mut c, &self.user);
        c
    }

    /// `pg_ctl ACTION -D data`, as the cluster's user: for the cluster pgBackRest restored.
    fn pg_ctl(&self, server: &Server, action: &str, data: &Path) -> Command {
        let mut c = Command::new(server.bin("pg_ctl"));
        as_user(&mut c, &self.user);
        c.current_dir("/").arg(action).arg("-D").arg(data);
        c
    }

    /// The archive_command that pushes WAL into the repository.
    pub(super) fn archive_command(&self) -> String {
        format!(
            "pgbackrest --config={} --stanza=bench archive-push %p",
            self.conf.display()
        )
    }

    pub(super) fn try_run(&self, args: &[&str]) -> Result<f64, String> {
        let t0 = Instant::now();
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pgbackrest could not start: {e}"))?;
        if out.status.success() {
            Ok(t0.elapsed().as_secs_f64())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
    }
}

pub(super) fn report(server: &Server, br: &BackRest, version: &str, f: &Figures) {
    println!("  pgBackRest ({version}; {}):", br.options);
    let backup = br.try_run(&["--type=full", "backup"]);
    let secs = match backup {
        Ok(s) => s,
        Err(e) => {
            println!("    backup failed: {}", e.lines().next().unwrap_or(""));
            return;
        }
    };
    let repo = br.dir.join("repo");
    let stored = tree_bytes(&repo.join("backup"));
    println!(
        "    full backup                    {secs:7.1} s   {} in the repository (whole cluster), {:.2}x pg_dump -Fc's time",
        gb(stored),
        secs / f.dump_s
    );
    let target = br.dir.join("restored");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    chown_to(&target, &br.user);
    let restore = br.try_run(&[&format!("--pg1-path={}", target.display()), "restore"]);
    match restore {
        Ok(s) => {
            println!(
                "    restore into an empty folder   {s:7.1} s   {:.2}x serial pg_restore's time",
                s / f.pg_restore_s
            );
            // Start it on another port until it accepts connections (replays WAL from the archive).
            let port = pgsteward::cluster::free_port().unwrap();
            let mut c = br.pg_ctl(server, "start", &target);
            c.arg("-l")
                .arg(br.dir.join("restored.log"))
                .args(["-w", "-t", "600", "-o"])
                .arg(format!(
                    "-p {port} -k {} -c archive_mode=off",
                    server.cluster.socket_dir.display()
                ))
                .stdout(Stdio::null());
            let start_s = run(c, "starting the restored cluster");
            println!(
                "    then start and recover         {start_s:7.1} s   (restore + start {:.1} s)",
                s + start_s
            );
            let mut c = br.pg_ctl(server, "stop", &target);
            c.args(["-m", "fast", "-w"]).stdout(Stdio::null());
            run(c, "stopping the restored cluster");
        }
        Err(e) => println!("    restore failed: {}", e.lines().next().unwrap_or("")),
    }
    let _ = std::fs::remove_dir_all(&target);
    let _ = br.try_run(&["expire"]);
}
