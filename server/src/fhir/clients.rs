//! SMART Backend Services over the database: a clinic admin registers a system client with its
//! public JWKS; the client trades a signed assertion for a short-lived access token at
//! `POST /oauth/token` (each assertion's `jti` usable once); the token, stored hashed, lets it read
//! the FHIR resources of its clinic within its scopes. A system client belongs to its clinic,
//! not to the admin who registered it: any admin of the clinic lists, disables (which ends its
//! live tokens) or gives it new keys (which ends them too, and refuses the old keys). It reads as
//! its clinic's staff would; audit rows name the client itself.

use base64::Engine as _;
use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use companion_schema::ids::{AccountId, ClinicId, SessionId};
use diesel::QueryResult;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Failure, Outcome, Refusal};
use crate::fhir::search::ResourceType;
use crate::fhir::smart::{self, AssertionError};

/// The prefix of every system access token (tells it apart from a staff JWT).
pub const TOKEN_PREFIX: &str = "cst_";

pub use super::store::ClientRow;

/// How stale `last_used_at` may get before a use writes it again (a read does not write on
/// every request).
const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::minutes(1);

/// Registers a system client for `raw_clinic` (its clinic admin only).
pub fn register(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    name: &str,
    jwks: &serde_json::Value,
    scope: Option<&str>,
    now: DateTime<Utc>,
) -> Outcome<ClientRow> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "register system clients")?;
    let name = match crate::text::parse_name(name, 100) {
        Ok(name) => name,
        Err(problem) => return Err(Refusal::invalid_field("name", problem).into()),
    };
    if let Err(problem) = smart::check_jwks(jwks) {
        return Err(Refusal::invalid_field("jwks", problem.to_string()).into());
    }
    let Some(scopes) = smart::parse_scopes(scope.unwrap_or(smart::DEFAULT_SCOPE)) else {
        return Err(Refusal::invalid_field(
            "scope",
            "space-separated system/{type or *}.read scopes",
        )
        .into());
    };
    let at = now.naive_utc();
    let row = ClientRow {
        id: uuid::Uuid::now_v7().to_string(),
        clinic_id: clinic.as_str().to_owned(),
        name,
        jwks: jwks.to_string(),
        scope: smart::scopes_text(&scopes),
        created_by: caller.account_id.to_string(),
        created_at: at.trunc_subsecs(6),
        disabled_at: None,
        last_used_at: None,
        keys_rotated_at: None,
    };
    super::store::insert_client(conn, &row)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "system_client.create", at)
            .clinic(clinic.as_str())
            .subject(&row.id),
    )?;
    Ok(row)
}

/// A token request (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    /// The scopes asked for.
    pub scope: Option<String>,
    /// Must be the JWT bearer type.
    pub client_assertion_type: Option<String>,
    /// The signed assertion.
    pub client_assertion: Option<String>,
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The bearer token (shown once; stored hashed).
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: i64,
    /// The scopes granted.
    pub scope: String,
}

/// An RFC 6749 error answer.
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// 400 or 401.
    pub status: u16,
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `invalid_scope` or
    /// `unsupported_grant_type`.
    pub error: &'static str,
    /// For people.
    pub description: String,
}

impl From<OAuthError> for Failure<OAuthError> {
    fn from(error: OAuthError) -> Self {
        Self::Refused(error)
    }
}

