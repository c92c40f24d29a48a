//! Adding projects in every input form and testing them against real servers.

use std::os::unix::fs::PermissionsExt;

use pgsteward::conn::spec::ConnectionInput;
use pgsteward::project::ProjectInput;
use pgsteward::ErrorCode;

use crate::harness::{Home, Pg};
use crate::on_each_version;

fn input(name: &str, connection: ConnectionInput, password: Option<&str>) -> ProjectInput {
    ProjectInput {
        name: name.into(),
        connection,
        password: password.map(str::to_string),
    }
}

async fn add_and_test_in_every_form(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();

    // URI with the password inside: it must land in the keyring, not in projects.json.
    home.add_uri("by-uri", &pg.uri("postgres"));
    let t = home.st.test("by-uri").await.unwrap();
    assert_eq!(t.server_version_num / 10000, major as i32);
    assert!(home.st.get("by-uri").unwrap().has_password);
    let stored = std::fs::read_to_string(home.path().join("projects.json")).unwrap();
    assert!(
        !stored.contains(&pg.password),
        "the password leaked into projects.json"
    );

    // key=value with a typed password.
    home.st
        .create(&input(
            "by-kv",
            ConnectionInput::KeyValue {
                conninfo: format!(
                    "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
                    pg.port()
                ),
            },
            Some(&pg.password),
        ))
        .unwrap();
    assert_eq!(
        home.st.test("by-kv").await.unwrap().current_user,
        "postgres"
    );

    // form fields
    home.st
        .create(&input(
            "by-fields",
            ConnectionInput::Fields {
                host: Some("127.0.0.1".into()),
                port: Some(pg.port()),
                user: Some("postgres".into()),
                dbname: Some("postgres".into()),
                sslmode: None,
            },
            Some(&pg.password),
        ))
        .unwrap();
    assert_eq!(
        home.st.test("by-fields").await.unwrap().database,
        "postgres"
    );
}
on_each_version!(add_and_test_in_every_form);

/// `service=name` and ~/.pgpass are read like libpq reads them. They come from the environment,
/// so this test runs the CLI as a separate process with its own HOME.
async fn service_file_and_pgpass(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE \"svc db\"");
    let home = Home::new();
    let fake_home = tempfile::tempdir().unwrap();
    std::fs::write(
        fake_home.path().join(".pg_service.conf"),
        format!("[other]\nhost=nowhere\n\n[warehouse]\nhost=127.0.0.1\nport={}\nuser=postgres\ndbname=svc db\nsslmode=disable\n", pg.port()),
    )
    .unwrap();
    let pgpass = fake_home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:*:postgres:{}\n",
            pg.port(),
            pg.password.replace(':', "\\:")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();

    let run = |args: &[&str]| {
        std::process::Command::new(crate::harness::cli())
            .args(args)
            .env("HOME", fake_home.path())
            .env("PGSTEWARD_HOME", home.path())
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICEFILE")
            .env_remove("PGSERVICE")
            .output()
            .unwrap()
    };
    let add = run(&["project", "add", "wh", "--conninfo", "service=warehouse"]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let test = run(&["--json", "project", "test", "wh"]);
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&test.stdout).unwrap();
    assert_eq!(v["database"], "svc db");
    // No password was stored: it came from .pgpass.
    assert!(!home.st.get("wh").unwrap().has_password);

    // A pgpass readable by others is ignored, as libpq does: now authentication fails.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let test = run(&["--json", "project", "test", "wh"]);
    assert!(!test.status.success());
    let v: serde_json::Value = serde_json::from_slice(&test.stdout).unwrap();
    assert_eq!(v["error"]["code"], "auth_failed", "{v}");
}
on_each_version!(service_file_and_pgpass);

async fn wrong_password_is_auth_failed(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri(
        "p",
        &pg.cluster.uri("postgres", "not-the-password", "postgres"),
    );
    let err = home.st.test("p").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthFailed, "{err:?}");
    assert_eq!(err.sqlstate.as_deref(), Some("28P01"));
    // An authentication failure says nothing about availability: the circuit stays closed.
    for _ in 0..6 {
        assert_eq!(
            home.st.test("p").await.unwrap_err().code,
            ErrorCode::AuthFailed
        );
    }
}
on_each_version!(wrong_password_is_auth_failed);

async fn every_session_is_marked_and_bounded(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let pool = home.st.pool("p").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let (app, st, lt): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('application_name'), current_setting('statement_timeout'), current_setting('lock_timeout')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(app, "pgsteward");
    assert_eq!(st, "30s");
    assert_eq!(lt, "5s");
    // The statement timeout is real: a long statement is cancelled by the server.
    sqlx::query("SET statement_timeout = '200ms'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert_eq!(
        pgsteward::Error::from(err).sqlstate.as_deref(),
        Some("57014")
    );
}
on_each_version!(every_session_is_marked_and_bounded);

async fn dashboard_shows_version_and_rates(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let first = home.st.dashboard_sample("p").await.unwrap();
    assert!(first.server_version.starts_with(&major.to_string()));
    assert!(first.tps.is_none(), "no rate from a single sample");
    pg.sql(
        "postgres",
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    for _ in 0..20 {
        pg.sql("postgres", "SELECT count(*) FROM t");
    }
    // Statistics reach shared memory within about a second of a transaction's end.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = home.st.dashboard_sample("p").await.unwrap();
    assert!(second.tps.unwrap() > 0.0);
    assert!(second.connections.total >= 1);
    assert_eq!(second.connections.max_connections, 100);
    assert!(
        second.tps_chart_svg.contains("<svg")
            && second.tps_chart_svg.contains("Transactions per second")
    );
}
on_each_version!(dashboard_shows_version_and_rates);

#[test]
fn malformed_inputs_change_nothing() {
    let home = Home::new();
    for (name, conn) in [
        (
            "ok-name",
            ConnectionInput::Uri {
                uri: "postgresql://h:notaport/db".into(),
            },
        ),
        (
            "ok-name",
            ConnectionInput::KeyValue {
                conninfo: "host=x sslmode=sometimes".into(),
            },
        ),
        (
            "../escape",
            ConnectionInput::KeyValue {
                conninfo: "host=x".into(),
            },
        ),
        (
            "/",
            ConnectionInput::KeyValue {
                conninfo: "host=x".into(),
            },
        ),
        (
            "",
            ConnectionInput::KeyValue {
                conninfo: "host=x".into(),
            },
        ),
    ] {
        let err = home
            .st
            .create(&input(name, conn, Some("secret")))
            .unwrap_err();
        assert!(
            matches!(
                err.code,
                ErrorCode::InvalidConnection | ErrorCode::InvalidInput
            ),
            "{err:?}"
        );
    }
    assert!(home.st.list().unwrap().is_empty());
    assert!(!home.path().join("../escape").exists());
}

/// Testing an edited form with no typed password reuses the stored one only for the same server.
async fn stored_password_is_never_offered_to_another_server(major: u32) {
    let pg = Pg::start(major);
    let other = Pg::start(major);
    // The other server accepts the first server's password too: a leak would connect.
    other.sql(
        "postgres",
        &format!("ALTER ROLE postgres PASSWORD '{}'", pg.password),
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let kv = |port: u16| ConnectionInput::KeyValue {
        conninfo: format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable"
        ),
    };
    home.st
        .test_input(&input("p", kv(pg.port()), None))
        .await
        .unwrap();
    let err = home
        .st
        .test_input(&input("p", kv(other.port()), None))
        .await
        .unwrap_err();
    assert_ne!(err.code, ErrorCode::Internal, "{err:?}");
}
on_each_version!(stored_password_is_never_offered_to_another_server);
