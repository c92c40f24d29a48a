//! Writing the history: a sampling pass's points, counters, statement deltas and slow-query
//! events in one transaction, points of the availability probe, and alerts as they open and
//! close.

use sqlx::{QueryBuilder, Row, Sqlite};

use super::{db_err, HistoryStore, MetricRow, QueryEvent, SampleWrite, StatementDelta};
use crate::error::Result;
use crate::monitor::alerts::AlertRecord;

impl HistoryStore {
    /// Write one sample atomically.
    pub async fn write_sample(&self, w: &SampleWrite) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("starting a write", e))?;
        let failures = serde_json::to_string(&w.failures).expect("serializable");
        sqlx::query(
            "INSERT OR REPLACE INTO samples (ts, server_epoch, interval_s, failures) VALUES (?, ?, ?, ?)",
        )
        .bind(w.ts)
        .bind(w.server_epoch)
        .bind(w.interval_s)
        .bind(failures)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("writing the sample", e))?;
        for chunk in w.metrics.chunks(200) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR REPLACE INTO metrics (metric, ts, label, value) ");
            q.push_values(chunk, |mut b, m| {
                b.push_bind(&m.metric)
                    .push_bind(w.ts)
                    .push_bind(&m.label)
                    .push_bind(m.value);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing metrics", e))?;
        }
        for chunk in w.counters.chunks(200) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR REPLACE INTO counters (metric, label, value, epoch) ");
            q.push_values(chunk, |mut b, (m, l, s)| {
                b.push_bind(m)
                    .push_bind(l)
                    .push_bind(s.value)
                    .push_bind(s.epoch);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing counters", e))?;
        }
        if let Some((epoch, list)) = &w.statement_counters {
            sqlx::query("DELETE FROM statement_counters")
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("replacing statement counters", e))?;
            for chunk in list.chunks(100) {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT OR REPLACE INTO statement_counters (queryid, calls, total_ms, rows, shared_blks_read, temp_blks_written, epoch) ",
                );
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(&s.queryid)
                        .push_bind(s.calls)
                        .push_bind(s.total_ms)
                        .push_bind(s.rows)
                        .push_bind(s.shared_blks_read)
                        .push_bind(s.temp_blks_written)
                        .push_bind(*epoch);
                });
                q.build()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_err("writing statement counters", e))?;
            }
            // Texts only of the queries that ran in this interval (or were never seen).
            let changed: std::collections::HashSet<&str> =
                w.statements.iter().map(|d| d.queryid.as_str()).collect();
            for s in list.iter().filter(|s| changed.contains(s.queryid.as_str())) {
                sqlx::query(
                    "INSERT INTO statement_text (queryid, query, last_seen) VALUES (?, ?, ?)
                     ON CONFLICT (queryid) DO UPDATE SET query = excluded.query, last_seen = excluded.last_seen",
                )
                .bind(&s.queryid)
                .bind(&s.query)
                .bind(w.ts)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing statement text", e))?;
            }
        }
        for chunk in w.statements.chunks(100) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR REPLACE INTO statements (ts, queryid, interval_s, calls, total_ms, rows, shared_blks_read, temp_blks_written) ",
            );
            q.push_values(chunk, |mut b, d| {
                b.push_bind(w.ts)
                    .push_bind(&d.queryid)
                    .push_bind(d.interval_s)
                    .push_bind(d.calls)
                    .push_bind(d.total_ms)
                    .push_bind(d.rows)
                    .push_bind(d.shared_blks_read)
                    .push_bind(d.temp_blks_written);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("writing statement deltas", e))?;
        }
        for e in &w.events {
            insert_event(&mut tx, e).await?;
        }
        tx.commit()
            .await
            .map_err(|e| db_err("committing the sample", e))
    }

    /// Store raw points at `ts` (no counters, no statements): the plain way to put history in,
    /// used by imports and tests.
    pub async fn insert_points(&self, ts: i64, rows: &[MetricRow]) -> Result<()> {
        self.write_sample(&SampleWrite {
            ts,
            server_epoch: ts as f64 / 1000.0,
            metrics: rows.to_vec(),
            ..Default::default()
        })
        .await
    }

    /// Store metric points at `ts` without making them a sample (the availability probe).
    pub async fn write_points(&self, ts: i64, rows: &[MetricRow]) -> Result<()> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR REPLACE INTO metrics (metric, ts, label, value) ");
        q.push_values(rows, |mut b, m| {
            b.push_bind(&m.metric)
                .push_bind(ts)
                .push_bind(&m.label)
                .push_bind(m.value);
        });
        q.build()
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("writing metrics", e))?;
        Ok(())
    }

    /// Open an alert; returns its id.
    pub async fn alert_open(&self, a: &AlertRecord) -> Result<i64> {
        let r = sqlx::query(
            "INSERT INTO alerts (rule, started_at, ended_at, value, worst, threshold, message) VALUES (?, ?, NULL, ?, ?, ?, ?)",
        )
        .bind(&a.rule)
        .bind(a.started_at)
        .bind(a.value)
        .bind(a.worst)
        .bind(a.threshold)
        .bind(&a.message)
        .execute(&self.pool)
        .await
        .map_err(|e| db_err("recording an alert", e))?;
        Ok(r.last_insert_rowid())
    }

    /// Close an open alert.
    pub async fn alert_close(&self, id: i64, ended_at: i64, worst: f64) -> Result<()> {
        sqlx::query("UPDATE alerts SET ended_at = ?, worst = ? WHERE id = ?")
            .bind(ended_at)
            .bind(worst)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("recording an alert", e))?;
        Ok(())
    }

    /// Alerts that started in `[from, to)` or are still open, newest first.
    pub async fn alerts(&self, from: i64, to: i64) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query(
            "SELECT id, rule, started_at, ended_at, value, worst, threshold, message FROM alerts
             WHERE (started_at >= ? AND started_at < ?) OR ended_at IS NULL
             ORDER BY started_at DESC, id DESC LIMIT 500",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_err("reading alerts", e))?;
        Ok(rows
            .iter()
            .map(|r| AlertRecord {
                id: r.get("id"),
                rule: r.get("rule"),
                started_at: r.get("started_at"),
                ended_at: r.get("ended_at"),
                value: r.get("value"),
                worst: r.get("worst"),
                threshold: r.get("threshold"),
                message: r.get("message"),
            })
            .collect())
    }

    /// Store per-query deltas at `ts`, with their texts.
    pub async fn insert_statements(
        &self,
        ts: i64,
        deltas: &[StatementDelta],
        texts: &[(String, String)],
    ) -> Result<()> {
        self.write_sample(&SampleWrite {
            ts,
            server_epoch: ts as f64 / 1000.0,
            statements: deltas.to_vec(),
            ..Default::default()
        })
        .await?;
        for (id, q) in texts {
            sqlx::query(
                "INSERT INTO statement_text (queryid, query, last_seen) VALUES (?, ?, ?)
                 ON CONFLICT (queryid) DO UPDATE SET query = excluded.query",
            )
            .bind(id)
            .bind(q)
            .bind(ts)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("writing statement text", e))?;
        }
        Ok(())
    }

    pub async fn insert_event(&self, e: &QueryEvent) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("starting a write", e))?;
        insert_event(&mut tx, e).await?;
        tx.commit().await.map_err(|e| db_err("committing", e))
    }
}

async fn insert_event(tx: &mut sqlx::Transaction<'_, Sqlite>, e: &QueryEvent) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (ts, kind, key, queryid, pid, database, usr, duration_ms, calls, threshold_ms, query, started_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET duration_ms = max(duration_ms, excluded.duration_ms)",
    )
    .bind(e.ts)
    .bind(&e.kind)
    .bind(e.key())
    .bind(&e.queryid)
    .bind(e.pid.map(|p| p as i64))
    .bind(&e.database)
    .bind(&e.user)
    .bind(e.duration_ms)
    .bind(e.calls)
    .bind(e.threshold_ms)
    .bind(&e.query)
    .bind(e.started_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| db_err("writing an event", e))?;
    Ok(())
}
