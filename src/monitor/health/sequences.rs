//! Sequences running out: how much of its range each sequence (and the column it feeds) has
//! used.

use sqlx::{PgConnection, Row};

use super::{
    CheckId, Ctx, HealthCheck, HealthItem, HealthStatus, SEQUENCE_CRITICAL, SEQUENCE_WARNING,
};
use crate::error::Result;
use crate::sql;

/// Smallest and largest value a column type holds, for the types sequences feed.
fn column_range(column_type: Option<&str>) -> (i64, i64) {
    match column_type {
        Some("smallint") => (i16::MIN as i64, i16::MAX as i64),
        Some("integer") => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Share (0..1) of a sequence's usable range already consumed. The range is the sequence's
/// own, narrowed to the type of the column it feeds (a bigint sequence behind an integer
/// column runs out at 2^31 - 1).
pub fn sequence_usage(
    last: Option<i64>,
    min: i64,
    max: i64,
    increment: i64,
    column_type: Option<&str>,
) -> f64 {
    let (col_lo, col_hi) = column_range(column_type);
    let Some(last) = last else { return 0.0 };
    let (used, span) = if increment >= 0 {
        let hi = max.min(col_hi) as i128;
        (last as i128 - min as i128, hi - min as i128)
    } else {
        let lo = min.max(col_lo) as i128;
        (max as i128 - last as i128, max as i128 - lo)
    };
    if span <= 0 {
        return 1.0;
    }
    (used as f64 / span as f64).clamp(0.0, 1.0)
}

pub(super) async fn sequences(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT format('%I.%I', s.schemaname, s.sequencename) AS name,
                has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
                s.last_value, s.min_value, s.max_value, s.increment_by, s.cycle,
                o.column_type, o.column_name
           FROM pg_sequences s
           JOIN pg_namespace n ON n.nspname = s.schemaname
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
           LEFT JOIN LATERAL (
                SELECT format_type(a.atttypid, NULL) AS column_type,
                       format('%s.%I', d.refobjid::regclass, a.attname) AS column_name
                  FROM pg_depend d
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
                   AND d.deptype IN ('a', 'i')
                 LIMIT 1) o ON true
          ORDER BY 1
          LIMIT 100000"
    ))
    .fetch_all(&mut *c)
    .await?;
    let mut unreadable = 0usize;
    let mut scored: Vec<(f64, HealthItem)> = Vec::new();
    for r in &rows {
        let name: String = r.get("name");
        if !r.get::<bool, _>("readable") {
            unreadable += 1;
            continue;
        }
        let last: Option<i64> = r.get("last_value");
        let (min, max, inc): (i64, i64, i64) = (
            r.get("min_value"),
            r.get("max_value"),
            r.get("increment_by"),
        );
        let cycle: bool = r.get("cycle");
        let column_type: Option<String> = r.get("column_type");
        let column_name: Option<String> = r.get("column_name");
        let (col_lo, col_hi) = column_range(column_type.as_deref());
        let column_limits = if inc >= 0 { col_hi < max } else { col_lo > min };
        if cycle && !column_limits {
            continue; // wraps around by design
        }
        let used = sequence_usage(last, min, max, inc, column_type.as_deref());
        let status = if used >= SEQUENCE_CRITICAL {
            HealthStatus::Critical
        } else if used >= SEQUENCE_WARNING {
            HealthStatus::Warning
        } else {
            HealthStatus::Ok
        };
        let limit = if column_limits {
            format!(
                "the {} column {} it feeds",
                column_type.as_deref().unwrap_or("?"),
                column_name.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "its {} {}",
                if inc >= 0 { "maximum" } else { "minimum" },
                if inc >= 0 { max } else { min }
            )
        };
        let message = match status {
            HealthStatus::Ok => format!("{:.1} % of its range used.", used * 100.0),
            _ => format!(
                "{name} has used {:.1} % of the values allowed by {limit} (last value {}). When it runs out, inserts fail: \
                 widen it now (ALTER SEQUENCE {name} AS bigint MAXVALUE ..., and ALTER TABLE ... ALTER COLUMN ... TYPE bigint for the column).",
                used * 100.0,
                last.map(|l| l.to_string()).unwrap_or_else(|| "none".into())
            ),
        };
        scored.push((
            used,
            HealthItem {
                name,
                status,
                value: Some(used * 100.0),
                figure: format!("{:.1} %", used * 100.0),
                message,
            },
        ));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let status = scored
        .iter()
        .fold(HealthStatus::Ok, |s, (_, i)| s.worst(i.status));
    let flagged = scored
        .iter()
        .filter(|(_, i)| i.status != HealthStatus::Ok)
        .count();
    let unreadable_note = if unreadable > 0 {
        format!(
            " {unreadable} sequence(s) could not be read by this role (reading a sequence needs SELECT or USAGE on it, or pg_read_all_data)."
        )
    } else {
        String::new()
    };
    let mut check = match scored.first() {
        Some((top, item)) => HealthCheck::new(
            CheckId::Sequences,
            status,
            Some(top * 100.0),
            format!("{} at {:.1} %", item.name, top * 100.0),
            format!(
                "{} of {} sequence(s) in database {} have used more than {:.0} % of their range.{unreadable_note}",
                flagged,
                scored.len(),
                ctx.database,
                SEQUENCE_WARNING * 100.0
            ),
        ),
        None => HealthCheck::new(
            CheckId::Sequences,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            format!(
                "No sequence in database {} can run out.{unreadable_note}",
                ctx.database
            ),
        ),
    };
    // The flagged ones, and at least the top few for context.
    check.items = scored
        .into_iter()
        .enumerate()
        .filter(|(i, (_, item))| item.status != HealthStatus::Ok || *i < 3)
        .take(20)
        .map(|(_, (_, item))| item)
        .collect();
    Ok(check)
}
