//! HTTP: consent documents and the patient's consent; the patient's access log; exports;
//! erasure; and the clinic's retention settings.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::{PatientCaller, Staff};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated, time_key};
use crate::time::utc;

use super::consent::{self, Action, MyConsent, Named};
use super::store::{DocumentRow, RecordRow};

/// A version of a clinic's consent document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsentDocument {
    /// Id.
    pub id: String,
    /// The clinic.
    pub clinic_id: String,
    /// 1 for the first document, one more for each new version.
    pub version: i32,
    /// Title.
    pub title: String,
    /// The text the patient agrees to.
    pub body: String,
    /// The clinic admin who published it.
    pub published_by: String,
    /// When.
    pub published_at: DateTime<Utc>,
}

impl From<DocumentRow> for ConsentDocument {
    fn from(row: DocumentRow) -> Self {
        Self {
            id: row.id,
            clinic_id: row.clinic_id,
            version: row.version,
            title: row.title,
            body: row.body,
            published_by: row.published_by,
            published_at: utc(row.published_at),
        }
    }
}

/// A clinic's consent documents.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsentDocumentList {
    /// Newest version first.
    pub items: Vec<ConsentDocument>,
}

/// A new version of the consent document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsentDocument {
    /// Title, 1 to 200 characters, not only spaces, with no control, invisible or
    /// text-direction characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*$"
    )]
    pub title: String,
    /// The text, 1 to 50,000 characters, not only spaces.
    #[schema(min_length = 1, max_length = 50000, pattern = r"\S")]
    pub body: String,
}

/// Longest title.
const MAX_TITLE: usize = 200;
/// Longest document text.
const MAX_BODY: usize = 50_000;

