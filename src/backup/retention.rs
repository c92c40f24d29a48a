//! Which backups a retention policy lets go, decided as a pure function so it can be shown
//! before anything is deleted.
//!
//! A backup is kept when any rule keeps it: it is among the newest `keep_last`, or younger than
//! `max_age_days`, or it is the newest backup, or the newest fully verified one. Only backups
//! that every rule lets go are deleted. Backups whose manifest is damaged are never touched here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use ts_rs::TS;

use crate::error::{Error, Result};

/// Default age limit (BACKUP_RETENTION_DAYS).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<usize>,
    pub max_age_days: Option<u32>,
}

impl RetentionPolicy {
    /// BACKUP_RETENTION_DAYS (30 unless set) and no count limit.
    pub fn from_env() -> Result<Self> {
        let days = match std::env::var("BACKUP_RETENTION_DAYS") {
            Ok(v) => v.trim().parse::<u32>().map_err(|_| {
                Error::invalid_input(format!(
                    "BACKUP_RETENTION_DAYS must be a whole number of days, not {v:?}"
                ))
            })?,
            Err(_) => DEFAULT_RETENTION_DAYS,
        };
        Ok(RetentionPolicy {
            keep_last: None,
            max_age_days: Some(days),
        })
    }

    pub fn check(&self) -> Result<()> {
        if self.keep_last.is_none() && self.max_age_days.is_none() {
            return Err(Error::invalid_input(
                "a retention policy needs a count (--keep) or an age (--max-age-days)",
            ));
        }
        if self.keep_last == Some(0) {
            return Err(Error::invalid_input(
                "--keep 0 would delete every backup; keep at least 1",
            ));
        }
        Ok(())
    }
}

/// One backup as retention sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// A full verification (or a restore, which verifies first) succeeded.
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct PruneDecision {
    pub backup_id: String,
    pub created_at: String,
    pub delete: bool,
    /// Why it is kept or let go.
    pub reason: String,
}

/// Decide for every backup; `backups` in any order. Output newest first.
pub fn plan(
    backups: &[Candidate],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<PruneDecision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let newest_verified = sorted.iter().find(|c| c.verified).map(|c| c.id.clone());
    sorted
        .iter()
        .enumerate()
        .map(|(rank, c)| {
            let age_days = (now - c.created_at).num_seconds() as f64 / 86_400.0;
            let reason = if rank == 0 {
                Some("the newest backup".to_string())
            } else if newest_verified.as_deref() == Some(c.id.as_str()) {
                Some("the newest verified backup".to_string())
            } else if let Some(n) = policy.keep_last.filter(|n| rank < *n) {
                Some(format!("among the newest {n}"))
            } else {
                policy
                    .max_age_days
                    .filter(|d| age_days < *d as f64)
                    .map(|d| format!("younger than {d} days"))
            };
            PruneDecision {
                backup_id: c.id.clone(),
                created_at: c.created_at.to_rfc3339(),
                delete: reason.is_none(),
                reason: reason.unwrap_or_else(|| {
                    let mut why = Vec::new();
                    if let Some(n) = policy.keep_last {
                        why.push(format!("not among the newest {n}"));
                    }
                    if let Some(d) = policy.max_age_days {
                        why.push(format!("older than {d} days ({age_days:.0} days)"));
                    }
                    why.join(" and ")
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn c(id: &str, days_ago: i64, verified: bool, now: DateTime<Utc>) -> Candidate {
        Candidate {
            id: id.into(),
            created_at: now - Duration::days(days_ago),
            verified,
        }
    }

    fn deleted(d: &[PruneDecision]) -> Vec<&str> {
        d.iter()
            .filter(|x| x.delete)
            .map(|x| x.backup_id.as_str())
            .collect()
    }

    #[test]
    fn age_rule_lets_old_backups_go_but_never_the_newest() {
        let now = Utc::now();
        let b = [
            c("a", 40, false, now),
            c("b", 35, false, now),
            c("c", 1, false, now),
        ];
        let p = RetentionPolicy {
            keep_last: None,
            max_age_days: Some(30),
        };
        assert_eq!(deleted(&plan(&b, &p, now)), vec!["b", "a"]);
        // All old: the newest still stays.
        let b = [c("a", 40, false, now), c("b", 35, false, now)];
        assert_eq!(deleted(&plan(&b, &p, now)), vec!["a"]);
    }

    #[test]
    fn count_and_age_both_have_to_agree() {
        let now = Utc::now();
        let b: Vec<_> = (0..6)
            .map(|i| c(&format!("b{i}"), i * 10, false, now))
            .collect();
        let p = RetentionPolicy {
            keep_last: Some(2),
            max_age_days: Some(25),
        };
        // b0, b1 newest two; b2 (20 days) younger than 25; b3.. older and beyond 2.
        assert_eq!(deleted(&plan(&b, &p, now)), vec!["b3", "b4", "b5"]);
        let p = RetentionPolicy {
            keep_last: Some(4),
            max_age_days: None,
        };
        assert_eq!(deleted(&plan(&b, &p, now)), vec!["b4", "b5"]);
    }

    #[test]
    fn the_newest_verified_backup_survives() {
        let now = Utc::now();
        let b = [
            c("new", 0, false, now),
            c("mid", 50, false, now),
            c("old", 90, true, now),
        ];
        let p = RetentionPolicy {
            keep_last: Some(1),
            max_age_days: None,
        };
        let d = plan(&b, &p, now);
        assert_eq!(deleted(&d), vec!["mid"]);
        assert!(d
            .iter()
            .any(|x| x.backup_id == "old" && x.reason.contains("verified")));
    }

    #[test]
    fn nonsense_policies_are_refused() {
        assert!(RetentionPolicy {
            keep_last: None,
            max_age_days: None
        }
        .check()
        .is_err());
        assert!(RetentionPolicy {
            keep_last: Some(0),
            max_age_days: None
        }
        .check()
        .is_err());
    }
}
