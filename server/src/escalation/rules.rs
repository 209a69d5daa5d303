//! The alert rules of CLINICAL.md as pure functions over a patient's recent history. Every firing
//! records its inputs and a one-line explanation, so an alert says why it was raised ("PHQ-9 17,
//! baseline 9, +8 >= 5"). Thresholds are per clinic, validated when set; the defaults are the
//! clinical reference's. Nothing here reads a clock: `today` and the data are passed in.
//!
//! Explanations carry health information: they are for the authenticated care-team API only,
//! never for logs or push payloads.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How urgent an alert is; it sets the acknowledgement deadline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = AlertSeverity)]
pub enum Severity {
    /// Missing data.
    Low,
    /// A trend worth a look.
    Medium,
    /// A sharp decline or a dangerous reading.
    High,
    /// A safety signal (PHQ-9 item 9).
    Urgent,
}

/// The rule that raised an alert.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = AlertRule)]
pub enum Rule {
    /// PHQ-9 item 9 answered 1 or more.
    SafetyItem9,
    /// PHQ-9 total at least baseline + 5 and at least 10.
    Phq9Deterioration,
    /// PHQ-9 total at least 20.
    Phq9Severe,
    /// GAD-7 total at least baseline + 4 and at least 10.
    Gad7Deterioration,
    /// One-sided CUSUM of daily mood below the patient's own baseline.
    MoodCusum,
    /// Daily mood at or below 3 on consecutive days.
    MoodFloor,
    /// Today's mood at least 3 below the median of the previous 7 days.
    MoodDrop,
    /// Consecutive expired prompts.
    MissedCheckIns,
    /// Home blood pressure in the hypertensive-crisis range.
    BloodPressure,
    /// Still feeling detached more than 24 h after a session.
    LingeringDissociation,
    /// The patient pressed "Get help now" (`POST /v1/me/help-requests`).
    PatientHelpRequest,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    /// Which rule.
    pub rule: Rule,
    /// How urgent.
    pub severity: Severity,
    /// Why, in one line.
    pub explanation: String,
    /// The numbers the decision used.
    pub inputs: Value,
}

/// Per-clinic thresholds (defaults from CLINICAL.md). Fields left out keep their default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// PHQ-9 points above baseline for reliable deterioration.
    #[schema(minimum = 1, maximum = 27)]
    pub phq9_rise: i64,
    /// PHQ-9 total below which a rise is not escalated.
    #[schema(minimum = 0, maximum = 27)]
    pub phq9_floor: i64,
    /// PHQ-9 severe total.
    #[schema(minimum = 1, maximum = 27)]
    pub phq9_severe: i64,
    /// GAD-7 points above baseline.
    #[schema(minimum = 1, maximum = 21)]
    pub gad7_rise: i64,
    /// GAD-7 total below which a rise is not escalated.
    #[schema(minimum = 0, maximum = 21)]
    pub gad7_floor: i64,
    /// Mood at or below this is the floor.
    #[schema(minimum = 0, maximum = 10)]
    pub mood_floor: f64,
    /// Consecutive days at the floor.
    #[schema(minimum = 1, maximum = 14)]
    pub mood_floor_days: usize,
    /// Points below the 7-day median for a drop.
    #[schema(exclusive_minimum = 0, maximum = 10)]
    pub mood_drop: f64,
    /// CUSUM reference value, in robust SDs.
    #[schema(exclusive_minimum = 0, maximum = 3)]
    pub cusum_k: f64,
    /// CUSUM decision interval, in robust SDs.
    #[schema(exclusive_minimum = 0, maximum = 20)]
    pub cusum_h: f64,
    /// Smallest robust SD used.
    #[schema(exclusive_minimum = 0, maximum = 5)]
    pub cusum_sd_floor: f64,
    /// Consecutive expired prompts.
    #[schema(minimum = 1, maximum = 30)]
    pub missed_prompts: u32,
    /// Systolic crisis threshold, mmHg.
    #[schema(minimum = 120, maximum = 260)]
    pub systolic: i64,
    /// Diastolic crisis threshold, mmHg.
    #[schema(minimum = 70, maximum = 160)]
    pub diastolic: i64,
    /// Hours after a session past which dissociation is lingering.
    #[schema(minimum = 1, maximum = 336)]
    pub dissociation_hours: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            phq9_rise: 5,
            phq9_floor: 10,
            phq9_severe: 20,
            gad7_rise: 4,
            gad7_floor: 10,
            mood_floor: 3.0,
            mood_floor_days: 2,
            mood_drop: 3.0,
            cusum_k: 0.5,
            cusum_h: 4.0,
            cusum_sd_floor: 0.75,
            missed_prompts: 3,
            systolic: 180,
            diastolic: 110,
            dissociation_hours: 24,
        }
    }
}

