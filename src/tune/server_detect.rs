//! Hardware of a server that does not run on this machine, read through the server itself when
//! the role may read server files (superuser or `pg_read_server_files`): `/proc/meminfo`, the
//! cgroup limits, the CPU list and the disks' rotational flags. Anything that cannot be read is
//! left unknown, for the DBA to enter.

use sqlx::PgConnection;

use super::profile::{parse_cpu_max, parse_meminfo, parse_memory_max, Detected, StorageKind};
use crate::sql;

/// `None` when the role may not read server files.
pub async fn detect(conn: &mut PgConnection) -> Option<Detected> {
    let allowed: bool = sqlx::query_scalar(sql!(
        "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')
           FROM pg_roles WHERE rolname = current_user"
    ))
    .fetch_one(&mut *conn)
    .await
    .ok()?;
    if !allowed {
        return None;
    }
    let total = read(conn, "/proc/meminfo")
        .await
        .as_deref()
        .and_then(parse_meminfo);
    let limit = read(conn, "/sys/fs/cgroup/memory.max")
        .await
        .as_deref()
        .and_then(parse_memory_max);
    let online = read(conn, "/proc/cpuinfo")
        .await
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count() as u32);
    let quota = read(conn, "/sys/fs/cgroup/cpu.max")
        .await
        .as_deref()
        .and_then(parse_cpu_max);
    let min_some = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    let disks: Vec<String> = sqlx::query_scalar(sql!(
        "SELECT d FROM pg_ls_dir('/sys/block', true, false) AS d
          WHERE d !~ '^(loop|ram|zram|dm-|sr|md)'"
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let mut rotational = None;
    for d in disks {
        if let Some(t) = read(conn, &format!("/sys/block/{d}/queue/rotational")).await {
            rotational = Some(rotational.unwrap_or(false) || t.trim() == "1");
        }
    }
    Some(Detected {
        ram_kb: min_some(total, limit),
        cpus: min_some(
            online.filter(|n| *n > 0).map(u64::from),
            quota.map(u64::from),
        )
        .map(|n| n as u32),
        storage: rotational.map(|r| {
            if r {
                StorageKind::Hdd
            } else {
                StorageKind::Ssd
            }
        }),
    })
}

/// A server file's text; `None` when it is missing or unreadable.
async fn read(conn: &mut PgConnection, path: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>(sql!("SELECT pg_read_file($1, 0, 1048576, true)"))
        .bind(path)
        .fetch_one(&mut *conn)
        .await
        .ok()
        .flatten()
}
