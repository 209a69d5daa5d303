//! Account use cases: who I am, enabling and disabling accounts, the first organisation admin.

use chrono::{DateTime, Utc};
use companion_schema::ids::AccountId;

use crate::account::model::Role;
use crate::account::store::{self, AccountRow};
use crate::audit::{self, AuditEntry};
use crate::auth as sessions;
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};

/// The caller's own account.
pub fn me(conn: &mut DbConnection, caller: &Caller) -> Outcome<AccountRow> {
    Ok(store::find(conn, caller.account_id.as_str())?
        .ok_or_else(|| Refusal::not_found("account"))?)
}

/// Finds an account the admin may manage: a clinic admin manages accounts of their own clinic
/// (not organisation admins), an organisation admin any account; nobody manages themselves here
/// (`self_refusal` says what they cannot do to their own account).
pub(crate) fn managed_account(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    self_refusal: &str,
) -> Outcome<AccountRow> {
    let Some(id) = AccountId::parse(raw_id) else {
        return Err(Refusal::not_found("account").into());
    };
    if id == caller.account_id {
        return Err(Refusal::conflict("cannot_change_self", self_refusal).into());
    }
    let Some(row) = store::find(conn, id.as_str())? else {
        return Err(Refusal::not_found("account").into());
    };
    let visible = match caller.role {
        Role::OrgAdmin => true,
        _ => {
            row.clinic_id.is_some()
                && row.clinic_id.as_deref() == caller.clinic_id.as_ref().map(|c| c.as_str())
                && row.role != Role::OrgAdmin.as_str()
        }
    };
    if !visible {
        return Err(Refusal::not_found("account").into());
    }
    Ok(row)
}

/// Disables (ending its sessions and withdrawing its open prompts) or enables an account, with
/// its audit row. Returns the account as it now stands.
pub fn set_disabled(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    disable: bool,
    now: DateTime<Utc>,
    horizon: chrono::TimeDelta,
) -> Outcome<(AccountRow, Role)> {
    let row = managed_account(
        conn,
        caller,
        raw_id,
        "You cannot disable or enable your own account.",
    )?;
    let Some(role) = Role::parse(&row.role) else {
        return Err(Refusal::broken(&"stored role is not a known role").into());
    };
    let at = now.naive_utc();
    let action = if disable {
        "account.disable"
    } else {
        "account.enable"
    };
    let mut entry = AuditEntry::by(caller, action, at).subject(&row.id);
    entry.clinic_id = row.clinic_id.clone();
    store::set_disabled(conn, &row.id, disable.then_some(at), at)?;
    if disable {
        sessions::revoke_all_sessions(conn, &row.id, at, "account_disabled")?;
    }
    // A disabled patient's open prompts are withdrawn; enabling plans them again.
    crate::prompt::use_cases::replan_patient(conn, &row.id, now, horizon)?;
    audit::record(conn, &entry)?;
    Ok((row, role))
}

/// Stores an organisation admin with an already hashed password; refuses a taken email.
pub fn insert_org_admin(
    conn: &mut DbConnection,
    email: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Outcome<String> {
    let now = now.naive_utc();
    let id = AccountId::generate().into_string();
    let inserted = store::insert(
        conn,
        &store::NewAccount {
            id: &id,
            email,
            password_hash,
            role: Role::OrgAdmin.as_str(),
            clinic_id: None,
            display_name: None,
            timezone: "UTC",
            created_at: now,
            updated_at: now,
        },
    );
    match inserted {
        Ok(()) => Ok(id),
        Err(e) if crate::db::is_unique_violation(&e) => Err(Refusal::conflict(
            "email_taken",
            format!("an account with email {email} already exists"),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the first organisation admin (the `companion admin create-org-admin` command).
pub async fn create_org_admin(
    db: &crate::db::Db,
    email: &str,
    password: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let email =
        crate::account::model::Email::parse(email).map_err(|p| anyhow::anyhow!("email {p}"))?;
    let password = crate::account::model::NewPassword::parse(password)
        .map_err(|p| anyhow::anyhow!("password {p}"))?;
    let hash = crate::auth::password::hash_blocking(password).await?;
    let stored_email = email.as_str().to_owned();
    db.write_or_refuse(move |conn| insert_org_admin(conn, &stored_email, &hash, now))
        .await?
        .map_err(|refused| anyhow::anyhow!("{}", refused.message()))
}
