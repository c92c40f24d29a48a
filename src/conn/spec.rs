//! Connection settings as a DBA writes them, resolved the way libpq resolves them.
//!
//! Input comes as a libpq URI (`postgresql://user@host:5432/db?sslmode=require`), a key=value
//! string (`host=db1 port=5432 service=prod`), or form fields. Missing values are filled, in
//! libpq's order, from the service file (`service=name`), then `PG*` environment variables, then
//! defaults. Passwords never live in a [`ConnSpec`]: they are split off on input and kept in the
//! keyring; at connect time the password comes from the keyring, `PGPASSWORD` or `~/.pgpass`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{Error, ErrorCode, Result};

/// The six libpq sslmode values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::new(
                    ErrorCode::InvalidConnection,
                    format!(
                        "sslmode \"{other}\" is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ),
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// How the user typed the connection. Crosses IPC from the webview; the password, when typed, is
/// split off by [`ConnSpec::from_input`] and never stored with the spec.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectionInput {
    /// A libpq URI: `postgresql://user:password@host:port/dbname?param=value`.
    Uri { uri: String },
    /// A libpq key=value string: `host=... port=... service=...`.
    KeyValue { conninfo: String },
    /// Form fields; empty fields fall back to the service file, PG* variables and defaults.
    Fields {
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        dbname: Option<String>,
        sslmode: Option<SslMode>,
    },
}

/// Connection settings of a project, without any password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ConnSpec {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub service: Option<String>,
    pub connect_timeout: Option<u64>,
}

/// A spec with every value filled in, ready to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub connect_timeout: Option<u64>,
}

impl Resolved {
    /// True when `host` names a unix-socket folder rather than a TCP host.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

/// Where environment lookups go; tests give a map, the app gives the process environment.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned().filter(|v| !v.is_empty())
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidConnection, message)
}

impl ConnSpec {
    /// Parse what the user typed. Returns the spec and, separately, a password if one was given.
    pub fn from_input(input: &ConnectionInput) -> Result<(ConnSpec, Option<String>)> {
        match input {
            ConnectionInput::Uri { uri } => parse_uri(uri.trim()),
            ConnectionInput::KeyValue { conninfo } => parse_keyvalue(conninfo),
            ConnectionInput::Fields {
                host,
                port,
                user,
                dbname,
                sslmode,
            } => {
                let clean = |v: &Option<String>| {
                    v.as_ref()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                };
                Ok((
                    ConnSpec {
                        host: clean(host),
                        port: *port,
                        user: clean(user),
                        dbname: clean(dbname),
                        sslmode: *sslmode,
                        ..ConnSpec::default()
                    },
                    None,
                ))
            }
        }
    }

    /// Parse a URI or a key=value string, whichever it looks like.
    pub fn parse(text: &str) -> Result<(ConnSpec, Option<String>)> {
        let t = text.trim();
        if t.starts_with("postgresql://") || t.starts_with("postgres://") {
            parse_uri(t)
        } else {
            parse_keyvalue(t)
        }
    }

