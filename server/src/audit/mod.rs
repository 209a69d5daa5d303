//! The audit trail: who read or changed patient data or accounts, and when. Rows are written in
//! the same transaction as the read or change they describe, so none is lost. The actor is an
//! account or a system client (never the account that registered the client).

use chrono::NaiveDateTime;
use companion_schema::ids::AuditEventId;
use companion_schema::schema::{accounts, audit_events};
use diesel::prelude::*;

use crate::auth::extract::Caller;
use crate::db::DbConnection;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditActor {
    /// A person's account.
    Account(String),
    /// A SMART system client.
    SystemClient(String),
}

/// One audited action.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who.
    pub actor: AuditActor,
    /// What, as a stable verb such as `patient_roster.read`.
    pub action: &'static str,
    /// The clinic concerned.
    pub clinic_id: Option<String>,
    /// The patient concerned.
    pub patient_id: Option<String>,
    /// The record concerned.
    pub subject_id: Option<String>,
    /// The request that did it.
    pub request_id: Option<String>,
    /// When.
    pub at: NaiveDateTime,
}

impl AuditEntry {
    /// An entry for `caller` doing `action` at `at`.
    pub fn by(caller: &Caller, action: &'static str, at: NaiveDateTime) -> Self {
        let id = caller.account_id.to_string();
        Self {
            actor: if caller.system_client {
                AuditActor::SystemClient(id)
            } else {
                AuditActor::Account(id)
            },
            action,
            clinic_id: caller.clinic_id.as_ref().map(ToString::to_string),
            patient_id: None,
            subject_id: None,
            request_id: caller.request_id.clone(),
            at,
        }
    }

    /// Names the clinic concerned.
    pub fn clinic(mut self, clinic_id: &str) -> Self {
        self.clinic_id = Some(clinic_id.to_owned());
        self
    }

    /// Names the patient concerned.
    pub fn patient(mut self, patient_id: &str) -> Self {
        self.patient_id = Some(patient_id.to_owned());
        self
    }

    /// Names the record concerned.
    pub fn subject(mut self, subject_id: &str) -> Self {
        self.subject_id = Some(subject_id.to_owned());
        self
    }
}

/// Writes an audit row. A row about a patient carries the patient's own clinic (whoever acted),
/// so that it is kept, purged and shown with that clinic's records.
pub fn record(conn: &mut DbConnection, entry: &AuditEntry) -> QueryResult<()> {
    let (account, client) = match &entry.actor {
        AuditActor::Account(id) => (Some(id), None),
        AuditActor::SystemClient(id) => (None, Some(id)),
    };
    let clinic = match &entry.patient_id {
        Some(patient) => accounts::table
            .find(patient)
            .select(accounts::clinic_id)
            .first::<Option<String>>(conn)
            .optional()?
            .flatten()
            .or_else(|| entry.clinic_id.clone()),
        None => entry.clinic_id.clone(),
    };
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::id.eq(AuditEventId::generate().into_string()),
            audit_events::at.eq(entry.at),
            audit_events::actor_id.eq(account),
            audit_events::actor_client_id.eq(client),
            audit_events::action.eq(entry.action),
            audit_events::clinic_id.eq(&clinic),
            audit_events::patient_id.eq(&entry.patient_id),
            audit_events::subject_id.eq(&entry.subject_id),
            audit_events::request_id.eq(&entry.request_id),
        ))
        .execute(conn)
        .map(drop)
}

/// Deletes audit rows that belong to no clinic (organisation-level actions) written before
/// `before`, up to `batch` of them (housekeeping, under `COMPANION_ORG_AUDIT_RETENTION_DAYS`;
/// a clinic's own rows follow the clinic's retention policy). Returns how many went.
pub fn purge_organisation_rows(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let ids: Vec<String> = audit_events::table
        .filter(audit_events::clinic_id.is_null())
        .filter(audit_events::at.lt(before))
        .select(audit_events::id)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&ids))).execute(conn)
}
