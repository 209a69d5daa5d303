//! HTTP adapters for the FHIR routes: extract, call one use case, answer
//! `application/fhir+json`. Every failure, including a refused token, is an OperationOutcome.

use axum::Json;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::{Admin, Bearer, Caller, Staff};
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult, ErrorBody, Outcome};
use crate::fhir::clients::{self, TokenRequest};
use crate::fhir::resources::{self as res, Systems};
use crate::fhir::search::{self, ResourceType, SearchError};
use crate::fhir::use_cases::{self, Context};
use crate::fhir::{bulk, smart};
use crate::http::extract::{ApiJson, ApiQuery, request_id_of};
use crate::http::pagination::{PageParams, Paginated};

/// The media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

fn fhir(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// An OperationOutcome for an error of the JSON API's kind (same status and message).
pub fn outcome(error: &ApiError) -> Response {
    let status = error.status();
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::UNAUTHORIZED => "login",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::TOO_MANY_REQUESTS => "throttled",
        StatusCode::SERVICE_UNAVAILABLE => "transient",
        _ => "exception",
    };
    let mut response = fhir(status, &res::operation_outcome(code, error.message()));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(retry) = error.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    response
}

fn unsupported_type(name: &str) -> Response {
    let _ = name;
    fhir(
        StatusCode::NOT_FOUND,
        &res::operation_outcome(
            "not-supported",
            "This resource type is not served here; see /fhir/r4/metadata.",
        ),
    )
}

/// The installation's base URL (`COMPANION_PUBLIC_URL`): every absolute URL in a FHIR answer,
/// the SMART token endpoint and Bulk Data file URLs are built from it, never from the request's
/// `Host` or `X-Forwarded-Proto`, which a client controls.
fn base_url(state: &AppState) -> String {
    state.config.public_url.as_str().to_owned()
}

/// `GET /fhir/r4/metadata`: the CapabilityStatement (public, as FHIR expects).
pub async fn metadata(State(state): State<AppState>) -> Response {
    let systems = Systems::new(&base_url(&state));
    fhir(
        StatusCode::OK,
        &res::capability_statement(&systems, state.now().naive_utc()),
    )
}

/// `GET /fhir/r4/{type}/{id}`: one resource of the caller's clinic.
pub async fn read_resource(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    Path((type_name, id)): Path<(String, String)>,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let Some(resource) = ResourceType::parse(&type_name) else {
        return unsupported_type(&type_name);
    };
    let systems = Systems::new(&base_url(&state));
    let app = state.clone();
    let result = run_as(&state, access, resource, move |conn, caller| {
        let ctx = Context {
            systems: &systems,
            catalogue: &app.catalogue,
            now: app.now().naive_utc(),
        };
        use_cases::read(conn, caller, ctx, resource, &id)
    })
    .await;
    match result {
        Ok(body) => fhir(StatusCode::OK, &body),
        Err(error) => outcome(&error),
    }
}

/// `GET /fhir/r4/{type}?...`: a searchset Bundle with `self` and `next` links.
pub async fn search_resources(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let Some(resource) = ResourceType::parse(&type_name) else {
        return unsupported_type(&type_name);
    };
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(&query) {
        Ok(pairs) => pairs,
        Err(_) => {
            return outcome(&ApiError::bad_request(
                "invalid_query",
                "The query string cannot be read.",
            ));
        }
    };
    let parsed = match search::parse(resource, &pairs) {
        Ok(parsed) => parsed,
        Err(error) => {
            let code = match error {
                SearchError::Unknown(_) => "not-supported",
                SearchError::Repeated(_) | SearchError::Invalid(..) => "invalid",
            };
            return fhir(
                StatusCode::BAD_REQUEST,
                &res::operation_outcome(code, &error.to_string()),
            );
        }
    };
    let systems = Systems::new(&base_url(&state));
    let app = state.clone();
    let for_use_case = systems.clone();
    let result = run_as(&state, access, resource, move |conn, caller| {
        let ctx = Context {
            systems: &for_use_case,
            catalogue: &app.catalogue,
            now: app.now().naive_utc(),
        };
        use_cases::search(conn, caller, ctx, resource, &parsed)
    })
    .await;
    match result {
        Ok(found) => {
            let path = format!("{}/{}", systems.fhir_base(), resource.name());
            let self_url = if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            };
            let next_url = found
                .next_cursor
                .map(|cursor| format!("{path}?{}", search::with_cursor(&pairs, &cursor)));
            fhir(
                StatusCode::OK,
                &res::bundle(&systems, &self_url, next_url.as_deref(), found.resources),
            )
        }
        Err(error) => outcome(&error),
    }
}

