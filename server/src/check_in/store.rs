//! Check-in rows.

use chrono::NaiveDateTime;
use companion_schema::schema::check_ins;
use diesel::IntoSql;
use diesel::prelude::*;

use crate::db::DbConnection;

/// A check-in as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = check_ins)]
pub struct CheckInRow {
    /// The client's id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// The patient's clinic when submitted.
    pub clinic_id: String,
    /// Catalogue key.
    pub instrument: String,
    /// Catalogue version answered.
    pub instrument_version: i32,
    /// Validated answers, canonical JSON.
    pub answers: String,
    /// Total score, if the instrument has one.
    pub total: Option<i32>,
    /// Severity band key.
    pub severity: Option<String>,
    /// PHQ-9 item 9 answer.
    pub item9: Option<i32>,
    /// When the patient completed it: the device's clock, or the receipt when that clock was
    /// ahead beyond the allowed skew (see [`super::timing`]).
    pub completed_at: NaiveDateTime,
    /// When the server stored it.
    pub received_at: NaiveDateTime,
    /// The prompt it answered, if any.
    pub prompt_id: Option<String>,
    /// Digest of the submitted content, to tell a replay from a conflicting reuse of the id.
    pub content_hash: String,
    /// The device's own time, kept when it was not believed.
    pub device_completed_at: Option<NaiveDateTime>,
    /// `on_time`, `clock_ahead` or `late` (see [`super::timing::Timing`]).
    pub timing: String,
    /// The mood answer of a daily mood check-in.
    pub mood: Option<f64>,
    /// `complete`, or `incomplete`: a safety answer kept although other answers were missing,
    /// out of range or unknown (no total; see `problems`).
    pub status: String,
    /// What was wrong with an incomplete check-in, JSON (field to message).
    pub problems: Option<String>,
    /// Digest of the instrument, version and answers alone (not the id or the time), to know
    /// identical answers re-sent under a new id.
    pub answers_hash: Option<String>,
    /// When the last amendment arrived (the same id re-sent with a higher safety answer).
    pub amended_at: Option<NaiveDateTime>,
    /// The versions amendments replaced, oldest first, JSON (see [`EarlierVersion`]).
    pub earlier_versions: Option<String>,
    /// The urgent or high alert its answers raised or joined (what `safety.care_team` reports
    /// on), if any.
    pub safety_alert_id: Option<String>,
}

/// `status` of a check-in whose answers all validated.
pub const COMPLETE: &str = "complete";
/// `status` of a safety answer kept with problems.
pub const INCOMPLETE: &str = "incomplete";

/// A version of a check-in that an amendment replaced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlierVersion {
    /// Its answers, as stored then.
    pub answers: serde_json::Value,
    /// Its total, if it had one.
    pub total: Option<i32>,
    /// Its safety item answer, if any.
    pub item9: Option<i32>,
    /// `complete` or `incomplete`.
    pub status: String,
    /// Its problems, if incomplete.
    #[serde(default)]
    pub problems: Option<serde_json::Value>,
    /// When it said it was completed.
    pub completed_at: NaiveDateTime,
    /// When the amendment replaced it.
    pub replaced_at: NaiveDateTime,
    /// Its content digest, so that a late re-send of it is known as a replay.
    pub content_hash: String,
}

