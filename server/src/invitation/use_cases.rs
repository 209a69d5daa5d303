//! Invitation use cases: inviting someone to a clinic, and accepting an invitation (which
//! creates the account, plans a patient's prompts and starts the session, together).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use companion_schema::ids::{AccountId, ClinicId, InvitationId, SessionId};

use crate::account::model::{Email, Role};
use crate::account::{self as accounts, NewAccount};
use crate::audit::{self, AuditEntry};
use crate::auth as sessions;
use crate::auth::extract::Caller;
use crate::auth::refresh::digest;
use crate::clinic as clinics;
use crate::db::{DbConnection, is_unique_violation};
use crate::error::{Outcome, Refusal};
use crate::invitation::code;
use crate::invitation::store::{self, InvitationRow};
use crate::prompt::use_cases as prompts;

/// An invitation as asked for.
#[derive(Debug, Clone)]
pub struct Invite {
    /// The role the new account gets.
    pub role: Role,
    /// The only email that may accept, unparsed.
    pub email: Option<String>,
    /// Hours until the code lapses, if not the default.
    pub expires_in_hours: Option<u32>,
    /// The default lifetime.
    pub default_ttl: TimeDelta,
}

/// A stored invitation and its code (shown once; only its digest is kept).
#[derive(Debug)]
pub struct Invited {
    /// The stored row.
    pub row: InvitationRow,
    /// The code to hand over.
    pub code: String,
}

/// Invites someone to `raw_clinic`: clinic admins any role to their clinic, clinicians patients
/// to theirs, organisation admins anyone anywhere. Audited.
pub fn invite(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    invite: Invite,
    now: DateTime<Utc>,
) -> Outcome<Invited> {
    let Some(clinic_id) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    let allowed = match caller.role {
        Role::OrgAdmin => Ok(()),
        Role::ClinicAdmin => caller.ensure_staff_of(&clinic_id),
        Role::Clinician => caller.ensure_staff_of(&clinic_id).and_then(|()| {
            if invite.role == Role::Patient {
                Ok(())
            } else {
                Err(Refusal::forbidden("Clinicians may invite patients only."))
            }
        }),
        Role::Patient => Err(Refusal::forbidden("Patients cannot invite others.")),
    };
    allowed?;
    let mut problems = BTreeMap::new();
    if invite.role == Role::OrgAdmin {
        problems.insert(
            "role".to_owned(),
            "must be patient, clinician or clinic_admin".to_owned(),
        );
    }
    let email = match invite.email.as_deref().map(Email::parse).transpose() {
        Ok(email) => email,
        Err(problem) => {
            problems.insert("email".into(), problem.into());
            None
        }
    };
    let ttl = match invite.expires_in_hours {
        None => invite.default_ttl,
        Some(hours @ 1..=2160) => TimeDelta::hours(i64::from(hours)),
        Some(_) => {
            problems.insert(
                "expires_in_hours".into(),
                "must be between 1 and 2160".into(),
            );
            TimeDelta::zero()
        }
    };
    if !problems.is_empty() {
        return Err(Refusal::validation(problems).into());
    }
    if clinics::find_clinic(conn, clinic_id.as_str())?.is_none() {
        return Err(Refusal::not_found("clinic").into());
    }
    let code = code::generate();
    let Some(normalised) = code::normalise(&code) else {
        return Err(Refusal::broken(&"generated an invalid code").into());
    };
    let row = InvitationRow {
        id: InvitationId::generate().into_string(),
        clinic_id: clinic_id.to_string(),
        role: invite.role.as_str().to_owned(),
        code_hash: digest(&normalised),
        email: email.map(|e| e.as_str().to_owned()),
        created_by: caller.account_id.to_string(),
        created_at: now.naive_utc(),
        expires_at: (now + ttl).naive_utc(),
        accepted_at: None,
        accepted_account_id: None,
        revoked_at: None,
        revoked_by: None,
    };
    store::insert(conn, &row)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "invitation.create", now.naive_utc())
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(Invited { row, code })
}

fn revoked() -> Refusal {
    Refusal::conflict(
        "invitation_revoked",
        "This invitation was withdrawn; ask the clinic for a new one.",
    )
}

/// Who may manage a clinic's invitations (list the pending ones, revoke): its clinic admins and
/// organisation admins; its clinicians are refused (403), other clinics' staff told it does not
/// exist (404).
fn ensure_manager_of(caller: &Caller, clinic: &ClinicId) -> Result<(), Refusal> {
    match caller.role {
        Role::OrgAdmin => Ok(()),
        Role::ClinicAdmin | Role::Clinician => {
            caller.ensure_admin_of(clinic, "manage the clinic's invitations")
        }
        Role::Patient => Err(Refusal::forbidden("Patients cannot manage invitations.")),
    }
}

/// A page of a clinic's pending invitations (not accepted, revoked or expired at `now`), oldest
/// first, after the invitation id `after` (`limit` + 1 rows when there is a next page). Clinic
/// admins and organisation admins. Audited.
pub fn pending(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    after: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<InvitationRow>> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    ensure_manager_of(caller, &clinic)?;
    if clinics::find_clinic(conn, clinic.as_str())?.is_none() {
        return Err(Refusal::not_found("clinic").into());
    }
    let rows = store::pending(conn, clinic.as_str(), now.naive_utc(), after, limit)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "invitations.read", now.naive_utc()).clinic(clinic.as_str()),
    )?;
    Ok(rows)
}

