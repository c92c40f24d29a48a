//! Missing-index candidates from recorded statements: a selective filter on a large table that
//! is read sequentially is suggested, checked with hypopg (the estimated cost drops), and given
//! as CREATE INDEX CONCURRENTLY with quoted identifiers; the statements themselves never run.

use crate::harness::{cli_json, Home, Pg};
use crate::on_each_version;

const T: &str = "\"Ödd \"\"tbl\"\" x\"";

async fn missing_index_checked_with_hypopg_lowers_the_cost(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE DATABASE app");
    let home = Home::new();
    home.add_uri("app", &pg.uri("app"));
    pg.sql(
        "app",
        &format!(
            "CREATE EXTENSION pg_stat_statements;
             CREATE EXTENSION hypopg;
             CREATE TABLE {T} (id int PRIMARY KEY, code int, \"Größe\" int, pad text);
             INSERT INTO {T} SELECT g, g % 5000, g % 7000, 'same' FROM generate_series(1, 50000) g;
             ANALYZE {T};
             CREATE TABLE calls_log (n int);
             CREATE FUNCTION bump() RETURNS int VOLATILE LANGUAGE sql AS
               $$ INSERT INTO calls_log VALUES (1) RETURNING 1 $$;"
        ),
    );
    for i in 0..5 {
        pg.sql(
            "app",
            &format!(
                "SELECT id FROM {T} WHERE code = {i};
                 SELECT count(*) FROM {T} WHERE \"Größe\" = {i};
                 SELECT count(*) FROM {T} WHERE pad = 'same';
                 SELECT count(*) FROM {T} WHERE id > 0 AND code = bump();"
            ),
        );
    }
    let logged = pg.sql("app", "SELECT count(*) FROM calls_log");

    let (ok, v) = cli_json(&home, &["--json", "indexes", "app"], None);
    assert!(ok, "{v}");
    assert_eq!(v["hypopg_installed"], true, "{v}");
    let missing = v["missing"].as_array().unwrap();
    let find = |col: &str| {
        missing
            .iter()
            .find(|m| m["column"] == col && m["source"] == "statement")
            .unwrap_or_else(|| panic!("no candidate on {col}: {v:#}"))
    };
    let code = find("code");
    assert_eq!(code["validated"], true, "{code:#}");
    let (before, after) = (
        code["cost_before"].as_f64().unwrap(),
        code["cost_after"].as_f64().unwrap(),
    );
    assert!(after < before, "{after} < {before}");
    assert_eq!(
        code["sql"],
        format!("CREATE INDEX CONCURRENTLY ON \"public\".{T} (\"code\")")
    );
    assert!(
        code["statement"].as_str().unwrap().contains("code ="),
        "{code:#}"
    );
    assert!(code["calls"].as_i64().unwrap() >= 5, "{code:#}");
    let size = find("Größe");
    assert_eq!(size["validated"], true, "{size:#}");
    assert_eq!(
        size["sql"],
        format!("CREATE INDEX CONCURRENTLY ON \"public\".{T} (\"Größe\")")
    );
    // A filter that keeps every row is no reason for an index.
    assert!(
        !missing.iter().any(|m| m["column"] == "pad"),
        "{missing:#?}"
    );
    // The recorded statements were planned, never run: bump() was not called again.
    assert_eq!(pg.sql("app", "SELECT count(*) FROM calls_log"), logged);

    // The library call leaves no session of pgsteward inside a transaction.
    let r = home.st.index_report("app").await.unwrap();
    assert!(r.missing.iter().any(|m| m.column == "code" && m.validated));
    assert_eq!(
        pg.sql(
            "app",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgsteward' AND state LIKE 'idle in transaction%'"
        ),
        "0"
    );

    // Without hypopg the candidate stays, unvalidated, and the report says why.
    pg.sql("app", "DROP EXTENSION hypopg");
    let r = home.st.index_report("app").await.unwrap();
    let m = r
        .missing
        .iter()
        .find(|m| m.column == "code")
        .expect("still a candidate");
    assert!(!m.validated);
    assert_eq!(m.cost_after, None);
    assert!(!r.hypopg_installed);
    assert!(
        r.notes.iter().any(|n| n.contains("hypopg")),
        "{:?}",
        r.notes
    );
}
on_each_version!(missing_index_checked_with_hypopg_lowers_the_cost);
