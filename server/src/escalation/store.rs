//! Alert rows, their history, and the jobs that notify and escalate them.

use chrono::NaiveDateTime;
use companion_schema::ids::AlertId;
use companion_schema::schema::{
    accounts, alert_deliveries, alert_events, alerts, clinics, webhook_endpoints,
};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::jobs::{self, NewJob};

use super::decide::{self, OnSignal};
use super::policy;
use super::rules::{Firing, Rule, Severity};
use crate::time::utc;

/// Job kinds of escalation.
pub mod kinds {
    /// Notify the current tier about an alert. Payload `{"alert_id", "escalation"}`.
    pub const NOTIFY: &str = "alert.notify";
    /// At the acknowledgement deadline: escalate if still open. Payload `{"alert_id", "escalation"}`.
    pub const DEADLINE: &str = "alert.deadline";
    /// An acknowledged alert left unresolved returns to open. Payload
    /// `{"alert_id", "round", "acknowledged_at"}`.
    pub const ACK_LAPSE: &str = "alert.ack_lapse";
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
    /// How often it was re-opened after an acknowledgement (each re-opening starts the tiers
    /// again; its jobs carry it, so that those of an earlier round stand down).
    pub round: i32,
    /// A medium or low signal arrived after the acknowledgement.
    pub new_signal_since_ack: bool,
    /// Since when nobody in any tier could be reached; none while someone can.
    pub unreachable_at: Option<NaiveDateTime>,
    /// 4 urgent, 3 high, 2 medium, 1 low: the inbox's order.
    pub severity_rank: i32,
    /// When the check-in that raised it last was answered.
    pub signal_completed_at: Option<NaiveDateTime>,
    /// When the latest signal arrived.
    pub signal_received_at: Option<NaiveDateTime>,
    /// When a delivery that counts (a push accepted by APNs or FCM, a webhook's 2xx, an email
    /// accepted by the SMTP server) first reached someone in the current round.
    pub reached_at: Option<NaiveDateTime>,
    /// When the patient erased their account, if they did while the alert was unresolved: the
    /// alert stays, with its details reduced to severity, rule and times, until staff resolve
    /// it.
    pub patient_erased_at: Option<NaiveDateTime>,
}

/// The stored name of a severity.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Urgent => "urgent",
    }
}

/// The inbox rank of a severity (higher first).
pub fn severity_rank(severity: Severity) -> i32 {
    match severity {
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Urgent => 4,
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

/// The stored name of a rule (`safety_item9`, `phq9_deterioration`, ...).
pub fn rule_name(rule: Rule) -> String {
    serde_json::to_value(rule)
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
    insert_event(conn, alert_id, kind, actor, detail, at, None)
}

/// Records a signal in an alert's history, naming the check-in that raised it (none for missed
/// check-ins): every signal an alert holds can be traced to its check-in, and retention keeps
/// the check-ins an unresolved alert names.
pub fn signal_event(
    conn: &mut DbConnection,
    alert_id: &str,
    kind: &str,
    detail: &str,
    signal: &Signal<'_>,
) -> QueryResult<()> {
    insert_event(
        conn,
        alert_id,
        kind,
        None,
        detail,
        signal.received_at,
        signal.check_in_id,
    )
}

fn insert_event(
    conn: &mut DbConnection,
    alert_id: &str,
    kind: &str,
    actor: Option<&str>,
    detail: &str,
    at: NaiveDateTime,
    check_in_id: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(alert_events::table)
        .values((
            alert_events::id.eq(uuid::Uuid::now_v7().to_string()),
            alert_events::alert_id.eq(alert_id),
            alert_events::at.eq(at),
            alert_events::kind.eq(kind),
            alert_events::actor_id.eq(actor),
            alert_events::detail.eq(detail),
            alert_events::check_in_id.eq(check_in_id),
        ))
        .execute(conn)
        .map(drop)
}

/// The payload of the escalation jobs. `round` is absent (0) in jobs of alerts never re-opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Which re-opening of the alert.
    #[serde(default)]
    pub round: i32,
    /// Deadlines missed in this round.
    pub escalation: i32,
}

fn escalation_job(kind: &'static str, alert_id: &str, step: Step, run_at: NaiveDateTime) -> NewJob {
    // Round 0 keeps the key jobs had before alerts could re-open, so none is enqueued twice.
    let dedupe_key = match step.round {
        0 => format!("{kind}:{alert_id}:{}", step.escalation),
        round => format!("{kind}:{alert_id}:r{round}:{}", step.escalation),
    };
    NewJob {
        kind,
        payload: serde_json::json!({
            "alert_id": alert_id, "round": step.round, "escalation": step.escalation
        }),
        dedupe_key: Some(dedupe_key),
        run_at,
        max_attempts: ESCALATION_ATTEMPTS,
        priority: jobs::store::Priority::Safety,
    }
}

/// Enqueues the notification of `step` now and its deadline at `deadline`.
fn enqueue_step(
    conn: &mut DbConnection,
    alert_id: &str,
    step: Step,
    deadline: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<()> {
    jobs::enqueue(
        conn,
        &escalation_job(kinds::NOTIFY, alert_id, step, now),
        now,
    )?;
    jobs::enqueue(
        conn,
        &escalation_job(kinds::DEADLINE, alert_id, step, deadline),
        now,
    )?;
    Ok(())
}

/// Where a signal came from: the check-in that raised it (none for missed check-ins), when it was
/// answered and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Signal<'a> {
    /// The check-in.
    pub check_in_id: Option<&'a str>,
    /// When it was answered.
    pub completed_at: Option<NaiveDateTime>,
    /// When it arrived (the signal's time: deadlines run from it).
    pub received_at: NaiveDateTime,
}

/// What a signal did to the patient's alert for its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The alert.
    pub alert_id: String,
    /// What happened.
    pub outcome: OnSignal,
    /// The signal's severity.
    pub severity: Severity,
}

