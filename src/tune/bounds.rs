//! The server's own view of its settings (`pg_settings`) and keeping recommendations inside it.
//!
//! Rules such as PGTune's can produce values below a version's minimum or above its maximum
//! (a tiny machine, a huge one). Each value is converted into the setting's unit, kept inside
//! `min_val`..`max_val` (or `enumvals`), converted back, and the adjustment is said in words.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use super::pgtune::{fmt_kb, fmt_ms, TuneValue};
use crate::conn::PooledConn;
use crate::error::Result;
use crate::sql;

/// One row of `pg_settings`, the parts tuning needs.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ServerSetting {
    pub name: String,
    pub setting: String,
    pub unit: Option<String>,
    pub vartype: String,
    pub min_val: Option<String>,
    pub max_val: Option<String>,
    pub enumvals: Option<Vec<String>>,
    /// postmaster (restart), sighup, superuser, user...
    pub context: String,
    pub pending_restart: bool,
}

impl ServerSetting {
    /// Whether changing it needs a restart (else a reload is enough).
    pub fn needs_restart(&self) -> bool {
        self.context == "postmaster"
    }

    /// The current value as a typed value, when the type is known.
    pub fn value(&self) -> Option<TuneValue> {
        value_from_setting(&self.setting, self.unit.as_deref(), &self.vartype)
    }

    /// The current value in human units ("128MB", "10s", "on").
    pub fn human(&self) -> String {
        self.value()
            .map(|v| v.literal())
            .unwrap_or_else(|| self.setting.clone())
    }
}

/// Read the named settings (all of them when `names` is empty).
///
/// pgsteward's own sessions set statement_timeout and lock_timeout when they connect; for such
/// client-set rows the value other sessions get is shown instead: the configuration files'
/// value when readable, else the built-in default.
pub async fn read(conn: &mut PooledConn, names: &[&str]) -> Result<HashMap<String, ServerSetting>> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let rows = sqlx::query(sql!(
        "SELECT name, setting, unit, vartype, min_val, max_val, enumvals, context, pending_restart,
                source, boot_val
           FROM pg_settings
          WHERE cardinality($1::text[]) = 0 OR name = ANY($1::text[])"
    ))
    .bind(&names)
    .fetch_all(&mut **conn)
    .await?;
    let mut client: Vec<(String, Option<String>)> = Vec::new();
    let mut out: HashMap<String, ServerSetting> = rows
        .into_iter()
        .map(|r| {
            let s = ServerSetting {
                name: r.get("name"),
                setting: r.get("setting"),
                unit: r.get("unit"),
                vartype: r.get("vartype"),
                min_val: r.get("min_val"),
                max_val: r.get("max_val"),
                enumvals: r.get("enumvals"),
                context: r.get("context"),
                pending_restart: r.get("pending_restart"),
            };
            if r.get::<Option<String>, _>("source").as_deref() == Some("client") {
                client.push((s.name.clone(), r.get("boot_val")));
            }
            (s.name.clone(), s)
        })
        .collect();
    if !client.is_empty() {
        let wanted: Vec<String> = client.iter().map(|c| c.0.clone()).collect();
        // Readable by superusers only; later lines win.
        let files: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(sql!(
            "SELECT name, setting FROM pg_file_settings
              WHERE applied AND error IS NULL AND name = ANY($1::text[])
              ORDER BY seqno"
        ))
        .bind(&wanted)
        .fetch_all(&mut **conn)
        .await
        .map(|rows| rows.into_iter().collect())
        .unwrap_or_default();
        for (name, boot) in client {
            let Some(s) = out.get_mut(&name) else {
                continue;
            };
            let from_file = files
                .get(&name)
                .and_then(|t| literal_in_units(t, s.unit.as_deref()))
                .map(|x| format!("{}", x.round() as i64));
            if let Some(v) = from_file.or(boot) {
                s.setting = v;
            }
        }
    }
    Ok(out)
}

/// A value as written in a configuration file ("5min", "64MB", "30000") in the setting's unit.
pub fn literal_in_units(text: &str, unit: Option<&str>) -> Option<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (n, u) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let u = u.trim();
    if u.is_empty() {
        return Some(n);
    }
    let unit = unit?;
    if let (Some(a), Some(b)) = (unit_ms(u), unit_ms(unit)) {
        return Some(n * a / b);
    }
    match (unit_kb(u), unit_kb(unit)) {
        (Some(a), Some(b)) => Some(n * a / b),
        _ => None,
    }
}

