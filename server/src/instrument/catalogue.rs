//! The instrument catalogue: PHQ-9 (Kroenke 2001), PHQ-2, GAD-7 (Spitzer 2006) and the daily
//! mood check-in, with LOINC codes where they exist. Definitions are data; a change to items or
//! scoring is a new version, and older versions stay here so old submissions still validate.

use serde::Serialize;
use utoipa::ToSchema;

/// A questionnaire definition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Instrument {
    /// Catalogue key used in submissions (`phq9`, `phq2`, `gad7`, `daily_mood`).
    #[schema(value_type = InstrumentKey)]
    pub key: String,
    /// Definition version; a submission names the version it answered.
    pub version: i32,
    /// Display title.
    pub title: String,
    /// Instructions shown above the items.
    pub instructions: String,
    /// The period the questions ask about, e.g. "the last 2 weeks".
    pub recall_period: String,
    /// LOINC panel code, if any.
    pub loinc_panel: Option<String>,
    /// LOINC code of the total score, if any.
    pub loinc_total: Option<String>,
    /// The questions, in display order.
    pub items: Vec<Item>,
    /// How the total is computed, if there is one.
    pub scoring: Option<Scoring>,
}

/// One question.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Item {
    /// The key of this item in a submission's `answers`.
    pub id: String,
    /// Question text.
    pub text: String,
    /// LOINC code, if any.
    pub loinc: Option<String>,
    /// Whether a submission must answer it.
    pub required: bool,
    /// Whether it counts towards the total.
    pub scored: bool,
    /// The kind of answer expected.
    pub answer: AnswerKind,
}

/// The kind of answer an item takes.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnswerKind {
    /// One of the listed options, answered with its integer `value`.
    Choice {
        /// The options.
        options: Vec<AnswerOption>,
    },
    /// A whole number in `min..=max`.
    Integer {
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
        /// Unit, if any (UCUM).
        unit: Option<String>,
        /// Label of the low end of a scale.
        min_label: Option<String>,
        /// Label of the high end of a scale.
        max_label: Option<String>,
    },
    /// A number in `min..=max`.
    Number {
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
        /// Unit, if any (UCUM).
        unit: Option<String>,
    },
    /// `true` or `false`.
    Boolean,
    /// Free text up to `max_length` characters.
    Text {
        /// Longest allowed.
        max_length: usize,
    },
}

/// One answer option.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerOption {
    /// The value submitted and scored.
    pub value: i64,
    /// Display label.
    pub label: String,
    /// LOINC answer code, if any.
    pub loinc: Option<String>,
}

/// A summed total with severity bands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Scoring {
    /// Lowest possible total.
    pub min: i64,
    /// Highest possible total.
    pub max: i64,
    /// Severity bands, in ascending order, covering `min..=max`.
    pub bands: Vec<Band>,
}

/// A severity band.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Band {
    /// Stable key, e.g. `moderately_severe`.
    pub key: String,
    /// Display label.
    pub label: String,
    /// Lowest total in the band.
    pub min: i64,
    /// Highest total in the band.
    pub max: i64,
}

/// The PHQ-9 item whose positive answer is a safety signal.
pub const PHQ9_SAFETY_ITEM: &str = "q9";

/// The LOINC code of PHQ-9 item 9: whatever instrument carries it (the PHQ-9, or a clinic's
/// PHQ-2 that asks it too), an answer of 1 or more there is a safety signal.
pub const SAFETY_ITEM_LOINC: &str = "44260-8";

