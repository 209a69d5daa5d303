//! Consent use cases: a clinic admin publishes a new version of the clinic's consent document;
//! a patient reads the version in force and accepts, declines or withdraws it. Consent gates
//! prompting only: a clinic with no document prompts as before; once it has one, its patients
//! are prompted while an acceptance of theirs is in force. A new version never stops monitoring
//! silently (CLINICAL.md, part 2): prompts go on under the version already accepted until the
//! patient declines the new one (or withdraws), and the roster and readiness show who has not
//! answered it. Check-ins a patient sends of their own accord are always accepted (a safety
//! answer is never refused).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use companion_schema::ids::{ClinicId, ConsentDocumentId, ConsentRecordId};

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::prompt;

use super::store::{self, DocumentRow, RecordRow};

/// Accept, decline or withdraw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Agree to the version in force.
    Accept,
    /// Say no to the version in force (one not accepted): prompts stop.
    Decline,
    /// Take an acceptance back: prompts stop.
    Withdraw,
}

impl Action {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Decline => "decline",
            Action::Withdraw => "withdraw",
        }
    }
}

/// Where a patient stands with their clinic's consent document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The clinic has no document: prompted without consent on record.
    NotRequired,
    /// Accepted the version in force.
    Accepted,
    /// Accepted an earlier version and has not answered the one in force: still prompted under
    /// the acceptance given (monitoring never stops silently).
    EarlierVersion(i32),
    /// Declined the version in force: not prompted.
    Declined,
    /// Withdrew: not prompted.
    Withdrawn,
    /// Never answered: not prompted.
    NotGiven,
}

impl Standing {
    /// From the version in force (none without a document) and the patient's latest decision
    /// (action and version), if any.
    pub fn of(current: Option<i32>, latest: Option<(&str, i32)>) -> Self {
        let Some(current) = current else {
            return Standing::NotRequired;
        };
        match latest {
            Some(("accept", version)) if version == current => Standing::Accepted,
            Some(("accept", version)) => Standing::EarlierVersion(version),
            Some(("decline", _)) => Standing::Declined,
            Some(("withdraw", _)) => Standing::Withdrawn,
            _ => Standing::NotGiven,
        }
    }

    /// Whether the patient is prompted.
    pub fn prompted(self) -> bool {
        matches!(
            self,
            Standing::NotRequired | Standing::Accepted | Standing::EarlierVersion(_)
        )
    }

    /// Whether the patient has yet to answer the version in force (accept or decline).
    pub fn unanswered(self) -> bool {
        matches!(self, Standing::EarlierVersion(_) | Standing::NotGiven)
    }

    /// The API name: `not_required`, `accepted`, `earlier_version`, `declined`, `withdrawn` or
    /// `not_given`.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::NotRequired => "not_required",
            Standing::Accepted => "accepted",
            Standing::EarlierVersion(_) => "earlier_version",
            Standing::Declined => "declined",
            Standing::Withdrawn => "withdrawn",
            Standing::NotGiven => "not_given",
        }
    }
}

/// Publishes a new version of the clinic's consent document (clinic admins of the clinic).
/// Every patient of the clinic is asked again; those who accepted an earlier version go on
/// being prompted under it until they decline the new one, and the open prompts of those with
/// no acceptance in force are withdrawn in this transaction. `problems` are the document's own
/// validation, answered after the role check. Audited.
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
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "publish consent documents")?;
    if !problems.is_empty() {
        return Err(Refusal::validation(problems).into());
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
    // Those with no acceptance in force (a clinic's first document, or patients who never
    // accepted) stop being prompted now; an earlier acceptance keeps its patient prompted.
    let patients = prompt::use_cases::patients_with_open_prompts(conn, clinic.as_str())?;
    let standings = store::standings(conn, clinic.as_str(), &patients)?;
    let unconsented: Vec<&String> = patients
        .iter()
        .filter(|p| standings.get(*p).is_some_and(|s| !s.prompted()))
        .collect();
    prompt::use_cases::cancel_open_prompts(conn, &unconsented, now)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "consent_document.publish", stamp)
            .clinic(clinic.as_str())
            .subject(&row.id),
    )?;
    Ok(row)
}

/// The clinic's documents, newest first (staff of the clinic).
pub fn documents(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
) -> Outcome<Vec<DocumentRow>> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_staff_of(&clinic)?;
    Ok(store::documents(conn, clinic.as_str())?)
}

