//! Errors. [`Refusal`] is how a use case says no (not found, forbidden, invalid, conflict),
//! with no HTTP in it, so that the JSON API, the console and FHIR each answer it in their own
//! form. [`ApiError`] is the JSON API's form: a status, a stable machine-readable code, a human
//! message and, for invalid input, the offending fields; only handlers and extractors produce it.
//! [`Failure`] is what stops a use case, its refusal or the database's own error, in one flat
//! type ([`Outcome`]). Internal causes are logged inside the request span and never sent to the
//! client.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{DbError, UseCaseResult};

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case, for programs to branch on (e.g. `invalid_credentials`).
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For people; may change between versions.
    #[schema(example = "Some fields are invalid.")]
    pub message: String,
    /// For 422 (and some 400s): each offending field and what is wrong with it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: BTreeMap<String, String>,
    retry_after_secs: Option<u64>,
    database_unavailable: bool,
}

/// Marks a response refused because the database could not be reached, so that the request log
/// line does not repeat, once per request, what the database layer already summarises.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnavailable;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
            retry_after_secs: None,
            database_unavailable: false,
        }
    }

    /// 400: the request could not be understood.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no valid credentials. Carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403: authenticated, but this role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 with a specific code.
    pub fn forbidden_because(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404: unknown, or not visible to the caller (the two are never told apart).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such {what}."),
        )
    }

    /// 409: conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed but invalid values, each named.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Some fields are invalid.",
        );
        error.fields = fields;
        error
    }

    /// 422 for a single field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(BTreeMap::from([(field.to_owned(), problem.into())]))
    }

    /// 429: slow down; `Retry-After` says for how long.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many attempts; try again later.",
        );
        error.retry_after_secs = Some(retry_after_secs.max(1));
        error
    }

    /// 503: the database cannot be reached.
    pub fn unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "The service is temporarily unavailable; try again shortly.",
        );
        error.retry_after_secs = Some(5);
        error
    }

    /// 500: a bug or an unexpected failure. The cause is logged here and never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side.",
        )
    }

    /// Builds any error; for extractors and middleware that map framework rejections.
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Retry-After` value, if the error carries one.
    pub fn retry_after(&self) -> Option<HeaderValue> {
        self.retry_after_secs.map(HeaderValue::from)
    }

    /// The fields named by a validation error.
    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }

    /// Seconds the client should wait, for a 429.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            // Logged by the database layer as a summary of the outage, not once per request.
            DbError::Unavailable(_) => {
                let mut error = Self::unavailable();
                error.database_unavailable = true;
                error
            }
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                // The message only: PostgreSQL's `detail` quotes the offending values.
                tracing::error!(kind = ?kind, message = info.message(), "database error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side.",
                )
            }
            DbError::Query(other) => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                fields: self.fields,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.database_unavailable {
            response.extensions_mut().insert(DatabaseUnavailable);
        }
        response
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// What kind of no a use case said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The caller's credentials no longer stand (session ended, account disabled).
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// Unknown, or not visible to the caller (the two are never told apart).
    NotFound,
    /// Conflicts with the current state.
    Conflict,
    /// Invalid values, each named.
    Invalid,
    /// The request cannot be understood as asked.
    BadRequest,
    /// Stored data the use case cannot make sense of (a bug): logged, answered as a failure.
    Broken,
}

/// A use case's refusal: what kind, a stable code, a human message and, for invalid input, each
/// offending field. Nothing a refusing use case wrote is kept (see `Db::write_or_refuse`).
#[derive(Debug, Clone)]
pub struct Refusal {
    kind: RefusalKind,
    code: &'static str,
    message: String,
    fields: BTreeMap<String, String>,
}

/// Why a use case gave no value: the database failed, or the use case said no. One flat error,
/// so that `?` passes either on: a `QueryResult` (through `From<diesel::result::Error>`) and a
/// `Result<_, Refusal>` (through `From<Refusal>`) alike, and a use case calling another passes
/// on its failure with one `?`.
///
/// `R` is the refusal: [`Refusal`] everywhere but the OAuth token endpoint, whose refusals take
/// the form that RFC 6749 gives them.
#[derive(Debug)]
pub enum Failure<R = Refusal> {
    /// The database's own failure: the work stops, its transaction is rolled back, and the
    /// request is answered 503 or 500 (see `From<DbError> for ApiError`).
    Db(diesel::result::Error),
    /// The use case said no: nothing it wrote is kept (see `Db::write_or_refuse`), and the
    /// caller is answered the refusal.
    Refused(R),
}

impl<R> From<diesel::result::Error> for Failure<R> {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error)
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

/// The result of a use case: its value, or the [`Failure`] that stopped it.
pub type Outcome<T, R = Refusal> = Result<T, Failure<R>>;

impl<T: Send + 'static, R: Send + 'static> UseCaseResult for Outcome<T, R> {
    type Value = T;
    type Refusal = R;

    fn refusal_inside(self) -> diesel::QueryResult<Result<T, R>> {
        match self {
            Ok(value) => Ok(Ok(value)),
            Err(Failure::Refused(refusal)) => Ok(Err(refusal)),
            Err(Failure::Db(error)) => Err(error),
        }
    }
}

impl Refusal {
    fn new(kind: RefusalKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    /// The caller's session no longer stands.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(RefusalKind::Unauthenticated, code, message)
    }

    /// The caller's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(RefusalKind::Forbidden, "forbidden", message)
    }

    /// Forbidden, with a specific code.
    pub fn forbidden_because(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(RefusalKind::Forbidden, code, message)
    }

    /// Unknown or not visible to the caller.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            RefusalKind::NotFound,
            "not_found",
            format!("No such {what}."),
        )
    }

    /// Not found, with a specific code and message.
    pub fn not_found_because(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(RefusalKind::NotFound, code, message)
    }

    /// Conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(RefusalKind::Conflict, code, message)
    }

    /// Invalid values, each named.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let mut refusal = Self::new(
            RefusalKind::Invalid,
            "validation_failed",
            "Some fields are invalid.",
        );
        refusal.fields = fields;
        refusal
    }

    /// One invalid field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(BTreeMap::from([(field.to_owned(), problem.into())]))
    }

    /// The request cannot be understood as asked.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(RefusalKind::BadRequest, code, message)
    }

    /// Stored data that makes no sense (a bug). The cause is logged here and never shown.
    pub fn broken(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            RefusalKind::Broken,
            "internal",
            "Something went wrong on our side.",
        )
    }

    /// What kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The invalid fields.
    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = match refusal.kind {
            RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            RefusalKind::Forbidden => StatusCode::FORBIDDEN,
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            RefusalKind::BadRequest => StatusCode::BAD_REQUEST,
            RefusalKind::Broken => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut error = Self::new(status, refusal.code, refusal.message);
        error.fields = refusal.fields;
        error
    }
}
