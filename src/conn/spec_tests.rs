//! Unit tests of connection specs: URIs (IPv6, socket hosts), key=value quoting, the resolution
//! order (explicit, then service file, then PG* variables), pgpass matching, SSL modes, and the
//! errors for malformed input.

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
    let (s, _) = ConnSpec::parse("postgresql:///db?host=/var/run/postgresql&port=5499").unwrap();
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
