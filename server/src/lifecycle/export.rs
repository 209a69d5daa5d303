//! A patient's data as one JSON document: profile, preferences, devices (never their push
//! tokens), sign-in sessions, treatment sessions, prompts, check-ins with scores, alerts with
//! their events, consent records and requests for help. Each export is audited. The document is built from the
//! stored rows here; another format (a FHIR Bundle) can be built from the same reads.

use chrono::{DateTime, NaiveDateTime};
use diesel::QueryResult;
use serde_json::{Value, json};

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::Outcome;
use crate::patient::{self, SelfAccess};
use crate::time::utc;

fn t(at: NaiveDateTime) -> Value {
    json!(utc(at))
}

fn ot(at: Option<NaiveDateTime>) -> Value {
    at.map_or(Value::Null, t)
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Builds the export of `patient_id`'s data.
pub fn document(
    conn: &mut DbConnection,
    patient_id: &str,
    exported_at: DateTime<chrono::Utc>,
) -> QueryResult<Value> {
    let profile = crate::account::exported_profile(conn, patient_id)?;
    let preferences = crate::prompt::exported_preferences_of(conn, patient_id)?;
    let device_rows = crate::push::exported_devices_of(conn, patient_id)?;
    let sign_ins = crate::auth::exported_sign_ins_of(conn, patient_id)?;
    let sessions = crate::treatment::exported_of_patient(conn, patient_id)?;
    let prompt_rows = crate::prompt::exported_prompts_of(conn, patient_id)?;
    let check_in_rows = crate::check_in::exported_of_patient(conn, patient_id)?;
    let alert_rows = crate::escalation::exported_alerts_of_patient(conn, patient_id)?;
    let alert_ids: Vec<&String> = alert_rows.iter().map(|a| &a.id).collect();
    let event_rows = crate::escalation::exported_events(conn, &alert_ids)?;
    let consent = super::store::records(conn, patient_id)?;
    let help_requests = crate::help::of_patient(conn, patient_id)?;
    Ok(json!({
        "format": "companion.patient-export",
        "format_version": 1,
        "exported_at": exported_at,
        "profile": {
            "id": profile.id, "email": profile.email, "display_name": profile.display_name,
            "timezone": profile.timezone, "clinic_id": profile.clinic_id,
            "created_at": t(profile.created_at),
        },
        "preferences": preferences.map(|p| json!({
            "check_in_window": {"start": p.window_start, "end": p.window_end},
            "quiet_hours": {"start": p.quiet_start, "end": p.quiet_end},
        })),
        "devices": device_rows.into_iter().map(|d| json!({
            "id": d.id, "platform": d.platform, "app_version": d.app_version, "locale": d.locale,
            "active": d.active, "created_at": t(d.created_at), "last_seen_at": t(d.last_seen_at),
        })).collect::<Vec<_>>(),
        "sign_in_sessions": sign_ins.into_iter().map(|s| json!({
            "id": s.id, "created_at": t(s.created_at), "revoked_at": ot(s.revoked_at),
        })).collect::<Vec<_>>(),
        "treatment_sessions": sessions.into_iter().map(|s| json!({
            "id": s.id, "modality": s.modality, "status": s.status, "scheduled_at": t(s.scheduled_at),
            "observations": s.observations.as_deref().map(parsed), "created_at": t(s.created_at),
        })).collect::<Vec<_>>(),
        "prompts": prompt_rows.into_iter().map(|p| json!({
            "id": p.id, "instrument": p.instrument, "status": p.status, "due_at": t(p.due_at),
            "expires_at": t(p.expires_at), "sent_at": ot(p.sent_at), "check_in_id": p.check_in_id,
        })).collect::<Vec<_>>(),
        "check_ins": check_in_rows.into_iter().map(|c| json!({
            "id": c.id, "instrument": c.instrument, "instrument_version": c.instrument_version,
            "answers": parsed(&c.answers), "total": c.total, "severity": c.severity,
            "completed_at": t(c.completed_at), "received_at": t(c.received_at), "timing": c.timing,
        })).collect::<Vec<_>>(),
        "alerts": alert_rows.into_iter().map(|a| {
            let events: Vec<Value> = event_rows.iter().filter(|e| e.alert_id == a.id).map(|e| json!({
                "at": t(e.at), "kind": e.kind, "actor_id": e.actor_id, "detail": parsed(&e.detail),
            })).collect();
            json!({
                "id": a.id, "rule": a.rule, "severity": a.severity, "status": a.status,
                "explanation": a.explanation, "opened_at": t(a.opened_at), "resolved_at": ot(a.resolved_at),
                "resolution_note": a.resolution_note, "check_in_id": a.check_in_id, "events": events,
            })
        }).collect::<Vec<_>>(),
        "consent": consent.into_iter().map(|r| json!({
            "id": r.id, "document_id": r.document_id, "version": r.version,
            "action": r.action, "at": t(r.at),
        })).collect::<Vec<_>>(),
        "help_requests": help_requests.into_iter().map(|r| json!({
            "id": r.id, "note": r.note, "received_at": t(r.received_at), "alert_id": r.alert_id,
        })).collect::<Vec<_>>(),
    }))
}

/// The export of a patient the caller may read (staff of the clinic, or the patient). Audited.
pub fn export(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_patient: &str,
    now: DateTime<chrono::Utc>,
) -> Outcome<Value> {
    patient::with_patient(
        conn,
        caller,
        raw_patient,
        SelfAccess::StaffOrSelf,
        |conn, patient| {
            let doc = document(conn, patient.id.as_str(), now)?;
            audit::record(
                conn,
                &AuditEntry::by(caller, "patient.export", now.naive_utc())
                    .clinic(patient.clinic_id.as_str())
                    .patient(patient.id.as_str()),
            )?;
            Ok(doc)
        },
    )
}
