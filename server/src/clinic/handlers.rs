//! `/v1/clinics`: create and read clinics, and the patient roster.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use companion_schema::ids::ClinicId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::account::model::parse_timezone;
use crate::app::AppState;
use crate::auth::extract::{Admin, Bearer, OrgAdmin, Staff};
use crate::clinic::input::{checked, parse_country, parse_name, parse_phone};
use crate::clinic::store::{ClinicChanges, ClinicRow, StaffRow};
use crate::clinic::use_cases::{self, RosterEntry, RosterSearch};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated};
use crate::safety::crisis::CrisisOverride;
use crate::time::utc;

/// A new clinic.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClinic {
    /// Name, 1 to 200 characters, no control characters.
    #[schema(
        example = "Lakeside Ketamine Clinic",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*$"
    )]
    pub name: String,
    /// The clinic's IANA time zone.
    #[schema(example = "America/Chicago")]
    pub timezone: String,
    /// ISO 3166-1 alpha-2 country; decides the crisis lines patients are shown (US, CA, GB, IE,
    /// AU and NZ have specific lines; elsewhere patients are shown the clinic's number, told to
    /// call their local emergency number and given an international directory). Left out: the
    /// country of `timezone` (America/Chicago: US), else that of each patient's zone.
    #[schema(example = "US")]
    pub country: Option<String>,
    /// The clinic's own number for patients in crisis, listed first.
    #[schema(
        example = "+1 312 555 0100",
        max_length = 32,
        pattern = r"^[0-9 +()-]*[0-9][0-9 +()-]*$"
    )]
    pub crisis_phone: Option<String>,
}

/// A clinic.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Clinic {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// ISO 3166-1 alpha-2 country.
    pub country: Option<String>,
    /// The clinic's own crisis number.
    pub crisis_phone: Option<String>,
    /// The clinic's own crisis resources, replacing its country's; null when it uses its
    /// country's.
    pub crisis_resources: Option<CrisisOverride>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<ClinicRow> for Clinic {
    fn from(row: ClinicRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            timezone: row.timezone,
            country: row.country,
            crisis_phone: row.crisis_phone,
            crisis_resources: row
                .crisis_resources
                .and_then(|text| serde_json::from_str(&text).ok()),
            created_at: utc(row.created_at),
        }
    }
}

/// A patient on the roster.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RosterPatient {
    /// The patient's account id.
    pub id: String,
    /// Display name, if given.
    pub display_name: Option<String>,
    /// The clinic's record number for the patient (MRN), if set.
    pub external_id: Option<String>,
    /// Email.
    pub email: String,
    /// IANA time zone.
    pub timezone: String,
    /// When the patient enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// Unresolved alerts.
    pub open_alerts: i64,
    /// The most severe unresolved alert (`urgent`, `high`, `medium`, `low`), or null.
    pub risk: Option<String>,
    /// How reliably the patient answers prompts (last 30 days).
    pub adherence: crate::prompt::adherence::Adherence,
    /// Where the patient stands with the clinic's consent document: `not_required` (the clinic
    /// has none), `accepted` (the version in force), `earlier_version` (has not answered the
    /// version in force; still prompted under the earlier acceptance), `declined`, `withdrawn`
    /// or `not_given` (the last three are not prompted).
    #[schema(example = "accepted")]
    pub consent: String,
}

impl From<RosterEntry> for RosterPatient {
    fn from(entry: RosterEntry) -> Self {
        let row = entry.row;
        Self {
            id: row.id,
            display_name: row.display_name,
            external_id: row.external_id,
            email: row.email,
            timezone: row.timezone,
            enrolled_at: utc(row.created_at),
            disabled: row.disabled_at.is_some(),
            open_alerts: entry.open_alerts,
            risk: entry.risk,
            adherence: entry.adherence,
            consent: entry.consent.as_str().to_owned(),
        }
    }
}

