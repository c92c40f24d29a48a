//! Tuning against real servers: values inside each version's bounds, evidence from real
//! statistics, apply (reload and restart settings) and rollback, the privilege error, the CLI.

use pgsteward::tune::{ProfileInput, SettingChange, TakesEffect, TuneReport};
use pgsteward::ErrorCode;
use serde_json::Value;

use crate::harness::{cli, Home, Pg};
use crate::on_each_version;

fn input(ram: &str, cpus: i64, workload: &str) -> ProfileInput {
    ProfileInput {
        ram: Some(ram.into()),
        cpus: Some(cpus),
        storage: Some("ssd".into()),
        workload: Some(workload.into()),
        ..ProfileInput::default()
    }
}

fn item<'a>(r: &'a TuneReport, name: &str) -> &'a pgsteward::tune::Recommendation {
    r.item(name)
        .unwrap_or_else(|| panic!("no recommendation for {name}: {r:#?}"))
}

fn change(name: &str, value: &str) -> SettingChange {
    SettingChange {
        name: name.into(),
        value: value.into(),
    }
}

/// Whether the server itself finds `value` inside the setting's min/max (memory and plain
/// numbers; durations are not checked here).
fn inside_bounds(pg: &Pg, name: &str, value: &str) -> bool {
    let unit = pg.sql(
        "postgres",
        &format!("SELECT coalesce(unit, '') FROM pg_settings WHERE name = '{name}'"),
    );
    let q = if unit.ends_with('B') {
        let one = if unit.starts_with(|c: char| c.is_ascii_digit()) {
            unit.clone()
        } else {
            format!("1{unit}")
        };
        format!(
            "SELECT pg_size_bytes('{value}') BETWEEN min_val::numeric * pg_size_bytes('{one}')
                                             AND max_val::numeric * pg_size_bytes('{one}')
               FROM pg_settings WHERE name = '{name}'"
        )
    } else if unit.is_empty() {
        format!(
            "SELECT '{value}'::numeric BETWEEN min_val::numeric AND max_val::numeric
               FROM pg_settings WHERE name = '{name}'"
        )
    } else {
        return true;
    };
    pg.sql("postgres", &q) == "t"
}

async fn recommendations_stay_inside_the_servers_bounds(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));

    // A machine bigger than any bound: 64TB of RAM, 64 CPUs, a warehouse.
    let r = home
        .st
        .tune_recommend("p", &input("64TB", 64, "dw"))
        .await
        .unwrap();
    assert_eq!(r.server_version_num / 10000, major as i32);
    let sb = item(&r, "shared_buffers");
    assert_eq!(sb.takes_effect, TakesEffect::Restart);
    assert!(
        sb.adjustment
            .as_deref()
            .is_some_and(|a| a.starts_with("lowered from 16384GB to this server's maximum")),
        "{sb:?}"
    );
    let wm = item(&r, "work_mem");
    assert_eq!(wm.takes_effect, TakesEffect::Reload);
    for rec in r.items() {
        let Some(v) = &rec.recommended else { continue };
        let numeric = pg.sql(
            "postgres",
            &format!(
                "SELECT vartype IN ('integer', 'real') FROM pg_settings WHERE name = '{}'",
                rec.name
            ),
        );
        if numeric == "t" {
            assert!(inside_bounds(&pg, &rec.name, v), "{} = {v}", rec.name);
        }
        // The restart/reload label follows the server's own context.
        let ctx = pg.sql(
            "postgres",
            &format!(
                "SELECT context FROM pg_settings WHERE name = '{}'",
                rec.name
            ),
        );
        assert_eq!(
            rec.takes_effect == TakesEffect::Restart,
            ctx == "postmaster",
            "{}",
            rec.name
        );
    }
    let groups: Vec<_> = r.groups.iter().map(|g| g.title.as_str()).collect();
    assert_eq!(
        &groups[..3],
        ["Memory", "Connections", "WAL and checkpoints"]
    );
    assert!(r.memory_chart_svg.starts_with("<svg"));
    assert!(r.script_sql.contains("ALTER SYSTEM SET \"shared_buffers\""));

    // A tiny machine: PGTune gives maintenance_work_mem 64kB, below PostgreSQL 15's minimum
    // (1MB) and at PostgreSQL 18's (64kB): raised on one, kept on the other.
    let r = home
        .st
        .tune_recommend("p", &input("1MB", 1, "web"))
        .await
        .unwrap();
    let mwm = item(&r, "maintenance_work_mem");
    let min_kb: u64 = pg
        .sql(
            "postgres",
            "SELECT min_val FROM pg_settings WHERE name = 'maintenance_work_mem' AND unit = 'kB'",
        )
        .parse()
        .unwrap();
    if min_kb > 64 {
        assert_eq!(min_kb, 1024);
        assert_eq!(mwm.recommended.as_deref(), Some("1MB"));
        assert_eq!(
            mwm.adjustment.as_deref(),
            Some("raised from 64kB to this server's minimum 1MB")
        );
    } else {
        assert_eq!(mwm.recommended.as_deref(), Some("64kB"));
        assert_eq!(mwm.adjustment, None);
    }
    // The profile was saved for the project and is used when nothing is given.
    let saved = home.st.tune_profile("p").unwrap().unwrap();
    assert_eq!(saved.ram_kb, 1024);
    let r = home
        .st
        .tune_recommend("p", &ProfileInput::default())
        .await
        .unwrap();
    assert_eq!(r.profile.ram_kb, 1024);
}
on_each_version!(recommendations_stay_inside_the_servers_bounds);

