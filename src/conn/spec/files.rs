//! The files libpq reads beside the connection string: service files (`service=name`) and the
//! password file (`~/.pgpass` or PGPASSFILE).

use std::path::{Path, PathBuf};

use super::{bad, ConnSpec, Env, Resolved};
use crate::error::Result;

/// Service files libpq reads, in order: PGSERVICEFILE or ~/.pg_service.conf, then the system one.
fn service_files(env: &dyn Env) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match env.var("PGSERVICEFILE") {
        Some(f) => files.push(PathBuf::from(f)),
        None => {
            if let Some(home) = env.var("HOME").map(PathBuf::from).or_else(dirs::home_dir) {
                files.push(home.join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env
        .var("PGSYSCONFDIR")
        .unwrap_or_else(|| "/etc/postgresql-common".to_string());
    files.push(Path::new(&sysconf).join("pg_service.conf"));
    files
}

pub(super) fn lookup_service(name: &str, env: &dyn Env) -> Result<ConnSpec> {
    for file in service_files(env) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(spec) = parse_service_file(&text, name, &file)? {
            return Ok(spec);
        }
    }
    Err(bad(format!(
        "service \"{name}\" was not found in ~/.pg_service.conf, PGSERVICEFILE or the system pg_service.conf"
    )))
}

fn parse_service_file(text: &str, name: &str, file: &Path) -> Result<Option<ConnSpec>> {
    let mut in_section = false;
    let mut found = false;
    let mut spec = ConnSpec::default();
    let mut ignored_password = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found && in_section {
                break;
            }
            in_section = section.trim() == name;
            found |= in_section;
            continue;
        }
        if in_section {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("{}:{}: expected key=value", file.display(), n + 1)))?;
            spec.set(k.trim(), v.trim().to_string(), &mut ignored_password)?;
        }
    }
    Ok(found.then_some(spec))
}

/// Look the password up in the pgpass file (PGPASSFILE or ~/.pgpass), as libpq does.
pub fn pgpass_lookup(r: &Resolved, env: &dyn Env) -> Option<String> {
    let path = env.var("PGPASSFILE").map(PathBuf::from).or_else(|| {
        env.var("HOME")
            .map(PathBuf::from)
            .or_else(dirs::home_dir)
            .map(|h| h.join(".pgpass"))
    })?;
    let text = std::fs::read_to_string(&path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // libpq ignores a pgpass file that group or others can read; so do we.
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "ignoring {}: it is readable by group or others (chmod 0600 it)",
                    path.display()
                );
                return None;
            }
        }
    }
    let host_for_match = if r.is_socket() { "localhost" } else { &r.host };
    let port = r.port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |pat: &str, val: &str| pat == "*" || pat == val;
        if matches(&fields[0], host_for_match)
            && matches(&fields[1], &port)
            && matches(&fields[2], &r.dbname)
            && matches(&fields[3], &r.user)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next() {
                    fields.last_mut().unwrap().push(e);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}