fn total_of(inputs: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(inputs)
        .ok()
        .and_then(|v| v["total"].as_i64())
}

/// How often a signal is applied again when the alert it was decided on changed under it (a
/// staff action or another signal in a concurrent transaction).
const RAISE_ATTEMPTS: usize = 8;

/// Applies `firing` for a patient (CLINICAL.md, "Safety path guarantees"): opens an alert, folds
/// the signal into the open one, re-opens an acknowledged one on an urgent or high signal, marks
/// one on a medium or low signal, or (a severe PHQ-9 soon after a resolve without a rise) records
/// it on the resolved one. Notification and deadline jobs are enqueued here, in the caller's
/// transaction.
///
/// Safe under concurrency (CLINICAL.md, part 2: one open alert per patient and rule): every
/// write is guarded by the state the decision was made on, and the database holds at most one
/// unresolved alert per patient and rule (a unique partial index). When the alert changed in
/// between (acknowledged, resolved, or opened by a concurrent signal), the signal is decided
/// again on what is there now, so it always ends on an unresolved alert, never folded into one
/// a person just resolved.
pub fn raise(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: &str,
    signal: Signal<'_>,
    firing: &Firing,
) -> QueryResult<Raised> {
    for _ in 0..RAISE_ATTEMPTS {
        if let Some(raised) = try_raise(conn, clinic_id, patient_id, signal, firing)? {
            return Ok(raised);
        }
    }
    Err(diesel::result::Error::QueryBuilderError(
        "the patient's alert kept changing while a signal was applied to it".into(),
    ))
}

/// One attempt of [`raise`]; none when the alert changed between the read and the write.
fn try_raise(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: &str,
    signal: Signal<'_>,
    firing: &Firing,
) -> QueryResult<Option<Raised>> {
    let now = signal.received_at;
    let rule = rule_name(firing.rule);
    let unresolved: Option<AlertRow> = alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .filter(alerts::rule.eq(&rule))
        .filter(alerts::status.ne("resolved"))
        .select(AlertRow::as_select())
        .first(conn)
        .optional()?;
    let last_resolved: Option<AlertRow> = if unresolved.is_none() && firing.rule == Rule::Phq9Severe
    {
        alerts::table
            .filter(alerts::patient_id.eq(patient_id))
            .filter(alerts::rule.eq(&rule))
            .filter(alerts::status.eq("resolved"))
            .order(alerts::resolved_at.desc())
            .select(AlertRow::as_select())
            .first(conn)
            .optional()?
    } else {
        None
    };
    let total = firing.inputs["total"].as_i64();
    let outcome = decide::on_signal(
        firing.rule,
        firing.severity,
        total,
        unresolved.as_ref().map(|a| a.status.as_str()),
        last_resolved.as_ref().and_then(|a| {
            Some(decide::Resolved {
                at: utc(a.resolved_at?),
                total: total_of(&a.inputs),
            })
        }),
        utc(now),
    );
    let inputs = firing.inputs.to_string();
    match (outcome, unresolved, last_resolved) {
        (OnSignal::Suppress, _, Some(resolved)) => {
            signal_event(
                conn,
                &resolved.id,
                "signal_after_resolve",
                &format!(
                    "{}; not re-opened: no rise of {} within {} days of the resolve",
                    firing.explanation,
                    decide::SEVERE_RISE,
                    decide::SEVERE_QUIET.num_days()
                ),
                &signal,
            )?;
            Ok(Some(Raised {
                alert_id: resolved.id,
                outcome,
                severity: firing.severity,
            }))
        }
        (OnSignal::Reopen, Some(alert), _) => {
            let severity = parse_severity(&alert.severity).max(firing.severity);
            let round = alert.round + 1;
            let deadline = now + clinic_policy(conn, clinic_id)?.delay(0, severity);
            let changed = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(&alert.id))
                    .filter(alerts::status.eq("acknowledged")),
            )
            .set((
                alerts::status.eq("open"),
                alerts::round.eq(round),
                alerts::tier.eq(0),
                alerts::escalations.eq(0),
                alerts::ack_deadline.eq(deadline),
                alerts::acknowledged_at.eq(None::<NaiveDateTime>),
                alerts::acknowledged_by.eq(None::<String>),
                alerts::new_signal_since_ack.eq(false),
                alerts::severity.eq(severity_name(severity)),
                alerts::severity_rank.eq(severity_rank(severity)),
                alerts::signal_count.eq(alerts::signal_count + 1),
                alerts::last_signal_at.eq(now),
                alerts::explanation.eq(&firing.explanation),
                alerts::inputs.eq(&inputs),
                alerts::check_in_id.eq(signal.check_in_id),
                alerts::signal_completed_at.eq(signal.completed_at),
                alerts::signal_received_at.eq(now),
                // A new round: nobody has been reached about it yet.
                alerts::reached_at.eq(None::<NaiveDateTime>),
                alerts::unreachable_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
            if changed == 0 {
                // No longer acknowledged (resolved, or re-opened by a concurrent signal).
                return Ok(None);
            }
            signal_event(
                conn,
                &alert.id,
                "reopened",
                &format!(
                    "new {} signal after acknowledgement: {}",
                    severity_name(firing.severity),
                    firing.explanation
                ),
                &signal,
            )?;
            enqueue_step(
                conn,
                &alert.id,
                Step {
                    round,
                    escalation: 0,
                },
                deadline,
                now,
            )?;
            Ok(Some(Raised {
                alert_id: alert.id,
                outcome,
                severity: firing.severity,
            }))
        }
        (OnSignal::Fold | OnSignal::FoldSinceAck, Some(alert), _) => {
            let severity = parse_severity(&alert.severity).max(firing.severity);
            let marked = outcome == OnSignal::FoldSinceAck;
            // Guarded by the status the decision read: a signal is never folded into an alert
            // a person resolved (or acknowledged) in the meantime.
            let changed = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(&alert.id))
                    .filter(alerts::status.eq(&alert.status)),
            )
            .set((
                alerts::signal_count.eq(alerts::signal_count + 1),
                alerts::last_signal_at.eq(now),
                alerts::explanation.eq(&firing.explanation),
                alerts::inputs.eq(&inputs),
                alerts::check_in_id.eq(signal.check_in_id),
                alerts::signal_completed_at.eq(signal.completed_at),
                alerts::signal_received_at.eq(now),
                alerts::severity.eq(severity_name(severity)),
                alerts::severity_rank.eq(severity_rank(severity)),
                alerts::new_signal_since_ack.eq(marked || alert.new_signal_since_ack),
            ))
            .execute(conn)?;
            if changed == 0 {
                return Ok(None);
            }
            let kind = if marked {
                "new_signal_since_ack"
            } else {
                "repeated"
            };
            signal_event(conn, &alert.id, kind, &firing.explanation, &signal)?;
            Ok(Some(Raised {
                alert_id: alert.id,
                outcome,
                severity: firing.severity,
            }))
        }
        _ => open(conn, clinic_id, patient_id, signal, firing, rule, inputs),
    }
}

