//! The patient web app: an installable, offline-first Progressive Web App served under `/app`
//! by the same binary, its files embedded like the console's. It is a client of the public JSON
//! API only (no routes of its own beyond its files), so it also proves that the API is enough
//! to build a patient app on.
//!
//! Caching: the page (`/app/`), the service worker and the manifest are revalidated on every
//! load (`no-cache` with an `ETag` of the build's version); every other file lives under
//! `/app/v/<version>/`, a path that changes whenever any file changes, so it is cached for a
//! year. Answers are compressed (gzip or brotli, as the browser asks) and carry a strict
//! content security policy: the app's own origin only, no inline script or style, no eval.

pub mod qr;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use crate::app::AppState;
use crate::error::ApiError;

/// The content security policy of every `/app` answer.
pub const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// The files under `/app/v/<version>/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_bytes!("assets/api.js"),
    },
    Asset {
        name: "store.js",
        content_type: JS,
        body: include_bytes!("assets/store.js"),
    },
    Asset {
        name: "views.js",
        content_type: JS,
        body: include_bytes!("assets/views.js"),
    },
    Asset {
        name: "checkin.js",
        content_type: JS,
        body: include_bytes!("assets/checkin.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
    Asset {
        name: "icon-192.png",
        content_type: "image/png",
        body: include_bytes!("assets/icon-192.png"),
    },
    Asset {
        name: "icon-512.png",
        content_type: "image/png",
        body: include_bytes!("assets/icon-512.png"),
    },
    Asset {
        name: "icon-maskable-512.png",
        content_type: "image/png",
        body: include_bytes!("assets/icon-maskable-512.png"),
    },
];

const INDEX: &str = include_str!("assets/index.html");
const SERVICE_WORKER: &str = include_str!("assets/sw.js");
const MANIFEST: &str = include_str!("assets/manifest.webmanifest");

/// The build's version: the first 12 hex digits of a SHA-256 over every file of the app.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for part in [INDEX, SERVICE_WORKER, MANIFEST] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for asset in ASSETS {
        hash.update(asset.name.as_bytes());
        hash.update(asset.body);
        hash.update([0]);
    }
    hex::encode(hash.finalize())[..12].to_owned()
});

/// The page, the service worker and the manifest with the version filled in (`{{VERSION}}`,
/// and the list of versioned files the service worker keeps, `{{ASSETS}}`).
static RENDERED: LazyLock<[String; 3]> = LazyLock::new(|| {
    let version = VERSION.as_str();
    let files = ASSETS
        .iter()
        .map(|a| format!("\"/app/v/{version}/{}\"", a.name))
        .collect::<Vec<_>>()
        .join(", ");
    [INDEX, SERVICE_WORKER, MANIFEST].map(|text| {
        text.replace("{{VERSION}}", version)
            .replace("{{ASSETS}}", &files)
    })
});

fn etag() -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", VERSION.as_str()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"app\""))
}

/// A file revalidated on every load: 304 when the browser already holds this version.
fn revalidated(headers: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    let tag = etag();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::ETAG, tag);
    response
}

async fn index(headers: HeaderMap) -> Response {
    revalidated(&headers, "text/html; charset=utf-8", &RENDERED[0])
}

async fn service_worker(headers: HeaderMap) -> Response {
    let mut response = revalidated(&headers, JS, &RENDERED[1]);
    response.headers_mut().insert(
        HeaderName::from_static("service-worker-allowed"),
        HeaderValue::from_static("/app/"),
    );
    response
}

use axum::http::HeaderName;

async fn manifest(headers: HeaderMap) -> Response {
    revalidated(&headers, "application/manifest+json", &RENDERED[2])
}

/// A versioned file. An older version's URL gets today's file, revalidated rather than kept,
/// so a page open across an upgrade still loads.
async fn versioned(Path((version, name)): Path<(String, String)>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::with_status(StatusCode::NOT_FOUND, "not_found", "No such file.")
            .into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if version == *VERSION {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response
}

/// Puts the app's content security policy on every `/app` answer (the stack's default policy
/// allows nothing, which suits the API but not a page).
async fn app_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(APP_CSP),
    );
    response
}

/// The app's routes, merged into the service by `router::router`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(index))
        .route("/app/index.html", get(index))
        .route("/app/sw.js", get(service_worker))
        .route("/app/manifest.webmanifest", get(manifest))
        .route("/app/v/{version}/{name}", get(versioned))
        .layer(axum::middleware::from_fn(app_headers))
        .layer(CompressionLayer::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_and_worker_name_is_embedded() {
        let [index, worker, manifest] = &*RENDERED;
        for text in [index, worker, manifest] {
            assert!(!text.contains("{{"), "a placeholder is left");
            let prefix = format!("/app/v/{}/", VERSION.as_str());
            let mut rest = text.as_str();
            while let Some(at) = rest.find(&prefix) {
                let tail = &rest[at + prefix.len()..];
                let end = tail.find(['"', '\'', ')']).unwrap_or(tail.len());
                let name = &tail[..end];
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{name} is not embedded"
                );
                rest = &tail[end..];
            }
        }
    }
}
