//! The hardware baseline, computed exactly as PGTune does so its users recognise every number.
//!
//! Pure functions of a [`HardwareProfile`] and the server's major version. RAM is in kB, every
//! result is floored, and memory values print in GB when they divide exactly, else MB, else kB
//! (that text is also what `ALTER SYSTEM` receives). Two documented extensions: the database
//! size compared with RAM scales work_mem (×1.3 smaller, ×0.9 larger) and picks
//! random_page_cost; and autovacuum_max_workers grows on machines with 16 or more CPUs.

use serde::Serialize;
use ts_rs::TS;

use super::profile::{DbSize, HardwareProfile, OsKind, StorageKind, Workload};

const GB: u64 = 1_048_576;
const MB: u64 = 1024;

/// A recommended value, typed so it can be compared with and clamped to the server's settings.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum TuneValue {
    /// Memory in kB.
    Kb(#[ts(type = "number")] u64),
    /// A duration in milliseconds (-1 and 0 keep their meaning: off / no limit).
    Ms(#[ts(type = "number")] i64),
    Int(#[ts(type = "number")] i64),
    Real(f64),
    Text(String),
}

impl TuneValue {
    /// The value as PostgreSQL accepts it and as a DBA reads it: "4GB", "16MB", "0.9", "try".
    pub fn literal(&self) -> String {
        match self {
            TuneValue::Kb(kb) => fmt_kb(*kb),
            TuneValue::Ms(ms) => fmt_ms(*ms),
            TuneValue::Int(i) => i.to_string(),
            TuneValue::Real(r) => fmt_real(*r),
            TuneValue::Text(t) => t.clone(),
        }
    }
}

/// kB as PGTune prints them: GB when exact, else MB when exact, else kB.
pub fn fmt_kb(kb: u64) -> String {
    if kb > 0 && kb.is_multiple_of(GB) {
        format!("{}GB", kb / GB)
    } else if kb > 0 && kb.is_multiple_of(MB) {
        format!("{}MB", kb / MB)
    } else {
        format!("{kb}kB")
    }
}

/// Milliseconds in the largest exact unit: "10min", "30s", "250ms"; -1 and 0 stay bare.
pub fn fmt_ms(ms: i64) -> String {
    if ms <= 0 {
        ms.to_string()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn fmt_real(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// PGTune's default connections per workload.
pub fn default_connections(w: Workload) -> u32 {
    match w {
        Workload::Web => 200,
        Workload::Oltp => 300,
        Workload::Dw => 40,
        Workload::Desktop => 20,
        Workload::Mixed => 100,
    }
}

/// The baseline settings, in PGTune's order.
pub fn baseline(p: &HardwareProfile, major: u32) -> Vec<(&'static str, TuneValue)> {
    use TuneValue::*;
    let ram = p.ram_kb;
    let w = p.workload;
    let conns = p.connections.unwrap_or_else(|| default_connections(w)) as u64;

    let shared_buffers = match w {
        Workload::Desktop => ram / 16,
        _ => ram / 4,
    };
    let effective_cache_size = match w {
        Workload::Desktop => ram / 4,
        _ => ram * 3 / 4,
    };
    let maintenance_cap = if p.os == OsKind::Windows && major <= 17 {
        2 * GB - MB
    } else {
        8 * GB
    };
    let maintenance_work_mem = match w {
        Workload::Dw => ram / 8,
        _ => ram / 16,
    }
    .min(maintenance_cap);

    let mut wal_buffers = 3 * shared_buffers / 100;
    if wal_buffers > 16 * MB {
        wal_buffers = 16 * MB;
    }
    if wal_buffers > 14 * MB && wal_buffers < 16 * MB {
        wal_buffers = 16 * MB;
    }
    if wal_buffers < 32 {
        wal_buffers = 32;
    }

    let statistics_target = if w == Workload::Dw { 500 } else { 100 };
    let random_page_cost = if p.db_size == DbSize::SmallerThanRam {
        1.1
    } else if p.storage == StorageKind::Hdd || w == Workload::Dw {
        4.0
    } else {
        1.1
    };
    let io_concurrency = match p.storage {
        StorageKind::Hdd => 2,
        StorageKind::Ssd => 200,
        StorageKind::San => 300,
        StorageKind::Nvme => 1000,
    };

    let cpus = p.cpus.unwrap_or(0) as u64;
    let parallel = cpus >= 4;
    let workers_for_work_mem = if parallel { cpus } else { 8 };
    let divisor: u64 = match w {
        Workload::Web | Workload::Oltp => 1,
        Workload::Dw | Workload::Mixed => 2,
        Workload::Desktop => 6,
    };
    let (num, den) = match p.db_size {
        DbSize::SmallerThanRam => (13u128, 10u128),
        DbSize::LargerThanRam => (9, 10),
        DbSize::Unknown => (1, 1),
    };
    // Exact integer arithmetic, floored once at the end.
    let work_mem = ((ram - shared_buffers) as u128 * num
        / ((conns + workers_for_work_mem) as u128 * 3 * divisor as u128 * den))
        as u64;
    let work_mem = work_mem.max(4096);

    let (min_wal, max_wal) = match w {
        Workload::Web | Workload::Mixed => (GB, 4 * GB),
        Workload::Oltp => (2 * GB, 8 * GB),
        Workload::Dw => (4 * GB, 16 * GB),
        Workload::Desktop => (100 * MB, 2 * GB),
    };
    let huge_pages = if shared_buffers >= 2 * GB && p.os != OsKind::Mac {
        "try"
    } else {
        "off"
    };

    let mut out = vec![
        ("max_connections", Int(conns as i64)),
        ("shared_buffers", Kb(shared_buffers)),
        ("effective_cache_size", Kb(effective_cache_size)),
        ("maintenance_work_mem", Kb(maintenance_work_mem)),
        ("checkpoint_completion_target", Real(0.9)),
        ("wal_buffers", Kb(wal_buffers)),
        ("default_statistics_target", Int(statistics_target)),
        ("random_page_cost", Real(random_page_cost)),
    ];
    if p.os == OsKind::Linux {
        out.push(("effective_io_concurrency", Int(io_concurrency)));
    }
    out.push(("work_mem", Kb(work_mem)));
    out.push(("huge_pages", Text(huge_pages.into())));
    out.push(("min_wal_size", Kb(min_wal)));
    out.push(("max_wal_size", Kb(max_wal)));
    if parallel {
        let half = cpus.div_ceil(2);
        let per_gather = if w == Workload::Dw { half } else { half.min(4) };
        out.push(("max_worker_processes", Int(cpus as i64)));
        out.push(("max_parallel_workers_per_gather", Int(per_gather as i64)));
        out.push(("max_parallel_workers", Int(cpus as i64)));
        out.push(("max_parallel_maintenance_workers", Int(half.min(4) as i64)));
    }
    if cpus >= 32 {
        out.push(("autovacuum_max_workers", Int(5)));
    } else if cpus >= 16 {
        out.push(("autovacuum_max_workers", Int(4)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::profile::ProfileSource;

    fn profile(
        ram_gb: u64,
        cpus: Option<u32>,
        storage: StorageKind,
        workload: Workload,
        connections: Option<u32>,
    ) -> HardwareProfile {
        HardwareProfile {
            ram_kb: ram_gb * GB,
            cpus,
            storage,
            workload,
            connections,
            db_size: DbSize::Unknown,
            os: OsKind::Linux,
            source: ProfileSource::Entered,
        }
    }

    /// The settings as `name = literal` lines, the form the case table is written in.
    fn render(p: &HardwareProfile, major: u32) -> String {
        baseline(p, major)
            .iter()
            .map(|(n, v)| format!("{n} = {}", v.literal()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(p: HardwareProfile, major: u32, want: &str) {
        let want = want
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(render(&p, major), want, "{p:?}");
    }

    use StorageKind::*;
    use Workload::*;

    // Each case below was worked out by hand from the rules; the arithmetic is in the comments.

    #[test]
    fn web_16gb_8cpu_ssd_default_connections() {
        // sb 16GB/4 = 4GB; ecs 12GB; mwm 16GB/16 = 1GB; wal_buffers 3% of 4194304 = 125829 > 16MB
        // -> 16MB; work_mem (16777216-4194304)/((200+8)*3) = 12582912/624 = 20164.3 -> 20164kB.
        check(
            profile(16, Some(8), Ssd, Web, None),
            17,
            "max_connections = 200
             shared_buffers = 4GB
             effective_cache_size = 12GB
             maintenance_work_mem = 1GB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 100
             random_page_cost = 1.1
             effective_io_concurrency = 200
             work_mem = 20164kB
             huge_pages = try
             min_wal_size = 1GB
             max_wal_size = 4GB
             max_worker_processes = 8
             max_parallel_workers_per_gather = 4
             max_parallel_workers = 8
             max_parallel_maintenance_workers = 4",
        );
    }

    #[test]
    fn oltp_small_ram_two_cpus_hdd() {
        // 2GB: sb 512MB; ecs 1536MB; mwm 128MB; wal_buffers 3*524288/100 = 15728 kB (15.4 MB,
        // between 14 and 16 MB) -> 16MB; CPUs < 4 so W = 8: (2097152-524288)/((300+8)*3)
        // = 1572864/924 = 1702.2 -> below 4096 -> 4096kB = 4MB; huge_pages off (sb < 2GB).
        check(
            profile(2, Some(2), Hdd, Oltp, None),
            15,
            "max_connections = 300
             shared_buffers = 512MB
             effective_cache_size = 1536MB
             maintenance_work_mem = 128MB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 100
             random_page_cost = 4
             effective_io_concurrency = 2
             work_mem = 4MB
             huge_pages = off
             min_wal_size = 2GB
             max_wal_size = 8GB",
        );
    }

    #[test]
    fn dw_64gb_16cpu_san_forty_connections() {
        // sb 16GB; ecs 48GB; mwm 64GB/8 = 8GB (at the cap); wal 16MB; stats 500; dw -> rpc 4;
        // work_mem (67108864-16777216)/((40+16)*3)/2 = 50331648/168/2 = 149796.57 -> 149796kB;
        // per_gather ceil(16/2) = 8, not capped for dw; maintenance workers min(4, 8) = 4;
        // 16 CPUs -> autovacuum_max_workers 4.
        check(
            profile(64, Some(16), San, Dw, None),
            18,
            "max_connections = 40
             shared_buffers = 16GB
             effective_cache_size = 48GB
             maintenance_work_mem = 8GB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 500
             random_page_cost = 4
             effective_io_concurrency = 300
             work_mem = 149796kB
             huge_pages = try
             min_wal_size = 4GB
             max_wal_size = 16GB
             max_worker_processes = 16
             max_parallel_workers_per_gather = 8
             max_parallel_workers = 16
             max_parallel_maintenance_workers = 4
             autovacuum_max_workers = 4",
        );
    }

    #[test]
    fn desktop_4gb_unknown_cpus() {
        // sb 4GB/16 = 256MB; ecs 1GB; mwm 256MB; wal 3*262144/100 = 7864.32 -> 7864kB;
        // work_mem (4194304-262144)/((20+8)*3)/6 = 3932160/84/6 = 7801.9 -> 7801kB.
        check(
            profile(4, None, Ssd, Desktop, None),
            16,
            "max_connections = 20
             shared_buffers = 256MB
             effective_cache_size = 1GB
             maintenance_work_mem = 256MB
             checkpoint_completion_target = 0.9
             wal_buffers = 7864kB
             default_statistics_target = 100
             random_page_cost = 1.1
             effective_io_concurrency = 200
             work_mem = 7801kB
             huge_pages = off
             min_wal_size = 100MB
             max_wal_size = 2GB",
        );
    }

    #[test]
    fn mixed_32gb_4cpu_nvme_given_connections() {
        // sb 8GB; ecs 24GB; mwm 2GB; work_mem (33554432-8388608)/((150+4)*3)/2
        // = 25165824/462/2 = 27235.7 -> 27235kB; per_gather ceil(4/2) = 2.
        check(
            profile(32, Some(4), Nvme, Mixed, Some(150)),
            17,
            "max_connections = 150
             shared_buffers = 8GB
             effective_cache_size = 24GB
             maintenance_work_mem = 2GB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 100
             random_page_cost = 1.1
             effective_io_concurrency = 1000
             work_mem = 27235kB
             huge_pages = try
             min_wal_size = 1GB
             max_wal_size = 4GB
             max_worker_processes = 4
             max_parallel_workers_per_gather = 2
             max_parallel_workers = 4
             max_parallel_maintenance_workers = 2",
        );
    }

    #[test]
    fn tiny_ram_hits_the_floors() {
        // 1MB (1024 kB) web: sb 256kB; ecs 768kB; mwm 64kB; wal 3*256/100 = 7 -> 32kB floor;
        // work_mem tiny -> 4096kB floor = 4MB.
        let mut p = profile(1, Some(1), Ssd, Web, Some(10));
        p.ram_kb = 1024;
        check(
            p,
            15,
            "max_connections = 10
             shared_buffers = 256kB
             effective_cache_size = 768kB
             maintenance_work_mem = 64kB
             checkpoint_completion_target = 0.9
             wal_buffers = 32kB
             default_statistics_target = 100
             random_page_cost = 1.1
             effective_io_concurrency = 200
             work_mem = 4MB
             huge_pages = off
             min_wal_size = 1GB
             max_wal_size = 4GB",
        );
    }

    #[test]
    fn big_machine_caps_and_odd_cpus() {
        // 256GB web, 9 CPUs: sb 64GB; ecs 192GB; mwm 16GB -> cap 8GB; work_mem
        // (268435456-67108864)/((200+9)*3) = 201326592/627 = 321095.0 (627*321095 = 201326565,
        // remainder 27) -> 321095kB; per_gather ceil(9/2) = 5 capped at 4; maintenance min(4,5) = 4.
        check(
            profile(256, Some(9), Ssd, Web, None),
            17,
            "max_connections = 200
             shared_buffers = 64GB
             effective_cache_size = 192GB
             maintenance_work_mem = 8GB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 100
             random_page_cost = 1.1
             effective_io_concurrency = 200
             work_mem = 321095kB
             huge_pages = try
             min_wal_size = 1GB
             max_wal_size = 4GB
             max_worker_processes = 9
             max_parallel_workers_per_gather = 4
             max_parallel_workers = 9
             max_parallel_maintenance_workers = 4",
        );
    }

    #[test]
    fn oltp_8gb_3cpus_san_many_connections() {
        // sb 2GB; ecs 6GB; mwm 512MB; wal 3*2097152/100 = 62914 -> 16MB; 3 CPUs -> W = 8:
        // (8388608-2097152)/((500+8)*3) = 6291456/1524 = 4128.2 -> 4128kB; huge_pages try (sb = 2GB).
        check(
            profile(8, Some(3), San, Oltp, Some(500)),
            15,
            "max_connections = 500
             shared_buffers = 2GB
             effective_cache_size = 6GB
             maintenance_work_mem = 512MB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 100
             random_page_cost = 1.1
             effective_io_concurrency = 300
             work_mem = 4128kB
             huge_pages = try
             min_wal_size = 2GB
             max_wal_size = 8GB",
        );
    }

    #[test]
    fn dw_hdd_many_cpus_autovacuum_five() {
        // 128GB dw hdd, 32 CPUs, 20 connections: sb 32GB; ecs 96GB; mwm 16GB -> 8GB;
        // work_mem (134217728-33554432)/((20+32)*3)/2 = 100663296/156/2 = 322638.7 -> 322638kB;
        // per_gather 16 (dw, no cap); maintenance 4; 32 CPUs -> autovacuum_max_workers 5.
        check(
            profile(128, Some(32), Hdd, Dw, Some(20)),
            18,
            "max_connections = 20
             shared_buffers = 32GB
             effective_cache_size = 96GB
             maintenance_work_mem = 8GB
             checkpoint_completion_target = 0.9
             wal_buffers = 16MB
             default_statistics_target = 500
             random_page_cost = 4
             effective_io_concurrency = 2
             work_mem = 322638kB
             huge_pages = try
             min_wal_size = 4GB
             max_wal_size = 16GB
             max_worker_processes = 32
             max_parallel_workers_per_gather = 16
             max_parallel_workers = 32
             max_parallel_maintenance_workers = 4
             autovacuum_max_workers = 5",
        );
    }

    fn value(p: &HardwareProfile, major: u32, name: &str) -> String {
        baseline(p, major)
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.literal())
            .unwrap_or_else(|| "(absent)".into())
    }

    #[test]
    fn published_checks() {
        let mut p = profile(256, None, Ssd, Web, None);
        assert_eq!(baseline(&p, 17)[3].1, TuneValue::Kb(8388608));
        p.os = OsKind::Windows;
        assert_eq!(baseline(&p, 17)[3].1, TuneValue::Kb(2096128));
        // The Windows cap lifts after PG 17.
        assert_eq!(baseline(&p, 18)[3].1, TuneValue::Kb(8388608));
        let p16 = profile(16, None, Ssd, Web, None);
        assert_eq!(baseline(&p16, 17)[3].1, TuneValue::Kb(1048576));
        let p = profile(4, Some(4), Ssd, Web, Some(9999));
        assert_eq!(value(&p, 17, "work_mem"), "4MB");
        assert_eq!(
            value(&profile(4, None, Ssd, Web, None), 17, "huge_pages"),
            "off"
        );
        assert_eq!(value(&p16, 17, "huge_pages"), "try");
        let mut mac = p16.clone();
        mac.os = OsKind::Mac;
        assert_eq!(value(&mac, 17, "huge_pages"), "off");
        // Only Linux gets effective_io_concurrency.
        assert_eq!(value(&mac, 17, "effective_io_concurrency"), "(absent)");
    }

    #[test]
    fn database_size_scales_work_mem_and_picks_random_page_cost() {
        // 16GB web 8 CPUs: base quotient 12582912/624 = 20164.3.
        let mut p = profile(16, Some(8), Hdd, Web, None);
        assert_eq!(value(&p, 17, "random_page_cost"), "4");
        p.db_size = DbSize::SmallerThanRam;
        // ×1.3: 12582912*13/(624*10) = 163577856/6240 = 26214.4 -> 26214kB; fits: 1.1 even on hdd.
        assert_eq!(value(&p, 17, "work_mem"), "26214kB");
        assert_eq!(value(&p, 17, "random_page_cost"), "1.1");
        p.db_size = DbSize::LargerThanRam;
        // ×0.9: 113246208/6240 = 18148.4 -> 18148kB.
        assert_eq!(value(&p, 17, "work_mem"), "18148kB");
        assert_eq!(value(&p, 17, "random_page_cost"), "4");
        p.storage = Ssd;
        assert_eq!(value(&p, 17, "random_page_cost"), "1.1");
        p.workload = Dw;
        assert_eq!(value(&p, 17, "random_page_cost"), "4");
    }

    #[test]
    fn every_workload_has_its_connections_and_wal_sizes() {
        let want = [
            (Web, "200", "1GB", "4GB"),
            (Oltp, "300", "2GB", "8GB"),
            (Dw, "40", "4GB", "16GB"),
            (Desktop, "20", "100MB", "2GB"),
            (Mixed, "100", "1GB", "4GB"),
        ];
        for (w, c, min, max) in want {
            let p = profile(8, Some(2), Ssd, w, None);
            assert_eq!(value(&p, 16, "max_connections"), c, "{w:?}");
            assert_eq!(value(&p, 16, "min_wal_size"), min, "{w:?}");
            assert_eq!(value(&p, 16, "max_wal_size"), max, "{w:?}");
            assert_eq!(value(&p, 16, "max_worker_processes"), "(absent)");
        }
    }

    #[test]
    fn units_print_like_pgtune() {
        assert_eq!(fmt_kb(4 * GB), "4GB");
        assert_eq!(fmt_kb(1536 * MB), "1536MB");
        assert_eq!(fmt_kb(20164), "20164kB");
        assert_eq!(fmt_ms(600_000), "10min");
        assert_eq!(fmt_ms(1000), "1s");
        assert_eq!(fmt_ms(-1), "-1");
        assert_eq!(TuneValue::Real(0.9).literal(), "0.9");
        assert_eq!(TuneValue::Real(4.0).literal(), "4");
    }
}
