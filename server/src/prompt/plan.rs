//! Care plans: which check-ins a patient is prompted for, and when. A clinic sets a default; a
//! patient may have an override. Pure data with validation; defaults from CLINICAL.md.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Weekday;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A care plan: a list of prompt rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarePlan {
    /// The rules, each with a unique id.
    #[schema(max_items = 20)]
    pub rules: Vec<PromptRule>,
}

/// When a rule prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Anchor {
    /// Every day, in the patient's check-in window.
    Daily,
    /// On some days after each session (day 1 is the local day after the session's local
    /// day), in the patient's check-in window.
    AfterSession {
        /// Days after the session, 1 to 60.
        #[schema(min_items = 1, max_items = 14)]
        days: Vec<u32>,
    },
    /// Within the hours before each scheduled session: sent `hours_before` the session (later
    /// if that falls in quiet hours), expiring when the session starts.
    BeforeSession {
        /// Hours before the session, 1 to 72.
        #[schema(minimum = 1, maximum = 72)]
        hours_before: u32,
    },
    /// Once a week on `weekday`, in the patient's check-in window; skipped when a session is
    /// within `skip_near_session_days` days (the before-session prompt covers those weeks), so
    /// it only runs in maintenance.
    Weekly {
        /// `mon` ... `sun`.
        #[schema(value_type = WeekdayName, example = "mon")]
        weekday: WeekdayName,
        /// 0 (never skipped) to 14.
        #[serde(default)]
        #[schema(minimum = 0, maximum = 14)]
        skip_near_session_days: u32,
    },
}

/// A weekday, as `mon` ... `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WeekdayName {
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

impl WeekdayName {
    /// As chrono's weekday.
    pub fn chrono(self) -> Weekday {
        match self {
            WeekdayName::Mon => Weekday::Mon,
            WeekdayName::Tue => Weekday::Tue,
            WeekdayName::Wed => Weekday::Wed,
            WeekdayName::Thu => Weekday::Thu,
            WeekdayName::Fri => Weekday::Fri,
            WeekdayName::Sat => Weekday::Sat,
            WeekdayName::Sun => Weekday::Sun,
        }
    }
}

/// One rule of a care plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptRule {
    /// A name for the rule, unique within the plan (letters, digits, `_`, `-`; up to 40).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,40}$", example = "daily_mood")]
    pub id: String,
    /// The instrument's catalogue key (`daily_mood`, `phq9`, `gad7`, ...).
    #[schema(value_type = crate::instrument::catalogue::InstrumentKey)]
    pub instrument: String,
    /// When it prompts.
    pub anchor: Anchor,
    /// Send at a random (but stable) minute of the check-in window instead of its start.
    #[serde(default)]
    pub random_offset: bool,
    /// Hours a prompt stays open (default: 12 for daily mood, 48 for PHQ-9 and GAD-7, 24
    /// otherwise); 1 to 168.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 168)]
    pub expires_after_hours: Option<u32>,
    /// Hours after sending before the one reminder (default 4; 0 for none); never inside quiet
    /// hours, never after the prompt expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 72)]
    pub remind_after_hours: Option<u32>,
}

/// Hours a prompt stays open, by instrument (CLINICAL.md).
pub fn default_expiry_hours(instrument: &str) -> u32 {
    match instrument {
        "daily_mood" => 12,
        "phq9" | "gad7" => 48,
        _ => 24,
    }
}

/// Hours before the reminder (CLINICAL.md).
pub const DEFAULT_REMIND_AFTER_HOURS: u32 = 4;

impl PromptRule {
    /// Hours the prompt stays open.
    pub fn expiry_hours(&self) -> u32 {
        self.expires_after_hours
            .unwrap_or_else(|| default_expiry_hours(&self.instrument))
    }

    /// Hours before the reminder, or none.
    pub fn reminder_hours(&self) -> Option<u32> {
        match self
            .remind_after_hours
            .unwrap_or(DEFAULT_REMIND_AFTER_HOURS)
        {
            0 => None,
            h => Some(h),
        }
    }
}

