//! Turning a resolved spec into driver options that make every session safe on production.
//!
//! Each session pgsteward opens announces itself (`application_name = 'pgsteward'`) and carries
//! a `statement_timeout` and a `lock_timeout` set at startup, so no statement of ours can run
//! forever or queue behind a lock for long. Statements are also marked with [`MARK`] so a DBA
//! can tell them apart in `pg_stat_activity` and `pg_stat_statements`.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::spec::{pgpass_lookup, Env, Resolved, SslMode};

/// Comment placed at the start of every statement pgsteward sends.
pub const MARK: &str = "/* pgsteward */";

/// Write a statement with pgsteward's marker comment in front of it.
#[macro_export]
macro_rules! sql {
    ($s:expr) => {
        concat!("/* pgsteward */ ", $s)
    };
}

pub const APPLICATION_NAME: &str = "pgsteward";

/// Limits applied to every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

impl SessionLimits {
    /// Defaults, with `QUERY_TIMEOUT_SECONDS` honoured for the statement timeout.
    pub fn from_env() -> Self {
        let mut l = SessionLimits::default();
        if let Some(s) = std::env::var("QUERY_TIMEOUT_SECONDS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            l.statement_timeout = Duration::from_secs(s);
        }
        l
    }
}

/// Where the password of a session comes from, in priority order.
pub fn pick_password(explicit: Option<&str>, r: &Resolved, env: &dyn Env) -> Option<String> {
    explicit
        .map(str::to_string)
        .or_else(|| env.var("PGPASSWORD"))
        .or_else(|| pgpass_lookup(r, env))
}

/// Driver options for `r`, with the password and the session limits applied.
pub fn connect_options(
    r: &Resolved,
    password: Option<&str>,
    limits: SessionLimits,
) -> PgConnectOptions {
    let mut o = PgConnectOptions::new_without_pgpass()
        .port(r.port)
        .username(&r.user)
        .database(&r.dbname)
        .application_name(APPLICATION_NAME)
        .options([
            (
                "statement_timeout",
                format!("{}ms", limits.statement_timeout.as_millis()),
            ),
            (
                "lock_timeout",
                format!("{}ms", limits.lock_timeout.as_millis()),
            ),
        ]);
    o = if r.is_socket() {
        o.socket(&r.host)
    } else {
        o.host(&r.host)
    };
    o = o.ssl_mode(match r.sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Allow => PgSslMode::Allow,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    });
    if let Some(ca) = &r.sslrootcert {
        o = o.ssl_root_cert(ca.as_str());
    }
    if let Some(c) = &r.sslcert {
        o = o.ssl_client_cert(c.as_str());
    }
    if let Some(k) = &r.sslkey {
        o = o.ssl_client_key(k.as_str());
    }
    if let Some(p) = password {
        o = o.password(p);
    }
    o
}

/// A libpq key=value string for external tools (pg_dump, pg_restore). Holds no password: the
/// caller hands the password to the child through its environment only.
pub fn libpq_conninfo(r: &Resolved, dbname: &str, lock_timeout: Duration) -> String {
    fn q(v: &str) -> String {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
    let mut parts = vec![
        format!("host={}", q(&r.host)),
        format!("port={}", r.port),
        format!("user={}", q(&r.user)),
        format!("dbname={}", q(dbname)),
        format!("sslmode={}", r.sslmode.as_str()),
        format!("application_name={}", q(APPLICATION_NAME)),
        format!(
            "options={}",
            q(&format!("-c lock_timeout={}ms", lock_timeout.as_millis()))
        ),
    ];
    for (k, v) in [
        ("sslrootcert", &r.sslrootcert),
        ("sslcert", &r.sslcert),
        ("sslkey", &r.sslkey),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", q(v)));
        }
    }
    if let Some(t) = r.connect_timeout {
        parts.push(format!("connect_timeout={t}"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::spec::ConnSpec;
    use std::collections::BTreeMap;

    #[test]
    fn conninfo_for_tools_round_trips_through_our_parser() {
        let env = BTreeMap::new();
        let (spec, _) =
            ConnSpec::parse("host=/tmp/s port=5 user=o'neil dbname='a b' sslmode=require").unwrap();
        let r = spec.resolve(&env).unwrap();
        let text = libpq_conninfo(&r, "we'ird db", Duration::from_secs(3));
        let (back, pw) = ConnSpec::parse(&text).unwrap();
        assert!(pw.is_none());
        assert_eq!(back.user.as_deref(), Some("o'neil"));
        assert_eq!(back.dbname.as_deref(), Some("we'ird db"));
        assert_eq!(back.host.as_deref(), Some("/tmp/s"));
        assert!(!text.contains("password"));
    }
}