/// Publish a new version of the clinic's consent document
///
/// Clinic admins of the clinic. The version is one more than the latest. From now on the
/// clinic's patients are prompted only once they accept this version: their open prompts are
/// withdrawn at once. Check-ins they send of their own accord are still accepted.
#[utoipa::path(
    post,
    path = "/v1/clinics/{clinic_id}/consent-documents",
    tag = "lifecycle",
    operation_id = "publish_consent_document",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = NewConsentDocument,
    responses(
        (status = 201, description = "Published", body = ConsentDocument),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin of the clinic", body = ErrorBody),
        (status = 404, description = "No such clinic visible to the caller", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn publish_consent_document(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<NewConsentDocument>,
) -> ApiResult<(StatusCode, Json<ConsentDocument>)> {
    let mut problems = BTreeMap::new();
    let title = body.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        problems.insert(
            "title".to_owned(),
            format!("must be 1 to {MAX_TITLE} characters"),
        );
    } else if crate::text::has_hidden(&title) {
        problems.insert(
            "title".to_owned(),
            crate::text::HIDDEN_CHARACTERS.to_owned(),
        );
    }
    if body.body.trim().is_empty() || body.body.chars().count() > MAX_BODY {
        problems.insert(
            "body".to_owned(),
            format!("must be 1 to {MAX_BODY} characters"),
        );
    }
    let now = state.now();
    let row = state
        .write_as(staff, move |conn, caller| {
            consent::publish(conn, caller, &clinic_id, title, body.body, problems, now)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// The clinic's consent documents
///
/// Every version, newest first. Staff of the clinic.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/consent-documents",
    tag = "lifecycle",
    operation_id = "list_consent_documents",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The documents", body = ConsentDocumentList),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic visible to the caller", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_consent_documents(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<ConsentDocumentList>> {
    let rows = state
        .read_as(staff, move |conn, caller| {
            consent::documents(conn, caller, &clinic_id)
        })
        .await?;
    Ok(Json(ConsentDocumentList {
        items: rows.into_iter().map(ConsentDocument::from).collect(),
    }))
}

/// One acceptance, decline or withdrawal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsentRecord {
    /// Id.
    pub id: String,
    /// The document.
    pub document_id: String,
    /// Its version.
    pub version: i32,
    /// `accept`, `decline` or `withdraw`.
    pub action: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<RecordRow> for ConsentRecord {
    fn from(row: RecordRow) -> Self {
        Self {
            id: row.id,
            document_id: row.document_id,
            version: row.version,
            action: row.action,
            at: utc(row.at),
        }
    }
}

/// A patient's consent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Consent {
    /// The clinic's document in force; null while the clinic has published none (prompts are
    /// then sent without consent on record).
    pub current: Option<ConsentDocument>,
    /// Whether the patient has accepted the document in force (true when there is none).
    pub accepted: bool,
    /// Whether the patient is being prompted for check-ins: with no document, or while an
    /// acceptance is in force (of the version in force, or of an earlier one until the patient
    /// declines the new version).
    pub prompting: bool,
    /// `not_required` (no document), `accepted`, `earlier_version` (an earlier version was
    /// accepted and the one in force is not answered yet: prompts go on under the earlier
    /// acceptance), `declined`, `withdrawn` or `not_given`.
    #[schema(example = "accepted")]
    pub standing: String,
    /// Every acceptance, decline and withdrawal, oldest first.
    pub history: Vec<ConsentRecord>,
}

impl From<MyConsent> for Consent {
    fn from(mine: MyConsent) -> Self {
        Self {
            accepted: mine.accepted(),
            prompting: mine.standing.prompted(),
            standing: mine.standing.as_str().to_owned(),
            current: mine.current.map(ConsentDocument::from),
            history: mine.history.into_iter().map(ConsentRecord::from).collect(),
        }
    }
}

/// My consent
///
/// The clinic's consent document in force, whether I accepted it, and my history.
#[utoipa::path(
    get,
    path = "/v1/me/consent",
    tag = "lifecycle",
    operation_id = "get_my_consent",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "My consent", body = Consent),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_my_consent(
    State(state): State<AppState>,
    patient: PatientCaller,
) -> ApiResult<Json<Consent>> {
    let mine = state.read_as(patient, consent::mine).await?;
    Ok(Json(mine.into()))
}

/// Accept, decline or withdraw.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    /// Agree to the document in force.
    Accept,
    /// Say no to the document in force (one not accepted): prompts stop, also those going on
    /// under an earlier acceptance.
    Decline,
    /// Take my acceptance back: prompts stop.
    Withdraw,
}

/// An acceptance, decline or withdrawal; name the document by `document_id` or by `version`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentDecision {
    /// The document.
    pub document_id: Option<String>,
    /// Or its version.
    pub version: Option<i32>,
    /// What I decide.
    pub action: ConsentAction,
}

/// Accept, decline or withdraw my consent
///
/// Only the document in force can be named (409 `consent_version_not_current` otherwise).
/// Accepting starts prompts; declining the version in force (when an earlier acceptance keeps
/// them going) or withdrawing an acceptance stops them. Who, when and which version are
/// recorded.
#[utoipa::path(
    post,
    path = "/v1/me/consent",
    tag = "lifecycle",
    operation_id = "decide_my_consent",
    security(("bearer" = [])),
    request_body = ConsentDecision,
    responses(
        (status = 200, description = "Recorded; my consent now", body = Consent),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 404, description = "No such document in my clinic", body = ErrorBody),
        (status = 409, description = "Not the version in force (`consent_version_not_current`), nothing to withdraw (`consent_not_given`), a decline of an accepted version (`consent_already_given`) or of one declined already (`consent_already_declined`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn decide_my_consent(
    State(state): State<AppState>,
    patient: PatientCaller,
    ApiJson(body): ApiJson<ConsentDecision>,
) -> ApiResult<Json<Consent>> {
    let named = match (body.document_id, body.version) {
        (Some(id), None) => Named::Id(id),
        (None, Some(version)) => Named::Version(version),
        _ => {
            return Err(ApiError::invalid_field(
                "document_id",
                "name the document by exactly one of document_id and version",
            ));
        }
    };
    let action = match body.action {
        ConsentAction::Accept => Action::Accept,
        ConsentAction::Decline => Action::Decline,
        ConsentAction::Withdraw => Action::Withdraw,
    };
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let mine = state
        .write_as(patient, move |conn, caller| {
            consent::act(conn, caller, named, action, now, horizon)
        })
        .await?;
    Ok(Json(mine.into()))
}

/// A member of staff, as the patient sees them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StaffMember {
    /// Account id.
    pub id: String,
    /// `clinician` or `clinic_admin`.
    pub role: String,
    /// Their display name.
    pub display_name: Option<String>,
}

