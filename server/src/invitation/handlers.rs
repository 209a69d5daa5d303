//! `POST /v1/clinics/{clinic_id}/invitations` and `POST /v1/invitations/accept`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use companion_schema::ids::{AccountId, ClinicId, InvitationId, SessionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::model::{Email, NewPassword, Role, parse_display_name, parse_timezone};
use crate::account::store::{self as accounts, NewAccount};
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Inviter;
use crate::auth::handlers::{TokenResponse, new_refresh, token_response};
use crate::auth::refresh::digest;
use crate::auth::{password, store as sessions};
use crate::clinic::store as clinics;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ClientAddr};
use crate::invitation::code;
use crate::invitation::store::{self, InvitationRow};
use crate::prompt::store as prompts;
use crate::time::utc;

/// Who to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// The role the new account gets. Clinicians may invite patients only.
    pub role: Role,
    /// If given, only this email address can accept.
    pub email: Option<String>,
    /// Hours until the code lapses (1 to 2160; default from configuration, 7 days).
    #[schema(minimum = 1, maximum = 2160)]
    pub expires_in_hours: Option<u32>,
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
    pub code: String,
    /// The new account's email address.
    pub email: String,
    /// The new account's password (at least 10 characters).
    #[schema(format = Password)]
    pub password: String,
    /// Name shown to the care team.
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
    Inviter(caller): Inviter,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<InvitationCreated>)> {
    let clinic_id = ClinicId::parse(&clinic_id).ok_or_else(|| ApiError::not_found("clinic"))?;
    match caller.role {
        Role::OrgAdmin => {}
        Role::ClinicAdmin => caller.ensure_staff_of(&clinic_id)?,
        Role::Clinician => {
            caller.ensure_staff_of(&clinic_id)?;
            if body.role != Role::Patient {
                return Err(ApiError::forbidden("Clinicians may invite patients only."));
            }
        }
        Role::Patient => return Err(ApiError::forbidden("Patients cannot invite others.")),
    }
    let mut problems = BTreeMap::new();
    if body.role == Role::OrgAdmin {
        problems.insert(
            "role".to_owned(),
            "must be patient, clinician or clinic_admin".to_owned(),
        );
    }
    let email = match body.email.as_deref().map(Email::parse).transpose() {
        Ok(email) => email,
        Err(problem) => {
            problems.insert("email".into(), problem.into());
            None
        }
    };
    let ttl = match body.expires_in_hours {
        None => TimeDelta::from_std(state.config.invitation_ttl).unwrap_or(TimeDelta::days(7)),
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
        return Err(ApiError::validation(problems));
    }

    let now = state.now();
    let code = code::generate();
    let normalised =
        code::normalise(&code).ok_or_else(|| ApiError::internal(&"generated an invalid code"))?;
    let row = InvitationRow {
        id: InvitationId::generate().into_string(),
        clinic_id: clinic_id.to_string(),
        role: body.role.as_str().to_owned(),
        code_hash: digest(&normalised),
        email: email.map(|e| e.as_str().to_owned()),
        created_by: caller.account_id.to_string(),
        created_at: now.naive_utc(),
        expires_at: (now + ttl).naive_utc(),
        accepted_at: None,
        accepted_account_id: None,
    };
    let stored = row.clone();
    let entry = AuditEntry::by(&caller, "invitation.create", now.naive_utc())
        .clinic(&row.clinic_id)
        .subject(&row.id);
    let created = state
        .db
        .write(move |conn| {
            if clinics::find(conn, &stored.clinic_id)?.is_none() {
                return Ok(false);
            }
            store::insert(conn, &stored)?;
            audit::record(conn, &entry)?;
            Ok(true)
        })
        .await?;
    if !created {
        return Err(ApiError::not_found("clinic"));
    }
    Ok((
        StatusCode::CREATED,
        Json(InvitationCreated {
            id: row.id,
            code,
            clinic_id: row.clinic_id,
            role: body.role,
            email: row.email,
            expires_at: utc(row.expires_at),
        }),
    ))
}