/// Who may call a FHIR route: clinic staff with their access JWT, or a system client with a
/// token from `POST /oauth/token` (told apart by its prefix). Only the JWT is verified here; the
/// session, or the system token, is checked in the request's unit of work.
#[derive(Debug, Clone)]
pub enum FhirAccess {
    /// Clinic staff.
    Staff(Bearer),
    /// A system client's opaque token, and the request id.
    System(String, Option<String>),
}

impl FromRequestParts<AppState> for FhirAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let system = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| token.starts_with(clients::TOKEN_PREFIX))
            .map(str::to_owned);
        match system {
            Some(token) => Ok(FhirAccess::System(token, request_id_of(parts))),
            None => Staff::from_request_parts(parts, state)
                .await
                .map(|staff| FhirAccess::Staff(staff.into())),
        }
    }
}

/// Runs `work` as the caller `access` stands for, in one unit of work (reads only).
async fn run_as<T, F>(
    state: &AppState,
    access: FhirAccess,
    resource: impl Into<Option<ResourceType>>,
    work: F,
) -> ApiResult<T>
where
    F: FnOnce(&mut DbConnection, &Caller) -> Outcome<T> + Send + 'static,
    T: Send + 'static,
{
    match access {
        FhirAccess::Staff(bearer) => state.read_as(bearer, work).await,
        FhirAccess::System(token, request_id) => {
            let now = state.now();
            let resource = resource.into();
            Ok(state
                .db
                .run_or_refuse(move |conn| {
                    let caller = clients::system_caller(conn, &token, resource, now, request_id)?;
                    work(conn, &caller)
                })
                .await??)
        }
    }
}

/// `GET /.well-known/smart-configuration`: how a system client gets a token.
pub async fn smart_configuration(State(state): State<AppState>) -> Response {
    let base = base_url(&state);
    let body = json!({
        "token_endpoint": format!("{base}/oauth/token"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric"],
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// `POST /oauth/token`: client credentials with a signed JWT assertion (SMART Backend
/// Services). Errors are RFC 6749's: `{"error", "error_description"}`.
pub async fn token(
    State(state): State<AppState>,
    client: crate::http::extract::ClientAddr,
    body: axum::body::Bytes,
) -> Response {
    let now = state.now();
    if let Err(wait) = state.limits.token_per_client.check(&client.key(), now) {
        return too_many_token_requests(wait);
    }
    let request: TokenRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(request) => request,
        Err(_) => {
            return oauth_error(&clients::OAuthError {
                status: 400,
                error: "invalid_request",
                description: "The body must be a form (application/x-www-form-urlencoded)."
                    .to_owned(),
            });
        }
    };
    // Per client as well, by the id its assertion claims (before anything is verified, so that
    // guessing at one client's keys is slowed whichever address it comes from).
    if let Some(claimed) = request
        .client_assertion
        .as_deref()
        .and_then(|a| smart::claimed_client(a).ok())
        && let Err(wait) = state.limits.token_per_system_client.check(&claimed, now)
    {
        return too_many_token_requests(wait);
    }
    let token_url = format!("{}/oauth/token", base_url(&state));
    let result = state
        .db
        .write_or_refuse(move |conn| clients::issue_token(conn, &request, &token_url, now))
        .await;
    let mut response = match result {
        Ok(Ok(grant)) => (
            StatusCode::OK,
            Json(json!({
                "access_token": grant.access_token,
                "token_type": "bearer",
                "expires_in": grant.expires_in,
                "scope": grant.scope,
            })),
        )
            .into_response(),
        Ok(Err(error)) => oauth_error(&error),
        Err(error) => ApiError::from(error).into_response(),
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 429 in the token endpoint's error format, with `Retry-After`.
fn too_many_token_requests(wait: u64) -> Response {
    let mut response = oauth_error(&clients::OAuthError {
        status: 429,
        error: "temporarily_unavailable",
        description: format!("Too many token requests; try again in {wait} seconds."),
    });
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
    response
}

fn oauth_error(error: &clients::OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"error": error.error, "error_description": error.description})),
    )
        .into_response()
}

/// A system client to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSystemClient {
    /// A name for people: 1 to 100 characters, not only spaces, with no control, invisible or
    /// text-direction characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb][^\u0000-\u001f\u007f-\u009f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]*$"
    )]
    pub name: String,
    /// The client's public keys as a JWK Set (RSA keys for RS384, EC P-384 keys for ES384).
    #[schema(value_type = JwkSet)]
    pub jwks: Value,
    /// Space-separated scopes the client may ask for (`system/*.read` when absent; or e.g.
    /// `system/Observation.read system/Patient.read`).
    pub scope: Option<String>,
}

