//! Everything about reaching a PostgreSQL server: settings, sessions, pool and circuit breaker.

pub mod breaker;
pub mod pool;
pub mod session;
pub mod spec;

pub use breaker::CircuitState;
pub use pool::{Pool, PoolConfig, PoolMetrics, PooledConn};
pub use session::{SessionLimits, MARK};
pub use spec::{ConnSpec, ConnectionInput, Resolved, SslMode};