/// Opens an alert, unless a concurrent transaction opened one for the same patient and rule
/// first (the unique partial index `alerts_one_unresolved_idx`): then none, and the signal is
/// decided again on that one. `ON CONFLICT DO NOTHING` keeps the transaction usable on
/// PostgreSQL, where a failed statement would abort it.
fn open(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: &str,
    signal: Signal<'_>,
    firing: &Firing,
    rule: String,
    inputs: String,
) -> QueryResult<Option<Raised>> {
    let now = signal.received_at;
    let id = AlertId::generate().into_string();
    let deadline = now + clinic_policy(conn, clinic_id)?.delay(0, firing.severity);
    let row = AlertRow {
        id: id.clone(),
        clinic_id: clinic_id.to_owned(),
        patient_id: patient_id.to_owned(),
        rule,
        severity: severity_name(firing.severity).to_owned(),
        status: "open".into(),
        explanation: firing.explanation.clone(),
        inputs,
        check_in_id: signal.check_in_id.map(str::to_owned),
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
        round: 0,
        new_signal_since_ack: false,
        unreachable_at: None,
        severity_rank: severity_rank(firing.severity),
        signal_completed_at: signal.completed_at,
        signal_received_at: Some(now),
        patient_erased_at: None,
        reached_at: None,
    };
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(alerts::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c)?);
    if inserted == 0 {
        return Ok(None);
    }
    signal_event(conn, &id, "opened", &firing.explanation, &signal)?;
    enqueue_step(
        conn,
        &id,
        Step {
            round: 0,
            escalation: 0,
        },
        deadline,
        now,
    )?;
    Ok(Some(Raised {
        alert_id: id,
        outcome: OnSignal::Open,
        severity: firing.severity,
    }))
}

/// Returns an alert acknowledged at `acknowledged_at` in `round`, and still only acknowledged, to
/// open: a new round, a fresh deadline from now, the first tier told again, and an event saying
/// why. False when it was resolved, re-opened or acknowledged again meanwhile.
pub fn reopen_after_lapse(
    conn: &mut DbConnection,
    alert_id: &str,
    round: i32,
    acknowledged_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let Some(alert) = find(conn, alert_id)? else {
        return Ok(false);
    };
    if alert.status != "acknowledged"
        || alert.round != round
        || alert.acknowledged_at != Some(acknowledged_at)
    {
        return Ok(false);
    }
    let severity = parse_severity(&alert.severity);
    let deadline = now + clinic_policy(conn, &alert.clinic_id)?.delay(0, severity);
    let next = round + 1;
    let changed = diesel::update(
        alerts::table
            .filter(alerts::id.eq(alert_id))
            .filter(alerts::status.eq("acknowledged"))
            .filter(alerts::round.eq(round)),
    )
    .set((
        alerts::status.eq("open"),
        alerts::round.eq(next),
        alerts::tier.eq(0),
        alerts::escalations.eq(0),
        alerts::ack_deadline.eq(deadline),
        alerts::acknowledged_at.eq(None::<NaiveDateTime>),
        alerts::acknowledged_by.eq(None::<String>),
        alerts::reached_at.eq(None::<NaiveDateTime>),
        alerts::unreachable_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(false);
    }
    let hours = (now - acknowledged_at).num_hours();
    event(
        conn,
        alert_id,
        "reopened",
        None,
        &format!("acknowledged {hours} hours ago and not resolved: open again"),
        now,
    )?;
    enqueue_step(
        conn,
        alert_id,
        Step {
            round: next,
            escalation: 0,
        },
        deadline,
        now,
    )?;
    Ok(true)
}

/// Finds an alert.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AlertRow>> {
    alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .first(conn)
        .optional()
}

/// A clinic's alerting setting, stored as JSON on the clinic row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertingSetting {
    /// [`super::rules::Thresholds`].
    AlertThresholds,
    /// [`policy::EscalationPolicy`].
    EscalationPolicy,
}