/// Create a clinic
#[utoipa::path(
    post,
    path = "/v1/clinics",
    tag = "clinics",
    operation_id = "create_clinic",
    security(("bearer" = [])),
    request_body = CreateClinic,
    responses(
        (status = 201, description = "Created", body = Clinic),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an organisation admin", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_clinic(
    State(state): State<AppState>,
    admin: OrgAdmin,
    ApiJson(body): ApiJson<CreateClinic>,
) -> ApiResult<(StatusCode, Json<Clinic>)> {
    let mut problems = std::collections::BTreeMap::new();
    let name = checked(&mut problems, "name", parse_name(&body.name));
    let timezone = checked(&mut problems, "timezone", parse_timezone(&body.timezone));
    let country = body
        .country
        .as_deref()
        .and_then(|c| checked(&mut problems, "country", parse_country(c, &state.zones)));
    let crisis_phone = body
        .crisis_phone
        .as_deref()
        .and_then(|p| checked(&mut problems, "crisis_phone", parse_phone(p)));
    let (Some(name), Some(timezone)) = (name, timezone) else {
        return Err(ApiError::validation(problems));
    };
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let now = state.now().naive_utc();
    let row = ClinicRow {
        id: ClinicId::generate().into_string(),
        name,
        timezone: timezone.name().to_owned(),
        created_at: now,
        country,
        crisis_phone,
        crisis_resources: None,
    };
    let row = state
        .write_as(admin, move |conn, caller| {
            use_cases::create(conn, caller, row)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// List clinics
///
/// Organisation admins see every clinic; staff see their own.
#[utoipa::path(
    get,
    path = "/v1/clinics",
    tag = "clinics",
    operation_id = "list_clinics",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of clinics", body = Paginated<Clinic>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Patients cannot list clinics", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_clinics(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<Clinic>>> {
    let page = params.parse()?;
    let (after, limit) = (page.after.clone(), i64::from(page.limit) + 1);
    let rows = state
        .read_as(bearer, move |conn, caller| {
            use_cases::list(conn, caller, after.as_deref(), limit)
        })
        .await?;
    let rows: Vec<Clinic> = rows.into_iter().map(Clinic::from).collect();
    Ok(Json(Paginated::from_rows(rows, &page, |c| c.id.clone())))
}

/// Get a clinic
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}",
    tag = "clinics",
    operation_id = "get_clinic",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The clinic", body = Clinic),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Patients cannot read clinics", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_clinic(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<Clinic>> {
    state
        .read_as(bearer, move |conn, caller| {
            use_cases::get(conn, caller, &clinic_id)
        })
        .await
        .map(|row| Json(row.into()))
}

/// Reads a field that may be absent (leave as is), null (clear) or a value (set).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a clinic; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClinic {
    /// Name, 1 to 200 characters.
    #[schema(
        example = "Lakeside Ketamine Clinic",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*$"
    )]
    pub name: Option<String>,
    /// IANA time zone.
    #[schema(example = "America/Chicago")]
    pub timezone: Option<String>,
    /// ISO 3166-1 alpha-2 country; null clears it (the zone's country is used).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "US")]
    pub country: Option<Option<String>>,
    /// The clinic's own crisis number, listed first; null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "+1 312 555 0100", max_length = 32, pattern = r"^[0-9 +()-]*[0-9][0-9 +()-]*$")]
    pub crisis_phone: Option<Option<String>>,
    /// The clinic's own crisis resources, replacing (not adding to) its country's; null returns
    /// to its country's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CrisisOverride>)]
    pub crisis_resources: Option<Option<CrisisOverride>>,
}

/// Change a clinic
///
/// Clinic admins of the clinic, and organisation admins. Name, zone, country, crisis number, and
/// the crisis resources its patients are shown on a safety answer (the clinic's own list
/// replaces its country's).
#[utoipa::path(
    patch,
    path = "/v1/clinics/{clinic_id}",
    tag = "clinics",
    operation_id = "update_clinic",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = UpdateClinic,
    responses(
        (status = 200, description = "The clinic as changed", body = Clinic),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an admin of the clinic", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn update_clinic(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<UpdateClinic>,
) -> ApiResult<Json<Clinic>> {
    let mut problems = std::collections::BTreeMap::new();
    let mut changes = ClinicChanges {
        name: body
            .name
            .as_deref()
            .and_then(|n| checked(&mut problems, "name", parse_name(n))),
        timezone: body.timezone.as_deref().and_then(|t| {
            checked(&mut problems, "timezone", parse_timezone(t)).map(|tz| tz.name().to_owned())
        }),
        ..ClinicChanges::default()
    };
    if let Some(country) = &body.country {
        changes.country = Some(
            country
                .as_deref()
                .and_then(|c| checked(&mut problems, "country", parse_country(c, &state.zones))),
        );
    }
    if let Some(phone) = &body.crisis_phone {
        changes.crisis_phone = Some(
            phone
                .as_deref()
                .and_then(|p| checked(&mut problems, "crisis_phone", parse_phone(p))),
        );
    }
    if let Some(own) = &body.crisis_resources {
        if let Some(own) = own {
            problems.extend(own.problems());
        }
        changes.crisis_resources = Some(
            own.as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| ApiError::internal(&e))?,
        );
    }
    let now = state.now();
    state
        .write_as(bearer, move |conn, caller| {
            use_cases::update(conn, caller, &clinic_id, changes, problems, now)
        })
        .await
        .map(|row| Json(row.into()))
}

