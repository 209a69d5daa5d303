//! Local clock arithmetic in a patient's IANA zone. Pure: every function takes the instant it
//! reasons about as an argument.
//!
//! The rules (CLINICAL.md): prompts are computed in local clock time, so a 09:00 prompt stays at
//! 09:00 local across daylight-saving changes; a local time that does not exist (spring forward)
//! moves to the first valid instant after it; one that occurs twice (fall back) uses the first
//! occurrence.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A wall-clock time of day to the minute, written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    /// `hour:minute`, if valid.
    pub fn new(hour: u32, minute: u32) -> Option<Self> {
        (hour < 24 && minute < 60).then(|| Self((hour * 60 + minute) as u16))
    }

    /// `minutes` after midnight (wrapping at a day).
    pub const fn from_minutes(minutes: u16) -> Self {
        Self(minutes % 1440)
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }

    /// As a chrono time.
    pub fn naive(self) -> NaiveTime {
        NaiveTime::from_hms_opt(self.minutes() / 60, self.minutes() % 60, 0)
            .unwrap_or(NaiveTime::MIN)
    }

    /// The time of day of `time`, to the minute (seconds dropped).
    pub fn of(time: NaiveTime) -> Self {
        Self((time.hour() * 60 + time.minute()) as u16)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for ClockTime {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const MESSAGE: &str = "must be a time of day written HH:MM (00:00 to 23:59)";
        let (h, m) = s.split_once(':').ok_or(MESSAGE)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(MESSAGE);
        }
        let hour = h.parse().map_err(|_| MESSAGE)?;
        let minute = m.parse().map_err(|_| MESSAGE)?;
        Self::new(hour, minute).ok_or(MESSAGE)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A daily span of wall-clock time `[start, end)`; it wraps past midnight when `end < start`
/// (21:00-08:00). `start == end` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DailySpan {
    /// First minute inside, `HH:MM` local.
    #[schema(value_type = String, example = "21:00")]
    pub start: ClockTime,
    /// First minute after, `HH:MM` local.
    #[schema(value_type = String, example = "08:00")]
    pub end: ClockTime,
}

impl DailySpan {
    /// The span from `start` to `end`.
    pub fn new(start: ClockTime, end: ClockTime) -> Self {
        Self { start, end }
    }

    /// Length in minutes (0 to 1439).
    pub fn minutes(self) -> u32 {
        (self.end.minutes() + 1440 - self.start.minutes()) % 1440
    }

    /// Whether a wall-clock time of day is inside.
    pub fn contains(self, time: NaiveTime) -> bool {
        let t = ClockTime::of(time).minutes();
        let (s, e) = (self.start.minutes(), self.end.minutes());
        match s.cmp(&e) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => s <= t && t < e,
            std::cmp::Ordering::Greater => t >= s || t < e,
        }
    }

    /// Whether some minute of `other` is outside this span.
    pub fn leaves_room_in(self, other: DailySpan) -> bool {
        (0..other.minutes()).any(|m| {
            let minute = (other.start.minutes() + m) % 1440;
            !self.contains(ClockTime((minute) as u16).naive())
        })
    }
}

/// The instant of local `date` at `time` in `tz`: the first occurrence when the time occurs
/// twice, the first valid instant after it when it does not exist.
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    occurrences(tz, local)[0]
}

/// Every instant that `local` names in `tz`, earliest first (one, or two at a fall-back); for a
/// local time in a spring-forward gap, the first valid instant after it.
fn occurrences(tz: Tz, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) => vec![at.with_timezone(&Utc)],
        LocalResult::Ambiguous(first, second) => {
            vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
        }
        LocalResult::None => vec![gap_end(tz, local)],
    }
}

/// The first valid instant after a local time that falls in a gap. Transitions happen on whole
/// minutes, so the first local minute that exists is the end of the gap; that instant is the
/// transition itself. (Gaps are at most a day long, as when Samoa skipped 30 December 2011.)
fn gap_end(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let start = local
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(local);
    let mut probe = start;
    for _ in 0..(2 * 1440) {
        probe += TimeDelta::minutes(1);
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return at.with_timezone(&Utc);
            }
            LocalResult::None => {}
        }
    }
    // Unreachable for real zones; fall back to reading the local time as UTC.
    start.and_utc()
}

