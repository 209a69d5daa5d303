//! `/v1/auth`: sign in, refresh, sign out; changing one's password, and reset codes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::Bearer;
use crate::auth::refresh::digest;
pub use crate::auth::session::TokenResponse;
use crate::auth::session::{new_refresh, sign_in, token_response};
use crate::auth::store::{self, Rotation};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ClientAddr};

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email address.
    #[schema(
        example = "ann@example.org",
        max_length = 254,
        pattern = r"^[!-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    pub email: String,
    /// The password.
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    pub password: String,
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last sign-in or refresh. It is spent by this call.
    #[schema(min_length = 1, max_length = 512)]
    pub refresh_token: String,
}

/// Sign in with email and password
///
/// Starts a session and returns its first token pair. Limited per account and per client.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    operation_id = "login",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "The account is disabled (code `account_disabled`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let now = state.now();
    let signed_in = sign_in(&state, &client.key(), &body.email, body.password, now).await?;
    token_response(
        &state,
        &signed_in.account_id,
        signed_in.session_id.as_str(),
        &signed_in.role,
        signed_in.refresh,
        now,
    )
    .map(Json)
}

/// Exchange a refresh token for a new token pair
///
/// The presented token is spent. Presenting a spent token again revokes the whole session
/// (someone else holds a copy), and both holders must sign in again.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    operation_id = "refresh_session",
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token (code `refresh_token_reused` when reuse revoked the session)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let now = state.now();
    state
        .limits
        .refresh_per_client
        .check(&client.key(), now)
        .map_err(ApiError::rate_limited)?;
    if body.refresh_token.is_empty() || body.refresh_token.chars().count() > 512 {
        return Err(ApiError::invalid_field(
            "refresh_token",
            "must be 1 to 512 characters",
        ));
    }
    let presented = digest(&body.refresh_token);
    let next = new_refresh(&state, now);
    let next_hash = next.hash.clone();
    let (now_db, expires_db) = (now.naive_utc(), next.expires_at.naive_utc());
    let outcome = state
        .db
        .write(move |conn| store::rotate(conn, &presented, &next_hash, now_db, expires_db))
        .await?;
    match outcome {
        Rotation::Rotated {
            account_id,
            session_id,
            role,
        } => token_response(&state, &account_id, &session_id, &role, next, now).map(Json),
        Rotation::Reused => {
            tracing::warn!("spent refresh token presented again: session revoked");
            Err(ApiError::unauthorized(
                "refresh_token_reused",
                "This refresh token was already used; the session has been ended. Sign in again.",
            ))
        }
        Rotation::Refused => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "The refresh token is unknown, expired or revoked.",
        )),
    }
}

