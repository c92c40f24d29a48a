//! Applying chosen settings with `ALTER SYSTEM` and putting them back.
//!
//! Names are checked against `pg_settings` and quoted; values go in as quoted literals. The
//! privilege is checked for every setting before anything changes (superuser, or on PG 15+ the
//! ALTER SYSTEM privilege on the parameter). Before changing, the entries already in
//! postgresql.auto.conf are recorded in the project's history, so a rollback sets the old entry
//! again or removes ours (`ALTER SYSTEM RESET`) when there was none. After a reload the values
//! are read back from `pg_settings`, with those waiting for a restart marked.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use ts_rs::TS;

use super::bounds::{self, ServerSetting};
use crate::conn::{PooledConn, MARK};
use crate::error::{Error, ErrorCode, Result};
use crate::ident::quote_ident;
use crate::sql;

/// A setting to change, as chosen by the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct SettingChange {
    pub name: String,
    /// The value as PostgreSQL accepts it ("64MB", "on", "0.9").
    pub value: String,
}

/// One setting after an apply or a rollback, as the server now reports it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AppliedSetting {
    pub name: String,
    /// Value before, in human units.
    pub previous: String,
    /// What was written to postgresql.auto.conf; `None` when the entry was removed.
    pub written: Option<String>,
    /// Value the server uses now, in human units.
    pub now: String,
    /// Written but waiting for a restart.
    pub pending_restart: bool,
    pub needs_restart: bool,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct ApplyReport {
    pub project: String,
    /// "apply" or "rollback".
    pub action: String,
    /// The history entry this created or undid.
    pub history_id: String,
    pub settings: Vec<AppliedSetting>,
    /// Some settings wait for a server restart.
    pub restart_needed: bool,
}

/// One change as kept in the history file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryChange {
    pub name: String,
    pub new_value: String,
    /// The postgresql.auto.conf entry before, when there was one.
    pub previous_entry: Option<String>,
    /// Whether postgresql.auto.conf could be read; when not, rollback sets `previous_value`.
    pub entry_known: bool,
    /// The value in force before, as a literal.
    pub previous_value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub id: String,
    pub at: DateTime<Utc>,
    pub changes: Vec<HistoryChange>,
    pub rolled_back_at: Option<DateTime<Utc>>,
}

