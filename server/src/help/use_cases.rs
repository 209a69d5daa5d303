//! Help request use cases: storing a patient's request once and raising its urgent alert in the
//! same transaction (with the jobs that notify the care team), and reading one back with where
//! the care team stands now.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::QueryResult;

use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::escalation::decide::CareTeam;
use crate::escalation::{self, reach, rules};
use crate::safety::crisis::{self, CrisisInputs, CrisisResources};
use crate::safety::zones::ZoneCountries;

use super::request::HelpRequestInput;
use super::store::{self, HelpRequestRow};

/// A stored request with what the patient is shown: their crisis resources and where the care
/// team stands on its alert.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The request.
    pub row: HelpRequestRow,
    /// The patient's crisis resources.
    pub resources: CrisisResources,
    /// Where the care team stands.
    pub care_team: CareTeam,
    /// True when the request was stored before (a replay of its id).
    pub replayed: bool,
}

/// Attempts at storing a request whose id another request stores at the same moment.
const ATTEMPTS: usize = 3;

/// Stores the caller's request for help once and raises the urgent `patient_help_request`
/// alert on the item-9 path: opened, folded into the patient's unresolved one, or re-opening an
/// acknowledged one, with its notification and deadline jobs, in the caller's transaction.
/// Never refused for its form: the same id again returns the first request (nobody is paged
/// again); an id another patient used is replaced by a new one (listed in `input.problems`).
pub fn request_help(
    conn: &mut DbConnection,
    caller: &Caller,
    mut input: HelpRequestInput,
    now: DateTime<Utc>,
    zones: &ZoneCountries,
) -> Outcome<(Answered, HelpRequestInput)> {
    let clinic_id = caller.own_clinic()?.to_string();
    let patient_id = caller.account_id.to_string();
    let received_at = now.trunc_subsecs(6).naive_utc();
    for _ in 0..ATTEMPTS {
        let id = input
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let mut row = HelpRequestRow {
            id,
            patient_id: patient_id.clone(),
            clinic_id: clinic_id.clone(),
            note: input.note.clone(),
            received_at,
            alert_id: None,
        };
        if store::insert_if_new(conn, &row)? {
            let mut firing = rules::help_request();
            firing.inputs = serde_json::json!({
                "help_request_id": row.id,
                "note": row.note,
            });
            let raised = escalation::raise(
                conn,
                &clinic_id,
                &patient_id,
                escalation::Signal {
                    check_in_id: None,
                    completed_at: Some(received_at),
                    received_at,
                },
                &firing,
            )?;
            store::set_alert(conn, &row.id, &raised.alert_id)?;
            row.alert_id = Some(raised.alert_id);
            let answered = answer(conn, row, false, zones)?;
            return Ok((answered, input));
        }
        match store::find(conn, &row.id)? {
            Some(first) if first.patient_id == patient_id => {
                let answered = answer(conn, first, true, zones)?;
                return Ok((answered, input));
            }
            Some(_) => {
                // Another patient's id: this request is still a request for help.
                input.id = None;
                input.problems.insert(
                    "id".to_owned(),
                    "was already used; the request was stored under a new id".to_owned(),
                );
            }
            // Taken and gone again (an erasure in between): try the insert again.
            None => {}
        }
    }
    Err(Refusal::broken(&"help request id kept changing while it was stored").into())
}

/// One of the caller's own requests, with where the care team stands now; not found when it is
/// not theirs.
pub fn own(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    zones: &ZoneCountries,
) -> Outcome<Answered> {
    let Ok(id) = uuid::Uuid::try_parse(raw_id) else {
        return Err(Refusal::not_found("help request").into());
    };
    let row = store::find(conn, &id.hyphenated().to_string())?
        .filter(|row| row.patient_id == caller.account_id.as_str());
    let Some(row) = row else {
        return Err(Refusal::not_found("help request").into());
    };
    Ok(answer(conn, row, true, zones)?)
}

fn answer(
    conn: &mut DbConnection,
    row: HelpRequestRow,
    replayed: bool,
    zones: &ZoneCountries,
) -> QueryResult<Answered> {
    // Crisis resources are never empty: with nothing known, the international fallback.
    let resources = match crate::safety::for_patient(conn, &row.patient_id, zones)? {
        Some(resources) => resources,
        None => crisis::resources(
            &CrisisInputs {
                clinic_country: None,
                clinic_timezone: "UTC",
                clinic_phone: None,
                clinic_override: None,
                patient_timezone: "UTC",
            },
            zones,
        ),
    };
    let care_team = match &row.alert_id {
        Some(alert) => reach::care_team_of(conn, alert)?.unwrap_or(CareTeam::Unreachable),
        None => CareTeam::Unreachable,
    };
    Ok(Answered {
        row,
        resources,
        care_team,
        replayed,
    })
}
