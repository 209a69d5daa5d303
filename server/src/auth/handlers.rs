//! `/v1/auth`: sign in, refresh, sign out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
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
            Ok(Ok(()))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