/// A patient's consent as they see it.
#[derive(Debug)]
pub struct MyConsent {
    /// The document in force, if the clinic has one.
    pub current: Option<DocumentRow>,
    /// Where the patient stands.
    pub standing: Standing,
    /// Every acceptance, decline and withdrawal, oldest first.
    pub history: Vec<RecordRow>,
}

impl MyConsent {
    /// Whether the patient has accepted the document in force (true when there is none).
    pub fn accepted(&self) -> bool {
        matches!(self.standing, Standing::NotRequired | Standing::Accepted)
    }
}

fn standing(current: Option<&DocumentRow>, history: &[RecordRow]) -> Standing {
    Standing::of(
        current.map(|d| d.version),
        history.last().map(|r| (r.action.as_str(), r.version)),
    )
}

/// The caller's (a patient's) consent.
pub fn mine(conn: &mut DbConnection, caller: &Caller) -> Outcome<MyConsent> {
    let clinic = caller.own_clinic()?.clone();
    let current = store::current_document(conn, clinic.as_str())?;
    let history = store::records(conn, caller.account_id.as_str())?;
    Ok(MyConsent {
        standing: standing(current.as_ref(), &history),
        current,
        history,
    })
}

/// Which document a patient acts on: by id or by version.
#[derive(Debug)]
pub enum Named {
    /// A document id.
    Id(String),
    /// A version number.
    Version(i32),
}

/// Records the caller's acceptance, decline or withdrawal of the document named, which must be
/// the clinic's version in force (409 otherwise), and replans their prompts in the same
/// transaction: accepting plans them; declining (a version not accepted) or withdrawing (an
/// acceptance in force, of this version or an earlier one) withdraws every open one.
pub fn act(
    conn: &mut DbConnection,
    caller: &Caller,
    named: Named,
    action: Action,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<MyConsent> {
    let clinic = caller.own_clinic()?.clone();
    let all = store::documents(conn, clinic.as_str())?;
    let document = match &named {
        Named::Id(raw) => {
            ConsentDocumentId::parse(raw).and_then(|id| all.iter().find(|d| d.id == id.as_str()))
        }
        Named::Version(v) => all.iter().find(|d| d.version == *v),
    };
    let Some(document) = document else {
        return Err(Refusal::not_found("consent document").into());
    };
    let current_version = all.first().map(|d| d.version);
    if Some(document.version) != current_version {
        return Err(Refusal::conflict(
            "consent_version_not_current",
            "This is not the clinic's current consent document; read GET /v1/me/consent for the one in force.",
        )
        .into());
    }
    let history = store::records(conn, caller.account_id.as_str())?;
    let before = standing(Some(document), &history);
    match (action, before) {
        (Action::Withdraw, Standing::Accepted | Standing::EarlierVersion(_)) => {}
        (Action::Withdraw, _) => {
            return Err(Refusal::conflict(
                "consent_not_given",
                "There is no acceptance in force to withdraw.",
            )
            .into());
        }
        (Action::Decline, Standing::Accepted) => {
            return Err(Refusal::conflict(
                "consent_already_given",
                "This version is accepted; withdraw the acceptance instead.",
            )
            .into());
        }
        (Action::Decline, Standing::Declined) => {
            return Err(Refusal::conflict(
                "consent_already_declined",
                "This version is already declined.",
            )
            .into());
        }
        _ => {}
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
    prompt::use_cases::replan_patient(conn, caller.account_id.as_str(), now, horizon)?;
    let verb = match action {
        Action::Accept => "consent.accept",
        Action::Decline => "consent.decline",
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
    Ok(MyConsent {
        standing: standing(current.as_ref(), &history),
        current,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_acceptance_keeps_prompts_going_until_the_patient_declines_or_withdraws() {
        assert_eq!(Standing::of(None, None), Standing::NotRequired);
        assert_eq!(
            Standing::of(Some(2), Some(("accept", 2))),
            Standing::Accepted
        );
        let earlier = Standing::of(Some(2), Some(("accept", 1)));
        assert_eq!(earlier, Standing::EarlierVersion(1));
        assert!(earlier.prompted() && earlier.unanswered());
        for (latest, expected) in [
            (Some(("decline", 2)), Standing::Declined),
            (Some(("withdraw", 1)), Standing::Withdrawn),
            (None, Standing::NotGiven),
        ] {
            let standing = Standing::of(Some(2), latest);
            assert_eq!(standing, expected);
            assert!(!standing.prompted(), "{standing:?}");
        }
        assert!(Standing::NotGiven.unanswered());
        assert!(!Standing::Declined.unanswered());
    }
}
