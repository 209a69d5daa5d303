//! Alert rows, their history, and the jobs that notify and escalate them.

use chrono::NaiveDateTime;
use companion_schema::ids::AlertId;
use companion_schema::schema::{accounts, alert_events, alerts, clinics};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::jobs::{self, NewJob};

use super::policy;
use super::rules::{Firing, Severity};

/// Job kinds of escalation.
pub mod kinds {
    /// Notify the current tier about an alert. Payload `{"alert_id", "escalation"}`.
    pub const NOTIFY: &str = "alert.notify";
    /// At the acknowledgement deadline: escalate if still open. Payload `{"alert_id", "escalation"}`.
    pub const DEADLINE: &str = "alert.deadline";
}

/// Attempts for escalation jobs: they must not give up quickly.
const ESCALATION_ATTEMPTS: i32 = 50;

/// An alert as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    /// Id.
    pub id: String,
    /// Clinic.
    pub clinic_id: String,
    /// Patient.
    pub patient_id: String,
    /// Rule name.
    pub rule: String,
    /// Severity name.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// Why (latest signal).
    pub explanation: String,
    /// The rule's inputs (latest signal), JSON.
    pub inputs: String,
    /// The check-in that raised it last.
    pub check_in_id: Option<String>,
    /// Signals folded into this alert.
    pub signal_count: i32,
    /// The tier last notified.
    pub tier: i32,
    /// Deadlines missed so far.
    pub escalations: i32,
    /// Opened.
    pub opened_at: NaiveDateTime,
    /// Latest signal.
    pub last_signal_at: NaiveDateTime,
    /// Acknowledge by.
    pub ack_deadline: NaiveDateTime,
    /// Acknowledged.
    pub acknowledged_at: Option<NaiveDateTime>,
    /// By whom.
    pub acknowledged_by: Option<String>,
    /// Assigned clinician.
    pub assigned_to: Option<String>,
    /// Resolved.
    pub resolved_at: Option<NaiveDateTime>,
    /// By whom.
    pub resolved_by: Option<String>,
    /// Resolution note.
    pub resolution_note: Option<String>,
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Urgent => "urgent",
    }
}

/// Reads a stored severity.
pub fn parse_severity(text: &str) -> Severity {
    match text {
        "urgent" => Severity::Urgent,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        _ => Severity::Low,
    }
}

fn rule_name(firing: &Firing) -> String {
    serde_json::to_value(firing.rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Records an event in an alert's history.
pub fn event(
    conn: &mut DbConnection,
    alert_id: &str,
    kind: &str,
    actor: Option<&str>,
    detail: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(alert_events::table)
        .values((
            alert_events::id.eq(uuid::Uuid::now_v7().to_string()),
            alert_events::alert_id.eq(alert_id),
            alert_events::at.eq(at),
            alert_events::kind.eq(kind),
            alert_events::actor_id.eq(actor),
            alert_events::detail.eq(detail),
        ))
        .execute(conn)
        .map(drop)
}

fn escalation_job(
    kind: &'static str,
    alert_id: &str,
    escalation: i32,
    run_at: NaiveDateTime,
) -> NewJob {
    NewJob {
        kind,
        payload: serde_json::json!({"alert_id": alert_id, "escalation": escalation}),
        dedupe_key: Some(format!("{kind}:{alert_id}:{escalation}")),
        run_at,
        max_attempts: ESCALATION_ATTEMPTS,
    }
}

/// Opens an alert for `firing`, or folds the signal into the patient's open alert for the same
/// rule (one open alert per patient and rule). A new alert's notification and its first deadline
/// are enqueued here, in the caller's transaction. Returns the alert id and whether it is new.
pub fn open_or_repeat(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: &str,
    check_in_id: Option<&str>,
    firing: &Firing,
    now: NaiveDateTime,
) -> QueryResult<(String, bool)> {
    let rule = rule_name(firing);
    let existing: Option<AlertRow> = alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .filter(alerts::rule.eq(&rule))
        .filter(alerts::status.ne("resolved"))
        .select(AlertRow::as_select())
        .first(conn)
        .optional()?;
    let inputs = firing.inputs.to_string();
    if let Some(alert) = existing {
        let severity = parse_severity(&alert.severity).max(firing.severity);
        diesel::update(alerts::table.find(&alert.id))
            .set((
                alerts::signal_count.eq(alerts::signal_count + 1),
                alerts::last_signal_at.eq(now),
                alerts::explanation.eq(&firing.explanation),
                alerts::inputs.eq(&inputs),
                alerts::check_in_id.eq(check_in_id),
                alerts::severity.eq(severity_name(severity)),
            ))
            .execute(conn)?;
        event(conn, &alert.id, "repeated", None, &firing.explanation, now)?;
        return Ok((alert.id, false));
    }
    let id = AlertId::generate().into_string();
    let deadline = now + clinic_policy(conn, clinic_id)?.delay(0, firing.severity);
    diesel::insert_into(alerts::table)
        .values(&AlertRow {
            id: id.clone(),
            clinic_id: clinic_id.to_owned(),
            patient_id: patient_id.to_owned(),
            rule,
            severity: severity_name(firing.severity).to_owned(),
            status: "open".into(),
            explanation: firing.explanation.clone(),
            inputs,
            check_in_id: check_in_id.map(str::to_owned),
            signal_count: 1,
            tier: 0,
            escalations: 0,
            opened_at: now,
            last_signal_at: now,
            ack_deadline: deadline,
            acknowledged_at: None,
            acknowledged_by: None,
            assigned_to: None,
            resolved_at: None,
            resolved_by: None,
            resolution_note: None,
        })
        .execute(conn)?;
    event(conn, &id, "opened", None, &firing.explanation, now)?;
    jobs::enqueue(conn, &escalation_job(kinds::NOTIFY, &id, 0, now), now)?;
    jobs::enqueue(
        conn,
        &escalation_job(kinds::DEADLINE, &id, 0, deadline),
        now,
    )?;
    Ok((id, true))
}

/// Finds an alert.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AlertRow>> {
    alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .first(conn)
        .optional()
}

/// A per-clinic setting stored as JSON on the clinic row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClinicSetting {
    /// [`super::rules::Thresholds`].
    AlertThresholds,
    /// [`policy::EscalationPolicy`].
    EscalationPolicy,
    /// The clinic's default [`crate::prompt::plan::CarePlan`].
    CarePlan,
}

