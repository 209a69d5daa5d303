//! The planner: from a patient's care plan, zone, check-in window, quiet hours and sessions, the
//! prompts due in a span of time. Pure and deterministic, so regenerating after any change gives
//! the same prompts for what did not change, and planning a span in pieces gives the same prompts
//! as planning it whole.
//!
//! Each prompt has a *slot* naming what it asks for: `daily_mood|2026-03-08` (an instrument on a
//! local day: daily, after-session and weekly rules share these, so two rules asking for daily
//! mood on the same day make one prompt) or `phq9|before:<session id>`. A slot is planned once;
//! when two rules plan the same slot, the earlier time wins.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::local_time::{self, DailySpan};
use super::plan::{Anchor, CarePlan, PromptRule};

/// A treatment session as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Id.
    pub id: String,
    /// When it is (or was).
    pub at: DateTime<Utc>,
    /// Still scheduled (false: completed). Cancelled sessions are not given to the planner.
    pub scheduled: bool,
}

/// Everything the planner needs about one patient.
#[derive(Debug, Clone)]
pub struct Patient<'a> {
    /// The patient's id (seeds the stable random offsets).
    pub id: &'a str,
    /// The patient's zone.
    pub tz: Tz,
    /// The preferred check-in window.
    pub window: DailySpan,
    /// Nothing is sent inside these.
    pub quiet: DailySpan,
    /// The care plan in force.
    pub plan: &'a CarePlan,
    /// Scheduled and completed sessions.
    pub sessions: &'a [Session],
}

/// A planned prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// What it asks for (see the module documentation).
    pub slot: String,
    /// The rule that planned it.
    pub rule: String,
    /// The instrument's catalogue key.
    pub instrument: String,
    /// The session a before-session prompt belongs to.
    pub session_id: Option<String>,
    /// The local time the rule aimed at.
    pub local_time: NaiveDateTime,
    /// When it is sent: the aimed-at time, or the first valid instant after it when that local
    /// time does not exist, or the end of the quiet hours it falls in.
    pub due_at: DateTime<Utc>,
    /// The one reminder, if it falls before the expiry and outside quiet hours.
    pub remind_at: Option<DateTime<Utc>>,
    /// When it stops being answerable (and counts as missed).
    pub expires_at: DateTime<Utc>,
}

