//! The middleware stack around every route: request ids, a request span and one log line per
//! request (method, route template, status, latency: never bodies, queries or headers), a
//! request timeout, the body size limit, CORS, and panics turned into our 500 body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The header carrying the request id (set here when the client sent none).
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in the stack; the outermost layer is listed last.
pub fn apply<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    config: &Config,
    metrics: Arc<Metrics>,
) -> Router<S> {
    let timeout = config.request_timeout;
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            with_timeout(req, next, timeout)
        }))
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::internal(&"a request handler panicked").into_response()
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            log_request(req, next, metrics.clone())
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid));
    match cors(&config.cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                REQUEST_ID_HEADER,
            ])
            .expose_headers([REQUEST_ID_HEADER, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

async fn with_timeout(req: Request, next: Next, timeout: Duration) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::with_status(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            "The request took too long; try again.",
        )
        .into_response(),
    }
}

async fn log_request(req: Request, next: Next, metrics: Arc<Metrics>) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("request", %method, %route, %request_id);
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    // Known methods only, so that odd requests cannot multiply the label sets.
    let method_label = match method.as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    };
    metrics.request(method_label, &route, status, elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    response
}

async fn not_found() -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "No such endpoint.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not accept that method.",
    )
}
