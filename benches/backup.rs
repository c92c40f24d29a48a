//! Backup benchmark (prints figures and ratios, asserts nothing): pgsteward's logical backup,
//! restore and full verify against `pg_dump -Fc` with a serial `pg_restore`, and pgBackRest's
//! physical backup and restore printed beside for reference.
//!
//! Two datasets, one after the other, each alone in the cluster while it is measured:
//! - pgbench: `pgbench -i` at the scale that makes about PGSTEWARD_BENCH_GB gigabytes;
//! - events: realistic, poorly compressible rows (uuids, timestamps, random amounts, random
//!   text and bytea payloads of mixed length, a jsonb column) with three indexes.
//!
//! Targets (issue 4): backup at most 0.35x the time of `pg_dump -Fc`, restore at most 0.6x the
//! time of a serial `pg_restore` of that dump, full verify at least 1 GB/s of stored bytes.
//!
//! Run: `scripts/bench.sh backup` (PGSTEWARD_BENCH_GB=0.1 for a quick run,
//! PGSTEWARD_BENCH_PG=15 for PostgreSQL 15, PGSTEWARD_BENCH_DATASETS=events to run one).
//! The full verify and the two restores (serial pg_restore, pgsteward's, taking turns) run
//! PGSTEWARD_BENCH_RUNS times, 3 by default; their figures are medians, printed with the range.
//! Each restore and verify also prints its CPU (core-seconds of the client and of the server)
//! and what it would take with every core busy, and the bench measures one core's rate of the
//! verify's stages on the dataset's own dump: what this machine's cores allow, beside what a
//! run took (see backup/cpu.rs).
//! pgBackRest must be installed (scripts/install-deps.sh does); a version that does not
//! support the server's major version is reported and skipped.

mod common;
#[path = "backup/cpu.rs"]
mod cpu;
#[path = "backup/pgbackrest.rs"]
mod pgbackrest;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::Server;

const GB: f64 = 1e9;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The OS user the cluster runs as when we are root (as the cluster module chooses it).
fn cluster_user() -> Option<nix::unistd::User> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let name = std::env::var("PGSTEWARD_CLUSTER_USER").unwrap_or_else(|_| "postgres".into());
    nix::unistd::User::from_name(&name).ok().flatten()
}

fn chown_to(path: &Path, user: &Option<nix::unistd::User>) {
    if let Some(u) = user {
        std::os::unix::fs::chown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
    }
}

/// Run a command, panicking with its output if it fails; its wall time in seconds.
/// Run `c` as the cluster's OS user (when the bench runs as root).
fn as_user(c: &mut Command, user: &Option<nix::unistd::User>) {
    if let Some(u) = user {
        use std::os::unix::process::CommandExt;
        c.uid(u.uid.as_raw()).gid(u.gid.as_raw()).env_remove("HOME");
    }
}

fn run(mut c: Command, what: &str) -> f64 {
    let t0 = Instant::now();
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    secs
}

/// Bytes of every file under `path`.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| tree_bytes(&e.path())).sum())
        .unwrap_or(0)
}

fn gb(bytes: u64) -> String {
    format!("{:.3} GB", bytes as f64 / GB)
}