/// kB in one unit of a memory setting ("8kB" -> 8, "MB" -> 1024); `None` for other units.
fn unit_kb(unit: &str) -> Option<f64> {
    let split = unit.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    let (n, u) = unit.split_at(split);
    let n: f64 = if n.is_empty() { 1.0 } else { n.parse().ok()? };
    let per = match u {
        "B" => 1.0 / 1024.0,
        "kB" => 1.0,
        "MB" => 1024.0,
        "GB" => 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * per)
}

fn unit_ms(unit: &str) -> Option<f64> {
    match unit {
        "us" => Some(0.001),
        "ms" => Some(1.0),
        "s" => Some(1000.0),
        "min" => Some(60_000.0),
        "h" => Some(3_600_000.0),
        "d" => Some(86_400_000.0),
        _ => None,
    }
}

/// A `pg_settings.setting` text as a typed value.
pub fn value_from_setting(setting: &str, unit: Option<&str>, vartype: &str) -> Option<TuneValue> {
    match vartype {
        "integer" | "real" => {
            let x: f64 = setting.parse().ok()?;
            match unit {
                // -1 and 0 are "off"/"auto" markers; keep them as they are.
                Some(u) if x > 0.0 && unit_kb(u).is_some() => {
                    Some(TuneValue::Kb((x * unit_kb(u)?).round() as u64))
                }
                Some(u) if unit_ms(u).is_some() => {
                    if x > 0.0 {
                        Some(TuneValue::Ms((x * unit_ms(u)?).round() as i64))
                    } else {
                        Some(TuneValue::Ms(x as i64))
                    }
                }
                _ if vartype == "integer" => Some(TuneValue::Int(x as i64)),
                _ => Some(TuneValue::Real(x)),
            }
        }
        _ => Some(TuneValue::Text(setting.to_string())),
    }
}

/// A value in the setting's own unit, as `pg_settings` would show it.
fn in_setting_units(v: &TuneValue, unit: Option<&str>) -> Option<f64> {
    match (v, unit) {
        (TuneValue::Kb(kb), Some(u)) => Some(*kb as f64 / unit_kb(u)?),
        (TuneValue::Ms(ms), Some(u)) if *ms > 0 => Some(*ms as f64 / unit_ms(u)?),
        (TuneValue::Ms(ms), _) => Some(*ms as f64),
        (TuneValue::Int(i), _) => Some(*i as f64),
        (TuneValue::Real(r), _) => Some(*r),
        _ => None,
    }
}

fn from_setting_units(x: f64, like: &TuneValue, unit: Option<&str>) -> Option<TuneValue> {
    Some(match like {
        TuneValue::Kb(_) => TuneValue::Kb((x * unit_kb(unit?)?).round() as u64),
        TuneValue::Ms(_) if x > 0.0 => TuneValue::Ms((x * unit_ms(unit?)?).round() as i64),
        TuneValue::Ms(_) => TuneValue::Ms(x as i64),
        TuneValue::Int(_) => TuneValue::Int(x as i64),
        TuneValue::Real(_) => TuneValue::Real(x),
        TuneValue::Text(_) => return None,
    })
}

/// Human text of a bound given in setting units, for the adjustment sentence.
fn bound_text(x: f64, like: &TuneValue, unit: Option<&str>) -> String {
    match from_setting_units(x, like, unit) {
        Some(TuneValue::Kb(kb)) => fmt_kb(kb),
        Some(TuneValue::Ms(ms)) => fmt_ms(ms),
        Some(v) => v.literal(),
        None => x.to_string(),
    }
}

/// Keep `v` inside the setting's bounds. Returns the value to use and, when it moved, why.
pub fn clamp(v: &TuneValue, s: &ServerSetting) -> (TuneValue, Option<String>) {
    if let TuneValue::Text(t) = v {
        if let Some(allowed) = &s.enumvals {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(t)) {
                return (
                    TuneValue::Text(s.setting.clone()),
                    Some(format!(
                        "{t} is not accepted by this server ({}); kept {}",
                        allowed.join(", "),
                        s.setting
                    )),
                );
            }
        }
        return (v.clone(), None);
    }
    let unit = s.unit.as_deref();
    let Some(x) = in_setting_units(v, unit) else {
        return (v.clone(), None);
    };
    let min = s.min_val.as_deref().and_then(|m| m.parse::<f64>().ok());
    let max = s.max_val.as_deref().and_then(|m| m.parse::<f64>().ok());
    if let Some(min) = min.filter(|m| x < *m) {
        if let Some(nv) = from_setting_units(min, v, unit) {
            return (
                nv,
                Some(format!(
                    "raised from {} to this server's minimum {}",
                    v.literal(),
                    bound_text(min, v, unit)
                )),
            );
        }
    }
    if let Some(max) = max.filter(|m| x > *m) {
        if let Some(nv) = from_setting_units(max, v, unit) {
            return (
                nv,
                Some(format!(
                    "lowered from {} to this server's maximum {}",
                    v.literal(),
                    bound_text(max, v, unit)
                )),
            );
        }
    }
    (v.clone(), None)
}

