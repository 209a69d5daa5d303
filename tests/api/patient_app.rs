//! The patient web app's files over HTTP: the page, the service worker and the manifest with
//! their content types, the app's content security policy, revalidation by version, long
//! caching of versioned files, compression when asked, no 500 for odd paths, and the patient
//! invitation shown in the console as the app's link with a QR code.

use std::io::Read as _;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::both;
use crate::console::Browser;
use crate::harness::{Backend, Reply, TestApp};

both!(
    the_patient_app_is_served_with_its_policy_types_and_versioned_caching,
    patient_app_files_are_compressed_when_the_browser_asks,
    odd_patient_app_paths_are_answered_404_never_500,
    a_patient_invitation_in_the_console_is_an_app_link_with_a_qr_code,
);

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn fetch(app: &TestApp, path: &str, headers: &[(header::HeaderName, &str)]) -> Reply {
    let mut builder = Request::builder().method(Method::GET).uri(path);
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    app.send(builder.body(Body::empty()).unwrap()).await
}

/// The content encoding and the bytes of `path` asked for with `Accept-Encoding: accept`.
async fn compressed(app: &TestApp, path: &str, accept: &str) -> (String, Vec<u8>) {
    let (status, headers, bytes) = app
        .send_bytes(
            Request::builder()
                .uri(path)
                .header(header::ACCEPT_ENCODING, accept)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{path}");
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (encoding, bytes)
}

fn header_of(reply: &Reply, name: header::HeaderName) -> &str {
    reply
        .headers
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

async fn the_patient_app_is_served_with_its_policy_types_and_versioned_caching(backend: Backend) {
    let app = TestApp::new(backend).await;
    let bare = fetch(&app, "/app", &[]).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header_of(&bare, header::LOCATION), "/app/");

    let page = fetch(&app, "/app/", &[]).await.expect(StatusCode::OK);
    assert_eq!(
        header_of(&page, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header_of(&page, header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(header_of(&page, header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(header_of(&page, header::CACHE_CONTROL), "no-cache");
    assert!(
        page.text
            .contains("rel=\"manifest\" href=\"/app/manifest.webmanifest\"")
    );
    // No inline script or style: every script names its file.
    assert!(!page.text.contains("<script>") && !page.text.contains("<style"));
    assert!(!page.text.contains(" style="));
    let etag = header_of(&page, header::ETAG).to_owned();
    let version = etag.trim_matches('"').to_owned();
    assert_eq!(version.len(), 12, "{etag}");
    assert!(page.text.contains(&format!("/app/v/{version}/app.js")));
    let again = fetch(&app, "/app/", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    let worker = fetch(&app, "/app/sw.js", &[]).await.expect(StatusCode::OK);
    assert_eq!(
        header_of(&worker, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header_of(&worker, header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(header_of(&worker, header::CACHE_CONTROL), "no-cache");
    assert!(
        worker
            .text
            .contains(&format!("const VERSION = '{version}';"))
    );
    assert!(!worker.text.contains("{{"), "every placeholder is filled");

    let manifest = fetch(&app, "/app/manifest.webmanifest", &[])
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        header_of(&manifest, header::CONTENT_TYPE),
        "application/manifest+json"
    );
    assert_eq!(manifest.body["start_url"], "/app/");
    assert_eq!(manifest.body["scope"], "/app/");
    assert_eq!(manifest.body["display"], "standalone");
    assert!(manifest.body["theme_color"].is_string());
    let icons = manifest.body["icons"].as_array().unwrap();
    for (size, purpose) in [
        ("192x192", "any"),
        ("512x512", "any"),
        ("512x512", "maskable"),
    ] {
        let icon = icons
            .iter()
            .find(|i| i["sizes"] == size && i["purpose"] == purpose)
            .unwrap_or_else(|| panic!("an icon {size} {purpose}"));
        let src = icon["src"].as_str().unwrap();
        let png = fetch(&app, src, &[]).await.expect(StatusCode::OK);
        assert_eq!(header_of(&png, header::CONTENT_TYPE), "image/png");
        assert_eq!(
            header_of(&png, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
    }

    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let asset = fetch(&app, &format!("/app/v/{version}/{file}"), &[])
            .await
            .expect(StatusCode::OK);
        assert_eq!(header_of(&asset, header::CONTENT_TYPE), kind);
        assert_eq!(header_of(&asset, header::CONTENT_SECURITY_POLICY), CSP);
    }
    // An older version's URL still loads, but is not kept.
    let old = fetch(&app, "/app/v/000000000000/app.js", &[])
        .await
        .expect(StatusCode::OK);
    assert_eq!(header_of(&old, header::CACHE_CONTROL), "no-cache");
    // The API keeps its own policy.
    let api = fetch(&app, "/health/live", &[]).await;
    assert_ne!(header_of(&api, header::CONTENT_SECURITY_POLICY), CSP);
}

async fn patient_app_files_are_compressed_when_the_browser_asks(backend: Backend) {
    let app = TestApp::new(backend).await;
    for path in ["/app/", "/app/sw.js", "/app/manifest.webmanifest"] {
        let plain = fetch(&app, path, &[]).await.expect(StatusCode::OK);
        assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "", "{path}");

        let gzip = compressed(&app, path, "gzip").await;
        assert_eq!(gzip.0, "gzip", "{path}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gzip.1[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, plain.text, "{path} decompresses to the same file");
        assert!(gzip.1.len() < plain.text.len(), "{path} is smaller");

        let brotli = compressed(&app, path, "br").await;
        assert_eq!(brotli.0, "br", "{path}");
        assert!(brotli.1.len() < plain.text.len(), "{path} is smaller");
    }
    let version = {
        let page = fetch(&app, "/app/", &[]).await;
        header_of(&page, header::ETAG).trim_matches('"').to_owned()
    };
    let js = compressed(&app, &format!("/app/v/{version}/views.js"), "br, gzip").await;
    assert_eq!(js.0, "br");
}

async fn odd_patient_app_paths_are_answered_404_never_500(backend: Backend) {
    let app = TestApp::new(backend).await;
    for path in [
        "/app/v/x/nope.js",
        "/app/v/x/..%2f..%2fCargo.toml",
        "/app/v/%00/app.js%00",
        "/app/nope",
        "/app/v/",
    ] {
        let reply = fetch(&app, path, &[]).await;
        assert!(
            reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::OK,
            "{path}: {}",
            reply.status
        );
        if reply.status == StatusCode::NOT_FOUND {
            assert_eq!(reply.code(), "not_found", "{path}");
        }
    }
    let post = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/app/")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn a_patient_invitation_in_the_console_is_an_app_link_with_a_qr_code(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut browser, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let created = browser
        .post(
            "/console/admin/invitations",
            &[("csrf", &csrf), ("role", "patient"), ("email", "")],
        )
        .await
        .expect(StatusCode::CREATED);
    let code = {
        let marker = "<code class=\"invitation-code\">";
        let start = created.text.find(marker).unwrap() + marker.len();
        let end = created.text[start..].find('<').unwrap() + start;
        created.text[start..end].to_owned()
    };
    let link = format!("http://localhost/app/#/join/{code}");
    assert!(
        created.text.contains(&format!("href=\"{link}\"")),
        "{}",
        created.text
    );
    assert!(
        created
            .text
            .contains("class=\"invitation-qr\" src=\"data:image/svg+xml;base64,")
    );
    // The code rides in the fragment: a request for the link never carries it.
    assert!(link.split('#').next().unwrap().ends_with("/app/"));

    let staff = browser
        .post(
            "/console/admin/invitations",
            &[("csrf", &csrf), ("role", "clinician"), ("email", "")],
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(
        !staff.text.contains("invitation-qr"),
        "staff join elsewhere"
    );
}