/// One staff action on my data.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessEntry {
    /// Id of the audit entry.
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What, as a stable verb such as `check_ins.read` or `session.create`.
    pub action: String,
    /// The record concerned, when there is one.
    pub subject_id: Option<String>,
    /// Who.
    pub actor: StaffMember,
}

/// Who on the staff read or changed my data
///
/// From the audit trail, newest first, paged with `limit` and `cursor`.
#[utoipa::path(
    get,
    path = "/v1/me/access-log",
    tag = "lifecycle",
    operation_id = "list_my_access_log",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of entries, newest first", body = Paginated<AccessEntry>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_my_access_log(
    State(state): State<AppState>,
    patient: PatientCaller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<AccessEntry>>> {
    let page = params.parse()?;
    let before = page.after_time_key()?;
    let limit = page.limit;
    let rows = state
        .read_as(patient, move |conn, caller| {
            super::access_log::mine(conn, caller, before, limit)
        })
        .await?;
    let items: Vec<AccessEntry> = rows
        .into_iter()
        .map(|row| AccessEntry {
            id: row.id,
            at: utc(row.at),
            action: row.action,
            subject_id: row.subject_id,
            actor: StaffMember {
                id: row.actor_id,
                role: row.actor_role,
                display_name: row.actor_name,
            },
        })
        .collect();
    Ok(Json(Paginated::from_rows(items, &page, |e| {
        time_key(e.at, &e.id)
    })))
}

/// Download all my data
///
/// Everything the service holds about me as one JSON document: profile, preferences, devices
/// (without push tokens), sign-in sessions, treatment sessions, prompts, check-ins with scores,
/// alerts with their events, consent records and requests for help (with their notes). Each
/// export is audited.
#[utoipa::path(
    get,
    path = "/v1/me/export",
    tag = "lifecycle",
    operation_id = "export_my_data",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The export", body = Object),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn export_my_data(
    State(state): State<AppState>,
    patient: PatientCaller,
) -> ApiResult<Json<serde_json::Value>> {
    let now = state.now();
    let doc = state
        .write_as(patient, move |conn, caller| {
            let me = caller.account_id.to_string();
            super::export::export(conn, caller, &me, now)
        })
        .await?;
    Ok(Json(doc))
}

/// Export a patient's data
///
/// The same document as `GET /v1/me/export`, for staff of the patient's clinic. Audited.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}/export",
    tag = "lifecycle",
    operation_id = "export_patient_data",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 200, description = "The export", body = Object),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn export_patient_data(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let now = state.now();
    let doc = state
        .write_as(staff, move |conn, caller| {
            super::export::export(conn, caller, &patient_id, now)
        })
        .await?;
    Ok(Json(doc))
}

