//! Schedules and prompts as stored, and the writes of their lifecycle. Every function runs on a
//! connection the caller holds (normally inside its transaction); the decisions come from the pure
//! planner and local-time code.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use companion_schema::ids::PromptId;
use companion_schema::schema::{accounts, clinics, patient_schedules, prompts, treatment_sessions};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::jobs::{self, NewJob};
use crate::time::utc;

use super::local_time::{ClockTime, DailySpan};
use super::plan::CarePlan;
use super::planner::{self, Planned, Session};

/// Prompt states.
pub mod status {
    /// Planned, not sent yet.
    pub const SCHEDULED: &str = "scheduled";
    /// Pushed to the patient's devices.
    pub const SENT: &str = "sent";
    /// Reminded once.
    pub const REMINDED: &str = "reminded";
    /// Answered by a check-in.
    pub const COMPLETED: &str = "completed";
    /// Not answered in time; counts as missed.
    pub const EXPIRED: &str = "expired";
    /// Withdrawn because what it was planned for changed.
    pub const CANCELLED: &str = "cancelled";
    /// States in which a prompt can still be answered.
    pub const OPEN: [&str; 3] = [SCHEDULED, SENT, REMINDED];
}

/// The check-in window a new patient starts with.
pub const DEFAULT_WINDOW: DailySpan = DailySpan {
    start: clock(9, 0),
    end: clock(11, 0),
};

/// Quiet hours a new patient starts with (CLINICAL.md).
pub const DEFAULT_QUIET: DailySpan = DailySpan {
    start: clock(21, 0),
    end: clock(8, 0),
};

const fn clock(hour: u16, minute: u16) -> ClockTime {
    ClockTime::from_minutes(hour * 60 + minute)
}

/// A patient's prompt schedule.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = patient_schedules)]
#[diesel(treat_none_as_null = true)]
pub struct ScheduleRow {
    /// The patient.
    pub patient_id: String,
    /// The patient's clinic.
    pub clinic_id: String,
    /// Check-in window start, `HH:MM`.
    pub window_start: String,
    /// Check-in window end.
    pub window_end: String,
    /// Quiet hours start.
    pub quiet_start: String,
    /// Quiet hours end.
    pub quiet_end: String,
    /// The patient's own plan (JSON), overriding the clinic's.
    pub care_plan: Option<String>,
    /// Prompts are planned up to here.
    pub planned_until: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

impl ScheduleRow {
    /// A new patient's schedule with the defaults.
    pub fn new(patient_id: &str, clinic_id: &str, now: NaiveDateTime) -> Self {
        Self {
            patient_id: patient_id.to_owned(),
            clinic_id: clinic_id.to_owned(),
            window_start: DEFAULT_WINDOW.start.to_string(),
            window_end: DEFAULT_WINDOW.end.to_string(),
            quiet_start: DEFAULT_QUIET.start.to_string(),
            quiet_end: DEFAULT_QUIET.end.to_string(),
            care_plan: None,
            planned_until: now,
            updated_at: now,
        }
    }

    /// The check-in window (validated when stored).
    pub fn window(&self) -> DailySpan {
        span(&self.window_start, &self.window_end).unwrap_or(DEFAULT_WINDOW)
    }

