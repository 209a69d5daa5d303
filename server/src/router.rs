//! The HTTP service: every documented route, the API reference, the console, FHIR, the patient
//! app and the middleware stack around them; and the operations endpoints a worker serves alone.

use axum::Router;

use crate::app::AppState;

/// The complete HTTP service: every documented route plus `/openapi.json`, `/docs`, the
/// care-team console's HTML pages (`/console`, not API operations), the patient web app
/// (`/app`) and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (api, generated) = crate::openapi::api_router().split_for_parts();
    let docs = crate::openapi::docs_router(crate::openapi::exact(generated));
    // FHIR answers FHIR's contract (its CapabilityStatement), and the console is HTML: neither is
    // part of the OpenAPI document.
    let router = api
        .merge(docs)
        .merge(crate::console::router())
        .merge(crate::fhir::router())
        .merge(crate::patient_app::router());
    let metrics = state.metrics.clone();
    crate::http::middleware::apply(router, &state.config, metrics).with_state(state)
}

/// The operations endpoints alone (`/health/live`, `/health/ready`, `/metrics`): what a worker
/// process serves on `COMPANION_WORKER_ADDR`.
pub fn operations_router(state: AppState) -> Router {
    use axum::routing::get;
    Router::new()
        .route("/health/live", get(crate::health::get_liveness))
        .route("/health/ready", get(crate::health::get_readiness))
        .route("/metrics", get(crate::health::get_metrics))
        .with_state(state)
}
