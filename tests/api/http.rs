//! HTTP behaviour common to every endpoint: error bodies and statuses, limits, request ids,
//! CORS, probes. Bad input never produces a 500.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::both;
use crate::harness::{Backend, TestApp, assert_error};

both!(
    malformed_json_is_a_400,
    wrong_types_missing_and_unknown_fields_are_422s_naming_the_field,
    a_body_over_the_limit_is_a_413,
    a_body_that_is_not_json_is_a_415,
    unknown_routes_and_methods_answer_in_the_error_format,
    every_response_carries_a_request_id_and_a_given_one_is_kept,
    probes_report_liveness_and_readiness,
    garbage_input_never_produces_a_server_error,
    cors_answers_configured_origins_only,
);

async fn malformed_json_is_a_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    for body in [
        "{",
        "{\"email\": }",
        "{\"email\": \"a\",",
        "{\"email\":\"a@b.org\",\"password\":\"x\"} {}",
        "nul",
    ] {
        let reply = app
            .send(
                Request::post("/v1/auth/login")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "malformed_json");
    }
}

async fn wrong_types_missing_and_unknown_fields_are_422s_naming_the_field(backend: Backend) {
    let app = TestApp::new(backend).await;
    let cases = [
        (json!({"email": 5, "password": "x"}), "email"),
        (json!({"password": "x"}), "email"),
        (
            json!({"email": "a@b.org", "password": "x", "remember_me": true}),
            "remember_me",
        ),
        (json!({"email": "nonsense", "password": "x"}), "email"),
        (json!({"email": "a@b.org", "password": ""}), "password"),
        (json!([1]), "body"),
    ];
    for (body, field) in cases {
        let reply = app.post_anonymous("/v1/auth/login", body.clone()).await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{body}: {}",
            reply.text
        );
    }
}

async fn a_body_over_the_limit_is_a_413(backend: Backend) {
    let app = TestApp::with_settings(backend, &[("COMPANION_MAX_BODY_BYTES", "2048")]).await;
    let big = json!({"email": "a@b.org", "password": "x".repeat(4096)});
    let reply = app.post_anonymous("/v1/auth/login", big).await;
    assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

async fn a_body_that_is_not_json_is_a_415(backend: Backend) {
    let app = TestApp::new(backend).await;
    let reply = app
        .send(
            Request::post("/v1/auth/login")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("email=a"))
                .unwrap(),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

async fn unknown_routes_and_methods_answer_in_the_error_format(backend: Backend) {
    let app = TestApp::new(backend).await;
    let reply = app.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let reply = app.call(Method::DELETE, "/v1/auth/login", None, None).await;
    assert_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn every_response_carries_a_request_id_and_a_given_one_is_kept(backend: Backend) {
    let app = TestApp::new(backend).await;
    let reply = app.call(Method::GET, "/health/live", None, None).await;
    let generated = reply.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::try_parse(generated).is_ok());
    let reply = app
        .send(
            Request::get("/v1/me")
                .header("x-request-id", "trace-me-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.headers["x-request-id"], "trace-me-123");
}

async fn probes_report_liveness_and_readiness(backend: Backend) {
    let app = TestApp::new(backend).await;
    let live = app
        .call(Method::GET, "/health/live", None, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(live.body["status"], "ok");
    let ready = app
        .call(Method::GET, "/health/ready", None, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
}

async fn garbage_input_never_produces_a_server_error(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let bodies = [
        json!(null),
        json!(1),
        json!("text"),
        json!({}),
        json!({"role": null, "email": [], "code": {}, "password": 1.5, "name": "\u{0}"}),
        json!({"refresh_token": "x".repeat(10_000)}),
        json!({"email": "a@b.org", "password": "p".repeat(2000)}),
        json!({"role": "patient", "expires_in_hours": -1}),
        json!({"role": "patient", "expires_in_hours": 1e30}),
        json!({"name": "x".repeat(5000), "timezone": "../../etc/passwd"}),
    ];
    let a = &world.clinic_a;
    let paths = [
        "/v1/auth/login".to_owned(),
        "/v1/auth/refresh".to_owned(),
        "/v1/invitations/accept".to_owned(),
        "/v1/clinics".to_owned(),
        format!("/v1/clinics/{a}/invitations"),
        "/v1/clinics/%00/invitations".to_owned(),
        "/v1/accounts/'%20OR%201=1/disable".to_owned(),
    ];
    for path in &paths {
        for body in &bodies {
            let reply = app
                .call(
                    Method::POST,
                    path,
                    Some(&world.org_admin.access),
                    Some(body.clone()),
                )
                .await;
            assert!(
                reply.status.is_client_error(),
                "{path} {body}: {} {}",
                reply.status,
                reply.text
            );
            assert!(
                reply.body["error"]["code"].is_string(),
                "{path}: {}",
                reply.text
            );
        }
    }
    for query in [
        "limit=-1",
        "limit=99999999999999999999",
        "cursor=%FF",
        "cursor=",
    ] {
        let reply = app
            .get(
                &format!("/v1/clinics/{a}/patients?{query}"),
                &world.admin_a.access,
            )
            .await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.text);
    }
}

async fn cors_answers_configured_origins_only(backend: Backend) {
    let app = TestApp::with_settings(
        backend,
        &[("COMPANION_CORS_ORIGINS", "https://app.example.org")],
    )
    .await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/me")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app.send(preflight("https://app.example.org")).await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example.org"
    );
    let refused = app.send(preflight("https://evil.example.com")).await;
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
}