/// Erase my account and data
///
/// Everything the service holds about me goes at once: identifiers, devices, sessions and
/// clinical records. My access token stops working. The audit keeps that it happened.
#[utoipa::path(
    post,
    path = "/v1/me/erasure",
    tag = "lifecycle",
    operation_id = "erase_me",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a patient", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn erase_me(
    State(state): State<AppState>,
    patient: PatientCaller,
) -> ApiResult<StatusCode> {
    let now = state.now();
    state
        .write_as(patient, move |conn, caller| {
            let me = caller.account_id.to_string();
            super::erasure::erase(conn, caller, &me, now)
        })
        .await?;
    super::erasure_traces::after_commit(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Erase a patient
///
/// As `POST /v1/me/erasure`, asked for by a clinic admin of the patient's clinic.
#[utoipa::path(
    post,
    path = "/v1/patients/{patient_id}/erasure",
    tag = "lifecycle",
    operation_id = "erase_patient",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn erase_patient(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.now();
    state
        .write_as(staff, move |conn, caller| {
            super::erasure::erase(conn, caller, &patient_id, now)
        })
        .await?;
    super::erasure_traces::after_commit(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A clinic's retention policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionPolicy {
    /// The clinic.
    pub clinic_id: String,
    /// What erasing a patient does to their check-ins and alerts: `delete` (at once) or
    /// `deidentify` (kept without anything naming the patient until their retention ends).
    #[schema(pattern = r"^(delete|deidentify)$")]
    pub erasure_mode: String,
    /// Days check-ins are kept after completion; null: no limit.
    pub check_in_retention_days: Option<i32>,
    /// Days resolved alerts (with their events) are kept after resolution; null: no limit.
    pub alert_retention_days: Option<i32>,
    /// Days audit rows are kept; null: no limit.
    pub audit_retention_days: Option<i32>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<super::store::LifecycleRow> for RetentionPolicy {
    fn from(row: super::store::LifecycleRow) -> Self {
        Self {
            clinic_id: row.clinic_id,
            erasure_mode: super::retention::ErasureMode::from_stored(&row.erasure_mode)
                .as_api()
                .to_owned(),
            check_in_retention_days: row.check_in_retention_days,
            alert_retention_days: row.alert_retention_days,
            audit_retention_days: row.audit_retention_days,
            updated_at: utc(row.updated_at),
        }
    }
}

/// A new retention policy (the whole policy; an absent period means no limit).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRetentionPolicy {
    /// `delete` or `deidentify`.
    #[schema(pattern = r"^(delete|deidentify)$", example = "deidentify")]
    pub erasure_mode: String,
    /// 1 to 36,500 days, or null for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub check_in_retention_days: Option<i64>,
    /// 1 to 36,500 days, or null for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub alert_retention_days: Option<i64>,
    /// 1 to 36,500 days, or null for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub audit_retention_days: Option<i64>,
}

/// The clinic's retention policy
///
/// Clinic admins of the clinic. A clinic that never set one deletes on erasure and keeps
/// everything without limit.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/retention",
    tag = "lifecycle",
    operation_id = "get_retention_policy",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The policy", body = RetentionPolicy),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin of the clinic", body = ErrorBody),
        (status = 404, description = "No such clinic visible to the caller", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_retention_policy(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<RetentionPolicy>> {
    let now = state.now();
    let row = state
        .read_as(staff, move |conn, caller| {
            super::retention::get(conn, caller, &clinic_id, now)
        })
        .await?;
    Ok(Json(row.into()))
}

/// Set the clinic's retention policy
///
/// Clinic admins of the clinic. Replaces the whole policy. The housekeeping pass deletes
/// check-ins, resolved alerts and audit rows of the clinic older than these periods; open
/// alerts are never purged. Audited.
#[utoipa::path(
    put,
    path = "/v1/clinics/{clinic_id}/retention",
    tag = "lifecycle",
    operation_id = "set_retention_policy",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = NewRetentionPolicy,
    responses(
        (status = 200, description = "The policy now", body = RetentionPolicy),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin of the clinic", body = ErrorBody),
        (status = 404, description = "No such clinic visible to the caller", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_retention_policy(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<NewRetentionPolicy>,
) -> ApiResult<Json<RetentionPolicy>> {
    let policy = super::retention::validate(
        &body.erasure_mode,
        body.check_in_retention_days,
        body.alert_retention_days,
        body.audit_retention_days,
    );
    let now = state.now();
    let row = state
        .write_as(staff, move |conn, caller| {
            super::retention::set(conn, caller, &clinic_id, policy, now)
        })
        .await?;
    Ok(Json(row.into()))
}
