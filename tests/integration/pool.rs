//! Pool semantics: size plus overflow, timeout, reuse, and the metrics that show it.

use std::time::Duration;

use pgsteward::conn::PoolConfig;
use pgsteward::{ErrorCode, Steward};

use crate::harness::{Home, Pg};
use crate::on_each_version;

async fn size_overflow_timeout_and_reuse(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let cfg = PoolConfig {
        size: 1,
        max_overflow: 1,
        timeout: Duration::from_millis(300),
        ..PoolConfig::default()
    };
    let st = Steward::open(home.path()).unwrap().with_pool_config(cfg);
    let pool = st.pool("p").unwrap();

    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap(); // the overflow connection
    assert_eq!(pool.metrics().in_use, 2);
    let err = pool.acquire().await.err().expect("no third connection");
    assert_eq!(err.code, ErrorCode::PoolTimeout);
    assert_eq!(pool.metrics().timeouts, 1);

    drop(a);
    drop(b);
    // Only `size` connections stay idle; the overflow one is closed.
    let m = pool.metrics();
    assert_eq!((m.in_use, m.idle), (0, 1));
    assert_eq!(m.connections_opened, 2);
    assert_eq!(m.connections_closed, 1);

    let _c = pool.acquire().await.unwrap();
    assert_eq!(pool.metrics().served_from_idle, 1);
    assert_eq!(pool.metrics().connections_opened, 2, "reused, not reopened");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server_side: String = pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgsteward'",
    );
    assert_eq!(server_side, "1");
}
on_each_version!(size_overflow_timeout_and_reuse);

async fn recycled_connections_are_replaced(major: u32) {
    let pg = Pg::start(major);
    let home = Home::new();
    home.add_uri("p", &pg.uri("postgres"));
    let cfg = PoolConfig {
        size: 2,
        recycle: Duration::from_millis(300),
        ..PoolConfig::default()
    };
    let st = Steward::open(home.path()).unwrap().with_pool_config(cfg);
    let pool = st.pool("p").unwrap();
    drop(pool.acquire().await.unwrap());
    assert_eq!(pool.metrics().idle, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(pool.acquire().await.unwrap());
    let m = pool.metrics();
    assert_eq!(
        m.connections_opened, 2,
        "an expired connection is not reused"
    );
    assert_eq!(m.served_from_idle, 0);
}
on_each_version!(recycled_connections_are_replaced);
