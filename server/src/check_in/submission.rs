//! A submitted check-in parsed into the row that is stored, or refused with its problems. Pure:
//! the catalogue and the time of receipt are passed in.
//!
//! A safety answer is never refused for its form (CLINICAL.md, part 2): when the answers carry
//! PHQ-9 item 9 answered 1 or more, anything else wrong with the submission (other items
//! missing, out of range or unknown; a malformed id, prompt id or version) is listed as its
//! problems and the check-in is kept as `incomplete`, without a total. Without a safety answer
//! the same submission is refused as before.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use companion_schema::ids::CheckInId;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::check_in::store::{COMPLETE, CheckInRow, INCOMPLETE};
use crate::check_in::timing;
use crate::instrument::catalogue::{Catalogue, Instrument};
use crate::instrument::scoring::{self, Problems};

/// A check-in as the app sent it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The app's id (a UUID).
    pub id: String,
    /// Catalogue key.
    pub instrument: String,
    /// Catalogue version, or the current one.
    pub instrument_version: Option<i32>,
    /// Item id to value.
    pub answers: Map<String, Value>,
    /// When the patient finished, by the device's clock.
    pub completed_at: DateTime<Utc>,
    /// The prompt answered, if any.
    pub prompt_id: Option<String>,
}

/// A submission ready to store: the row (its patient and clinic are filled in by the use case)
/// and the answers kept, by item.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The row.
    pub row: CheckInRow,
    /// The answers kept (all of them, or those that validated for an incomplete check-in).
    pub answers: BTreeMap<String, Value>,
}

fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

/// Digest of everything the app sent but its id: a replay under the same id matches it.
fn content_hash(
    instrument: &str,
    version: i32,
    answers: &BTreeMap<String, Value>,
    completed_at: NaiveDateTime,
    prompt_id: Option<&str>,
) -> String {
    digest(&serde_json::json!({
        "instrument": instrument,
        "version": version,
        "answers": answers,
        "completed_at": completed_at.and_utc().to_rfc3339(),
        "prompt_id": prompt_id,
    }))
}

/// Digest of the answers alone: identical answers re-sent under a new id match it.
fn answers_hash(instrument: &str, version: i32, answers: &BTreeMap<String, Value>) -> String {
    digest(&serde_json::json!({
        "instrument": instrument,
        "version": version,
        "answers": answers,
    }))
}

/// The fields of a submission.
const FIELDS: [&str; 6] = [
    "id",
    "instrument",
    "instrument_version",
    "answers",
    "completed_at",
    "prompt_id",
];

/// A body that is not a well-formed submission but carries a safety answer (the instrument's
/// item 9 answered 1 to 3), read as well as it can be: a missing or unreadable `completed_at` is
/// the time of receipt, a malformed `id` or `prompt_id` is left for [`parse_with`] to replace
/// or drop, and every such problem (unknown fields too) is returned to be listed. None when
/// there is no safety answer: the body is refused as before.
pub fn lenient(
    body: &Map<String, Value>,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
) -> Option<(Submission, Problems)> {
    let key = body.get("instrument")?.as_str()?;
    let answers = body.get("answers")?.as_object()?;
    let instrument = catalogue.find(key, None)?;
    scoring::salvage(instrument, answers)?;
    let mut problems = Problems::new();
    for field in body.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        problems.insert(field.clone(), "is not a field of a check-in".to_owned());
    }
    let text = |field: &str, problems: &mut Problems| match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            problems.insert(field.to_owned(), "must be a string".to_owned());
            None
        }
    };
    let id = text("id", &mut problems).unwrap_or_default();
    let prompt_id = text("prompt_id", &mut problems);
    let completed_at = match text("completed_at", &mut problems)
        .map(|t| DateTime::parse_from_rfc3339(&t).map(|at| at.with_timezone(&Utc)))
    {
        Some(Ok(at)) => at,
        _ => {
            problems.insert(
                "completed_at".to_owned(),
                "must be an RFC 3339 time; the time of receipt was used".to_owned(),
            );
            now
        }
    };
    let instrument_version = match body.get("instrument_version") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_i64().and_then(|v| i32::try_from(v).ok()) {
            Some(version) => Some(version),
            None => {
                problems.insert(
                    "instrument_version".to_owned(),
                    "must be a whole number".to_owned(),
                );
                None
            }
        },
    };
    Some((
        Submission {
            id,
            instrument: key.to_owned(),
            instrument_version,
            answers: answers.clone(),
            completed_at,
            prompt_id,
        },
        problems,
    ))
}

/// Parses a submission received at `now`. Problems are keyed by field (`answers.q3`).
pub fn parse(
    submission: &Submission,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
) -> Result<Parsed, Problems> {
    parse_with(submission, Problems::new(), catalogue, now)
}

