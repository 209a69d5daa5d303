//! Passwords after sign-up. Anyone signed in changes their own password with the current one;
//! the change ends every other session of the account (the API's and the console's). A clinic
//! admin (or an organisation admin) issues a reset code to an account they manage: single use,
//! valid for [`RESET_CODE_LIFETIME`], stored hashed, shown once; whoever holds it sets a new
//! password with the account's email and the code, which ends every session of the account. A
//! wrong, spent or expired code and a code for another email are refused alike.

use chrono::{DateTime, NaiveDateTime, SubsecRound as _, TimeDelta, Utc};
use diesel::QueryResult;

use crate::audit::{self, AuditActor, AuditEntry};
use crate::auth::extract::Caller;
use crate::auth::refresh::digest;
use crate::auth::store as sessions;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};

/// How long a reset code may be used.
pub const RESET_CODE_LIFETIME: TimeDelta = TimeDelta::hours(1);

/// How long an emailed reset code (link) may be used.
pub const EMAILED_RESET_LIFETIME: TimeDelta = TimeDelta::minutes(30);

/// The caller's email and stored password hash (to check the current password against).
pub fn own_credentials(conn: &mut DbConnection, caller: &Caller) -> Outcome<(String, String)> {
    let found = sessions::credentials_of(conn, caller.account_id.as_str())?;
    Ok(found.ok_or_else(|| Refusal::not_found("account"))?)
}

/// Stores the caller's new password hash, if the stored one is still `expected` (the one the
/// current password was checked against); ends every other session of the account and any
/// reset code still open. Audited. Returns how many sessions ended.
pub fn change_own(
    conn: &mut DbConnection,
    caller: &Caller,
    expected: &str,
    new_hash: &str,
    now: DateTime<Utc>,
) -> Outcome<usize> {
    let at = now.naive_utc().trunc_subsecs(6);
    let changed =
        sessions::replace_password_hash(conn, caller.account_id.as_str(), expected, new_hash, at)?;
    if changed == 0 {
        return Err(Refusal::conflict(
            "password_changed",
            "The password was changed meanwhile; sign in again.",
        )
        .into());
    }
    let ended = sessions::revoke_other_sessions(
        conn,
        caller.account_id.as_str(),
        caller.session_id.as_str(),
        at,
        "password_changed",
    )?;
    sessions::void_reset_codes(conn, caller.account_id.as_str(), at)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "password.change", at).subject(caller.account_id.as_str()),
    )?;
    Ok(ended)
}

/// A reset code just issued.
#[derive(Debug)]
pub struct IssuedReset {
    /// The account it resets.
    pub account_id: String,
    /// The code, shown only now.
    pub code: String,
    /// When it stops working.
    pub expires_at: NaiveDateTime,
}

/// Issues a reset code for an account the caller manages (a clinic admin: accounts of their
/// clinic; an organisation admin: any account; nobody their own, which they change with the
/// current password). A disabled account gets none. Any older unused code of the account stops
/// working. Audited.
pub fn issue_reset(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_account: &str,
    now: DateTime<Utc>,
) -> Outcome<IssuedReset> {
    if !matches!(
        caller.role,
        crate::account::model::Role::ClinicAdmin | crate::account::model::Role::OrgAdmin
    ) {
        return Err(Refusal::forbidden("Only an administrator may issue reset codes.").into());
    }
    let row = crate::account::use_cases::managed_account(
        conn,
        caller,
        raw_account,
        "Change your own password with your current one instead.",
    )?;
    if row.disabled_at.is_some() {
        return Err(Refusal::conflict(
            "account_disabled",
            "This account is disabled; enable it first.",
        )
        .into());
    }
    let at = now.naive_utc().trunc_subsecs(6);
    sessions::void_reset_codes(conn, &row.id, at)?;
    let code = crate::invitation::code::generate();
    let normalised = crate::invitation::code::normalise(&code).unwrap_or_default();
    let expires_at = at + RESET_CODE_LIFETIME;
    sessions::insert_reset_code(
        conn,
        &row.id,
        &digest(&normalised),
        caller.account_id.as_str(),
        at,
        expires_at,
    )?;
    let mut entry = AuditEntry::by(caller, "password_reset.issue", at).subject(&row.id);
    entry.clinic_id = row.clinic_id.clone();
    audit::record(conn, &entry)?;
    Ok(IssuedReset {
        account_id: row.id,
        code,
        expires_at,
    })
}

