//! Maintenance benchmark (prints figures, asserts nothing): statistics, bloat estimates, the
//! plan, the index report and the status for a database with 20,000 tables and their 20,000
//! primary keys, 40 of them churned so the plan has work in it. Target: a few seconds, and a
//! payload the page's virtualised list renders a screenful of at a time.
//!
//! Run: `scripts/bench.sh maintenance` (PGSTEWARD_BENCH_PG=15 for PostgreSQL 15,
//! PGSTEWARD_BENCH_TABLES to change the table count).

mod common;

use common::{median, timed, Home, Server};
use pgsteward::maintain::{MaintenanceConfig, PlanRequest};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let tables: usize = std::env::var("PGSTEWARD_BENCH_TABLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let server = Server::start();
    println!(
        "pgsteward maintenance benchmark — PostgreSQL {}, {tables} tables",
        server.major()
    );
    server.sql("postgres", "CREATE DATABASE scale");
    server.fill_tables("scale", tables, 20);
    // Churn 40 tables past the minimum size: 30,000 rows, half deleted, so VACUUM and
    // ANALYZE are due there.
    server.sql(
        "scale",
        "DO $$ BEGIN FOR i IN 0..39 LOOP
           EXECUTE format('INSERT INTO t%s SELECT g, md5(g::text), g %% 7 FROM generate_series(21, 30000) g', i);
           EXECUTE format('DELETE FROM t%s WHERE id %% 2 = 0', i);
         END LOOP; END $$",
    );
    // Let the statistics collector (or shared-memory stats) catch up.
    common::pause(2);

    let home = Home::with_project("scale", &server.uri("scale"));
    let st = home.st.clone();
    let cfg = MaintenanceConfig::default();
    let mut plan_ms = Vec::new();
    let mut plan = None;
    for _ in 0..3 {
        let (ms, p) = timed(st.maintain_plan("scale", &cfg, &PlanRequest::default())).await;
        plan_ms.push(ms);
        plan = Some(p.unwrap());
    }
    let plan = plan.unwrap();
    let plan_bytes = serde_json::to_vec(&plan).unwrap().len();

    let mut idx_ms = Vec::new();
    let mut report = None;
    for _ in 0..3 {
        let (ms, r) = timed(st.index_report("scale")).await;
        idx_ms.push(ms);
        report = Some(r.unwrap());
    }
    let report = report.unwrap();
    let idx_bytes = serde_json::to_vec(&report).unwrap().len();

    let mut status_ms = Vec::new();
    for _ in 0..3 {
        let (ms, r) = timed(st.maintain_status("scale", &cfg)).await;
        r.unwrap();
        status_ms.push(ms);
    }

    println!(
        "plan (statistics + bloat estimates + actions): median {:.0} ms over 3 runs — {} tables, {} indexes, {} actions, {:.1} MiB of JSON",
        median(plan_ms),
        plan.tables.len(),
        plan.indexes.len(),
        plan.actions.len(),
        plan_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "index report: median {:.0} ms — {} findings, {} candidates, {:.1} MiB of JSON",
        median(idx_ms),
        report.findings.len(),
        report.missing.len(),
        idx_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "status (window, running maintenance, autovacuum advice): median {:.0} ms",
        median(status_ms)
    );
}