impl Thresholds {
    /// Problems with a clinic's thresholds, keyed by field.
    pub fn problems(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut check = |ok: bool, field: &str, rule: &str| {
            if !ok {
                out.insert(field.to_owned(), rule.to_owned());
            }
        };
        check(
            (1..=27).contains(&self.phq9_rise),
            "phq9_rise",
            "must be 1 to 27",
        );
        check(
            (0..=27).contains(&self.phq9_floor),
            "phq9_floor",
            "must be 0 to 27",
        );
        check(
            (1..=27).contains(&self.phq9_severe),
            "phq9_severe",
            "must be 1 to 27",
        );
        check(
            (1..=21).contains(&self.gad7_rise),
            "gad7_rise",
            "must be 1 to 21",
        );
        check(
            (0..=21).contains(&self.gad7_floor),
            "gad7_floor",
            "must be 0 to 21",
        );
        check(
            (0.0..=10.0).contains(&self.mood_floor),
            "mood_floor",
            "must be 0 to 10",
        );
        check(
            (1..=14).contains(&self.mood_floor_days),
            "mood_floor_days",
            "must be 1 to 14",
        );
        check(
            self.mood_drop > 0.0 && self.mood_drop <= 10.0,
            "mood_drop",
            "must be above 0, at most 10",
        );
        check(
            self.cusum_k > 0.0 && self.cusum_k <= 3.0,
            "cusum_k",
            "must be above 0, at most 3",
        );
        check(
            self.cusum_h > 0.0 && self.cusum_h <= 20.0,
            "cusum_h",
            "must be above 0, at most 20",
        );
        check(
            self.cusum_sd_floor > 0.0 && self.cusum_sd_floor <= 5.0,
            "cusum_sd_floor",
            "must be above 0, at most 5",
        );
        check(
            (1..=30).contains(&self.missed_prompts),
            "missed_prompts",
            "must be 1 to 30",
        );
        check(
            (120..=260).contains(&self.systolic),
            "systolic",
            "must be 120 to 260",
        );
        check(
            (70..=160).contains(&self.diastolic),
            "diastolic",
            "must be 70 to 160",
        );
        check(
            (1..=336).contains(&self.dissociation_hours),
            "dissociation_hours",
            "must be 1 to 336",
        );
        out
    }
}

/// A scored questionnaire in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredAnswer {
    /// Total.
    pub total: i64,
    /// When completed.
    pub completed_at: DateTime<Utc>,
}

/// What the new check-in says, for the rules that look at one submission.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewCheckIn {
    /// Catalogue key.
    pub instrument: String,
    /// When completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Total, if scored.
    pub total: Option<i64>,
    /// PHQ-9 item 9.
    pub item9: Option<i64>,
    /// Home blood pressure.
    pub blood_pressure: Option<(i64, i64)>,
    /// "Still feel detached".
    pub still_detached: Option<bool>,
    /// Completed long before it arrived (see `check_in::timing`): the medium and low rules
    /// (trends, lingering dissociation) leave it out; high and urgent ones never do.
    pub late: bool,
}

