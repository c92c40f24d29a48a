//! Monitoring benchmark (prints figures, asserts nothing): what sampling costs the server and
//! a pgbench workload, and what the activity and lock views cost at scale.
//!
//! 1. A database with 1,000 tables (plus pgbench's) and 100 client connections: server time
//!    per history sample, from pg_stat_statements of the pg_monitor role that samples
//!    (target: at most 5 ms).
//! 2. pgbench TPS with the sampler at 1 s against without it, in pairs of runs in ABBA order, on
//!    the read-only script and on TPC-B-like with synchronous_commit off (target: at most 1 %
//!    loss).
//! 3. The desktop app (its process and web content processes) on that project's dashboard:
//!    CPU share of one core and resident memory, visible and then hidden (targets: at most 1 %
//!    visible, near zero hidden). Needs a display and xdotool; the app binary is
//!    PGSTEWARD_BENCH_APP, else target/release/pgsteward-app, else target/debug/pgsteward-app.
//! 4. 20,000 tables and 50,000 locks held, with a three-session blocking chain: the activity
//!    list, the blocking tree and a history sample — time, rows and payload size.
//!
//! Run: `scripts/bench.sh monitoring` (PGSTEWARD_BENCH_PG=15 for PostgreSQL 15,
//! PGSTEWARD_BENCH_ROUNDS and PGSTEWARD_BENCH_SECONDS for the pgbench rounds).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{median, timed, Home, Server};
use pgsteward::monitor::activity::ActivityFilter;
use sqlx::Connection;

