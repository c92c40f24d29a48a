//! Compaction of the history: complete minutes and hours rolled up past their watermarks, then
//! everything past its retention deleted (see the module above for the tables).

use super::{
    db_err, set_meta, CompactReport, HistoryRetention, HistoryStore, HOUR_MS, MINUTE_MS,
    ROLLUP_GRACE_MS,
};
use crate::error::Result;

impl HistoryStore {
    /// Roll up complete minutes and hours, then drop what is past retention. `now` is in ms.
    pub async fn compact(&self, retention: &HistoryRetention, now: i64) -> Result<CompactReport> {
        let mut rep = CompactReport::default();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_err("starting compaction", e))?;
        let get = |k: &'static str| {
            sqlx::query_scalar::<_, i64>("SELECT value FROM meta WHERE key = ?").bind(k)
        };
        let minute_wm: Option<i64> = get("minute_wm")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        let hour_wm: Option<i64> = get("hour_wm")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        let stmt_wm: Option<i64> = get("stmt_hour_wm")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        // Minutes are rolled up a little after they end, so a sample written late (a slow
        // collection, another process) still lands before its minute is folded.
        let minute_end = (now - ROLLUP_GRACE_MS).div_euclid(MINUTE_MS) * MINUTE_MS;
        let hour_end = minute_end.div_euclid(HOUR_MS) * HOUR_MS;
        let from = minute_wm.unwrap_or(i64::MIN);
        if minute_end > from {
            let r = sqlx::query(
                "INSERT INTO metrics_minute (metric, ts, label, v_avg, v_min, v_max, n)
                 SELECT metric, (ts / 60000) * 60000 AS b, label, avg(value), min(value), max(value), count(*)
                   FROM metrics WHERE ts >= ? AND ts < ?
                  GROUP BY metric, b, label
                 ON CONFLICT (metric, ts, label) DO UPDATE SET
                   v_avg = (v_avg * n + excluded.v_avg * excluded.n) / (n + excluded.n),
                   v_min = min(v_min, excluded.v_min),
                   v_max = max(v_max, excluded.v_max),
                   n = n + excluded.n",
            )
            .bind(from)
            .bind(minute_end)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("rolling up minutes", e))?;
            rep.minute_rows_written = r.rows_affected();
            set_meta(&mut tx, "minute_wm", minute_end).await?;
        }
        let from = hour_wm.unwrap_or(i64::MIN);
        if hour_end > from {
            let r = sqlx::query(
                "INSERT INTO metrics_hour (metric, ts, label, v_avg, v_min, v_max, n)
                 SELECT metric, (ts / 3600000) * 3600000 AS b, label,
                        sum(v_avg * n) / sum(n), min(v_min), max(v_max), sum(n)
                   FROM metrics_minute WHERE ts >= ? AND ts < ?
                  GROUP BY metric, b, label
                 ON CONFLICT (metric, ts, label) DO UPDATE SET
                   v_avg = (v_avg * n + excluded.v_avg * excluded.n) / (n + excluded.n),
                   v_min = min(v_min, excluded.v_min),
                   v_max = max(v_max, excluded.v_max),
                   n = n + excluded.n",
            )
            .bind(from)
            .bind(hour_end)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("rolling up hours", e))?;
            rep.hour_rows_written = r.rows_affected();
            set_meta(&mut tx, "hour_wm", hour_end).await?;
        }
        let from = stmt_wm.unwrap_or(i64::MIN);
        if hour_end > from {
            sqlx::query(
                "INSERT INTO statements_hour (ts, queryid, interval_s, calls, total_ms, rows, shared_blks_read, temp_blks_written)
                 SELECT (ts / 3600000) * 3600000 AS b, queryid, sum(interval_s), sum(calls), sum(total_ms),
                        sum(rows), sum(shared_blks_read), sum(temp_blks_written)
                   FROM statements WHERE ts >= ? AND ts < ?
                  GROUP BY b, queryid
                 ON CONFLICT (ts, queryid) DO UPDATE SET
                   interval_s = interval_s + excluded.interval_s,
                   calls = calls + excluded.calls,
                   total_ms = total_ms + excluded.total_ms,
                   rows = rows + excluded.rows,
                   shared_blks_read = shared_blks_read + excluded.shared_blks_read,
                   temp_blks_written = temp_blks_written + excluded.temp_blks_written",
            )
            .bind(from)
            .bind(hour_end)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("rolling up statements", e))?;
            set_meta(&mut tx, "stmt_hour_wm", hour_end).await?;
        }
        // Retention. Raw rows go only once rolled up (before the minute watermark).
        let raw_cut = (now - retention.raw_ms()).min(minute_end);
        let r = sqlx::query("DELETE FROM metrics WHERE ts < ?")
            .bind(raw_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old raw points", e))?;
        rep.raw_rows_deleted = r.rows_affected();
        sqlx::query("DELETE FROM samples WHERE ts < ?")
            .bind(raw_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old samples", e))?;
        let minute_cut = (now - retention.minute_ms()).min(hour_end);
        let r = sqlx::query("DELETE FROM metrics_minute WHERE ts < ?")
            .bind(minute_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old minutes", e))?;
        rep.minute_rows_deleted = r.rows_affected();
        let hour_cut = now - retention.hour_ms();
        let r = sqlx::query("DELETE FROM metrics_hour WHERE ts < ?")
            .bind(hour_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old hours", e))?;
        rep.hour_rows_deleted = r.rows_affected();
        // Raw statement deltas go in whole hours, once summed, so "raw from" is exact.
        let stmt_cut = (now - retention.raw_ms()).div_euclid(HOUR_MS) * HOUR_MS;
        let stmt_cut = stmt_cut.min(hour_end);
        let r = sqlx::query("DELETE FROM statements WHERE ts < ?")
            .bind(stmt_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old statement deltas", e))?;
        rep.statement_rows_deleted = r.rows_affected();
        let old_from: Option<i64> = get("stmt_raw_from")
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db_err("reading watermarks", e))?;
        if old_from.is_none_or(|f| f < stmt_cut) {
            set_meta(&mut tx, "stmt_raw_from", stmt_cut).await?;
        }
        let r = sqlx::query("DELETE FROM statements_hour WHERE ts < ?")
            .bind(hour_cut)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old statement sums", e))?;
        rep.statement_rows_deleted += r.rows_affected();
        sqlx::query(
            "DELETE FROM statement_text WHERE last_seen < ?
               AND queryid NOT IN (SELECT queryid FROM statements_hour)
               AND queryid NOT IN (SELECT queryid FROM statements)",
        )
        .bind(hour_cut)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("deleting old statement texts", e))?;
        let r = sqlx::query("DELETE FROM events WHERE ts < ?")
            .bind(now - retention.event_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old events", e))?;
        rep.events_deleted = r.rows_affected();
        let r = sqlx::query("DELETE FROM maintenance_runs WHERE started_at < ?")
            .bind(now - retention.maintenance_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("deleting old maintenance runs", e))?;
        rep.maintenance_runs_deleted = r.rows_affected();
        tx.commit()
            .await
            .map_err(|e| db_err("committing compaction", e))?;
        Ok(rep)
    }
}