async fn statistics_become_evidence(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE EXTENSION pg_stat_statements");
    pg.sql(
        "postgres",
        "SET work_mem = '64kB'; SELECT count(*) FROM (SELECT g FROM generate_series(1, 300000) g ORDER BY g DESC) AS spill_probe",
    );
    for i in 0..4 {
        pg.sql(
            "postgres",
            &format!("CREATE TABLE ck{i} AS SELECT g FROM generate_series(1, 1000) g"),
        );
        pg.sql("postgres", "CHECKPOINT");
    }
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let r = home
        .st
        .tune_recommend("p", &input("8GB", 4, "web"))
        .await
        .unwrap();
    assert!(r.evidence_error.is_none(), "{:?}", r.evidence_error);
    let wm = item(&r, "work_mem");
    let ev = wm.evidence.join(" ");
    assert!(ev.contains("temporary files"), "{ev}");
    assert!(ev.contains("spill_probe"), "{ev}");
    let wal = item(&r, "max_wal_size");
    assert!(
        wal.evidence
            .iter()
            .any(|e| e.contains("requested against 0 timed")),
        "{wal:?}"
    );
    let slow = item(&r, "log_min_duration_statement");
    assert_eq!(slow.recommended.as_deref(), Some("1s"));
    assert!(slow.changes);
    assert_eq!(
        item(&r, "track_io_timing").recommended.as_deref(),
        Some("on")
    );
    let stt = item(&r, "statement_timeout");
    assert_eq!(
        (stt.current.as_deref(), stt.recommended.as_deref()),
        (Some("0"), Some("5min"))
    );
    assert_eq!(
        item(&r, "idle_in_transaction_session_timeout")
            .recommended
            .as_deref(),
        Some("10min")
    );
}
on_each_version!(statistics_become_evidence);

/// The monitoring history outweighs lifetime counters: a cache hit ratio that sank over the last
/// days shows up as evidence even when the server's totals since the last reset look fine.
async fn monitoring_history_becomes_evidence(major: u32) {
    use pgsteward::monitor::history::MetricRow;
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let store = home.st.history_store("p").await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for i in 1..=30 {
        store
            .insert_points(
                now - i * 60_000,
                &[MetricRow {
                    metric: "cache_hit_ratio".into(),
                    label: String::new(),
                    value: 0.62,
                }],
            )
            .await
            .unwrap();
    }
    let r = home
        .st
        .tune_recommend("p", &input("8GB", 4, "web"))
        .await
        .unwrap();
    let sb = item(&r, "shared_buffers");
    let ev = sb.evidence.join(" ");
    assert!(ev.contains("62.0 % of block reads"), "{ev}");
    assert!(ev.contains("monitoring history"), "{ev}");
}
on_each_version!(monitoring_history_becomes_evidence);

