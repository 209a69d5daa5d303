//! Issuing a session's tokens: the access token (signed for the account's role) and the
//! refresh token that continues it. Sign-in, refresh and invitation acceptance all end here.
//! [`sign_in`] checks credentials for the JSON API and the console alike.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::auth::refresh::{digest, new_refresh_token};
use companion_schema::ids::SessionId;

use crate::account as accounts;
use crate::account::model::Email;
use crate::auth::password;
use crate::auth::store;
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

/// A session just started by [`sign_in`].
pub struct SignedIn {
    /// The account.
    pub account_id: String,
    /// The new session.
    pub session_id: SessionId,
    /// The account's role name.
    pub role: String,
    /// The session's first refresh token.
    pub refresh: NewRefresh,
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "The email or password is wrong.")
}

/// Checks an email and password and starts a session: limited per client (`client_key`) and
/// per account, with the same work whether or not the address has an account.
pub async fn sign_in(
    app: &App,
    client_key: &str,
    raw_email: &str,
    password: String,
    now: DateTime<Utc>,
) -> ApiResult<SignedIn> {
    app.limits
        .login_per_client
        .check(client_key, now)
        .map_err(ApiError::rate_limited)?;
    let email = Email::parse(raw_email).map_err(|p| ApiError::invalid_field("email", p))?;
    app.limits
        .login_per_account
        .check(email.as_str(), now)
        .map_err(ApiError::rate_limited)?;
    if password.is_empty() || password.chars().count() > 1024 {
        return Err(ApiError::invalid_field(
            "password",
            "must be 1 to 1024 characters",
        ));
    }

    let lookup = email.as_str().to_owned();
    let account = app
        .db
        .run(move |conn| accounts::find_by_email(conn, &lookup))
        .await?;
    let Some(account) = account else {
        let decoy = app
            .decoy_hash
            .get_or_try_init(|| async {
                let throwaway = crate::account::model::NewPassword::parse(&new_refresh_token())
                    .map_err(|e| anyhow::anyhow!(e))?;
                password::hash_blocking(throwaway).await
            })
            .await
            .map_err(|e| ApiError::internal(&e))?;
        password::verify_blocking(password, decoy.clone()).await;
        return Err(invalid_credentials());
    };
    if !password::verify_blocking(password, account.password_hash.clone()).await {
        return Err(invalid_credentials());
    }
    if account.disabled_at.is_some() {
        return Err(ApiError::forbidden_because(
            "account_disabled",
            "This account is disabled.",
        ));
    }

    let session_id = SessionId::generate();
    let refresh = new_refresh(app, now);
    let (sid, aid, hash) = (
        session_id.to_string(),
        account.id.clone(),
        refresh.hash.clone(),
    );
    let (now_db, expires_db) = (now.naive_utc(), refresh.expires_at.naive_utc());
    app.db
        .write(move |conn| store::start_session(conn, &sid, &aid, &hash, now_db, expires_db))
        .await?;
    tracing::info!(account_id = %account.id, session_id = %session_id, "signed in");
    Ok(SignedIn {
        account_id: account.id,
        session_id,
        role: account.role,
        refresh,
    })
}
