//! `GET /v1/me` and enabling or disabling accounts.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use companion_schema::ids::AccountId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::model::Role;
use crate::account::store::{self, AccountRow};
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::{Admin, Caller};
use crate::auth::store as sessions;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::time::utc;

/// The signed-in account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Account id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Clinic (null for organisation admins).
    pub clinic_id: Option<String>,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// IANA time zone.
    pub timezone: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// An account's status after enabling or disabling it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountStatus {
    /// Account id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Clinic.
    pub clinic_id: Option<String>,
    /// Whether the account is disabled.
    pub disabled: bool,
}

/// Who I am
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in account", body = Me),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let id = caller.account_id.to_string();
    let row = state
        .db
        .run(move |conn| store::find(conn, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(Me {
        id: row.id,
        role: caller.role,
        clinic_id: row.clinic_id,
        email: row.email,
        display_name: row.display_name,
        timezone: row.timezone,
        created_at: utc(row.created_at),
    }))
}

/// Finds an account the admin may manage: a clinic admin manages accounts of their own clinic,
/// an organisation admin any account; nobody manages themselves here.
async fn managed_account(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<AccountRow> {
    let id = AccountId::parse(raw_id).ok_or_else(|| ApiError::not_found("account"))?;
    if id == caller.account_id {
        return Err(ApiError::conflict(
            "cannot_change_self",
            "You cannot disable or enable your own account.",
        ));
    }
    let lookup = id.to_string();
    let row = state
        .db
        .run(move |conn| store::find(conn, &lookup))
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let visible = match caller.role {
        Role::OrgAdmin => true,
        _ => {
            row.clinic_id.is_some()
                && row.clinic_id.as_deref() == caller.clinic_id.as_ref().map(|c| c.as_str())
                && row.role != Role::OrgAdmin.as_str()
        }
    };
    if visible {
        Ok(row)
    } else {
        Err(ApiError::not_found("account"))
    }
}

async fn set_disabled(
    state: AppState,
    caller: Caller,
    raw_id: String,
    disable: bool,
) -> ApiResult<Json<AccountStatus>> {
    let row = managed_account(&state, &caller, &raw_id).await?;
    let now = state.now().naive_utc();
    let action = if disable {
        "account.disable"
    } else {
        "account.enable"
    };
    let mut entry = AuditEntry::by(&caller, action, now).subject(&row.id);
    entry.clinic_id = row.clinic_id.clone();
    let id = row.id.clone();
    let (instant, horizon) = (state.now(), state.config.prompts.horizon);
    state
        .db
        .write(move |conn| {
            store::set_disabled(conn, &id, disable.then_some(now), now)?;
            if disable {
                sessions::revoke_all_sessions(conn, &id, now, "account_disabled")?;
            }
            // A disabled patient's open prompts are withdrawn; enabling plans them again.
            crate::prompt::store::replan(conn, &id, instant, horizon)?;
            audit::record(conn, &entry)
        })
        .await?;
    let role = Role::parse(&row.role)
        .ok_or_else(|| ApiError::internal(&"stored role is not a known role"))?;
    Ok(Json(AccountStatus {
        id: row.id,
        role,
        clinic_id: row.clinic_id,
        disabled: disable,
    }))
}

/// Disable an account
///
/// Its sessions end at once: access and refresh tokens stop working on the next request.
#[utoipa::path(
    post,
    path = "/v1/accounts/{account_id}/disable",
    tag = "accounts",
    operation_id = "disable_account",
    security(("bearer" = [])),
    params(("account_id" = String, Path, description = "The account")),
    responses(
        (status = 200, description = "Disabled", body = AccountStatus),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such account, or not in the caller's clinic", body = ErrorBody),
        (status = 409, description = "Cannot disable yourself", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn disable_account(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(account_id): Path<String>,
) -> ApiResult<Json<AccountStatus>> {
    set_disabled(state, caller, account_id, true).await
}

/// Enable a disabled account
///
/// The account can sign in again; sessions ended by disabling stay ended.
#[utoipa::path(
    post,
    path = "/v1/accounts/{account_id}/enable",
    tag = "accounts",
    operation_id = "enable_account",
    security(("bearer" = [])),
    params(("account_id" = String, Path, description = "The account")),
    responses(
        (status = 200, description = "Enabled", body = AccountStatus),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such account, or not in the caller's clinic", body = ErrorBody),
        (status = 409, description = "Cannot enable yourself", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn enable_account(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(account_id): Path<String>,
) -> ApiResult<Json<AccountStatus>> {
    set_disabled(state, caller, account_id, false).await
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
    let id = AccountId::generate().into_string();
    let (account_id, now) = (id.clone(), now.naive_utc());
    let stored_email = email.as_str().to_owned();
    let result = db
        .write(move |conn| {
            store::insert(
                conn,
                &store::NewAccount {
                    id: &account_id,
                    email: &stored_email,
                    password_hash: &hash,
                    role: Role::OrgAdmin.as_str(),
                    clinic_id: None,
                    display_name: None,
                    timezone: "UTC",
                    created_at: now,
                    updated_at: now,
                },
            )
        })
        .await;
    match result {
        Ok(()) => Ok(id),
        Err(crate::db::DbError::Query(e)) if crate::db::is_unique_violation(&e) => {
            anyhow::bail!("an account with email {} already exists", email.as_str())
        }
        Err(e) => Err(e.into()),
    }
}
