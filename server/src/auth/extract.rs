//! Who is calling: the bearer token is verified, then its session and account are checked in
//! the database on every request, so logging out or disabling an account takes effect at once.
//! Role extractors refuse the wrong role with 403 before a handler runs.

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

impl FromRequestParts<AppState> for Caller {
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
        let account_id = AccountId::parse(&claims.sub).ok_or_else(invalid_token)?;
        let session_id = SessionId::parse(&claims.sid).ok_or_else(invalid_token)?;
        let (sid, sub) = (session_id.to_string(), account_id.to_string());
        let session = state
            .db
            .run(move |conn| store::session_state(conn, &sid, &sub))
            .await?
            .ok_or_else(invalid_token)?;
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
            account_id,
            session_id,
            role,
            clinic_id: session.clinic_id.map(ClinicId::from_db),
            request_id: request_id_of(parts),
        })
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
