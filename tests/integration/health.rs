//! Health checks against servers with real problems planted in them.

use pgsteward::monitor::{CheckId, HealthReport, HealthStatus};
use pgsteward::ErrorCode;

use crate::harness::{Home, Pg};
use crate::on_each_version;

fn check(r: &HealthReport, id: CheckId) -> &pgsteward::monitor::HealthCheck {
    r.checks.iter().find(|c| c.id == id).unwrap()
}

async fn health_finds_an_invalid_index_and_sequences_running_out(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1), (2);
         CREATE SEQUENCE nearly_out MAXVALUE 100; SELECT setval('nearly_out', 90);
         CREATE SEQUENCE almost_gone AS smallint; SELECT setval('almost_gone', 32000);
         CREATE TABLE narrow (id int);
         CREATE SEQUENCE wide_seq OWNED BY narrow.id; SELECT setval('wide_seq', 2000000000);
         CREATE SEQUENCE roomy; SELECT nextval('roomy');",
    );
    // A unique index built concurrently over duplicates fails and stays behind, invalid.
    let failed = pg.cluster.psql(
        "postgres",
        "CREATE UNIQUE INDEX CONCURRENTLY dup_v ON dup (v)",
    );
    assert!(failed.is_err());
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'dup_v'::regclass"
        ),
        "f"
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let r = home.st.health("p").await.unwrap();
    assert_eq!(r.checks.len(), CheckId::ALL.len());
    for c in &r.checks {
        assert_ne!(c.status, HealthStatus::Unknown, "{c:?}");
    }
    assert_eq!(r.database, "postgres");

    let idx = check(&r, CheckId::InvalidIndexes);
    assert_eq!(idx.status, HealthStatus::Warning);
    assert_eq!(idx.items.len(), 1);
    assert_eq!(idx.items[0].name, "dup_v");
    assert!(idx.items[0]
        .message
        .contains("DROP INDEX CONCURRENTLY dup_v"));

    let seq = check(&r, CheckId::Sequences);
    assert_eq!(seq.status, HealthStatus::Critical);
    let item = |name: &str| seq.items.iter().find(|i| i.name == name);
    assert_eq!(
        item("public.almost_gone").unwrap().status,
        HealthStatus::Critical
    );
    assert_eq!(
        item("public.nearly_out").unwrap().status,
        HealthStatus::Warning
    );
    let wide = item("public.wide_seq").unwrap();
    assert_eq!(wide.status, HealthStatus::Warning, "{wide:?}");
    assert!(wide.message.contains("integer column"), "{}", wide.message);
    assert!(item("public.roomy").is_none_or(|i| i.status == HealthStatus::Ok));
    assert_eq!(r.status, HealthStatus::Critical);

    // The test clusters preload pg_stat_statements but no database has the extension yet.
    let pss = check(&r, CheckId::PgStatStatements);
    assert_eq!(pss.status, HealthStatus::Warning);
    assert!(pss.message.contains("CREATE EXTENSION pg_stat_statements"));
    pg.sql("postgres", "CREATE EXTENSION pg_stat_statements");
    let r = home.st.health("p").await.unwrap();
    let pss = check(&r, CheckId::PgStatStatements);
    assert_eq!(pss.status, HealthStatus::Ok, "{pss:?}");

    for id in [
        CheckId::XidWraparound,
        CheckId::MultixactWraparound,
        CheckId::OldestTables,
        CheckId::ReplicationSlots,
        CheckId::Connections,
    ] {
        assert_eq!(
            check(&r, id).status,
            HealthStatus::Ok,
            "{:?}",
            check(&r, id)
        );
    }
    let xid = check(&r, CheckId::XidWraparound);
    assert!(xid.items.iter().any(|i| i.name == "template0"));
    assert_eq!(check(&r, CheckId::OldestTables).items.len(), 5);

    // Fixing the problems clears them.
    pg.sql(
        "postgres",
        "DROP INDEX dup_v; DROP SEQUENCE almost_gone, nearly_out, wide_seq;",
    );
    let r = home.st.health("p").await.unwrap();
    assert_eq!(check(&r, CheckId::InvalidIndexes).status, HealthStatus::Ok);
    assert_eq!(check(&r, CheckId::Sequences).status, HealthStatus::Ok);
}
on_each_version!(health_finds_an_invalid_index_and_sequences_running_out);

async fn an_inactive_slot_holding_wal_is_reported(major: u32) {
    let pg = Pg::start(major);
    // A physical slot that reserves WAL at once and that no standby ever reads.
    pg.sql(
        "postgres",
        "SELECT pg_create_physical_replication_slot('forgotten', true);
         CREATE TABLE churn AS SELECT g FROM generate_series(1, 20000) g;",
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let r = home.st.health("p").await.unwrap();
    let slots = check(&r, CheckId::ReplicationSlots);
    assert_eq!(slots.status, HealthStatus::Warning, "{slots:?}");
    assert_eq!(slots.items.len(), 1);
    assert_eq!(slots.items[0].name, "forgotten");
    assert!(slots.items[0].value.unwrap() > 0.0);
    assert!(slots.items[0]
        .message
        .contains("pg_drop_replication_slot('forgotten')"));
}
on_each_version!(an_inactive_slot_holding_wal_is_reported);

async fn a_failing_check_fails_alone(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE ROLE watcher LOGIN PASSWORD 'watch-pw'; GRANT pg_monitor TO watcher;
         REVOKE SELECT ON pg_replication_slots FROM PUBLIC;",
    );
    let home = Home::new();
    home.add_uri("mon", &pg.cluster.uri("watcher", "watch-pw", "postgres"));
    let r = home.st.health("mon").await.unwrap();
    assert_eq!(r.checks.len(), CheckId::ALL.len());
    for c in &r.checks {
        if c.id == CheckId::ReplicationSlots {
            assert_eq!(c.status, HealthStatus::Unknown);
            let e = c.error.as_ref().unwrap();
            assert_eq!(e.code, ErrorCode::PermissionDenied, "{e:?}");
        } else {
            assert_ne!(c.status, HealthStatus::Unknown, "{c:?}");
        }
    }
}
on_each_version!(a_failing_check_fails_alone);