/// Reads a clinic setting (validated when it was set), or its default.
pub fn read_setting<T: serde::de::DeserializeOwned + Default>(
    conn: &mut DbConnection,
    clinic_id: &str,
    setting: ClinicSetting,
) -> QueryResult<T> {
    let query = clinics::table.find(clinic_id);
    let stored: Option<Option<String>> = match setting {
        ClinicSetting::AlertThresholds => query.select(clinics::alert_thresholds).first(conn),
        ClinicSetting::EscalationPolicy => query.select(clinics::escalation_policy).first(conn),
        ClinicSetting::CarePlan => query.select(clinics::care_plan).first(conn),
    }
    .optional()?;
    Ok(stored
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// Stores a clinic setting (already validated).
pub fn write_setting(
    conn: &mut DbConnection,
    clinic_id: &str,
    setting: ClinicSetting,
    json: String,
) -> QueryResult<()> {
    let target = clinics::table.find(clinic_id);
    match setting {
        ClinicSetting::AlertThresholds => diesel::update(target)
            .set(clinics::alert_thresholds.eq(Some(json)))
            .execute(conn),
        ClinicSetting::EscalationPolicy => diesel::update(target)
            .set(clinics::escalation_policy.eq(Some(json)))
            .execute(conn),
        ClinicSetting::CarePlan => diesel::update(target)
            .set(clinics::care_plan.eq(Some(json)))
            .execute(conn),
    }
    .map(drop)
}

/// The clinic's escalation policy.
pub fn clinic_policy(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<policy::EscalationPolicy> {
    read_setting(conn, clinic_id, ClinicSetting::EscalationPolicy)
}

/// Escalates an open alert whose deadline passed: one tier up (or the last tier again), a new
/// deadline, and the notification and next deadline jobs. Returns the tier reached, or none if
/// the alert is no longer open (or this step was already taken).
pub fn escalate(
    conn: &mut DbConnection,
    alert: &AlertRow,
    escalation: i32,
    now: NaiveDateTime,
) -> QueryResult<Option<i32>> {
    let next = escalation + 1;
    let policy = clinic_policy(conn, &alert.clinic_id)?;
    let index = policy.tier_index(next as usize);
    let tier = index as i32;
    let deadline = now + policy.delay(index, parse_severity(&alert.severity));
    let changed = diesel::update(
        alerts::table
            .filter(alerts::id.eq(&alert.id))
            .filter(alerts::status.eq("open"))
            .filter(alerts::escalations.eq(escalation)),
    )
    .set((
        alerts::escalations.eq(next),
        alerts::tier.eq(tier),
        alerts::ack_deadline.eq(deadline),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(None);
    }
    event(
        conn,
        &alert.id,
        "escalated",
        None,
        &format!("not acknowledged in time; tier {tier}"),
        now,
    )?;
    jobs::enqueue(
        conn,
        &escalation_job(kinds::NOTIFY, &alert.id, next, now),
        now,
    )?;
    jobs::enqueue(
        conn,
        &escalation_job(kinds::DEADLINE, &alert.id, next, deadline),
        now,
    )?;
    Ok(Some(tier))
}

/// Active staff of a clinic in `audience`.
pub fn audience(
    conn: &mut DbConnection,
    clinic_id: &str,
    audience: policy::Audience,
) -> QueryResult<Vec<String>> {
    let query = accounts::table
        .filter(accounts::clinic_id.eq(clinic_id))
        .filter(accounts::disabled_at.is_null())
        .select(accounts::id)
        .into_boxed();
    let query = match audience {
        policy::Audience::OnCall => query
            .filter(accounts::on_call.eq(true))
            .filter(accounts::role.eq_any(["clinician", "clinic_admin"])),
        policy::Audience::Clinicians => query.filter(accounts::role.eq("clinician")),
        policy::Audience::ClinicAdmins => query.filter(accounts::role.eq("clinic_admin")),
    };
    query.order(accounts::id.asc()).load(conn)
}