/// The patient's recent history (excluding the new check-in).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// Earlier PHQ-9 totals, any order.
    pub phq9: Vec<ScoredAnswer>,
    /// Earlier GAD-7 totals, any order.
    pub gad7: Vec<ScoredAnswer>,
    /// Daily mood means per local day, including today's after the new check-in.
    pub daily_mood: Vec<(NaiveDate, f64)>,
    /// When the most recent session took place.
    pub last_session_at: Option<DateTime<Utc>>,
    /// Baselines the clinic set for this patient.
    pub clinic_baseline_phq9: Option<i64>,
    /// As above, GAD-7.
    pub clinic_baseline_gad7: Option<i64>,
}

/// Baseline (CLINICAL.md): the clinic's, else the lowest score in the 90 days before `at`, else
/// the first score. None when there is no earlier score.
pub fn baseline(clinic: Option<i64>, earlier: &[ScoredAnswer], at: DateTime<Utc>) -> Option<i64> {
    if clinic.is_some() {
        return clinic;
    }
    let before: Vec<&ScoredAnswer> = earlier.iter().filter(|s| s.completed_at < at).collect();
    before
        .iter()
        .filter(|s| s.completed_at >= at - TimeDelta::days(90))
        .map(|s| s.total)
        .min()
        .or_else(|| {
            before
                .iter()
                .min_by_key(|s| s.completed_at)
                .map(|s| s.total)
        })
}

/// What the patient's own request for help raises: urgent, on the same path as a safety answer.
/// The explanation is fixed: the patient's note is not part of it.
pub fn help_request() -> Firing {
    Firing {
        rule: Rule::PatientHelpRequest,
        severity: Severity::Urgent,
        explanation: "The patient asked for help now".to_owned(),
        inputs: json!({}),
    }
}

