//! Connection pool with the semantics DBAs know from SQLAlchemy, plus a circuit breaker.
//!
//! Up to `size` connections are kept idle for reuse; up to `max_overflow` more may be opened under
//! load and are closed when returned. Acquiring waits at most `timeout`; connections older than
//! `recycle` are closed instead of reused. New connections are established with retries
//! (exponential backoff with jitter) behind a [`Breaker`], so an unreachable server is not
//! hammered and callers fail fast while the circuit is open.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use ts_rs::TS;

use super::breaker::{Admission, Breaker, BreakerConfig, CircuitState};
use crate::error::{Error, ErrorCode, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub size: usize,
    pub max_overflow: usize,
    pub timeout: Duration,
    pub recycle: Duration,
    /// Attempts to establish one connection before it counts as a failure.
    pub connect_attempts: u32,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub breaker: BreakerConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 20,
            max_overflow: 30,
            timeout: Duration::from_secs(30),
            recycle: Duration::from_secs(3600),
            connect_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            breaker: BreakerConfig::default(),
        }
    }
}

fn env_num<T: std::str::FromStr>(key: &str) -> Option<T> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

impl PoolConfig {
    /// Defaults overridden by the documented environment variables.
    pub fn from_env() -> Self {
        let mut c = PoolConfig::default();
        if let Some(v) = env_num("DATABASE_POOL_SIZE") {
            c.size = v;
        }
        if let Some(v) = env_num("DATABASE_MAX_OVERFLOW") {
            c.max_overflow = v;
        }
        if let Some(v) = env_num("DATABASE_POOL_TIMEOUT") {
            c.timeout = Duration::from_secs(v);
        }
        if let Some(v) = env_num("DATABASE_POOL_RECYCLE") {
            c.recycle = Duration::from_secs(v);
        }
        if let Some(v) = env_num("CIRCUIT_BREAKER_FAILURE_THRESHOLD") {
            c.breaker.failure_threshold = v;
        }
        if let Some(v) = env_num("CIRCUIT_BREAKER_RECOVERY_TIMEOUT") {
            c.breaker.recovery_timeout = Duration::from_secs(v);
        }
        c
    }
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Serialize, TS)]
pub struct PoolMetrics {
    pub size: u32,
    pub max_overflow: u32,
    pub in_use: u32,
    pub idle: u32,
    pub waiters: u32,
    #[ts(type = "number")]
    pub acquisitions: u64,
    #[ts(type = "number")]
    pub served_from_idle: u64,
    #[ts(type = "number")]
    pub connections_opened: u64,
    #[ts(type = "number")]
    pub connections_closed: u64,
    #[ts(type = "number")]
    pub timeouts: u64,
    #[ts(type = "number")]
    pub connect_failures: u64,
    /// Total time callers spent waiting for a connection, in milliseconds.
    pub wait_ms_total: f64,
    pub wait_ms_max: f64,
    pub circuit: CircuitState,
    #[ts(type = "number")]
    pub circuit_opened_times: u64,
}

struct Idle {
    conn: PgConnection,
    created: Instant,
}

#[derive(Default)]
struct Counters {
    acquisitions: AtomicU64,
    served_from_idle: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
    timeouts: AtomicU64,
    connect_failures: AtomicU64,
    wait_us_total: AtomicU64,
    wait_us_max: AtomicU64,
}

struct Inner {
    options: PgConnectOptions,
    cfg: PoolConfig,
    idle: Mutex<VecDeque<Idle>>,
    permits: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
    waiters: AtomicUsize,
    counters: Counters,
}

/// A pool of connections to one server. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// A checked-out connection; goes back to the pool (or is closed) when dropped.
pub struct PooledConn {
    conn: Option<PgConnection>,
    created: Instant,
    discard: bool,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for PooledConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl PooledConn {
    /// Do not return this connection to the pool (e.g. after an error left it unusable).
    pub fn discard(&mut self) {
        self.discard = true;
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let expired = self.created.elapsed() >= self.pool.cfg.recycle;
        let mut idle = self.pool.idle.lock().unwrap();
        if !self.discard && !expired && idle.len() < self.pool.cfg.size {
            idle.push_back(Idle {
                conn,
                created: self.created,
            });
        } else {
            drop(idle);
            self.pool.counters.closed.fetch_add(1, Ordering::Relaxed);
            close_in_background(conn);
        }
    }
}

fn close_in_background(conn: PgConnection) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = conn.close().await;
        });
    }
}

