//! `/metrics`: request counts and latency by route template, queue depth, open alerts, and the
//! optional bearer token; never an id in a label.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::both;
use crate::harness::{Backend, TestApp};

both!(
    metrics_count_requests_by_route_template_and_show_the_queue_without_ids,
    metrics_require_the_token_when_one_is_configured,
);

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().uri("/metrics");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let reply = app.send(request.body(Body::empty()).unwrap()).await;
    (reply.status, reply.text)
}

async fn metrics_count_requests_by_route_template_and_show_the_queue_without_ids(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    for _ in 0..3 {
        app.get(
            &format!("/v1/patients/{}/check-ins", patient.id),
            &world.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    }
    // An item-9 answer opens an alert and queues its notification.
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9",
               "answers": {"q1": 1, "q2": 1, "q3": 1, "q4": 1, "q5": 1, "q6": 1, "q7": 1, "q8": 1, "q9": 2},
               "completed_at": app.app.now().to_rfc3339()}),
    )
    .await
    .expect(StatusCode::CREATED);
    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(
            "companion_http_requests_total{method=\"GET\",route=\"/v1/patients/{patient_id}/check-ins\",status=\"200\"} 3"
        ),
        "{text}"
    );
    assert!(text.contains(
        "companion_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/patients/{patient_id}/check-ins\"} 3"
    ));
    assert!(
        text.contains("companion_jobs_queued{kind=\"alert.notify\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("companion_alerts_open{severity=\"urgent\"} 1"),
        "{text}"
    );
    for id in [&patient.id, &world.clinician_a.id, &world.clinic_a] {
        assert!(!text.contains(id.as_str()), "an id leaked into the metrics");
    }
    // Delivering the alert shows in the push and job counters.
    app.run_jobs().await;
    let (_, text) = scrape(&app, None).await;
    assert!(
        !text.contains("companion_jobs_queued{kind=\"alert.notify\"}"),
        "{text}"
    );
}

async fn metrics_require_the_token_when_one_is_configured(backend: Backend) {
    let token = "a-metrics-token-of-some-length";
    let app = TestApp::with_settings(backend, &[("COMPANION_METRICS_TOKEN", token)]).await;
    assert_eq!(scrape(&app, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(&app, Some("a-wrong-token-of-some-length")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, text) = scrape(&app, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE companion_http_requests_total counter"));
}
