//! The care team's inbox use cases: list, read (with history and recent check-ins), acknowledge,
//! assign and resolve. Each reads and changes the alert on the request's connection, guarded by
//! the state it read, and writes its audit row.

use chrono::{DateTime, NaiveDateTime, Utc};
use companion_schema::ids::{AccountId, AlertId};

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::check_in::{self as check_ins, CheckInRow, HistoryFilter};
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::patient::SelfAccess;

use diesel::QueryResult;

use crate::push::content::PushMessage;
use crate::time::utc;

use super::decide::{Channels, Delivery};
use super::reach::{self, Audience, Channel, NewDelivery};
use super::rules::Severity;
use super::store::{self, AlertRow, EventRow, InboxCursor, InboxFilter, Step};

/// The statuses an inbox can be filtered by.
pub const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];

/// One page of the caller's clinic's inbox narrowed by `filter` (`limit` + 1 rows when there is
/// a next page). A patient id that is not a patient of the caller's clinic matches nothing.
/// Audited.
pub fn list(
    conn: &mut DbConnection,
    caller: &Caller,
    filter: InboxFilter,
    after: Option<&InboxCursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<AlertRow>> {
    let now = now.naive_utc();
    if let Some(status) = filter.status.as_deref()
        && !STATUSES.contains(&status)
    {
        return Err(
            Refusal::invalid_field("status", "must be open, acknowledged or resolved").into(),
        );
    }
    let clinic = caller.own_clinic()?.to_string();
    let mut filter = filter;
    if let Some(raw) = filter.patient_id.take() {
        if AccountId::parse(&raw).is_none() {
            return Err(Refusal::invalid_field("patient_id", "must be a patient id").into());
        }
        // The patient is resolved in the caller's clinic first: another clinic's patient is
        // not found, and no audit row is written about them.
        let patient = crate::patient::resolve(conn, caller, &raw, SelfAccess::StaffOnly)?;
        filter.patient_id = Some(patient.id.to_string());
    }
    let rows = store::inbox_page(conn, &clinic, &filter, after, limit)?;
    let mut entry = AuditEntry::by(caller, "alerts.read", now);
    if let Some(patient) = &filter.patient_id {
        entry = entry.patient(patient);
    }
    audit::record(conn, &entry)?;
    Ok(rows)
}

/// An alert of the caller's clinic, or not found.
fn clinic_alert(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<AlertRow> {
    let Some(id) = AlertId::parse(raw_id) else {
        return Err(Refusal::not_found("alert").into());
    };
    let clinic = caller.clinic_id.as_ref().map(|c| c.as_str());
    Ok(store::find(conn, id.as_str())?
        .filter(|a| Some(a.clinic_id.as_str()) == clinic)
        .ok_or_else(|| Refusal::not_found("alert"))?)
}

/// An alert with its history and the patient's ten latest check-ins.
#[derive(Debug)]
pub struct Detail {
    /// The alert.
    pub alert: AlertRow,
    /// Its history, oldest first.
    pub events: Vec<EventRow>,
    /// The patient's latest check-ins.
    pub recent: Vec<CheckInRow>,
}

/// Reads one alert of the caller's clinic. Audited.
pub fn detail(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<Detail> {
    let now = now.naive_utc();
    let alert = clinic_alert(conn, caller, raw_id)?;
    let events = store::events_of(conn, &alert.id)?;
    // An erased patient's alert keeps the minimum needed to act on it: no check-ins.
    let recent = if alert.patient_erased_at.is_some() {
        Vec::new()
    } else {
        check_ins::check_in_history(conn, &alert.patient_id, &HistoryFilter::default(), 10)?
    };
    audit::record(
        conn,
        &AuditEntry::by(caller, "alert.read", now)
            .patient(&alert.patient_id)
            .subject(&alert.id),
    )?;
    Ok(Detail {
        alert,
        events,
        recent,
    })
}

/// What an action decided, inside its transaction.
enum Decision {
    /// Changed; the audit row is written.
    Changed,
    /// Nothing to change (acknowledging an acknowledged alert).
    Unchanged,
}

fn resolved_conflict() -> Refusal {
    Refusal::conflict("alert_resolved", "This alert is resolved.")
}

/// Runs an action on an alert of the caller's clinic: the alert is read, the action decides on
/// the state it reads and changes it with a guard on that state, the audit row is written, and
/// the alert is read back for the answer. Of two staff acting at once, the second sees what the
/// first did. Returns the alert and whether it changed.
fn act(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    action: &'static str,
    now: NaiveDateTime,
    change: impl FnOnce(&mut DbConnection, &AlertRow) -> Outcome<Decision>,
) -> Outcome<(AlertRow, bool)> {
    let alert = clinic_alert(conn, caller, raw_id)?;
    let changed = match change(conn, &alert)? {
        Decision::Changed => true,
        Decision::Unchanged => false,
    };
    if changed {
        audit::record(
            conn,
            &AuditEntry::by(caller, action, now)
                .patient(&alert.patient_id)
                .subject(&alert.id),
        )?;
    }
    Ok(store::find(conn, &alert.id)?
        .map(|row| (row, changed))
        .ok_or_else(|| Refusal::not_found("alert"))?)
}

/// Acknowledges an alert: stops its escalation and withdraws routine pushes held for working
/// hours. Acknowledging again changes nothing; a resolved alert is a conflict.
pub fn acknowledge(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<(AlertRow, bool)> {
    let now = now.naive_utc();
    let who = caller.account_id.to_string();
    act(
        conn,
        caller,
        raw_id,
        "alert.acknowledge",
        now,
        |conn, alert| {
            if !store::acknowledge_if_open(conn, &alert.id, &who, now)? {
                return match store::status_of(conn, &alert.id)?.as_str() {
                    "resolved" => Err(resolved_conflict().into()),
                    _ => Ok(Decision::Unchanged),
                };
            }
            let withdrawn =
                crate::push::withdraw_waiting(conn, "care_alert_routine", &alert.id, now)?;
            // Acknowledged is not resolved: an urgent or high alert left so comes back.
            super::worker::schedule_ack_lapse(conn, alert, utc(now))?;
            let detail = match withdrawn {
                0 => String::new(),
                n => format!("{n} held push(es) withdrawn"),
            };
            store::event(conn, &alert.id, "acknowledged", Some(&who), &detail, now)?;
            Ok(Decision::Changed)
        },
    )
}

/// Assigns an alert to an enabled clinician or clinic admin of its clinic, and tells the assignee
/// (a push to their devices; an email too for urgent and high alerts, when email is configured).
pub fn assign(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    raw_assignee: &str,
    channels: Channels,
    now: DateTime<Utc>,
) -> Outcome<AlertRow> {
    let now = now.naive_utc();
    let not_staff = || Refusal::invalid_field("assignee_id", "is not staff of this clinic");
    let Some(assignee) = AccountId::parse(raw_assignee) else {
        return Err(not_staff().into());
    };
    let assignee = assignee.to_string();
    let who = caller.account_id.to_string();
    let (row, _) = act(conn, caller, raw_id, "alert.assign", now, |conn, alert| {
        if !store::is_active_staff(conn, &assignee, &alert.clinic_id)? {
            return Err(not_staff().into());
        }
        if !store::assign_if_unresolved(conn, &alert.id, &assignee)? {
            return Err(resolved_conflict().into());
        }
        let told = tell_assignee(conn, alert, &assignee, channels, now)?;
        store::event(
            conn,
            &alert.id,
            "assigned",
            Some(&who),
            &format!("{assignee}; told: {told}"),
            now,
        )?;
        Ok(Decision::Changed)
    })?;
    Ok(row)
}

/// Queues the pushes (and, for urgent and high alerts, the email) that tell an assignee.
fn tell_assignee(
    conn: &mut DbConnection,
    alert: &AlertRow,
    assignee: &str,
    channels: Channels,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let severity = store::parse_severity(&alert.severity);
    let step = Step {
        round: alert.round,
        escalation: alert.escalations,
    };
    let mut devices = 0;
    for device in crate::push::active_devices(conn, assignee)? {
        if !channels.pushes(&device.platform) {
            continue;
        }
        let id = crate::push::notify_device(
            conn,
            &device,
            |_| PushMessage::ClinicianAlert {
                alert_id: alert.id.clone(),
                time_sensitive: severity >= Severity::High,
            },
            now,
        )?;
        reach::record(
            conn,
            &NewDelivery {
                alert_id: &alert.id,
                step,
                audience: Audience::Assignee,
                channel: Channel::Push,
                recipient: assignee,
                ref_id: &id,
                status: Delivery::Queued,
            },
            utc(now),
        )?;
        devices += 1;
    }
    let mut emails = 0;
    if channels.email
        && severity >= Severity::High
        && super::mail::enqueue(
            conn,
            &alert.id,
            step,
            Audience::Assignee,
            assignee,
            super::mail::Kind::Alert,
            utc(now),
        )?
    {
        emails += 1;
    }
    Ok(format!("{devices} devices, {emails} emails"))
}

/// A new signal arrived on the alert after the resolver read it.
fn new_signal_conflict() -> Refusal {
    Refusal::conflict(
        "alert_new_signal",
        "A new signal arrived on this alert since it was read; read it again before resolving.",
    )
}

/// Resolves an alert with a note (1 to 2000 characters), acknowledging it if nobody had.
/// `seen_signals`, when given, is the `signal_count` the resolver saw: an alert that received
/// more signals since is not resolved (409 `alert_new_signal`), so a signal is never closed
/// unseen. Without it the alert as read in this transaction is the one resolved, and a signal
/// that arrives while the resolve is decided is refused the same way.
pub fn resolve(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    note: &str,
    seen_signals: Option<i32>,
    now: DateTime<Utc>,
) -> Outcome<AlertRow> {
    let now = now.naive_utc();
    let note = note.trim();
    if note.is_empty() || note.chars().count() > 2000 {
        return Err(Refusal::invalid_field("note", "must be 1 to 2000 characters").into());
    }
    let who = caller.account_id.to_string();
    let (row, _) = act(conn, caller, raw_id, "alert.resolve", now, |conn, alert| {
        if alert.status == "resolved" {
            return Err(resolved_conflict().into());
        }
        let expected = seen_signals.unwrap_or(alert.signal_count);
        if !store::resolve_if_unresolved(conn, &alert.id, expected, &who, note, now)? {
            let conflict = match store::status_of(conn, &alert.id)?.as_str() {
                "resolved" => resolved_conflict(),
                _ => new_signal_conflict(),
            };
            return Err(conflict.into());
        }
        crate::push::withdraw_waiting(conn, "care_alert_routine", &alert.id, now)?;
        store::event(conn, &alert.id, "resolved", Some(&who), note, now)?;
        Ok(Decision::Changed)
    })?;
    Ok(row)
}

/// A patient's alerts (newest signal first, at most `limit`), for staff of the patient's
/// clinic. Audited.
pub fn of_patient(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<AlertRow>> {
    let now = now.naive_utc();
    crate::patient::with_patient(
        conn,
        caller,
        raw_patient,
        crate::patient::SelfAccess::StaffOnly,
        |conn, patient| {
            let rows = store::of_patient(conn, patient.id.as_str(), limit)?;
            audit::record(
                conn,
                &AuditEntry::by(caller, "alerts.read", now)
                    .clinic(patient.clinic_id.as_str())
                    .patient(patient.id.as_str()),
            )?;
            Ok(rows)
        },
    )
}
