//! How a clinic's alerts reach its care team, as use cases: the alert thresholds and escalation
//! policy its admins set (stored on the clinic's row), the clinic's readiness, and a staff
//! member's on-call flag and working hours.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use companion_schema::ids::ClinicId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::account as accounts;
use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::safety::zones::ZoneCountries;

use super::readiness::{self, Readiness};
use super::store::{self, AlertingSetting};
use super::working_hours::WorkingHours;

fn clinic_of(raw: &str) -> Result<ClinicId, Refusal> {
    ClinicId::parse(raw).ok_or_else(|| Refusal::not_found("clinic"))
}

/// A clinic's setting, for its staff.
pub fn read_setting<T: DeserializeOwned + Default>(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    setting: AlertingSetting,
) -> Outcome<T> {
    let clinic = clinic_of(raw_clinic).and_then(|c| caller.ensure_staff_of(&c).map(|()| c))?;
    Ok(store::read_setting(conn, clinic.as_str(), setting)?)
}

/// A new value for a clinic setting.
#[derive(Debug)]
pub struct AlertingChange<T> {
    /// Which setting.
    pub setting: AlertingSetting,
    /// What changing it is called, for the refusal ("change alert thresholds").
    pub what: &'static str,
    /// The value.
    pub value: T,
    /// The value's own validation, answered after the role check.
    pub problems: BTreeMap<String, String>,
}

/// Replaces a clinic's setting (its admins only). Audited.
pub fn update_setting<T: Serialize>(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    change: AlertingChange<T>,
    now: DateTime<Utc>,
) -> Outcome<T> {
    let AlertingChange {
        setting,
        what,
        value,
        problems,
    } = change;
    let clinic =
        clinic_of(raw_clinic).and_then(|c| caller.ensure_admin_of(&c, what).map(|()| c))?;
    if !problems.is_empty() {
        return Err(Refusal::validation(problems).into());
    }
    let json = match serde_json::to_string(&value) {
        Ok(json) => json,
        Err(e) => return Err(Refusal::broken(&e).into()),
    };
    let action = match setting {
        AlertingSetting::AlertThresholds => "alert_thresholds.update",
        AlertingSetting::EscalationPolicy => "escalation_policy.update",
    };
    store::write_setting(conn, clinic.as_str(), setting, json)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, action, now.naive_utc()).clinic(clinic.as_str()),
    )?;
    Ok(value)
}

/// What would leave a clinic's alerts unreachable: for its staff and organisation admins.
pub fn clinic_readiness(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    zones: &ZoneCountries,
    channels: super::decide::Channels,
) -> Outcome<Readiness> {
    let clinic = clinic_of(raw_clinic)?;
    let allowed = match caller.role {
        Role::OrgAdmin => Ok(()),
        Role::Patient => Err(Refusal::forbidden(
            "Patients cannot read a clinic's readiness.",
        )),
        _ => caller.ensure_staff_of(&clinic),
    };
    allowed?;
    let id = clinic.as_str();
    let Some(row) = crate::clinic::find_clinic(conn, id)? else {
        return Err(Refusal::not_found("clinic").into());
    };
    let (policy, means) = super::worker::reach_of(conn, id, channels)?;
    let found = crate::safety::crisis::clinic_country_for(
        &crate::safety::crisis::CrisisInputs {
            clinic_country: row.country.as_deref(),
            clinic_timezone: &row.timezone,
            patient_timezone: "",
            ..Default::default()
        },
        zones,
    );
    let mut readiness = readiness::assess(id, &policy, &means, found);
    readiness.problems.extend(monitoring_gaps(conn, id)?);
    Ok(readiness)
}

/// What would leave patients unmonitored rather than alerts unreachable: care plans that never
/// ask PHQ-9 item 9, and patients who have not answered the consent document in force.
fn monitoring_gaps(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> diesel::QueryResult<Vec<readiness::Problem>> {
    let mut out = Vec::new();
    let (default_lacks, patients) = crate::prompt::use_cases::plans_without_item9(conn, clinic_id)?;
    if default_lacks {
        out.push(readiness::Problem {
            code: "care_plan_without_item9".to_owned(),
            message: "The clinic's default care plan never asks the PHQ-9, so nothing asks its \
                      patients the safety question (item 9). Add a weekly or before-session \
                      PHQ-9."
                .to_owned(),
            tier: None,
            account_ids: Vec::new(),
        });
    }
    if !patients.is_empty() {
        out.push(readiness::Problem {
            code: "patient_plan_without_item9".to_owned(),
            message: format!(
                "{} patient(s) follow a care plan of their own that never asks the PHQ-9 (and \
                 so never the safety question).",
                patients.len()
            ),
            tier: None,
            account_ids: patients,
        });
    }
    let roster: Vec<String> = crate::clinic::roster(conn, clinic_id, None, i64::MAX)?
        .into_iter()
        .filter(|row| row.disabled_at.is_none())
        .map(|row| row.id)
        .collect();
    let standings = crate::lifecycle::standings(conn, clinic_id, &roster)?;
    let mut unanswered: Vec<(String, bool)> = standings
        .into_iter()
        .filter(|(_, standing)| standing.unanswered())
        .map(|(id, standing)| (id, standing.prompted()))
        .collect();
    unanswered.sort();
    if !unanswered.is_empty() {
        let prompted = unanswered.iter().filter(|(_, p)| *p).count();
        out.push(readiness::Problem {
            code: "consent_unanswered".to_owned(),
            message: format!(
                "{} patient(s) have not answered the consent document in force: {prompted} are \
                 still prompted under an earlier acceptance, {} are not prompted until they \
                 accept it.",
                unanswered.len(),
                unanswered.len() - prompted
            ),
            tier: None,
            account_ids: unanswered.into_iter().map(|(id, _)| id).collect(),
        });
    }
    Ok(out)
}

/// Marks the caller on or off call.
pub fn set_on_call(conn: &mut DbConnection, caller: &Caller, on_call: bool) -> Outcome<bool> {
    accounts::set_on_call(conn, caller.account_id.as_str(), on_call)?;
    Ok(on_call)
}

/// The caller's zone and working hours (the default when unset).
pub fn working_hours(conn: &mut DbConnection, caller: &Caller) -> Outcome<(String, WorkingHours)> {
    let (timezone, stored) = accounts::working_hours_of(conn, caller.account_id.as_str())?;
    let hours = stored
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Ok((timezone, hours))
}

/// Sets the caller's working hours and, if given, zone (validated here); returns the zone now.
pub fn set_working_hours(
    conn: &mut DbConnection,
    caller: &Caller,
    hours: &WorkingHours,
    timezone: Option<&str>,
    now: DateTime<Utc>,
) -> Outcome<String> {
    let mut problems = hours.problems();
    let timezone = match timezone
        .map(crate::account::model::parse_timezone)
        .transpose()
    {
        Ok(tz) => tz.map(|tz| tz.name().to_owned()),
        Err(problem) => {
            problems.insert("timezone".into(), problem.into());
            None
        }
    };
    if !problems.is_empty() {
        return Err(Refusal::validation(problems).into());
    }
    let json = match serde_json::to_string(hours) {
        Ok(json) => json,
        Err(e) => return Err(Refusal::broken(&e).into()),
    };
    Ok(accounts::set_working_hours(
        conn,
        caller.account_id.as_str(),
        &json,
        timezone.as_deref(),
        now.naive_utc(),
    )?)
}
