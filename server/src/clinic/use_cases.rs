//! Clinic use cases: creating, listing, reading and changing clinics, and the patient roster
//! ranked by risk.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use companion_schema::ids::ClinicId;

use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::prompt::adherence::Adherence;

use super::store::{self, ClinicChanges, ClinicRow, RosterRow, StaffRow};

/// Stores a new clinic (organisation admins, checked by the route). Audited.
pub fn create(conn: &mut DbConnection, caller: &Caller, row: ClinicRow) -> Outcome<ClinicRow> {
    store::insert(conn, &row)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "clinic.create", row.created_at).clinic(&row.id),
    )?;
    Ok(row)
}

/// A page of clinics: every clinic for organisation admins, their own for staff.
pub fn list(
    conn: &mut DbConnection,
    caller: &Caller,
    after: Option<&str>,
    limit: i64,
) -> Outcome<Vec<ClinicRow>> {
    let only = match caller.role {
        Role::OrgAdmin => None,
        Role::ClinicAdmin | Role::Clinician => caller.clinic_id.as_ref().map(ToString::to_string),
        Role::Patient => return Err(Refusal::forbidden("Patients cannot list clinics.").into()),
    };
    Ok(store::list(conn, only.as_deref(), after, limit)?)
}

/// One clinic: any for organisation admins, their own for staff.
pub fn get(conn: &mut DbConnection, caller: &Caller, raw_clinic: &str) -> Outcome<ClinicRow> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    let allowed = match caller.role {
        Role::OrgAdmin => Ok(()),
        Role::Patient => Err(Refusal::forbidden("Patients cannot read clinics.")),
        Role::ClinicAdmin | Role::Clinician => caller.ensure_staff_of(&clinic),
    };
    allowed?;
    Ok(store::find(conn, clinic.as_str())?.ok_or_else(|| Refusal::not_found("clinic"))?)
}

/// Changes a clinic: organisation admins any, clinic admins their own. `problems` are the
/// changes' own validation, answered after the role check. Audited.
pub fn update(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    changes: ClinicChanges,
    problems: BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Outcome<ClinicRow> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    // Organisation admins set up clinics, so they may change any; clinic admins their own.
    let allowed = match caller.role {
        Role::OrgAdmin => Ok(()),
        Role::Patient => Err(Refusal::forbidden("Patients cannot change a clinic.")),
        Role::ClinicAdmin | Role::Clinician => caller.ensure_admin_of(&clinic, "change the clinic"),
    };
    allowed?;
    if !problems.is_empty() {
        return Err(Refusal::validation(problems).into());
    }
    if !store::update(conn, clinic.as_str(), &changes)? {
        return Err(Refusal::not_found("clinic").into());
    }
    audit::record(
        conn,
        &AuditEntry::by(caller, "clinic.update", now.naive_utc()).clinic(clinic.as_str()),
    )?;
    Ok(store::find(conn, clinic.as_str())?.ok_or_else(|| Refusal::not_found("clinic"))?)
}

/// A patient on the roster, with what ranks them.
#[derive(Debug)]
pub struct RosterEntry {
    /// 4 for an unresolved urgent alert, 3 high, 2 medium, 1 low, 0 none.
    pub rank: u8,
    /// The patient.
    pub row: RosterRow,
    /// Unresolved alerts.
    pub open_alerts: i64,
    /// The most severe unresolved alert's severity.
    pub risk: Option<String>,
    /// The last 30 days of prompts.
    pub adherence: Adherence,
    /// Where the patient stands with the clinic's consent document.
    pub consent: crate::lifecycle::consent::Standing,
}

/// Sort rank of a severity: higher is more urgent.
pub fn risk_rank(severity: Option<&str>) -> u8 {
    match severity {
        Some("urgent") => 4,
        Some("high") => 3,
        Some("medium") => 2,
        Some("low") => 1,
        _ => 0,
    }
}

/// A roster search: case-insensitive text found in a patient's display name or external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterSearch(String);

impl RosterSearch {
    /// 1 to 100 characters after trimming, no control characters.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 100 || text.chars().any(char::is_control) {
            return Err("must be 1 to 100 characters");
        }
        Ok(Self(text.to_lowercase()))
    }

    /// Whether the patient's display name or external id contains the text, whatever the case.
    /// Done here rather than in SQL because SQLite's `lower` folds ASCII only.
    pub fn matches(&self, row: &RosterRow) -> bool {
        [row.display_name.as_deref(), row.external_id.as_deref()]
            .into_iter()
            .flatten()
            .any(|text| text.to_lowercase().contains(&self.0))
    }
}