/// Whether two values mean the same setting (numbers compared in the setting's unit).
pub fn same(a: &TuneValue, b: &TuneValue, unit: Option<&str>) -> bool {
    match (a, b) {
        (TuneValue::Text(x), TuneValue::Text(y)) => {
            let norm = |s: &str| match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => "on".to_string(),
                "false" | "no" | "0" => "off".to_string(),
                o => o.to_string(),
            };
            norm(x) == norm(y)
        }
        _ => match (in_setting_units(a, unit), in_setting_units(b, unit)) {
            // The server keeps whole units, so within half a unit is the same setting.
            (Some(x), Some(y)) if unit.is_some() => (x - y).abs() < 0.5,
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, unit: Option<&str>, min: &str, max: &str) -> ServerSetting {
        ServerSetting {
            name: name.into(),
            setting: "0".into(),
            unit: unit.map(Into::into),
            vartype: "integer".into(),
            min_val: Some(min.into()),
            max_val: Some(max.into()),
            enumvals: None,
            context: "postmaster".into(),
            pending_restart: false,
        }
    }

    #[test]
    fn memory_is_clamped_in_the_settings_unit() {
        let sb = setting("shared_buffers", Some("8kB"), "16", "1073741823");
        let (v, why) = clamp(&TuneValue::Kb(100), &sb);
        assert_eq!(v, TuneValue::Kb(128));
        assert_eq!(
            why.unwrap(),
            "raised from 100kB to this server's minimum 128kB"
        );
        let (v, why) = clamp(&TuneValue::Kb(16 * 1073741824), &sb);
        assert_eq!(v, TuneValue::Kb(8589934584));
        assert!(why.unwrap().starts_with("lowered from 16384GB"));
        let (v, why) = clamp(&TuneValue::Kb(4 * 1048576), &sb);
        assert_eq!((v, why), (TuneValue::Kb(4 * 1048576), None));

        let wal = setting("max_wal_size", Some("MB"), "2", "2147483647");
        let (v, why) = clamp(&TuneValue::Kb(1024), &wal);
        assert_eq!(v, TuneValue::Kb(2048));
        assert_eq!(why.unwrap(), "raised from 1MB to this server's minimum 2MB");
    }

    #[test]
    fn enums_keep_what_the_server_accepts() {
        let mut hp = setting("huge_pages", None, "", "");
        hp.vartype = "enum".into();
        hp.setting = "try".into();
        hp.enumvals = Some(vec!["off".into(), "on".into(), "try".into()]);
        assert_eq!(clamp(&TuneValue::Text("off".into()), &hp).1, None);
        assert!(clamp(&TuneValue::Text("maybe".into()), &hp).1.is_some());
    }

    #[test]
    fn file_values_convert_to_the_settings_unit() {
        assert_eq!(literal_in_units("5min", Some("ms")), Some(300_000.0));
        assert_eq!(literal_in_units("30000", Some("ms")), Some(30_000.0));
        assert_eq!(literal_in_units("64MB", Some("8kB")), Some(8192.0));
        assert_eq!(literal_in_units("2s", Some("s")), Some(2.0));
        assert_eq!(literal_in_units("soon", Some("ms")), None);
        assert_eq!(literal_in_units("5 parsecs", Some("ms")), None);
    }

    #[test]
    fn settings_read_back_in_human_units() {
        let v = value_from_setting("16384", Some("8kB"), "integer").unwrap();
        assert_eq!(v.literal(), "128MB");
        let v = value_from_setting("4096", Some("kB"), "integer").unwrap();
        assert_eq!(v.literal(), "4MB");
        let v = value_from_setting("1024", Some("MB"), "integer").unwrap();
        assert_eq!(v.literal(), "1GB");
        let v = value_from_setting("-1", Some("ms"), "integer").unwrap();
        assert_eq!(v.literal(), "-1");
        let v = value_from_setting("600000", Some("ms"), "integer").unwrap();
        assert_eq!(v.literal(), "10min");
        let v = value_from_setting("-1", Some("8kB"), "integer").unwrap();
        assert_eq!(v.literal(), "-1");
        assert!(same(
            &TuneValue::Kb(131072),
            &value_from_setting("16384", Some("8kB"), "integer").unwrap(),
            Some("8kB")
        ));
        assert!(same(
            &TuneValue::Text("on".into()),
            &TuneValue::Text("on".into()),
            None
        ));
        assert!(!same(&TuneValue::Real(1.1), &TuneValue::Real(4.0), None));
    }
}