/// Sections to run: PGSTEWARD_BENCH_SECTIONS="1,4" (all by default).
fn wanted(section: u32) -> bool {
    std::env::var("PGSTEWARD_BENCH_SECTIONS").map_or(true, |v| {
        v.split(',').any(|s| s.trim() == section.to_string())
    })
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Server time (ms) and calls the monitoring role spent since the last reset.
fn monitor_server_time(server: &Server, db: &str) -> (f64, f64) {
    let out = server.sql(
        db,
        "SELECT coalesce(sum(total_exec_time + total_plan_time), 0)::float8 || ' ' || coalesce(sum(calls), 0)
           FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
          WHERE r.rolname = 'bench_monitor'",
    );
    let mut it = out.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let server = Server::start();
    println!(
        "pgsteward monitoring benchmark — PostgreSQL {} on {} CPUs",
        server.major(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    server.sql("postgres", "CREATE DATABASE bench");
    server.sql("bench", "CREATE EXTENSION pg_stat_statements");
    server.pgbench().init("bench", 10);
    server.fill_tables("bench", 1000, 100);

    // 100 client connections: 10 running a long statement, 90 idle.
    let mut idle = Vec::new();
    for _ in 0..90 {
        idle.push(
            sqlx::PgConnection::connect(&server.uri("bench"))
                .await
                .unwrap(),
        );
    }
    let mut sleepers = Vec::new();
    for _ in 0..10 {
        let uri = server.uri("bench");
        sleepers.push(tokio::spawn(async move {
            let mut c = sqlx::PgConnection::connect(&uri).await.unwrap();
            let _ = sqlx::query("SELECT pg_sleep(3600)").execute(&mut c).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let conns = server.sql(
        "bench",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    );

    // 1. Server time per sample.
    let home = Home::with_project("bench", &server.monitor_uri("bench"));
    let st = home.st.clone();
    for _ in 0..3 {
        st.sample_now("bench").await.unwrap(); // warm: first samples read every statement
    }
    server.sql("bench", "SELECT pg_stat_statements_reset()");
    let n = 30;
    let mut wall = Vec::new();
    for _ in 0..n {
        let (ms, r) = timed(st.sample_now("bench")).await;
        r.unwrap();
        wall.push(ms);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (server_ms, calls) = monitor_server_time(&server, "bench");
    let top = server.sql(
        "bench",
        "SELECT string_agg(format('%8s ms  %s', round((total_exec_time + total_plan_time)::numeric / 30, 2),
                                  left(regexp_replace(query, '\\s+', ' ', 'g'), 90)), E'\\n')
           FROM (SELECT * FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
                  WHERE r.rolname = 'bench_monitor'
                  ORDER BY total_exec_time + total_plan_time DESC LIMIT 6) t",
    );
    println!(
        "\n1. History sample, 1,000 tables + pgbench scale 10, {} client connections",
        conns.trim()
    );
    println!(
        "   server time per sample: {:.2} ms (target ≤ 5 ms) — {:.0} statements per sample",
        server_ms / n as f64,
        calls / n as f64
    );
    println!(
        "   wall time per sample (client side, incl. SQLite history write): median {:.1} ms",
        median(wall)
    );
    println!("   costliest statements, server time per sample:");
    for l in top.lines() {
        println!("   {l}");
    }
    if !wanted(2) && !wanted(3) && !wanted(4) {
        return;
    }

    // 2. TPS with and without the sampler at 1 s, on two workloads: read-only (CPU-bound, where
    // the sampler's own CPU would show) and TPC-B-like with synchronous_commit off (so the
    // shared disk's fsync latency does not drown the figure).
    if wanted(2) {
        let rounds = env_num("PGSTEWARD_BENCH_ROUNDS", 8);
        let secs = env_num("PGSTEWARD_BENCH_SECONDS", 10);
        println!("\n2. pgbench, 8 clients, {rounds} pairs of {secs}-second runs (without, with) in ABBA order");
        tps_rounds(&st, &server, "read-only (-S)", &["-S"], rounds, secs).await;
        server.sql("postgres", "ALTER SYSTEM SET synchronous_commit = off");
        server.sql("postgres", "SELECT pg_reload_conf()");
        tps_rounds(
            &st,
            &server,
            "TPC-B-like, synchronous_commit off",
            &[],
            rounds,
            secs,
        )
        .await;
        server.sql("postgres", "ALTER SYSTEM RESET synchronous_commit");
        server.sql("postgres", "SELECT pg_reload_conf()");
    }

    // 3. The app's own CPU and memory with the dashboard visible, then with the window hidden.
    if wanted(3) {
        app_usage(home.path());
    }

    drop(idle);
    for s in sleepers {
        s.abort();
    }

    if !wanted(4) {
        return;
    }
    // 4. 20,000 tables, 50,000 locks, a blocking chain.
    server.sql("postgres", "CREATE DATABASE scale");
    server.sql("scale", "CREATE EXTENSION pg_stat_statements");
    server.fill_tables("scale", 20_000, 5);
    let mut holder = sqlx::PgConnection::connect(&server.uri("scale"))
        .await
        .unwrap();
    sqlx::raw_sql(
        "BEGIN;
         DO $$ BEGIN FOR i IN 0..19999 LOOP EXECUTE format('LOCK TABLE t%s IN ACCESS SHARE MODE', i); END LOOP; END $$;
         SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, 30000) g;",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    // B waits for A's ACCESS SHARE with an ACCESS EXCLUSIVE request; C queues behind B.
    let mut waiters = Vec::new();
    for exclusive in [true, false] {
        let uri = server.uri("scale");
        waiters.push(tokio::spawn(async move {
            let mut c = sqlx::PgConnection::connect(&uri).await.unwrap();
            let mut tx = c.begin().await.unwrap();
            let sql = if exclusive {
                "LOCK TABLE t0 IN ACCESS EXCLUSIVE MODE"
            } else {
                "SELECT count(*) FROM t0"
            };
            let _ = sqlx::query(sql).execute(&mut *tx).await;
        }));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let locks = server.sql("scale", "SELECT count(*) FROM pg_locks");
    let home2 = Home::with_project("scale", &server.monitor_uri("scale"));
    let st2 = home2.st.clone();
    st2.sample_now("scale").await.unwrap();
    let mut act = Vec::new();
    let mut tree = Vec::new();
    let mut sample = Vec::new();
    let (mut sessions, mut act_bytes, mut waiting, mut tree_bytes) = (0, 0, 0, 0);
    server.sql("scale", "SELECT pg_stat_statements_reset()");
    for _ in 0..5 {
        let (ms, r) = timed(st2.activity("scale", &ActivityFilter::default())).await;
        let r = r.unwrap();
        sessions = r.sessions.len();
        act_bytes = serde_json::to_vec(&r).unwrap().len();
        act.push(ms);
        let (ms, r) = timed(st2.blocking_tree("scale")).await;
        let r = r.unwrap();
        waiting = r.waiting;
        tree_bytes = serde_json::to_vec(&r).unwrap().len();
        tree.push(ms);
        let (ms, r) = timed(st2.sample_now("scale")).await;
        r.unwrap();
        sample.push(ms);
    }
    let (server_ms, _) = monitor_server_time(&server, "scale");
    println!(
        "\n4. 20,000 tables, {} locks held, a three-session blocking chain",
        locks.trim()
    );
    println!(
        "   activity list:  median {:.1} ms, {sessions} sessions, {:.1} KiB of JSON",
        median(act),
        act_bytes as f64 / 1024.0
    );
    println!(
        "   blocking tree:  median {:.1} ms, {waiting} waiting, {:.1} KiB of JSON",
        median(tree),
        tree_bytes as f64 / 1024.0
    );
    println!("   history sample: median {:.1} ms wall", median(sample));
    println!("   server time of these 15 calls: {:.1} ms in all, {:.1} ms per page refresh (activity + tree + sample)", server_ms, server_ms / 5.0);
    drop(holder);
    for w in waiters {
        w.abort();
    }
}

/// pgbench runs in pairs, one without and one with the sampler taking a sample every second,
/// in ABBA order so a drift (caches, bloat, neighbours) weighs on both sides alike. Prints
/// each side's median and the median of the paired changes, which cancels slow drift.
async fn tps_rounds(
    st: &Arc<pgsteward::Steward>,
    server: &Server,
    label: &str,
    args: &[&str],
    rounds: u64,
    secs: u64,
) {
    let (mut without, mut with, mut paired) = (Vec::new(), Vec::new(), Vec::new());
    // CPU seconds while sampling: pgsteward's server backends, this process (the sampler's
    // client side), and the whole machine.
    let (mut backend_cpu, mut client_cpu, mut busy_cpu, mut sampled_secs) = (0.0, 0.0, 0.0, 0.0);
    for round in 0..rounds {
        let mut pair = [0.0; 2];
        for step in 0..2 {
            let sampled = (round % 2 == 0) == (step == 1);
            let backends_before = steward_backends(server);
            let (client_before, busy_before) = (
                common::own_cpu_seconds(std::process::id()),
                busy_cpu_seconds(),
            );
            let t0 = std::time::Instant::now();
            let bench = server.pgbench();
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = sampled.then(|| {
                let (st, stop) = (st.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    let mut samples = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        tick.tick().await;
                        samples += u32::from(st.sample_now("bench").await.is_ok());
                    }
                    samples
                })
            });
            let extra: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let tps = tokio::task::spawn_blocking(move || {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                bench.tps("bench", 8, secs, &extra)
            })
            .await
            .unwrap();
            stop.store(true, Ordering::SeqCst);
            if sampled {
                for (pid, after) in steward_backends(server) {
                    let before = backends_before
                        .iter()
                        .find(|(p, _)| *p == pid)
                        .map_or(0.0, |b| b.1);
                    backend_cpu += after - before;
                }
                client_cpu += common::own_cpu_seconds(std::process::id()) - client_before;
                busy_cpu += busy_cpu_seconds() - busy_before;
                sampled_secs += t0.elapsed().as_secs_f64();
            }
            if let Some(sampler) = sampler {
                let samples = sampler.await.unwrap();
                eprintln!("  ({label}, pair {round}: {samples} samples in {secs} s)");
                with.push(tps);
                pair[1] = tps;
            } else {
                without.push(tps);
                pair[0] = tps;
            }
        }
        paired.push(100.0 * (pair[1] - pair[0]) / pair[0]);
    }
    let (a, b) = (median(without.clone()), median(with.clone()));
    let mut sorted = paired.clone();
    sorted.sort_by(f64::total_cmp);
    println!("   {label}:");
    println!(
        "     without the sampler: {:?} tps, median {a:.0}",
        rounded(&without)
    );
    println!(
        "     sampler at 1 s:      {:?} tps, median {b:.0}",
        rounded(&with)
    );
    println!(
        "     change, median of the {} pairs: {:+.2} % (pairs range {:+.1} % to {:+.1} %; target: loss ≤ 1 %)",
        paired.len(),
        median(paired),
        sorted.first().copied().unwrap_or(0.0),
        sorted.last().copied().unwrap_or(0.0)
    );
    if sampled_secs > 0.0 && busy_cpu > 0.0 {
        println!(
            "     CPU the sampler took while sampling: its server backends {:.1} ms/s, its client side {:.1} ms/s; \
             {:.2} % (server) and {:.2} % (both) of the CPU the machine spent (the bound on the TPS loss of a \
             CPU-bound workload)",
            1000.0 * backend_cpu / sampled_secs,
            1000.0 * client_cpu / sampled_secs,
            100.0 * backend_cpu / busy_cpu,
            100.0 * (backend_cpu + client_cpu) / busy_cpu
        );
    }
}

/// pgsteward's server backends and their CPU seconds so far.
fn steward_backends(server: &Server) -> Vec<(u32, f64)> {
    server
        .sql(
            "postgres",
            "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'pgsteward'",
        )
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(|pid| (pid, common::own_cpu_seconds(pid)))
        .collect()
}

/// CPU seconds the machine spent busy (all cores, from /proc/stat).
fn busy_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or("");
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = f
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}

fn rounded(v: &[f64]) -> Vec<i64> {
    v.iter().map(|x| x.round() as i64).collect()
}

/// Section 3: launch the app on `home` (one project, so it opens that project's dashboard),
/// measure it visible for a minute, unmap its windows, measure again.
fn app_usage(home: &std::path::Path) {
    println!("\n3. The desktop app on the dashboard (live view refreshing every 5 s, history sampler every 10 s)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::var("PGSTEWARD_BENCH_APP")
        .map(std::path::PathBuf::from)
        .ok()
        .or_else(|| {
            ["target/release/pgsteward-app", "target/debug/pgsteward-app"]
                .iter()
                .map(|p| root.join(p))
                .find(|p| p.exists())
        });
    let Some(binary) = binary else {
        println!("   skipped: no app binary (cargo build --release -p pgsteward-app)");
        return;
    };
    if std::env::var_os("DISPLAY").is_none() {
        println!("   skipped: no display");
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&binary)
        .env("PGSTEWARD_HOME", home)
        .env("PGSTEWARD_SANDBOX", "0")
        .env("XDG_CONFIG_HOME", profile.path().join("config"))
        .env("XDG_CACHE_HOME", profile.path().join("cache"))
        .env("XDG_DATA_HOME", profile.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the app starts");
    let pid = child.id();
    common::pause(20); // start, open the dashboard, first samples
    let (cpu_visible, rss_visible, per_visible) = common::tree_usage(pid, 60);
    let windows = std::process::Command::new("xdotool")
        .args(["search", "--pid", &pid.to_string()])
        .output();
    let mut hidden = false;
    if let Ok(out) = windows {
        for w in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            hidden |= std::process::Command::new("xdotool")
                .args(["windowunmap", w])
                .status()
                .is_ok_and(|s| s.success());
        }
    }
    println!(
        "   binary: {} ({} build)",
        binary.display(),
        if binary.to_string_lossy().contains("release") {
            "release"
        } else {
            "debug"
        }
    );
    println!("   visible: {cpu_visible:.2} % of one core, {rss_visible:.0} MiB resident (app + web processes)");
    for (n, c) in per_visible.iter().filter(|(_, c)| *c >= 0.05) {
        println!("            {c:.2} % {n}");
    }
    if hidden {
        common::pause(5);
        let (cpu_hidden, rss_hidden, _) = common::tree_usage(pid, 60);
        println!("   hidden:  {cpu_hidden:.2} % of one core, {rss_hidden:.0} MiB resident");
    } else {
        println!("   hidden:  not measured (xdotool could not unmap the window)");
    }
    let _ = child.kill();
    let _ = child.wait();
}