/// A registered system client.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemClient {
    /// The client id: `iss` and `sub` of its assertions.
    pub client_id: String,
    /// Its clinic.
    pub clinic_id: String,
    /// Its name.
    pub name: String,
    /// The scopes it may ask for.
    pub scope: String,
    /// Registered.
    pub created_at: DateTime<Utc>,
    /// False once disabled: no token is issued to it, and those it held have ended.
    pub active: bool,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When a token was last issued to it or used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When its keys were last replaced.
    pub keys_rotated_at: Option<DateTime<Utc>>,
}

impl From<clients::ClientRow> for SystemClient {
    fn from(row: clients::ClientRow) -> Self {
        SystemClient {
            client_id: row.id,
            clinic_id: row.clinic_id,
            name: row.name,
            scope: row.scope,
            created_at: crate::time::utc(row.created_at),
            active: row.disabled_at.is_none(),
            disabled_at: row.disabled_at.map(crate::time::utc),
            last_used_at: row.last_used_at.map(crate::time::utc),
            keys_rotated_at: row.keys_rotated_at.map(crate::time::utc),
        }
    }
}

/// A system client's new public keys.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemClientKeys {
    /// The client's public keys as a JWK Set (RSA keys for RS384, EC P-384 keys for ES384);
    /// they replace the keys it had.
    #[schema(value_type = JwkSet)]
    pub jwks: Value,
}

/// A JSON Web Key Set (RFC 7517) of public keys, as the document shows it: what each key must
/// hold (`kty`, `n` and `e` for RSA; `kty`, `crv` P-384, `x` and `y` for EC; never a private
/// part) is checked by the server.
#[derive(Debug, ToSchema)]
pub struct JwkSet {
    /// The keys.
    #[schema(min_items = 1)]
    pub keys: Vec<Jwk>,
}

/// A public JSON Web Key (RFC 7517): an RSA key (`n`, `e`) or an EC P-384 key (`crv`, `x`, `y`).
#[derive(Debug, ToSchema)]
pub struct Jwk {
    /// `RSA` or `EC`.
    #[schema(example = "EC")]
    pub kty: String,
    /// The key id assertions name in their header.
    #[schema(nullable = false)]
    pub kid: Option<String>,
    /// `RS384` or `ES384`.
    #[schema(nullable = false)]
    pub alg: Option<String>,
    /// `sig`.
    #[schema(rename = "use", nullable = false)]
    pub key_use: Option<String>,
    /// RSA modulus (base64url).
    #[schema(nullable = false)]
    pub n: Option<String>,
    /// RSA exponent (base64url).
    #[schema(nullable = false)]
    pub e: Option<String>,
    /// EC curve: `P-384`.
    #[schema(nullable = false)]
    pub crv: Option<String>,
    /// EC x coordinate (base64url).
    #[schema(nullable = false)]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[schema(nullable = false)]
    pub y: Option<String>,
}

