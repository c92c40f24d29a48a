//! Live sessions, the blocking tree, and cancel/terminate, against real lock waits.

use std::sync::Arc;
use std::time::Duration;

use pgsteward::monitor::{ActivityFilter, BlockingNode, HealthStatus};
use pgsteward::{ErrorCode, Steward};
use sqlx::{Connection, PgConnection};

use crate::harness::{Home, Pg};
use crate::on_each_version;

async fn connect(uri: &str) -> (PgConnection, i32) {
    let mut c = PgConnection::connect(uri).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    (c, pid)
}

/// Poll the activity list until session `pid` waits for a lock; returns who blocks it.
async fn wait_until_blocked(st: &Arc<Steward>, project: &str, pid: i32) -> Vec<i32> {
    for _ in 0..400 {
        let r = st
            .activity(project, &ActivityFilter::default())
            .await
            .unwrap();
        if let Some(s) = r
            .sessions
            .iter()
            .find(|s| s.pid == pid && !s.blocked_by.is_empty())
        {
            return s.blocked_by.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("session {pid} never started waiting for a lock");
}

fn find(n: &BlockingNode, pid: i32) -> Option<&BlockingNode> {
    if n.pid == pid {
        return Some(n);
    }
    n.children.iter().find_map(|c| find(c, pid))
}

/// `pg_blocking_pids` as the server reports it, read independently of pgsteward.
fn server_blocking_pids(pg: &Pg, pid: i32) -> Vec<i32> {
    let text = pg.sql(
        "postgres",
        &format!("SELECT array_to_string(pg_blocking_pids({pid}), ',')"),
    );
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

async fn blocking_chain_is_a_tree_and_terminating_the_root_frees_it(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE TABLE account (id int PRIMARY KEY, balance int); INSERT INTO account VALUES (1, 0);",
    );
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let st = home.st.clone();

    // A holds the row lock in an open transaction and goes idle.
    let (mut a, a_pid) = connect(&pg.uri("postgres")).await;
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("UPDATE account SET balance = balance + 1 WHERE id = 1")
        .execute(&mut a)
        .await
        .unwrap();
    // B updates the same row and waits for A.
    let (mut b, b_pid) = connect(&pg.uri("postgres")).await;
    let b_task = tokio::spawn(async move {
        let r = sqlx::query("UPDATE account SET balance = balance + 10 WHERE id = 1")
            .execute(&mut b)
            .await;
        (b, r)
    });
    assert_eq!(wait_until_blocked(&st, "p", b_pid).await, vec![a_pid]);
    // C updates it too and queues behind them.
    let (mut c, c_pid) = connect(&pg.uri("postgres")).await;
    let c_task = tokio::spawn(async move {
        let r = sqlx::query("UPDATE account SET balance = balance + 100 WHERE id = 1")
            .execute(&mut c)
            .await;
        (c, r)
    });
    let c_blockers = wait_until_blocked(&st, "p", c_pid).await;
    assert_eq!(c_blockers, server_blocking_pids(&pg, c_pid));

    // The activity list flags A and shows the waits.
    let act = st.activity("p", &ActivityFilter::default()).await.unwrap();
    let sa = act.sessions.iter().find(|s| s.pid == a_pid).unwrap();
    assert!(sa.idle_in_transaction);
    assert_eq!(sa.state.as_deref(), Some("idle in transaction"));
    assert!(sa.blocked_by.is_empty());
    assert!(sa.query.as_deref().unwrap().contains("UPDATE account"));
    let sb = act.sessions.iter().find(|s| s.pid == b_pid).unwrap();
    assert_eq!(sb.wait_event_type.as_deref(), Some("Lock"));
    let own = act.sessions.iter().find(|s| s.own_session).unwrap();
    assert_eq!(own.pid, act.own_pid);
    assert!(own.pgsteward && !own.long_running);

    // A zero threshold flags everything that holds a transaction open, except our own session.
    let all_long = st
        .activity(
            "p",
            &ActivityFilter {
                long_running_seconds: Some(0.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for pid in [a_pid, b_pid, c_pid] {
        assert!(
            all_long
                .sessions
                .iter()
                .any(|s| s.pid == pid && s.long_running),
            "{pid}"
        );
    }
    assert!(all_long
        .sessions
        .iter()
        .filter(|s| s.own_session)
        .all(|s| !s.long_running));

    // The tree: A is the only root, B waits for it, C where the server says.
    let tree = st.blocking_tree("p").await.unwrap();
    assert_eq!(tree.roots.len(), 1, "{tree:#?}");
    assert_eq!(tree.waiting, 2);
    assert!(!tree.cycles);
    let root = &tree.roots[0];
    assert_eq!(root.pid, a_pid);
    assert!(root.blocked_by.is_empty() && root.waiting_for_mode.is_none());
    assert_eq!(root.blocks_total, 2);
    assert_eq!(root.state.as_deref(), Some("idle in transaction"));
    let nb = root
        .children
        .iter()
        .find(|n| n.pid == b_pid)
        .expect("B directly under A");
    assert_eq!(nb.blocked_by, vec![a_pid]);
    assert_eq!(nb.lock_type.as_deref(), Some("transactionid"));
    assert_eq!(nb.waiting_for_mode.as_deref(), Some("ShareLock"));
    assert_eq!(nb.relation.as_deref(), Some("account"));
    assert!(nb.waiting_seconds.unwrap() >= 0.0);
    let parent = if find(nb, c_pid).is_some() {
        b_pid
    } else {
        a_pid
    };
    assert_eq!(
        parent, c_blockers[0],
        "C sits under the session it waits for"
    );
    let nc = find(root, c_pid).unwrap();
    assert_eq!(nc.blocked_by, c_blockers);
    assert!(nc.waiting_for_mode.is_some());
    // The history sample counts the two lock requests waiting.
    let sample = st.sample_now("p").await.unwrap();
    let waiting = sample
        .metrics
        .iter()
        .find(|m| m.metric == "locks_waiting")
        .map(|m| m.value);
    assert_eq!(waiting, Some(2.0), "{:?}", sample.failures);

    // pgsteward will not terminate the session it speaks through.
    let err = st
        .terminate_backend("p", act.own_pid)
        .await
        .expect_err("own session");
    assert_eq!(err.code, ErrorCode::InvalidInput);

    // Terminating the root through pgsteward frees B, then C.
    let out = st.terminate_backend("p", a_pid).await.unwrap();
    assert!(out.signalled);
    let (_b, rb) = tokio::time::timeout(Duration::from_secs(30), b_task)
        .await
        .expect("B finishes")
        .unwrap();
    assert_eq!(rb.unwrap().rows_affected(), 1);
    let (_c, rc) = tokio::time::timeout(Duration::from_secs(30), c_task)
        .await
        .expect("C finishes")
        .unwrap();
    assert_eq!(rc.unwrap().rows_affected(), 1);
    // A's change was rolled back with its session; B's and C's were committed.
    assert_eq!(
        pg.sql("postgres", "SELECT balance FROM account WHERE id = 1"),
        "110"
    );
    assert!(sqlx::query("SELECT 1").execute(&mut a).await.is_err());
    assert!(st.blocking_tree("p").await.unwrap().roots.is_empty());

    // Signalling a pid that is gone is not an error; the server just says false.
    let gone = st.cancel_backend("p", a_pid).await.unwrap();
    assert!(!gone.signalled);
}
on_each_version!(blocking_chain_is_a_tree_and_terminating_the_root_frees_it);

async fn filters_are_applied_by_the_server(major: u32) {
    let pg = Pg::start(major);
    pg.sql("postgres", "CREATE ROLE clerk LOGIN PASSWORD 'clerk-pw'");
    pg.sql("postgres", "CREATE DATABASE shop OWNER clerk");
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let (mut clerk, clerk_pid) = connect(&pg.cluster.uri("clerk", "clerk-pw", "shop")).await;
    sqlx::query("SET application_name = 'till 7'")
        .execute(&mut clerk)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut clerk).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut clerk).await.unwrap();
    let pids = |r: &pgsteward::monitor::ActivityReport| -> Vec<i32> {
        r.sessions.iter().map(|s| s.pid).collect()
    };
    let f = |state: Option<&str>, user: Option<&str>, app: Option<&str>, db: Option<&str>| {
        ActivityFilter {
            state: state.map(Into::into),
            user: user.map(Into::into),
            application: app.map(Into::into),
            database: db.map(Into::into),
            ..Default::default()
        }
    };
    let st = &home.st;
    for filter in [
        f(Some("idle-in-transaction"), None, None, None),
        f(None, Some("clerk"), None, None),
        f(None, None, Some("till 7"), None),
        f(None, None, None, Some("shop")),
    ] {
        let r = st.activity("p", &filter).await.unwrap();
        assert_eq!(pids(&r), vec![clerk_pid], "{filter:?}");
    }
    // Text that looks like SQL is only ever a value.
    let r = st
        .activity("p", &f(None, Some("clerk' OR true --"), None, None))
        .await
        .unwrap();
    assert!(r.sessions.is_empty());
    let err = st
        .activity("p", &f(Some("sleeping"), None, None, None))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    // The minimum duration keeps the open transaction once it is old enough.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = st
        .activity(
            "p",
            &ActivityFilter {
                min_duration_seconds: Some(1.0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(pids(&r).contains(&clerk_pid));
    assert!(r
        .sessions
        .iter()
        .all(|s| s.xact_seconds.unwrap_or(0.0) >= 1.0 || s.query_seconds.unwrap_or(0.0) >= 1.0));
    // The limit bounds the list and says so.
    let r = st
        .activity(
            "p",
            &ActivityFilter {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.sessions.len(), 1);
    assert!(r.truncated);
}
on_each_version!(filters_are_applied_by_the_server);

async fn monitor_role_can_look_but_not_terminate_others(major: u32) {
    let pg = Pg::start(major);
    pg.sql(
        "postgres",
        "CREATE ROLE watcher LOGIN PASSWORD 'watch-pw'; GRANT pg_monitor TO watcher; \
         CREATE ROLE app LOGIN PASSWORD 'app-pw';",
    );
    let home = Home::new();
    home.add_uri("mon", &pg.cluster.uri("watcher", "watch-pw", "postgres"));
    let st = &home.st;
    let (mut app, app_pid) = connect(&pg.cluster.uri("app", "app-pw", "postgres")).await;
    sqlx::query("SELECT 42 AS answer")
        .execute(&mut app)
        .await
        .unwrap();
    let (_su, su_pid) = connect(&pg.uri("postgres")).await;

    // pg_monitor sees every session with its query text.
    let act = st
        .activity("mon", &ActivityFilter::default())
        .await
        .unwrap();
    let s = act.sessions.iter().find(|s| s.pid == app_pid).unwrap();
    assert_eq!(s.user.as_deref(), Some("app"));
    assert!(s.query.as_deref().unwrap().contains("SELECT 42"), "{s:?}");
    assert!(act.sessions.iter().any(|s| s.pid == su_pid));
    assert!(st.blocking_tree("mon").await.unwrap().roots.is_empty());

    // Every health check runs.
    let h = st.health("mon").await.unwrap();
    assert_eq!(h.checks.len(), 9);
    for c in &h.checks {
        assert_ne!(c.status, HealthStatus::Unknown, "{c:?}");
    }

    // But signalling other roles' sessions is refused, and says what is missing.
    for pid in [app_pid, su_pid] {
        let err = st.terminate_backend("mon", pid).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied, "{err:?}");
        assert_eq!(err.sqlstate.as_deref(), Some("42501"));
        assert!(err.message.contains("pg_signal_backend"), "{}", err.message);
        let err = st.cancel_backend("mon", pid).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::PermissionDenied);
    }
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(answer, 42, "the session survived");
}
on_each_version!(monitor_role_can_look_but_not_terminate_others);
