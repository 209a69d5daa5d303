//! `/v1/clinics/{clinic_id}/invitations` (create, list the pending ones),
//! `DELETE /v1/invitations/{invitation_id}` (revoke) and `POST /v1/invitations/accept`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::model::{Email, NewPassword, Role, parse_display_name, parse_timezone};
use crate::app::AppState;
use crate::auth::extract::{Admin, Inviter};
use crate::auth::password;
use crate::auth::session::{TokenResponse, new_refresh, token_response};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery, ClientAddr};
use crate::http::pagination::{PageParams, Paginated};
use crate::invitation::{code, use_cases};
use crate::time::utc;

/// Who to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// The role the new account gets. Clinicians may invite patients only.
    #[schema(value_type = InvitableRole)]
    pub role: Role,
    /// If given, only this email address can accept.
    #[schema(
        max_length = 254,
        pattern = r"^[!-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
        example = "new.patient@example.org"
    )]
    pub email: Option<String>,
    /// Hours until the code lapses (1 to 2160; default from configuration, 7 days).
    #[schema(minimum = 1, maximum = 2160)]
    pub expires_in_hours: Option<u32>,
}

/// The roles an invitation can grant (organisation admins are created on the command line).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitableRole {
    /// A patient of the clinic.
    Patient,
    /// A care-team member.
    Clinician,
    /// The clinic's administrator.
    ClinicAdmin,
}

/// A created invitation. The code is shown once: only its digest is stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationCreated {
    /// Id.
    pub id: String,
    /// The code to give the invitee, e.g. `7KQ2M-XC9TD`.
    #[schema(example = "7KQ2M-XC9TD")]
    pub code: String,
    /// The clinic.
    pub clinic_id: String,
    /// The role granted.
    pub role: Role,
    /// The only email that may accept, if restricted.
    pub email: Option<String>,
    /// When the code lapses.
    pub expires_at: DateTime<Utc>,
}

/// Accepting an invitation creates the account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The invitation code (case, dashes and spaces do not matter).
    #[schema(
        pattern = r"^[- \t]*([0-9A-TV-Za-tv-z][- \t]*){10}$",
        example = "7KQ2M-XC9TD"
    )]
    pub code: String,
    /// The new account's email address.
    #[schema(
        max_length = 254,
        pattern = r"^[!-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
        example = "new.patient@example.org"
    )]
    pub email: String,
    /// The new account's password: 10 to 256 characters, not one character repeated.
    #[schema(format = Password, min_length = 10, max_length = 256, pattern = r"^(?!([\s\S])\1*$)")]
    pub password: String,
    /// Name shown to the care team, 1 to 100 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*$"
    )]
    pub display_name: Option<String>,
    /// IANA time zone (default: the clinic's).
    pub timezone: Option<String>,
}

