//! Safe EXPLAIN against real servers: nothing changes, one statement only, hints that fit.

use std::time::Duration;

use pgsteward::monitor::{ExplainOptions, HintKind, PlanNode};
use pgsteward::ErrorCode;
use sqlx::Connection;

use crate::harness::{Home, Pg};
use crate::on_each_version;

const BIG_TABLE: &str = "
CREATE TABLE big (id int PRIMARY KEY, status text NOT NULL, pad text);
INSERT INTO big SELECT g, CASE WHEN g % 1000 = 0 THEN 'rare' ELSE 'common' END, repeat('x', 40)
  FROM generate_series(1, 50000) g;
CREATE TABLE line (big_id int REFERENCES big (id) ON DELETE CASCADE, n int);
INSERT INTO line SELECT g, 1 FROM generate_series(1, 500) g;
CREATE SEQUENCE ticket;
ANALYZE;
";

fn setup(major: u32) -> (Pg, Home) {
    let pg = Pg::start(major);
    pg.sql("postgres", BIG_TABLE);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    (pg, home)
}

fn walk<'a>(n: &'a PlanNode, out: &mut Vec<&'a PlanNode>) {
    out.push(n);
    for c in &n.children {
        walk(c, out);
    }
}

/// Wait until no session of the server sits in an open transaction.
async fn no_open_transaction_remains(pg: &Pg) {
    for _ in 0..100 {
        let n = pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
        );
        if n == "0" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a transaction stayed open after EXPLAIN");
}

async fn explain_analyze_of_a_delete_changes_nothing(major: u32) {
    let (pg, home) = setup(major);
    let counts = || {
        (
            pg.sql("postgres", "SELECT count(*) FROM big"),
            pg.sql("postgres", "SELECT count(*) FROM line"),
        )
    };
    let before = counts();
    assert_eq!(before, ("50000".to_string(), "500".to_string()));

    let r = home
        .st
        .explain("p", "DELETE FROM big WHERE id > 10;", true)
        .await
        .unwrap();
    assert!(r.analyzed && r.data_changing);
    assert!(
        r.warnings.iter().any(|w| w.contains("rolled back")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.plan.node_type, "Delete");
    assert_eq!(r.plan.relation.as_deref(), Some("big"));
    let scan = &r.plan.children[0];
    assert_eq!(scan.actual_rows_total, Some(49990.0));
    assert!(r.execution_ms.is_some());
    // The cascade to `line` ran as a foreign-key trigger, and its time is reported.
    assert!(r.triggers.iter().any(|t| t.calls > 0.0), "{:?}", r.triggers);
    assert_eq!(counts(), before, "every row is still there");

    // Hidden inside a CTE, still recognised, still rolled back.
    let r = home
        .st
        .explain(
            "p",
            "/* cleanup */ WITH gone AS (DELETE FROM line RETURNING *) SELECT count(*) FROM gone",
            true,
        )
        .await
        .unwrap();
    assert!(r.data_changing);
    let mut nodes = Vec::new();
    walk(&r.plan, &mut nodes);
    assert!(nodes
        .iter()
        .any(|n| n.node_type == "Delete" && n.actual_rows_total == Some(500.0)));
    assert_eq!(counts(), before);

    // A plain SELECT carries no warning.
    let r = home
        .st
        .explain("p", "SELECT count(*) FROM big", true)
        .await
        .unwrap();
    assert!(!r.data_changing && r.warnings.is_empty());
    no_open_transaction_remains(&pg).await;
}
on_each_version!(explain_analyze_of_a_delete_changes_nothing);

async fn more_than_one_statement_is_refused(major: u32) {
    let (pg, home) = setup(major);
    for text in [
        "SELECT 1; DELETE FROM big",
        "DELETE FROM big; ROLLBACK",
        "SELECT 'a;b'; COMMIT; DELETE FROM big",
        "SELECT 1 /* ; */ ; SELECT $$;$$ ; SELECT 3",
    ] {
        let err = home.st.explain("p", text, true).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput, "{text}: {err:?}");
    }
    for text in ["", "COMMIT", "DROP TABLE big", "SELECT 'unterminated"] {
        let err = home.st.explain("p", text, true).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput, "{text}: {err:?}");
    }
    // Refused before any connection was made.
    assert_eq!(home.st.pool_metrics("p").unwrap().acquisitions, 0);
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM big"), "50000");
    // A semicolon inside a literal or a comment is not a second statement.
    let r = home
        .st
        .explain("p", "SELECT ';' AS a, $x$;$x$ AS b -- ;\n;", true)
        .await
        .unwrap();
    assert_eq!(r.plan.node_type, "Result");
}
on_each_version!(more_than_one_statement_is_refused);

async fn selective_seq_scan_of_a_large_table_gets_the_index_hint(major: u32) {
    let (pg, home) = setup(major);
    let r = home
        .st
        .explain("p", "SELECT * FROM big WHERE status = 'rare'", true)
        .await
        .unwrap();
    let hint = r
        .hints
        .iter()
        .find(|h| h.kind == HintKind::SeqScanSelective)
        .unwrap_or_else(|| panic!("no seq scan hint in {:#?}", r.plan));
    let mut nodes = Vec::new();
    walk(&r.plan, &mut nodes);
    let scan = nodes.iter().find(|n| n.id == hint.node_id).unwrap();
    assert!(scan.node_type.ends_with("Seq Scan"));
    assert_eq!(scan.relation.as_deref(), Some("big"));
    assert!(hint.message.contains("status"), "{}", hint.message);
    assert!(scan.buffers.is_some() && scan.inclusive_ms.is_some());

    // With an index the hint goes away.
    pg.sql(
        "postgres",
        "CREATE INDEX big_status ON big (status); ANALYZE big;",
    );
    let r = home
        .st
        .explain("p", "SELECT * FROM big WHERE status = 'rare'", true)
        .await
        .unwrap();
    assert!(
        !r.hints.iter().any(|h| h.kind == HintKind::SeqScanSelective),
        "{:#?}",
        r.plan
    );

    // Without ANALYZE: estimates only, nothing executed.
    let r = home
        .st
        .explain("p", "SELECT nextval('ticket') FROM big", false)
        .await
        .unwrap();
    assert!(!r.analyzed && r.execution_ms.is_none() && r.plan.actual_rows.is_none());
    assert_eq!(
        pg.sql("postgres", "SELECT is_called FROM ticket"),
        "f",
        "the sequence was not touched"
    );
}
on_each_version!(selective_seq_scan_of_a_large_table_gets_the_index_hint);

async fn a_slow_statement_is_stopped_by_the_timeout(major: u32) {
    let (pg, home) = setup(major);
    let opts = ExplainOptions {
        statement_timeout: Duration::from_millis(300),
        ..ExplainOptions::default()
    };
    let err = home
        .st
        .explain_with("p", "SELECT pg_sleep(30)", &opts)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate.as_deref(), Some("57014"), "{err:?}");
    assert!(err.message.contains("0.3 s"), "{}", err.message);
    // A lock wait is bounded by the lock timeout.
    pg.sql("postgres", "CREATE TABLE held (id int)");
    let mut holder = sqlx::PgConnection::connect(&pg.uri("postgres"))
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let opts = ExplainOptions {
        lock_timeout: Duration::from_millis(200),
        ..ExplainOptions::default()
    };
    let err = home
        .st
        .explain_with("p", "SELECT * FROM held", &opts)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate.as_deref(), Some("55P03"), "{err:?}");
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    no_open_transaction_remains(&pg).await;
}
on_each_version!(a_slow_statement_is_stopped_by_the_timeout);
