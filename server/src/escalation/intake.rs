//! Runs the rules on a newly stored check-in, inside the check-in's transaction: the alerts it
//! opens, and the jobs that notify the care team, commit with the check-in or not at all.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::QueryResult;
use serde_json::Value;

use crate::auth::extract::Caller;
use crate::check_in::CheckInRow;
use crate::check_in::timing;
use crate::check_in::trends::{self, Record};
use crate::db::DbConnection;
use crate::time::utc;

use super::rules::{self, History, NewCheckIn, ScoredAnswer, Thresholds};
use super::store;

/// At most this many mood answers are read for the mood rules (22 days at a few a day is far
/// fewer).
const MOOD_ROWS: i64 = 200;

/// Evaluates the rules for `row` (already inserted on `conn` by `caller`, its patient) and opens
/// or updates alerts. The patient's zone and the clinic's thresholds come with the caller, read
/// with the session. Returns what each firing did.
pub fn on_check_in(
    conn: &mut DbConnection,
    caller: &Caller,
    row: &CheckInRow,
    answers: &BTreeMap<String, Value>,
) -> QueryResult<Vec<store::Raised>> {
    let completed = utc(row.completed_at);
    let thresholds: Thresholds = caller
        .clinic_alert_thresholds
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let tz = caller
        .timezone
        .parse::<chrono_tz::Tz>()
        .unwrap_or(chrono_tz::UTC);
    // Only what the rules for this instrument look at, in reads whose cost does not grow with the
    // patient's history: for a questionnaire, its baseline's two candidates (the lowest score of
    // the 90 days before, and the first score ever), each one indexed row; for mood, the numbers
    // of the last 22 days, capped so that a flood of submissions cannot make each one slower.
    let (scores, moods): (Vec<ScoredAnswer>, Vec<(chrono::NaiveDateTime, Option<f64>)>) =
        match row.instrument.as_str() {
            "phq9" | "gad7" => (baseline_candidates(conn, row)?, Vec::new()),
            "daily_mood" => (
                Vec::new(),
                crate::check_in::recent_moods(
                    conn,
                    &row.patient_id,
                    row.completed_at - TimeDelta::days(22),
                    row.completed_at,
                    &row.id,
                    MOOD_ROWS,
                )?,
            ),
            _ => (Vec::new(), Vec::new()),
        };
    let records: Vec<Record> = moods
        .iter()
        .filter_map(|(at, mood)| Some((*at, (*mood)?)))
        .chain(row.mood.map(|m| (row.completed_at, m)))
        .map(|(at, mood)| Record {
            id: String::new(),
            instrument: "daily_mood".to_owned(),
            total: None,
            mood: Some(mood),
            completed_at: utc(at),
        })
        .collect();
    let daily = trends::daily_mood(&records, tz, completed - TimeDelta::days(22))
        .into_iter()
        .map(|d| (d.date, d.mean))
        .collect();
    let still_detached = answers.get("still_detached").and_then(Value::as_bool);
    let last_session: Option<chrono::NaiveDateTime> = if still_detached == Some(true) {
        crate::treatment::last_completed_session_at(conn, &row.patient_id, row.completed_at)?
    } else {
        None
    };
    let (phq9, gad7) = match row.instrument.as_str() {
        "phq9" => (scores, Vec::new()),
        "gad7" => (Vec::new(), scores),
        _ => (Vec::new(), Vec::new()),
    };
    let history = History {
        phq9,
        gad7,
        daily_mood: daily,
        last_session_at: last_session.map(utc),
        clinic_baseline_phq9: None,
        clinic_baseline_gad7: None,
    };
    let int = |key: &str| answers.get(key).and_then(Value::as_i64);
    let new = NewCheckIn {
        instrument: row.instrument.clone(),
        completed_at: Some(completed),
        total: row.total.map(i64::from),
        item9: row.item9.map(i64::from),
        blood_pressure: int("bp_systolic").zip(int("bp_diastolic")),
        still_detached,
        late: timing::Timing::parse(&row.timing) == timing::Timing::Late,
    };
    let today = completed.with_timezone(&tz).date_naive();
    let firings = rules::evaluate(&new, &history, &thresholds, today);
    // Every alert says when its check-in was answered when that was not just now.
    let placed = timing::Placed {
        completed_at: completed,
        device_completed_at: row.device_completed_at.map(utc),
        timing: timing::Timing::parse(&row.timing),
    };
    // An amendment is a signal of its own, arriving when the amendment did.
    let arrived = row.amended_at.unwrap_or(row.received_at);
    let note = timing::note(&placed, utc(arrived));
    let signal = store::Signal {
        check_in_id: Some(&row.id),
        completed_at: Some(row.completed_at),
        received_at: arrived,
    };
    let mut touched = Vec::new();
    for mut firing in firings {
        if let Some(note) = &note {
            firing.explanation = format!("{}; {note}", firing.explanation);
        }
        if row.status == crate::check_in::INCOMPLETE {
            firing.explanation = format!(
                "{}; incomplete check-in ({} problem(s) with its other answers)",
                firing.explanation,
                row.problem_list().len()
            );
        }
        if row.amended_at.is_some() {
            firing.explanation = format!("{}; amended check-in", firing.explanation);
        }
        touched.push(store::raise(
            conn,
            &row.clinic_id,
            &row.patient_id,
            signal,
            &firing,
        )?);
    }
    Ok(touched)
}