/// Roster search and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RosterParams {
    /// Only patients whose display name or external id contains this text (case-insensitive),
    /// 1 to 100 characters.
    #[param(min_length = 1, max_length = 100)]
    pub q: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// List a clinic's patients, most at risk first
///
/// Patients with an unresolved urgent alert come first, then high, medium and low, then the rest;
/// within a level, in enrolment order. `q` narrows the list to patients whose display name or
/// external id contains it. Every read is recorded in the audit trail.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/patients",
    tag = "clinics",
    operation_id = "list_clinic_patients",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic"), RosterParams),
    responses(
        (status = 200, description = "A page of the roster", body = Paginated<RosterPatient>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_clinic_patients(
    State(state): State<AppState>,
    staff: Staff,
    Path(clinic_id): Path<String>,
    ApiQuery(params): ApiQuery<RosterParams>,
) -> ApiResult<Json<Paginated<RosterPatient>>> {
    let search = params
        .q
        .as_deref()
        .map(RosterSearch::parse)
        .transpose()
        .map_err(|problem| ApiError::invalid_field("q", problem))?;
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .parse()?;
    // The cursor is "rank|id" of the last patient shown.
    let after = match &page.after {
        None => None,
        Some(key) => Some(
            key.split_once('|')
                .and_then(|(rank, id)| Some((rank.parse::<u8>().ok()?, id.to_owned())))
                .ok_or_else(|| {
                    ApiError::invalid_field("cursor", "not a cursor returned by this list")
                })?,
        ),
    };
    let (limit, now) = (page.limit as usize, state.now());
    let entries = state
        .read_as(staff, move |conn, caller| {
            use_cases::roster(
                conn,
                caller,
                &clinic_id,
                search.as_ref(),
                after.as_ref(),
                limit,
                now,
            )
        })
        .await?;
    let ranks: std::collections::HashMap<String, u8> =
        entries.iter().map(|e| (e.row.id.clone(), e.rank)).collect();
    let items: Vec<RosterPatient> = entries.into_iter().map(RosterPatient::from).collect();
    Ok(Json(Paginated::from_rows(items, &page, |p| {
        format!("{}|{}", ranks.get(&p.id).copied().unwrap_or(0), p.id)
    })))
}

/// A member of a clinic's staff.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StaffMember {
    /// Account id.
    pub id: String,
    /// `clinician` or `clinic_admin`.
    pub role: crate::account::model::Role,
    /// Email.
    pub email: String,
    /// Display name, if given.
    pub display_name: Option<String>,
    /// IANA time zone.
    pub timezone: String,
    /// On call (first tier for urgent alerts).
    pub on_call: bool,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

impl StaffMember {
    fn from_row(row: StaffRow) -> ApiResult<Self> {
        Ok(Self {
            role: crate::account::model::Role::parse(&row.role)
                .ok_or_else(|| ApiError::internal(&"stored role is not a known role"))?,
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            timezone: row.timezone,
            on_call: row.on_call,
            disabled: row.disabled_at.is_some(),
            joined_at: utc(row.created_at),
        })
    }
}

/// List a clinic's staff
///
/// Clinicians and clinic admins, disabled ones included, in the order they joined. Clinic admins
/// of the clinic and organisation admins.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/staff",
    tag = "clinics",
    operation_id = "list_clinic_staff",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic"), PageParams),
    responses(
        (status = 200, description = "A page of the staff", body = Paginated<StaffMember>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_clinic_staff(
    State(state): State<AppState>,
    admin: Admin,
    Path(clinic_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<StaffMember>>> {
    let page = params.parse()?;
    let (after, limit) = (page.after.clone(), i64::from(page.limit) + 1);
    let now = state.now();
    let rows = state
        .read_as(admin, move |conn, caller| {
            use_cases::staff(conn, caller, &clinic_id, after.as_deref(), limit, now)
        })
        .await?;
    let items = rows
        .into_iter()
        .map(StaffMember::from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Paginated::from_rows(items, &page, |m| m.id.clone())))
}
