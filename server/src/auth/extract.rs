//! Who is calling. Extractors verify the bearer token only (signature, expiry, issuer,
//! audience, and the role it was signed for): they read nothing. The session itself (not
//! revoked, the account not disabled, the role it holds now) is checked inside the request's
//! unit of work ([`crate::app::App::read_as`], [`crate::app::App::write_as`], in [`super::work`]), on the same pooled
//! connection and in the same hand-off to the blocking pool as the work, so logging out or
//! disabling an account still takes effect at once.
//!
//! Role extractors ([`Staff`], [`OrgAdmin`], ...) refuse a token signed for the wrong role with
//! 403 before the body is read; the unit of work checks the stored role again.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use companion_schema::ids::{AccountId, ClinicId, SessionId};

use crate::account::model::Role;
use crate::app::AppState;
use crate::auth::store;
use crate::auth::tokens::TokenKind;
use crate::db::DbConnection;
use crate::error::{ApiError, Outcome, Refusal};
use crate::http::extract::request_id_of;

/// An authenticated caller: a person's account, or a SMART system client (FHIR reads only).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account, or for a system client its client id.
    pub account_id: AccountId,
    /// True when `account_id` is a system client's id: audit rows then name the client.
    pub system_client: bool,
    /// The session the access token belongs to.
    pub session_id: SessionId,
    /// The account's current role.
    pub role: Role,
    /// The account's clinic (none for organisation admins).
    pub clinic_id: Option<ClinicId>,
    /// The request id, for audit rows.
    pub request_id: Option<String>,
    /// The account's IANA time zone.
    pub timezone: String,
    /// The clinic's alert thresholds as stored (JSON), read with the session.
    pub clinic_alert_thresholds: Option<String>,
}

impl Caller {
    /// Staff may act on `clinic` only if it is their own; any other clinic answers 404, so
    /// that its existence is not revealed.
    pub fn ensure_staff_of(&self, clinic: &ClinicId) -> Result<(), Refusal> {
        if self.role.is_staff() && self.clinic_id.as_ref() == Some(clinic) {
            Ok(())
        } else {
            Err(Refusal::not_found("clinic"))
        }
    }

    /// Like [`Caller::ensure_staff_of`], and the caller must be that clinic's admin (403 for
    /// its clinicians).
    pub fn ensure_admin_of(&self, clinic: &ClinicId, what: &str) -> Result<(), Refusal> {
        self.ensure_staff_of(clinic)?;
        if self.role == Role::ClinicAdmin {
            Ok(())
        } else {
            Err(Refusal::forbidden(format!(
                "Only a clinic admin may {what}."
            )))
        }
    }

    /// The caller's clinic; every account but an organisation admin has one.
    pub fn own_clinic(&self) -> Result<&ClinicId, Refusal> {
        self.clinic_id
            .as_ref()
            .ok_or_else(|| Refusal::broken(&"account without a clinic"))
    }
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized(
        "invalid_token",
        "The access token is invalid or has expired.",
    )
}

/// Which roles may make a request, and what to say to the others.
#[derive(Debug, Clone, Copy)]
pub struct RoleRule {
    allows: fn(Role) -> bool,
    refusal: &'static str,
}

impl RoleRule {
    /// Any signed-in account.
    pub const ANYONE: RoleRule = RoleRule {
        allows: |_| true,
        refusal: "",
    };

    fn check(&self, role: Role) -> Result<(), Refusal> {
        if (self.allows)(role) {
            Ok(())
        } else {
            Err(Refusal::forbidden(self.refusal))
        }
    }
}

/// A bearer token whose signature, expiry, issuer and audience are verified, with the roles the
/// route admits; its session is not checked yet. Only [`session_caller`] turns it into a
/// [`Caller`]. Taken as an extractor, it admits any role.
#[derive(Debug, Clone)]
pub struct Bearer {
    account_id: AccountId,
    session_id: SessionId,
    request_id: Option<String>,
    signed_role: Option<Role>,
    rule: RoleRule,
}

impl Bearer {
    /// Narrows the roles admitted; a token signed for another role is refused at once.
    fn admitting(mut self, rule: RoleRule) -> Result<Self, ApiError> {
        if let Some(role) = self.signed_role {
            rule.check(role).map_err(ApiError::from)?;
        }
        self.rule = rule;
        Ok(self)
    }
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
        Bearer::from_token(state, token, request_id_of(parts))
    }
}

