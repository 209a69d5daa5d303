//! Staff working hours: when a routine (medium or low) alert, or a high one to someone not on
//! call, may reach a clinician's phone. Outside them the push waits for the next start, so the
//! care team is not woken for what can wait and learns that a push at night means urgent. Pure:
//! the zone and the instant are passed in.

use chrono::{DateTime, Datelike, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::prompt::local_time::{self, ClockTime, DailySpan};

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Day {
    fn of(weekday: Weekday) -> Self {
        match weekday {
            Weekday::Mon => Day::Mon,
            Weekday::Tue => Day::Tue,
            Weekday::Wed => Day::Wed,
            Weekday::Thu => Day::Thu,
            Weekday::Fri => Day::Fri,
            Weekday::Sat => Day::Sat,
            Weekday::Sun => Day::Sun,
        }
    }
}

/// When a member of staff works, in their own zone. Unset: Monday to Friday, 08:00 to 18:00.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    /// The days a shift starts on; one to seven, each once.
    #[schema(min_items = 1, max_items = 7)]
    pub days: Vec<Day>,
    /// Start of the shift, `HH:MM` local.
    #[schema(value_type = String, example = "08:00", pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: ClockTime,
    /// End of the shift, `HH:MM` local; before `start` for a shift past midnight; never equal.
    #[schema(value_type = String, example = "18:00", pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: ClockTime,
}

impl Default for WorkingHours {
    fn default() -> Self {
        Self {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            start: ClockTime::from_minutes(8 * 60),
            end: ClockTime::from_minutes(18 * 60),
        }
    }
}

impl WorkingHours {
    /// Problems, keyed by field.
    pub fn problems(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut days = self.days.clone();
        days.sort();
        days.dedup();
        if self.days.is_empty() || days.len() != self.days.len() {
            out.insert("days".into(), "must name 1 to 7 different days".into());
        }
        if self.start == self.end {
            out.insert("end".into(), "must differ from start".into());
        }
        out
    }

    /// `now` if it falls inside a shift, else the start of the next one (never later than a
    /// week and a day ahead).
    pub fn next_open(&self, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        let span = DailySpan::new(self.start, self.end);
        let today = local_time::local_date(tz, now);
        let mut next: Option<DateTime<Utc>> = None;
        // From yesterday, for a shift that started then and runs past midnight.
        for offset in -1..=8 {
            let date = today + TimeDelta::days(offset);
            if !self.days.contains(&Day::of(date.weekday())) {
                continue;
            }
            let start = local_time::resolve(tz, date.and_time(self.start.naive()));
            let end_date = if self.end <= self.start {
                date + TimeDelta::days(1)
            } else {
                date
            };
            let end = local_time::resolve(tz, end_date.and_time(self.end.naive()));
            if start <= now && now < end && span.minutes() > 0 {
                return now;
            }
            if start > now && next.is_none_or(|n| start < n) {
                next = Some(start);
            }
        }
        next.unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn outside_the_shift_a_push_waits_for_the_next_start_in_local_time() {
        let hours = WorkingHours::default();
        let chicago: Tz = "America/Chicago".parse().unwrap();
        // Wednesday 03:00 in Chicago: waits for 08:00 local.
        assert_eq!(
            hours.next_open(chicago, at("2026-06-03T08:00:00Z")),
            at("2026-06-03T13:00:00Z")
        );
        // Inside: at once.
        let noon = at("2026-06-03T17:00:00Z");
        assert_eq!(hours.next_open(chicago, noon), noon);
        // Friday evening: Monday morning.
        assert_eq!(
            hours.next_open(chicago, at("2026-06-06T00:30:00Z")),
            at("2026-06-08T13:00:00Z")
        );
        // Across a daylight-saving change, still 08:00 local (CST: UTC-6).
        assert_eq!(
            hours.next_open(chicago, at("2026-11-07T20:00:00Z")),
            at("2026-11-09T14:00:00Z")
        );
    }

    #[test]
    fn a_night_shift_runs_past_midnight_and_bad_hours_are_named() {
        let night = WorkingHours {
            days: vec![Day::Sat],
            start: ClockTime::from_minutes(20 * 60),
            end: ClockTime::from_minutes(6 * 60),
        };
        assert!(night.problems().is_empty());
        let utc: Tz = "UTC".parse().unwrap();
        // Sunday 02:00 is inside Saturday's shift.
        let sunday = at("2026-06-07T02:00:00Z");
        assert_eq!(night.next_open(utc, sunday), sunday);
        assert_eq!(
            night.next_open(utc, at("2026-06-07T07:00:00Z")),
            at("2026-06-13T20:00:00Z")
        );
        let bad = WorkingHours {
            days: vec![Day::Mon, Day::Mon],
            start: ClockTime::from_minutes(60),
            end: ClockTime::from_minutes(60),
        };
        let problems = bad.problems();
        assert!(problems.contains_key("days") && problems.contains_key("end"));
    }
}
