//! Recommendations: the hardware baseline and the evidence merged, kept inside the server's
//! bounds, grouped, each with current against recommended in human units, the reason, and
//! whether a reload or a restart makes it take effect. Also the memory budget and the SQL
//! script / postgresql.conf snippet for applying by hand.

use std::collections::HashMap;

use serde::Serialize;
use ts_rs::TS;

use super::advisor::{Confidence, Finding};
use super::apply::{quote_literal, setting_name_sql};
use super::bounds::{clamp, same, ServerSetting};
use super::pgtune::{baseline, default_connections, fmt_kb, TuneValue};
use super::profile::{DbSize, HardwareProfile, StorageKind, Workload};
use super::Group;

/// What a recommendation rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TuneBasis {
    Hardware,
    Evidence,
    Both,
}

/// What makes a change take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TakesEffect {
    Reload,
    Restart,
    /// Advice that is not a setting.
    NotASetting,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct Recommendation {
    /// The setting name (or `connection_pooling` for advice that is not a setting).
    pub name: String,
    pub group: Group,
    /// Current value in human units.
    pub current: Option<String>,
    /// Recommended value in human units; also the literal `ALTER SYSTEM` receives.
    pub recommended: Option<String>,
    /// True when the recommendation differs from the current value.
    pub changes: bool,
    pub reason: String,
    pub evidence: Vec<String>,
    pub expected_effect: Option<String>,
    pub confidence: Confidence,
    pub basis: TuneBasis,
    pub takes_effect: TakesEffect,
    /// How the value was moved to stay inside this server's bounds.
    pub adjustment: Option<String>,
    /// The server already has a changed value waiting for a restart.
    pub pending_restart: bool,
    #[serde(skip)]
    #[ts(skip)]
    pub value: Option<TuneValue>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct RecommendationGroup {
    pub group: Group,
    pub title: String,
    pub items: Vec<Recommendation>,
}

/// Memory in kB by use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, TS)]
pub struct MemoryParts {
    #[ts(type = "number")]
    pub shared_buffers_kb: u64,
    /// work_mem × max_connections: the worst case of one sort per connection.
    #[ts(type = "number")]
    pub work_mem_total_kb: u64,
    #[ts(type = "number")]
    pub maintenance_kb: u64,
    /// effective_cache_size: what the OS is expected to cache.
    #[ts(type = "number")]
    pub os_cache_kb: u64,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct MemoryBudget {
    #[ts(type = "number")]
    pub ram_kb: u64,
    pub now: MemoryParts,
    pub after: MemoryParts,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct TuneReport {
    pub project: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub profile: HardwareProfile,
    pub groups: Vec<RecommendationGroup>,
    pub memory: MemoryBudget,
    pub memory_chart_svg: String,
    /// ALTER SYSTEM statements for the changed settings, to run by hand.
    pub script_sql: String,
    /// The same as postgresql.conf lines.
    pub conf_snippet: String,
    /// Why the statistics could not be read (the hardware baseline is still given).
    pub evidence_error: Option<crate::error::Error>,
}

impl TuneReport {
    pub fn items(&self) -> impl Iterator<Item = &Recommendation> {
        self.groups.iter().flat_map(|g| g.items.iter())
    }

    pub fn item(&self, name: &str) -> Option<&Recommendation> {
        self.items().find(|r| r.name == name)
    }
}

fn reason(name: &str, p: &HardwareProfile) -> String {
    let w = p.workload.as_str();
    let ram = fmt_kb(p.ram_kb);
    match name {
        "max_connections" => match p.connections {
            Some(c) => format!("The {c} connections you expect."),
            None => format!(
                "PGTune's default for a {w} workload ({}); give --connections to change it.",
                default_connections(p.workload)
            ),
        },
        "shared_buffers" if p.workload == Workload::Desktop => {
            format!("1/16 of RAM ({ram}) on a desktop, leaving memory to other programs.")
        }
        "shared_buffers" => format!("25 % of RAM ({ram}); the OS cache holds the rest."),
        "effective_cache_size" => format!(
            "What the planner may assume the OS caches: {} of RAM.",
            if p.workload == Workload::Desktop { "25 %" } else { "75 %" }
        ),
        "maintenance_work_mem" => {
            "RAM/16 (RAM/8 for a warehouse), at most 8GB: faster VACUUM and index builds.".into()
        }
        "checkpoint_completion_target" => {
            "Spread checkpoint writes over 90 % of the interval.".into()
        }
        "wal_buffers" => "3 % of shared_buffers, at most 16MB.".into(),
        "default_statistics_target" => {
            "100, or 500 for a warehouse where complex queries need finer statistics.".into()
        }
        "random_page_cost" => match (p.db_size, p.storage) {
            (DbSize::SmallerThanRam, _) => "The data fits in RAM: random reads are cheap.".into(),
            (_, StorageKind::Hdd) => "Spinning disks: random reads cost far more than sequential ones.".into(),
            _ if p.workload == Workload::Dw => {
                "A warehouse larger than memory: keep random reads expensive.".into()
            }
            _ => "Flash or SAN storage: random reads cost about as much as sequential ones.".into(),
        },
        "effective_io_concurrency" => format!(
            "Concurrent I/O requests that {} storage serves well.",
            p.storage.as_str()
        ),
        "work_mem" => format!(
            "(RAM − shared_buffers) / ((max_connections + workers) × 3), divided for a {w} workload{}.",
            match p.db_size {
                DbSize::SmallerThanRam => ", × 1.3 as the data fits in RAM",
                DbSize::LargerThanRam => ", × 0.9 as the data is larger than RAM",
                DbSize::Unknown => "",
            }
        ),
        "huge_pages" => "Huge pages pay off from 2GB of shared_buffers.".into(),
        "min_wal_size" | "max_wal_size" => format!("WAL volume typical of a {w} workload."),
        "max_worker_processes" | "max_parallel_workers" => {
            format!("One per CPU ({}).", p.cpus.unwrap_or(0))
        }
        "max_parallel_workers_per_gather" => "Half the CPUs, at most 4 outside a warehouse.".into(),
        "max_parallel_maintenance_workers" => "Half the CPUs, at most 4.".into(),
        "autovacuum_max_workers" => "Many CPUs can run more autovacuum workers.".into(),
        _ => String::new(),
    }
}

fn bigger(a: &TuneValue, b: &TuneValue) -> bool {
    match (a, b) {
        (TuneValue::Kb(x), TuneValue::Kb(y)) => x > y,
        (TuneValue::Ms(x), TuneValue::Ms(y)) => x > y,
        (TuneValue::Int(x), TuneValue::Int(y)) => x > y,
        (TuneValue::Real(x), TuneValue::Real(y)) => x > y,
        _ => false,
    }
}

/// Merge baseline and findings into grouped recommendations checked against `settings`.
pub fn build(
    p: &HardwareProfile,
    major: u32,
    settings: &HashMap<String, ServerSetting>,
    findings: &[Finding],
) -> Vec<RecommendationGroup> {
    let mut recs: Vec<Recommendation> = baseline(p, major)
        .into_iter()
        .map(|(name, v)| Recommendation {
            name: name.to_string(),
            group: Group::of(name),
            current: None,
            recommended: None,
            changes: false,
            reason: reason(name, p),
            evidence: vec![],
            expected_effect: None,
            confidence: Confidence::Medium,
            basis: TuneBasis::Hardware,
            takes_effect: TakesEffect::Reload,
            adjustment: None,
            pending_restart: false,
            value: Some(v),
        })
        .collect();
    for f in findings {
        let name = f.setting.unwrap_or("connection_pooling");
        if let Some(r) = recs.iter_mut().find(|r| r.name == name) {
            r.evidence.push(f.evidence.clone());
            r.expected_effect = Some(f.expected_effect.clone());
            r.basis = TuneBasis::Both;
            r.confidence = r.confidence.max(f.confidence);
            if let (Some(v), Some(cur)) = (&f.value, &r.value) {
                if !f.at_least || bigger(v, cur) {
                    r.value = Some(v.clone());
                    r.reason = format!("{} {}", r.reason, f.title);
                }
            }
        } else {
            recs.push(Recommendation {
                name: name.to_string(),
                group: f.group,
                current: None,
                recommended: None,
                changes: f.setting.is_some(),
                reason: f.title.to_string(),
                evidence: vec![f.evidence.clone()],
                expected_effect: Some(f.expected_effect.clone()),
                confidence: f.confidence,
                basis: TuneBasis::Evidence,
                takes_effect: TakesEffect::NotASetting,
                adjustment: None,
                pending_restart: false,
                value: f.value.clone(),
            });
        }
    }
    let mut kept = Vec::new();
    for mut r in recs {
        if r.name == "connection_pooling" {
            kept.push(r);
            continue;
        }
        // A setting this server does not have is left out.
        let Some(s) = settings.get(&r.name) else {
            continue;
        };
        r.current = Some(s.human());
        r.pending_restart = s.pending_restart;
        r.takes_effect = if s.needs_restart() {
            TakesEffect::Restart
        } else {
            TakesEffect::Reload
        };
        if let Some(v) = r.value.take() {
            let (v, why) = clamp(&v, s);
            r.adjustment = why;
            r.changes = s
                .value()
                .is_none_or(|cur| !same(&v, &cur, s.unit.as_deref()));
            r.recommended = Some(v.literal());
            r.value = Some(v);
        }
        kept.push(r);
    }
    Group::ALL
        .iter()
        .map(|g| RecommendationGroup {
            group: *g,
            title: g.title().to_string(),
            items: kept.iter().filter(|r| r.group == *g).cloned().collect(),
        })
        .filter(|g| !g.items.is_empty())
        .collect()
}

fn kb_of(v: Option<TuneValue>) -> u64 {
    match v {
        Some(TuneValue::Kb(kb)) => kb,
        _ => 0,
    }
}

fn int_of(v: Option<TuneValue>) -> u64 {
    match v {
        Some(TuneValue::Int(i)) if i > 0 => i as u64,
        _ => 0,
    }
}

/// Memory by use now and after the changed recommendations.
pub fn budget(
    ram_kb: u64,
    settings: &HashMap<String, ServerSetting>,
    groups: &[RecommendationGroup],
) -> MemoryBudget {
    let now_of = |n: &str| settings.get(n).and_then(|s| s.value());
    let after_of = |n: &str| {
        groups
            .iter()
            .flat_map(|g| g.items.iter())
            .find(|r| r.name == n && r.changes)
            .and_then(|r| r.value.clone())
            .or_else(|| now_of(n))
    };
    let parts = |get: &dyn Fn(&str) -> Option<TuneValue>| MemoryParts {
        shared_buffers_kb: kb_of(get("shared_buffers")),
        work_mem_total_kb: kb_of(get("work_mem")) * int_of(get("max_connections")),
        maintenance_kb: kb_of(get("maintenance_work_mem")),
        os_cache_kb: kb_of(get("effective_cache_size")),
    };
    MemoryBudget {
        ram_kb,
        now: parts(&now_of),
        after: parts(&after_of),
    }
}

/// The changed settings as `ALTER SYSTEM` statements and as postgresql.conf lines.
pub fn scripts(project: &str, groups: &[RecommendationGroup]) -> (String, String) {
    let mut sql = format!(
        "-- Tuning for project {project}, from pgsteward. Run as a superuser (or a role granted ALTER SYSTEM).\n"
    );
    let mut conf = format!("# Tuning for project {project}, from pgsteward.\n");
    let mut restart = Vec::new();
    for r in groups.iter().flat_map(|g| g.items.iter()) {
        let (Some(v), true) = (&r.recommended, r.changes) else {
            continue;
        };
        let Ok(name) = setting_name_sql(&r.name) else {
            continue;
        };
        let effect = if r.takes_effect == TakesEffect::Restart {
            restart.push(r.name.clone());
            "restart"
        } else {
            "reload"
        };
        sql.push_str(&format!(
            "ALTER SYSTEM SET {name} = {};  -- was {}, needs a {effect}\n",
            quote_literal(v),
            r.current.as_deref().unwrap_or("?")
        ));
        conf.push_str(&format!(
            "{} = {}\t# was {}, needs a {effect}\n",
            r.name,
            quote_literal(v),
            r.current.as_deref().unwrap_or("?")
        ));
    }
    sql.push_str("SELECT pg_reload_conf();\n");
    if !restart.is_empty() {
        sql.push_str(&format!(
            "-- Restart the server for: {}\n",
            restart.join(", ")
        ));
    }
    (sql, conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::advisor::Confidence;
    use crate::tune::profile::{OsKind, ProfileSource};

    fn s(
        name: &str,
        setting: &str,
        unit: Option<&str>,
        vt: &str,
        ctx: &str,
    ) -> (String, ServerSetting) {
        (
            name.into(),
            ServerSetting {
                name: name.into(),
                setting: setting.into(),
                unit: unit.map(Into::into),
                vartype: vt.into(),
                min_val: Some("0".into()),
                max_val: Some("2147483647".into()),
                enumvals: None,
                context: ctx.into(),
                pending_restart: false,
            },
        )
    }

    #[test]
    fn merges_evidence_keeps_bounds_and_groups() {
        let p = HardwareProfile {
            ram_kb: 8 * 1048576,
            cpus: Some(2),
            storage: StorageKind::Ssd,
            workload: Workload::Web,
            connections: Some(100),
            db_size: DbSize::Unknown,
            os: OsKind::Linux,
            source: ProfileSource::Entered,
        };
        let settings: HashMap<_, _> = [
            s(
                "shared_buffers",
                "16384",
                Some("8kB"),
                "integer",
                "postmaster",
            ),
            s("work_mem", "4096", Some("kB"), "integer", "user"),
            s("max_connections", "100", None, "integer", "postmaster"),
            s("max_wal_size", "16384", Some("MB"), "integer", "sighup"),
            s("log_lock_waits", "off", None, "bool", "superuser"),
        ]
        .into_iter()
        .collect();
        let findings = vec![
            Finding {
                setting: Some("max_wal_size"),
                title: "Requested checkpoints outnumber timed ones",
                group: Group::Wal,
                value: Some(TuneValue::Kb(32 * 1048576)),
                at_least: true,
                evidence: "9 requested against 2 timed".into(),
                expected_effect: "fewer".into(),
                confidence: Confidence::Medium,
            },
            Finding {
                setting: Some("log_lock_waits"),
                title: "Log lock waits",
                group: Group::Logging,
                value: Some(TuneValue::Text("on".into())),
                at_least: false,
                evidence: "off".into(),
                expected_effect: "logged".into(),
                confidence: Confidence::High,
            },
        ];
        let groups = build(&p, 17, &settings, &findings);
        let titles: Vec<_> = groups.iter().map(|g| g.group).collect();
        assert_eq!(
            titles,
            [
                Group::Memory,
                Group::Connections,
                Group::Wal,
                Group::Logging
            ]
        );
        let item = |n: &str| {
            groups
                .iter()
                .flat_map(|g| &g.items)
                .find(|r| r.name == n)
                .unwrap()
        };
        let sb = item("shared_buffers");
        assert_eq!(sb.current.as_deref(), Some("128MB"));
        assert_eq!(sb.recommended.as_deref(), Some("2GB"));
        assert!(sb.changes);
        assert_eq!(sb.takes_effect, TakesEffect::Restart);
        let mc = item("max_connections");
        assert!(!mc.changes);
        // Evidence asked for more than the baseline's 4GB: it wins.
        let wal = item("max_wal_size");
        assert_eq!(wal.recommended.as_deref(), Some("32GB"));
        assert_eq!(wal.basis, TuneBasis::Both);
        let llw = item("log_lock_waits");
        assert_eq!(llw.takes_effect, TakesEffect::Reload);
        assert_eq!(llw.basis, TuneBasis::Evidence);

        let b = budget(p.ram_kb, &settings, &groups);
        assert_eq!(b.now.shared_buffers_kb, 131072);
        assert_eq!(b.after.shared_buffers_kb, 2 * 1048576);
        assert_eq!(b.now.work_mem_total_kb, 4096 * 100);

        let (sql, conf) = scripts("p", &groups);
        assert!(
            sql.contains("ALTER SYSTEM SET \"shared_buffers\" = '2GB';"),
            "{sql}"
        );
        assert!(sql.contains("SELECT pg_reload_conf();"));
        assert!(sql.contains("-- Restart the server for: shared_buffers"));
        assert!(!sql.contains("max_connections"));
        assert!(conf.contains("log_lock_waits = 'on'"), "{conf}");
    }
}
