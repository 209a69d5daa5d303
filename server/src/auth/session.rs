//! Issuing a session's tokens: the access token (signed for the account's role) and the
//! refresh token that continues it. Sign-in, refresh and invitation acceptance all end here.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::auth::refresh::{digest, new_refresh_token};
use crate::error::{ApiError, ApiResult};

/// A token pair.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Bearer token for `Authorization`; short-lived.
    pub access_token: String,
    /// Single-use token for `POST /v1/auth/refresh`; keep it secret.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

/// A fresh refresh token and the stored form of it.
pub struct NewRefresh {
    /// Given to the client.
    pub token: String,
    /// Stored.
    pub hash: String,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
}

/// Generates the next refresh token.
pub fn new_refresh(app: &App, now: DateTime<Utc>) -> NewRefresh {
    let token = new_refresh_token();
    let hash = digest(&token);
    let ttl = TimeDelta::from_std(app.config.refresh_token_ttl).unwrap_or(TimeDelta::days(30));
    NewRefresh {
        token,
        hash,
        expires_at: now + ttl,
    }
}

/// Signs the access token for a session and pairs it with its refresh token.
pub fn token_response(
    app: &App,
    account_id: &str,
    session_id: &str,
    role: &str,
    refresh: NewRefresh,
    now: DateTime<Utc>,
) -> ApiResult<TokenResponse> {
    let ttl = app.config.access_token_ttl.as_secs();
    let access_token = app
        .tokens
        .issue(account_id, session_id, role, now, ttl as i64)
        .map_err(|e| ApiError::internal(&e))?;
    Ok(TokenResponse {
        access_token,
        refresh_token: refresh.token,
        token_type: "Bearer".into(),
        expires_in: ttl,
    })
}