impl Instrument {
    /// The item whose positive answer is a safety signal (PHQ-9 item 9), if this instrument
    /// asks it.
    pub fn safety_item(&self) -> Option<&Item> {
        self.items
            .iter()
            .find(|item| item.loinc.as_deref() == Some(SAFETY_ITEM_LOINC))
    }
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn frequency_options() -> Vec<AnswerOption> {
    [
        (0, "Not at all", "LA6568-5"),
        (1, "Several days", "LA6569-3"),
        (2, "More than half the days", "LA6570-1"),
        (3, "Nearly every day", "LA6571-9"),
    ]
    .into_iter()
    .map(|(value, label, loinc)| AnswerOption {
        value,
        label: s(label),
        loinc: Some(s(loinc)),
    })
    .collect()
}

fn frequency_item(id: &str, text: &str, loinc: &str) -> Item {
    Item {
        id: s(id),
        text: s(text),
        loinc: Some(s(loinc)),
        required: true,
        scored: true,
        answer: AnswerKind::Choice {
            options: frequency_options(),
        },
    }
}

fn bands(list: &[(&str, &str, i64, i64)]) -> Vec<Band> {
    list.iter()
        .map(|(key, label, min, max)| Band {
            key: s(key),
            label: s(label),
            min: *min,
            max: *max,
        })
        .collect()
}

const PHQ9_ITEMS: [(&str, &str, &str); 9] = [
    (
        "q1",
        "Little interest or pleasure in doing things",
        "44250-9",
    ),
    ("q2", "Feeling down, depressed, or hopeless", "44255-8"),
    (
        "q3",
        "Trouble falling or staying asleep, or sleeping too much",
        "44259-0",
    ),
    ("q4", "Feeling tired or having little energy", "44254-1"),
    ("q5", "Poor appetite or overeating", "44251-7"),
    (
        "q6",
        "Feeling bad about yourself, or that you are a failure or have let yourself or your family down",
        "44258-2",
    ),
    (
        "q7",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
        "44252-5",
    ),
    (
        "q8",
        "Moving or speaking so slowly that other people could have noticed; or the opposite, being so fidgety or restless that you have been moving around a lot more than usual",
        "44253-3",
    ),
    (
        "q9",
        "Thoughts that you would be better off dead, or of hurting yourself in some way",
        "44260-8",
    ),
];

const TWO_WEEKS: &str =
    "Over the last 2 weeks, how often have you been bothered by any of the following problems?";

fn phq9() -> Instrument {
    let mut items: Vec<Item> = PHQ9_ITEMS
        .iter()
        .map(|(id, text, loinc)| frequency_item(id, text, loinc))
        .collect();
    items.push(Item {
        id: s("q10"),
        text: s("If you checked off any problems, how difficult have these problems made it for you to do your work, take care of things at home, or get along with other people?"),
        loinc: Some(s("69722-7")),
        required: false,
        scored: false,
        answer: AnswerKind::Choice {
            options: [
                (0, "Not difficult at all"),
                (1, "Somewhat difficult"),
                (2, "Very difficult"),
                (3, "Extremely difficult"),
            ]
            .into_iter()
            .map(|(value, label)| AnswerOption {
                value,
                label: s(label),
                loinc: None,
            })
            .collect(),
        },
    });
    Instrument {
        key: s("phq9"),
        version: 1,
        title: s("PHQ-9"),
        instructions: s(TWO_WEEKS),
        recall_period: s("the last 2 weeks"),
        loinc_panel: Some(s("44249-1")),
        loinc_total: Some(s("44261-6")),
        items,
        scoring: Some(Scoring {
            min: 0,
            max: 27,
            bands: bands(&[
                ("minimal", "Minimal", 0, 4),
                ("mild", "Mild", 5, 9),
                ("moderate", "Moderate", 10, 14),
                ("moderately_severe", "Moderately severe", 15, 19),
                ("severe", "Severe", 20, 27),
            ]),
        }),
    }
}

fn phq2() -> Instrument {
    Instrument {
        key: s("phq2"),
        version: 1,
        title: s("PHQ-2"),
        instructions: s(TWO_WEEKS),
        recall_period: s("the last 2 weeks"),
        loinc_panel: Some(s("55757-9")),
        loinc_total: Some(s("55758-7")),
        items: PHQ9_ITEMS[..2]
            .iter()
            .map(|(id, text, loinc)| frequency_item(id, text, loinc))
            .collect(),
        scoring: Some(Scoring {
            min: 0,
            max: 6,
            bands: bands(&[
                ("negative", "Negative screen", 0, 2),
                ("positive", "Positive screen", 3, 6),
            ]),
        }),
    }
}

fn gad7() -> Instrument {
    let items = [
        ("q1", "Feeling nervous, anxious, or on edge", "69725-0"),
        (
            "q2",
            "Not being able to stop or control worrying",
            "68509-9",
        ),
        ("q3", "Worrying too much about different things", "69733-4"),
        ("q4", "Trouble relaxing", "69734-2"),
        (
            "q5",
            "Being so restless that it is hard to sit still",
            "69735-9",
        ),
        ("q6", "Becoming easily annoyed or irritable", "69689-8"),
        (
            "q7",
            "Feeling afraid, as if something awful might happen",
            "69736-7",
        ),
    ];
    Instrument {
        key: s("gad7"),
        version: 1,
        title: s("GAD-7"),
        instructions: s(TWO_WEEKS),
        recall_period: s("the last 2 weeks"),
        loinc_panel: Some(s("69737-5")),
        loinc_total: Some(s("70274-6")),
        items: items
            .iter()
            .map(|(id, text, loinc)| frequency_item(id, text, loinc))
            .collect(),
        scoring: Some(Scoring {
            min: 0,
            max: 21,
            bands: bands(&[
                ("minimal", "Minimal", 0, 4),
                ("mild", "Mild", 5, 9),
                ("moderate", "Moderate", 10, 14),
                ("severe", "Severe", 15, 21),
            ]),
        }),
    }
}

fn scale(id: &str, text: &str, required: bool, low: &str, high: &str) -> Item {
    Item {
        id: s(id),
        text: s(text),
        loinc: None,
        required,
        scored: false,
        answer: AnswerKind::Integer {
            min: 0,
            max: 10,
            unit: None,
            min_label: Some(s(low)),
            max_label: Some(s(high)),
        },
    }
}

fn daily_mood() -> Instrument {
    Instrument {
        key: s("daily_mood"),
        version: 1,
        title: s("Daily check-in"),
        instructions: s("How are you today?"),
        recall_period: s("today"),
        loinc_panel: None,
        loinc_total: None,
        items: vec![
            scale(
                "mood",
                "How is your mood right now?",
                true,
                "Worst possible",
                "Best possible",
            ),
            Item {
                id: s("sleep_hours"),
                text: s("How many hours did you sleep last night?"),
                loinc: Some(s("93832-4")),
                required: false,
                scored: false,
                answer: AnswerKind::Number {
                    min: 0.0,
                    max: 24.0,
                    unit: Some(s("h")),
                },
            },
            scale(
                "sleep_quality",
                "How well did you sleep?",
                false,
                "Very badly",
                "Very well",
            ),
            scale(
                "anxiety",
                "How anxious do you feel?",
                false,
                "Not at all",
                "Extremely",
            ),
            scale(
                "nausea",
                "How nauseous do you feel?",
                false,
                "Not at all",
                "Extremely",
            ),
            Item {
                id: s("still_detached"),
                text: s("Do you still feel detached or unreal since your last treatment?"),
                loinc: None,
                required: false,
                scored: false,
                answer: AnswerKind::Boolean,
            },
            Item {
                id: s("bp_systolic"),
                text: s("Home blood pressure: systolic (upper number)"),
                loinc: Some(s("8480-6")),
                required: false,
                scored: false,
                answer: AnswerKind::Integer {
                    min: 60,
                    max: 260,
                    unit: Some(s("mm[Hg]")),
                    min_label: None,
                    max_label: None,
                },
            },
            Item {
                id: s("bp_diastolic"),
                text: s("Home blood pressure: diastolic (lower number)"),
                loinc: Some(s("8462-4")),
                required: false,
                scored: false,
                answer: AnswerKind::Integer {
                    min: 30,
                    max: 160,
                    unit: Some(s("mm[Hg]")),
                    min_label: None,
                    max_label: None,
                },
            },
            Item {
                id: s("note"),
                text: s("Anything else you want your care team to know?"),
                loinc: None,
                required: false,
                scored: false,
                answer: AnswerKind::Text { max_length: 500 },
            },
        ],
        scoring: None,
    }
}

/// Every version of every instrument.
#[derive(Debug, Clone)]
pub struct Catalogue {
    instruments: Vec<Instrument>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self {
            instruments: vec![phq9(), phq2(), gad7(), daily_mood()],
        }
    }
}

