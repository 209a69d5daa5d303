//! `GET` and `PATCH /v1/patients/{patient_id}`: a patient's profile as the care team sees and
//! manages it (use cases in `patient::use_cases`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::model::{parse_display_name, parse_timezone};
use crate::app::AppState;
use crate::auth::extract::Staff;
use crate::error::{ApiResult, ErrorBody};
use crate::http::extract::ApiJson;
use crate::time::utc;

use super::store::{ProfileChanges, ProfileRow};
use super::use_cases::{self, PatientStatus, ProfileChange, parse_external_id};

/// Whether a patient's account is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Signs in, receives prompts, raises alerts.
    Active,
    /// Signed out everywhere and sent no prompts; their history stays.
    Disabled,
}

impl From<PatientStatus> for Status {
    fn from(status: PatientStatus) -> Self {
        match status {
            PatientStatus::Active => Status::Active,
            PatientStatus::Disabled => Status::Disabled,
        }
    }
}

impl From<Status> for PatientStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Active => PatientStatus::Active,
            Status::Disabled => PatientStatus::Disabled,
        }
    }
}

/// A patient's profile.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PatientProfile {
    /// The patient's account id.
    pub id: String,
    /// The clinic.
    pub clinic_id: String,
    /// Email.
    pub email: String,
    /// Display name, if given.
    pub display_name: Option<String>,
    /// The clinic's record number for the patient (MRN), unique within the clinic.
    pub external_id: Option<String>,
    /// IANA time zone; prompts follow it.
    pub timezone: String,
    /// Whether the account is in use.
    pub status: Status,
    /// When the patient enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<ProfileRow> for PatientProfile {
    fn from(row: ProfileRow) -> Self {
        Self {
            status: PatientStatus::of(&row).into(),
            id: row.id,
            clinic_id: row.clinic_id.unwrap_or_default(),
            email: row.email,
            display_name: row.display_name,
            external_id: row.external_id,
            timezone: row.timezone,
            enrolled_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// Reads a field that may be absent (leave as is), null (clear) or a value (set).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a patient's profile; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Alex R.", "external_id": "MRN-004217", "timezone": "America/Chicago"}))]
pub struct UpdatePatient {
    /// Name shown to the care team, 1 to 100 characters; null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, example = "Alex R.",
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*$")]
    pub display_name: Option<Option<String>>,
    /// The clinic's record number (MRN), unique within the clinic: 1 to 64 letters, digits and
    /// `. _ / -`; null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64,
        pattern = r"^\s*[A-Za-z0-9._/-]{1,64}\s*$", example = "MRN-004217")]
    pub external_id: Option<Option<String>>,
    /// IANA time zone; the prompts not sent yet are replanned.
    #[schema(example = "America/Chicago")]
    pub timezone: Option<String>,
    /// `disabled` signs the patient out everywhere and stops prompts; `active` restores them.
    /// Clinic admins only.
    pub status: Option<Status>,
}

/// A patient's profile
///
/// Staff of the patient's clinic. Every read is recorded in the audit trail.
#[utoipa::path(
    get,
    path = "/v1/patients/{patient_id}",
    tag = "clinics",
    operation_id = "get_patient",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    responses(
        (status = 200, description = "The profile", body = PatientProfile),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_patient(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<PatientProfile>> {
    let now = state.now();
    state
        .read_as(staff, move |conn, caller| {
            use_cases::profile(conn, caller, &patient_id, now)
        })
        .await
        .map(|row| Json(row.into()))
}

/// Change a patient's profile
///
/// Staff of the patient's clinic change the display name, external id (MRN) and zone; clinic
/// admins also the status. An external id another patient of the clinic holds is refused with
/// 409 `external_id_taken`.
#[utoipa::path(
    patch,
    path = "/v1/patients/{patient_id}",
    tag = "clinics",
    operation_id = "update_patient",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient")),
    request_body = UpdatePatient,
    responses(
        (status = 200, description = "The profile as changed", body = PatientProfile),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff, or a clinician changing the status", body = ErrorBody),
        (status = 404, description = "No such patient in the caller's clinic", body = ErrorBody),
        (status = 409, description = "The external id is taken (`external_id_taken`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn update_patient(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
    ApiJson(body): ApiJson<UpdatePatient>,
) -> ApiResult<Json<PatientProfile>> {
    let mut problems = BTreeMap::new();
    let mut check = |field: &str, parsed: Result<String, &'static str>| {
        parsed
            .map_err(|problem| problems.insert(field.to_owned(), problem.to_owned()))
            .ok()
    };
    let fields = ProfileChanges {
        display_name: body
            .display_name
            .map(|name| name.and_then(|n| check("display_name", parse_display_name(&n)))),
        external_id: body
            .external_id
            .map(|ext| ext.and_then(|e| check("external_id", parse_external_id(&e)))),
        timezone: body.timezone.and_then(|zone| {
            check(
                "timezone",
                parse_timezone(&zone).map(|tz| tz.name().to_owned()),
            )
        }),
    };
    let change = ProfileChange {
        fields,
        status: body.status.map(PatientStatus::from),
    };
    let (now, horizon) = (state.now(), state.config.prompts.horizon);
    let row = state
        .write_as(staff, move |conn, caller| {
            use_cases::update_profile(conn, caller, &patient_id, change, problems, now, horizon)
        })
        .await?;
    Ok(Json(row.into()))
}