impl CheckInRow {
    /// The versions amendments replaced, oldest first.
    pub fn earlier(&self) -> Vec<EarlierVersion> {
        self.earlier_versions
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    /// The problems of an incomplete check-in, by field.
    pub fn problem_list(&self) -> std::collections::BTreeMap<String, String> {
        self.problems
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    /// When the device said it was completed (its own clock, even when that was not believed).
    pub fn device_time(&self) -> NaiveDateTime {
        self.device_completed_at.unwrap_or(self.completed_at)
    }

    /// True when the safety item (PHQ-9 item 9) was answered 1 or more.
    pub fn safety_signal(&self) -> bool {
        self.item9.is_some_and(|v| v >= 1)
    }
}

/// Names the urgent or high alert a check-in's answers raised or joined.
pub fn set_safety_alert(conn: &mut DbConnection, id: &str, alert_id: &str) -> QueryResult<()> {
    diesel::update(check_ins::table.find(id))
        .set(check_ins::safety_alert_id.eq(alert_id))
        .execute(conn)
        .map(drop)
}

/// Finds a check-in by id (whoever it belongs to).
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<CheckInRow>> {
    check_ins::table
        .find(id)
        .select(CheckInRow::as_select())
        .first(conn)
        .optional()
}

/// Inserts a check-in unless one with its id exists, or the patient sent the same answers
/// (`answers_hash`), received at or after `since` and completed (by the device's clock) within
/// `near` of this one; true when it was inserted. One statement (`INSERT … SELECT … WHERE NOT
/// EXISTS … ON CONFLICT DO NOTHING`), so a first submission costs a single round trip and
/// concurrent replays cannot both insert; the caller reads what stopped it only when it did.
pub fn insert_unless_repeated(
    conn: &mut DbConnection,
    row: &CheckInRow,
    since: NaiveDateTime,
    near: chrono::TimeDelta,
) -> QueryResult<bool> {
    use diesel::dsl::{exists, not};
    use diesel::sql_types::{Double, Integer, Nullable, Text, Timestamp};
    let (low, high) = (row.device_time() - near, row.device_time() + near);
    let repeated = check_ins::table
        .filter(check_ins::patient_id.eq(row.patient_id.clone()))
        .filter(check_ins::answers_hash.eq(row.answers_hash.clone()))
        .filter(check_ins::received_at.ge(since))
        .filter(
            check_ins::device_completed_at
                .is_null()
                .and(check_ins::completed_at.between(low, high))
                .or(check_ins::device_completed_at.between(low, high)),
        )
        .select(check_ins::id);
    let values = diesel::select((
        (
            row.id.clone().into_sql::<Text>(),
            row.patient_id.clone().into_sql::<Text>(),
            row.clinic_id.clone().into_sql::<Text>(),
            row.instrument.clone().into_sql::<Text>(),
            row.instrument_version.into_sql::<Integer>(),
            row.answers.clone().into_sql::<Text>(),
            row.total.into_sql::<Nullable<Integer>>(),
            row.severity.clone().into_sql::<Nullable<Text>>(),
            row.item9.into_sql::<Nullable<Integer>>(),
            row.completed_at.into_sql::<Timestamp>(),
            row.received_at.into_sql::<Timestamp>(),
        ),
        (
            row.prompt_id.clone().into_sql::<Nullable<Text>>(),
            row.content_hash.clone().into_sql::<Text>(),
            row.device_completed_at.into_sql::<Nullable<Timestamp>>(),
            row.timing.clone().into_sql::<Text>(),
            row.mood.into_sql::<Nullable<Double>>(),
            row.status.clone().into_sql::<Text>(),
            row.problems.clone().into_sql::<Nullable<Text>>(),
            row.answers_hash.clone().into_sql::<Nullable<Text>>(),
            row.amended_at.into_sql::<Nullable<Timestamp>>(),
            row.earlier_versions.clone().into_sql::<Nullable<Text>>(),
        ),
    ))
    .filter(not(exists(repeated)));
    let columns = (
        (
            check_ins::id,
            check_ins::patient_id,
            check_ins::clinic_id,
            check_ins::instrument,
            check_ins::instrument_version,
            check_ins::answers,
            check_ins::total,
            check_ins::severity,
            check_ins::item9,
            check_ins::completed_at,
            check_ins::received_at,
        ),
        (
            check_ins::prompt_id,
            check_ins::content_hash,
            check_ins::device_completed_at,
            check_ins::timing,
            check_ins::mood,
            check_ins::status,
            check_ins::problems,
            check_ins::answers_hash,
            check_ins::amended_at,
            check_ins::earlier_versions,
        ),
    );
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(check_ins::table)
        .values(values.clone())
        .into_columns(columns)
        .on_conflict_do_nothing()
        .execute(c)?);
    Ok(inserted == 1)
}

/// The patient's check-ins with these answers (`answers_hash`) received at or after `since`,
/// first received first (to know identical answers re-sent under a new id).
pub fn identical_since(
    conn: &mut DbConnection,
    patient_id: &str,
    answers_hash: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<CheckInRow>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .filter(check_ins::answers_hash.eq(answers_hash))
        .filter(check_ins::received_at.ge(since))
        .select(CheckInRow::as_select())
        .order((check_ins::received_at.asc(), check_ins::id.asc()))
        .limit(20)
        .load(conn)
}

/// Replaces `existing` by `amended` (same id) unless it changed since it was read; the replaced
/// version joins `earlier_versions`. True when replaced.
pub fn amend(
    conn: &mut DbConnection,
    existing: &CheckInRow,
    amended: &CheckInRow,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let mut earlier = existing.earlier();
    earlier.push(EarlierVersion {
        answers: serde_json::from_str(&existing.answers).unwrap_or_default(),
        total: existing.total,
        item9: existing.item9,
        status: existing.status.clone(),
        problems: existing
            .problems
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
        completed_at: existing.completed_at,
        replaced_at: now,
        content_hash: existing.content_hash.clone(),
    });
    let earlier = serde_json::to_string(&earlier)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let changed = diesel::update(
        check_ins::table
            .filter(check_ins::id.eq(&existing.id))
            .filter(check_ins::content_hash.eq(&existing.content_hash)),
    )
    .set((
        check_ins::answers.eq(&amended.answers),
        check_ins::total.eq(amended.total),
        check_ins::severity.eq(&amended.severity),
        check_ins::item9.eq(amended.item9),
        check_ins::completed_at.eq(amended.completed_at),
        check_ins::device_completed_at.eq(amended.device_completed_at),
        check_ins::timing.eq(&amended.timing),
        check_ins::mood.eq(amended.mood),
        check_ins::content_hash.eq(&amended.content_hash),
        check_ins::answers_hash.eq(&amended.answers_hash),
        check_ins::status.eq(&amended.status),
        check_ins::problems.eq(&amended.problems),
        check_ins::amended_at.eq(Some(now)),
        check_ins::earlier_versions.eq(Some(earlier)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// History filters.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only this instrument.
    pub instrument: Option<String>,
    /// Completed at or after.
    pub from: Option<NaiveDateTime>,
    /// Completed before.
    pub to: Option<NaiveDateTime>,
    /// Continue after this (completed_at, id), newest first.
    pub before: Option<(NaiveDateTime, String)>,
}

/// A page of a patient's check-ins, newest first.
pub fn history(
    conn: &mut DbConnection,
    patient_id: &str,
    filter: &HistoryFilter,
    limit: i64,
) -> QueryResult<Vec<CheckInRow>> {
    let mut query = check_ins::table
        .filter(check_ins::patient_id.eq(patient_id.to_owned()))
        .select(CheckInRow::as_select())
        .order((check_ins::completed_at.desc(), check_ins::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(instrument) = &filter.instrument {
        query = query.filter(check_ins::instrument.eq(instrument.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(check_ins::completed_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(check_ins::completed_at.lt(to));
    }
    if let Some((at, id)) = &filter.before {
        query = query.filter(
            check_ins::completed_at.lt(*at).or(check_ins::completed_at
                .eq(*at)
                .and(check_ins::id.lt(id.clone()))),
        );
    }
    query.load(conn)
}

/// Every check-in of a patient completed at or after `since`, oldest first (for trends).
pub fn since(
    conn: &mut DbConnection,
    patient_id: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<CheckInRow>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .filter(check_ins::completed_at.ge(since))
        .select(CheckInRow::as_select())
        .order((check_ins::completed_at.asc(), check_ins::id.asc()))
        .load(conn)
}

/// The first scored check-in of each instrument (the pre-treatment reference for response).
pub fn first_of(
    conn: &mut DbConnection,
    patient_id: &str,
    instrument: &str,
) -> QueryResult<Option<CheckInRow>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .filter(check_ins::instrument.eq(instrument))
        .filter(check_ins::total.is_not_null())
        .select(CheckInRow::as_select())
        .order((check_ins::completed_at.asc(), check_ins::id.asc()))
        .first(conn)
        .optional()
}

/// Each patient's latest completed check-in time, for those who have one.
pub fn latest_completed(
    conn: &mut DbConnection,
    patient_ids: &[String],
) -> QueryResult<Vec<(String, Option<NaiveDateTime>)>> {
    check_ins::table
        .filter(check_ins::patient_id.eq_any(patient_ids))
        .group_by(check_ins::patient_id)
        .select((
            check_ins::patient_id,
            diesel::dsl::max(check_ins::completed_at),
        ))
        .load(conn)
}

/// The daily mood answers of `patient_id` completed in `[since, until]`, except the check-in
/// `except_id`, newest first and at most `limit` of them: when each was completed and its mood.
/// Read by the mood rules inside the new check-in's transaction.
pub fn recent_moods(
    conn: &mut DbConnection,
    patient_id: &str,
    since: NaiveDateTime,
    until: NaiveDateTime,
    except_id: &str,
    limit: i64,
) -> QueryResult<Vec<(NaiveDateTime, Option<f64>)>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .filter(check_ins::instrument.eq("daily_mood"))
        .filter(check_ins::completed_at.le(until))
        .filter(check_ins::completed_at.ge(since))
        .filter(check_ins::id.ne(except_id))
        .select((check_ins::completed_at, check_ins::mood))
        .order(check_ins::completed_at.desc())
        .limit(limit)
        .load(conn)
}

/// An earlier score: when it was completed, and its total.
pub type ScoreAt = (NaiveDateTime, Option<i32>);

/// The two earlier scores a questionnaire's baseline can come from, for a check-in of
/// `instrument` by `patient_id` completed at `before` (the check-in `except_id` left out): the
/// lowest score completed since `recent_since` (the earliest of equal ones), and the first score
/// ever. Each is one indexed row, `(completed_at, total)`, read in the caller's transaction.
pub fn baseline_candidates(
    conn: &mut DbConnection,
    patient_id: &str,
    instrument: &str,
    before: NaiveDateTime,
    except_id: &str,
    recent_since: NaiveDateTime,
) -> QueryResult<(Option<ScoreAt>, Option<ScoreAt>)> {
    let earlier = || {
        check_ins::table
            .filter(check_ins::patient_id.eq(patient_id))
            .filter(check_ins::instrument.eq(instrument))
            .filter(check_ins::completed_at.lt(before))
            .filter(check_ins::id.ne(except_id))
            .filter(check_ins::total.is_not_null())
            .select((check_ins::completed_at, check_ins::total))
            .into_boxed()
    };
    let lowest_recent = earlier()
        .filter(check_ins::completed_at.ge(recent_since))
        .order((check_ins::total.asc(), check_ins::completed_at.asc()))
        .first(conn)
        .optional()?;
    let first = earlier()
        .order(check_ins::completed_at.asc())
        .first(conn)
        .optional()?;
    Ok((lowest_recent, first))
}

/// When the latest check-in of `patient_id` was received (any check-in, even one synced late),
/// or `None` if there is none.
pub fn last_received_at(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Option<NaiveDateTime>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .select(diesel::dsl::max(check_ins::received_at))
        .first(conn)
}

/// Deletes every check-in of `patient_id` (the patient is being erased).
pub fn delete_of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<usize> {
    diesel::delete(check_ins::table.filter(check_ins::patient_id.eq(patient_id))).execute(conn)
}

/// Unlinks every check-in of `patient_id` from the prompt it answered (the patient is being
/// erased, and their prompts go).
pub fn unlink_prompts_of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<usize> {
    diesel::update(check_ins::table.filter(check_ins::patient_id.eq(patient_id)))
        .set(check_ins::prompt_id.eq(None::<String>))
        .execute(conn)
}

/// Every check-in of `patient_id` as (id, answers JSON).
pub fn answers_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Vec<(String, String)>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .select((check_ins::id, check_ins::answers))
        .load(conn)
}

/// Replaces the answers (JSON) of the check-in `id`.
pub fn set_answers(conn: &mut DbConnection, id: &str, answers: &str) -> QueryResult<()> {
    diesel::update(check_ins::table.find(id))
        .set(check_ins::answers.eq(answers))
        .execute(conn)
        .map(drop)
}

/// Forgets the versions amendments replaced, for every check-in of `patient_id`.
pub fn forget_earlier_versions_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<usize> {
    diesel::update(check_ins::table.filter(check_ins::patient_id.eq(patient_id)))
        .set(check_ins::earlier_versions.eq(None::<String>))
        .execute(conn)
}

/// Deletes the check-ins of `clinic_id` completed before `before`, except those an unresolved
/// alert names (as the check-in that raised it last, or in one of its signal events: escalation's
/// `alerts` and `alert_events`, read here in the same statement). Returns how many went.
pub fn purge_completed_before(
    conn: &mut DbConnection,
    clinic_id: &str,
    before: NaiveDateTime,
) -> QueryResult<usize> {
    use companion_schema::schema::{alert_events, alerts};
    let unresolved = alerts::table
        .filter(alerts::clinic_id.eq(clinic_id))
        .filter(alerts::status.ne("resolved"));
    let named_by_alert = unresolved
        .filter(alerts::check_in_id.is_not_null())
        .select(alerts::check_in_id.assume_not_null());
    let named_by_signal = alert_events::table
        .filter(alert_events::check_in_id.is_not_null())
        .filter(alert_events::alert_id.eq_any(unresolved.select(alerts::id)))
        .select(alert_events::check_in_id.assume_not_null());
    diesel::delete(
        check_ins::table
            .filter(check_ins::clinic_id.eq(clinic_id))
            .filter(check_ins::completed_at.lt(before))
            .filter(diesel::dsl::not(check_ins::id.eq_any(named_by_alert)))
            .filter(diesel::dsl::not(check_ins::id.eq_any(named_by_signal))),
    )
    .execute(conn)
}

/// A check-in as its patient's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedCheckIn {
    /// Id.
    pub id: String,
    /// Catalogue key.
    pub instrument: String,
    /// Catalogue version.
    pub instrument_version: i32,
    /// Answers, JSON.
    pub answers: String,
    /// Total score.
    pub total: Option<i32>,
    /// Severity band.
    pub severity: Option<String>,
    /// Completed.
    pub completed_at: NaiveDateTime,
    /// Received.
    pub received_at: NaiveDateTime,
    /// `on_time`, `clock_ahead` or `late`.
    pub timing: String,
}

/// Every check-in of `patient_id`, by completion time, for their export.
pub fn exported_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Vec<ExportedCheckIn>> {
    check_ins::table
        .filter(check_ins::patient_id.eq(patient_id))
        .order(check_ins::completed_at)
        .select((
            check_ins::id,
            check_ins::instrument,
            check_ins::instrument_version,
            check_ins::answers,
            check_ins::total,
            check_ins::severity,
            check_ins::completed_at,
            check_ins::received_at,
            check_ins::timing,
        ))
        .load(conn)
}