async fn apply_reload_and_restart_settings_then_roll_back(major: u32) {
    let pg = Pg::start(major);
    // work_mem already has an entry in postgresql.auto.conf; shared_buffers has none.
    pg.sql("postgres", "ALTER SYSTEM SET work_mem = '8MB'");
    pg.sql("postgres", "SELECT pg_reload_conf()");
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));

    let e = home
        .st
        .tune_apply("p", &[change("no_such_setting", "1")])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    let e = home.st.tune_apply("p", &[]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);

    let r = home
        .st
        .tune_apply(
            "p",
            &[
                change("work_mem", "64MB"),
                change("shared_buffers", "256MB"),
            ],
        )
        .await
        .unwrap();
    let wm = r.settings.iter().find(|s| s.name == "work_mem").unwrap();
    assert_eq!((wm.previous.as_str(), wm.now.as_str()), ("8MB", "64MB"));
    assert!(!wm.pending_restart);
    let sb = r
        .settings
        .iter()
        .find(|s| s.name == "shared_buffers")
        .unwrap();
    assert_eq!(sb.now, "128MB");
    assert!(sb.pending_restart && sb.needs_restart);
    assert!(r.restart_needed);
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
        ),
        "65536"
    );
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'"
        ),
        "t"
    );

    let r = home.st.tune_rollback("p").await.unwrap();
    assert_eq!(r.action, "rollback");
    let wm = r.settings.iter().find(|s| s.name == "work_mem").unwrap();
    assert_eq!(wm.now, "8MB");
    assert_eq!(wm.written.as_deref(), Some("8MB"));
    let sb = r
        .settings
        .iter()
        .find(|s| s.name == "shared_buffers")
        .unwrap();
    assert_eq!(sb.written, None);
    assert!(!sb.pending_restart, "{sb:?}");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
        ),
        "8192"
    );
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_file_settings WHERE name IN ('work_mem', 'shared_buffers') AND sourcefile LIKE '%postgresql.auto.conf'"
        ),
        "work_mem=8MB"
    );
    let e = home.st.tune_rollback("p").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidInput);
    assert!(e.message.contains("nothing") || e.message.contains("no applied"));
}
on_each_version!(apply_reload_and_restart_settings_then_roll_back);

async fn a_role_without_the_privilege_changes_nothing(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'");
    let home = Home::new();
    home.add_uri("plain", &pg.cluster.uri("plain", "plain-pw", "postgres"));

    let e = home
        .st
        .tune_apply("plain", &[change("work_mem", "64MB")])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e:?}");
    assert!(
        e.message
            .contains("GRANT ALTER SYSTEM ON PARAMETER work_mem TO \"plain\""),
        "{}",
        e.message
    );
    assert!(e.message.contains("Nothing was changed"));
    assert!(e.message.contains("--script"));
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem' AND sourcefile LIKE '%postgresql.auto.conf'"
        ),
        "0"
    );
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
        ),
        "4096"
    );
    // The recommendations themselves still work, with the script to apply by hand.
    let r = home
        .st
        .tune_recommend("plain", &input("8GB", 4, "web"))
        .await
        .unwrap();
    assert!(r
        .script_sql
        .contains("ALTER SYSTEM SET \"work_mem\" = '10280kB'"));

    // Granted the privilege on the parameter and the reload function, the role can apply, and
    // without read access to postgresql.auto.conf the rollback sets the old value back.
    pg.sql(
        "postgres",
        "GRANT ALTER SYSTEM ON PARAMETER work_mem TO plain",
    );
    let e = home
        .st
        .tune_apply("plain", &[change("work_mem", "64MB")])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PermissionDenied);
    assert!(e.message.contains("pg_reload_conf"), "{}", e.message);
    pg.sql(
        "postgres",
        "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO plain",
    );
    let r = home
        .st
        .tune_apply("plain", &[change("work_mem", "64MB")])
        .await
        .unwrap();
    assert_eq!(r.settings[0].now, "64MB");
    let r = home.st.tune_rollback("plain").await.unwrap();
    assert_eq!(r.settings[0].now, "4MB");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
        ),
        "4096"
    );
}
on_each_version!(a_role_without_the_privilege_changes_nothing);