/// A clinic's FHIR system clients
///
/// Every system client registered for the clinic, enabled or disabled, oldest first, with when
/// each was last used. Clinic admins of the clinic.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/system-clients",
    tag = "clinics",
    operation_id = "list_system_clients",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic"), PageParams),
    responses(
        (status = 200, description = "A page of system clients", body = Paginated<SystemClient>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_system_clients(
    State(state): State<AppState>,
    admin: Admin,
    Path(clinic_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<SystemClient>>> {
    let page = params.parse()?;
    let (after, limit) = (page.after.clone(), i64::from(page.limit) + 1);
    let now = state.now();
    let rows = state
        .read_as(admin, move |conn, caller| {
            clients::list(conn, caller, &clinic_id, after.as_deref(), limit, now)
        })
        .await?;
    let items = rows.into_iter().map(SystemClient::from).collect();
    Ok(Json(Paginated::from_rows(items, &page, |c| {
        c.client_id.clone()
    })))
}

/// Disable a FHIR system client
///
/// No token is issued to it any more and the tokens it holds stop working at once. Any clinic
/// admin of its clinic may disable it, whoever registered it.
#[utoipa::path(
    post,
    path = "/v1/system-clients/{client_id}/disable",
    tag = "clinics",
    operation_id = "disable_system_client",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The system client")),
    responses(
        (status = 200, description = "Disabled (also when it already was)", body = SystemClient),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such system client of the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn disable_system_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> ApiResult<Json<SystemClient>> {
    let now = state.now();
    let row = state
        .write_as(admin, move |conn, caller| {
            clients::disable(conn, caller, &client_id, now)
        })
        .await?;
    Ok(Json(row.into()))
}

/// Replace a FHIR system client's keys
///
/// Key rotation: the JWK Set given replaces the client's keys, assertions signed with the old
/// keys are refused from now on, and the tokens it holds stop working at once.
#[utoipa::path(
    put,
    path = "/v1/system-clients/{client_id}/jwks",
    tag = "clinics",
    operation_id = "rotate_system_client_keys",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The system client")),
    request_body = SystemClientKeys,
    responses(
        (status = 200, description = "The keys are replaced", body = SystemClient),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such system client of the caller's clinic", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid keys", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn rotate_system_client_keys(
    State(state): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
    ApiJson(body): ApiJson<SystemClientKeys>,
) -> ApiResult<Json<SystemClient>> {
    let now = state.now();
    let row = state
        .write_as(admin, move |conn, caller| {
            clients::rotate_keys(conn, caller, &client_id, &body.jwks, now)
        })
        .await?;
    Ok(Json(row.into()))
}

/// Register a FHIR system client
///
/// SMART Backend Services: the client signs assertions with a private key whose public half is
/// in `jwks`, and trades them at `POST /oauth/token` for short-lived tokens that read this
/// clinic's FHIR resources within `scope`.
#[utoipa::path(
    post,
    path = "/v1/clinics/{clinic_id}/system-clients",
    tag = "clinics",
    operation_id = "create_system_client",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = CreateSystemClient,
    responses(
        (status = 201, description = "Registered", body = SystemClient),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid name, keys or scope", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create_system_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<CreateSystemClient>,
) -> ApiResult<(StatusCode, Json<SystemClient>)> {
    let now = state.now();
    let row = state
        .write_as(admin, move |conn, caller| {
            clients::register(
                conn,
                caller,
                &clinic_id,
                &body.name,
                &body.jwks,
                body.scope.as_deref(),
                now,
            )
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

fn invalid(message: &str) -> Response {
    fhir(
        StatusCode::BAD_REQUEST,
        &res::operation_outcome("invalid", message),
    )
}

async fn kick_off(
    state: AppState,
    access: Result<FhirAccess, ApiError>,
    group: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let prefers_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "respond-async"));
    if !prefers_async {
        return invalid("A Bulk Data kick-off needs the header Prefer: respond-async.");
    }
    let pairs: Vec<(String, String)> =
        match serde_urlencoded::from_str(query.as_deref().unwrap_or_default()) {
            Ok(pairs) => pairs,
            Err(_) => return invalid("The query string cannot be read."),
        };
    let (mut types, mut since) = (None, None);
    for (name, value) in &pairs {
        match name.as_str() {
            "_type" if types.is_none() => types = Some(value.clone()),
            "_since" if since.is_none() => match DateTime::parse_from_rfc3339(value) {
                Ok(at) => since = Some(at.with_timezone(&Utc).naive_utc()),
                Err(_) => return invalid("_since must be an RFC 3339 instant."),
            },
            "_outputFormat"
                if matches!(
                    value.as_str(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) => {}
            _ => {
                return fhir(
                    StatusCode::BAD_REQUEST,
                    &res::operation_outcome(
                        "not-supported",
                        &format!("Unsupported or repeated export parameter '{name}'."),
                    ),
                );
            }
        }
    }
    let types = match bulk::parse_types(types.as_deref()) {
        Ok(types) => types,
        Err(problem) => return invalid(&problem),
    };
    let base = base_url(&state);
    let path = match &group {
        Some(id) => format!("{base}/fhir/r4/Group/{id}/$export"),
        None => format!("{base}/fhir/r4/Patient/$export"),
    };
    let request = match query.as_deref() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    let ask = bulk::KickOff {
        group,
        types: types.clone(),
        since,
        request,
        base_url: base.clone(),
    };
    let now = state.now();
    let result = match access {
        FhirAccess::Staff(bearer) => {
            state
                .write_as(bearer, move |conn, caller| {
                    bulk::kick_off(conn, caller, ask, now)
                })
                .await
        }
        FhirAccess::System(token, request_id) => {
            let result = state
                .db
                .write_or_refuse(move |conn| {
                    let caller = clients::system_caller(conn, &token, None, now, request_id)?;
                    let scopes = clients::scope_of_token(conn, &token)?;
                    if let Some(missing) = types.iter().find(|t| !smart::allows(&scopes, **t)) {
                        return Err(crate::error::Refusal::forbidden_because(
                            "insufficient_scope",
                            format!("The token's scopes do not cover {}.", missing.name()),
                        )
                        .into());
                    }
                    bulk::kick_off(conn, &caller, ask, now)
                })
                .await;
            match result {
                Ok(Ok(row)) => Ok(row),
                Ok(Err(refused)) => Err(ApiError::from(refused)),
                Err(error) => Err(ApiError::from(error)),
            }
        }
    };
    match result {
        Ok(row) => {
            state.jobs_enqueued();
            let mut response = StatusCode::ACCEPTED.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("{base}/fhir/bulk/{}", row.id)) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LOCATION, location);
            }
            response
        }
        Err(error) => outcome(&error),
    }
}

/// `GET /fhir/r4/Group/{clinic_id}/$export`: Bulk Data kick-off for a clinic's patients.
pub async fn export_group(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    Path(group): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    kick_off(state, access, Some(group), query, headers).await
}

/// `GET /fhir/r4/Patient/$export`: Bulk Data kick-off for every patient of the caller's clinic.
pub async fn export_patients(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    kick_off(state, access, None, query, headers).await
}

/// `GET /fhir/bulk/{export_id}`: 202 with `X-Progress` while running, then the manifest.
pub async fn export_status(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let (now, dir) = (state.now(), state.config.data_dir.clone());
    let result = run_as(&state, access, None, move |conn, caller| {
        bulk::status(conn, caller, &id, now, &dir)
    })
    .await;
    match result {
        Ok(bulk::Status::InProgress(done, total)) => {
            let mut response = StatusCode::ACCEPTED.into_response();
            let headers = response.headers_mut();
            if let Ok(progress) =
                HeaderValue::from_str(&format!("{done} of {total} resource types written"))
            {
                headers.insert("x-progress", progress);
            }
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            response
        }
        Ok(bulk::Status::Done(manifest)) => (StatusCode::OK, Json(manifest)).into_response(),
        Ok(bulk::Status::Failed) => fhir(
            StatusCode::INTERNAL_SERVER_ERROR,
            &res::operation_outcome("exception", "The export failed; start a new one."),
        ),
        Err(error) => outcome(&error),
    }
}

/// `DELETE /fhir/bulk/{export_id}`: cancels the export and deletes its files.
pub async fn cancel_export(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let (now, dir) = (state.now(), state.config.data_dir.clone());
    let bearer = match access {
        FhirAccess::Staff(bearer) => bearer,
        FhirAccess::System(..) => {
            let result = run_as(&state, access, None, move |conn, caller| {
                bulk::cancel(conn, caller, &id, now, &dir)
            })
            .await;
            return match result {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(error) => outcome(&error),
            };
        }
    };
    match state
        .write_as(bearer, move |conn, caller| {
            bulk::cancel(conn, caller, &id, now, &dir)
        })
        .await
    {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => outcome(&error),
    }
}

/// `GET /fhir/bulk/{export_id}/{Type}.ndjson`: one file of a completed export, streamed.
pub async fn export_file(
    State(state): State<AppState>,
    access: Result<FhirAccess, ApiError>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let Some(resource) = file.strip_suffix(".ndjson").and_then(ResourceType::parse) else {
        return outcome(&ApiError::not_found("file"));
    };
    let (now, dir) = (state.now(), state.config.data_dir.clone());
    let result = run_as(&state, access, resource, move |conn, caller| {
        bulk::file(conn, caller, &id, resource, now, &dir)
    })
    .await;
    let path = match result {
        Ok(path) => path,
        Err(error) => return outcome(&error),
    };
    match std::fs::File::open(&path) {
        Ok(file) => {
            let body = axum::body::Body::from_stream(FileChunks::read(file));
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+ndjson"),
            );
            response
        }
        Err(_) => outcome(&ApiError::not_found("file")),
    }
}

/// A file streamed in 64 KiB chunks read on the blocking pool (constant memory, whatever its
/// size).
struct FileChunks(tokio::sync::mpsc::Receiver<std::io::Result<axum::body::Bytes>>);

impl FileChunks {
    fn read(mut file: std::fs::File) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let chunk = match file.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(n) => Ok(axum::body::Bytes::copy_from_slice(&buffer[..n])),
                    Err(error) => Err(error),
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        Self(rx)
    }
}

impl futures_core::Stream for FileChunks {
    type Item = std::io::Result<axum::body::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
