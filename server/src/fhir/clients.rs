//! SMART Backend Services over the database: a clinic admin registers a system client with its
//! public JWKS; the client trades a signed assertion for a short-lived access token at
//! `POST /oauth/token` (each assertion's `jti` usable once); the token, stored hashed, lets it read
//! the FHIR resources of its clinic within its scopes. A system client reads as its clinic's
//! staff would; its reads are audited under the admin who registered it (audit actors are
//! accounts), with the client id as the session.

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, SubsecRound as _, TimeDelta, Utc};
use companion_schema::ids::{AccountId, ClinicId, SessionId};
use companion_schema::schema::{client_assertions, system_clients, system_tokens};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::account::model::Role;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::fhir::search::ResourceType;
use crate::fhir::smart::{self, AssertionError};

/// The prefix of every system access token (tells it apart from a staff JWT).
pub const TOKEN_PREFIX: &str = "cst_";

/// A registered system client.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = system_clients)]
pub struct ClientRow {
    /// The client id (`iss` and `sub` of its assertions).
    pub id: String,
    /// Its clinic: the only one whose data it reads.
    pub clinic_id: String,
    /// A name for people.
    pub name: String,
    /// Its public keys (JWK Set JSON).
    pub jwks: String,
    /// The scopes it may ask for.
    pub scope: String,
    /// The admin who registered it.
    pub created_by: String,
    /// Registered.
    pub created_at: NaiveDateTime,
    /// Set once disabled.
    pub disabled_at: Option<NaiveDateTime>,
}

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
        return Ok(Err(Refusal::not_found("clinic")));
    };
    if let Err(refused) = caller.ensure_admin_of(&clinic, "register system clients") {
        return Ok(Err(refused));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Ok(Err(Refusal::invalid_field("name", "1 to 100 characters")));
    }
    if let Err(problem) = smart::check_jwks(jwks) {
        return Ok(Err(Refusal::invalid_field("jwks", problem.to_string())));
    }
    let Some(scopes) = smart::parse_scopes(scope.unwrap_or(smart::DEFAULT_SCOPE)) else {
        return Ok(Err(Refusal::invalid_field(
            "scope",
            "space-separated system/{type or *}.read scopes",
        )));
    };
    let at = now.naive_utc();
    let row = ClientRow {
        id: uuid::Uuid::now_v7().to_string(),
        clinic_id: clinic.as_str().to_owned(),
        name: name.to_owned(),
        jwks: jwks.to_string(),
        scope: smart::scopes_text(&scopes),
        created_by: caller.account_id.to_string(),
        created_at: at.trunc_subsecs(6),
        disabled_at: None,
    };
    diesel::insert_into(system_clients::table)
        .values(&row)
        .execute(conn)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "system_client.create", at)
            .clinic(clinic.as_str())
            .subject(&row.id),
    )?;
    Ok(Ok(row))
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
) -> QueryResult<Result<Grant, OAuthError>> {
    if request.grant_type.as_deref() != Some("client_credentials") {
        return Ok(Err(oauth(
            400,
            "unsupported_grant_type",
            "grant_type must be client_credentials.",
        )));
    }
    if request.client_assertion_type.as_deref() != Some(smart::JWT_BEARER) {
        return Ok(Err(oauth(
            400,
            "invalid_request",
            format!("client_assertion_type must be {}.", smart::JWT_BEARER),
        )));
    }
    let Some(assertion) = request.client_assertion.as_deref() else {
        return Ok(Err(oauth(
            400,
            "invalid_request",
            "client_assertion is missing.",
        )));
    };
    let Some(requested) = request.scope.as_deref().and_then(smart::parse_scopes) else {
        return Ok(Err(oauth(
            400,
            "invalid_scope",
            "scope must list system/{type or *}.read scopes.",
        )));
    };
    let refused = |reason: AssertionError| {
        tracing::info!(%reason, "client assertion refused");
        Ok(Err(oauth(
            401,
            "invalid_client",
            "The client assertion is not accepted.",
        )))
    };
    let client_id = match smart::claimed_client(assertion) {
        Ok(id) => id,
        Err(reason) => return refused(reason),
    };
    let client: Option<ClientRow> = system_clients::table
        .find(&client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?;
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
        return Ok(Err(oauth(
            400,
            "invalid_scope",
            "The scope asked for is wider than the client's registration.",
        )));
    };
    // The jti is one-time: spent here, kept until the assertion could no longer be used anyway.
    let at = now.naive_utc().trunc_subsecs(6);
    diesel::delete(
        client_assertions::table
            .filter(client_assertions::client_id.eq(&client.id))
            .filter(client_assertions::expires_at.lt(at)),
    )
    .execute(conn)?;
    let exp = DateTime::<Utc>::from_timestamp(claims.exp, 0)
        .map(|d| d.naive_utc())
        .unwrap_or(at);
    let spent = crate::per_backend!(conn, |c| diesel::insert_into(client_assertions::table)
        .values((
            client_assertions::client_id.eq(&client.id),
            client_assertions::jti.eq(&claims.jti),
            client_assertions::expires_at.eq(exp),
        ))
        .on_conflict_do_nothing()
        .execute(c)?);
    if spent != 1 {
        return Ok(Err(oauth(
            400,
            "invalid_grant",
            "This client assertion (its jti) was already used.",
        )));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let scope = smart::scopes_text(&granted);
    diesel::insert_into(system_tokens::table)
        .values((
            system_tokens::token_hash.eq(hash(&token)),
            system_tokens::client_id.eq(&client.id),
            system_tokens::clinic_id.eq(&client.clinic_id),
            system_tokens::scope.eq(&scope),
            system_tokens::issued_at.eq(at),
            system_tokens::expires_at.eq(at + TimeDelta::seconds(smart::ACCESS_TOKEN_SECONDS)),
        ))
        .execute(conn)?;
    Ok(Ok(Grant {
        access_token: token,
        expires_in: smart::ACCESS_TOKEN_SECONDS,
        scope,
    }))
}

/// The caller a system access token stands for, if it is current, its client enabled, and its
/// scopes cover `resource` when one is named (403 otherwise). It reads as staff of its clinic; audit rows name the
/// admin who registered it as the actor and the client id as the session.
pub fn system_caller(
    conn: &mut DbConnection,
    token: &str,
    resource: Option<ResourceType>,
    now: DateTime<Utc>,
    request_id: Option<String>,
) -> Outcome<Caller> {
    let invalid = || {
        Ok(Err(Refusal::unauthenticated(
            "invalid_token",
            "The access token is invalid or has expired.",
        )))
    };
    type Found = (
        String,
        String,
        String,
        String,
        NaiveDateTime,
        Option<NaiveDateTime>,
    );
    let found: Option<Found> = system_tokens::table
        .inner_join(system_clients::table.on(system_clients::id.eq(system_tokens::client_id)))
        .filter(system_tokens::token_hash.eq(hash(token)))
        .select((
            system_tokens::client_id,
            system_clients::created_by,
            system_tokens::clinic_id,
            system_tokens::scope,
            system_tokens::expires_at,
            system_clients::disabled_at,
        ))
        .first(conn)
        .optional()?;
    let Some((client_id, registered_by, clinic_id, scope, expires_at, disabled_at)) = found else {
        return invalid();
    };
    if expires_at <= now.naive_utc() || disabled_at.is_some() {
        return invalid();
    }
    if let Some(resource) = resource
        && !smart::allows(&scope, resource)
    {
        return Ok(Err(Refusal::forbidden_because(
            "insufficient_scope",
            format!("The token's scopes do not cover {}.", resource.name()),
        )));
    }
    // The audit trail names accounts: a client's reads are recorded under the admin who
    // registered it (accountable for it), with the client id as the session.
    let (Some(account_id), Some(session_id)) = (
        AccountId::parse(&registered_by),
        SessionId::parse(&client_id),
    ) else {
        return Ok(Err(Refusal::broken(
            &"system client or its registrar is not a UUID",
        )));
    };
    Ok(Ok(Caller {
        account_id,
        session_id,
        role: Role::Clinician,
        clinic_id: Some(ClinicId::from_db(clinic_id)),
        request_id,
        timezone: "UTC".to_owned(),
        clinic_alert_thresholds: None,
    }))
}

/// The scopes of a system access token (empty when unknown).
pub fn scope_of_token(conn: &mut DbConnection, token: &str) -> QueryResult<String> {
    Ok(system_tokens::table
        .find(hash(token))
        .select(system_tokens::scope)
        .first(conn)
        .optional()?
        .unwrap_or_default())
}