    fn set(&mut self, key: &str, value: String, password: &mut Option<String>) -> Result<()> {
        match key {
            "host" | "hostaddr" => self.host = Some(value),
            "port" => {
                self.port = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| {
                            bad(format!("port \"{value}\" is not a number from 1 to 65535"))
                        })?,
                )
            }
            "user" => self.user = Some(value),
            "dbname" => self.dbname = Some(value),
            "password" => *password = Some(value),
            "sslmode" => self.sslmode = Some(SslMode::parse(&value)?),
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" => self.sslcert = Some(value),
            "sslkey" => self.sslkey = Some(value),
            "service" => self.service = Some(value),
            "connect_timeout" => {
                self.connect_timeout = Some(value.parse().map_err(|_| {
                    bad(format!(
                        "connect_timeout \"{value}\" is not a number of seconds"
                    ))
                })?)
            }
            // Accepted by libpq and harmless to ignore: pgsteward sets its own.
            "application_name"
            | "fallback_application_name"
            | "options"
            | "target_session_attrs"
            | "gssencmode"
            | "channel_binding"
            | "keepalives"
            | "keepalives_idle" => {}
            other => return Err(bad(format!("unknown connection parameter \"{other}\""))),
        }
        Ok(())
    }

    /// Fill what is missing from the service file, PG* variables and defaults, as libpq does.
    pub fn resolve(&self, env: &dyn Env) -> Result<Resolved> {
        let mut spec = self.clone();
        let service = spec.service.clone().or_else(|| env.var("PGSERVICE"));
        if let Some(name) = service {
            let from_file = lookup_service(&name, env)?;
            spec = spec.overlay_missing(&from_file);
        }
        let host = spec
            .host
            .or_else(|| env.var("PGHOST"))
            .unwrap_or_else(default_host);
        let port = match spec.port {
            Some(p) => p,
            None => match env.var("PGPORT") {
                Some(p) => p
                    .parse()
                    .map_err(|_| bad(format!("PGPORT \"{p}\" is not a port number")))?,
                None => 5432,
            },
        };
        let user = spec
            .user
            .or_else(|| env.var("PGUSER"))
            .or_else(|| env.var("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        let dbname = spec
            .dbname
            .or_else(|| env.var("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let sslmode = match spec.sslmode {
            Some(m) => m,
            None => match env.var("PGSSLMODE") {
                Some(m) => SslMode::parse(&m)?,
                None => SslMode::Prefer,
            },
        };
        Ok(Resolved {
            host,
            port,
            user,
            dbname,
            sslmode,
            sslrootcert: spec.sslrootcert.or_else(|| env.var("PGSSLROOTCERT")),
            sslcert: spec.sslcert.or_else(|| env.var("PGSSLCERT")),
            sslkey: spec.sslkey.or_else(|| env.var("PGSSLKEY")),
            connect_timeout: spec
                .connect_timeout
                .or_else(|| env.var("PGCONNECT_TIMEOUT").and_then(|v| v.parse().ok())),
        })
    }

    fn overlay_missing(mut self, other: &ConnSpec) -> ConnSpec {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f.clone(); } )* };
        }
        fill!(
            host,
            port,
            user,
            dbname,
            sslmode,
            sslrootcert,
            sslcert,
            sslkey,
            connect_timeout
        );
        self
    }

    /// A short human description (`user@host:port/db`), never containing a password.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.service {
            out.push_str(&format!("service={s} "));
        }
        out.push_str(&format!(
            "{}@{}:{}/{}",
            self.user.as_deref().unwrap_or("(default user)"),
            self.host.as_deref().unwrap_or("(default host)"),
            self.port
                .map(|p| p.to_string())
                .unwrap_or_else(|| "5432".into()),
            self.dbname.as_deref().unwrap_or("(default db)")
        ));
        out
    }
}

fn default_host() -> String {
    for dir in ["/var/run/postgresql", "/tmp"] {
        if Path::new(dir).is_dir() {
            return dir.to_string();
        }
    }
    "localhost".to_string()
}

fn parse_uri(uri: &str) -> Result<(ConnSpec, Option<String>)> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or_else(|| bad("a connection URI starts with postgresql:// or postgres://"))?;
    let decode = |s: &str| -> Result<String> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad("the URI contains percent-escapes that are not valid UTF-8"))
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (before_query, None),
    };
    let mut spec = ConnSpec::default();
    let mut password = None;
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    if !u.is_empty() {
                        spec.user = Some(decode(u)?);
                    }
                    password = Some(decode(p)?);
                }
                None if !userinfo.is_empty() => spec.user = Some(decode(userinfo)?),
                None => {}
            }
            hp
        }
        None => authority,
    };
    if hostport.contains(',') {
        return Err(bad(
            "several hosts in one URI are not supported yet; give one host",
        ));
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 host in brackets is missing its closing ]"))?;
        spec.host = Some(h.to_string());
        if let Some(p) = after.strip_prefix(':') {
            spec.set("port", p.to_string(), &mut password)?;
        } else if !after.is_empty() {
            return Err(bad(format!("unexpected \"{after}\" after the host")));
        }
    } else if let Some((h, p)) = hostport.rsplit_once(':') {
        if !h.is_empty() {
            spec.host = Some(decode(h)?);
        }
        if !p.is_empty() {
            spec.set("port", p.to_string(), &mut password)?;
        }
    } else if !hostport.is_empty() {
        spec.host = Some(decode(hostport)?);
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        spec.dbname = Some(decode(db)?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("URI parameter \"{pair}\" has no value")))?;
            spec.set(&decode(k)?, decode(v)?, &mut password)?;
        }
    }
    Ok((spec, password))
}

