//! Validation and scoring of an answer set against the exact instrument version it names.
//! Pure: no I/O, no clock. Every problem is reported against its item as `answers.<item id>`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::catalogue::{AnswerKind, Instrument, Scoring};

/// A validated, scored answer set.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The answers, validated, keyed by item id (sorted, so equal sets serialise equally).
    pub answers: BTreeMap<String, Value>,
    /// The total, for instruments that have one.
    pub total: Option<i64>,
    /// The severity band key of the total.
    pub severity: Option<String>,
    /// PHQ-2 total derived from PHQ-9 items 1 and 2 (PHQ-9 and PHQ-2 only).
    pub phq2_total: Option<i64>,
    /// The PHQ-9 item 9 answer (PHQ-9 only).
    pub item9: Option<i64>,
}

impl Scored {
    /// True when PHQ-9 item 9 was answered 1 or more: a safety signal, whatever the total.
    pub fn safety_signal(&self) -> bool {
        self.item9.is_some_and(|answer| answer >= 1)
    }
}

/// Problems, keyed by field (`answers.q3`).
pub type Problems = BTreeMap<String, String>;

/// The band key for `total`.
pub fn band_for(scoring: &Scoring, total: i64) -> Option<&str> {
    scoring
        .bands
        .iter()
        .find(|b| (b.min..=b.max).contains(&total))
        .map(|b| b.key.as_str())
}