/// The rules that look at a new check-in and the history around it.
pub fn evaluate(
    new: &NewCheckIn,
    history: &History,
    thresholds: &Thresholds,
    today: NaiveDate,
) -> Vec<Firing> {
    let mut out = Vec::new();
    let at = new.completed_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
    if let Some(item9) = new.item9.filter(|v| *v >= 1) {
        out.push(Firing {
            rule: Rule::SafetyItem9,
            severity: Severity::Urgent,
            explanation: format!("PHQ-9 item 9 answered {item9} of 3"),
            inputs: json!({"item9": item9}),
        });
    }
    match (new.instrument.as_str(), new.total) {
        ("phq9", Some(total)) => {
            if let Some(base) = baseline(history.clinic_baseline_phq9, &history.phq9, at)
                && total >= base + thresholds.phq9_rise
                && total >= thresholds.phq9_floor
            {
                out.push(Firing {
                    rule: Rule::Phq9Deterioration,
                    severity: Severity::High,
                    explanation: format!("PHQ-9 {total}, baseline {base}, +{} >= {}", total - base, thresholds.phq9_rise),
                    inputs: json!({"total": total, "baseline": base, "rise": thresholds.phq9_rise, "floor": thresholds.phq9_floor}),
                });
            }
            if total >= thresholds.phq9_severe {
                out.push(Firing {
                    rule: Rule::Phq9Severe,
                    severity: Severity::High,
                    explanation: format!("PHQ-9 {total} >= {}", thresholds.phq9_severe),
                    inputs: json!({"total": total, "severe": thresholds.phq9_severe}),
                });
            }
        }
        ("gad7", Some(total)) => {
            if let Some(base) = baseline(history.clinic_baseline_gad7, &history.gad7, at)
                && total >= base + thresholds.gad7_rise
                && total >= thresholds.gad7_floor
            {
                out.push(Firing {
                    rule: Rule::Gad7Deterioration,
                    severity: Severity::Medium,
                    explanation: format!("GAD-7 {total}, baseline {base}, +{} >= {}", total - base, thresholds.gad7_rise),
                    inputs: json!({"total": total, "baseline": base, "rise": thresholds.gad7_rise, "floor": thresholds.gad7_floor}),
                });
            }
        }
        _ => {}
    }
    if let Some((systolic, diastolic)) = new.blood_pressure
        && (systolic >= thresholds.systolic || diastolic >= thresholds.diastolic)
    {
        out.push(Firing {
            rule: Rule::BloodPressure,
            severity: Severity::High,
            explanation: format!(
                "home blood pressure {systolic}/{diastolic} (threshold {}/{})",
                thresholds.systolic, thresholds.diastolic
            ),
            inputs: json!({"systolic": systolic, "diastolic": diastolic}),
        });
    }
    if new.still_detached == Some(true)
        && let Some(session) = history.last_session_at
        && at - session > TimeDelta::hours(thresholds.dissociation_hours)
    {
        let hours = (at - session).num_hours();
        out.push(Firing {
            rule: Rule::LingeringDissociation,
            severity: Severity::Medium,
            explanation: format!(
                "still feels detached {hours} h after the last session (> {} h)",
                thresholds.dissociation_hours
            ),
            inputs: json!({"hours_since_session": hours}),
        });
    }
    if new.instrument == "daily_mood" {
        out.extend(mood_rules(&history.daily_mood, thresholds, today));
    }
    // Every high or urgent signal alerts whatever its timestamp (CLINICAL.md, part 2): a phone
    // whose clock is far behind does not silence a dangerous blood pressure. Only the trend
    // rules (medium and low) leave late data out.
    if new.late {
        out.retain(|firing| firing.severity >= Severity::High);
    }
    out
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Mood floor, drop against the 7-day median, and the CUSUM, over daily means ending `today`.
pub fn mood_rules(
    days: &[(NaiveDate, f64)],
    thresholds: &Thresholds,
    today: NaiveDate,
) -> Vec<Firing> {
    let mut out = Vec::new();
    let by_day: BTreeMap<NaiveDate, f64> = days.iter().copied().collect();
    let Some(&today_mean) = by_day.get(&today) else {
        return out;
    };
    // Floor: at or below the floor on each of the last N consecutive days.
    let floor_days: Vec<f64> = (0..thresholds.mood_floor_days)
        .filter_map(|back| by_day.get(&(today - TimeDelta::days(back as i64))).copied())
        .collect();
    if floor_days.len() == thresholds.mood_floor_days
        && floor_days.iter().all(|m| *m <= thresholds.mood_floor)
    {
        out.push(Firing {
            rule: Rule::MoodFloor,
            severity: Severity::High,
            explanation: format!(
                "mood at or below {} on {} consecutive days",
                thresholds.mood_floor, thresholds.mood_floor_days
            ),
            inputs: json!({"daily_means": floor_days}),
        });
    }
    // Drop: today at least `mood_drop` below the median of the 7 days before.
    let mut previous: Vec<f64> = (1..=7)
        .filter_map(|back| by_day.get(&(today - TimeDelta::days(back))).copied())
        .collect();
    if previous.len() >= 3
        && let Some(med) = median(&mut previous)
        && today_mean <= med - thresholds.mood_drop
    {
        out.push(Firing {
            rule: Rule::MoodDrop,
            severity: Severity::Medium,
            explanation: format!(
                "mood {today_mean:.1} today, 7-day median {med:.1} (drop >= {})",
                thresholds.mood_drop
            ),
            inputs: json!({"today": today_mean, "median_7d": med}),
        });
    }
    // CUSUM: baseline from days 8 to 21 before today, monitoring the last 7 days.
    let mut reference: Vec<f64> = (8..=21)
        .filter_map(|back| by_day.get(&(today - TimeDelta::days(back))).copied())
        .collect();
    if reference.len() >= 7
        && let Some(centre) = median(&mut reference)
    {
        let mut deviations: Vec<f64> = reference.iter().map(|m| (m - centre).abs()).collect();
        let mad = median(&mut deviations).unwrap_or(0.0);
        let sd = (1.4826 * mad).max(thresholds.cusum_sd_floor);
        let (k, h) = (thresholds.cusum_k * sd, thresholds.cusum_h * sd);
        let mut sum: f64 = 0.0;
        for back in (0..7).rev() {
            if let Some(mean) = by_day.get(&(today - TimeDelta::days(back))) {
                sum = (sum + (centre - mean) - k).max(0.0);
            }
        }
        if sum > h {
            out.push(Firing {
                rule: Rule::MoodCusum,
                severity: Severity::Medium,
                explanation: format!(
                    "mood CUSUM {sum:.1} > {h:.1} below baseline {centre:.1} (SD {sd:.2})"
                ),
                inputs: json!({"cusum": sum, "h": h, "k": k, "baseline": centre, "sd": sd}),
            });
        }
    }
    out
}

/// The missed-check-in rule, run when prompts expire.
pub fn missed_check_ins(consecutive_expired: u32, thresholds: &Thresholds) -> Option<Firing> {
    (consecutive_expired >= thresholds.missed_prompts).then(|| Firing {
        rule: Rule::MissedCheckIns,
        severity: Severity::Low,
        explanation: format!("{consecutive_expired} check-ins in a row expired unanswered"),
        inputs: json!({"consecutive_expired": consecutive_expired}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 9, 0, 0).unwrap()
    }

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, day).unwrap()
    }

    fn rules(firings: &[Firing]) -> Vec<Rule> {
        firings.iter().map(|f| f.rule).collect()
    }

    fn phq9(total: i64, item9: i64, day: u32) -> NewCheckIn {
        NewCheckIn {
            instrument: "phq9".into(),
            completed_at: Some(at(day)),
            total: Some(total),
            item9: Some(item9),
            ..Default::default()
        }
    }

    #[test]
    fn late_data_is_left_out_of_trend_rules_but_never_out_of_high_and_urgent_ones() {
        let t = Thresholds::default();
        let late_item9 = NewCheckIn {
            late: true,
            ..phq9(22, 3, 10)
        };
        let history = History {
            phq9: vec![ScoredAnswer {
                total: 5,
                completed_at: at(1),
            }],
            ..History::default()
        };
        let fired = rules(&evaluate(&late_item9, &history, &t, date(10)));
        assert_eq!(
            fired,
            [Rule::SafetyItem9, Rule::Phq9Deterioration, Rule::Phq9Severe]
        );
        // A phone 40 days behind: the blood pressure and the mood floor (high) still alert;
        // the drop against the week's median (medium) and lingering dissociation (medium) do
        // not.
        let late_mood = NewCheckIn {
            instrument: "daily_mood".into(),
            completed_at: Some(at(10)),
            blood_pressure: Some((220, 130)),
            still_detached: Some(true),
            late: true,
            ..Default::default()
        };
        let mut week: Vec<(NaiveDate, f64)> = (2..=8).map(|d| (date(d), 8.0)).collect();
        week.extend([(date(9), 1.0), (date(10), 1.0)]);
        let days = History {
            daily_mood: week,
            last_session_at: Some(at(1)),
            ..History::default()
        };
        let fired = rules(&evaluate(&late_mood, &days, &t, date(10)));
        assert_eq!(fired, [Rule::BloodPressure, Rule::MoodFloor]);
        let on_time = NewCheckIn {
            late: false,
            ..late_mood
        };
        let fired = rules(&evaluate(&on_time, &days, &t, date(10)));
        assert_eq!(
            fired,
            [
                Rule::BloodPressure,
                Rule::LingeringDissociation,
                Rule::MoodFloor,
                Rule::MoodDrop
            ]
        );
        let late_gad7 = NewCheckIn {
            instrument: "gad7".into(),
            completed_at: Some(at(10)),
            total: Some(21),
            late: true,
            ..Default::default()
        };
        let anxious = History {
            gad7: vec![ScoredAnswer {
                total: 2,
                completed_at: at(1),
            }],
            ..History::default()
        };
        assert!(evaluate(&late_gad7, &anxious, &t, date(10)).is_empty());
    }

    #[test]
    fn the_phq9_table() {
        let t = Thresholds::default();
        let history = History {
            phq9: vec![
                ScoredAnswer {
                    total: 14,
                    completed_at: at(1),
                },
                ScoredAnswer {
                    total: 9,
                    completed_at: at(8),
                },
            ],
            ..Default::default()
        };
        let cases: [(i64, i64, &[Rule]); 6] = [
            (13, 0, &[]),                        // +4 from 9
            (14, 0, &[Rule::Phq9Deterioration]), // +5 and >= 10
            (17, 1, &[Rule::SafetyItem9, Rule::Phq9Deterioration]),
            (20, 0, &[Rule::Phq9Deterioration, Rule::Phq9Severe]),
            (1, 1, &[Rule::SafetyItem9]), // item 9 whatever the total
            (9, 0, &[]),
        ];
        for (total, item9, expected) in cases {
            let fired = evaluate(&phq9(total, item9, 15), &history, &t, date(15));
            assert_eq!(rules(&fired), expected, "total {total} item9 {item9}");
        }
        let fired = evaluate(&phq9(17, 0, 15), &history, &t, date(15));
        assert_eq!(fired[0].explanation, "PHQ-9 17, baseline 9, +8 >= 5");
        assert_eq!(fired[0].inputs["baseline"], 9);
        // The rise must also reach the floor: 4 -> 9 is +5 but under 10.
        let low = History {
            phq9: vec![ScoredAnswer {
                total: 4,
                completed_at: at(1),
            }],
            ..Default::default()
        };
        assert!(evaluate(&phq9(9, 0, 15), &low, &t, date(15)).is_empty());
        // A clinic-set baseline wins.
        let set = History {
            clinic_baseline_phq9: Some(15),
            ..history.clone()
        };
        assert!(rules(&evaluate(&phq9(17, 0, 15), &set, &t, date(15))).is_empty());
        assert_eq!(
            evaluate(&phq9(4, 2, 15), &set, &t, date(15))[0].severity,
            Severity::Urgent
        );
    }

    #[test]
    fn baseline_follows_the_clinical_reference() {
        let scores = vec![
            ScoredAnswer {
                total: 20,
                completed_at: at(1) - TimeDelta::days(200),
            },
            ScoredAnswer {
                total: 12,
                completed_at: at(1),
            },
            ScoredAnswer {
                total: 8,
                completed_at: at(10),
            },
        ];
        assert_eq!(baseline(None, &scores, at(20)), Some(8));
        assert_eq!(baseline(Some(5), &scores, at(20)), Some(5));
        // Nothing in the last 90 days: the first score.
        assert_eq!(baseline(None, &scores[..1], at(20)), Some(20));
        assert_eq!(baseline(None, &[], at(20)), None);
    }

    #[test]
    fn gad7_blood_pressure_and_dissociation() {
        let t = Thresholds::default();
        let history = History {
            gad7: vec![ScoredAnswer {
                total: 6,
                completed_at: at(1),
            }],
            last_session_at: Some(at(10)),
            ..Default::default()
        };
        let gad = NewCheckIn {
            instrument: "gad7".into(),
            completed_at: Some(at(15)),
            total: Some(10),
            ..Default::default()
        };
        assert_eq!(
            rules(&evaluate(&gad, &history, &t, date(15))),
            [Rule::Gad7Deterioration]
        );
        let gad = NewCheckIn {
            total: Some(9),
            ..gad
        };
        assert!(evaluate(&gad, &history, &t, date(15)).is_empty());
        let mood = |bp: (i64, i64), detached: bool, day: u32| NewCheckIn {
            instrument: "daily_mood".into(),
            completed_at: Some(at(day)),
            blood_pressure: Some(bp),
            still_detached: Some(detached),
            ..Default::default()
        };
        assert_eq!(
            rules(&evaluate(
                &mood((180, 90), false, 10),
                &history,
                &t,
                date(10)
            )),
            [Rule::BloodPressure]
        );
        assert_eq!(
            rules(&evaluate(
                &mood((150, 110), false, 10),
                &history,
                &t,
                date(10)
            )),
            [Rule::BloodPressure]
        );
        assert!(evaluate(&mood((179, 109), false, 10), &history, &t, date(10)).is_empty());
        // Detached on the day of the session is expected; two days later it lingers.
        let same_day = NewCheckIn {
            completed_at: Some(at(10) + TimeDelta::hours(3)),
            ..mood((120, 80), true, 10)
        };
        assert!(evaluate(&same_day, &history, &t, date(10)).is_empty());
        assert_eq!(
            rules(&evaluate(
                &mood((120, 80), true, 12),
                &history,
                &t,
                date(12)
            )),
            [Rule::LingeringDissociation]
        );
    }

    fn series(values: &[(u32, f64)]) -> Vec<(NaiveDate, f64)> {
        values.iter().map(|(d, m)| (date(*d), *m)).collect()
    }

    #[test]
    fn mood_floor_needs_consecutive_days() {
        let t = Thresholds::default();
        assert_eq!(
            rules(&mood_rules(&series(&[(14, 3.0), (15, 2.0)]), &t, date(15))),
            [Rule::MoodFloor]
        );
        assert!(mood_rules(&series(&[(13, 3.0), (15, 2.0)]), &t, date(15)).is_empty());
        assert!(mood_rules(&series(&[(14, 3.5), (15, 2.0)]), &t, date(15)).is_empty());
    }

    #[test]
    fn mood_drop_against_the_seven_day_median() {
        let t = Thresholds::default();
        let mut days: Vec<(u32, f64)> = (8..=14).map(|d| (d, 7.0)).collect();
        days.push((15, 4.0));
        assert_eq!(
            rules(&mood_rules(&series(&days), &t, date(15))),
            [Rule::MoodDrop]
        );
        days.pop();
        days.push((15, 4.5));
        assert!(mood_rules(&series(&days), &t, date(15)).is_empty());
    }

    #[test]
    fn cusum_detects_a_sustained_moderate_decline_and_ignores_noise() {
        let t = Thresholds::default();
        // A stable reference around 7, then a week around 5.5: no single day is a floor or a
        // 3-point drop, but the sum of shortfalls crosses h.
        let reference: Vec<(u32, f64)> = (1..=14)
            .map(|d| (d, if d % 2 == 0 { 7.0 } else { 7.5 }))
            .collect();
        let mut declining = reference.clone();
        declining.extend((15..=21).map(|d| (d, 5.5)));
        let fired = mood_rules(&series(&declining), &t, date(21));
        assert_eq!(rules(&fired), [Rule::MoodCusum], "{fired:?}");
        assert!(fired[0].explanation.starts_with("mood CUSUM"));
        // The same reference followed by ordinary noise does not fire.
        let mut noisy = reference;
        noisy.extend([
            (15, 6.5),
            (16, 7.5),
            (17, 7.0),
            (18, 6.5),
            (19, 7.5),
            (20, 7.0),
            (21, 6.5),
        ]);
        assert!(mood_rules(&series(&noisy), &t, date(21)).is_empty());
    }

    #[test]
    fn missed_check_ins_fire_at_the_threshold() {
        let t = Thresholds::default();
        assert!(missed_check_ins(2, &t).is_none());
        assert_eq!(
            missed_check_ins(3, &t).map(|f| f.severity),
            Some(Severity::Low)
        );
    }

    #[test]
    fn thresholds_are_validated_by_field() {
        assert!(Thresholds::default().problems().is_empty());
        let bad = Thresholds {
            phq9_rise: 0,
            systolic: 90,
            cusum_h: -1.0,
            ..Default::default()
        };
        let keys: Vec<String> = bad.problems().into_keys().collect();
        assert_eq!(keys, ["cusum_h", "phq9_rise", "systolic"]);
        let parsed: Thresholds = serde_json::from_str(r#"{"phq9_rise": 6}"#).unwrap();
        assert_eq!((parsed.phq9_rise, parsed.phq9_floor), (6, 10));
        assert!(serde_json::from_str::<Thresholds>(r#"{"phq9_raise": 6}"#).is_err());
    }
}