/// The earlier scores a questionnaire's baseline can come from (see [`rules::baseline`]): the
/// lowest of the 90 days before `row`, and the first ever. Two single-row index reads, whatever
/// the number of earlier scores.
fn baseline_candidates(
    conn: &mut DbConnection,
    row: &CheckInRow,
) -> QueryResult<Vec<ScoredAnswer>> {
    let (lowest_recent, first) = crate::check_in::baseline_candidates(
        conn,
        &row.patient_id,
        &row.instrument,
        row.completed_at,
        &row.id,
        row.completed_at - TimeDelta::days(90),
    )?;
    Ok(lowest_recent
        .into_iter()
        .chain(first)
        .filter_map(|(at, total)| {
            Some(ScoredAnswer {
                total: i64::from(total?),
                completed_at: utc(at),
            })
        })
        .collect())
}

/// Runs the missed-check-in rule for a patient whose prompts just expired, inside the expiry's
/// transaction: counts the prompts expired in a row since the patient's latest sign of
/// engagement (a completed prompt, any check-in received, even one synced late) and since the
/// latest resolve of this rule's alert, and opens (or adds to) the alert when the clinic's
/// threshold is reached. So a resolve starts the count again rather than re-opening at every
/// further expiry.
pub fn on_prompts_expired(
    conn: &mut DbConnection,
    patient_id: &str,
    clinic_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<store::Raised>> {
    let now = now.naive_utc();
    let thresholds: Thresholds =
        store::read_setting(conn, clinic_id, store::AlertingSetting::AlertThresholds)?;
    let last_check_in = crate::check_in::last_received_at(conn, patient_id)?;
    let last_resolve = store::last_resolved_at(conn, patient_id, "missed_check_ins")?;
    let restart = last_check_in.max(last_resolve);
    let recent = crate::prompt::recent_finished_statuses(
        conn,
        patient_id,
        restart,
        i64::from(thresholds.missed_prompts),
    )?;
    let consecutive = recent.iter().take_while(|s| *s == "expired").count() as u32;
    match rules::missed_check_ins(consecutive, &thresholds) {
        Some(firing) => store::raise(
            conn,
            clinic_id,
            patient_id,
            store::Signal {
                check_in_id: None,
                completed_at: None,
                received_at: now,
            },
            &firing,
        )
        .map(Some),
        None => Ok(None),
    }
}
