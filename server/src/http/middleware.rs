//! The middleware stack around every route: request ids, a request span and one log line per
//! request (method, route template, status, latency: never bodies, queries or headers), a
//! request timeout, the body size limit (a declared length over it answered before the body is
//! read), a deadline for the body to arrive, CORS, panics turned into our 500 body, and the
//! security headers of every answer.

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
    let body_timeout = config.connections.body_timeout;
    let max_body_bytes = config.max_body_bytes;
    let hsts = config.public_url.is_https();
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            with_body_deadline(req, next, body_timeout)
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            refuse_declared_oversize(req, next, max_body_bytes)
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            with_timeout(req, next, timeout)
        }))
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::internal(&"a request handler panicked").into_response()
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            log_request(req, next, metrics.clone())
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            security_headers(req, next, hsts)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .layer(middleware::from_fn(drop_unusable_request_id));
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

/// A request whose declared `Content-Length` is over the limit is answered 413 at once, before
/// any of its body is read or any handler runs; the connection is then closed (the server's
/// lingering close lets the client finish sending and read the answer rather than a reset). Any
/// other 413 or 408 also closes the connection, since the rest of that body is never read.
async fn refuse_declared_oversize(req: Request, next: Next, max_body_bytes: usize) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let closes = req.version() <= axum::http::Version::HTTP_11;
    let mut response = match declared {
        Some(length) if length > max_body_bytes as u64 => payload_too_large(max_body_bytes),
        _ => next.run(req).await,
    };
    if closes
        && matches!(
            response.status(),
            axum::http::StatusCode::PAYLOAD_TOO_LARGE | axum::http::StatusCode::REQUEST_TIMEOUT
        )
    {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn payload_too_large(max_body_bytes: usize) -> Response {
    ApiError::with_status(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The request body is larger than {max_body_bytes} bytes."),
    )
    .into_response()
}

/// The body must arrive within `timeout` of the headers (`COMPANION_BODY_TIMEOUT`): a client
/// that trickles it is answered 408 and its connection closed, instead of holding a connection
/// and a request slot for as long as it likes.
async fn with_body_deadline(req: Request, next: Next, timeout: Duration) -> Response {
    use http_body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = expired.clone();
    let req = req.map(|body| axum::body::Body::new(DeadlineBody::new(body, timeout, flag)));
    let response = next.run(req).await;
    if expired.load(std::sync::atomic::Ordering::Relaxed) {
        return ApiError::with_status(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "The request body did not arrive within {} seconds.",
                timeout.as_secs()
            ),
        )
        .into_response();
    }
    response
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

/// A request body that fails once its deadline passes, setting `expired` so that the answer is
/// a 408 whatever the handler made of the failed read.
struct DeadlineBody {
    inner: axum::body::Body,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    expired: Arc<std::sync::atomic::AtomicBool>,
}

impl DeadlineBody {
    fn new(
        inner: axum::body::Body,
        timeout: Duration,
        expired: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
    // A refusal while the database is down is summarised by the database layer; a warning per
    // request would bury everything else in the log (tens of thousands of lines a minute).
    let summarised = response
        .extensions()
        .get::<crate::error::DatabaseUnavailable>()
        .is_some();
    span.in_scope(|| {
        if status >= 500 && !summarised {
            tracing::warn!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    response
}

/// The longest request id a client may choose.
pub const MAX_REQUEST_ID: usize = 64;

/// Whether a client's `X-Request-Id` may be kept: 1 to [`MAX_REQUEST_ID`] characters of letters,
/// digits, `-`, `_`, `.` and `:` (a UUID, a trace id), since it is logged and written into audit
/// rows.
pub fn usable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes a client's `X-Request-Id` that is not [`usable_request_id`] (more than one counts as
/// unusable), so that the request gets a fresh one instead.
async fn drop_unusable_request_id(mut req: Request, next: Next) -> Response {
    let values: Vec<&HeaderValue> = req.headers().get_all(REQUEST_ID_HEADER).iter().collect();
    let keep = values.len() == 1 && usable_request_id(values[0].as_bytes());
    if !keep && !values.is_empty() {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(req).await
}

/// The content security policy of the documentation page: its own scripts, styles (Swagger UI
/// sets some inline), images and the document it fetches; nothing else, and never in a frame.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The policy of every other non-HTML answer (JSON, FHIR, ndjson): nothing is loaded from it and
/// it is never framed, should a browser be led to render it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Paths whose answers may carry patient data (or tokens): never stored by a browser or proxy
/// unless the handler says otherwise (crisis resources are meant to be kept for offline use).
fn carries_private_data(path: &str) -> bool {
    ["/v1/", "/fhir/", "/oauth/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// Adds the headers every answer carries, keeping any a route set itself (the console sets its
/// own policy): `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY`, a content security policy (the documentation page's own, or one that
/// allows nothing), `Cache-Control: no-store` on the API, FHIR and OAuth routes, and
/// `Strict-Transport-Security` when the installation is reached over https.
async fn security_headers(req: Request, next: Next, hsts: bool) -> Response {
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    let docs = path == "/docs" || path.starts_with("/docs/");
    set(
        header::CONTENT_SECURITY_POLICY,
        if docs { DOCS_CSP } else { API_CSP },
    );
    if carries_private_data(&path) {
        set(header::CACHE_CONTROL, "no-store");
    }
    if hsts {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
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