enum Acceptance {
    Accepted {
        account_id: String,
        session_id: String,
    },
    Unknown,
    Used,
    Expired,
    WrongEmail,
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
        (status = 409, description = "Already used (`invitation_used`), expired (`invitation_expired`), or the email has an account (`email_taken`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
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
    let code_hash = digest(&code);
    let account_id = AccountId::generate().into_string();
    let session_id = SessionId::generate().into_string();
    let refresh = new_refresh(&state, now);
    let refresh_hash = refresh.hash.clone();
    let (now_db, refresh_expiry) = (now.naive_utc(), refresh.expires_at.naive_utc());

    let horizon = state.config.prompts.horizon;
    let outcome = state
        .db
        .write(move |conn| {
            let Some(invitation) = store::find_by_code(conn, &code_hash)? else {
                return Ok(Acceptance::Unknown);
            };
            if invitation.accepted_at.is_some() {
                return Ok(Acceptance::Used);
            }
            if invitation.expires_at <= now_db {
                return Ok(Acceptance::Expired);
            }
            if invitation
                .email
                .as_deref()
                .is_some_and(|e| e != email.as_str())
            {
                return Ok(Acceptance::WrongEmail);
            }
            if !store::claim(conn, &invitation.id, now_db)? {
                return Ok(Acceptance::Used);
            }
            let timezone = match timezone {
                Some(tz) => tz,
                None => clinics::find(conn, &invitation.clinic_id)?
                    .map(|c| c.timezone)
                    .unwrap_or_else(|| "UTC".to_owned()),
            };
            accounts::insert(
                conn,
                &NewAccount {
                    id: &account_id,
                    email: email.as_str(),
                    password_hash: &password_hash,
                    role: &invitation.role,
                    clinic_id: Some(&invitation.clinic_id),
                    display_name: display_name.as_deref(),
                    timezone: &timezone,
                    created_at: now_db,
                    updated_at: now_db,
                },
            )?;
            store::set_account(conn, &invitation.id, &account_id)?;
            if invitation.role == Role::Patient.as_str() {
                // Prompts start with the enrolment: the default window, quiet hours and the
                // clinic's plan, planned ahead at once.
                prompts::create_schedule(
                    conn,
                    &prompts::ScheduleRow::new(&account_id, &invitation.clinic_id, now_db),
                )?;
                prompts::replan(conn, &account_id, now, horizon)?;
            }
            sessions::start_session(
                conn,
                &session_id,
                &account_id,
                &refresh_hash,
                now_db,
                refresh_expiry,
            )?;
            Ok(Acceptance::Accepted {
                account_id,
                session_id,
            })
        })
        .await;

    match outcome {
        Ok(Acceptance::Accepted {
            account_id,
            session_id,
        }) => {
            tracing::info!(%account_id, "invitation accepted");
            let tokens = token_response(&state, &account_id, &session_id, refresh, now)?;
            Ok((StatusCode::CREATED, Json(tokens)))
        }
        Ok(Acceptance::Unknown) => Err(ApiError::with_status(
            StatusCode::NOT_FOUND,
            "invitation_not_found",
            "No invitation has this code.",
        )),
        Ok(Acceptance::Used) => Err(ApiError::conflict(
            "invitation_used",
            "This invitation has already been used.",
        )),
        Ok(Acceptance::Expired) => Err(ApiError::conflict(
            "invitation_expired",
            "This invitation has expired; ask the clinic for a new one.",
        )),
        Ok(Acceptance::WrongEmail) => Err(ApiError::invalid_field(
            "email",
            "is not the address this invitation was sent to",
        )),
        Err(crate::db::DbError::Query(e)) if is_unique_violation(&e) => Err(ApiError::conflict(
            "email_taken",
            "An account with this email already exists.",
        )),
        Err(other) => Err(other.into()),
    }
}