/// `instant` itself when it is outside `quiet` in `tz`, else the first instant at or after it
/// where the quiet hours end (and which is not quiet itself).
pub fn next_allowed(tz: Tz, instant: DateTime<Utc>, quiet: DailySpan) -> DateTime<Utc> {
    let local = instant.with_timezone(&tz).naive_local();
    if !quiet.contains(local.time()) {
        return instant;
    }
    // The quiet hours that contain `local` end today or, when they wrap and we are before
    // midnight, tomorrow.
    let mut date = local.date();
    if quiet.end < quiet.start && ClockTime::of(local.time()) >= quiet.start {
        date = date.succ_opt().unwrap_or(date);
    }
    for day in 0..3 {
        let candidate_date = date + TimeDelta::days(day);
        let end = candidate_date.and_time(quiet.end.naive());
        // An end that falls in a daylight-saving gap resolves to the first instant after the
        // gap, which can itself be quiet (quiet hours that leave only minutes free): that day
        // has no allowed time, so look at the next.
        if let Some(at) = occurrences(tz, end)
            .into_iter()
            .find(|at| *at > instant && !quiet.contains(at.with_timezone(&tz).time()))
        {
            return at;
        }
    }
    instant
}

/// Whether `instant` is inside `quiet` in `tz`.
pub fn is_quiet(tz: Tz, instant: DateTime<Utc>, quiet: DailySpan) -> bool {
    quiet.contains(instant.with_timezone(&tz).time())
}

/// The local calendar date of `instant` in `tz`.
pub fn local_date(tz: Tz, instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&tz).date_naive()
}

/// The local wall-clock time of `instant` in `tz`.
pub fn local(tz: Tz, instant: DateTime<Utc>) -> NaiveDateTime {
    instant.with_timezone(&tz).naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Australia::Lord_Howe;
    use chrono_tz::Europe::London;

    fn t(s: &str) -> ClockTime {
        s.parse().unwrap()
    }

    fn at(date: &str, time: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn clock_times_parse_and_print_as_hh_mm() {
        assert_eq!(t("09:05").to_string(), "09:05");
        for bad in ["9:05", "24:00", "12:60", "ab:cd", "1200", ""] {
            assert!(bad.parse::<ClockTime>().is_err(), "{bad}");
        }
    }

    #[test]
    fn spans_wrap_past_midnight() {
        let quiet = DailySpan::new(t("21:00"), t("08:00"));
        assert!(quiet.contains(t("23:30").naive()));
        assert!(quiet.contains(t("07:59").naive()));
        assert!(!quiet.contains(t("08:00").naive()));
        assert!(!quiet.contains(t("20:59").naive()));
        assert_eq!(quiet.minutes(), 11 * 60);
        assert!(!DailySpan::new(t("10:00"), t("10:00")).contains(t("10:00").naive()));
    }

    #[test]
    fn a_nonexistent_local_time_moves_to_the_end_of_the_gap() {
        // New York sprang forward at 02:00 on 8 March 2026.
        let resolved = resolve(New_York, at("2026-03-08", "02:30"));
        assert_eq!(local(New_York, resolved), at("2026-03-08", "03:00"));
        // Lord Howe moves by half an hour: 02:00 -> 02:30 on 4 October 2026.
        let resolved = resolve(Lord_Howe, at("2026-10-04", "02:10"));
        assert_eq!(local(Lord_Howe, resolved), at("2026-10-04", "02:30"));
    }

    #[test]
    fn a_repeated_local_time_uses_its_first_occurrence() {
        // London fell back at 02:00 BST on 25 October 2026: 01:30 happened twice.
        let resolved = resolve(London, at("2026-10-25", "01:30"));
        assert_eq!(resolved.to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }

    #[test]
    fn nine_local_is_nine_local_on_both_sides_of_a_change() {
        let before = resolve(New_York, at("2026-03-07", "09:00"));
        let after = resolve(New_York, at("2026-03-09", "09:00"));
        assert_eq!(before.to_rfc3339(), "2026-03-07T14:00:00+00:00");
        assert_eq!(after.to_rfc3339(), "2026-03-09T13:00:00+00:00");
    }

    #[test]
    fn quiet_hours_push_to_their_end() {
        let quiet = DailySpan::new(t("21:00"), t("08:00"));
        let late = resolve(London, at("2026-06-01", "22:15"));
        let moved = next_allowed(London, late, quiet);
        assert_eq!(local(London, moved), at("2026-06-02", "08:00"));
        let early = resolve(London, at("2026-06-01", "06:00"));
        assert_eq!(
            local(London, next_allowed(London, early, quiet)),
            at("2026-06-01", "08:00")
        );
        let fine = resolve(London, at("2026-06-01", "12:00"));
        assert_eq!(next_allowed(London, fine, quiet), fine);
    }

    #[test]
    fn quiet_hours_ending_inside_a_repeated_hour_end_after_the_instant() {
        // 00:00-01:30 quiet; at the second 01:15 (after falling back) the end is the second 01:30.
        let quiet = DailySpan::new(t("00:00"), t("01:30"));
        let second_quarter_past = "2026-10-25T01:15:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            local(London, second_quarter_past),
            at("2026-10-25", "01:15")
        );
        let moved = next_allowed(London, second_quarter_past, quiet);
        assert!(moved > second_quarter_past);
        assert_eq!(moved.to_rfc3339(), "2026-10-25T01:30:00+00:00");
    }
}