/// Revokes an invitation so that its code can no longer be accepted. Revoking a revoked
/// invitation changes nothing; an accepted one is a conflict (`invitation_used`). Clinic admins
/// of its clinic and organisation admins; to anyone else it does not exist. Audited.
pub fn revoke(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<()> {
    let not_found = || Refusal::not_found("invitation");
    let Some(id) = InvitationId::parse(raw_id) else {
        return Err(not_found().into());
    };
    let Some(row) = store::find(conn, id.as_str())? else {
        return Err(not_found().into());
    };
    ensure_manager_of(caller, &ClinicId::from_db(row.clinic_id.clone()))?;
    if row.accepted_at.is_some() {
        return Err(Refusal::conflict(
            "invitation_used",
            "This invitation has already been accepted; disable the account instead.",
        )
        .into());
    }
    if row.revoked_at.is_some() {
        return Ok(());
    }
    if !store::revoke(conn, &row.id, caller.account_id.as_str(), now.naive_utc())? {
        return Err(Refusal::conflict(
            "invitation_used",
            "This invitation has already been accepted; disable the account instead.",
        )
        .into());
    }
    audit::record(
        conn,
        &AuditEntry::by(caller, "invitation.revoke", now.naive_utc())
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(())
}

/// An acceptance, validated.
#[derive(Debug)]
pub struct Acceptance {
    /// The normalised code.
    pub code: String,
    /// The new account's email.
    pub email: Email,
    /// Its password, hashed.
    pub password_hash: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// Its zone, if not the clinic's.
    pub timezone: Option<String>,
    /// The first refresh token's digest and expiry.
    pub refresh_hash: String,
    /// When the first refresh token lapses.
    pub refresh_expires_at: DateTime<Utc>,
}

/// The account an acceptance created, signed in.
#[derive(Debug)]
pub struct Accepted {
    /// The new account.
    pub account_id: String,
    /// Its first session.
    pub session_id: String,
    /// Its role.
    pub role: String,
}

/// The refusal of an email an invitation cannot be accepted with, whatever the reason (not the
/// address it was sent to, or one that already has an account): the answer does not tell which.
fn unusable_email() -> Refusal {
    Refusal::invalid_field("email", "cannot be used to accept this invitation")
}

/// Accepts an invitation: claims it, creates the account (role and clinic from the invitation),
/// plans a patient's prompts and starts the first session, all or nothing.
pub fn accept(
    conn: &mut DbConnection,
    acceptance: Acceptance,
    now: DateTime<Utc>,
    horizon: TimeDelta,
) -> Outcome<Accepted> {
    let now_db = now.naive_utc();
    let Some(invitation) = store::find_by_code(conn, &digest(&acceptance.code))? else {
        return Err(Refusal::not_found_because(
            "invitation_not_found",
            "No invitation has this code.",
        )
        .into());
    };
    let used = || Refusal::conflict("invitation_used", "This invitation has already been used.");
    if invitation.accepted_at.is_some() {
        return Err(used().into());
    }
    if invitation.revoked_at.is_some() {
        return Err(revoked().into());
    }
    if invitation.expires_at <= now_db {
        return Err(Refusal::conflict(
            "invitation_expired",
            "This invitation has expired; ask the clinic for a new one.",
        )
        .into());
    }
    if invitation
        .email
        .as_deref()
        .is_some_and(|e| e != acceptance.email.as_str())
    {
        return Err(unusable_email().into());
    }
    if !store::claim(conn, &invitation.id, now_db)? {
        // Accepted or revoked since it was read.
        let unusable = match store::find(conn, &invitation.id)?.and_then(|i| i.revoked_at) {
            Some(_) => revoked(),
            None => used(),
        };
        return Err(unusable.into());
    }
    let timezone = match acceptance.timezone {
        Some(tz) => tz,
        None => clinics::find_clinic(conn, &invitation.clinic_id)?
            .map(|c| c.timezone)
            .unwrap_or_else(|| "UTC".to_owned()),
    };
    let account_id = AccountId::generate().into_string();
    let inserted = accounts::insert_account(
        conn,
        &NewAccount {
            id: &account_id,
            email: acceptance.email.as_str(),
            password_hash: &acceptance.password_hash,
            role: &invitation.role,
            clinic_id: Some(&invitation.clinic_id),
            display_name: acceptance.display_name.as_deref(),
            timezone: &timezone,
            created_at: now_db,
            updated_at: now_db,
        },
    );
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            // Said exactly as for an address the invitation was not sent to, so that the answer
            // does not tell whether the address has an account; the refusal rolls the claim
            // back, so the code stays usable until it is spent.
            return Err(unusable_email().into());
        }
        other => other?,
    }
    store::set_account(conn, &invitation.id, &account_id)?;
    if invitation.role == Role::Patient.as_str() {
        // Prompts start with the enrolment: the default window, quiet hours and the clinic's
        // plan, planned ahead at once.
        prompts::start_patient(conn, &account_id, &invitation.clinic_id, now, horizon)?;
    }
    let session_id = SessionId::generate().into_string();
    sessions::start_session(
        conn,
        &session_id,
        &account_id,
        &acceptance.refresh_hash,
        now_db,
        acceptance.refresh_expires_at.naive_utc(),
    )?;
    Ok(Accepted {
        account_id,
        session_id,
        role: invitation.role,
    })
}