fn oauth(status: u16, error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.into(),
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a token request and, when the assertion holds, issues a token. Run in a write
/// transaction: the `jti` is spent in the same transaction that issues the token.
pub fn issue_token(
    conn: &mut DbConnection,
    request: &TokenRequest,
    token_url: &str,
    now: DateTime<Utc>,
) -> Outcome<Grant, OAuthError> {
    if request.grant_type.as_deref() != Some("client_credentials") {
        return Err(oauth(
            400,
            "unsupported_grant_type",
            "grant_type must be client_credentials.",
        )
        .into());
    }
    if request.client_assertion_type.as_deref() != Some(smart::JWT_BEARER) {
        return Err(oauth(
            400,
            "invalid_request",
            format!("client_assertion_type must be {}.", smart::JWT_BEARER),
        )
        .into());
    }
    let Some(assertion) = request.client_assertion.as_deref() else {
        return Err(oauth(400, "invalid_request", "client_assertion is missing.").into());
    };
    let Some(requested) = request.scope.as_deref().and_then(smart::parse_scopes) else {
        return Err(oauth(
            400,
            "invalid_scope",
            "scope must list system/{type or *}.read scopes.",
        )
        .into());
    };
    let refused = |reason: AssertionError| {
        tracing::info!(%reason, "client assertion refused");
        Err(oauth(
            401,
            "invalid_client",
            "The client assertion is not accepted.",
        )
        .into())
    };
    let client_id = match smart::claimed_client(assertion) {
        Ok(id) => id,
        Err(reason) => return refused(reason),
    };
    let client = super::store::find_client(conn, &client_id)?;
    let Some(client) = client.filter(|c| c.disabled_at.is_none()) else {
        return refused(AssertionError::Signature);
    };
    let Ok(jwks) = serde_json::from_str(&client.jwks) else {
        return refused(AssertionError::Signature);
    };
    let claims = match smart::verify_assertion(assertion, &client.id, &jwks, token_url, now) {
        Ok(claims) => claims,
        Err(reason) => return refused(reason),
    };
    let registered = smart::parse_scopes(&client.scope).unwrap_or_default();
    let Some(granted) = smart::grant(&registered, &requested) else {
        return Err(oauth(
            400,
            "invalid_scope",
            "The scope asked for is wider than the client's registration.",
        )
        .into());
    };
    // The jti is one-time: spent here, kept until the assertion could no longer be used anyway.
    let at = now.naive_utc().trunc_subsecs(6);
    let exp = DateTime::<Utc>::from_timestamp(claims.exp, 0)
        .map(|d| d.naive_utc())
        .unwrap_or(at);
    let spent = super::store::spend_assertion(conn, &client.id, &claims.jti, exp, at)?;
    if spent != 1 {
        return Err(oauth(
            400,
            "invalid_grant",
            "This client assertion (its jti) was already used.",
        )
        .into());
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let scope = smart::scopes_text(&granted);
    super::store::touch_client(conn, &client.id, at)?;
    super::store::insert_token(
        conn,
        &super::store::NewSystemToken {
            token_hash: &hash(&token),
            client_id: &client.id,
            clinic_id: &client.clinic_id,
            scope: &scope,
            issued_at: at,
            expires_at: at + TimeDelta::seconds(smart::ACCESS_TOKEN_SECONDS),
        },
    )?;
    Ok(Grant {
        access_token: token,
        expires_in: smart::ACCESS_TOKEN_SECONDS,
        scope,
    })
}

/// The caller a system access token stands for, if it is current, its client enabled, and its
/// scopes cover `resource` when one is named (403 otherwise). It reads as staff of its clinic;
/// its audit rows name the client. Marks the client used (to the minute).
pub fn system_caller(
    conn: &mut DbConnection,
    token: &str,
    resource: Option<ResourceType>,
    now: DateTime<Utc>,
    request_id: Option<String>,
) -> Outcome<Caller> {
    let invalid = || {
        Err(Refusal::unauthenticated(
            "invalid_token",
            "The access token is invalid or has expired.",
        )
        .into())
    };
    let found = super::store::find_token(conn, &hash(token))?;
    let Some((client_id, clinic_id, scope, expires_at, disabled_at, last_used_at)) = found else {
        return invalid();
    };
    let at = now.naive_utc().trunc_subsecs(6);
    if expires_at <= at || disabled_at.is_some() {
        return invalid();
    }
    if let Some(resource) = resource
        && !smart::allows(&scope, resource)
    {
        return Err(Refusal::forbidden_because(
            "insufficient_scope",
            format!("The token's scopes do not cover {}.", resource.name()),
        )
        .into());
    }
    if last_used_at.is_none_or(|last| last + LAST_USED_RESOLUTION <= at) {
        super::store::touch_client(conn, &client_id, at)?;
    }
    let (Some(account_id), Some(session_id)) =
        (AccountId::parse(&client_id), SessionId::parse(&client_id))
    else {
        return Err(Refusal::broken(&"system client id is not a UUID").into());
    };
    Ok(Caller {
        account_id,
        system_client: true,
        session_id,
        role: Role::Clinician,
        clinic_id: Some(ClinicId::from_db(clinic_id)),
        request_id,
        timezone: "UTC".to_owned(),
        clinic_alert_thresholds: None,
    })
}

/// A page of a clinic's system clients (its admins only), enabled and disabled, in id
/// (registration) order after `after` (`limit` + 1 rows when there is a next page). Audited.
pub fn list(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    after: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<ClientRow>> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "manage system clients")?;
    let rows = super::store::clients_page(conn, clinic.as_str(), after, limit)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "system_clients.read", now.naive_utc()).clinic(clinic.as_str()),
    )?;
    Ok(rows)
}

