//! A project's monitoring history: its store (opened once), series and charts, top queries and
//! slow-query events, compaction, and the background sampler that feeds it.

use std::sync::Arc;

use super::Steward;
use crate::error::Result;
use crate::monitor::{
    queries, sampler, series, CompactReport, HistoryCharts, HistoryRange, HistorySeries,
    HistoryStore, Metric, QueryCharts, QueryEvent, QuerySeries, QuerySort, SamplerHandle,
    TopQueries,
};

impl Steward {
    /// The history store of a project (a SQLite file in its folder), opened on first use.
    pub async fn history_store(&self, name: &str) -> Result<HistoryStore> {
        self.store.get(name)?;
        if let Some(h) = self.histories.lock().unwrap().get(name) {
            return Ok(h.clone());
        }
        let opened = HistoryStore::open_in(&self.store.project_dir(name)?).await?;
        let mut map = self.histories.lock().unwrap();
        Ok(map.entry(name.to_string()).or_insert(opened).clone())
    }

    /// Series of `metrics` over `range`, at the resolution that covers it.
    pub async fn history_series(
        &self,
        name: &str,
        metrics: &[Metric],
        range: HistoryRange,
    ) -> Result<HistorySeries> {
        let store = self.history_store(name).await?;
        let now = chrono::Utc::now().timestamp_millis();
        series::history_series(
            name,
            &store,
            metrics,
            range,
            &self.history_opts.retention,
            now,
        )
        .await
    }

    /// The dashboard's charts over `range` (see [`series::history_charts`]).
    pub async fn history_charts(&self, name: &str, range: HistoryRange) -> Result<HistoryCharts> {
        let h = self
            .history_series(name, &series::CHART_METRICS, range)
            .await?;
        Ok(series::history_charts(&h))
    }

    /// Top statements over `range` from the stored pg_stat_statements deltas.
    pub async fn top_queries(
        &self,
        name: &str,
        range: HistoryRange,
        sort: QuerySort,
        limit: u32,
    ) -> Result<TopQueries> {
        let store = self.history_store(name).await?;
        let (from, to) = range.bounds(chrono::Utc::now().timestamp_millis())?;
        let list = queries::top_queries(&store, from, to, sort, limit).await?;
        // Whether the server has pg_stat_statements is asked live; an unreachable server still
        // gets its stored history.
        let status = match self.pool(name) {
            Ok(pool) => queries::statements_status(&pool).await.ok(),
            Err(_) => None,
        };
        Ok(TopQueries {
            project: name.to_string(),
            from,
            to,
            sort,
            queries: list,
            statements_available: status.as_ref().map(|s| s.is_none()),
            enable_instructions: status.flatten(),
        })
    }

    /// Calls and mean time of one statement over `range`.
    pub async fn query_series(
        &self,
        name: &str,
        queryid: &str,
        range: HistoryRange,
    ) -> Result<QuerySeries> {
        let store = self.history_store(name).await?;
        let now = chrono::Utc::now().timestamp_millis();
        queries::query_series(&store, queryid, range, &self.history_opts.retention, now).await
    }

    /// [`Steward::query_series`] with its charts over the range.
    pub async fn query_charts(
        &self,
        name: &str,
        queryid: &str,
        range: HistoryRange,
    ) -> Result<QueryCharts> {
        let (from, to) = range.bounds(chrono::Utc::now().timestamp_millis())?;
        Ok(self
            .query_series(name, queryid, range)
            .await?
            .charts(from, to))
    }

    /// Slow-query events (slow statements and long-running sessions) over `range`, newest first.
    pub async fn slow_query_events(
        &self,
        name: &str,
        range: HistoryRange,
    ) -> Result<Vec<QueryEvent>> {
        let store = self.history_store(name).await?;
        let now = chrono::Utc::now().timestamp_millis();
        queries::slow_query_events(&store, range, now, 1000).await
    }

    /// Apply roll-ups and retention to a project's history.
    pub async fn compact_history(&self, name: &str) -> Result<CompactReport> {
        let store = self.history_store(name).await?;
        let mut rep = store
            .compact(
                &self.history_opts.retention,
                chrono::Utc::now().timestamp_millis(),
            )
            .await?;
        rep.project = name.to_string();
        Ok(rep)
    }

    /// Sample the project every `interval` in the background until the handle is dropped or
    /// stopped; compacts the history now and then.
    pub fn start_sampler(
        self: &Arc<Self>,
        name: &str,
        interval: std::time::Duration,
    ) -> Result<SamplerHandle> {
        self.start_sampler_with(name, interval, None)
    }

    /// [`Steward::start_sampler`] with a callback after each pass (live updates).
    pub fn start_sampler_with(
        self: &Arc<Self>,
        name: &str,
        interval: std::time::Duration,
        on_sample: Option<sampler::OnSample>,
    ) -> Result<SamplerHandle> {
        self.store.get(name)?;
        let (a, b) = (self.clone(), self.clone());
        let (n1, n2) = (name.to_string(), name.to_string());
        Ok(SamplerHandle::spawn(
            interval,
            self.history_opts.compact_every,
            move || {
                let (st, n) = (a.clone(), n1.clone());
                async move { st.sample_and_export(&n).await }
            },
            move || {
                let (st, n) = (b.clone(), n2.clone());
                async move { st.compact_history(&n).await.map(|_| ()) }
            },
            on_sample,
        ))
    }
}
