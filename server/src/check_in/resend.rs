//! What a check-in sent again is (CLINICAL.md, part 2: "a safety answer is never refused for its
//! form"). Under an id already stored: the same content (now or in a version an amendment
//! replaced) is a replay; different answers that carry a higher safety answer than the stored
//! ones are an amendment, which is stored and raises the signal; any other difference is a
//! conflict. Under a new id: the same answers, completed and received within
//! [`SAME_ANSWERS_WINDOW`] of the first, are the same check-in, not a new page to the care team
//! (a phone that was offline and sends the same answers for several days sends different
//! completion times: each is kept). Pure.

use chrono::TimeDelta;

use crate::check_in::store::CheckInRow;

/// How long identical answers re-sent under a new id count as the first check-in.
pub const SAME_ANSWERS_WINDOW: TimeDelta = TimeDelta::minutes(10);

/// What a submission under a stored id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// The stored check-in, sent again: answer with it.
    Replay,
    /// A higher safety answer than the stored one: store it as an amendment and raise it.
    Amend,
    /// Other content under the same id.
    Conflict,
}

/// Of `candidates` (the patient's check-ins with the same answers received within the window,
/// first first), the one `sent` (under a new id) repeats: completed within
/// [`SAME_ANSWERS_WINDOW`] of it by the device's clock.
pub fn repeated<'a>(candidates: &'a [CheckInRow], sent: &CheckInRow) -> Option<&'a CheckInRow> {
    candidates.iter().find(|first| {
        first.answers_hash == sent.answers_hash
            && (first.device_time() - sent.device_time()).abs() <= SAME_ANSWERS_WINDOW
    })
}

/// Decides what `sent` is, given the check-in `existing` stored under its id (of the same
/// patient).
pub fn decide(existing: &CheckInRow, sent: &CheckInRow) -> Resend {
    if existing.content_hash == sent.content_hash
        || existing
            .earlier()
            .iter()
            .any(|version| version.content_hash == sent.content_hash)
    {
        return Resend::Replay;
    }
    let stored = existing.item9.unwrap_or(0);
    match sent.item9 {
        Some(answer) if answer >= 1 && answer > stored => Resend::Amend,
        _ => Resend::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_in::store::EarlierVersion;

    fn row(hash: &str, item9: Option<i32>) -> CheckInRow {
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        CheckInRow {
            id: "c".into(),
            patient_id: "p".into(),
            clinic_id: "k".into(),
            instrument: "phq9".into(),
            instrument_version: 1,
            answers: "{}".into(),
            total: None,
            severity: None,
            item9,
            completed_at: at,
            received_at: at,
            prompt_id: None,
            content_hash: hash.into(),
            device_completed_at: None,
            timing: "on_time".into(),
            mood: None,
            status: "complete".into(),
            problems: None,
            answers_hash: None,
            amended_at: None,
            earlier_versions: None,
            safety_alert_id: None,
        }
    }

    #[test]
    fn a_higher_safety_answer_amends_and_anything_else_different_conflicts() {
        let stored = row("a", Some(0));
        assert_eq!(decide(&stored, &row("a", Some(0))), Resend::Replay);
        assert_eq!(decide(&stored, &row("b", Some(3))), Resend::Amend);
        assert_eq!(decide(&stored, &row("b", Some(0))), Resend::Conflict);
        let gad7 = row("a", None);
        assert_eq!(decide(&gad7, &row("b", None)), Resend::Conflict);
        let item9 = row("a", Some(1));
        assert_eq!(decide(&item9, &row("b", Some(2))), Resend::Amend);
        assert_eq!(decide(&item9, &row("b", Some(1))), Resend::Conflict);
        assert_eq!(
            decide(&row("a", Some(3)), &row("b", Some(2))),
            Resend::Conflict
        );
    }

    #[test]
    fn the_same_answers_completed_within_ten_minutes_repeat_the_first_and_other_days_do_not() {
        let base = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let at = |minutes: i64| {
            let mut r = row("x", Some(1));
            r.answers_hash = Some("same".into());
            r.completed_at = base + TimeDelta::minutes(minutes);
            r
        };
        let stored = [at(0), at(60 * 24)];
        assert_eq!(
            repeated(&stored, &at(0)).map(|r| r.completed_at),
            Some(base)
        );
        assert!(repeated(&stored, &at(9)).is_some());
        assert!(
            repeated(&stored, &at(11)).is_none(),
            "a day's answers of its own"
        );
        let mut other = at(0);
        other.answers_hash = Some("different".into());
        assert!(repeated(&stored, &other).is_none());
    }

    #[test]
    fn a_late_resend_of_a_replaced_version_is_a_replay() {
        let mut amended = row("b", Some(3));
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        amended.earlier_versions = serde_json::to_string(&[EarlierVersion {
            answers: serde_json::json!({}),
            total: Some(0),
            item9: Some(0),
            status: "complete".into(),
            problems: None,
            completed_at: at,
            replaced_at: at,
            content_hash: "a".into(),
        }])
        .ok();
        assert_eq!(decide(&amended, &row("a", Some(0))), Resend::Replay);
        assert_eq!(decide(&amended, &row("c", Some(1))), Resend::Conflict);
    }
}
