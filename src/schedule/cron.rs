//! Cron expressions for schedules: the standard five fields (minute, hour, day of month, month,
//! day of week) with lists, ranges, steps and names, evaluated in this computer's local time.
//!
//! Parsing and evaluation come from the `croner` crate, held to five fields (no seconds, no
//! years, no `@daily` nicknames). As in Vixie cron, a day matches when the day of month *or*
//! the day of week matches if both are restricted; Sunday is 0 or 7. Around a change of
//! daylight saving time a local time that does not exist is skipped and one that happens twice
//! counts once (croner's rule); nothing here depends on more than that.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Timelike};
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};

/// A checked five-field cron expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    text: String,
    cron: croner::Cron,
}

impl CronExpr {
    pub fn parse(text: &str) -> Result<CronExpr> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = text.split(' ').filter(|f| !f.is_empty()).count();
        if fields != 5 || text.contains('@') {
            return Err(Error::invalid_input(format!(
                "\"{text}\" is not a cron expression of five fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\""
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&text)
            .map_err(|e| {
                Error::invalid_input(format!("\"{text}\" is not a valid cron expression: {e}"))
            })?;
        Ok(CronExpr { text, cron })
    }

    /// The expression, with its fields separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time strictly after `t` that matches (a whole minute).
    pub fn next_after<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron.find_next_occurrence(&whole_second(t), false).ok()
    }

    /// The last time at or before `t` that matches (a whole minute; `None` if none in the
    /// search horizon).
    pub fn last_at_or_before<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron
            .find_previous_occurrence(&whole_second(t), true)
            .ok()
    }
}

/// `t` without its fraction of a second: croner keeps the fraction of the time it starts from
/// in what it finds, and a scheduled time must be the same however late in the second it is
/// asked for.
fn whole_second<Tz: TimeZone>(t: &DateTime<Tz>) -> DateTime<Tz> {
    t.with_nanosecond(0).unwrap_or_else(|| t.clone())
}

impl FromStr for CronExpr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CronExpr::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, 0)
                .unwrap(),
        )
    }

    fn next(expr: &str, t: DateTime<Utc>) -> DateTime<Utc> {
        CronExpr::parse(expr).unwrap().next_after(&t).unwrap()
    }

    #[test]
    fn daily_at_two_is_next_day_once_past() {
        assert_eq!(
            next("0 2 * * *", at(2026, 3, 10, 1, 59)),
            at(2026, 3, 10, 2, 0)
        );
        // Strictly after: the matching minute itself gives the next day.
        assert_eq!(
            next("0 2 * * *", at(2026, 3, 10, 2, 0)),
            at(2026, 3, 11, 2, 0)
        );
        assert_eq!(
            next("0 2 * * *", at(2026, 12, 31, 3, 0)),
            at(2027, 1, 1, 2, 0)
        );
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(
            next("*/15 * * * *", at(2026, 3, 10, 1, 7)),
            at(2026, 3, 10, 1, 15)
        );
        assert_eq!(
            next("*/15 * * * *", at(2026, 3, 10, 1, 45)),
            at(2026, 3, 10, 2, 0)
        );
        assert_eq!(
            next("10-20/5 3 * * *", at(2026, 3, 10, 3, 16)),
            at(2026, 3, 10, 3, 20)
        );
        assert_eq!(
            next("10-20/5 3 * * *", at(2026, 3, 10, 3, 20)),
            at(2026, 3, 11, 3, 10)
        );
        assert_eq!(
            next("0 1,13 * * *", at(2026, 3, 10, 2, 0)),
            at(2026, 3, 10, 13, 0)
        );
        assert_eq!(
            next("0 0 1 */3 *", at(2026, 2, 10, 0, 0)),
            at(2026, 4, 1, 0, 0)
        );
    }

    #[test]
    fn day_of_week_numbers_and_names() {
        // 2026-03-10 is a Tuesday.
        assert_eq!(
            next("30 3 * * 0", at(2026, 3, 10, 0, 0)),
            at(2026, 3, 15, 3, 30)
        );
        assert_eq!(
            next("30 3 * * 7", at(2026, 3, 10, 0, 0)),
            at(2026, 3, 15, 3, 30)
        );
        assert_eq!(
            next("30 3 * * sun", at(2026, 3, 10, 0, 0)),
            at(2026, 3, 15, 3, 30)
        );
        assert_eq!(
            next("0 9 * * 1-5", at(2026, 3, 13, 10, 0)),
            at(2026, 3, 16, 9, 0)
        );
        assert_eq!(
            next("0 0 * feb *", at(2026, 3, 10, 0, 0)),
            at(2027, 2, 1, 0, 0)
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_as_vixie_cron() {
        // The 15th or any Monday, whichever comes first (2026-03-10 is a Tuesday).
        assert_eq!(
            next("0 0 15 * 1", at(2026, 3, 10, 0, 0)),
            at(2026, 3, 15, 0, 0)
        );
        assert_eq!(
            next("0 0 15 * 1", at(2026, 3, 15, 0, 0)),
            at(2026, 3, 16, 0, 0)
        );
        // February 29th only in leap years.
        assert_eq!(
            next("0 0 29 2 *", at(2026, 3, 1, 0, 0)),
            at(2028, 2, 29, 0, 0)
        );
    }

    #[test]
    fn last_occurrence_at_or_before() {
        let e = CronExpr::parse("0 2 * * *").unwrap();
        assert_eq!(
            e.last_at_or_before(&at(2026, 3, 10, 2, 0)),
            Some(at(2026, 3, 10, 2, 0))
        );
        assert_eq!(
            e.last_at_or_before(&at(2026, 3, 10, 1, 59)),
            Some(at(2026, 3, 9, 2, 0))
        );
    }

    #[test]
    fn times_are_whole_minutes_whatever_the_fraction_of_a_second() {
        let e = CronExpr::parse("* * * * *").unwrap();
        let t = at(2026, 3, 10, 2, 0) + chrono::Duration::milliseconds(30_906);
        assert_eq!(e.last_at_or_before(&t), Some(at(2026, 3, 10, 2, 0)));
        assert_eq!(e.next_after(&t), Some(at(2026, 3, 10, 2, 1)));
    }

    #[test]
    fn spacing_is_normalised() {
        assert_eq!(
            CronExpr::parse("  0  2 * *\t* ").unwrap().as_str(),
            "0 2 * * *"
        );
    }

    #[test]
    fn invalid_expressions_are_refused() {
        for bad in [
            "",
            "0 2 * *",
            "0 0 2 * * *",
            "61 * * * *",
            "0 24 * * *",
            "0 0 32 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "a b c d e",
            "5-1/0 * * * *",
            "@daily",
        ] {
            let e = CronExpr::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidInput, "{bad:?}");
        }
    }
}