/// Invite someone to a clinic
///
/// Clinic admins invite any role to their clinic, clinicians invite patients, organisation
/// admins invite anyone to any clinic (how a new clinic gets its first admin).
#[utoipa::path(
    post,
    path = "/v1/clinics/{clinic_id}/invitations",
    tag = "invitations",
    operation_id = "create_invitation",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic to join")),
    request_body = CreateInvitation,
    responses(
        (status = 201, description = "Created; the code is shown only now", body = InvitationCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "The caller may not invite this role", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_invitation(
    State(state): State<AppState>,
    inviter: Inviter,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<InvitationCreated>)> {
    let now = state.now();
    let invite = use_cases::Invite {
        role: body.role,
        email: body.email,
        expires_in_hours: body.expires_in_hours,
        default_ttl: TimeDelta::from_std(state.config.invitation_ttl).unwrap_or(TimeDelta::days(7)),
    };
    let invited = state
        .write_as(inviter, move |conn, caller| {
            use_cases::invite(conn, caller, &clinic_id, invite, now)
        })
        .await?;
    let row = invited.row;
    Ok((
        StatusCode::CREATED,
        Json(InvitationCreated {
            id: row.id,
            code: invited.code,
            clinic_id: row.clinic_id,
            role: body.role,
            email: row.email,
            expires_at: utc(row.expires_at),
        }),
    ))
}

/// Accept an invitation
///
/// Creates the invited account (role and clinic come from the invitation) and signs it in.
#[utoipa::path(
    post,
    path = "/v1/invitations/accept",
    tag = "invitations",
    operation_id = "accept_invitation",
    security(()),
    request_body = AcceptInvitation,
    responses(
        (status = 201, description = "Account created and signed in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No invitation has this code (code `invitation_not_found`)", body = ErrorBody),
        (status = 409, description = "Already used (`invitation_used`), revoked (`invitation_revoked`) or expired (`invitation_expired`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields; an email this invitation cannot be accepted with (not the address it was sent to, or one that cannot hold a new account) is answered alike, without saying which, and the code stays usable", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let now = state.now();
    state
        .limits
        .accept_per_client
        .check(&client.key(), now)
        .map_err(ApiError::rate_limited)?;

    let mut problems = BTreeMap::new();
    let code = code::normalise(&body.code);
    if code.is_none() {
        problems.insert(
            "code".to_owned(),
            "must be a 10-character invitation code".to_owned(),
        );
    }
    let email = Email::parse(&body.email)
        .map_err(|p| problems.insert("email".into(), p.into()))
        .ok();
    let password = NewPassword::parse(&body.password)
        .map_err(|p| problems.insert("password".into(), p.into()))
        .ok();
    let display_name = match body
        .display_name
        .as_deref()
        .map(parse_display_name)
        .transpose()
    {
        Ok(name) => name,
        Err(problem) => {
            problems.insert("display_name".into(), problem.into());
            None
        }
    };
    let timezone = match body.timezone.as_deref().map(parse_timezone).transpose() {
        Ok(tz) => tz.map(|tz| tz.name().to_owned()),
        Err(problem) => {
            problems.insert("timezone".into(), problem.into());
            None
        }
    };
    let (Some(code), Some(email), Some(password), true) =
        (code, email, password, problems.is_empty())
    else {
        return Err(ApiError::validation(problems));
    };

    let password_hash = password::hash_blocking(password)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let refresh = new_refresh(&state, now);
    let acceptance = use_cases::Acceptance {
        code,
        email,
        password_hash,
        display_name,
        timezone,
        refresh_hash: refresh.hash.clone(),
        refresh_expires_at: refresh.expires_at,
    };
    let horizon = state.config.prompts.horizon;
    let accepted = state
        .db
        .write_or_refuse(move |conn| use_cases::accept(conn, acceptance, now, horizon))
        .await??;
    tracing::info!(account_id = %accepted.account_id, "invitation accepted");
    let tokens = token_response(
        &state,
        &accepted.account_id,
        &accepted.session_id,
        &accepted.role,
        refresh,
        now,
    )?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

/// A pending invitation (its code is never shown again).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PendingInvitation {
    /// Id.
    pub id: String,
    /// The clinic.
    pub clinic_id: String,
    /// The role it grants.
    pub role: Role,
    /// The only email that may accept, if restricted.
    pub email: Option<String>,
    /// Who invited.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When the code lapses.
    pub expires_at: DateTime<Utc>,
}

/// A clinic's pending invitations
///
/// Invitations neither accepted, revoked nor expired, oldest first. Clinic admins of the clinic
/// and organisation admins.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/invitations",
    tag = "invitations",
    operation_id = "list_invitations",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic"), PageParams),
    responses(
        (status = 200, description = "A page of pending invitations", body = Paginated<PendingInvitation>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    admin: Admin,
    Path(clinic_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<PendingInvitation>>> {
    let page = params.parse()?;
    let (after, limit, now) = (page.after.clone(), i64::from(page.limit) + 1, state.now());
    let rows = state
        .read_as(admin, move |conn, caller| {
            use_cases::pending(conn, caller, &clinic_id, after.as_deref(), limit, now)
        })
        .await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let role = Role::parse(&row.role)
                .ok_or_else(|| ApiError::internal(&"stored role is not a known role"))?;
            Ok(PendingInvitation {
                id: row.id,
                clinic_id: row.clinic_id,
                role,
                email: row.email,
                created_by: row.created_by,
                created_at: utc(row.created_at),
                expires_at: utc(row.expires_at),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Paginated::from_rows(items, &page, |i| i.id.clone())))
}

/// Revoke an invitation
///
/// Its code can no longer be accepted. Revoking it again changes nothing; an accepted invitation
/// cannot be revoked (disable the account instead). Clinic admins of its clinic and
/// organisation admins.
#[utoipa::path(
    delete,
    path = "/v1/invitations/{invitation_id}",
    tag = "invitations",
    operation_id = "revoke_invitation",
    security(("bearer" = [])),
    params(("invitation_id" = String, Path, description = "The invitation")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator of its clinic", body = ErrorBody),
        (status = 404, description = "No such invitation, or not the caller's clinic's", body = ErrorBody),
        (status = 409, description = "Already accepted (`invitation_used`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    admin: Admin,
    Path(invitation_id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.now();
    state
        .write_as(admin, move |conn, caller| {
            use_cases::revoke(conn, caller, &invitation_id, now)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