/// A `pgsteward` CLI run on the bench's home: wall time and parsed JSON output.
struct Cli {
    home: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> (f64, serde_json::Value) {
        let t0 = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgsteward"))
            .args(args)
            .arg("--json")
            .env("PGSTEWARD_HOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "pgsteward {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (secs, v)
    }
}

/// Before a timed step: the server's dirty buffers written (CHECKPOINT) and every file's dirty
/// pages flushed (sync), so the writes of one step are not paid for by the next. On this
/// machine's 2 cores, the kernel's writeback of a restore's gigabytes otherwise slows whatever
/// runs after it: serial pg_restores taking turns with pgsteward's restore took 13.3, 12.1 and
/// 8.2 s without it, 9.8, 9.5 and 8.1 s with it.
fn settle(server: &Server, db: &str) {
    server.sql(db, "CHECKPOINT");
    let _ = Command::new("sync").status();
}

/// How often the verify and the two restores run (`PGSTEWARD_BENCH_RUNS`, 3 by default); the
/// figures are medians.
fn runs() -> usize {
    (env_f64("PGSTEWARD_BENCH_RUNS", 3.0) as usize).max(1)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// "median of 3: 6.1–7.4 s", or "1 run".
fn spread(v: &[f64]) -> String {
    if v.len() < 2 {
        return "1 run".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("median of {}: {lo:.1}–{hi:.1} s", v.len())
}

struct Figures {
    raw_dump_s: f64,
    raw_restore_s: f64,
    dump_s: f64,
    dump_bytes: u64,
    pg_restore_s: f64,
    sw_backup_s: f64,
    sw_stored: u64,
    sw_restore_s: f64,
    sw_verify_s: f64,
    sw_verify_inner_s: f64,
    /// pgsteward's restore's core-seconds spread over every core: the least it could take here.
    sw_restore_floor_s: f64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run_all());
}

async fn run_all() {
    let size_gb = env_f64("PGSTEWARD_BENCH_GB", 1.0);
    let datasets = std::env::var("PGSTEWARD_BENCH_DATASETS").unwrap_or("pgbench,events".into());
    // Archiving is on from the start with a no-op command; pgBackRest's archive-push replaces
    // it (a reload) only for pgBackRest's own backup.
    let server = Server::start_with(&[
        "archive_mode = on",
        "archive_command = '/bin/true'",
        "max_wal_size = 4GB",
    ]);
    let work = tempfile::Builder::new()
        .prefix("pgsw-bkbench")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let cpus = cores();
    println!(
        "pgsteward backup benchmark — PostgreSQL {} on {cpus} CPUs, datasets of about {size_gb} GB",
        server.major(),
    );
    println!(
        "  load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let version = Command::new("pgbackrest")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "pgBackRest not installed".into());
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli { home };
    let backrest = pgbackrest::BackRest::setup(&server, &work.path().join("pgbackrest"));
    let mut stanza: Option<Result<(), String>> = None;

    for ds in datasets.split(',').map(str::trim) {
        println!();
        let t0 = Instant::now();
        match ds {
            "pgbench" => {
                // pgbench -i: about 15 MB per scale unit with its indexes.
                let scale = ((size_gb * 1024.0 / 15.0).round() as u32).max(1);
                server.sql("postgres", "CREATE DATABASE pgbench");
                server.pgbench().init("pgbench", scale);
                println!("dataset pgbench (pgbench -i -s {scale})");
            }
            "events" => {
                server.sql("postgres", "CREATE DATABASE events");
                fill_events(&server, size_gb);
                println!("dataset events (realistic rows, see benches/backup.rs)");
            }
            other => panic!("unknown dataset {other:?}: pgbench or events"),
        }
        server.sql(ds, "VACUUM ANALYZE");
        settle(&server, ds);
        let db_bytes: u64 = server
            .sql(ds, &format!("SELECT pg_database_size('{ds}')"))
            .parse()
            .unwrap();
        let rows = server.sql(
            ds,
            "SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables",
        );
        println!(
            "  database size {}, {rows} rows (built in {:.0} s)",
            gb(db_bytes),
            t0.elapsed().as_secs_f64()
        );
        let f = measure(&server, &cli, ds, work.path());
        report(&f);
        // pgBackRest backs up the whole cluster: only this dataset is in it now. Its
        // archive-push archives WAL only while its own backup runs, so that it takes no CPU from
        // the next dataset's measurements.
        let archive_with = |command: &str| {
            server.sql(
                "postgres",
                &format!(
                    "ALTER SYSTEM SET archive_command = '{}'",
                    command.replace('\'', "''")
                ),
            );
            server.sql("postgres", "SELECT pg_reload_conf()");
        };
        archive_with(&backrest.archive_command());
        let state = stanza.get_or_insert_with(|| backrest.try_run(&["stanza-create"]).map(|_| ()));
        match state {
            Ok(()) => pgbackrest::report(&server, &backrest, &version, &f),
            Err(e) => println!(
                "  pgBackRest ({version}): skipped, it failed on PostgreSQL {}: {}",
                server.major(),
                e.lines().next().unwrap_or("")
            ),
        }
        archive_with("/bin/true");
        server.sql("postgres", &format!("DROP DATABASE {ds}"));
        settle(&server, "postgres");
    }
    println!();
    println!(
        "  load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

/// Realistic rows: an events table of about `size_gb` with uuids, timestamps, random amounts,
/// random text and bytea payloads of mixed length and a jsonb column; three indexes. The heap is
/// filled in batches until it holds about 75 % of the size, the indexes make the rest.
fn fill_events(server: &Server, size_gb: f64) {
    server.sql(
        "events",
        "CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY,
            event_id uuid NOT NULL,
            account_id integer NOT NULL,
            created_at timestamptz NOT NULL,
            kind text NOT NULL,
            amount numeric(14,2),
            note text,
            payload bytea,
            attrs jsonb NOT NULL
         )",
    );
    // Random bytes: SHA-512 of random uuids, 64 bytes each, 512 per row to pick from.
    let batch = "INSERT INTO events (event_id, account_id, created_at, kind, amount, note, payload, attrs)
        SELECT gen_random_uuid(),
               (random() * 200000)::int,
               now() - random() * interval '730 days',
               (ARRAY['order','refund','login','payment','shipment','review'])[1 + (random() * 5)::int],
               round((random() * 100000)::numeric, 2),
               left(translate(encode(r, 'base64'), E'\\n', ''), (random() * 600)::int),
               substr(r, 1 + (random() * 200)::int, (random() * 300)::int),
               jsonb_build_object(
                 'ip', format('%s.%s.%s.%s', (random()*255)::int, (random()*255)::int, (random()*255)::int, (random()*255)::int),
                 'session', md5(random()::text),
                 'score', random(),
                 'tags', jsonb_build_array(substr(md5(random()::text), 1, 6), substr(md5(random()::text), 1, 8)),
                 'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)','Mozilla/5.0 (Macintosh)','curl/8.4.0','okhttp/4.12'])[1 + (random() * 3)::int])
          FROM (SELECT sha512(uuid_send(gen_random_uuid())) || sha512(uuid_send(gen_random_uuid()))
                    || sha512(uuid_send(gen_random_uuid())) || sha512(uuid_send(gen_random_uuid()))
                    || sha512(uuid_send(gen_random_uuid())) || sha512(uuid_send(gen_random_uuid()))
                    || sha512(uuid_send(gen_random_uuid())) || sha512(uuid_send(gen_random_uuid())) AS r
                  FROM generate_series(1, 100000)) g";
    let heap_target = (size_gb * GB * 0.75) as u64;
    loop {
        server.sql("events", batch);
        let heap: u64 = server
            .sql("events", "SELECT pg_table_size('events')")
            .parse()
            .unwrap();
        if heap >= heap_target {
            break;
        }
    }
    server.sql("events", "ALTER TABLE events ADD PRIMARY KEY (id)");
    server.sql("events", "CREATE UNIQUE INDEX ON events (event_id)");
    server.sql("events", "CREATE INDEX ON events (account_id, created_at)");
}

fn pg_command(server: &Server, program: &str) -> Command {
    let mut c = Command::new(server.bin(program));
    c.current_dir("/")
        .arg("-h")
        .arg(&server.cluster.socket_dir)
        .args(["-p", &server.cluster.port.to_string(), "-U", "postgres"]);
    c
}

fn measure(server: &Server, cli: &Cli, db: &str, work: &Path) -> Figures {
    // pg_dump -Fc (its default compression) and a serial pg_restore of it.
    let dump = work.join(format!("{db}.dump"));
    let mut c = pg_command(server, "pg_dump");
    c.arg("-Fc").arg("-f").arg(&dump).arg(db);
    let dump_s = run(c, "pg_dump -Fc");
    let dump_bytes = tree_bytes(&dump);
    println!(
        "  pg_dump -Fc                      {dump_s:7.1} s   {} ",
        gb(dump_bytes)
    );
    settle(server, "postgres");

    // Where pgsteward's time goes: the same pg_dump and pg_restore it runs, on their own
    // (directory format, uncompressed, both cores), with no compression, sealing or storage.
    let jobs = cores().clamp(1, 8).to_string();
    let dir = work.join(format!("{db}.dir"));
    let mut c = pg_command(server, "pg_dump");
    c.args(["-Fd", "-Z0", "-j", &jobs, "-f"]).arg(&dir).arg(db);
    let raw_dump_s = run(c, "pg_dump -Fd");
    println!(
        "  pg_dump -Fd -Z0 -j{jobs} alone          {raw_dump_s:7.1} s   {} (floor of pgsteward's backup)",
        gb(tree_bytes(&dir))
    );
    server.sql("postgres", &format!("CREATE DATABASE {db}_pgr"));
    let mut c = pg_command(server, "pg_restore");
    c.args(["--exit-on-error", "-j", &jobs, "-d", &format!("{db}_pgr")])
        .arg(&dir);
    let raw_restore_s = run(c, "pg_restore -j");
    println!(
        "  pg_restore -j{jobs} of it alone         {raw_restore_s:7.1} s   (floor of pgsteward's restore)"
    );
    server.sql("postgres", &format!("DROP DATABASE {db}_pgr"));
    let rates = cpu::stage_rates(&dir);
    println!(
        "  one core here, on this dump: zstd decoding {:.2} GB/s of plaintext, SHA-256 {:.2} GB/s, \
         AES-256-GCM opening {:.1} GB/s",
        rates.zstd_decode, rates.sha256, rates.gcm_open
    );
    std::fs::remove_dir_all(&dir).unwrap();
    settle(server, "postgres");

    // pgsteward, release CLI, default settings.
    let project = format!("b{db}");
    cli.run(
        &[
            "project",
            "add",
            &project,
            "--uri",
            &format!(
                "postgresql://postgres@127.0.0.1:{}/{db}",
                server.cluster.port
            ),
            "--password-stdin",
        ],
        Some(&server.password),
    );
    let (sw_backup_s, v) = cli.run(&["backup", "create", &project], None);
    let id = v["id"].as_str().expect("a backup id").to_string();
    let sw_plain = v["plaintext_bytes"].as_u64().unwrap_or(0);
    let sw_stored = v["stored_bytes"].as_u64().unwrap_or(0);
    println!(
        "  pgsteward backup create          {sw_backup_s:7.1} s   {} stored of {} dumped (zstd ratio {:.2}x)",
        gb(sw_stored),
        gb(sw_plain),
        sw_plain as f64 / sw_stored.max(1) as f64
    );
    settle(server, "postgres");
    let (mut walls, mut inners, mut ok) = (Vec::new(), Vec::new(), true);
    let mut verify_cpu = Vec::new();
    for _ in 0..runs() {
        let ((wall, v), used) = cpu::measured(server, || {
            cli.run(&["backup", "verify", &project, &id, "--tier", "full"], None)
        });
        ok &= v["reports"][0]["ok"].as_bool() == Some(true);
        walls.push(wall);
        verify_cpu.push(used.client);
        // The command's own figure (the verify itself, without starting the CLI and opening
        // the keyring) beside the wall time of the whole command.
        inners.push(v["reports"][0]["duration_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0);
    }
    let (sw_verify_s, inner_s) = (median(&walls), median(&inners));
    println!(
        "  pgsteward backup verify --full   {sw_verify_s:7.1} s   {:.2} GB/s of stored bytes ({:.2} GB/s of plaintext); \
         the verify itself {inner_s:.2} s: {:.2} GB/s stored{}; {}",
        sw_stored as f64 / GB / sw_verify_s,
        sw_plain as f64 / GB / sw_verify_s,
        sw_stored as f64 / GB / inner_s,
        if ok { "" } else { "  (NOT OK)" },
        spread(&walls)
    );
    let verify_core_s = median(&verify_cpu);
    let cores = cores();
    println!(
        "    its CPU: {verify_core_s:.2} core-s ({:.2} cores busy); with {cores} cores fully used: {:.2} GB/s stored. \
         Its stages alone (decode, digest, open) need {:.2} core-s per stored GB here: at most {:.2} GB/s on {cores} cores",
        verify_core_s / sw_verify_s,
        cores as f64 * sw_stored as f64 / GB / verify_core_s,
        rates.core_s_per_stored_gb(),
        cores as f64 / rates.core_s_per_stored_gb()
    );

    // A serial pg_restore of the -Fc dump and pgsteward's restore, taking turns, so a change
    // in the machine's load reaches both alike.
    let largest = server.sql(
        db,
        "SELECT relname FROM pg_stat_user_tables ORDER BY pg_table_size(relid) DESC LIMIT 1",
    );
    let count = |d: &str| server.sql(d, &format!("SELECT count(*) FROM {largest}"));
    let rows_src = count(db);
    let (mut serial, mut ours) = (Vec::new(), Vec::new());
    let (mut serial_cpu, mut ours_cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs() {
        server.sql("postgres", &format!("CREATE DATABASE {db}_pgr"));
        let mut c = pg_command(server, "pg_restore");
        c.args(["--exit-on-error", "-d", &format!("{db}_pgr")])
            .arg(&dump);
        let (wall, used) = cpu::measured(server, || run(c, "pg_restore"));
        serial.push(wall);
        serial_cpu.push(used);
        server.sql("postgres", &format!("DROP DATABASE {db}_pgr"));
        settle(server, "postgres");

        let target = format!("{db}_sw");
        let ((wall, _), used) = cpu::measured(server, || {
            cli.run(
                &[
                    "backup",
                    "restore",
                    &project,
                    &id,
                    "--new-database",
                    &target,
                ],
                None,
            )
        });
        ours.push(wall);
        ours_cpu.push(used);
        // The restore is whole: exact row counts of the largest table agree.
        let rows_dst = count(&target);
        if rows_src != rows_dst {
            println!("  (restored {largest} has {rows_dst} rows, the source {rows_src})");
        }
        server.sql("postgres", &format!("DROP DATABASE {target}"));
        settle(server, "postgres");
    }
    let (pg_restore_s, sw_restore_s) = (median(&serial), median(&ours));
    let (serial_used, ours_used) = (median_cpu(&serial_cpu), median_cpu(&ours_cpu));
    println!(
        "  pg_restore (serial)              {pg_restore_s:7.1} s   {}\n    its CPU: {}",
        spread(&serial),
        serial_used.describe(pg_restore_s)
    );
    println!(
        "  pgsteward backup restore (new db){sw_restore_s:7.1} s   {}\n    its CPU: {}; \
         with {cores} cores fully used: {:.1} s",
        spread(&ours),
        ours_used.describe(sw_restore_s),
        ours_used.total() / cores as f64
    );
    std::fs::remove_file(&dump).unwrap();
    cli.run(&["project", "remove", &project, "--delete-backups"], None);
    Figures {
        raw_dump_s,
        raw_restore_s,
        dump_s,
        dump_bytes,
        pg_restore_s,
        sw_backup_s,
        sw_stored,
        sw_restore_s,
        sw_verify_s,
        sw_verify_inner_s: inner_s,
        sw_restore_floor_s: ours_used.total() / cores as f64,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The median run's client and server core-seconds, each taken on its own.
fn median_cpu(v: &[cpu::Cpu]) -> cpu::Cpu {
    cpu::Cpu {
        client: median(&v.iter().map(|c| c.client).collect::<Vec<_>>()),
        server: median(&v.iter().map(|c| c.server).collect::<Vec<_>>()),
    }
}

fn report(f: &Figures) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let b = f.sw_backup_s / f.dump_s;
    let r = f.sw_restore_s / f.pg_restore_s;
    let v = f.sw_stored as f64 / GB / f.sw_verify_s;
    let vi = f.sw_stored as f64 / GB / f.sw_verify_inner_s;
    println!("  ratios:");
    println!(
        "    backup  pgsteward / pg_dump -Fc         {b:5.2}x  (target <= 0.35x: {})",
        verdict(b <= 0.35)
    );
    println!(
        "    restore pgsteward / serial pg_restore   {r:5.2}x  (target <= 0.60x: {})",
        verdict(r <= 0.6)
    );
    println!(
        "    verify  {v:5.2} GB/s stored, whole command    (target >= 1 GB/s: {}); the verify itself {vi:.2} GB/s",
        verdict(v >= 1.0)
    );
    println!(
        "    floors: pg_dump -Fd alone / pg_dump -Fc {:5.2}x, pg_restore -j alone / serial {:5.2}x",
        f.raw_dump_s / f.dump_s,
        f.raw_restore_s / f.pg_restore_s
    );
    println!(
        "    restore at full use of every core / serial pg_restore {:5.2}x (its CPU spread over the cores)",
        f.sw_restore_floor_s / f.pg_restore_s
    );
    println!(
        "    stored size pgsteward / pg_dump -Fc     {:5.2}x",
        f.sw_stored as f64 / f.dump_bytes.max(1) as f64
    );
}