/// Issues a reset code to be emailed to the enabled account that uses `email` (any older unused
/// code of it stops working), valid for [`EMAILED_RESET_LIFETIME`]; `None` when no enabled
/// account uses it, which the caller answers exactly as it answers a sent email. Audited as
/// the account's own request.
pub fn issue_emailed_reset(
    conn: &mut DbConnection,
    email: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<IssuedReset>> {
    let found = sessions::enabled_account_by_email(conn, email)?;
    let Some((account_id, clinic_id)) = found else {
        return Ok(None);
    };
    let at = now.naive_utc().trunc_subsecs(6);
    sessions::void_reset_codes(conn, &account_id, at)?;
    let code = crate::invitation::code::generate();
    let normalised = crate::invitation::code::normalise(&code).unwrap_or_default();
    let expires_at = at + EMAILED_RESET_LIFETIME;
    sessions::insert_reset_code(
        conn,
        &account_id,
        &digest(&normalised),
        &account_id,
        at,
        expires_at,
    )?;
    audit::record(
        conn,
        &AuditEntry {
            actor: AuditActor::Account(account_id.clone()),
            action: "password_reset.email",
            clinic_id,
            patient_id: None,
            subject_id: Some(account_id.clone()),
            request_id: None,
            at,
        },
    )?;
    Ok(Some(IssuedReset {
        account_id,
        code,
        expires_at,
    }))
}

/// Emails a reset link to the account that uses `raw_email`, when there is one (limited per
/// client address and per email). The answer is the same whether or not an account uses the
/// email, and the email goes out after the answer, so neither its content nor its timing tells.
/// Refused with 404 `email_not_configured` when no SMTP server is configured (there is no reset
/// by email on this server, as `GET /v1/push/web-push-key` is a 404 without a Web Push key).
pub async fn request_reset_email(
    app: &crate::app::App,
    client_key: &str,
    raw_email: &str,
) -> crate::error::ApiResult<()> {
    use crate::error::ApiError;
    let now = app.now();
    app.limits
        .reset_per_client
        .check(client_key, now)
        .map_err(ApiError::rate_limited)?;
    let email = crate::account::model::Email::parse(raw_email)
        .map_err(|problem| ApiError::invalid_field("email", problem))?;
    let Some(mailer) = app.mailer.clone() else {
        return Err(ApiError::with_status(
            axum::http::StatusCode::NOT_FOUND,
            "email_not_configured",
            "This server sends no email; ask your clinic admin for a reset code.",
        ));
    };
    app.limits
        .login_per_account
        .check(email.as_str(), now)
        .map_err(ApiError::rate_limited)?;
    let address = email.as_str().to_owned();
    let issued = app
        .db
        .write(move |conn| issue_emailed_reset(conn, &address, now))
        .await?;
    if let Some(issued) = issued {
        let message = crate::email::password_reset_email(
            app.config.public_url.as_str(),
            email.as_str(),
            &issued.code,
        );
        let address = email.as_str().to_owned();
        tokio::spawn(async move {
            match mailer.send(&address, &message).await {
                crate::email::Sent::Accepted => tracing::info!("password reset email sent"),
                other => tracing::warn!(outcome = ?other, "password reset email not sent"),
            }
        });
    }
    Ok(())
}

/// The refusal of a code that is not a current code for the email given, whatever the reason
/// (unknown, spent, expired, another account's, a disabled account's).
pub fn invalid_code() -> Refusal {
    Refusal::not_found_because(
        "reset_code_not_found",
        "No current reset code matches this email and code; ask your clinic admin for a new one.",
    )
}

/// Sets a new password with a reset code: the code must be unused, unexpired and issued for the
/// account of `email`, which must be enabled. Spends the code, ends every session of the account.
/// Audited as the account's own action.
pub fn redeem_reset(
    conn: &mut DbConnection,
    email: &str,
    normalised_code: &str,
    new_hash: &str,
    now: DateTime<Utc>,
) -> Outcome<()> {
    let at = now.naive_utc().trunc_subsecs(6);
    let found = sessions::current_reset_code(conn, &digest(normalised_code), email, at)?;
    let Some((reset_id, account_id, clinic_id, None)) = found else {
        return Err(invalid_code().into());
    };
    let spent = sessions::spend_reset_code(conn, &reset_id, at)?;
    if spent != 1 {
        return Err(invalid_code().into());
    }
    sessions::set_password_hash(conn, &account_id, new_hash, at)?;
    sessions::revoke_all_sessions(conn, &account_id, at, "password_reset")?;
    sessions::void_reset_codes(conn, &account_id, at)?;
    audit::record(
        conn,
        &AuditEntry {
            actor: AuditActor::Account(account_id.clone()),
            action: "password_reset.redeem",
            clinic_id,
            patient_id: None,
            subject_id: Some(account_id),
            request_id: None,
            at,
        },
    )?;
    Ok(())
}

/// Changes the password of `access`'s account: checks the current one (limited like sign-in,
/// per account), then stores the new one and ends every other session (see [`change_own`]).
/// The API and the console both end here.
pub async fn change_password(
    app: &crate::app::App,
    access: crate::auth::extract::Bearer,
    current: String,
    new: &str,
) -> crate::error::ApiResult<usize> {
    use crate::error::ApiError;
    let now = app.now();
    let mut problems = std::collections::BTreeMap::new();
    if current.is_empty() || current.chars().count() > 1024 {
        problems.insert(
            "current_password".to_owned(),
            "must be 1 to 1024 characters".to_owned(),
        );
    }
    let new = match crate::account::model::NewPassword::parse(new) {
        Ok(new) => Some(new),
        Err(problem) => {
            problems.insert("new_password".to_owned(), problem.to_owned());
            None
        }
    };
    let (Some(new), true) = (new, problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    let (email, stored) = app
        .read_as(access.clone(), move |conn, caller| {
            own_credentials(conn, caller)
        })
        .await?;
    app.limits
        .login_per_account
        .check(&email, now)
        .map_err(ApiError::rate_limited)?;
    if !crate::auth::password::verify_blocking(current, stored.clone()).await {
        return Err(ApiError::forbidden_because(
            "wrong_password",
            "The current password is wrong.",
        ));
    }
    let hash = crate::auth::password::hash_blocking(new)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let ended = app
        .write_as(access, move |conn, caller| {
            change_own(conn, caller, &stored, &hash, now)
        })
        .await?;
    tracing::info!(sessions_ended = ended, "password changed");
    Ok(ended)
}

/// Sets a new password with a reset code (limited per client address and per email), see
/// [`redeem_reset`]. The API and the console both end here.
pub async fn reset_password(
    app: &crate::app::App,
    client_key: &str,
    raw_email: &str,
    raw_code: &str,
    new: &str,
) -> crate::error::ApiResult<()> {
    use crate::error::ApiError;
    let now = app.now();
    app.limits
        .reset_per_client
        .check(client_key, now)
        .map_err(ApiError::rate_limited)?;
    let mut problems = std::collections::BTreeMap::new();
    let email = crate::account::model::Email::parse(raw_email)
        .map_err(|p| problems.insert("email".to_owned(), p.to_owned()))
        .ok();
    let code = crate::invitation::code::normalise(raw_code);
    if code.is_none() {
        problems.insert(
            "code".to_owned(),
            "must be a 10-character reset code".to_owned(),
        );
    }
    let new = crate::account::model::NewPassword::parse(new)
        .map_err(|p| problems.insert("new_password".to_owned(), p.to_owned()))
        .ok();
    let (Some(email), Some(code), Some(new), true) = (email, code, new, problems.is_empty()) else {
        return Err(ApiError::validation(problems));
    };
    app.limits
        .login_per_account
        .check(email.as_str(), now)
        .map_err(ApiError::rate_limited)?;
    let hash = crate::auth::password::hash_blocking(new)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let email = email.as_str().to_owned();
    app.db
        .write_or_refuse(move |conn| redeem_reset(conn, &email, &code, &hash, now))
        .await??;
    tracing::info!("password reset with a code");
    Ok(())
}