impl Default for CarePlan {
    /// The clinic default when a clinic has set none: daily mood every day; PHQ-9 in the 24 h
    /// before each session; daily mood on days 1, 3 and 7 after each session (it coincides with
    /// the daily prompt unless an override drops that); weekly PHQ-9 on Mondays in maintenance.
    fn default() -> Self {
        let rule = |id: &str, instrument: &str, anchor: Anchor| PromptRule {
            id: id.into(),
            instrument: instrument.into(),
            anchor,
            random_offset: false,
            expires_after_hours: None,
            remind_after_hours: None,
        };
        CarePlan {
            rules: vec![
                rule("daily_mood", "daily_mood", Anchor::Daily),
                rule(
                    "before_session",
                    "phq9",
                    Anchor::BeforeSession { hours_before: 24 },
                ),
                rule(
                    "after_session",
                    "daily_mood",
                    Anchor::AfterSession {
                        days: vec![1, 3, 7],
                    },
                ),
                rule(
                    "weekly_phq9",
                    "phq9",
                    Anchor::Weekly {
                        weekday: WeekdayName::Mon,
                        skip_near_session_days: 7,
                    },
                ),
            ],
        }
    }
}

/// The instruments that ask PHQ-9 item 9 (the safety question).
pub const ASKS_ITEM9: [&str; 1] = ["phq9"];

/// Fewest days between two PHQ-9s a plan may ask for: its recall period is two weeks, so more
/// often than weekly is refused (CLINICAL.md, part 2). Before-session prompts are the exception
/// the clinical reference names ("weekly or before each session").
pub const PHQ9_MIN_DAYS_APART: u32 = 7;

impl CarePlan {
    /// Whether any rule asks PHQ-9 item 9. A plan that never does is accepted, with a readiness
    /// warning: nothing would ever ask the safety question.
    pub fn asks_item9(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| ASKS_ITEM9.contains(&rule.instrument.as_str()))
    }

    /// Problems, keyed by field (`rules[0].instrument`); `known_instrument` says which keys the
    /// catalogue has.
    pub fn problems(&self, known_instrument: impl Fn(&str) -> bool) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.rules.len() > 20 {
            out.insert("rules".into(), "must hold at most 20 rules".into());
        }
        let mut ids = BTreeSet::new();
        let mut weekly_phq9 = 0;
        for (i, rule) in self.rules.iter().enumerate() {
            let field = |name: &str| format!("rules[{i}].{name}");
            let id_ok = !rule.id.is_empty()
                && rule.id.len() <= 40
                && rule
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !id_ok {
                out.insert(
                    field("id"),
                    "must be 1 to 40 letters, digits, `_` or `-`".into(),
                );
            } else if !ids.insert(rule.id.as_str()) {
                out.insert(field("id"), "is used by another rule".into());
            }
            if !known_instrument(&rule.instrument) {
                out.insert(
                    field("instrument"),
                    "is not in the catalogue (see GET /v1/instruments)".into(),
                );
            }
            if rule
                .expires_after_hours
                .is_some_and(|h| !(1..=168).contains(&h))
            {
                out.insert(field("expires_after_hours"), "must be 1 to 168".into());
            }
            if rule.remind_after_hours.is_some_and(|h| h > 72) {
                out.insert(field("remind_after_hours"), "must be 0 to 72".into());
            }
            if rule.instrument == "phq9" {
                phq9_more_often_than_weekly(rule, &mut weekly_phq9, field("anchor"), &mut out);
            }
            match &rule.anchor {
                Anchor::Daily => {}
                Anchor::AfterSession { days } => {
                    if days.is_empty()
                        || days.len() > 14
                        || days.iter().any(|d| !(1..=60).contains(d))
                    {
                        out.insert(
                            field("anchor.days"),
                            "must list 1 to 14 days, each 1 to 60".into(),
                        );
                    }
                }
                Anchor::BeforeSession { hours_before } => {
                    if !(1..=72).contains(hours_before) {
                        out.insert(field("anchor.hours_before"), "must be 1 to 72".into());
                    }
                }
                Anchor::Weekly {
                    skip_near_session_days,
                    ..
                } => {
                    if *skip_near_session_days > 14 {
                        out.insert(
                            field("anchor.skip_near_session_days"),
                            "must be 0 to 14".into(),
                        );
                    }
                }
            }
        }
        out
    }
}

