//! The audit trail: who read or changed patient data or accounts, and when. Rows are written in
//! the same transaction as the read or change they describe, so none is lost. The actor is an
//! account or a system client (never the account that registered the client).

mod store;

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::auth::extract::Caller;
use crate::db::DbConnection;

pub use store::{purge_clinic_rows, purge_organisation_rows};

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
        AuditActor::Account(id) => (Some(id.as_str()), None),
        AuditActor::SystemClient(id) => (None, Some(id.as_str())),
    };
    let clinic = match &entry.patient_id {
        Some(patient) => {
            crate::account::clinic_of(conn, patient)?.or_else(|| entry.clinic_id.clone())
        }
        None => entry.clinic_id.clone(),
    };
    store::insert(
        conn,
        &store::NewAuditEvent {
            at: entry.at,
            actor_id: account,
            actor_client_id: client,
            action: entry.action,
            clinic_id: clinic.as_deref(),
            patient_id: entry.patient_id.as_deref(),
            subject_id: entry.subject_id.as_deref(),
            request_id: entry.request_id.as_deref(),
        },
    )
}