impl Pool {
    pub fn new(options: PgConnectOptions, cfg: PoolConfig) -> Self {
        let permits = Arc::new(Semaphore::new(cfg.size + cfg.max_overflow));
        Pool {
            inner: Arc::new(Inner {
                options,
                breaker: Mutex::new(Breaker::new(cfg.breaker)),
                cfg,
                idle: Mutex::new(VecDeque::new()),
                permits,
                waiters: AtomicUsize::new(0),
                counters: Counters::default(),
            }),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// Take a connection: an idle one when there is one, else a new one, waiting at most
    /// the pool timeout for a free slot.
    pub async fn acquire(&self) -> Result<PooledConn> {
        let inner = &self.inner;
        let started = Instant::now();
        inner.waiters.fetch_add(1, Ordering::Relaxed);
        let permit =
            tokio::time::timeout(inner.cfg.timeout, inner.permits.clone().acquire_owned()).await;
        inner.waiters.fetch_sub(1, Ordering::Relaxed);
        let waited = started.elapsed().as_micros() as u64;
        inner
            .counters
            .wait_us_total
            .fetch_add(waited, Ordering::Relaxed);
        inner
            .counters
            .wait_us_max
            .fetch_max(waited, Ordering::Relaxed);
        let permit = match permit {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(Error::internal("the pool was closed")),
            Err(_) => {
                inner.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(Error::new(
                    ErrorCode::PoolTimeout,
                    format!(
                        "All {} connections were busy for {} s. Raise DATABASE_POOL_SIZE / DATABASE_MAX_OVERFLOW or find what holds them.",
                        inner.cfg.size + inner.cfg.max_overflow,
                        inner.cfg.timeout.as_secs()
                    ),
                ));
            }
        };
        inner.counters.acquisitions.fetch_add(1, Ordering::Relaxed);
        loop {
            let candidate = inner.idle.lock().unwrap().pop_front();
            let Some(idle) = candidate else { break };
            if idle.created.elapsed() >= inner.cfg.recycle {
                inner.counters.closed.fetch_add(1, Ordering::Relaxed);
                close_in_background(idle.conn);
                continue;
            }
            inner
                .counters
                .served_from_idle
                .fetch_add(1, Ordering::Relaxed);
            return Ok(PooledConn {
                conn: Some(idle.conn),
                created: idle.created,
                discard: false,
                pool: inner.clone(),
                _permit: permit,
            });
        }
        let conn = self.connect().await?;
        Ok(PooledConn {
            conn: Some(conn),
            created: Instant::now(),
            discard: false,
            pool: inner.clone(),
            _permit: permit,
        })
    }

    /// Establish a new connection through the breaker, retrying transient failures.
    async fn connect(&self) -> Result<PgConnection> {
        let inner = &self.inner;
        let admission = inner.breaker.lock().unwrap().admit(Instant::now());
        if let Admission::Rejected { retry_in } = admission {
            return Err(Error::new(
                ErrorCode::CircuitOpen,
                format!(
                    "The server failed {} times in a row; pgsteward stops trying for a while to spare it. Next attempt in {} s.",
                    inner.breaker.lock().unwrap().consecutive_failures(),
                    retry_in.as_secs().max(1)
                ),
            ));
        }
        let attempts = if admission == Admission::Trial {
            1
        } else {
            inner.cfg.connect_attempts.max(1)
        };
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(&inner.cfg, attempt)).await;
            }
            match PgConnection::connect_with(&inner.options).await {
                Ok(c) => {
                    inner.breaker.lock().unwrap().on_success();
                    inner.counters.opened.fetch_add(1, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => {
                    let err = Error::from_sqlx(e);
                    let transient = err.code == ErrorCode::ConnectFailed;
                    last = Some(err);
                    if !transient {
                        break;
                    }
                }
            }
        }
        let err = last.expect("at least one attempt");
        inner
            .counters
            .connect_failures
            .fetch_add(1, Ordering::Relaxed);
        let mut breaker = inner.breaker.lock().unwrap();
        if err.code == ErrorCode::ConnectFailed {
            breaker.on_failure(Instant::now());
        } else {
            // The server answered (wrong password, missing database...): it is up.
            breaker.on_success();
        }
        Err(err)
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.inner.breaker.lock().unwrap().state(Instant::now())
    }

    pub fn metrics(&self) -> PoolMetrics {
        let i = &self.inner;
        let idle = i.idle.lock().unwrap().len();
        let total_slots = i.cfg.size + i.cfg.max_overflow;
        let in_use = total_slots - i.permits.available_permits();
        let breaker = i.breaker.lock().unwrap();
        let c = &i.counters;
        PoolMetrics {
            size: i.cfg.size as u32,
            max_overflow: i.cfg.max_overflow as u32,
            in_use: in_use as u32,
            idle: idle as u32,
            waiters: i.waiters.load(Ordering::Relaxed) as u32,
            acquisitions: c.acquisitions.load(Ordering::Relaxed),
            served_from_idle: c.served_from_idle.load(Ordering::Relaxed),
            connections_opened: c.opened.load(Ordering::Relaxed),
            connections_closed: c.closed.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
            wait_ms_total: c.wait_us_total.load(Ordering::Relaxed) as f64 / 1000.0,
            wait_ms_max: c.wait_us_max.load(Ordering::Relaxed) as f64 / 1000.0,
            circuit: breaker.state(Instant::now()),
            circuit_opened_times: breaker.times_opened,
        }
    }

    /// Close every idle connection (used when a project's settings change or it is removed).
    pub async fn close_idle(&self) {
        let drained: Vec<Idle> = self.inner.idle.lock().unwrap().drain(..).collect();
        for idle in drained {
            self.inner.counters.closed.fetch_add(1, Ordering::Relaxed);
            let _ = idle.conn.close().await;
        }
    }
}

fn backoff(cfg: &PoolConfig, attempt: u32) -> Duration {
    let exp = cfg
        .backoff_base
        .saturating_mul(1u32 << attempt.min(16))
        .min(cfg.backoff_max);
    // Full jitter between half and all of the exponential delay.
    let ms = exp.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = PoolConfig::default();
        let d1 = backoff(&cfg, 1);
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
        for _ in 0..20 {
            assert!(backoff(&cfg, 10) <= cfg.backoff_max);
            assert!(backoff(&cfg, 10) >= cfg.backoff_max / 2);
        }
    }
}
