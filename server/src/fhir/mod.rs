//! FHIR R4 (read and search, `application/fhir+json`) over the same use cases and stores as the
//! JSON API: instruments as Questionnaires, check-ins as QuestionnaireResponses and the
//! Observations derived from them, patients, clinics as Organizations, and alerts as a Flag and
//! a Task.
//!
//! The FHIR routes are a router of their own, merged in `app.rs`, and not part of the OpenAPI
//! document: their contract is FHIR's, published by `GET /fhir/r4/metadata` (the
//! CapabilityStatement lists exactly the types, interactions and search parameters served), and
//! their bodies are FHIR resources whose schema is the FHIR specification, not ours. Putting
//! them in the OpenAPI document would describe every resource as an untyped object and their
//! errors as our JSON error body, which they are not (they answer OperationOutcomes).
//!
//! The same goes for `/.well-known/smart-configuration`, `/oauth/token` (RFC 6749 bodies) and the
//! Bulk Data routes (the Bulk Data IG's contract); only the JSON API's registration of system
//! clients (`POST /v1/clinics/{clinic_id}/system-clients`) is in the OpenAPI document.
//!
//! `resources` (pure mapping, unit-tested), `search` (pure parameter parsing) and `smart` (scopes
//! and assertion checks) hold the rules; `store` the clinic-wide queries; `use_cases` scoping and
//! auditing; `clients` system clients and their tokens; `bulk` the export, its job and files;
//! `handlers` the HTTP. The export job is registered with one line in `jobs::runner`.

pub mod bulk;
pub mod clients;
pub mod handlers;
pub mod resources;
pub mod search;
pub mod smart;
mod store;
pub mod use_cases;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// The FHIR routes, merged into the application's router in `app.rs`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/r4/metadata", get(handlers::metadata))
        .route("/fhir/r4/{resource}", get(handlers::search_resources))
        .route("/fhir/r4/{resource}/{id}", get(handlers::read_resource))
        .route(
            "/.well-known/smart-configuration",
            get(handlers::smart_configuration),
        )
        .route("/oauth/token", axum::routing::post(handlers::token))
        .route("/fhir/r4/Patient/$export", get(handlers::export_patients))
        .route(
            "/fhir/r4/Group/{group}/$export",
            get(handlers::export_group),
        )
        .route(
            "/fhir/bulk/{export_id}",
            get(handlers::export_status).delete(handlers::cancel_export),
        )
        .route("/fhir/bulk/{export_id}/{file}", get(handlers::export_file))
}