/// Quote a value as an SQL string literal (the E'' form when it holds a backslash).
pub fn quote_literal(v: &str) -> String {
    if v.contains('\\') {
        format!("E'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// A setting name as SQL: each dotted part quoted. Names are checked against pg_settings first.
pub fn setting_name_sql(name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(Error::invalid_input(format!(
            "\"{}\" is not a setting name.",
            name.escape_default()
        )));
    }
    Ok(name
        .split('.')
        .map(quote_ident)
        .collect::<Result<Vec<_>>>()?
        .join("."))
}

pub fn load_history(path: &Path) -> Result<Vec<HistoryRecord>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::internal(format!("the tuning history is unreadable: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(Error::io("reading the tuning history", e)),
    }
}

fn save_history(path: &Path, h: &[HistoryRecord]) -> Result<()> {
    super::write_json(path, &h, "saving the tuning history")
}

/// One apply or rollback at a time per project (the GUI and the CLI share the history).
fn lock_history(path: &Path) -> Result<std::fs::File> {
    use fs2::FileExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the tuning folder", e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
        .map_err(|e| Error::io("locking the tuning history", e))?;
    f.try_lock_exclusive().map_err(|_| {
        Error::invalid_input(
            "Another apply or rollback of this project's settings is running; try again when it ends.",
        )
    })?;
    Ok(f)
}

/// Refuse, before any change, when the role may not ALTER SYSTEM these settings.
pub async fn check_privilege(conn: &mut PooledConn, major: u32, names: &[String]) -> Result<()> {
    let (role, superuser): (String, bool) = sqlx::query_as(sql!(
        "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user"
    ))
    .fetch_one(&mut **conn)
    .await?;
    if superuser {
        return Ok(());
    }
    let missing: Vec<String> = if major >= 15 {
        let mut m = Vec::new();
        for n in names {
            let ok: bool =
                sqlx::query_scalar(sql!("SELECT has_parameter_privilege($1, 'ALTER SYSTEM')"))
                    .bind(n)
                    .fetch_one(&mut **conn)
                    .await?;
            if !ok {
                m.push(n.clone());
            }
        }
        m
    } else {
        names.to_vec()
    };
    let can_reload: bool = sqlx::query_scalar(sql!(
        "SELECT has_function_privilege('pg_reload_conf()', 'EXECUTE')"
    ))
    .fetch_one(&mut **conn)
    .await?;
    if missing.is_empty() && !can_reload {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "Role \"{role}\" may change these settings but not reload the configuration: that needs EXECUTE on pg_reload_conf() \
                 (as a superuser: GRANT EXECUTE ON FUNCTION pg_reload_conf() TO {}). Nothing was changed. \
                 To apply by hand, take the SQL script or the postgresql.conf snippet (pgsteward tune PROJECT --script).",
                quote_ident(&role)?
            ),
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    let how = if major >= 15 {
        format!(
            "the superuser attribute or the ALTER SYSTEM privilege on each parameter (as a superuser: GRANT ALTER SYSTEM ON PARAMETER {} TO {})",
            missing.join(", "),
            quote_ident(&role)?
        )
    } else {
        "the superuser attribute (PostgreSQL 14 and earlier have no ALTER SYSTEM privilege)".into()
    };
    Err(Error::new(
        ErrorCode::PermissionDenied,
        format!(
            "Role \"{role}\" may not change {} with ALTER SYSTEM: that needs {how}. Nothing was changed. \
             To apply by hand, take the SQL script or the postgresql.conf snippet (pgsteward tune PROJECT --script).",
            missing.join(", ")
        ),
    ))
}

/// The postgresql.auto.conf entries of `names`; `None` when the role may not read them.
async fn auto_conf_entries(
    conn: &mut PooledConn,
    names: &[String],
) -> Option<HashMap<String, String>> {
    let rows = sqlx::query(sql!(
        "SELECT name, setting FROM pg_file_settings
          WHERE name = ANY($1::text[]) AND sourcefile LIKE '%postgresql.auto.conf'
          ORDER BY seqno"
    ))
    .bind(names)
    .fetch_all(&mut **conn)
    .await
    .ok()?;
    // Later lines win, as when the server reads the file.
    Some(
        rows.into_iter()
            .map(|r| (r.get::<String, _>("name"), r.get::<String, _>("setting")))
            .collect(),
    )
}

async fn alter(conn: &mut PooledConn, name: &str, value: Option<&str>) -> Result<()> {
    let n = setting_name_sql(name)?;
    let stmt = match value {
        Some(v) => format!("{MARK} ALTER SYSTEM SET {n} = {}", quote_literal(v)),
        None => format!("{MARK} ALTER SYSTEM RESET {n}"),
    };
    sqlx::query(&stmt)
        .execute(&mut **conn)
        .await
        .map(|_| ())
        .map_err(|e| Error::from_sqlx(e).with_context(&format!("setting {name}")))
}

/// Reload, and wait (a few seconds at most) until this session has read the files again.
async fn reload(conn: &mut PooledConn) -> Result<()> {
    let before: String = sqlx::query_scalar(sql!("SELECT pg_conf_load_time()::text"))
        .fetch_one(&mut **conn)
        .await?;
    let _: bool = sqlx::query_scalar(sql!("SELECT pg_reload_conf()"))
        .fetch_one(&mut **conn)
        .await?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let now: String = sqlx::query_scalar(sql!("SELECT pg_conf_load_time()::text"))
            .fetch_one(&mut **conn)
            .await?;
        if now != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn read_back(
    conn: &mut PooledConn,
    rows: Vec<(String, String, Option<String>)>,
) -> Result<Vec<AppliedSetting>> {
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let now = bounds::read(conn, &names).await?;
    Ok(rows
        .into_iter()
        .map(|(name, previous, written)| {
            let s = now.get(&name);
            AppliedSetting {
                now: s.map(|s| s.human()).unwrap_or_default(),
                pending_restart: s.is_some_and(|s| s.pending_restart),
                needs_restart: s.is_some_and(|s| s.needs_restart()),
                name,
                previous,
                written,
            }
        })
        .collect())
}

fn validate(changes: &[SettingChange], settings: &HashMap<String, ServerSetting>) -> Result<()> {
    if changes.is_empty() {
        return Err(Error::invalid_input(
            "Nothing to apply: no recommendation differs from the current value (or none was chosen).",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in changes {
        let Some(s) = settings.get(&c.name) else {
            return Err(Error::invalid_input(format!(
                "\"{}\" is not a setting of this server.",
                c.name.escape_default()
            )));
        };
        if s.context == "internal" {
            return Err(Error::invalid_input(format!(
                "{} is fixed when the server is built or initialised; it cannot be changed.",
                c.name
            )));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(Error::invalid_input(format!("{} is given twice.", c.name)));
        }
        if c.value.contains('\0') || c.value.contains('\n') {
            return Err(Error::invalid_input(format!(
                "The value for {} contains a control character.",
                c.name
            )));
        }
        setting_name_sql(&c.name)?;
    }
    Ok(())
}

/// Apply `changes`, keeping the previous values in the history at `history`.
pub async fn apply(
    conn: &mut PooledConn,
    project: &str,
    major: u32,
    changes: &[SettingChange],
    history: &Path,
) -> Result<ApplyReport> {
    let _lock = lock_history(history)?;
    let names: Vec<String> = changes.iter().map(|c| c.name.clone()).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let settings = bounds::read(conn, &name_refs).await?;
    validate(changes, &settings)?;
    check_privilege(conn, major, &names).await?;
    let entries = auto_conf_entries(conn, &names).await;

    let record = HistoryRecord {
        id: Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
        at: Utc::now(),
        changes: changes
            .iter()
            .map(|c| HistoryChange {
                name: c.name.clone(),
                new_value: c.value.clone(),
                previous_entry: entries.as_ref().and_then(|e| e.get(&c.name).cloned()),
                entry_known: entries.is_some(),
                previous_value: settings[&c.name].human(),
            })
            .collect(),
        rolled_back_at: None,
    };
    for (i, c) in changes.iter().enumerate() {
        if let Err(e) = alter(conn, &c.name, Some(&c.value)).await {
            // Put back what this call already changed, then report the failure.
            for done in record.changes[..i].iter().rev() {
                let _ = alter(conn, &done.name, restore_value(done).as_deref()).await;
            }
            return Err(e);
        }
    }
    let mut all = load_history(history)?;
    all.push(record.clone());
    save_history(history, &all)?;
    reload(conn).await?;
    let settings = read_back(
        conn,
        record
            .changes
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.previous_value.clone(),
                    Some(c.new_value.clone()),
                )
            })
            .collect(),
    )
    .await?;
    Ok(ApplyReport {
        project: project.to_string(),
        action: "apply".into(),
        history_id: record.id,
        restart_needed: settings.iter().any(|s| s.pending_restart),
        settings,
    })
}

/// What to write back for a change: the old entry, nothing (RESET), or the old value.
fn restore_value(c: &HistoryChange) -> Option<String> {
    if c.entry_known {
        c.previous_entry.clone()
    } else {
        Some(c.previous_value.clone())
    }
}

/// Undo the latest apply that was not undone yet.
pub async fn rollback(
    conn: &mut PooledConn,
    project: &str,
    major: u32,
    history: &Path,
) -> Result<ApplyReport> {
    let _lock = lock_history(history)?;
    let mut all = load_history(history)?;
    let Some(idx) = all.iter().rposition(|r| r.rolled_back_at.is_none()) else {
        return Err(Error::invalid_input(format!(
            "Project \"{project}\" has no applied tuning to roll back."
        )));
    };
    let record = all[idx].clone();
    let names: Vec<String> = record.changes.iter().map(|c| c.name.clone()).collect();
    check_privilege(conn, major, &names).await?;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = bounds::read(conn, &name_refs).await?;
    for c in record.changes.iter().rev() {
        alter(conn, &c.name, restore_value(c).as_deref()).await?;
    }
    all[idx].rolled_back_at = Some(Utc::now());
    save_history(history, &all)?;
    reload(conn).await?;
    let settings = read_back(
        conn,
        record
            .changes
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    before.get(&c.name).map(|s| s.human()).unwrap_or_default(),
                    restore_value(c),
                )
            })
            .collect(),
    )
    .await?;
    Ok(ApplyReport {
        project: project.to_string(),
        action: "rollback".into(),
        history_id: record.id,
        restart_needed: settings.iter().any(|s| s.pending_restart),
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_names_are_quoted() {
        assert_eq!(quote_literal("64MB"), "'64MB'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
        assert_eq!(setting_name_sql("work_mem").unwrap(), "\"work_mem\"");
        assert_eq!(
            setting_name_sql("pg_stat_statements.max").unwrap(),
            "\"pg_stat_statements\".\"max\""
        );
        for bad in ["", "work_mem; DROP", "a\"b", "x y"] {
            assert_eq!(
                setting_name_sql(bad).unwrap_err().code,
                ErrorCode::InvalidInput
            );
        }
    }

    #[test]
    fn one_apply_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("tune/history.json");
        let first = lock_history(&h).unwrap();
        let e = lock_history(&h).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
        drop(first);
        assert!(lock_history(&h).is_ok());
        assert!(load_history(&h).unwrap().is_empty());
    }

    #[test]
    fn rollback_restores_the_entry_or_removes_ours() {
        let mut c = HistoryChange {
            name: "work_mem".into(),
            new_value: "64MB".into(),
            previous_entry: Some("8MB".into()),
            entry_known: true,
            previous_value: "8MB".into(),
        };
        assert_eq!(restore_value(&c).as_deref(), Some("8MB"));
        c.previous_entry = None;
        assert_eq!(restore_value(&c), None);
        c.entry_known = false;
        c.previous_value = "4MB".into();
        assert_eq!(restore_value(&c).as_deref(), Some("4MB"));
    }
}