    /// The quiet hours.
    pub fn quiet(&self) -> DailySpan {
        span(&self.quiet_start, &self.quiet_end).unwrap_or(DEFAULT_QUIET)
    }
}

fn span(start: &str, end: &str) -> Option<DailySpan> {
    Some(DailySpan::new(start.parse().ok()?, end.parse().ok()?))
}

/// A prompt as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = prompts)]
#[diesel(treat_none_as_default_value = false)]
pub struct PromptRow {
    /// Id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// The clinic.
    pub clinic_id: String,
    /// What it asks for (see the planner).
    pub slot: String,
    /// The rule that planned it.
    pub rule: String,
    /// Instrument key.
    pub instrument: String,
    /// The session of a before-session prompt.
    pub session_id: Option<String>,
    /// See [`status`].
    pub status: String,
    /// The local time aimed at, `YYYY-MM-DDTHH:MM`.
    pub local_time: String,
    /// When it is sent.
    pub due_at: NaiveDateTime,
    /// When it is reminded, if it is.
    pub remind_at: Option<NaiveDateTime>,
    /// When it expires.
    pub expires_at: NaiveDateTime,
    /// When it was sent.
    pub sent_at: Option<NaiveDateTime>,
    /// When it was reminded.
    pub reminded_at: Option<NaiveDateTime>,
    /// When it was completed, expired or cancelled.
    pub closed_at: Option<NaiveDateTime>,
    /// The check-in that completed it.
    pub check_in_id: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

impl PromptRow {
    fn planned(p: &Planned, patient_id: &str, clinic_id: &str, now: NaiveDateTime) -> Self {
        Self {
            id: PromptId::generate().into_string(),
            patient_id: patient_id.to_owned(),
            clinic_id: clinic_id.to_owned(),
            slot: p.slot.clone(),
            rule: p.rule.clone(),
            instrument: p.instrument.clone(),
            session_id: p.session_id.clone(),
            status: status::SCHEDULED.into(),
            local_time: minute_text(p.local_time),
            due_at: p.due_at.naive_utc(),
            remind_at: p.remind_at.map(|r| r.naive_utc()),
            expires_at: p.expires_at.naive_utc(),
            sent_at: None,
            reminded_at: None,
            closed_at: None,
            check_in_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether this stored prompt is exactly what `p` plans.
    fn matches(&self, p: &Planned) -> bool {
        self.due_at == p.due_at.naive_utc()
            && self.expires_at == p.expires_at.naive_utc()
            && self.remind_at == p.remind_at.map(|r| r.naive_utc())
            && self.instrument == p.instrument
    }
}

/// `YYYY-MM-DDTHH:MM`, as stored: written field by field, since a day's planning writes one for
/// every prompt and `format` parses its pattern each time.
fn minute_text(at: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// Inserts a new patient's schedule (on enrolment).
pub fn create_schedule(conn: &mut DbConnection, row: &ScheduleRow) -> QueryResult<()> {
    diesel::insert_into(patient_schedules::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The patients of `clinic_id` with a prompt still open.
pub fn patients_with_open_prompts(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<Vec<String>> {
    prompts::table
        .filter(prompts::clinic_id.eq(clinic_id))
        .filter(prompts::status.eq_any(status::OPEN))
        .select(prompts::patient_id)
        .distinct()
        .load(conn)
}

/// Cancels every open prompt of `patients` at `stamp`.
pub fn cancel_open(
    conn: &mut DbConnection,
    patients: &[&String],
    stamp: NaiveDateTime,
) -> QueryResult<()> {
    for chunk in patients.chunks(500) {
        diesel::update(
            prompts::table
                .filter(prompts::patient_id.eq_any(chunk))
                .filter(prompts::status.eq_any(status::OPEN)),
        )
        .set((
            prompts::status.eq(status::CANCELLED),
            prompts::closed_at.eq(Some(stamp)),
            prompts::updated_at.eq(stamp),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// A patient's schedule.
pub fn find_schedule(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Option<ScheduleRow>> {
    patient_schedules::table
        .find(patient_id)
        .select(ScheduleRow::as_select())
        .first(conn)
        .optional()
}

/// Saves a changed schedule.
pub fn save_schedule(conn: &mut DbConnection, row: &ScheduleRow) -> QueryResult<()> {
    diesel::update(patient_schedules::table.find(&row.patient_id))
        .set(row)
        .execute(conn)
        .map(drop)
}

/// What the planner needs for one patient, as read.
struct Inputs {
    schedule: ScheduleRow,
    timezone: String,
    clinic_plan: Option<String>,
}

fn load_inputs(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<Inputs>> {
    let rows: Vec<(ScheduleRow, String, Option<String>)> = patient_schedules::table
        .inner_join(accounts::table.inner_join(clinics::table))
        .filter(patient_schedules::patient_id.eq_any(ids))
        .filter(accounts::disabled_at.is_null())
        .select((
            ScheduleRow::as_select(),
            accounts::timezone,
            clinics::care_plan,
        ))
        .load(conn)?;
    // Consent gates prompting: nobody is planned for while their clinic's consent document in
    // force is not accepted (a clinic without one gates nobody).
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|(s, _, _)| (s.patient_id.as_str(), s.clinic_id.as_str()))
        .collect();
    let gated = crate::lifecycle::unconsented(conn, &pairs)?;
    Ok(rows
        .into_iter()
        .filter(|(schedule, _, _)| !gated.contains(&schedule.patient_id))
        .map(|(schedule, timezone, clinic_plan)| Inputs {
            schedule,
            timezone,
            clinic_plan,
        })
        .collect())
}

/// Sessions that can anchor prompts between `from` and `to`: not cancelled, from 61 days before
/// (after-session rules reach 60 days) to 73 hours after (before-session rules reach 72 hours).
fn load_sessions(
    conn: &mut DbConnection,
    ids: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<HashMap<String, Vec<Session>>> {
    let rows: Vec<(String, String, String, NaiveDateTime)> = treatment_sessions::table
        .filter(treatment_sessions::patient_id.eq_any(ids))
        .filter(treatment_sessions::status.ne("cancelled"))
        .filter(treatment_sessions::scheduled_at.ge((from - TimeDelta::days(61)).naive_utc()))
        .filter(treatment_sessions::scheduled_at.le((to + TimeDelta::hours(73)).naive_utc()))
        .select((
            treatment_sessions::patient_id,
            treatment_sessions::id,
            treatment_sessions::status,
            treatment_sessions::scheduled_at,
        ))
        .order((treatment_sessions::scheduled_at, treatment_sessions::id))
        .load(conn)?;
    let mut out: HashMap<String, Vec<Session>> = HashMap::new();
    for (patient, id, status, at) in rows {
        out.entry(patient).or_default().push(Session {
            id,
            at: utc(at),
            scheduled: status == "scheduled",
        });
    }
    Ok(out)
}

/// Parsed plans, shared across the patients of a batch.
#[derive(Default)]
struct Plans(HashMap<Option<String>, CarePlan>);

impl Plans {
    /// The plan in force: the patient's own, else the clinic's, else the default.
    fn for_patient(&mut self, inputs: &Inputs) -> &CarePlan {
        let key = inputs
            .schedule
            .care_plan
            .clone()
            .or_else(|| inputs.clinic_plan.clone());
        self.0.entry(key).or_insert_with_key(|key| {
            key.as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default()
        })
    }
}

fn plan_patient(
    inputs: &Inputs,
    plans: &mut Plans,
    sessions: &[Session],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Planned> {
    let tz = inputs.timezone.parse::<Tz>().unwrap_or(chrono_tz::UTC);
    let plan = plans.for_patient(inputs);
    let patient = planner::Patient {
        id: &inputs.schedule.patient_id,
        tz,
        window: inputs.schedule.window(),
        quiet: inputs.schedule.quiet(),
        plan,
        sessions,
    };
    planner::plan(&patient, from, to)
}

/// What a regeneration changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replanned {
    /// Prompts added.
    pub added: usize,
    /// Prompts withdrawn.
    pub cancelled: usize,
}

/// Regenerates one patient's prompts from `now` to `now + horizon` after a change (session moved
/// or cancelled, zone, window or plan changed). Idempotent: unchanged prompts stay as they are,
/// scheduled prompts that no longer match the plan are cancelled and replaced, open prompts of a
/// cancelled or moved session are withdrawn, completed and expired ones are never touched.
pub fn replan(
    conn: &mut DbConnection,
    patient_id: &str,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> QueryResult<Replanned> {
    let ids = [patient_id.to_owned()];
    let stamp = now.naive_utc();
    let Some(inputs) = load_inputs(conn, &ids)?.into_iter().next() else {
        // Not an enabled patient (disabled, or not a patient at all): nothing stays open.
        let cancelled = diesel::update(
            prompts::table
                .filter(prompts::patient_id.eq(patient_id))
                .filter(prompts::status.eq_any(status::OPEN)),
        )
        .set((
            prompts::status.eq(status::CANCELLED),
            prompts::closed_at.eq(Some(stamp)),
            prompts::updated_at.eq(stamp),
        ))
        .execute(conn)?;
        return Ok(Replanned {
            added: 0,
            cancelled,
        });
    };
    let (from, to) = (now - TimeDelta::days(2), now + horizon);
    let sessions = load_sessions(conn, &ids, from, to)?
        .remove(patient_id)
        .unwrap_or_default();
    let desired = plan_patient(&inputs, &mut Plans::default(), &sessions, from, to);
    let by_slot: HashMap<&str, &Planned> = desired.iter().map(|p| (p.slot.as_str(), p)).collect();
    let scheduled_sessions: BTreeSet<&str> = sessions
        .iter()
        .filter(|s| s.scheduled)
        .map(|s| s.id.as_str())
        .collect();
    let open: Vec<PromptRow> = prompts::table
        .filter(prompts::patient_id.eq(patient_id))
        .filter(prompts::status.eq_any(status::OPEN))
        .select(PromptRow::as_select())
        .load(conn)?;
    let mut cancel = Vec::new();
    let mut live = BTreeSet::new();
    for prompt in &open {
        let wanted = by_slot.get(prompt.slot.as_str());
        let keep = if prompt.rule == FOLLOW_UP_RULE {
            // Asked for by a check-in, not by the plan: a new plan does not take it back.
            true
        } else if prompt.status == status::SCHEDULED {
            // Unchanged, or already due by the plan (perhaps held back by quiet hours at
            // sending time): the workers are about to send it as it is.
            wanted.is_some_and(|p| {
                prompt.matches(p) || (p.due_at <= now && p.instrument == prompt.instrument)
            })
        } else {
            // Sent: the patient has seen it. Withdraw it only if its session is gone or moved.
            match &prompt.session_id {
                Some(session) => {
                    scheduled_sessions.contains(session.as_str())
                        && wanted.is_none_or(|p| prompt.matches(p))
                }
                None => true,
            }
        };
        if keep {
            live.insert(prompt.slot.clone());
        } else {
            cancel.push(prompt.id.clone());
        }
    }
    if !cancel.is_empty() {
        diesel::update(prompts::table.filter(prompts::id.eq_any(&cancel)))
            .set((
                prompts::status.eq(status::CANCELLED),
                prompts::closed_at.eq(Some(stamp)),
                prompts::updated_at.eq(stamp),
            ))
            .execute(conn)?;
    }
    let new: Vec<PromptRow> = desired
        .iter()
        .filter(|p| p.due_at >= now && !live.contains(&p.slot))
        .map(|p| PromptRow::planned(p, patient_id, &inputs.schedule.clinic_id, stamp))
        .collect();
    let added = insert_new(conn, &new)?;
    diesel::update(patient_schedules::table.find(patient_id))
        .set(patient_schedules::planned_until.eq(to.naive_utc()))
        .execute(conn)?;
    Ok(Replanned {
        added,
        cancelled: cancel.len(),
    })
}

/// The rule name of the PHQ-9 asked after a positive PHQ-2 (not a care-plan rule: replanning
/// leaves it alone).
pub const FOLLOW_UP_RULE: &str = "positive_screen_follow_up";

/// How soon after a positive PHQ-2 the PHQ-9 is asked (CLINICAL.md: within 24 hours).
pub const FOLLOW_UP_WITHIN: TimeDelta = TimeDelta::hours(24);

/// Schedules the PHQ-9 a positive PHQ-2 (`check_in_id`) calls for: due at once, or when the
/// patient's quiet hours end, open for 48 hours, reminded once after 4. None when the patient
/// already has a PHQ-9 open or due within [`FOLLOW_UP_WITHIN`] (it asks the same), or has no
/// schedule (not an enrolled patient). Returns the prompt's id.
pub fn schedule_follow_up(
    conn: &mut DbConnection,
    patient_id: &str,
    check_in_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<String>> {
    let stamp = now.naive_utc();
    let Some(schedule) = find_schedule(conn, patient_id)? else {
        return Ok(None);
    };
    let already: i64 = prompts::table
        .filter(prompts::patient_id.eq(patient_id))
        .filter(prompts::instrument.eq("phq9"))
        .filter(prompts::status.eq_any(status::OPEN))
        .filter(prompts::expires_at.gt(stamp))
        .filter(prompts::due_at.le((now + FOLLOW_UP_WITHIN).naive_utc()))
        .count()
        .get_result(conn)?;
    if already > 0 {
        return Ok(None);
    }
    let zone: String = accounts::table
        .find(patient_id)
        .select(accounts::timezone)
        .first(conn)?;
    let tz = zone.parse::<Tz>().unwrap_or(chrono_tz::UTC);
    let due = super::local_time::next_allowed(tz, now, schedule.quiet());
    let expires = due + TimeDelta::hours(i64::from(super::plan::default_expiry_hours("phq9")));
    let row = PromptRow {
        id: PromptId::generate().into_string(),
        patient_id: patient_id.to_owned(),
        clinic_id: schedule.clinic_id.clone(),
        slot: format!("follow_up:{check_in_id}"),
        rule: FOLLOW_UP_RULE.to_owned(),
        instrument: "phq9".to_owned(),
        session_id: None,
        status: status::SCHEDULED.into(),
        local_time: super::local_time::local(tz, due)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        due_at: due.naive_utc(),
        remind_at: Some(
            (due + TimeDelta::hours(i64::from(super::plan::DEFAULT_REMIND_AFTER_HOURS)))
                .naive_utc(),
        ),
        expires_at: expires.naive_utc(),
        sent_at: None,
        reminded_at: None,
        closed_at: None,
        check_in_id: None,
        created_at: stamp,
        updated_at: stamp,
    };
    let id = row.id.clone();
    Ok((insert_new(conn, &[row])? == 1).then_some(id))
}

/// The patients of a clinic (not erased) who follow a care plan of their own, with it (JSON).
pub fn own_plans(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Vec<(String, String)>> {
    patient_schedules::table
        .inner_join(accounts::table)
        .filter(patient_schedules::clinic_id.eq(clinic_id))
        .filter(accounts::erased_at.is_null())
        .filter(patient_schedules::care_plan.is_not_null())
        .select((
            patient_schedules::patient_id,
            patient_schedules::care_plan.assume_not_null(),
        ))
        .order(patient_schedules::patient_id)
        .load(conn)
}

/// Inserts prompts, skipping any whose slot already has a live (or finished) prompt.
fn insert_new(conn: &mut DbConnection, rows: &[PromptRow]) -> QueryResult<usize> {
    let mut added = 0;
    match conn {
        DbConnection::Pg(pg) => {
            for chunk in rows.chunks(5000) {
                added += insert_new_pg(pg, chunk)?;
            }
        }
        DbConnection::Sqlite(sqlite) => {
            for chunk in rows.chunks(500) {
                added += diesel::insert_into(prompts::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(sqlite)?;
            }
        }
    }
    Ok(added)
}

/// [`insert_new`] on PostgreSQL: the rows go as one array per column through `unnest`, so the
/// statement has the same text and 18 parameters whatever the number of rows, and each
/// connection prepares it once. A multi-row `VALUES` list is a statement of its own for every
/// row count (18 parameters a row: a day's planning batch bound 9,000 of them, parsed and
/// planned anew each time). Its plan joins nothing, so the generic plan PostgreSQL settles on
/// cannot go stale as tables grow (the trap `push::store::settle_delivered_pg` avoids).
fn insert_new_pg(conn: &mut diesel::PgConnection, rows: &[PromptRow]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let text = |f: fn(&PromptRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let maybe_text =
        |f: fn(&PromptRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<Option<&str>>>();
    let time = |f: fn(&PromptRow) -> NaiveDateTime| rows.iter().map(f).collect::<Vec<_>>();
    let maybe_time =
        |f: fn(&PromptRow) -> Option<NaiveDateTime>| rows.iter().map(f).collect::<Vec<_>>();
    InsertPrompts {
        text: [
            text(|r| &r.id),
            text(|r| &r.patient_id),
            text(|r| &r.clinic_id),
            text(|r| &r.slot),
            text(|r| &r.rule),
            text(|r| &r.instrument),
        ],
        session_id: maybe_text(|r| r.session_id.as_deref()),
        status: text(|r| &r.status),
        local_time: text(|r| &r.local_time),
        due_at: time(|r| r.due_at),
        remind_at: maybe_time(|r| r.remind_at),
        expires_at: time(|r| r.expires_at),
        closed: [
            maybe_time(|r| r.sent_at),
            maybe_time(|r| r.reminded_at),
            maybe_time(|r| r.closed_at),
        ],
        check_in_id: maybe_text(|r| r.check_in_id.as_deref()),
        stamps: [time(|r| r.created_at), time(|r| r.updated_at)],
    }
    .execute(conn)
}

/// The statement of [`insert_new_pg`], written out by hand: diesel never keeps `sql_query` text
/// as a prepared statement, and this one has a single text and 18 binds whatever the row count.
struct InsertPrompts<'a> {
    /// id, patient_id, clinic_id, slot, rule, instrument.
    text: [Vec<&'a str>; 6],
    session_id: Vec<Option<&'a str>>,
    status: Vec<&'a str>,
    local_time: Vec<&'a str>,
    due_at: Vec<NaiveDateTime>,
    remind_at: Vec<Option<NaiveDateTime>>,
    expires_at: Vec<NaiveDateTime>,
    /// sent_at, reminded_at, closed_at.
    closed: [Vec<Option<NaiveDateTime>>; 3],
    check_in_id: Vec<Option<&'a str>>,
    /// created_at, updated_at.
    stamps: [Vec<NaiveDateTime>; 2],
}

impl diesel::query_builder::QueryId for InsertPrompts<'_> {
    type QueryId = InsertPrompts<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> RunQueryDsl<Conn> for InsertPrompts<'_> {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertPrompts<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, Nullable, Text, Timestamp};
        out.push_sql(
            "INSERT INTO prompts (id, patient_id, clinic_id, slot, rule, instrument, session_id, \
             status, local_time, due_at, remind_at, expires_at, sent_at, reminded_at, closed_at, \
             check_in_id, created_at, updated_at) SELECT * FROM unnest(",
        );
        for column in &self.text {
            out.push_bind_param::<Array<Text>, _>(column)?;
            out.push_sql("::text[], ");
        }
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.session_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.status)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Text>, _>(&self.local_time)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.due_at)?;
        out.push_sql("::timestamp[], ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.remind_at)?;
        out.push_sql("::timestamp[], ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.expires_at)?;
        out.push_sql("::timestamp[], ");
        for column in &self.closed {
            out.push_bind_param::<Array<Nullable<Timestamp>>, _>(column)?;
            out.push_sql("::timestamp[], ");
        }
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.check_in_id)?;
        out.push_sql("::text[], ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.stamps[0])?;
        out.push_sql("::timestamp[], ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.stamps[1])?;
        out.push_sql("::timestamp[]) ON CONFLICT DO NOTHING");
        Ok(())
    }
}

/// Plans ahead for up to `batch` patients whose plans end within three quarters of `horizon`
/// of `now`, extending them to `now + horizon`. Replicas can run it side by side (PostgreSQL
/// skips schedules another worker holds). Returns how many patients were planned.
pub fn plan_ahead(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    horizon: TimeDelta,
    batch: i64,
) -> QueryResult<usize> {
    let to = now + horizon;
    let threshold = (now + horizon * 3 / 4).naive_utc();
    let due = patient_schedules::table
        .filter(patient_schedules::planned_until.lt(threshold))
        .order(patient_schedules::planned_until)
        .select((
            patient_schedules::patient_id,
            patient_schedules::planned_until,
        ))
        .limit(batch);
    let picked: Vec<(String, NaiveDateTime)> = match conn {
        DbConnection::Pg(pg) => due.for_update().skip_locked().load(pg)?,
        DbConnection::Sqlite(sqlite) => due.load(sqlite)?,
    };
    if picked.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = picked.iter().map(|(id, _)| id.clone()).collect();
    let from_of: HashMap<&str, DateTime<Utc>> = picked
        .iter()
        .map(|(id, until)| (id.as_str(), utc(*until).max(now)))
        .collect();
    let earliest = from_of.values().min().copied().unwrap_or(now);
    let inputs = load_inputs(conn, &ids)?;
    let mut sessions = load_sessions(conn, &ids, earliest, to)?;
    let mut plans = Plans::default();
    let stamp = now.naive_utc();
    let mut rows = Vec::new();
    for input in &inputs {
        let id = input.schedule.patient_id.as_str();
        let from = from_of.get(id).copied().unwrap_or(now);
        let own = sessions.remove(id).unwrap_or_default();
        for p in plan_patient(input, &mut plans, &own, from, to) {
            rows.push(PromptRow::planned(&p, id, &input.schedule.clinic_id, stamp));
        }
    }
    insert_new(conn, &rows)?;
    diesel::update(patient_schedules::table.filter(patient_schedules::patient_id.eq_any(&ids)))
        .set(patient_schedules::planned_until.eq(to.naive_utc()))
        .execute(conn)?;
    Ok(picked.len())
}

/// Enqueues a regeneration of every patient of a clinic (after the clinic's plan changed).
pub fn enqueue_clinic_replan(
    conn: &mut DbConnection,
    clinic_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    jobs::enqueue(
        conn,
        &NewJob {
            kind: super::kinds::REPLAN_CLINIC,
            payload: serde_json::json!({"clinic_id": clinic_id}),
            dedupe_key: None,
            run_at: now,
            max_attempts: 10,
            priority: jobs::store::Priority::Routine,
        },
        now,
    )
}

/// A clinic's patients that follow the clinic's plan (no override of their own), after `after`.
pub fn clinic_plan_followers(
    conn: &mut DbConnection,
    clinic_id: &str,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<String>> {
    patient_schedules::table
        .filter(patient_schedules::clinic_id.eq(clinic_id))
        .filter(patient_schedules::care_plan.is_null())
        .filter(patient_schedules::patient_id.gt(after))
        .order(patient_schedules::patient_id)
        .select(patient_schedules::patient_id)
        .limit(limit)
        .load(conn)
}

/// Prompts a patient can answer now: due, not expired, not answered, oldest first.
pub fn open_prompts(
    conn: &mut DbConnection,
    patient_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<PromptRow>> {
    prompts::table
        .filter(prompts::patient_id.eq(patient_id))
        .filter(prompts::status.eq_any(status::OPEN))
        .filter(prompts::due_at.le(now))
        .filter(prompts::expires_at.gt(now))
        .order((prompts::due_at, prompts::id))
        .select(PromptRow::as_select())
        .load(conn)
}

/// A patient's prompts due in `[from, to)`, any state, in time order.
pub fn prompts_between(
    conn: &mut DbConnection,
    patient_id: &str,
    from: NaiveDateTime,
    to: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<PromptRow>> {
    prompts::table
        .filter(prompts::patient_id.eq(patient_id))
        .filter(prompts::due_at.ge(from))
        .filter(prompts::due_at.lt(to))
        .order((prompts::due_at, prompts::id))
        .select(PromptRow::as_select())
        .limit(limit)
        .load(conn)
}

/// Completes the prompt a new check-in answers: the one it names, if it was answerable when the
/// check-in was made (same patient and instrument); otherwise the oldest prompt for its
/// instrument whose window held the check-in's time. A check-in made in time but synced late
/// (a phone that was offline) completes its prompt even if it has expired meanwhile. Returns the
/// prompt completed, if any.
pub fn complete_for_check_in(
    conn: &mut DbConnection,
    patient_id: &str,
    check_in_id: &str,
    instrument: &str,
    named: Option<&str>,
    completed_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    // One statement: the update picks its prompt in a subquery (the named one first, if it is
    // answerable; else the oldest whose window held the check-in) and says which it completed.
    let statement = CompletePrompt {
        patient_id,
        instrument,
        named,
        completed_at,
        check_in_id,
        now,
    };
    crate::per_backend!(conn, |c| statement.get_result::<String>(c).optional())
}

/// The prompt completion of [`complete_for_check_in`], written out by hand because diesel
/// never keeps an `UPDATE` as a prepared statement (its update builder marks every update unsafe
/// to cache, whatever its shape): this one has one fixed text and a fixed number of binds (the
/// named prompt is a bind that may be NULL, the answerable statuses four binds), so it is
/// prepared once per connection and only executed after, on both backends. Whatever it matches
/// with no prompt named (`id = NULL` is never true, and orders every row alike) is what the
/// unnamed form would.
#[derive(Debug, Clone, Copy)]
struct CompletePrompt<'a> {
    patient_id: &'a str,
    instrument: &'a str,
    named: Option<&'a str>,
    completed_at: NaiveDateTime,
    check_in_id: &'a str,
    now: NaiveDateTime,
}

impl diesel::query_builder::QueryId for CompletePrompt<'_> {
    type QueryId = CompletePrompt<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for CompletePrompt<'_> {
    type SqlType = diesel::sql_types::Text;
}

impl<Conn> RunQueryDsl<Conn> for CompletePrompt<'_> {}

impl<DB> diesel::query_builder::QueryFragment<DB> for CompletePrompt<'_>
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
    for<'x> Option<&'x str>:
        diesel::serialize::ToSql<diesel::sql_types::Nullable<diesel::sql_types::Text>, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Nullable, Text, Timestamp};
        out.push_sql(r#"UPDATE "prompts" SET "status" = "#);
        out.push_bind_param::<Text, _>(status::COMPLETED)?;
        out.push_sql(r#", "closed_at" = "#);
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(r#", "check_in_id" = "#);
        out.push_bind_param::<Text, _>(self.check_in_id)?;
        out.push_sql(r#", "updated_at" = "#);
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(r#" WHERE "prompts"."id" = (SELECT "prompts"."id" FROM "prompts" WHERE "prompts"."patient_id" = "#);
        out.push_bind_param::<Text, _>(self.patient_id)?;
        out.push_sql(r#" AND "prompts"."instrument" = "#);
        out.push_bind_param::<Text, _>(self.instrument)?;
        out.push_sql(r#" AND "prompts"."status" IN ("#);
        out.push_bind_param::<Text, _>(status::SCHEDULED)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(status::SENT)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(status::REMINDED)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(status::EXPIRED)?;
        out.push_sql(r#") AND "prompts"."expires_at" > "#);
        out.push_bind_param::<Timestamp, _>(&self.completed_at)?;
        out.push_sql(r#" AND ("prompts"."id" = "#);
        out.push_bind_param::<Nullable<Text>, _>(&self.named)?;
        out.push_sql(r#" OR "prompts"."due_at" <= "#);
        out.push_bind_param::<Timestamp, _>(&self.completed_at)?;
        out.push_sql(r#") ORDER BY "prompts"."id" = "#);
        out.push_bind_param::<Nullable<Text>, _>(&self.named)?;
        out.push_sql(
            r#" DESC, "prompts"."due_at", "prompts"."id" LIMIT 1) RETURNING "prompts"."id""#,
        );
        Ok(())
    }
}

/// The outcomes of a patient's closed prompts (completed or expired), newest first, since
/// `since`: true for completed.
pub fn recent_outcomes(
    conn: &mut DbConnection,
    patient_ids: &[String],
    since: NaiveDateTime,
) -> QueryResult<BTreeMap<String, Vec<bool>>> {
    let rows: Vec<(String, String)> = prompts::table
        .filter(prompts::patient_id.eq_any(patient_ids))
        .filter(prompts::status.eq_any([status::COMPLETED, status::EXPIRED]))
        .filter(prompts::due_at.ge(since))
        .order((
            prompts::patient_id,
            prompts::due_at.desc(),
            prompts::id.desc(),
        ))
        .select((prompts::patient_id, prompts::status))
        .load(conn)?;
    let mut out: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for (patient, state) in rows {
        out.entry(patient)
            .or_default()
            .push(state == status::COMPLETED);
    }
    Ok(out)
}

/// The statuses (`completed` or `expired`) of the latest `limit` finished prompts of
/// `patient_id`, newest due first, counting only prompts that expire after `since` when given.
pub fn recent_finished_statuses(
    conn: &mut DbConnection,
    patient_id: &str,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let mut query = prompts::table
        .filter(prompts::patient_id.eq(patient_id))
        .filter(prompts::status.eq_any(["completed", "expired"]))
        .order((prompts::due_at.desc(), prompts::id.desc()))
        .select(prompts::status)
        .limit(limit)
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(prompts::expires_at.gt(since));
    }
    query.load(conn)
}

/// Takes up to `batch` open prompts whose window closed by `stamp`, earliest expiry first, and
/// locks them (PostgreSQL skips rows another worker holds): id, patient and clinic of each.
pub fn take_expired(
    conn: &mut DbConnection,
    stamp: NaiveDateTime,
    batch: i64,
) -> QueryResult<Vec<(String, String, String)>> {
    let query = prompts::table
        .filter(prompts::status.eq_any(status::OPEN))
        .filter(prompts::expires_at.le(stamp))
        .order(prompts::expires_at)
        .select((prompts::id, prompts::patient_id, prompts::clinic_id))
        .limit(batch);
    match conn {
        DbConnection::Pg(pg) => query.for_update().skip_locked().load(pg),
        DbConnection::Sqlite(sqlite) => query.load(sqlite),
    }
}

/// Closes the prompts `ids` with the final `state` (expired or cancelled) at `stamp`.
pub fn close_prompts(
    conn: &mut DbConnection,
    ids: &[&String],
    state: &str,
    stamp: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(prompts::table.filter(prompts::id.eq_any(ids)))
        .set((
            prompts::status.eq(state),
            prompts::closed_at.eq(Some(stamp)),
            prompts::updated_at.eq(stamp),
        ))
        .execute(conn)
}

/// Which push of a prompt is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The first push of a scheduled prompt (`due_at`).
    Send,
    /// The one reminder of a sent prompt (`remind_at`).
    Remind,
}

/// Takes up to `batch` unexpired prompts whose push `due` is due by `stamp`, earliest first, and
/// locks them (PostgreSQL skips rows another worker holds).
pub fn take_due(
    conn: &mut DbConnection,
    stamp: NaiveDateTime,
    batch: i64,
    due: Due,
) -> QueryResult<Vec<PromptRow>> {
    // Built once per backend: the selected row type is tied to the backend it is loaded on.
    macro_rules! take {
        ($state:expr, $at:expr) => {{
            macro_rules! query {
                () => {
                    prompts::table
                        .filter(prompts::expires_at.gt(stamp))
                        .filter(prompts::status.eq($state))
                        .filter($at.le(stamp))
                        .order($at)
                        .select(PromptRow::as_select())
                        .limit(batch)
                };
            }
            match conn {
                DbConnection::Pg(pg) => query!().for_update().skip_locked().load(pg),
                DbConnection::Sqlite(sqlite) => query!().load(sqlite),
            }
        }};
    }
    match due {
        Due::Send => take!(status::SCHEDULED, prompts::due_at),
        Due::Remind => take!(status::SENT, prompts::remind_at),
    }
}

/// Marks the prompts `ids` pushed at `stamp`: sent (for [`Due::Send`]) or reminded.
pub fn mark_pushed(
    conn: &mut DbConnection,
    ids: &[String],
    due: Due,
    stamp: NaiveDateTime,
) -> QueryResult<usize> {
    let target = prompts::table.filter(prompts::id.eq_any(ids));
    match due {
        Due::Send => diesel::update(target)
            .set((
                prompts::status.eq(status::SENT),
                prompts::sent_at.eq(Some(stamp)),
                prompts::updated_at.eq(stamp),
            ))
            .execute(conn),
        Due::Remind => diesel::update(target)
            .set((
                prompts::status.eq(status::REMINDED),
                prompts::reminded_at.eq(Some(stamp)),
                prompts::updated_at.eq(stamp),
            ))
            .execute(conn),
    }
}

/// Moves a prompt's first push to `due_at`.
pub fn postpone_send(
    conn: &mut DbConnection,
    id: &str,
    due_at: NaiveDateTime,
    stamp: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(prompts::table.find(id))
        .set((prompts::due_at.eq(due_at), prompts::updated_at.eq(stamp)))
        .execute(conn)
        .map(drop)
}

/// Moves a prompt's reminder to `remind_at` (`None`: no reminder).
pub fn postpone_reminder(
    conn: &mut DbConnection,
    id: &str,
    remind_at: Option<NaiveDateTime>,
    stamp: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(prompts::table.find(id))
        .set((
            prompts::remind_at.eq(remind_at),
            prompts::updated_at.eq(stamp),
        ))
        .execute(conn)
        .map(drop)
}

/// The schedules of `patients`, each with its patient's IANA zone.
pub fn schedules_with_zones(
    conn: &mut DbConnection,
    patients: &[String],
) -> QueryResult<Vec<(ScheduleRow, String)>> {
    patient_schedules::table
        .inner_join(accounts::table)
        .filter(patient_schedules::patient_id.eq_any(patients))
        .select((ScheduleRow::as_select(), accounts::timezone))
        .load(conn)
}

/// A clinic's own default care plan (JSON), if it set one.
pub fn clinic_plan_of(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Option<String>> {
    clinics::table
        .find(clinic_id)
        .select(clinics::care_plan)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Stores a clinic's default care plan (JSON, already validated).
pub fn set_clinic_plan(conn: &mut DbConnection, clinic_id: &str, json: String) -> QueryResult<()> {
    diesel::update(clinics::table.find(clinic_id))
        .set(clinics::care_plan.eq(Some(json)))
        .execute(conn)
        .map(drop)
}

/// Deletes every prompt of `patient_id`, then their schedule (the patient is being erased).
pub fn erase_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<()> {
    diesel::delete(prompts::table.filter(prompts::patient_id.eq(patient_id))).execute(conn)?;
    diesel::delete(patient_schedules::table.filter(patient_schedules::patient_id.eq(patient_id)))
        .execute(conn)?;
    Ok(())
}

/// A patient's check-in window and quiet hours as their export shows them (local clock times).
#[derive(Debug, Clone, Queryable)]
pub struct ExportedPreferences {
    /// Check-in window start.
    pub window_start: String,
    /// Check-in window end.
    pub window_end: String,
    /// Quiet hours start.
    pub quiet_start: String,
    /// Quiet hours end.
    pub quiet_end: String,
}

/// The preferences of `patient_id` for their export, if they have a schedule.
pub fn exported_preferences_of(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Option<ExportedPreferences>> {
    patient_schedules::table
        .find(patient_id)
        .select((
            patient_schedules::window_start,
            patient_schedules::window_end,
            patient_schedules::quiet_start,
            patient_schedules::quiet_end,
        ))
        .first(conn)
        .optional()
}

/// A prompt as its patient's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedPrompt {
    /// Id.
    pub id: String,
    /// Catalogue key.
    pub instrument: String,
    /// Status name.
    pub status: String,
    /// Due.
    pub due_at: NaiveDateTime,
    /// Expires.
    pub expires_at: NaiveDateTime,
    /// Sent.
    pub sent_at: Option<NaiveDateTime>,
    /// The check-in that answered it.
    pub check_in_id: Option<String>,
}

/// Every prompt of `patient_id`, by due time, for their export.
pub fn exported_prompts_of(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Vec<ExportedPrompt>> {
    prompts::table
        .filter(prompts::patient_id.eq(patient_id))
        .order(prompts::due_at)
        .select((
            prompts::id,
            prompts::instrument,
            prompts::status,
            prompts::due_at,
            prompts::expires_at,
            prompts::sent_at,
            prompts::check_in_id,
        ))
        .load(conn)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    #[test]
    fn minute_text_is_the_stored_local_time() {
        for text in ["2026-03-08T03:30", "0999-01-02T00:00", "2026-12-31T23:59"] {
            let at =
                NaiveDateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%dT%H:%M:%S").unwrap();
            assert_eq!(super::minute_text(at), text);
            assert_eq!(
                super::minute_text(at),
                at.format("%Y-%m-%dT%H:%M").to_string()
            );
        }
    }
}