/// Parse libpq's key=value syntax: values may be single-quoted, with `\'` and `\\` escapes.
fn parse_keyvalue(text: &str) -> Result<(ConnSpec, Option<String>)> {
    let mut spec = ConnSpec::default();
    let mut password = None;
    let mut chars = text.chars().peekable();
    let mut seen_any = false;
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(bad(format!(
                "expected key=value, found \"{key}\" without =; write e.g. host=localhost port=5432"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => value.push(e),
                        None => break,
                    },
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad(format!(
                    "the quoted value of {key} has no closing quote"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(bad("a parameter name is missing before ="));
        }
        spec.set(&key, value, &mut password)?;
        seen_any = true;
    }
    if !seen_any {
        return Err(bad("the connection string is empty"));
    }
    Ok((spec, password))
}

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

fn lookup_service(name: &str, env: &dyn Env) -> Result<ConnSpec> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn uri_with_everything() {
        let (s, pw) =
            ConnSpec::parse("postgresql://al%20ice:p%40ss@db.example:6432/sales%2Feu?sslmode=verify-full&sslrootcert=/ca.pem")
                .unwrap();
        assert_eq!(s.user.as_deref(), Some("al ice"));
        assert_eq!(pw.as_deref(), Some("p@ss"));
        assert_eq!(s.host.as_deref(), Some("db.example"));
        assert_eq!(s.port, Some(6432));
        assert_eq!(s.dbname.as_deref(), Some("sales/eu"));
        assert_eq!(s.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(s.sslrootcert.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn uri_ipv6_and_socket_query_host() {
        let (s, _) = ConnSpec::parse("postgres://[::1]:5433/x").unwrap();
        assert_eq!(s.host.as_deref(), Some("::1"));
        assert_eq!(s.port, Some(5433));
        let (s, _) =
            ConnSpec::parse("postgresql:///db?host=/var/run/postgresql&port=5499").unwrap();
        assert_eq!(s.host.as_deref(), Some("/var/run/postgresql"));
        assert_eq!(s.port, Some(5499));
    }

    #[test]
    fn keyvalue_quotes_and_escapes() {
        let (s, pw) =
            ConnSpec::parse("host=h port = 5 dbname='my db' password='it\\'s' user=a\\ b").unwrap();
        assert_eq!(s.host.as_deref(), Some("h"));
        assert_eq!(s.port, Some(5));
        assert_eq!(s.dbname.as_deref(), Some("my db"));
        assert_eq!(pw.as_deref(), Some("it's"));
        assert_eq!(s.user.as_deref(), Some("a b"));
    }

    #[test]
    fn malformed_inputs_have_clear_errors() {
        for bad_input in [
            "host",
            "host=x port=notaport",
            "dbname='unterminated",
            "sslmode=sometimes",
            "postgresql://h:99999/db",
            "frobnicate=1",
            "   ",
            "postgresql://[::1/db",
        ] {
            let err = ConnSpec::parse(bad_input).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidConnection, "{bad_input}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn resolution_order_explicit_then_service_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("svc.conf");
        std::fs::write(
            &svc,
            "[prod]\nhost=svc-host\nport=7000\ndbname=svcdb\n[other]\nhost=no\n",
        )
        .unwrap();
        let e = env(&[
            ("PGSERVICEFILE", svc.to_str().unwrap()),
            ("PGUSER", "envuser"),
            ("PGPORT", "9999"),
            ("PGSYSCONFDIR", dir.path().to_str().unwrap()),
        ]);
        let (s, _) = ConnSpec::parse("service=prod dbname=mine").unwrap();
        let r = s.resolve(&e).unwrap();
        assert_eq!(r.host, "svc-host");
        assert_eq!(r.port, 7000);
        assert_eq!(r.dbname, "mine");
        assert_eq!(r.user, "envuser");
        assert_eq!(r.sslmode, SslMode::Prefer);

        let (s, _) = ConnSpec::parse("service=missing").unwrap();
        assert_eq!(
            s.resolve(&e).unwrap_err().code,
            ErrorCode::InvalidConnection
        );
    }

    #[test]
    fn pgpass_matching_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(
            &f,
            "# comment\nother:*:*:*:nope\nh1:5432:*:bob:se\\:cret\\\\x\n*:*:*:*:fallback\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let e = env(&[("PGPASSFILE", f.to_str().unwrap())]);
        let mut r = ConnSpec::parse("host=h1 user=bob dbname=d")
            .unwrap()
            .0
            .resolve(&e)
            .unwrap();
        assert_eq!(pgpass_lookup(&r, &e).as_deref(), Some("se:cret\\x"));
        r.user = "carol".into();
        assert_eq!(pgpass_lookup(&r, &e).as_deref(), Some("fallback"));
    }

    #[test]
    fn all_sslmodes_parse_and_roundtrip() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(m).unwrap().as_str(), m);
        }
    }
}
