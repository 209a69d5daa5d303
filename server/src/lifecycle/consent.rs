//! Consent use cases: a clinic admin publishes a new version of the clinic's consent document;
//! a patient reads the version in force and accepts or withdraws it. Consent gates prompting
//! only: a clinic with no document prompts as before; once it has one, its patients are prompted
//! only while they have accepted the version in force. Check-ins a patient sends of their own
//! accord are always accepted (a safety answer is never refused).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use companion_schema::ids::{ClinicId, ConsentDocumentId, ConsentRecordId};
use companion_schema::schema::prompts;
use diesel::prelude::*;

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::prompt::store::{self as prompt_store, status};

use super::store::{self, DocumentRow, RecordRow};

/// Accept or withdraw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Agree to the version in force.
    Accept,
    /// Take an acceptance back.
    Withdraw,
}

impl Action {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Withdraw => "withdraw",
        }
    }
}

/// Publishes a new version of the clinic's consent document (clinic admins of the clinic).
/// Every patient of the clinic is asked again: their open prompts are withdrawn in this
/// transaction and none is planned or sent until they accept the new version. `problems` are
/// the document's own validation, answered after the role check. Audited.
pub fn publish(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    title: String,
    body: String,
    problems: BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Outcome<DocumentRow> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Ok(Err(Refusal::not_found("clinic")));
    };
    if let Err(refused) = caller.ensure_admin_of(&clinic, "publish consent documents") {
        return Ok(Err(refused));
    }
    if !problems.is_empty() {
        return Ok(Err(Refusal::validation(problems)));
    }
    let stamp = now.naive_utc();
    let version = store::current_document(conn, clinic.as_str())?.map_or(1, |d| d.version + 1);
    let row = DocumentRow {
        id: ConsentDocumentId::generate().into_string(),
        clinic_id: clinic.to_string(),
        version,
        title,
        body,
        published_by: caller.account_id.to_string(),
        published_at: stamp,
    };
    store::insert_document(conn, &row)?;
    let mut settings = store::lifecycle_of(conn, clinic.as_str(), stamp)?;
    settings.consent_version = Some(version);
    settings.updated_at = stamp;
    store::save_lifecycle(conn, &settings)?;
    diesel::update(
        prompts::table
            .filter(prompts::clinic_id.eq(clinic.as_str()))
            .filter(prompts::status.eq_any(status::OPEN)),
    )
    .set((
        prompts::status.eq(status::CANCELLED),
        prompts::closed_at.eq(Some(stamp)),
        prompts::updated_at.eq(stamp),
    ))
    .execute(conn)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "consent_document.publish", stamp)
            .clinic(clinic.as_str())
            .subject(&row.id),
    )?;
    Ok(Ok(row))
}

/// The clinic's documents, newest first (staff of the clinic).
pub fn documents(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
) -> Outcome<Vec<DocumentRow>> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Ok(Err(Refusal::not_found("clinic")));
    };
    if let Err(refused) = caller.ensure_staff_of(&clinic) {
        return Ok(Err(refused));
    }
    store::documents(conn, clinic.as_str()).map(Ok)
}

/// A patient's consent as they see it.
#[derive(Debug)]
pub struct MyConsent {
    /// The document in force, if the clinic has one.
    pub current: Option<DocumentRow>,
    /// Whether the patient has accepted it (true when there is none to accept).
    pub accepted: bool,
    /// Every acceptance and withdrawal, oldest first.
    pub history: Vec<RecordRow>,
}

fn accepted(current: Option<&DocumentRow>, history: &[RecordRow]) -> bool {
    match current {
        None => true,
        Some(doc) => history
            .last()
            .is_some_and(|r| r.action == Action::Accept.as_str() && r.version == doc.version),
    }
}

/// The caller's (a patient's) consent.
pub fn mine(conn: &mut DbConnection, caller: &Caller) -> Outcome<MyConsent> {
    let clinic = match caller.own_clinic() {
        Ok(clinic) => clinic.clone(),
        Err(refused) => return Ok(Err(refused)),
    };
    let current = store::current_document(conn, clinic.as_str())?;
    let history = store::records(conn, caller.account_id.as_str())?;
    Ok(Ok(MyConsent {
        accepted: accepted(current.as_ref(), &history),
        current,
        history,
    }))
}

/// Which document a patient acts on: by id or by version.
#[derive(Debug)]
pub enum Named {
    /// A document id.
    Id(String),
    /// A version number.
    Version(i32),
}

/// Records the caller's acceptance or withdrawal of the document named, which must be the
/// clinic's version in force (409 otherwise), and replans their prompts in the same
/// transaction: accepting plans them, withdrawing withdraws every open one.
pub fn act(
    conn: &mut DbConnection,
    caller: &Caller,
    named: Named,
    action: Action,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<MyConsent> {
    let clinic = match caller.own_clinic() {
        Ok(clinic) => clinic.clone(),
        Err(refused) => return Ok(Err(refused)),
    };
    let all = store::documents(conn, clinic.as_str())?;
    let document = match &named {
        Named::Id(raw) => {
            ConsentDocumentId::parse(raw).and_then(|id| all.iter().find(|d| d.id == id.as_str()))
        }
        Named::Version(v) => all.iter().find(|d| d.version == *v),
    };
    let Some(document) = document else {
        return Ok(Err(Refusal::not_found("consent document")));
    };
    let current_version = all.first().map(|d| d.version);
    if Some(document.version) != current_version {
        return Ok(Err(Refusal::conflict(
            "consent_version_not_current",
            "This is not the clinic's current consent document; read GET /v1/me/consent for the one in force.",
        )));
    }
    let history = store::records(conn, caller.account_id.as_str())?;
    if action == Action::Withdraw && !accepted(Some(document), &history) {
        return Ok(Err(Refusal::conflict(
            "consent_not_given",
            "There is no acceptance of this document to withdraw.",
        )));
    }
    let stamp = now.naive_utc();
    let record = RecordRow {
        id: ConsentRecordId::generate().into_string(),
        patient_id: caller.account_id.to_string(),
        clinic_id: clinic.to_string(),
        document_id: document.id.clone(),
        version: document.version,
        action: action.as_str().to_owned(),
        at: stamp,
    };
    store::insert_record(conn, &record)?;
    prompt_store::replan(conn, caller.account_id.as_str(), now, horizon)?;
    let verb = match action {
        Action::Accept => "consent.accept",
        Action::Withdraw => "consent.withdraw",
    };
    audit::record(
        conn,
        &AuditEntry::by(caller, verb, stamp)
            .clinic(clinic.as_str())
            .patient(caller.account_id.as_str())
            .subject(&record.id),
    )?;
    let current = all.into_iter().next();
    let history = store::records(conn, caller.account_id.as_str())?;
    Ok(Ok(MyConsent {
        accepted: accepted(current.as_ref(), &history),
        current,
        history,
    }))
}
