//! Looking at a project's server now: a dashboard sample, sessions, the blocking tree,
//! cancelling or terminating a session, a safe EXPLAIN and the health checks.

use super::{Steward, DASHBOARD_INTERVAL_SECONDS};
use crate::error::Result;
use crate::monitor::{
    actions, activity, dashboard, explain, health, locks, ActivityFilter, ActivityReport,
    BlockingTree, DashboardSnapshot, ExplainOptions, ExplainReport, HealthOptions, HealthReport,
    SignalKind, SignalOutcome,
};

impl Steward {
    /// Take a sample now and return what the dashboard shows.
    pub async fn dashboard_sample(&self, name: &str) -> Result<DashboardSnapshot> {
        let pool = self.pool(name)?;
        let mut conn = pool.acquire().await?;
        let sample = dashboard::read_sample(&mut conn)
            .await
            .inspect_err(|_| conn.discard())?;
        drop(conn);
        let mut rings = self.rings.lock().unwrap();
        let ring = rings.entry(name.to_string()).or_default();
        ring.push(sample);
        Ok(ring
            .snapshot(name, DASHBOARD_INTERVAL_SECONDS)
            .expect("a sample was just pushed"))
    }

    /// Sessions of the project's server, filtered; with long-running and idle-in-transaction
    /// sessions flagged and the pids blocking each waiting one.
    pub async fn activity(&self, name: &str, filter: &ActivityFilter) -> Result<ActivityReport> {
        let mut conn = self.pool(name)?.acquire().await?;
        activity::list(&mut conn, filter)
            .await
            .inspect_err(|_| conn.discard())
    }

    /// Lock waits as a tree, root blockers first.
    pub async fn blocking_tree(&self, name: &str) -> Result<BlockingTree> {
        let mut conn = self.pool(name)?.acquire().await?;
        locks::blocking_tree(&mut conn)
            .await
            .inspect_err(|_| conn.discard())
    }

    /// Cancel the running query of backend `pid`.
    pub async fn cancel_backend(&self, name: &str, pid: i32) -> Result<SignalOutcome> {
        self.signal_backend(name, pid, SignalKind::Cancel).await
    }

    /// Terminate backend `pid` (its open transaction is rolled back).
    pub async fn terminate_backend(&self, name: &str, pid: i32) -> Result<SignalOutcome> {
        self.signal_backend(name, pid, SignalKind::Terminate).await
    }

    async fn signal_backend(
        &self,
        name: &str,
        pid: i32,
        kind: SignalKind,
    ) -> Result<SignalOutcome> {
        let mut conn = self.pool(name)?.acquire().await?;
        actions::signal(&mut conn, pid, kind).await
    }

    /// EXPLAIN one statement (executed and rolled back when `analyze`), with default limits.
    pub async fn explain(&self, name: &str, sql: &str, analyze: bool) -> Result<ExplainReport> {
        self.explain_with(
            name,
            sql,
            &ExplainOptions {
                analyze,
                ..ExplainOptions::default()
            },
        )
        .await
    }

    pub async fn explain_with(
        &self,
        name: &str,
        sql: &str,
        opts: &ExplainOptions,
    ) -> Result<ExplainReport> {
        explain::inspect(sql)?; // refuse bad input before touching the server
        let mut conn = self.pool(name)?.acquire().await?;
        explain::explain(&mut conn, sql, opts).await
    }

    /// Run every health check against the project's server.
    pub async fn health(&self, name: &str) -> Result<HealthReport> {
        self.health_with(name, &HealthOptions::default()).await
    }

    pub async fn health_with(&self, name: &str, opts: &HealthOptions) -> Result<HealthReport> {
        health::run(&self.pool(name)?, opts).await
    }
}
