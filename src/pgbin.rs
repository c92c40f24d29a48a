//! Finding PostgreSQL programs (pg_dump, pg_restore, initdb, postgres) of the right major version.
//!
//! pg_dump refuses servers newer than itself, and an older pg_restore cannot read a newer dump,
//! so pgsteward picks binaries whose major version matches the server and, when none is found,
//! says which version it needs and where it looked.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, ErrorCode, Result};

/// Folders searched, in order: the caller's choice, `PGSTEWARD_PG_BIN_DIRS` (colon-separated),
/// Debian/Ubuntu's `/usr/lib/postgresql/<major>/bin`, pgsteward's own tools folders, then `PATH`.
pub fn candidate_dirs(preferred: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = preferred {
        dirs.push(p.to_path_buf());
    }
    if let Ok(list) = std::env::var("PGSTEWARD_PG_BIN_DIRS") {
        dirs.extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    let mut globbed = Vec::new();
    for base in ["/usr/lib/postgresql", "/usr/pgsql", "/opt/pgsteward/tools"] {
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                globbed.push(e.path().join("bin"));
            }
        }
    }
    if let Some(d) = dirs::data_dir() {
        if let Ok(rd) = std::fs::read_dir(d.join("pgsteward-tools")) {
            for e in rd.flatten() {
                globbed.push(e.path().join("bin"));
            }
        }
    }
    globbed.sort();
    globbed.reverse();
    dirs.extend(globbed);
    for p in ["/usr/local/pgsql/bin", "/usr/local/bin", "/usr/bin"] {
        dirs.push(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// Major version a program reports with `--version` (e.g. "pg_dump (PostgreSQL) 15.18" → 15).
pub fn program_major(path: &Path) -> Option<u32> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_major(&text)
}

fn parse_major(text: &str) -> Option<u32> {
    let ver = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    ver.split(['.', '-', 'b', 'r']).next()?.parse().ok()
}

/// Find `program` whose major version is exactly `major`.
pub fn find(program: &str, major: u32, preferred: Option<&Path>) -> Result<PathBuf> {
    let dirs = candidate_dirs(preferred);
    let mut seen_versions = Vec::new();
    for d in &dirs {
        let p = d.join(program);
        if !p.is_file() {
            continue;
        }
        match program_major(&p) {
            Some(m) if m == major => return Ok(p),
            Some(m) => seen_versions.push(format!("{} ({m})", p.display())),
            None => {}
        }
    }
    let found = if seen_versions.is_empty() {
        "none found".to_string()
    } else {
        format!("found only {}", seen_versions.join(", "))
    };
    Err(Error::new(
        ErrorCode::ToolMissing,
        format!(
            "{program} for PostgreSQL {major} is needed to work with this server; {found}. \
             Install the PostgreSQL {major} client tools (e.g. `apt-get install postgresql-client-{major}`) \
             or point PGSTEWARD_PG_BIN_DIRS at the folder that holds them."
        ),
    ))
}

/// All server installations found (folders with `postgres` and `initdb`), newest first.
pub fn server_installs() -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    for d in candidate_dirs(None) {
        if d.join("initdb").is_file() && d.join("postgres").is_file() && d.join("pg_ctl").is_file()
        {
            if let Some(m) = program_major(&d.join("postgres")) {
                if !out.iter().any(|(mm, _)| *mm == m) {
                    out.push((m, d));
                }
            }
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_version_lines() {
        assert_eq!(
            super::parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(super::parse_major("postgres (PostgreSQL) 18.1"), Some(18));
        assert_eq!(super::parse_major("pg_dump (PostgreSQL) 19beta1"), Some(19));
        assert_eq!(super::parse_major("nothing"), None);
    }
}
