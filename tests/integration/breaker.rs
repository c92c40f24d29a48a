//! The circuit breaker against a server that is down, then comes up.

use std::time::Duration;

use pgsteward::cluster::{Cluster, ClusterOptions};
use pgsteward::conn::breaker::BreakerConfig;
use pgsteward::conn::{CircuitState, PoolConfig};
use pgsteward::{ErrorCode, Steward};

use crate::harness::Home;
use crate::on_each_version;

async fn circuit_opens_fails_fast_half_opens_and_closes(major: u32) {
    let home = Home::new();
    let cfg = PoolConfig {
        connect_attempts: 2,
        backoff_base: Duration::from_millis(10),
        breaker: BreakerConfig {
            failure_threshold: 3,
            recovery_timeout: Duration::from_secs(2),
        },
        ..PoolConfig::default()
    };
    let st = Steward::open(home.path()).unwrap().with_pool_config(cfg);
    // A port where nothing listens yet; the server will appear there later.
    let (_, bin) = Cluster::find_binaries(Some(major)).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("pgsw-test")
        .tempdir_in("/tmp")
        .unwrap();
    let opts = ClusterOptions {
        password: "pw".into(),
        ..Default::default()
    };
    let cluster = Cluster::init(dir.path(), &bin, major, &opts).unwrap();
    let uri = cluster.uri("postgres", "pw", "postgres");
    home.st
        .create(&pgsteward::project::ProjectInput {
            name: "flaky".into(),
            connection: pgsteward::conn::ConnectionInput::Uri { uri },
            password: None,
        })
        .unwrap();

    for _ in 0..3 {
        assert_eq!(
            st.test("flaky").await.unwrap_err().code,
            ErrorCode::ConnectFailed
        );
    }
    let pool = st.pool("flaky").unwrap();
    assert_eq!(pool.circuit_state(), CircuitState::Open);
    let failures_before = pool.metrics().connect_failures;
    // While open, attempts fail fast and do not reach the network.
    let err = st.test("flaky").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::CircuitOpen);
    assert_eq!(pool.metrics().connect_failures, failures_before);

    // The server comes up; after the recovery timeout one trial is let through and succeeds.
    cluster.start().unwrap();
    while pool.circuit_state() == CircuitState::Open {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pool.circuit_state(), CircuitState::HalfOpen);
    let ok = st.test("flaky").await.unwrap();
    assert_eq!(ok.server_version_num / 10000, major as i32);
    assert_eq!(pool.circuit_state(), CircuitState::Closed);
    assert_eq!(pool.metrics().circuit_opened_times, 1);
}
on_each_version!(circuit_opens_fails_fast_half_opens_and_closes);