/// The prompts due in `[from, to)`, in time order.
pub fn plan(patient: &Patient<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Planned> {
    if to <= from {
        return Vec::new();
    }
    let first_day = local_time::local_date(patient.tz, from) - TimeDelta::days(2);
    let last_day = local_time::local_date(patient.tz, to) + TimeDelta::days(1);
    let mut slots: BTreeMap<String, Planned> = BTreeMap::new();
    let mut offer = |p: Planned| match slots.get(&p.slot) {
        Some(existing) if existing.due_at <= p.due_at => {}
        _ => {
            slots.insert(p.slot.clone(), p);
        }
    };
    let in_days = |d: NaiveDate| d >= first_day && d <= last_day;
    for rule in &patient.plan.rules {
        match &rule.anchor {
            Anchor::Daily => {
                for day in first_day.iter_days().take_while(|d| *d <= last_day) {
                    offer(in_window(patient, rule, day));
                }
            }
            Anchor::AfterSession { days } => {
                for session in patient.sessions {
                    let session_day = local_time::local_date(patient.tz, session.at);
                    for after in days {
                        let day = session_day + TimeDelta::days(i64::from(*after));
                        if in_days(day) {
                            offer(in_window(patient, rule, day));
                        }
                    }
                }
            }
            Anchor::Weekly {
                weekday,
                skip_near_session_days,
            } => {
                let near = i64::from(*skip_near_session_days);
                for day in first_day.iter_days().take_while(|d| *d <= last_day) {
                    if day.weekday() != weekday.chrono() {
                        continue;
                    }
                    let session_near = near > 0
                        && patient.sessions.iter().any(|s| {
                            let session_day = local_time::local_date(patient.tz, s.at);
                            (session_day - day).num_days().abs() <= near
                        });
                    if !session_near {
                        offer(in_window(patient, rule, day));
                    }
                }
            }
            Anchor::BeforeSession { hours_before } => {
                for session in patient.sessions.iter().filter(|s| s.scheduled) {
                    if let Some(p) = before_session(patient, rule, session, *hours_before) {
                        offer(p);
                    }
                }
            }
        }
    }
    let mut out: Vec<Planned> = slots
        .into_values()
        .filter(|p| p.due_at >= from && p.due_at < to)
        .collect();
    out.sort_by(|a, b| (a.due_at, &a.slot).cmp(&(b.due_at, &b.slot)));
    out
}

/// The prompt `rule` plans on local `day`, in the patient's check-in window.
fn in_window(patient: &Patient<'_>, rule: &PromptRule, day: NaiveDate) -> Planned {
    let slot = format!("{}|{day}", rule.instrument);
    let offset = if rule.random_offset && patient.window.minutes() > 0 {
        stable_hash(patient.id, &slot) % u64::from(patient.window.minutes())
    } else {
        0
    };
    let aimed = day.and_time(patient.window.start.naive()) + TimeDelta::minutes(offset as i64);
    let due = local_time::next_allowed(
        patient.tz,
        local_time::resolve(patient.tz, aimed),
        patient.quiet,
    );
    let expires = due + TimeDelta::hours(i64::from(rule.expiry_hours()));
    Planned {
        slot,
        rule: rule.id.clone(),
        instrument: rule.instrument.clone(),
        session_id: None,
        local_time: aimed,
        due_at: due,
        remind_at: reminder(patient, rule, due, expires),
        expires_at: expires,
    }
}

/// The prompt before `session`, unless quiet hours leave no time before it starts.
fn before_session(
    patient: &Patient<'_>,
    rule: &PromptRule,
    session: &Session,
    hours_before: u32,
) -> Option<Planned> {
    let aimed = session.at - TimeDelta::hours(i64::from(hours_before));
    let due = local_time::next_allowed(patient.tz, aimed, patient.quiet);
    if due >= session.at {
        return None;
    }
    let expires = (due + TimeDelta::hours(i64::from(rule.expiry_hours()))).min(session.at);
    Some(Planned {
        slot: format!("{}|before:{}", rule.instrument, session.id),
        rule: rule.id.clone(),
        instrument: rule.instrument.clone(),
        session_id: Some(session.id.clone()),
        local_time: local_time::local(patient.tz, aimed),
        due_at: due,
        remind_at: reminder(patient, rule, due, expires),
        expires_at: expires,
    })
}

/// The reminder `rule` asks for after `due`, moved out of quiet hours, if still before expiry.
fn reminder(
    patient: &Patient<'_>,
    rule: &PromptRule,
    due: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let hours = rule.reminder_hours()?;
    let at = local_time::next_allowed(
        patient.tz,
        due + TimeDelta::hours(i64::from(hours)),
        patient.quiet,
    );
    (at < expires).then_some(at)
}

/// FNV-1a over the patient and slot: the same minute every time the slot is planned (so
/// regenerating does not move a prompt), spread across patients.
fn stable_hash(patient: &str, slot: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in patient.bytes().chain([0]).chain(slot.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::local_time::ClockTime;
    use chrono::{LocalResult, TimeZone};
    use proptest::prelude::*;

    fn t(s: &str) -> ClockTime {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn span(a: &str, b: &str) -> DailySpan {
        DailySpan::new(t(a), t(b))
    }

    fn daily_only() -> CarePlan {
        let mut plan = CarePlan::default();
        plan.rules.retain(|r| r.anchor == Anchor::Daily);
        plan
    }

    #[test]
    fn a_daily_prompt_stays_at_nine_local_across_spring_forward() {
        let plan = daily_only();
        let patient = Patient {
            id: "p",
            tz: chrono_tz::America::New_York,
            window: span("09:00", "10:00"),
            quiet: span("21:00", "08:00"),
            plan: &plan,
            sessions: &[],
        };
        let prompts = plan_all(&patient, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z");
        let due: Vec<String> = prompts.iter().map(|p| p.due_at.to_rfc3339()).collect();
        // 09:00 EST is 14:00 UTC; 09:00 EDT is 13:00 UTC.
        assert_eq!(
            due,
            [
                "2026-03-07T14:00:00+00:00",
                "2026-03-08T13:00:00+00:00",
                "2026-03-09T13:00:00+00:00"
            ]
        );
        assert!(
            prompts
                .iter()
                .all(|p| p.expires_at - p.due_at == TimeDelta::hours(12))
        );
        assert!(
            prompts
                .iter()
                .all(|p| p.remind_at == Some(p.due_at + TimeDelta::hours(4)))
        );
    }

    fn plan_all(patient: &Patient<'_>, from: &str, to: &str) -> Vec<Planned> {
        plan(patient, utc(from), utc(to))
    }

    #[test]
    fn a_window_start_inside_quiet_hours_moves_to_their_end() {
        let plan = daily_only();
        let patient = Patient {
            id: "p",
            tz: chrono_tz::Europe::London,
            window: span("07:00", "10:00"),
            quiet: span("21:00", "08:00"),
            plan: &plan,
            sessions: &[],
        };
        let prompts = plan_all(&patient, "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z");
        assert_eq!(prompts.len(), 1);
        assert_eq!(
            local_time::local(patient.tz, prompts[0].due_at).time(),
            t("08:00").naive()
        );
    }

    #[test]
    fn the_before_session_prompt_expires_when_the_session_starts() {
        let mut plan = CarePlan::default();
        plan.rules.retain(|r| r.id == "before_session");
        let sessions = [Session {
            id: "s1".into(),
            at: utc("2026-06-03T10:00:00Z"),
            scheduled: true,
        }];
        let patient = Patient {
            id: "p",
            tz: chrono_tz::UTC,
            window: span("09:00", "10:00"),
            quiet: span("21:00", "08:00"),
            plan: &plan,
            sessions: &sessions,
        };
        let prompts = plan_all(&patient, "2026-06-01T00:00:00Z", "2026-06-05T00:00:00Z");
        assert_eq!(prompts.len(), 1);
        let p = &prompts[0];
        assert_eq!(p.slot, "phq9|before:s1");
        assert_eq!(p.due_at, utc("2026-06-02T10:00:00Z"));
        assert_eq!(p.expires_at, utc("2026-06-03T10:00:00Z"));
        assert_eq!(p.remind_at, Some(utc("2026-06-02T14:00:00Z")));
    }

    #[test]
    fn daily_and_after_session_rules_share_one_prompt_a_day() {
        let plan = CarePlan::default();
        let sessions = [Session {
            id: "s1".into(),
            at: utc("2026-06-01T15:00:00Z"),
            scheduled: false,
        }];
        let patient = Patient {
            id: "p",
            tz: chrono_tz::UTC,
            window: span("09:00", "10:00"),
            quiet: span("21:00", "08:00"),
            plan: &plan,
            sessions: &sessions,
        };
        let prompts = plan_all(&patient, "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z");
        let slots: Vec<&str> = prompts.iter().map(|p| p.slot.as_str()).collect();
        assert_eq!(slots, ["daily_mood|2026-06-02"]);
    }

    #[test]
    fn weekly_prompts_skip_weeks_with_a_session_nearby() {
        let mut plan = CarePlan::default();
        plan.rules.retain(|r| r.id == "weekly_phq9");
        let sessions = [Session {
            id: "s1".into(),
            at: utc("2026-06-04T15:00:00Z"),
            scheduled: true,
        }];
        let patient = Patient {
            id: "p",
            tz: chrono_tz::UTC,
            window: span("09:00", "10:00"),
            quiet: span("21:00", "08:00"),
            plan: &plan,
            sessions: &sessions,
        };
        // Mondays 1, 8, 15 and 22 June; the session on the 4th is within 7 days of the 1st and
        // the 8th.
        let prompts = plan_all(&patient, "2026-06-01T00:00:00Z", "2026-06-23T00:00:00Z");
        let slots: Vec<&str> = prompts.iter().map(|p| p.slot.as_str()).collect();
        assert_eq!(slots, ["phq9|2026-06-15", "phq9|2026-06-22"]);
    }

    const ZONES: [Tz; 7] = [
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::Santiago,
        chrono_tz::UTC,
    ];

    /// Starts near 2026's transitions in the zones above (March-April, September-November).
    fn around_transitions() -> impl Strategy<Value = DateTime<Utc>> {
        let starts = [
            "2026-03-05T00:00:00Z",
            "2026-03-26T00:00:00Z",
            "2026-04-02T00:00:00Z",
            "2026-09-24T00:00:00Z",
            "2026-10-01T00:00:00Z",
            "2026-10-22T00:00:00Z",
            "2026-10-29T00:00:00Z",
        ];
        (0..starts.len(), 0i64..(6 * 24 * 60))
            .prop_map(move |(i, minutes)| utc(starts[i]) + TimeDelta::minutes(minutes))
    }

    fn clock() -> impl Strategy<Value = ClockTime> {
        (0u32..24, prop_oneof![Just(0u32), Just(30u32), 0u32..60])
            .prop_map(|(h, m)| ClockTime::new(h, m).unwrap())
    }

    fn plan_strategy() -> impl Strategy<Value = CarePlan> {
        (any::<[bool; 4]>(), any::<[bool; 4]>()).prop_map(|(keep, random)| {
            let mut plan = CarePlan::default();
            let mut i = 0;
            plan.rules.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            for (rule, random) in plan.rules.iter_mut().zip(random) {
                rule.random_offset = random;
            }
            plan
        })
    }

    prop_compose! {
        fn case()(
            zone in 0..ZONES.len(),
            from in around_transitions(),
            window_start in clock(),
            window_len in 15u32..300,
            quiet_start in clock(),
            quiet_end in clock(),
            plan in plan_strategy(),
            session_offsets in proptest::collection::vec((0i64..(10 * 24 * 60), any::<bool>()), 0..4),
        ) -> (Tz, DateTime<Utc>, DailySpan, DailySpan, CarePlan, Vec<Session>) {
            let end = (window_start.minutes() + window_len) % 1440;
            let window = DailySpan::new(window_start, ClockTime::new(end / 60, end % 60).unwrap());
            let sessions = session_offsets
                .iter()
                .enumerate()
                .map(|(i, (m, scheduled))| Session {
                    id: format!("s{i}"),
                    at: from - TimeDelta::days(3) + TimeDelta::minutes(*m),
                    scheduled: *scheduled,
                })
                .collect();
            (ZONES[zone], from, window, DailySpan::new(quiet_start, quiet_end), plan, sessions)
        }
    }

    #[test]
    fn a_day_whose_only_free_minutes_fall_in_a_daylight_saving_gap_is_never_prompted_in_quiet_hours()
     {
        // Chatham springs forward from 02:45 to 03:45 on 2026-09-27; quiet hours from 03:00 to
        // 02:45 leave only 02:45-03:00 free, which that day does not exist.
        let tz = chrono_tz::Pacific::Chatham;
        let quiet = span("03:00", "02:45");
        let plan = daily_only();
        let patient = Patient {
            id: "patient-dst",
            tz,
            window: span("00:00", "00:15"),
            quiet,
            plan: &plan,
            sessions: &[],
        };
        for p in plan_all(&patient, "2026-09-24T00:00:00Z", "2026-09-28T00:00:00Z") {
            assert!(
                !local_time::is_quiet(tz, p.due_at, quiet),
                "{} due in quiet hours at {}",
                p.slot,
                p.due_at
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn prompts_are_never_in_quiet_hours_never_duplicated_and_land_on_time(
            (tz, from, window, quiet, plan, sessions) in case()
        ) {
            let patient = Patient { id: "patient-1", tz, window, quiet, plan: &plan, sessions: &sessions };
            let to = from + TimeDelta::days(4);
            let prompts = super::plan(&patient, from, to);
            let mut slots = std::collections::BTreeSet::new();
            for p in &prompts {
                prop_assert!(slots.insert(p.slot.clone()), "duplicate slot {}", p.slot);
                prop_assert!(p.due_at >= from && p.due_at < to);
                prop_assert!(!local_time::is_quiet(tz, p.due_at, quiet), "{} due in quiet hours", p.slot);
                if let Some(r) = p.remind_at {
                    prop_assert!(!local_time::is_quiet(tz, r, quiet), "{} reminded in quiet hours", p.slot);
                    prop_assert!(r > p.due_at && r < p.expires_at);
                }
                prop_assert!(p.expires_at > p.due_at);
                prop_assert!(p.due_at >= local_time::resolve(tz, p.local_time) || p.session_id.is_some());
                // Where the aimed-at local time exists once and is not quiet, the prompt is at
                // exactly that local time.
                if p.session_id.is_none()
                    && !quiet.contains(p.local_time.time())
                    && matches!(tz.from_local_datetime(&p.local_time), LocalResult::Single(_))
                {
                    prop_assert_eq!(local_time::local(tz, p.due_at), p.local_time);
                }
                // Prompts in the window aim inside it.
                if p.session_id.is_none() {
                    let minute = ClockTime::of(p.local_time.time());
                    prop_assert!(window.contains(minute.naive()) || window.minutes() == 0);
                }
            }
        }

        #[test]
        fn planning_in_pieces_gives_the_same_prompts_as_planning_whole(
            (tz, from, window, quiet, plan, sessions) in case(),
            cut_minutes in 0i64..(4 * 24 * 60),
        ) {
            let patient = Patient { id: "patient-2", tz, window, quiet, plan: &plan, sessions: &sessions };
            let to = from + TimeDelta::days(4);
            let cut = from + TimeDelta::minutes(cut_minutes);
            let whole = super::plan(&patient, from, to);
            let mut pieces = super::plan(&patient, from, cut);
            pieces.extend(super::plan(&patient, cut, to));
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn moving_a_session_moves_only_its_own_prompt(
            (tz, from, window, quiet, plan, sessions) in case(),
            shift_hours in -72i64..72,
        ) {
            prop_assume!(!sessions.is_empty());
            let patient = Patient { id: "patient-3", tz, window, quiet, plan: &plan, sessions: &sessions };
            let to = from + TimeDelta::days(4);
            let before = super::plan(&patient, from, to);
            let mut moved = sessions.clone();
            moved[0].at += TimeDelta::hours(shift_hours);
            let after_patient = Patient { sessions: &moved, ..patient.clone() };
            let after = super::plan(&after_patient, from, to);
            // Other sessions' prompts never change; neither do daily prompts when no rule
            // depends on session dates.
            let moved_id = moved[0].id.clone();
            let dates_depend = plan.rules.iter().any(|r| {
                matches!(r.anchor, Anchor::AfterSession { .. } | Anchor::Weekly { .. })
            });
            let unaffected = |ps: &[Planned]| {
                ps.iter()
                    .filter(|p| match &p.session_id {
                        Some(id) => *id != moved_id,
                        None => !dates_depend,
                    })
                    .cloned()
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(unaffected(&before), unaffected(&after));
            let own: Vec<_> = after.iter().filter(|p| p.session_id.as_deref() == Some(moved_id.as_str())).collect();
            for p in own {
                prop_assert!(p.expires_at <= moved[0].at);
            }
            let mut slots = std::collections::BTreeSet::new();
            for p in &after {
                prop_assert!(slots.insert(p.slot.clone()));
            }
        }
    }
}