/// Sign out
///
/// Ends the caller's session: its refresh tokens and access tokens stop working at once.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    operation_id = "logout",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, bearer: Bearer) -> ApiResult<StatusCode> {
    let now = state.now().naive_utc();
    state
        .write_as(bearer, move |conn, caller| {
            store::revoke_session(conn, caller.session_id.as_str(), now, "logout")?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    pub current_password: String,
    /// The new password: 10 to 256 characters, not one character repeated.
    #[schema(format = Password, min_length = 10, max_length = 256, pattern = r"^(?!([\s\S])\1*$)")]
    pub new_password: String,
}

/// Change my password
///
/// Needs the current password (tried as often as a sign-in is). Every other session of the
/// account ends, in the apps and in the console; this one goes on.
#[utoipa::path(
    post,
    path = "/v1/me/password",
    tag = "auth",
    operation_id = "change_my_password",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; other sessions ended"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "The current password is wrong (code `wrong_password`)", body = ErrorBody),
        (status = 409, description = "Changed meanwhile by another request (code `password_changed`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields (a new password too short, too long or one character repeated)", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn change_my_password(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    crate::auth::credentials::change_password(
        &state,
        bearer,
        body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A reset code, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasswordResetCode {
    /// The account it resets.
    pub account_id: String,
    /// The code (`XXXXX-XXXXX`), to give to the account's owner; shown only now.
    #[schema(example = "7KQ2M-XC9TD")]
    pub code: String,
    /// When it stops working (an hour from now).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Issue a password reset code
///
/// For an account the caller manages (a clinic admin: the staff and patients of their clinic;
/// an organisation admin: any account), never their own. Single use, valid for an hour; an older
/// unused code of the account stops working. The owner sets a new password with it at
/// `POST /v1/auth/password-reset`.
#[utoipa::path(
    post,
    path = "/v1/accounts/{account_id}/password-reset",
    tag = "accounts",
    operation_id = "issue_password_reset",
    security(("bearer" = [])),
    params(("account_id" = String, Path, description = "The account")),
    responses(
        (status = 201, description = "The code, shown only now", body = PasswordResetCode),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such account the caller manages", body = ErrorBody),
        (status = 409, description = "The caller's own account (`cannot_change_self`) or a disabled one (`account_disabled`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn issue_password_reset(
    State(state): State<AppState>,
    admin: crate::auth::extract::Admin,
    axum::extract::Path(account_id): axum::extract::Path<String>,
) -> ApiResult<(StatusCode, Json<PasswordResetCode>)> {
    let now = state.now();
    let issued = state
        .write_as(admin, move |conn, caller| {
            crate::auth::credentials::issue_reset(conn, caller, &account_id, now)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasswordResetCode {
            account_id: issued.account_id,
            code: issued.code,
            expires_at: crate::time::utc(issued.expires_at),
        }),
    ))
}

/// A new password set with a reset code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The account's email address.
    #[schema(
        example = "ann@example.org",
        max_length = 254,
        pattern = r"^[!-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    pub email: String,
    /// The reset code the clinic gave (case, dashes and spaces do not matter).
    #[schema(
        pattern = r"^[- \t]*([0-9A-TV-Za-tv-z][- \t]*){10}$",
        example = "7KQ2M-XC9TD"
    )]
    pub code: String,
    /// The new password: 10 to 256 characters, not one character repeated.
    #[schema(format = Password, min_length = 10, max_length = 256, pattern = r"^(?!([\s\S])\1*$)")]
    pub new_password: String,
}

/// Set a new password with a reset code
///
/// With the code an administrator issued and the account's email. A wrong, spent or expired
/// code and a code for another email are refused alike. Every session of the account ends; sign
/// in with the new password.
#[utoipa::path(
    post,
    path = "/v1/auth/password-reset",
    tag = "auth",
    operation_id = "reset_password",
    security(()),
    request_body = PasswordReset,
    responses(
        (status = 204, description = "The password is set; every session of the account ended"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 404, description = "No current reset code matches this email and code (`reset_code_not_found`): unknown, spent, expired or another account's, said alike", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<PasswordReset>,
) -> ApiResult<StatusCode> {
    crate::auth::credentials::reset_password(
        &state,
        &client.key(),
        &body.email,
        &body.code,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks for a password reset link by email.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    /// The email address of the account.
    #[schema(
        example = "ann@example.org",
        max_length = 254,
        pattern = r"^[!-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    pub email: String,
}

/// The answer to a reset link request, the same whether or not an account uses the email.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetRequested {
    /// What happens next, in words for the person.
    #[schema(
        example = "If an account uses this email, a reset link is on its way; it works for 30 minutes."
    )]
    pub message: String,
}

/// Email me a password reset link
///
/// When the server sends email (`COMPANION_SMTP_URL`): the account that uses this email, if
/// any and enabled, receives a single-use link valid for 30 minutes (and the code it carries),
/// redeemed at `POST /v1/auth/password-reset`; any older code of the account stops working. The
/// answer is the same whether or not an account uses the email.
#[utoipa::path(
    post,
    path = "/v1/auth/password-reset-request",
    tag = "auth",
    operation_id = "request_password_reset",
    security(()),
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Taken: an email goes out if an account uses this address", body = PasswordResetRequested),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Not an email address", body = ErrorBody),
        (status = 429, description = "Too many requests; see Retry-After", body = ErrorBody),
        (status = 404, description = "The server sends no email, so there is no reset by email (`email_not_configured`): ask a clinic admin for a reset code", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> ApiResult<(StatusCode, Json<PasswordResetRequested>)> {
    crate::auth::credentials::request_reset_email(&state, &client.key(), &body.email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PasswordResetRequested {
            message: "If an account uses this email, a reset link is on its way; it works for 30 minutes.".to_owned(),
        }),
    ))
}
