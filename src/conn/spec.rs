//! Connection settings as a DBA writes them, resolved the way libpq resolves them.
//!
//! Input comes as a libpq URI (`postgresql://user@host:5432/db?sslmode=require`), a key=value
//! string (`host=db1 port=5432 service=prod`), or form fields. Missing values are filled, in
//! libpq's order, from the service file (`service=name`), then `PG*` environment variables, then
//! defaults. Passwords never live in a [`ConnSpec`]: they are split off on input and kept in the
//! keyring; at connect time the password comes from the keyring, `PGPASSWORD` or `~/.pgpass`.
//!
//! Parsing the URI and key=value forms is in `input`; the service and password files in `files`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{Error, ErrorCode, Result};

mod files;
mod input;

use files::lookup_service;
pub use files::pgpass_lookup;
use input::{parse_keyvalue, parse_uri};

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

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
