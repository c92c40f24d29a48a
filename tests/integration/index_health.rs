//! Index health: unused, duplicate, redundant and invalid indexes found (never those behind
//! constraints), in the core's report and from the CLI.

use pgsteward::maintain::IndexFindingKind;

use crate::harness::cli_json;
use crate::maintain::setup;
use crate::on_each_version;

async fn index_health_finds_unused_duplicate_and_invalid(major: u32) {
    let (pg, home) = setup(major);
    pg.sql(
        "app",
        "CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent, a int, b int, dup int);
         INSERT INTO parent SELECT g, 'c' || g FROM generate_series(1, 100) g;
         INSERT INTO child SELECT g, 1 + g % 100, g, g, g % 3 FROM generate_series(1, 1000) g;
         CREATE INDEX child_a ON child (a);
         CREATE INDEX child_a_again ON child (a);
         CREATE INDEX child_a_b ON child (a, b);
         CREATE INDEX child_unused ON child (b);",
    );
    // A unique index built concurrently on duplicate data fails and stays behind, invalid.
    assert!(pg
        .cluster
        .psql(
            "app",
            "CREATE UNIQUE INDEX CONCURRENTLY child_dup_u ON child (dup)"
        )
        .is_err());
    let r = home.st.index_report("app").await.unwrap();
    let has = |kind: IndexFindingKind, name: &str| {
        r.findings.iter().any(|f| f.kind == kind && f.index == name)
    };
    assert!(
        has(IndexFindingKind::Invalid, "child_dup_u"),
        "{:?}",
        r.findings
    );
    assert!(
        has(IndexFindingKind::Duplicate, "child_a_again"),
        "{:?}",
        r.findings
    );
    assert!(
        has(IndexFindingKind::Redundant, "child_a"),
        "{:?}",
        r.findings
    );
    assert!(
        has(IndexFindingKind::Unused, "child_unused"),
        "{:?}",
        r.findings
    );
    // Indexes behind constraints are never called unused.
    for name in ["parent_pkey", "parent_code_key", "child_pkey"] {
        assert!(
            !r.findings.iter().any(|f| f.index == name),
            "{name}: {:?}",
            r.findings
        );
    }
    let (ok, v) = cli_json(&home, &["--json", "indexes", "app"], None);
    assert!(ok, "{v}");
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "invalid" && f["index"] == "child_dup_u"));
}
on_each_version!(index_health_finds_unused_duplicate_and_invalid);
