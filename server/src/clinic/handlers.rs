//! `/v1/clinics`: create and read clinics, and the patient roster.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use companion_schema::ids::ClinicId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account::model::{Role, parse_timezone};
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::{Caller, OrgAdmin, Staff};
use crate::clinic::store::{self, ClinicChanges, ClinicRow, RosterRow};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated};
use crate::safety::crisis::CrisisOverride;
use crate::time::utc;

/// A new clinic.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClinic {
    /// Name, 1 to 200 characters.
    #[schema(example = "Lakeside Ketamine Clinic")]
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
    #[schema(example = "+1 312 555 0100")]
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
}

impl RosterPatient {
    fn new(row: RosterRow, open_alerts: i64, risk: Option<String>) -> Self {
        Self {
            id: row.id,
            display_name: row.display_name,
            email: row.email,
            timezone: row.timezone,
            enrolled_at: utc(row.created_at),
            disabled: row.disabled_at.is_some(),
            open_alerts,
            risk,
            adherence: crate::prompt::adherence::summarise(&[], None),
        }
    }
}

/// Sort rank of a severity: higher is more urgent.
fn risk_rank(severity: Option<&str>) -> u8 {
    match severity {
        Some("urgent") => 4,
        Some("high") => 3,
        Some("medium") => 2,
        Some("low") => 1,
        _ => 0,
    }
}

fn checked<T>(
    problems: &mut std::collections::BTreeMap<String, String>,
    field: &str,
    parsed: Result<T, &'static str>,
) -> Option<T> {
    parsed
        .map_err(|problem| problems.insert(field.to_owned(), problem.to_owned()))
        .ok()
}

fn parse_name(text: &str) -> Result<String, &'static str> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err("must be 1 to 200 printable characters");
    }
    Ok(name.to_owned())
}

fn parse_country(
    text: &str,
    zones: &crate::safety::zones::ZoneCountries,
) -> Result<String, &'static str> {
    let code = text.trim().to_ascii_uppercase();
    if code.len() == 2 && zones.is_country(&code) {
        Ok(code)
    } else {
        Err("must be an ISO 3166-1 alpha-2 code such as US")
    }
}