impl Bearer {
    /// Verifies an API access token (from the `Authorization` header); admits any role until
    /// narrowed.
    pub fn from_token(
        app: &crate::app::App,
        token: &str,
        request_id: Option<String>,
    ) -> Result<Self, ApiError> {
        Self::of_kind(app, TokenKind::Access, token, request_id)
    }

    /// Verifies a console session token (the console's cookie): the same session record and
    /// checks as an access token, but never accepted as one.
    pub fn from_console_token(
        app: &crate::app::App,
        token: &str,
        request_id: Option<String>,
    ) -> Result<Self, ApiError> {
        Self::of_kind(app, TokenKind::Console, token, request_id)
    }

    fn of_kind(
        app: &crate::app::App,
        kind: TokenKind,
        token: &str,
        request_id: Option<String>,
    ) -> Result<Self, ApiError> {
        let claims = app
            .tokens
            .verify_kind(kind, token, app.now())
            .map_err(|reason| {
                tracing::debug!(%reason, "access token refused");
                invalid_token()
            })?;
        Ok(Bearer {
            account_id: AccountId::parse(&claims.sub).ok_or_else(invalid_token)?,
            session_id: SessionId::parse(&claims.sid).ok_or_else(invalid_token)?,
            request_id,
            signed_role: claims.role.as_deref().and_then(Role::parse),
            rule: RoleRule::ANYONE,
        })
    }

    /// Admits clinic staff only (clinicians and clinic admins), as [`Staff`] does.
    pub fn admitting_staff(self) -> Result<Self, ApiError> {
        self.admitting(RoleRule {
            allows: Role::is_staff,
            refusal: "Only clinic staff may do this.",
        })
    }

    /// The session the token belongs to.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }
}

/// Checks `bearer`'s session on `conn`: not revoked, the account not disabled, its stored role
/// admitted by the route. The caller, or the 401 or 403 to answer.
pub fn session_caller(conn: &mut DbConnection, bearer: &Bearer) -> Outcome<Caller> {
    let session =
        store::session_state(conn, bearer.session_id.as_str(), bearer.account_id.as_str())?;
    Ok(caller_of(bearer, session)?)
}

/// `work` run as `bearer`'s caller, after [`session_caller`] on the same connection; a refused
/// session answers its 401 (or 403) without running `work`.
pub fn as_caller<T>(
    bearer: Bearer,
    work: impl FnOnce(&mut DbConnection, &Caller) -> Outcome<T>,
) -> impl FnOnce(&mut DbConnection) -> Outcome<T> {
    move |conn| {
        let caller = session_caller(conn, &bearer)?;
        work(conn, &caller)
    }
}

fn caller_of(bearer: &Bearer, session: Option<store::SessionState>) -> Result<Caller, Refusal> {
    let invalid = || {
        Refusal::unauthenticated(
            "invalid_token",
            "The access token is invalid or has expired.",
        )
    };
    let session = session.ok_or_else(invalid)?;
    if session.revoked_at.is_some() {
        return Err(Refusal::unauthenticated(
            "session_revoked",
            "This session has ended; sign in again.",
        ));
    }
    if session.disabled_at.is_some() {
        return Err(Refusal::unauthenticated(
            "account_disabled",
            "This account is disabled.",
        ));
    }
    let role = Role::parse(&session.role)
        .ok_or_else(|| Refusal::broken(&"stored role is not a known role"))?;
    bearer.rule.check(role)?;
    Ok(Caller {
        account_id: bearer.account_id.clone(),
        system_client: false,
        session_id: bearer.session_id.clone(),
        role,
        clinic_id: session.clinic_id.map(ClinicId::from_db),
        request_id: bearer.request_id.clone(),
        timezone: session.timezone,
        clinic_alert_thresholds: session.alert_thresholds,
    })
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $allowed:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Bearer);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let bearer = Bearer::from_request_parts(parts, state).await?;
                let rule = RoleRule {
                    allows: $allowed,
                    refusal: $message,
                };
                bearer.admitting(rule).map($name)
            }
        }

        impl From<$name> for Bearer {
            fn from(access: $name) -> Bearer {
                access.0
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
