//! Wraparound checks: how far the oldest unfrozen transaction id and multixact id are from
//! wraparound, and which tables hold them back.

use sqlx::{PgConnection, Row};

use super::{
    millions, CheckId, Ctx, HealthCheck, HealthItem, HealthStatus, WRAP_CRITICAL_REMAINING,
    WRAP_LIMIT,
};
use crate::error::Result;
use crate::sql;

/// Status for an id age, given the `*_freeze_max_age` at which autovacuum forces a freeze.
///
/// Critical when fewer than [`WRAP_CRITICAL_REMAINING`] ids remain; warning once the age is
/// more than halfway from the forced-freeze point to the limit (anti-wraparound vacuum is not
/// keeping up); ok before that.
pub fn wraparound_status(age: i64, freeze_max_age: i64) -> HealthStatus {
    let remaining = WRAP_LIMIT - age;
    let fma = freeze_max_age.clamp(0, WRAP_LIMIT);
    if remaining < WRAP_CRITICAL_REMAINING {
        HealthStatus::Critical
    } else if age > fma + (WRAP_LIMIT - fma) / 2 {
        HealthStatus::Warning
    } else {
        HealthStatus::Ok
    }
}

pub(super) fn wraparound_sentence(what: &str, setting: &str, age: i64, fma: i64) -> String {
    let remaining = WRAP_LIMIT - age;
    match wraparound_status(age, fma) {
        HealthStatus::Critical => format!(
            "Only {} {what} ids are left before wraparound; PostgreSQL stops accepting writes when 3 million remain. \
             VACUUM (FREEZE) the oldest tables now, after ending whatever holds vacuum back \
             (long transactions, prepared transactions, unused replication slots).",
            millions(remaining)
        ),
        HealthStatus::Warning => format!(
            "{} {what} ids left: autovacuum should have frozen this long ago ({setting} = {}). Something holds it back: \
             look for long transactions, prepared transactions or unused replication slots, then VACUUM (FREEZE) the oldest tables.",
            millions(remaining),
            millions(fma)
        ),
        _ if age > fma => format!(
            "Age {} is past {setting} ({}): an anti-wraparound autovacuum is due or running. {} left.",
            millions(age),
            millions(fma),
            millions(remaining)
        ),
        _ => format!(
            "{} {what} ids left; autovacuum forces a freeze at age {} ({setting}).",
            millions(remaining),
            millions(fma)
        ),
    }
}

pub(super) async fn wraparound(c: &mut PgConnection, multixact: bool) -> Result<HealthCheck> {
    let rows = if multixact {
        sqlx::query(sql!(
            "SELECT datname::text AS name, mxid_age(datminmxid)::int8 AS age,
                    current_setting('autovacuum_multixact_freeze_max_age')::int8 AS fma
               FROM pg_database ORDER BY 2 DESC, 1"
        ))
        .fetch_all(&mut *c)
        .await?
    } else {
        sqlx::query(sql!(
            "SELECT datname::text AS name, age(datfrozenxid)::int8 AS age,
                    current_setting('autovacuum_freeze_max_age')::int8 AS fma
               FROM pg_database ORDER BY 2 DESC, 1"
        ))
        .fetch_all(&mut *c)
        .await?
    };
    let (id, what, setting) = if multixact {
        (
            CheckId::MultixactWraparound,
            "multixact",
            "autovacuum_multixact_freeze_max_age",
        )
    } else {
        (
            CheckId::XidWraparound,
            "transaction",
            "autovacuum_freeze_max_age",
        )
    };
    let items: Vec<HealthItem> = rows
        .iter()
        .map(|r| {
            let age: i64 = r.get("age");
            let fma: i64 = r.get("fma");
            HealthItem {
                name: r.get("name"),
                status: wraparound_status(age, fma),
                value: Some((WRAP_LIMIT - age) as f64),
                figure: format!("age {}, {} left", millions(age), millions(WRAP_LIMIT - age)),
                message: wraparound_sentence(what, setting, age, fma),
            }
        })
        .collect();
    let Some(worst) = rows.first() else {
        return Ok(HealthCheck::new(
            id,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            "No databases are visible.".into(),
        ));
    };
    let (name, age, fma): (String, i64, i64) =
        (worst.get("name"), worst.get("age"), worst.get("fma"));
    let mut check = HealthCheck::new(
        id,
        items
            .iter()
            .fold(HealthStatus::Ok, |s, i| s.worst(i.status)),
        Some((WRAP_LIMIT - age) as f64),
        format!("{} left in {name}", millions(WRAP_LIMIT - age)),
        format!(
            "Oldest database: {name}. {}",
            wraparound_sentence(what, setting, age, fma)
        ),
    );
    check.items = items;
    Ok(check)
}

pub(super) async fn oldest_tables(c: &mut PgConnection, ctx: &Ctx) -> Result<HealthCheck> {
    let rows = sqlx::query(sql!(
        "SELECT c.oid::regclass::text AS name,
                (SELECT t.oid::regclass::text FROM pg_class t WHERE t.reltoastrelid = c.oid) AS owner,
                age(c.relfrozenxid)::int8 AS age,
                current_setting('autovacuum_freeze_max_age')::int8 AS fma
           FROM pg_class c
          WHERE c.relkind IN ('r', 'm', 't')
          ORDER BY age(c.relfrozenxid) DESC, 1
          LIMIT 5"
    ))
    .fetch_all(&mut *c)
    .await?;
    let items: Vec<HealthItem> = rows
        .iter()
        .map(|r| {
            let name: String = r.get("name");
            let owner: Option<String> = r.get("owner");
            let age: i64 = r.get("age");
            let fma: i64 = r.get("fma");
            let status = wraparound_status(age, fma);
            let target = owner.clone().unwrap_or_else(|| name.clone());
            HealthItem {
                name: match &owner {
                    Some(o) => format!("{name} (TOAST of {o})"),
                    None => name,
                },
                status,
                value: Some(age as f64),
                figure: format!("age {}", millions(age)),
                message: if status == HealthStatus::Ok {
                    wraparound_sentence("transaction", "autovacuum_freeze_max_age", age, fma)
                } else {
                    format!(
                        "{} Run VACUUM (FREEZE, VERBOSE) {target};",
                        wraparound_sentence("transaction", "autovacuum_freeze_max_age", age, fma)
                    )
                },
            }
        })
        .collect();
    let status = items
        .iter()
        .fold(HealthStatus::Ok, |s, i| s.worst(i.status));
    let mut check = match items.first() {
        Some(top) => HealthCheck::new(
            CheckId::OldestTables,
            status,
            top.value,
            format!("{}: {}", top.name, top.figure),
            format!(
                "The {} tables of database {} with the oldest unfrozen rows; vacuum freezes them before wraparound.",
                items.len(),
                ctx.database
            ),
        ),
        None => HealthCheck::new(
            CheckId::OldestTables,
            HealthStatus::Ok,
            None,
            "n/a".into(),
            format!("Database {} has no tables.", ctx.database),
        ),
    };
    check.items = items;
    Ok(check)
}