/// Like [`parse`], with problems already found in the body around the submission (see
/// [`lenient`]): they are listed with the check-in's own.
pub fn parse_with(
    submission: &Submission,
    envelope: Problems,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
) -> Result<Parsed, Problems> {
    let mut problems = envelope;
    let id = CheckInId::parse(&submission.id);
    if id.is_none() {
        problems.insert("id".to_owned(), "must be a UUID".to_owned());
    }
    let prompt_id = match submission
        .prompt_id
        .as_deref()
        .map(uuid::Uuid::try_parse)
        .transpose()
    {
        Ok(p) => p.map(|u| u.hyphenated().to_string()),
        Err(_) => {
            problems.insert("prompt_id".into(), "must be a UUID".into());
            None
        }
    };
    let named = catalogue.find(&submission.instrument, submission.instrument_version);
    let instrument: Option<&Instrument> = match named {
        Some(instrument) => Some(instrument),
        None => match catalogue.find(&submission.instrument, None) {
            Some(current) => {
                problems.insert(
                    "instrument_version".into(),
                    "is not a version of this instrument".into(),
                );
                // Read against the current version only to find a safety answer.
                Some(current)
            }
            None => {
                problems.insert(
                    "instrument".into(),
                    "is not in the catalogue (see GET /v1/instruments)".into(),
                );
                None
            }
        },
    };
    let Some(instrument) = instrument else {
        return Err(problems);
    };
    // The answers are complete when they validate against the version they name.
    let scored = match scoring::score(instrument, &submission.answers) {
        Ok(scored) if named.is_some() => Some(scored),
        Ok(_) => None,
        Err(answer_problems) => {
            problems.extend(answer_problems);
            None
        }
    };
    // Never refused for its time: a fast clock is filed at receipt, a long-offline phone late.
    let device_completed = submission.completed_at.trunc_subsecs(6);
    let placed = timing::place(device_completed, now);
    let base = |answers: &BTreeMap<String, Value>, hashed: &BTreeMap<String, Value>| CheckInRow {
        // The id the app gave, or (only for a safety answer with a malformed one) a new one.
        id: id
            .as_ref()
            .map_or_else(|| CheckInId::generate().to_string(), ToString::to_string),
        patient_id: String::new(),
        clinic_id: String::new(),
        instrument: instrument.key.clone(),
        instrument_version: instrument.version,
        answers: serde_json::to_string(answers).unwrap_or_else(|_| "{}".to_owned()),
        total: None,
        severity: None,
        item9: None,
        completed_at: placed.completed_at.naive_utc(),
        received_at: now.naive_utc(),
        // The device's time, so that a replay of the same submission matches whenever it comes.
        content_hash: content_hash(
            &instrument.key,
            instrument.version,
            hashed,
            device_completed.naive_utc(),
            prompt_id.as_deref(),
        ),
        prompt_id: prompt_id.clone(),
        device_completed_at: placed.device_completed_at.map(|t| t.naive_utc()),
        timing: placed.timing.as_str().to_owned(),
        mood: None,
        status: COMPLETE.to_owned(),
        problems: None,
        answers_hash: Some(answers_hash(&instrument.key, instrument.version, hashed)),
        amended_at: None,
        earlier_versions: None,
        safety_alert_id: None,
    };
    if let Some(scored) = scored {
        // Complete answers with a malformed id or prompt id: refused, unless they carry a
        // safety answer (then stored, scored, with the problems listed).
        if !problems.is_empty() && !scored.safety_signal() {
            return Err(problems);
        }
        let row = CheckInRow {
            total: scored.total.map(|t| t as i32),
            severity: scored.severity.clone(),
            item9: scored.item9.map(|v| v as i32),
            problems: (!problems.is_empty())
                .then(|| serde_json::to_string(&problems).ok())
                .flatten(),
            ..base(&scored.answers, &scored.answers)
        };
        return Ok(Parsed {
            row,
            answers: scored.answers,
        });
    }
    let Some(kept) = scoring::salvage(instrument, &submission.answers) else {
        return Err(problems);
    };
    // Everything that was sent, so that a re-send of the same broken submission is known.
    let sent: BTreeMap<String, Value> = submission
        .answers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let row = CheckInRow {
        item9: Some(kept.item9 as i32),
        status: INCOMPLETE.to_owned(),
        problems: serde_json::to_string(&problems).ok(),
        ..base(&kept.answers, &sent)
    };
    Ok(Parsed {
        row,
        answers: kept.answers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn submission(answers: Value) -> Submission {
        Submission {
            id: uuid::Uuid::now_v7().to_string(),
            instrument: "phq9".into(),
            instrument_version: None,
            answers: answers.as_object().unwrap().clone(),
            completed_at: "2026-06-01T10:00:00Z".parse().unwrap(),
            prompt_id: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-06-01T10:05:00Z".parse().unwrap()
    }

    #[test]
    fn a_complete_phq9_is_scored() {
        let catalogue = Catalogue::default();
        let all = json!({"q1": 1, "q2": 1, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 0, "q8": 0, "q9": 2});
        let parsed = parse(&submission(all), &catalogue, now()).unwrap();
        assert_eq!(parsed.row.status, COMPLETE);
        assert_eq!(parsed.row.total, Some(4));
        assert_eq!(parsed.row.item9, Some(2));
        assert_eq!(parsed.row.problems, None);
    }

    #[test]
    fn a_safety_answer_with_problems_is_kept_incomplete_and_without_one_is_refused() {
        let catalogue = Catalogue::default();
        let mut broken = submission(json!({"q1": 1, "q2": 9, "q9": 2, "extra": true}));
        broken.prompt_id = Some("not-a-uuid".into());
        broken.instrument_version = Some(7);
        let parsed = parse(&broken, &catalogue, now()).unwrap();
        assert_eq!(parsed.row.status, INCOMPLETE);
        assert_eq!((parsed.row.total, parsed.row.item9), (None, Some(2)));
        let problems = parsed.row.problem_list();
        for field in [
            "answers.q2",
            "answers.q3",
            "answers.extra",
            "prompt_id",
            "instrument_version",
        ] {
            assert!(problems.contains_key(field), "{field}: {problems:?}");
        }
        assert_eq!(parsed.row.prompt_id, None);
        assert_eq!(
            parsed
                .answers
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["q1", "q9"]
        );
        // A malformed id is replaced, never a reason to refuse a safety answer.
        let mut no_id = submission(json!({"q9": 1}));
        no_id.id = "seven".into();
        let parsed = parse(&no_id, &catalogue, now()).unwrap();
        assert!(CheckInId::parse(&parsed.row.id).is_some());
        assert!(parsed.row.problem_list().contains_key("id"));
        // Complete answers with a malformed id: scored, the problem listed.
        let mut complete = submission(
            json!({"q1": 0, "q2": 0, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 0, "q8": 0, "q9": 3}),
        );
        complete.id = "seven".into();
        let parsed = parse(&complete, &catalogue, now()).unwrap();
        assert_eq!(
            (parsed.row.status.as_str(), parsed.row.total),
            (COMPLETE, Some(3))
        );
        assert!(parsed.row.problem_list().contains_key("id"));
        complete.answers.insert("q9".into(), json!(0));
        assert!(
            parse(&complete, &catalogue, now())
                .unwrap_err()
                .contains_key("id")
        );
        // Without a safety answer: refused, every problem named.
        let refused = parse(&submission(json!({"q1": 1, "q9": 0})), &catalogue, now());
        assert!(refused.unwrap_err().contains_key("answers.q2"));
        let mut unknown = submission(json!({"q9": 3}));
        unknown.instrument = "phq99".into();
        assert!(
            parse(&unknown, &catalogue, now())
                .unwrap_err()
                .contains_key("instrument")
        );
    }

    #[test]
    fn a_body_around_a_safety_answer_is_read_as_well_as_it_can_be() {
        let catalogue = Catalogue::default();
        let body = json!({"id": 7, "instrument": "phq9", "answers": {"q9": 2},
                          "completed_at": "yesterday", "app_version": "3.1"});
        let (sent, envelope) = lenient(body.as_object().unwrap(), &catalogue, now()).unwrap();
        assert_eq!(sent.completed_at, now());
        for field in ["id", "completed_at", "app_version"] {
            assert!(envelope.contains_key(field), "{field}: {envelope:?}");
        }
        let parsed = parse_with(&sent, envelope, &catalogue, now()).unwrap();
        assert_eq!(parsed.row.status, INCOMPLETE);
        assert_eq!(parsed.row.item9, Some(2));
        assert!(parsed.row.problem_list().contains_key("app_version"));
        // No safety answer: nothing to read leniently.
        for other in [
            json!({"instrument": "phq9", "answers": {"q9": 0}, "extra": 1}),
            json!({"instrument": "gad7", "answers": {"q9": 2}}),
            json!({"instrument": "phq9", "answers": "q9=2"}),
            json!({"answers": {"q9": 2}}),
        ] {
            assert!(
                lenient(other.as_object().unwrap(), &catalogue, now()).is_none(),
                "{other}"
            );
        }
    }

    #[test]
    fn identical_answers_share_an_answers_digest_whatever_the_id_and_time() {
        let catalogue = Catalogue::default();
        let answers = json!({"q1": 1, "q2": 1, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 0, "q8": 0, "q9": 1});
        let first = parse(&submission(answers.clone()), &catalogue, now()).unwrap();
        let mut again = submission(answers);
        again.completed_at = "2026-06-01T10:03:00Z".parse().unwrap();
        let second = parse(&again, &catalogue, now()).unwrap();
        assert_eq!(first.row.answers_hash, second.row.answers_hash);
        assert_ne!(first.row.content_hash, second.row.content_hash);
    }
}