/// A page of the clinic's patients, most at risk first, then in id order, after the `(rank,
/// id)` cursor (`limit` + 1 entries when there is a next page), optionally only those matching
/// `search`. Staff of the clinic. Audited.
pub fn roster(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    search: Option<&RosterSearch>,
    after: Option<&(u8, String)>,
    limit: usize,
    now: DateTime<Utc>,
) -> Outcome<Vec<RosterEntry>> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_staff_of(&clinic)?;
    let id = clinic.as_str();
    let mut rows = store::roster(conn, id, None, i64::MAX)?;
    if let Some(search) = search {
        rows.retain(|row| search.matches(row));
    }
    let open = store::open_alert_severities(conn, id)?;
    let mut by_patient: HashMap<String, (i64, Option<String>)> = HashMap::new();
    for (patient, severity) in open {
        let entry = by_patient.entry(patient).or_insert((0, None));
        entry.0 += 1;
        if risk_rank(Some(&severity)) > risk_rank(entry.1.as_deref()) {
            entry.1 = Some(severity);
        }
    }
    let mut ranked: Vec<(u8, RosterRow, i64, Option<String>)> = rows
        .into_iter()
        .map(|row| {
            let (count, risk) = by_patient.remove(&row.id).unwrap_or((0, None));
            (risk_rank(risk.as_deref()), row, count, risk)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let page: Vec<_> = ranked
        .into_iter()
        .filter(|(rank, row, ..)| match after {
            None => true,
            Some((after_rank, after_id)) => {
                rank < after_rank || (rank == after_rank && &row.id > after_id)
            }
        })
        .take(limit + 1)
        .collect();
    let ids: Vec<String> = page.iter().map(|(_, row, ..)| row.id.clone()).collect();
    let consent = crate::lifecycle::standings(conn, id, &ids)?;
    let mut adherence = crate::prompt::use_cases::adherence_of(conn, ids, now)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "patient_roster.read", now.naive_utc()).clinic(id),
    )?;
    Ok(page
        .into_iter()
        .map(|(rank, row, open_alerts, risk)| RosterEntry {
            adherence: adherence
                .remove(&row.id)
                .unwrap_or_else(|| crate::prompt::adherence::summarise(&[], None)),
            consent: consent
                .get(&row.id)
                .copied()
                .unwrap_or(crate::lifecycle::consent::Standing::NotRequired),
            rank,
            row,
            open_alerts,
            risk,
        })
        .collect())
}

/// Display names of patients of the caller's clinic, by id (patients of other clinics, and
/// patients without a name, are left out). Staff only; the page that shows them audits its read.
pub fn patient_names(
    conn: &mut DbConnection,
    caller: &Caller,
    ids: &[String],
) -> Outcome<HashMap<String, String>> {
    if !caller.role.is_staff() {
        return Err(Refusal::forbidden("Only clinic staff may do this.").into());
    }
    let clinic = caller.own_clinic()?.to_string();
    let rows = store::patient_names(conn, &clinic, ids)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, name)| name.map(|name| (id, name)))
        .collect())
}

/// A member of a clinic's staff.
#[derive(Debug, Clone)]
pub struct StaffMember {
    /// Account id.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// `clinician` or `clinic_admin`.
    pub role: String,
    /// On call now.
    pub on_call: bool,
}

/// The enabled staff of the caller's clinic (to assign alerts to, and for the admin pages).
pub fn list_staff(conn: &mut DbConnection, caller: &Caller) -> Outcome<Vec<StaffMember>> {
    if !caller.role.is_staff() {
        return Err(Refusal::forbidden("Only clinic staff may do this.").into());
    }
    let clinic = caller.own_clinic()?.to_string();
    Ok(store::staff_of(conn, &clinic)?
        .into_iter()
        .map(|row| StaffMember {
            id: row.id,
            display_name: row.display_name,
            role: row.role,
            on_call: row.on_call,
        })
        .collect())
}

/// The caller's clinic's roster (most at risk first), narrowed to patients whose display name or
/// external id contains `query` (case-insensitive; an empty query matches everyone), at most
/// `limit`: [`roster`] for the caller's own clinic. Staff of the clinic. Audited as a roster read.
pub fn search_roster(
    conn: &mut DbConnection,
    caller: &Caller,
    query: &str,
    limit: usize,
    now: DateTime<Utc>,
) -> Outcome<Vec<RosterEntry>> {
    let clinic = caller.own_clinic()?.to_string();
    let search = match query.trim() {
        "" => None,
        text => match RosterSearch::parse(text) {
            Ok(search) => Some(search),
            Err(problem) => return Err(Refusal::invalid_field("q", problem).into()),
        },
    };
    roster(conn, caller, &clinic, search.as_ref(), None, limit, now)
}

/// A page of a clinic's staff (clinicians and clinic admins) in joining order after the account
/// id `after` (`limit` + 1 rows when there is a next page). Its clinic admins and organisation
/// admins. Audited.
pub fn staff(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    after: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<StaffRow>> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    let allowed = match caller.role {
        Role::OrgAdmin => Ok(()),
        Role::Patient => Err(Refusal::forbidden("Patients cannot list a clinic's staff.")),
        Role::ClinicAdmin | Role::Clinician => caller.ensure_admin_of(&clinic, "list the staff"),
    };
    allowed?;
    if store::find(conn, clinic.as_str())?.is_none() {
        return Err(Refusal::not_found("clinic").into());
    }
    let rows = store::staff(conn, clinic.as_str(), after, limit)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "clinic_staff.read", now.naive_utc()).clinic(clinic.as_str()),
    )?;
    Ok(rows)
}