fn parse_phone(text: &str) -> Result<String, &'static str> {
    let phone = text.trim();
    if phone.is_empty()
        || phone.len() > 32
        || !phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c))
        || !phone.chars().any(|c| c.is_ascii_digit())
    {
        return Err("must be a phone number (digits, spaces, + - ( ))");
    }
    Ok(phone.to_owned())
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
    OrgAdmin(caller): OrgAdmin,
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
    let stored = row.clone();
    let entry = AuditEntry::by(&caller, "clinic.create", now).clinic(&row.id);
    state
        .db
        .write(move |conn| {
            store::insert(conn, &stored)?;
            audit::record(conn, &entry)
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
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<Clinic>>> {
    let page = params.parse()?;
    let only = match caller.role {
        Role::OrgAdmin => None,
        Role::ClinicAdmin | Role::Clinician => caller.clinic_id.as_ref().map(ToString::to_string),
        Role::Patient => return Err(ApiError::forbidden("Patients cannot list clinics.")),
    };
    let (after, limit) = (page.after.clone(), i64::from(page.limit) + 1);
    let rows = state
        .db
        .run(move |conn| store::list(conn, only.as_deref(), after.as_deref(), limit))
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
    caller: Caller,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<Clinic>> {
    let clinic_id = ClinicId::parse(&clinic_id).ok_or_else(|| ApiError::not_found("clinic"))?;
    match caller.role {
        Role::OrgAdmin => {}
        Role::Patient => return Err(ApiError::forbidden("Patients cannot read clinics.")),
        Role::ClinicAdmin | Role::Clinician => caller.ensure_staff_of(&clinic_id)?,
    }
    let id = clinic_id.to_string();
    state
        .db
        .run(move |conn| store::find(conn, &id))
        .await?
        .map(|row| Json(row.into()))
        .ok_or_else(|| ApiError::not_found("clinic"))
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
    #[schema(example = "Lakeside Ketamine Clinic", min_length = 1, max_length = 200)]
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
    #[schema(value_type = Option<String>, example = "+1 312 555 0100")]
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
    caller: Caller,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<UpdateClinic>,
) -> ApiResult<Json<Clinic>> {
    let clinic = ClinicId::parse(&clinic_id).ok_or_else(|| ApiError::not_found("clinic"))?;
    // Organisation admins set up clinics, so they may change any; clinic admins their own.
    match caller.role {
        Role::OrgAdmin => {}
        Role::Patient => return Err(ApiError::forbidden("Patients cannot change a clinic.")),
        Role::ClinicAdmin | Role::Clinician => {
            caller.ensure_admin_of(&clinic, "change the clinic")?
        }
    }
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
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let entry =
        AuditEntry::by(&caller, "clinic.update", state.now().naive_utc()).clinic(clinic.as_str());
    let id = clinic.to_string();
    state
        .db
        .write(move |conn| {
            if !store::update(conn, &id, &changes)? {
                return Ok(None);
            }
            audit::record(conn, &entry)?;
            store::find(conn, &id)
        })
        .await?
        .map(|row| Json(row.into()))
        .ok_or_else(|| ApiError::not_found("clinic"))
}

/// List a clinic's patients, most at risk first
///
/// Patients with an unresolved urgent alert come first, then high, medium and low, then the rest;
/// within a level, in enrolment order. Every read is recorded in the audit trail.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/patients",
    tag = "clinics",
    operation_id = "list_clinic_patients",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic"), PageParams),
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
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<RosterPatient>>> {
    let clinic_id = ClinicId::parse(&clinic_id).ok_or_else(|| ApiError::not_found("clinic"))?;
    caller.ensure_staff_of(&clinic_id)?;
    let page = params.parse()?;
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
    let entry = AuditEntry::by(&caller, "patient_roster.read", state.now().naive_utc())
        .clinic(clinic_id.as_str());
    let id = clinic_id.to_string();
    let (rows, open) = state
        .db
        .write(move |conn| {
            audit::record(conn, &entry)?;
            let rows = store::roster(conn, &id, None, i64::MAX)?;
            let open = store::open_alert_severities(conn, &id)?;
            Ok((rows, open))
        })
        .await?;
    let mut by_patient: std::collections::HashMap<String, (i64, Option<String>)> =
        std::collections::HashMap::new();
    for (patient, severity) in open {
        let entry = by_patient.entry(patient).or_insert((0, None));
        entry.0 += 1;
        if risk_rank(Some(&severity)) > risk_rank(entry.1.as_deref()) {
            entry.1 = Some(severity);
        }
    }
    let mut roster: Vec<(u8, RosterPatient)> = rows
        .into_iter()
        .map(|row| {
            let (count, risk) = by_patient.remove(&row.id).unwrap_or((0, None));
            (
                risk_rank(risk.as_deref()),
                RosterPatient::new(row, count, risk),
            )
        })
        .collect();
    roster.sort_by(|(ra, a), (rb, b)| rb.cmp(ra).then_with(|| a.id.cmp(&b.id)));
    let items: Vec<(u8, RosterPatient)> = roster
        .into_iter()
        .filter(|(rank, p)| match &after {
            None => true,
            Some((after_rank, after_id)) => {
                rank < after_rank || (rank == after_rank && &p.id > after_id)
            }
        })
        .take(page.limit as usize + 1)
        .collect();
    let ranks: std::collections::HashMap<String, u8> = items
        .iter()
        .map(|(rank, p)| (p.id.clone(), *rank))
        .collect();
    let mut items: Vec<RosterPatient> = items.into_iter().map(|(_, p)| p).collect();
    let ids = items.iter().map(|p| p.id.clone()).collect();
    let mut adherence = crate::prompt::handlers::adherence_of(&state, ids, state.now()).await?;
    for patient in &mut items {
        if let Some(a) = adherence.remove(&patient.id) {
            patient.adherence = a;
        }
    }
    Ok(Json(Paginated::from_rows(items, &page, |p| {
        format!("{}|{}", ranks.get(&p.id).copied().unwrap_or(0), p.id)
    })))
}