fn run(home: &Home, args: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(cli())
        .args(args)
        .env("PGSTEWARD_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

async fn tune_cli_recommends_applies_and_rolls_back(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));

    for bad in [
        vec!["--ram", "0GB"],
        vec!["--ram", "8GB", "--cpus", "-2"],
        vec!["--ram", "8GB", "--workload", "gaming"],
    ] {
        let mut args = vec!["--json", "tune", "p"];
        args.extend(bad.iter());
        let (ok, v) = run(&home, &args);
        assert!(!ok);
        assert_eq!(v["error"]["code"], "invalid_input", "{bad:?}: {v}");
    }

    let (ok, v) = run(
        &home,
        &[
            "--json",
            "tune",
            "p",
            "--ram",
            "8GB",
            "--cpus",
            "4",
            "--workload",
            "web",
            "--storage",
            "ssd",
        ],
    );
    assert!(ok, "{v}");
    assert_eq!(v["profile"]["ram_kb"], 8388608);
    assert!(v.get("memory_chart_svg").is_none());
    let items: Vec<&Value> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["items"].as_array().unwrap())
        .collect();
    let wm = items.iter().find(|i| i["name"] == "work_mem").unwrap();
    // (8GB - 2GB) / ((200 + 4) * 3) = 6291456 / 612 = 10280.1 -> 10280kB
    assert_eq!(wm["recommended"], "10280kB");
    assert_eq!(wm["current"], "4MB");
    assert_eq!(wm["takes_effect"], "reload");

    // The human table: groups, current -> recommended, what it takes.
    let text = std::process::Command::new(cli())
        .args(["tune", "p"])
        .env("PGSTEWARD_HOME", home.path())
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        "Memory",
        "WAL and checkpoints",
        "Logging",
        "work_mem",
        "10280kB",
        "restart",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }

    let chart = home.path().join("budget.svg");
    let (ok, v) = run(
        &home,
        &["--json", "tune", "p", "--chart", chart.to_str().unwrap()],
    );
    assert!(ok, "{v}");
    assert!(std::fs::read_to_string(&chart)
        .unwrap()
        .contains("Memory budget"));

    let (ok, v) = run(&home, &["--json", "tune", "p", "--script"]);
    assert!(ok, "{v}");
    assert!(v["sql"]
        .as_str()
        .unwrap()
        .contains("ALTER SYSTEM SET \"work_mem\" = '10280kB';"));

    let (ok, v) = run(
        &home,
        &["--json", "tune", "p", "--apply", "--only", "work_mem"],
    );
    assert!(!ok);
    assert_eq!(v["error"]["code"], "confirmation_required");

    let (ok, v) = run(
        &home,
        &[
            "--json", "tune", "p", "--apply", "--yes", "--only", "work_mem",
        ],
    );
    assert!(ok, "{v}");
    assert_eq!(v["settings"][0]["name"], "work_mem");
    assert_eq!(v["settings"][0]["now"], "10280kB");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
        ),
        "10280"
    );

    let (ok, v) = run(&home, &["--json", "tune", "p", "--rollback"]);
    assert!(ok, "{v}");
    assert_eq!(v["settings"][0]["now"], "4MB");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT setting FROM pg_settings WHERE name = 'work_mem'"
        ),
        "4096"
    );
}
on_each_version!(tune_cli_recommends_applies_and_rolls_back);

/// A remote server's hardware is read through the server when the role may read its files
/// (here the server runs on this machine, so the figures can be checked against it).
async fn hardware_is_read_through_the_server_when_allowed(major: u32) {
    use sqlx::Connection;
    let pg = Pg::start(major);
    let mut su = sqlx::PgConnection::connect(&pg.uri("postgres"))
        .await
        .unwrap();
    let d = pgsteward::tune::server_detect::detect(&mut su)
        .await
        .expect("a superuser may read server files");
    let here = pgsteward::tune::profile::detect_local();
    assert_eq!(d.ram_kb, here.ram_kb);
    assert!(d.cpus.is_some_and(|n| n >= 1), "{d:?}");

    pg.sql(
        "postgres",
        "CREATE ROLE plain LOGIN PASSWORD 'plain-pass-1'",
    );
    let uri = pg.cluster.uri("plain", "plain-pass-1", "postgres");
    let mut plain = sqlx::PgConnection::connect(&uri).await.unwrap();
    assert!(pgsteward::tune::server_detect::detect(&mut plain)
        .await
        .is_none());
}
on_each_version!(hardware_is_read_through_the_server_when_allowed);
