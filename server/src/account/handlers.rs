//! `GET /v1/me` and enabling or disabling accounts.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::model::Role;
use crate::account::use_cases;
use crate::app::AppState;
use crate::auth::extract::{Admin, Bearer};
use crate::error::{ApiResult, ErrorBody};
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
pub async fn get_me(State(state): State<AppState>, bearer: Bearer) -> ApiResult<Json<Me>> {
    let (row, role) = state
        .read_as(bearer, |conn, caller| {
            Ok((use_cases::me(conn, caller)?, caller.role))
        })
        .await?;
    Ok(Json(Me {
        id: row.id,
        role,
        clinic_id: row.clinic_id,
        email: row.email,
        display_name: row.display_name,
        timezone: row.timezone,
        created_at: utc(row.created_at),
    }))
}

async fn set_disabled(
    state: AppState,
    admin: Admin,
    raw_id: String,
    disable: bool,
) -> ApiResult<Json<AccountStatus>> {
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let (row, role) = state
        .write_as(admin, move |conn, caller| {
            use_cases::set_disabled(conn, caller, &raw_id, disable, now, horizon)
        })
        .await?;
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
    admin: Admin,
    Path(account_id): Path<String>,
) -> ApiResult<Json<AccountStatus>> {
    set_disabled(state, admin, account_id, true).await
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
    admin: Admin,
    Path(account_id): Path<String>,
) -> ApiResult<Json<AccountStatus>> {
    set_disabled(state, admin, account_id, false).await
}

/// The time zones the server accepts.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeZones {
    /// Every IANA time-zone name a `timezone` field accepts, sorted.
    #[schema(example = json!(["Africa/Abidjan", "America/Chicago", "Europe/Dublin"]))]
    pub time_zones: Vec<&'static str>,
}

/// List the time zones the server accepts
///
/// Every `timezone` field of the API is one of these IANA names (the document states it as a
/// string with a pattern, so that generated clients stay small and their enums never collide);
/// a name not listed here is refused with 422. Public, and the same until the server is upgraded.
#[utoipa::path(
    get,
    path = "/v1/time-zones",
    tag = "accounts",
    operation_id = "list_time_zones",
    security(()),
    responses(
        (status = 200, description = "Every accepted zone", body = TimeZones),
        (status = 503, description = "The server could not answer in time (`request_timeout`)", body = ErrorBody),
    )
)]
pub async fn list_time_zones() -> Json<TimeZones> {
    let mut time_zones: Vec<&'static str> =
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    time_zones.sort_unstable();
    Json(TimeZones { time_zones })
}
