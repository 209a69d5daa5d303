//! Who is calling: the bearer token is verified, then its session and account are checked in
//! the database on every request, so logging out or disabling an account takes effect at once.
//! Role extractors refuse the wrong role with 403 before a handler runs.
//!
//! A handler on a hot path takes a [`Bearer`] instead (the token verified, nothing read yet) and
//! runs the session check inside its own unit of work ([`crate::app::App::write_as`]): one pooled
//! connection and one hand-off to the blocking pool for the check and the work together.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use companion_schema::ids::{AccountId, ClinicId, SessionId};

use crate::account::model::Role;
use crate::app::AppState;
use crate::auth::store;
use crate::error::ApiError;
use crate::http::extract::request_id_of;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub account_id: AccountId,
    /// The session the access token belongs to.
    pub session_id: SessionId,
    /// The account's current role.
    pub role: Role,
    /// The account's clinic (none for organisation admins).
    pub clinic_id: Option<ClinicId>,
    /// The request id, for audit rows.
    pub request_id: Option<String>,
}

impl Caller {
    /// Staff may act on `clinic` only if it is their own; any other clinic answers 404, so
    /// that its existence is not revealed.
    pub fn ensure_staff_of(&self, clinic: &ClinicId) -> Result<(), ApiError> {
        if self.role.is_staff() && self.clinic_id.as_ref() == Some(clinic) {
            Ok(())
        } else {
            Err(ApiError::not_found("clinic"))
        }
    }

    /// Like [`Caller::ensure_staff_of`], and the caller must be that clinic's admin (403 for
    /// its clinicians).
    pub fn ensure_admin_of(&self, clinic: &ClinicId, what: &str) -> Result<(), ApiError> {
        self.ensure_staff_of(clinic)?;
        if self.role == Role::ClinicAdmin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "Only a clinic admin may {what}."
            )))
        }
    }
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized(
        "invalid_token",
        "The access token is invalid or has expired.",
    )
}

/// A bearer token whose signature, expiry, issuer and audience are verified; its session is not
/// checked yet. Only [`session_caller`] turns it into a [`Caller`].
#[derive(Debug, Clone)]
pub struct Bearer {
    account_id: AccountId,
    session_id: SessionId,
    request_id: Option<String>,
}

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_token",
                    "Send Authorization: Bearer <access token>.",
                )
            })?
            .to_str()
            .map_err(|_| invalid_token())?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::unauthorized(
                    "missing_token",
                    "Send Authorization: Bearer <access token>.",
                ));
            }
        };
        let claims = state.tokens.verify(token, state.now()).map_err(|reason| {
            tracing::debug!(%reason, "access token refused");
            invalid_token()
        })?;
        Ok(Bearer {
            account_id: AccountId::parse(&claims.sub).ok_or_else(invalid_token)?,
            session_id: SessionId::parse(&claims.sid).ok_or_else(invalid_token)?,
            request_id: request_id_of(parts),
        })
    }
}

/// Checks `bearer`'s session on `conn`: not revoked, the account not disabled. The caller, or the
/// 401 to answer.
pub fn session_caller(
    conn: &mut crate::db::DbConnection,
    bearer: &Bearer,
) -> diesel::QueryResult<Result<Caller, ApiError>> {
    let session =
        store::session_state(conn, bearer.session_id.as_str(), bearer.account_id.as_str())?;
    Ok(caller_of(bearer, session))
}

/// `work` run as `bearer`'s caller, after [`session_caller`] on the same connection; a refused
/// session answers its 401 without running `work`.
pub fn as_caller<T>(
    bearer: Bearer,
    work: impl FnOnce(&mut crate::db::DbConnection, &Caller) -> diesel::QueryResult<Result<T, ApiError>>,
) -> impl FnOnce(&mut crate::db::DbConnection) -> diesel::QueryResult<Result<T, ApiError>> {
    move |conn| match session_caller(conn, &bearer)? {
        Ok(caller) => work(conn, &caller),
        Err(refused) => Ok(Err(refused)),
    }
}

fn caller_of(bearer: &Bearer, session: Option<store::SessionState>) -> Result<Caller, ApiError> {
    let session = session.ok_or_else(invalid_token)?;
    if session.revoked_at.is_some() {
        return Err(ApiError::unauthorized(
            "session_revoked",
            "This session has ended; sign in again.",
        ));
    }
    if session.disabled_at.is_some() {
        return Err(ApiError::unauthorized(
            "account_disabled",
            "This account is disabled.",
        ));
    }
    let role = Role::parse(&session.role)
        .ok_or_else(|| ApiError::internal(&"stored role is not a known role"))?;
    Ok(Caller {
        account_id: bearer.account_id.clone(),
        session_id: bearer.session_id.clone(),
        role,
        clinic_id: session.clinic_id.map(ClinicId::from_db),
        request_id: bearer.request_id.clone(),
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        let (sid, sub) = (bearer.session_id.to_string(), bearer.account_id.to_string());
        let session = state
            .db
            .run(move |conn| store::session_state(conn, &sid, &sub))
            .await?;
        caller_of(&bearer, session)
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $allowed:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                let allowed: fn(Role) -> bool = $allowed;
                if allowed(caller.role) {
                    Ok($name(caller))
                } else {
                    Err(ApiError::forbidden($message))
                }
            }
        }
    };
}

role_extractor!(
    /// An organisation admin.
    OrgAdmin,
    |role| role == Role::OrgAdmin,
    "Only an organisation admin may do this."
);
role_extractor!(
    /// Clinic staff (clinician or clinic admin).
    Staff,
    Role::is_staff,
    "Only clinic staff may do this."
);
role_extractor!(
    /// A clinic admin or an organisation admin.
    Admin,
    |role| matches!(role, Role::ClinicAdmin | Role::OrgAdmin),
    "Only an administrator may do this."
);
role_extractor!(
    /// Anyone who may create invitations: organisation admins, clinic admins and clinicians
    /// (clinicians invite patients only; the handler checks the invited role).
    Inviter,
    |role| role != Role::Patient,
    "Patients cannot invite others."
);
role_extractor!(
    /// A patient.
    PatientCaller,
    |role| role == Role::Patient,
    "Only patients may do this."
);