/// A system client of a clinic the caller administers, or not found.
fn own_client(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<ClientRow> {
    let Ok(id) = uuid::Uuid::try_parse(raw_id) else {
        return Err(Refusal::not_found("system client").into());
    };
    let row = super::store::find_client(conn, &id.to_string())?;
    Ok(row
        .filter(|row| {
            caller
                .ensure_admin_of(
                    &ClinicId::from_db(row.clinic_id.clone()),
                    "manage system clients",
                )
                .is_ok()
        })
        .ok_or_else(|| Refusal::not_found("system client"))?)
}

/// Ends every live token of a client.
fn end_tokens(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    super::store::delete_client_tokens(conn, client_id)
}

/// Disables a client: no token is issued to it any more, and its live tokens end now. Disabling
/// a disabled client changes nothing. Audited.
pub fn disable(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<ClientRow> {
    let row = own_client(conn, caller, raw_id)?;
    if row.disabled_at.is_some() {
        return Ok(row);
    }
    let at = now.naive_utc().trunc_subsecs(6);
    super::store::set_client_disabled(conn, &row.id, at)?;
    end_tokens(conn, &row.id)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "system_client.disable", at)
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(ClientRow {
        disabled_at: Some(at),
        ..row
    })
}

/// Replaces a client's public keys: assertions signed with the old keys are refused from now
/// on, and its live tokens end. Audited.
pub fn rotate_keys(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    jwks: &serde_json::Value,
    now: DateTime<Utc>,
) -> Outcome<ClientRow> {
    let row = own_client(conn, caller, raw_id)?;
    if let Err(problem) = smart::check_jwks(jwks) {
        return Err(Refusal::invalid_field("jwks", problem.to_string()).into());
    }
    let at = now.naive_utc().trunc_subsecs(6);
    let text = jwks.to_string();
    super::store::set_client_keys(conn, &row.id, &text, at)?;
    end_tokens(conn, &row.id)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "system_client.rotate_keys", at)
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(ClientRow {
        jwks: text,
        keys_rotated_at: Some(at),
        ..row
    })
}

/// The scopes of a system access token (empty when unknown).
pub fn scope_of_token(conn: &mut DbConnection, token: &str) -> QueryResult<String> {
    Ok(super::store::token_scope(conn, &hash(token))?.unwrap_or_default())
}

/// Deletes system access tokens that have expired, and spent assertion ids whose assertions
/// could no longer be used anyway (housekeeping). Returns how many rows went.
pub fn purge_expired(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    super::store::purge_expired_tokens(conn, now.naive_utc())
}