/// A PHQ-9 asked more often than weekly is refused: daily, days after a session closer than
/// [`PHQ9_MIN_DAYS_APART`], or a second weekly rule.
fn phq9_more_often_than_weekly(
    rule: &PromptRule,
    weekly: &mut usize,
    field: String,
    out: &mut BTreeMap<String, String>,
) {
    let refuse = |out: &mut BTreeMap<String, String>, why: &str| {
        out.insert(
            field.clone(),
            format!(
                "asks the PHQ-9 more often than weekly ({why}); its recall period is two weeks: \
                 ask it weekly, before each session, or on days after a session at least \
                 {PHQ9_MIN_DAYS_APART} apart"
            ),
        );
    };
    match &rule.anchor {
        Anchor::Daily => refuse(out, "daily"),
        Anchor::AfterSession { days } => {
            let mut sorted = days.clone();
            sorted.sort_unstable();
            if sorted
                .windows(2)
                .any(|pair| pair[1] - pair[0] < PHQ9_MIN_DAYS_APART)
            {
                refuse(out, "days after a session closer than a week apart");
            }
        }
        Anchor::Weekly { .. } => {
            *weekly += 1;
            if *weekly > 1 {
                refuse(out, "a second weekly PHQ-9");
            }
        }
        Anchor::BeforeSession { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_plan_is_valid() {
        assert!(CarePlan::default().problems(|_| true).is_empty());
    }

    #[test]
    fn a_phq9_more_often_than_weekly_is_refused_and_a_plan_without_item_nine_is_noticed() {
        let plan: CarePlan = serde_json::from_value(json!({"rules": [
            {"id": "daily", "instrument": "phq9", "anchor": {"kind": "daily"}},
            {"id": "post", "instrument": "phq9", "anchor": {"kind": "after_session", "days": [1, 3]}},
            {"id": "post_ok", "instrument": "phq9", "anchor": {"kind": "after_session", "days": [14, 7]}},
            {"id": "mon", "instrument": "phq9", "anchor": {"kind": "weekly", "weekday": "mon"}},
            {"id": "thu", "instrument": "phq9", "anchor": {"kind": "weekly", "weekday": "thu"}},
            {"id": "pre", "instrument": "phq9", "anchor": {"kind": "before_session", "hours_before": 24}},
            {"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}}
        ]}))
        .unwrap();
        let problems = plan.problems(|_| true);
        let keys: Vec<&str> = problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["rules[0].anchor", "rules[1].anchor", "rules[4].anchor"]
        );
        assert!(problems["rules[0].anchor"].contains("two weeks"));
        assert!(plan.asks_item9());
        let mood_only: CarePlan = serde_json::from_value(json!({"rules": [
            {"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}}
        ]}))
        .unwrap();
        assert!(mood_only.problems(|_| true).is_empty(), "accepted");
        assert!(!mood_only.asks_item9(), "but noticed");
        assert!(CarePlan::default().asks_item9());
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan: CarePlan = serde_json::from_value(json!({"rules": [
            {"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}, "random_offset": true},
            {"id": "pre", "instrument": "phq9", "anchor": {"kind": "before_session", "hours_before": 24}},
            {"id": "post", "instrument": "gad7", "anchor": {"kind": "after_session", "days": [1, 3]}},
            {"id": "wk", "instrument": "gad7", "anchor": {"kind": "weekly", "weekday": "fri"}}
        ]}))
        .unwrap();
        let again: CarePlan = serde_json::from_value(serde_json::to_value(&plan).unwrap()).unwrap();
        assert_eq!(plan, again);
    }

    #[test]
    fn bad_rules_are_named_by_field() {
        let plan: CarePlan = serde_json::from_value(json!({"rules": [
            {"id": "a", "instrument": "nope", "anchor": {"kind": "daily"}, "expires_after_hours": 0},
            {"id": "a", "instrument": "phq9", "anchor": {"kind": "after_session", "days": [0]}},
            {"id": "b c", "instrument": "phq9", "anchor": {"kind": "before_session", "hours_before": 100}}
        ]}))
        .unwrap();
        let problems = plan.problems(|k| k != "nope");
        let keys: Vec<&str> = problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "rules[0].expires_after_hours",
                "rules[0].instrument",
                "rules[1].anchor.days",
                "rules[1].id",
                "rules[2].anchor.hours_before",
                "rules[2].id"
            ]
        );
    }
}