/// Validates `answers` against `instrument` and scores them.
pub fn score(instrument: &Instrument, answers: &Map<String, Value>) -> Result<Scored, Problems> {
    let mut problems = Problems::new();
    let mut valid = BTreeMap::new();
    for key in answers.keys() {
        if !instrument.items.iter().any(|item| &item.id == key) {
            problems.insert(
                field(key),
                format!(
                    "is not an item of {} version {}",
                    instrument.key, instrument.version
                ),
            );
        }
    }
    let mut total = 0i64;
    for item in &instrument.items {
        let Some(value) = answers.get(&item.id).filter(|v| !v.is_null()) else {
            if item.required {
                problems.insert(field(&item.id), "is required".into());
            }
            continue;
        };
        match check(&item.answer, value) {
            Ok(numeric) => {
                if item.scored {
                    total += numeric.unwrap_or(0);
                }
                valid.insert(item.id.clone(), value.clone());
            }
            Err(problem) => {
                problems.insert(field(&item.id), problem);
            }
        }
    }
    if instrument.key == "daily_mood" {
        check_blood_pressure(&valid, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let int = |id: &str| valid.get(id).and_then(Value::as_i64);
    let (total, severity) = match &instrument.scoring {
        Some(scoring) => (Some(total), band_for(scoring, total).map(str::to_owned)),
        None => (None, None),
    };
    let phq2_total = match instrument.key.as_str() {
        "phq9" => Some(int("q1").unwrap_or(0) + int("q2").unwrap_or(0)),
        "phq2" => total,
        _ => None,
    };
    let item9 = instrument.safety_item().and_then(|item| int(&item.id));
    Ok(Scored {
        answers: valid,
        total,
        severity,
        phq2_total,
        item9,
    })
}

/// What is kept of an answer set that does not validate but carries a safety answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Salvaged {
    /// The answers that did validate, keyed by item id.
    pub answers: BTreeMap<String, Value>,
    /// The safety item's answer (1 or more).
    pub item9: i64,
}

/// A safety answer is never refused for its form (CLINICAL.md, part 2): when `answers` carry
/// the instrument's safety item (PHQ-9 item 9) answered 1 or more with a valid value, the
/// answers that validate are kept (the caller stores the check-in as incomplete, with no total,
/// and lists the problems [`score`] found). None when there is no such answer: the submission
/// is refused as before.
pub fn salvage(instrument: &Instrument, answers: &Map<String, Value>) -> Option<Salvaged> {
    let item = instrument.safety_item()?;
    let item9 = answers
        .get(&item.id)
        .and_then(|value| check(&item.answer, value).ok().flatten())
        .filter(|answer| *answer >= 1)?;
    let kept = instrument
        .items
        .iter()
        .filter_map(|item| {
            let value = answers.get(&item.id).filter(|v| !v.is_null())?;
            check(&item.answer, value).ok()?;
            Some((item.id.clone(), value.clone()))
        })
        .collect();
    Some(Salvaged {
        answers: kept,
        item9,
    })
}

fn field(item: &str) -> String {
    format!("answers.{item}")
}

/// Checks one value; returns its integer value for choice and integer items.
fn check(kind: &AnswerKind, value: &Value) -> Result<Option<i64>, String> {
    match kind {
        AnswerKind::Choice { options } => {
            let n = value.as_i64().filter(|_| value.is_i64() || value.is_u64());
            match n {
                Some(n) if options.iter().any(|o| o.value == n) => Ok(Some(n)),
                _ => Err(format!(
                    "must be one of {}",
                    options
                        .iter()
                        .map(|o| o.value.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        AnswerKind::Integer { min, max, .. } => match value.as_i64() {
            Some(n) if (*min..=*max).contains(&n) => Ok(Some(n)),
            _ => Err(format!("must be a whole number from {min} to {max}")),
        },
        AnswerKind::Number { min, max, .. } => match value.as_f64() {
            Some(n) if n.is_finite() && *min <= n && n <= *max => Ok(None),
            _ => Err(format!("must be a number from {min} to {max}")),
        },
        AnswerKind::Boolean => match value {
            Value::Bool(_) => Ok(None),
            _ => Err("must be true or false".into()),
        },
        AnswerKind::Text { max_length } => match value.as_str() {
            Some(text)
                if text.chars().count() <= *max_length
                    && !text.chars().any(|c| c.is_control() && c != '\n') =>
            {
                Ok(None)
            }
            Some(_) => Err(format!(
                "must be at most {max_length} characters without control characters"
            )),
            None => Err("must be text".into()),
        },
    }
}

/// Home blood pressure: both numbers or neither, and systolic above diastolic. Values outside
/// physiological limits were already refused by the items' ranges (they are typing slips).
fn check_blood_pressure(valid: &BTreeMap<String, Value>, problems: &mut Problems) {
    let systolic = valid.get("bp_systolic").and_then(Value::as_i64);
    let diastolic = valid.get("bp_diastolic").and_then(Value::as_i64);
    let sys_given =
        valid.contains_key("bp_systolic") || problems.contains_key("answers.bp_systolic");
    let dia_given =
        valid.contains_key("bp_diastolic") || problems.contains_key("answers.bp_diastolic");
    match (sys_given, dia_given) {
        (true, false) => {
            problems.insert(
                "answers.bp_diastolic".into(),
                "is required when a systolic value is given".into(),
            );
        }
        (false, true) => {
            problems.insert(
                "answers.bp_systolic".into(),
                "is required when a diastolic value is given".into(),
            );
        }
        _ => {}
    }
    if let (Some(s), Some(d)) = (systolic, diastolic)
        && s <= d
    {
        problems.insert(
            "answers.bp_systolic".into(),
            "must be higher than the diastolic value".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::catalogue::Catalogue;
    use proptest::prelude::*;
    use serde_json::json;

    fn answers(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn phq9_with(values: [i64; 9]) -> Map<String, Value> {
        let mut map = Map::new();
        for (i, v) in values.iter().enumerate() {
            map.insert(format!("q{}", i + 1), json!(v));
        }
        map
    }

    #[test]
    fn phq9_totals_and_bands_follow_kroenke() {
        let catalogue = Catalogue::default();
        let phq9 = catalogue.find("phq9", None).unwrap();
        let cases = [
            ([0; 9], 0, "minimal"),
            ([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, "minimal"),
            ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, "mild"),
            ([1, 1, 1, 1, 1, 1, 1, 1, 1], 9, "mild"),
            ([2, 2, 2, 2, 2, 0, 0, 0, 0], 10, "moderate"),
            ([2, 2, 2, 2, 2, 2, 2, 0, 0], 14, "moderate"),
            ([3, 3, 3, 3, 3, 0, 0, 0, 0], 15, "moderately_severe"),
            ([3, 3, 3, 3, 3, 3, 1, 0, 0], 19, "moderately_severe"),
            ([3, 3, 3, 3, 3, 3, 2, 0, 0], 20, "severe"),
            ([3; 9], 27, "severe"),
        ];
        for (values, total, band) in cases {
            let scored = score(phq9, &phq9_with(values)).unwrap();
            assert_eq!(scored.total, Some(total), "{values:?}");
            assert_eq!(scored.severity.as_deref(), Some(band), "{values:?}");
            assert_eq!(scored.phq2_total, Some(values[0] + values[1]));
        }
    }

    #[test]
    fn item_nine_is_a_safety_signal_at_any_total() {
        let catalogue = Catalogue::default();
        let phq9 = catalogue.find("phq9", None).unwrap();
        let quiet = score(phq9, &phq9_with([0, 0, 0, 0, 0, 0, 0, 0, 1])).unwrap();
        assert_eq!(quiet.total, Some(1));
        assert!(quiet.safety_signal());
        let none = score(phq9, &phq9_with([3, 3, 3, 3, 3, 3, 3, 3, 0])).unwrap();
        assert!(!none.safety_signal());
    }

    #[test]
    fn a_safety_answer_is_salvaged_from_an_answer_set_that_does_not_validate() {
        let catalogue = Catalogue::default();
        let phq9 = catalogue.find("phq9", None).unwrap();
        let broken = answers(json!({"q1": 1, "q2": 7, "q9": 2, "q11": 0}));
        assert!(score(phq9, &broken).is_err());
        let kept = salvage(phq9, &broken).unwrap();
        assert_eq!(kept.item9, 2);
        assert_eq!(
            kept.answers.keys().map(String::as_str).collect::<Vec<_>>(),
            ["q1", "q9"],
            "only what validates is kept"
        );
        // No safety answer, or an invalid one, or none at all: nothing to salvage.
        for other in [
            json!({"q1": 1, "q9": 0}),
            json!({"q1": 1, "q9": 5}),
            json!({"q1": 1, "q9": "2"}),
            json!({"q1": 1}),
        ] {
            assert_eq!(salvage(phq9, &answers(other.clone())), None, "{other}");
        }
        // Instruments without item 9 have nothing to salvage.
        let gad7 = catalogue.find("gad7", None).unwrap();
        assert_eq!(salvage(gad7, &answers(json!({"q9": 3}))), None);
    }

    #[test]
    fn item_ten_is_optional_and_never_scored() {
        let catalogue = Catalogue::default();
        let phq9 = catalogue.find("phq9", None).unwrap();
        let mut map = phq9_with([1; 9]);
        map.insert("q10".into(), json!(3));
        assert_eq!(score(phq9, &map).unwrap().total, Some(9));
    }

    #[test]
    fn every_problem_names_its_item() {
        let catalogue = Catalogue::default();
        let gad7 = catalogue.find("gad7", None).unwrap();
        let problems = score(
            gad7,
            &answers(
                json!({"q1": 4, "q2": "1", "q3": 1.5, "q4": -1, "q5": null, "q6": 0, "q8": 1}),
            ),
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "answers.q1",
                "answers.q2",
                "answers.q3",
                "answers.q4",
                "answers.q5",
                "answers.q7",
                "answers.q8"
            ]
        );
    }

    #[test]
    fn gad7_bands_follow_spitzer_and_phq2_screens_at_three() {
        let catalogue = Catalogue::default();
        let gad7 = catalogue.find("gad7", None).unwrap();
        for (values, band) in [
            ([0, 0, 0, 0, 0, 1, 3], "minimal"),
            ([1, 1, 1, 1, 1, 0, 0], "mild"),
            ([3, 3, 3, 1, 0, 0, 0], "moderate"),
            ([3, 3, 3, 3, 3, 0, 0], "severe"),
        ] {
            let mut map = Map::new();
            for (i, v) in values.iter().enumerate() {
                map.insert(format!("q{}", i + 1), json!(v));
            }
            assert_eq!(
                score(gad7, &map).unwrap().severity.as_deref(),
                Some(band),
                "{values:?}"
            );
        }
        let phq2 = catalogue.find("phq2", None).unwrap();
        let positive = score(phq2, &answers(json!({"q1": 2, "q2": 1}))).unwrap();
        assert_eq!(
            (positive.total, positive.severity.as_deref()),
            (Some(3), Some("positive"))
        );
        let negative = score(phq2, &answers(json!({"q1": 1, "q2": 1}))).unwrap();
        assert_eq!(negative.severity.as_deref(), Some("negative"));
    }

    #[test]
    fn daily_mood_validates_each_kind_and_blood_pressure_plausibility() {
        let catalogue = Catalogue::default();
        let mood = catalogue.find("daily_mood", None).unwrap();
        let ok = score(
            mood,
            &answers(
                json!({"mood": 6, "sleep_hours": 7.5, "still_detached": false,
                            "bp_systolic": 128, "bp_diastolic": 82, "note": "fine\nreally"}),
            ),
        )
        .unwrap();
        assert_eq!(ok.total, None);
        assert_eq!(ok.answers.len(), 6);
        let cases = [
            (json!({}), "answers.mood"),
            (json!({"mood": 11}), "answers.mood"),
            (json!({"mood": 5, "sleep_hours": 25}), "answers.sleep_hours"),
            (
                json!({"mood": 5, "still_detached": "yes"}),
                "answers.still_detached",
            ),
            (
                json!({"mood": 5, "bp_systolic": 120}),
                "answers.bp_diastolic",
            ),
            (
                json!({"mood": 5, "bp_diastolic": 80}),
                "answers.bp_systolic",
            ),
            (
                json!({"mood": 5, "bp_systolic": 80, "bp_diastolic": 120}),
                "answers.bp_systolic",
            ),
            (
                json!({"mood": 5, "bp_systolic": 400, "bp_diastolic": 80}),
                "answers.bp_systolic",
            ),
            (json!({"mood": 5, "note": "x".repeat(501)}), "answers.note"),
            (json!({"mood": 5, "note": "bell\u{7}"}), "answers.note"),
        ];
        for (value, field) in cases {
            let problems = score(mood, &answers(value.clone())).unwrap_err();
            assert!(problems.contains_key(field), "{value}: {problems:?}");
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-5i64..15).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop::collection::vec(inner, 0..3).prop_map(Value::Array)
        })
    }

    fn any_answers() -> impl Strategy<Value = Map<String, Value>> {
        let keys = prop_oneof![
            (1..=11u8).prop_map(|n| format!("q{n}")),
            Just("mood".to_owned()),
            Just("bp_systolic".to_owned()),
            Just("bp_diastolic".to_owned()),
            Just("sleep_hours".to_owned()),
            Just("note".to_owned()),
            ".{0,6}",
        ];
        prop::collection::btree_map(keys, any_json(), 0..14).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn scoring_never_panics_and_totals_stay_in_range(answers in any_answers()) {
            let catalogue = Catalogue::default();
            for instrument in catalogue.current() {
                if let Ok(scored) = score(instrument, &answers) {
                    if let (Some(scoring), Some(total)) = (&instrument.scoring, scored.total) {
                        prop_assert!((scoring.min..=scoring.max).contains(&total));
                        prop_assert!(scored.severity.is_some());
                    }
                    if let Some(item9) = scored.item9 {
                        prop_assert!((0..=3).contains(&item9));
                    }
                }
            }
        }

        #[test]
        fn every_complete_frequency_answer_set_scores_its_sum(values in prop::collection::vec(0i64..=3, 9)) {
            let catalogue = Catalogue::default();
            let phq9 = catalogue.find("phq9", None).unwrap();
            let mut map = Map::new();
            for (i, v) in values.iter().enumerate() {
                map.insert(format!("q{}", i + 1), json!(v));
            }
            let scored = score(phq9, &map).unwrap();
            prop_assert_eq!(scored.total, Some(values.iter().sum::<i64>()));
            prop_assert_eq!(scored.safety_signal(), values[8] >= 1);
        }
    }
}
