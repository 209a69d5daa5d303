//! HTTP adapters for the FHIR routes: extract, call one use case, answer
//! `application/fhir+json`. Every failure, including a refused token, is an OperationOutcome.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::extract::Staff;
use crate::error::ApiError;
use crate::fhir::resources::{self as res, Systems};
use crate::fhir::search::{self, ResourceType, SearchError};
use crate::fhir::use_cases::{self, Context};

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

/// The installation's base URL: scheme and host of the request (a proxy's
/// `X-Forwarded-Proto` says whether it is https). Hosts with anything but host characters are
/// ignored, so a forged header cannot inject into the URLs we emit.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// `GET /fhir/r4/metadata`: the CapabilityStatement (public, as FHIR expects).
pub async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let systems = Systems::new(&base_url(&headers));
    fhir(
        StatusCode::OK,
        &res::capability_statement(&systems, state.now().naive_utc()),
    )
}

/// `GET /fhir/r4/{type}/{id}`: one resource of the caller's clinic.
pub async fn read_resource(
    State(state): State<AppState>,
    access: Result<Staff, ApiError>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let access = match access {
        Ok(access) => access,
        Err(error) => return outcome(&error),
    };
    let Some(resource) = ResourceType::parse(&type_name) else {
        return unsupported_type(&type_name);
    };
    let systems = Systems::new(&base_url(&headers));
    let app = state.clone();
    let result = state
        .read_as(access, move |conn, caller| {
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
    access: Result<Staff, ApiError>,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
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
    let systems = Systems::new(&base_url(&headers));
    let app = state.clone();
    let for_use_case = systems.clone();
    let result = state
        .read_as(access, move |conn, caller| {
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