impl Catalogue {
    /// Every version of every instrument, in catalogue order.
    pub fn all(&self) -> impl Iterator<Item = &Instrument> {
        self.instruments.iter()
    }

    /// The latest version of each instrument, in catalogue order.
    pub fn current(&self) -> Vec<&Instrument> {
        let mut out: Vec<&Instrument> = Vec::new();
        for instrument in &self.instruments {
            match out.iter_mut().find(|i| i.key == instrument.key) {
                Some(existing) if existing.version < instrument.version => *existing = instrument,
                Some(_) => {}
                None => out.push(instrument),
            }
        }
        out
    }

    /// A specific version, or the latest when `version` is `None`.
    pub fn find(&self, key: &str, version: Option<i32>) -> Option<&Instrument> {
        match version {
            Some(v) => self
                .instruments
                .iter()
                .find(|i| i.key == key && i.version == v),
            None => self
                .instruments
                .iter()
                .filter(|i| i.key == key)
                .max_by_key(|i| i.version),
        }
    }
}

/// An instrument's catalogue key, as the OpenAPI document names them (the catalogue is the
/// source; a test keeps the two the same).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKey {
    /// PHQ-9.
    Phq9,
    /// PHQ-2.
    Phq2,
    /// GAD-7.
    Gad7,
    /// The daily mood check-in.
    DailyMood,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_possible_total_exactly_once() {
        for instrument in Catalogue::default().current() {
            let Some(scoring) = &instrument.scoring else {
                continue;
            };
            let scored = instrument.items.iter().filter(|i| i.scored).count() as i64;
            assert_eq!(scoring.max, scored * 3, "{}", instrument.key);
            for total in scoring.min..=scoring.max {
                let hits = scoring
                    .bands
                    .iter()
                    .filter(|b| (b.min..=b.max).contains(&total))
                    .count();
                assert_eq!(hits, 1, "{} total {total}", instrument.key);
            }
        }
    }

    #[test]
    fn the_loinc_codes_of_the_clinical_reference_are_present() {
        let catalogue = Catalogue::default();
        let phq9 = catalogue.find("phq9", None).unwrap();
        assert_eq!(phq9.loinc_panel.as_deref(), Some("44249-1"));
        let q9 = phq9
            .items
            .iter()
            .find(|i| i.id == PHQ9_SAFETY_ITEM)
            .unwrap();
        assert_eq!(q9.loinc.as_deref(), Some("44260-8"));
        assert_eq!(
            catalogue
                .find("gad7", Some(1))
                .unwrap()
                .loinc_total
                .as_deref(),
            Some("70274-6")
        );
        assert!(catalogue.find("gad7", Some(2)).is_none());
        assert!(catalogue.find("bdi", None).is_none());
        let keys: Vec<&str> = catalogue.current().iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["phq9", "phq2", "gad7", "daily_mood"]);
        let documented: Vec<String> = [
            InstrumentKey::Phq9,
            InstrumentKey::Phq2,
            InstrumentKey::Gad7,
            InstrumentKey::DailyMood,
        ]
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(keys, documented, "the documented keys are the catalogue's");
        assert!(
            catalogue.all().all(|i| keys.contains(&i.key.as_str())),
            "every version's key is documented"
        );
    }
}