/// Reads a clinic setting (validated when it was set), or its default.
pub fn read_setting<T: serde::de::DeserializeOwned + Default>(
    conn: &mut DbConnection,
    clinic_id: &str,
    setting: AlertingSetting,
) -> QueryResult<T> {
    let query = clinics::table.find(clinic_id);
    let stored: Option<Option<String>> = match setting {
        AlertingSetting::AlertThresholds => query.select(clinics::alert_thresholds).first(conn),
        AlertingSetting::EscalationPolicy => query.select(clinics::escalation_policy).first(conn),
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
    setting: AlertingSetting,
    json: String,
) -> QueryResult<()> {
    let target = clinics::table.find(clinic_id);
    match setting {
        AlertingSetting::AlertThresholds => diesel::update(target)
            .set(clinics::alert_thresholds.eq(Some(json)))
            .execute(conn),
        AlertingSetting::EscalationPolicy => diesel::update(target)
            .set(clinics::escalation_policy.eq(Some(json)))
            .execute(conn),
    }
    .map(drop)
}

/// The clinic's escalation policy.
pub fn clinic_policy(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<policy::EscalationPolicy> {
    read_setting(conn, clinic_id, AlertingSetting::EscalationPolicy)
}

/// Escalates an open alert whose deadline for `step` passed: the tier after the one last told
/// (or the last tier again), a new deadline, and the next step's notification and deadline jobs.
/// Returns the tier now targeted, or none if the alert is no longer open or this step was
/// already taken (or belongs to an earlier round).
pub fn escalate(
    conn: &mut DbConnection,
    alert: &AlertRow,
    step: Step,
    now: NaiveDateTime,
) -> QueryResult<Option<i32>> {
    let policy = clinic_policy(conn, &alert.clinic_id)?;
    let index = (alert.tier.max(0) as usize + 1).min(policy.last_tier());
    escalate_to(
        conn,
        alert,
        step,
        index as i32,
        "not acknowledged in time",
        now,
    )
}

/// Moves an open alert from `step` to the next step, targeting `tier`, with that tier's deadline
/// and the next step's notification and deadline jobs; `why` goes into the history. Guarded on
/// the step: none when the alert is no longer open or has moved on already.
pub fn escalate_to(
    conn: &mut DbConnection,
    alert: &AlertRow,
    step: Step,
    tier: i32,
    why: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<i32>> {
    let next = step.escalation + 1;
    let policy = clinic_policy(conn, &alert.clinic_id)?;
    let deadline = now + policy.delay(tier.max(0) as usize, parse_severity(&alert.severity));
    let changed = diesel::update(
        alerts::table
            .filter(alerts::id.eq(&alert.id))
            .filter(alerts::status.eq("open"))
            .filter(alerts::round.eq(step.round))
            .filter(alerts::escalations.eq(step.escalation)),
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
        &format!("{why}; tier {tier}"),
        now,
    )?;
    enqueue_step(
        conn,
        &alert.id,
        Step {
            round: step.round,
            escalation: next,
        },
        deadline,
        now,
    )?;
    Ok(Some(tier))
}

/// A member of staff who may be told.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Member {
    /// The account.
    pub id: String,
    /// Whether they are on call.
    pub on_call: bool,
    /// Their zone.
    pub timezone: String,
    /// Their working hours (JSON), if they set them.
    pub working_hours: Option<String>,
}

/// Active staff of a clinic in `audience`.
pub fn audience(
    conn: &mut DbConnection,
    clinic_id: &str,
    audience: policy::Audience,
) -> QueryResult<Vec<Member>> {
    let query = accounts::table
        .filter(accounts::clinic_id.eq(clinic_id))
        .filter(accounts::disabled_at.is_null())
        .select((
            accounts::id,
            accounts::on_call,
            accounts::timezone,
            accounts::working_hours,
        ))
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

/// Where an inbox page starts: after this (severity rank, last signal, id).
pub type InboxCursor = (i32, (NaiveDateTime, String));

/// What an inbox page is narrowed to; every field left `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    /// `open`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    /// One patient's alerts.
    pub patient_id: Option<String>,
    /// One severity.
    pub severity: Option<Severity>,
    /// One rule.
    pub rule: Option<Rule>,
}

/// One page of a clinic's inbox, most severe first, then by the latest signal (one more row than
/// `limit` tells the caller a next page exists).
pub fn inbox_page(
    conn: &mut DbConnection,
    clinic_id: &str,
    filter: &InboxFilter,
    after: Option<&InboxCursor>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut query = alerts::table
        .filter(alerts::clinic_id.eq(clinic_id))
        .select(AlertRow::as_select())
        .order((
            alerts::severity_rank.desc(),
            alerts::last_signal_at.desc(),
            alerts::id.desc(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some(status) = &filter.status {
        query = query.filter(alerts::status.eq(status.clone()));
    }
    if let Some(patient) = &filter.patient_id {
        query = query.filter(alerts::patient_id.eq(patient.clone()));
    }
    if let Some(severity) = filter.severity {
        query = query.filter(alerts::severity.eq(severity_name(severity)));
    }
    if let Some(rule) = filter.rule {
        query = query.filter(alerts::rule.eq(rule_name(rule)));
    }
    if let Some((rank, (at, id))) = after {
        query = query.filter(
            alerts::severity_rank
                .lt(*rank)
                .or(alerts::severity_rank.eq(*rank).and(
                    alerts::last_signal_at.lt(*at).or(alerts::last_signal_at
                        .eq(*at)
                        .and(alerts::id.lt(id.clone()))),
                )),
        );
    }
    query.load(conn)
}

/// One step of an alert's history: when, what, who, details, and the check-in of a signal.
pub type EventRow = (
    NaiveDateTime,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// An alert's history, oldest first.
pub fn events_of(conn: &mut DbConnection, alert_id: &str) -> QueryResult<Vec<EventRow>> {
    alert_events::table
        .filter(alert_events::alert_id.eq(alert_id))
        .select((
            alert_events::at,
            alert_events::kind,
            alert_events::actor_id,
            alert_events::detail,
            alert_events::check_in_id,
        ))
        .order((alert_events::at.asc(), alert_events::id.asc()))
        .load(conn)
}

/// An alert's status now.
pub fn status_of(conn: &mut DbConnection, alert_id: &str) -> QueryResult<String> {
    alerts::table
        .find(alert_id)
        .select(alerts::status)
        .first(conn)
}

/// Acknowledges an open alert; false if it was not open.
pub fn acknowledge_if_open(
    conn: &mut DbConnection,
    alert_id: &str,
    by: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        alerts::table
            .filter(alerts::id.eq(alert_id))
            .filter(alerts::status.eq("open")),
    )
    .set((
        alerts::status.eq("acknowledged"),
        alerts::acknowledged_at.eq(now),
        alerts::acknowledged_by.eq(by),
        alerts::new_signal_since_ack.eq(false),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// True if `account_id` is an enabled clinician or clinic admin of `clinic_id`.
pub fn is_active_staff(
    conn: &mut DbConnection,
    account_id: &str,
    clinic_id: &str,
) -> QueryResult<bool> {
    let count: i64 = accounts::table
        .filter(accounts::id.eq(account_id))
        .filter(accounts::clinic_id.eq(clinic_id))
        .filter(accounts::role.eq_any(["clinician", "clinic_admin"]))
        .filter(accounts::disabled_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Assigns an unresolved alert; false if it is resolved.
pub fn assign_if_unresolved(
    conn: &mut DbConnection,
    alert_id: &str,
    assignee: &str,
) -> QueryResult<bool> {
    diesel::update(
        alerts::table
            .filter(alerts::id.eq(alert_id))
            .filter(alerts::status.ne("resolved")),
    )
    .set(alerts::assigned_to.eq(assignee))
    .execute(conn)
    .map(|n| n == 1)
}

/// Resolves an unresolved alert holding exactly `signal_count` signals (and acknowledges it,
/// unless someone had); false if it was resolved already or a new signal arrived since the
/// resolver read it. Guarded: of two resolves at once, the second finds it resolved, and a
/// signal folded in while the resolve was decided is never closed unseen.
pub fn resolve_if_unresolved(
    conn: &mut DbConnection,
    alert_id: &str,
    signal_count: i32,
    by: &str,
    note: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        alerts::table
            .filter(alerts::id.eq(alert_id))
            .filter(alerts::status.ne("resolved"))
            .filter(alerts::signal_count.eq(signal_count)),
    )
    .set((
        alerts::status.eq("resolved"),
        alerts::resolved_at.eq(now),
        alerts::resolved_by.eq(by),
        alerts::resolution_note.eq(note),
        alerts::new_signal_since_ack.eq(false),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Ok(false);
    }
    diesel::update(
        alerts::table
            .filter(alerts::id.eq(alert_id))
            .filter(alerts::acknowledged_at.is_null()),
    )
    .set((
        alerts::acknowledged_at.eq(now),
        alerts::acknowledged_by.eq(by),
    ))
    .execute(conn)?;
    Ok(true)
}

/// A patient's alerts, newest signal first, at most `limit`.
pub fn of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .select(AlertRow::as_select())
        .order((alerts::last_signal_at.desc(), alerts::id.desc()))
        .limit(limit)
        .load(conn)
}

/// When an alert of `patient_id` under `rule` was last resolved, or `None` if never.
pub fn last_resolved_at(
    conn: &mut DbConnection,
    patient_id: &str,
    rule: &str,
) -> QueryResult<Option<NaiveDateTime>> {
    alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .filter(alerts::rule.eq(rule))
        .select(diesel::dsl::max(alerts::resolved_at))
        .first(conn)
}

/// A delivery row to insert (see `reach::record`).
#[derive(Debug, Clone, Copy)]
pub struct NewDeliveryRow<'a> {
    /// The alert.
    pub alert_id: &'a str,
    /// The alert's round and escalation step.
    pub step: Step,
    /// The tier it was for, or -1.
    pub tier: i32,
    /// `tier`, `last_resort` or `assignee`.
    pub audience: &'a str,
    /// `push`, `webhook` or `email`.
    pub channel: &'a str,
    /// The account or endpoint.
    pub recipient: &'a str,
    /// The notification id or the delivery job's dedupe key.
    pub ref_id: &'a str,
    /// The delivery's status name.
    pub status: &'a str,
}

/// Inserts a delivery under a fresh id, created and updated `now`.
pub fn insert_delivery(
    conn: &mut DbConnection,
    delivery: &NewDeliveryRow<'_>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(alert_deliveries::table)
        .values((
            alert_deliveries::id.eq(uuid::Uuid::now_v7().to_string()),
            alert_deliveries::alert_id.eq(delivery.alert_id),
            alert_deliveries::round.eq(delivery.step.round),
            alert_deliveries::escalation.eq(delivery.step.escalation),
            alert_deliveries::tier.eq(delivery.tier),
            alert_deliveries::audience.eq(delivery.audience),
            alert_deliveries::channel.eq(delivery.channel),
            alert_deliveries::recipient.eq(delivery.recipient),
            alert_deliveries::ref_id.eq(delivery.ref_id),
            alert_deliveries::status.eq(delivery.status),
            alert_deliveries::created_at.eq(now),
            alert_deliveries::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Whether a delivery with this reference was recorded.
pub fn delivery_exists(conn: &mut DbConnection, ref_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        alert_deliveries::table.filter(alert_deliveries::ref_id.eq(ref_id)),
    ))
    .get_result(conn)
}

/// Whether `recipient` has a push about `alert_id` held in `round`.
pub fn holds_push_for(
    conn: &mut DbConnection,
    alert_id: &str,
    round: i32,
    recipient: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        alert_deliveries::table
            .filter(alert_deliveries::alert_id.eq(alert_id))
            .filter(alert_deliveries::round.eq(round))
            .filter(alert_deliveries::recipient.eq(recipient))
            .filter(alert_deliveries::channel.eq("push"))
            .filter(alert_deliveries::status.eq("held")),
    ))
    .get_result(conn)
}

/// A delivery as found by its reference: its alert, round, escalation, audience and status.
pub type DeliveryKey = (String, i32, i32, String, String);

/// The delivery `ref_id`: its alert, round, escalation, audience and status.
pub fn find_delivery(conn: &mut DbConnection, ref_id: &str) -> QueryResult<Option<DeliveryKey>> {
    alert_deliveries::table
        .filter(alert_deliveries::ref_id.eq(ref_id))
        .select((
            alert_deliveries::alert_id,
            alert_deliveries::round,
            alert_deliveries::escalation,
            alert_deliveries::audience,
            alert_deliveries::status,
        ))
        .first(conn)
        .optional()
}

/// Writes the status and detail of the delivery `ref_id`, stamping `updated_at`.
pub fn set_delivery_outcome(
    conn: &mut DbConnection,
    ref_id: &str,
    status: &str,
    detail: Option<String>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(alert_deliveries::table.filter(alert_deliveries::ref_id.eq(ref_id)))
        .set((
            alert_deliveries::status.eq(status),
            alert_deliveries::detail.eq(detail),
            alert_deliveries::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Holds the alert's row until the transaction ends (PostgreSQL, `FOR UPDATE`; SQLite's writes
/// already take turns).
pub fn lock_alert(conn: &mut DbConnection, alert_id: &str) -> QueryResult<()> {
    if let DbConnection::Pg(pg) = conn {
        alerts::table
            .find(alert_id)
            .select(alerts::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
    Ok(())
}

/// The tier deliveries of one step of an alert: channel, status and recipient of each.
pub fn tier_deliveries(
    conn: &mut DbConnection,
    alert_id: &str,
    step: Step,
) -> QueryResult<Vec<(String, String, String)>> {
    alert_deliveries::table
        .filter(alert_deliveries::alert_id.eq(alert_id))
        .filter(alert_deliveries::round.eq(step.round))
        .filter(alert_deliveries::escalation.eq(step.escalation))
        .filter(alert_deliveries::audience.eq("tier"))
        .select((
            alert_deliveries::channel,
            alert_deliveries::status,
            alert_deliveries::recipient,
        ))
        .load(conn)
}

/// Whether the last resort was told about the alert in `round`.
pub fn last_resort_told(conn: &mut DbConnection, alert_id: &str, round: i32) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        alert_deliveries::table
            .filter(alert_deliveries::alert_id.eq(alert_id))
            .filter(alert_deliveries::round.eq(round))
            .filter(alert_deliveries::audience.eq("last_resort")),
    ))
    .get_result(conn)
}

/// Marks the alert reached `now` (and no longer unreachable) if it is still in `round` and was
/// not reached yet; returns how many rows changed (0 or 1).
pub fn mark_reached(
    conn: &mut DbConnection,
    alert_id: &str,
    round: i32,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        alerts::table
            .filter(alerts::id.eq(alert_id))
            .filter(alerts::round.eq(round))
            .filter(alerts::reached_at.is_null()),
    )
    .set((
        alerts::reached_at.eq(now),
        alerts::unreachable_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
}

/// Marks the alert unreachable since `now`.
pub fn set_unreachable(
    conn: &mut DbConnection,
    alert_id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(alerts::table.find(alert_id))
        .set(alerts::unreachable_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// An alert's status, and when it was reached and marked unreachable.
pub type ReachState = (String, Option<NaiveDateTime>, Option<NaiveDateTime>);

/// An alert's status and when it was reached and marked unreachable, if it exists.
pub fn reach_state(conn: &mut DbConnection, alert_id: &str) -> QueryResult<Option<ReachState>> {
    alerts::table
        .find(alert_id)
        .select((alerts::status, alerts::reached_at, alerts::unreachable_at))
        .first(conn)
        .optional()
}

/// Moves the alert to `tier` (the tier the escalation policy could reach).
pub fn set_tier(conn: &mut DbConnection, alert_id: &str, tier: i32) -> QueryResult<()> {
    diesel::update(alerts::table.find(alert_id))
        .set(alerts::tier.eq(tier))
        .execute(conn)
        .map(drop)
}

/// A stored endpoint.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    /// Id.
    pub id: String,
    /// The clinic.
    pub clinic_id: String,
    /// Where deliveries go.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_expires_at`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_expires_at: Option<NaiveDateTime>,
    /// Whether deliveries are made.
    pub active: bool,
    /// Created.
    pub created_at: NaiveDateTime,
}

/// Records an endpoint's last outcome: `None` clears its failure and stamps its last success;
/// a failure marks it failing since `now` (unless it already was) and keeps the reason.
pub fn record_endpoint_health(
    conn: &mut DbConnection,
    endpoint_id: &str,
    failure: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let target = webhook_endpoints::table.find(endpoint_id);
    match failure {
        None => diesel::update(target)
            .set((
                webhook_endpoints::last_success_at.eq(Some(now)),
                webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
                webhook_endpoints::last_failure.eq(None::<String>),
            ))
            .execute(conn)?,
        Some(reason) => {
            diesel::update(target.filter(webhook_endpoints::failing_since.is_null()))
                .set(webhook_endpoints::failing_since.eq(Some(now)))
                .execute(conn)?;
            diesel::update(target)
                .set(webhook_endpoints::last_failure.eq(Some(reason)))
                .execute(conn)?
        }
    };
    Ok(())
}

/// An endpoint's id, since when it has been failing, and its last failure.
pub type EndpointHealth = (String, Option<NaiveDateTime>, Option<String>);

/// The id, failing-since and last failure of each of a clinic's active endpoints, in id order.
pub fn endpoint_health(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<Vec<EndpointHealth>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::clinic_id.eq(clinic_id))
        .filter(webhook_endpoints::active.eq(true))
        .select((
            webhook_endpoints::id,
            webhook_endpoints::failing_since,
            webhook_endpoints::last_failure,
        ))
        .order(webhook_endpoints::id.asc())
        .load(conn)
}

/// The ids of a clinic's active webhook endpoints.
pub fn active_endpoints(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Vec<String>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::clinic_id.eq(clinic_id))
        .filter(webhook_endpoints::active.eq(true))
        .select(webhook_endpoints::id)
        .load(conn)
}

/// The endpoint `id`, active or not.
pub fn find_endpoint(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EndpointRow>> {
    webhook_endpoints::table
        .find(id)
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()
}

/// Inserts an endpoint.
pub fn insert_endpoint(conn: &mut DbConnection, row: &EndpointRow) -> QueryResult<()> {
    diesel::insert_into(webhook_endpoints::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// A page of a clinic's active endpoints in id order after `after`, at most `limit`.
pub fn endpoints_page(
    conn: &mut DbConnection,
    clinic_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<EndpointRow>> {
    let mut query = webhook_endpoints::table
        .filter(webhook_endpoints::clinic_id.eq(clinic_id))
        .filter(webhook_endpoints::active.eq(true))
        .select(EndpointRow::as_select())
        .order(webhook_endpoints::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(webhook_endpoints::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Gives the endpoint `id` the signing secret `secret`; `previous` keeps signing until
/// `previous_expires_at`.
pub fn rotate_endpoint_secret(
    conn: &mut DbConnection,
    id: &str,
    secret: &str,
    previous: &str,
    previous_expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::previous_secret.eq(Some(previous)),
            webhook_endpoints::previous_expires_at.eq(Some(previous_expires_at)),
        ))
        .execute(conn)
        .map(drop)
}

/// Stops deliveries to the endpoint `id`.
pub fn deactivate_endpoint(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(webhook_endpoints::table.find(id))
        .set(webhook_endpoints::active.eq(false))
        .execute(conn)
        .map(drop)
}

// A patient's erasure, the retention purge and the patient's export.

/// The stored rule name of a patient's request for help.
const HELP_REQUEST_RULE: &str = "patient_help_request";

/// The unresolved alerts of `patient_id`, as (id, severity).
pub fn unresolved_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Vec<(String, String)>> {
    alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .filter(alerts::status.ne("resolved"))
        .select((alerts::id, alerts::severity))
        .load(conn)
}

/// The ids of the resolved alerts of `patient_id`.
pub fn resolved_of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<Vec<String>> {
    alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .filter(alerts::status.eq("resolved"))
        .select(alerts::id)
        .load(conn)
}

/// Reduces the alerts `ids` of an erased patient to severity, rule and times: marked erased at
/// `stamp`, `explanation` instead of theirs, no inputs, no link to a check-in, and their events'
/// details and check-ins gone.
pub fn strip_erased(
    conn: &mut DbConnection,
    ids: &[&String],
    explanation: &str,
    stamp: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(alerts::table.filter(alerts::id.eq_any(ids)))
        .set((
            alerts::patient_erased_at.eq(Some(stamp)),
            alerts::explanation.eq(explanation),
            alerts::inputs.eq("{}"),
            alerts::check_in_id.eq(None::<String>),
        ))
        .execute(conn)?;
    diesel::update(alert_events::table.filter(alert_events::alert_id.eq_any(ids)))
        .set((
            alert_events::detail.eq(""),
            alert_events::check_in_id.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes the alerts `ids` with their events; returns how many alerts went.
pub fn delete_with_events(conn: &mut DbConnection, ids: &[String]) -> QueryResult<usize> {
    diesel::delete(alert_events::table.filter(alert_events::alert_id.eq_any(ids))).execute(conn)?;
    diesel::delete(alerts::table.filter(alerts::id.eq_any(ids))).execute(conn)
}

/// De-identifies the resolved alerts `ids` of an erased patient: the events' details and the
/// resolution notes go (`note` instead), and so do the inputs of a request for help (the
/// patient's own words). Rule, severity, times and the opaque id stay.
pub fn deidentify_resolved(conn: &mut DbConnection, ids: &[String], note: &str) -> QueryResult<()> {
    diesel::update(alert_events::table.filter(alert_events::alert_id.eq_any(ids)))
        .set(alert_events::detail.eq(""))
        .execute(conn)?;
    diesel::update(alerts::table.filter(alerts::id.eq_any(ids)))
        .set(alerts::resolution_note.eq(note))
        .execute(conn)?;
    diesel::update(
        alerts::table
            .filter(alerts::id.eq_any(ids))
            .filter(alerts::rule.eq(HELP_REQUEST_RULE)),
    )
    .set(alerts::inputs.eq("{}"))
    .execute(conn)?;
    Ok(())
}

/// Deletes the alerts `ids` with their events, 500 at a time; returns how many alerts went.
fn delete_in_chunks(conn: &mut DbConnection, ids: &[String]) -> QueryResult<usize> {
    let mut deleted = 0;
    for chunk in ids.chunks(500) {
        deleted += delete_with_events(conn, chunk)?;
    }
    Ok(deleted)
}

/// Deletes the alerts of `clinic_id` resolved before `before`, with their events; returns how
/// many alerts went.
pub fn purge_resolved_before(
    conn: &mut DbConnection,
    clinic_id: &str,
    before: NaiveDateTime,
) -> QueryResult<usize> {
    let old: Vec<String> = alerts::table
        .filter(alerts::clinic_id.eq(clinic_id))
        .filter(alerts::status.eq("resolved"))
        .filter(alerts::resolved_at.lt(before))
        .select(alerts::id)
        .load(conn)?;
    delete_in_chunks(conn, &old)
}

/// Deletes the resolved alerts kept after their patient's erasure, with their events, except in
/// the clinics whose stored erasure mode (in the lifecycle's `clinic_lifecycle`) is
/// `kept_by_mode`; returns how many alerts went.
pub fn purge_resolved_of_erased(conn: &mut DbConnection, kept_by_mode: &str) -> QueryResult<usize> {
    use companion_schema::schema::clinic_lifecycle;
    let keeping = clinic_lifecycle::table
        .filter(clinic_lifecycle::erasure_mode.eq(kept_by_mode))
        .select(clinic_lifecycle::clinic_id);
    let done: Vec<String> = alerts::table
        .filter(alerts::status.eq("resolved"))
        .filter(alerts::patient_erased_at.is_not_null())
        .filter(diesel::dsl::not(alerts::clinic_id.eq_any(keeping)))
        .select(alerts::id)
        .load(conn)?;
    delete_in_chunks(conn, &done)
}

/// An alert as the patient's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedAlert {
    /// Id.
    pub id: String,
    /// Rule name.
    pub rule: String,
    /// Severity name.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// Why.
    pub explanation: String,
    /// Opened.
    pub opened_at: NaiveDateTime,
    /// Resolved.
    pub resolved_at: Option<NaiveDateTime>,
    /// Resolution note.
    pub resolution_note: Option<String>,
    /// The check-in that raised it last.
    pub check_in_id: Option<String>,
}

/// An alert's event as the patient's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedEvent {
    /// The alert.
    pub alert_id: String,
    /// When.
    pub at: NaiveDateTime,
    /// What happened.
    pub kind: String,
    /// Who, if a person.
    pub actor_id: Option<String>,
    /// Detail (JSON or text).
    pub detail: String,
}

/// Every alert of `patient_id`, oldest first, for their export.
pub fn exported_alerts_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> QueryResult<Vec<ExportedAlert>> {
    alerts::table
        .filter(alerts::patient_id.eq(patient_id))
        .order(alerts::opened_at)
        .select((
            alerts::id,
            alerts::rule,
            alerts::severity,
            alerts::status,
            alerts::explanation,
            alerts::opened_at,
            alerts::resolved_at,
            alerts::resolution_note,
            alerts::check_in_id,
        ))
        .load(conn)
}

/// The events of the alerts `alert_ids`, oldest first, for a patient's export.
pub fn exported_events(
    conn: &mut DbConnection,
    alert_ids: &[&String],
) -> QueryResult<Vec<ExportedEvent>> {
    alert_events::table
        .filter(alert_events::alert_id.eq_any(alert_ids))
        .order((alert_events::at, alert_events::id))
        .select((
            alert_events::alert_id,
            alert_events::at,
            alert_events::kind,
            alert_events::actor_id,
            alert_events::detail,
        ))
        .load(conn)
}

/// Up to `limit` alerts of `clinic_id`, newest first, starting at (opened_at, id) inclusive,
/// changed at or after `since` (any of their times): a page of a Bulk Data export.
pub fn changed_alerts_page(
    conn: &mut DbConnection,
    clinic_id: &str,
    since: Option<NaiveDateTime>,
    from: Option<&(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut q = alerts::table
        .filter(alerts::clinic_id.eq(clinic_id.to_owned()))
        .select(AlertRow::as_select())
        .order((alerts::opened_at.desc(), alerts::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(since) = since {
        q = q.filter(
            alerts::last_signal_at
                .ge(since)
                .or(alerts::acknowledged_at.ge(since))
                .or(alerts::resolved_at.ge(since)),
        );
    }
    if let Some((at, id)) = from {
        // The leading `<=` lets the (clinic, opened, id) index seek to the position.
        q = q
            .filter(alerts::opened_at.le(*at))
            .filter(alerts::opened_at.lt(*at).or(alerts::id.le(id.clone())));
    }
    q.load(conn)
}

/// Open (unacknowledged) alerts of one severity, for metrics.
#[derive(Debug, Clone, QueryableByName)]
struct SeverityCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Open (unacknowledged) alerts of every clinic by severity name.
pub fn open_by_severity(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<SeverityCount> = diesel::sql_query(
        "SELECT severity AS key, COUNT(*) AS n, NULL AS oldest FROM alerts WHERE status = 'open' GROUP BY severity",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.key, r.n)).collect())
}
