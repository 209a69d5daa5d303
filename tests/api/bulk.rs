//! FHIR Bulk Data export through HTTP: kick-off (202 + Content-Location), polling (202 +
//! X-Progress, then the manifest), ndjson downloads, `_type` and `_since`, cancel, expiry, and
//! cross-clinic denial.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{SecondsFormat, TimeDelta};
use serde_json::{Value, json};

use crate::both;
use crate::escalation::phq9;
use crate::harness::{Actor, Backend, Reply, TestApp};

both!(
    an_export_is_kicked_off_polled_downloaded_and_deleted,
    type_and_since_narrow_an_export_and_files_expire,
    another_clinic_cannot_start_poll_download_or_cancel_an_export,
);

async fn kick_off(app: &TestApp, path: &str, who: &Actor) -> Reply {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", who.access))
        .header("prefer", "respond-async")
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

fn status_path(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    reply.headers[header::CONTENT_LOCATION]
        .to_str()
        .unwrap()
        .strip_prefix("http://localhost")
        .unwrap()
        .to_owned()
}

async fn submit(app: &TestApp, patient: &Actor, instrument: &str, answers: Value) {
    let at = app.app.now().to_rfc3339_opts(SecondsFormat::Micros, true);
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": instrument, "answers": answers, "completed_at": at}),
    )
    .await
    .expect(StatusCode::CREATED);
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn output_of(manifest: &Value) -> Vec<(String, u64)> {
    manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_owned(),
                o["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn an_export_is_kicked_off_polled_downloaded_and_deleted(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]),
    )
    .await;
    submit(
        &app,
        &world.patient_a,
        "daily_mood",
        json!({"mood": 6, "sleep_hours": 7.0}),
    )
    .await;
    submit(&app, &world.patient_b, "daily_mood", json!({"mood": 2})).await;
    let staff = &world.clinician_a;

    // Without Prefer: respond-async, no export.
    let reply = app.get("/fhir/r4/Patient/$export", &staff.access).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");

    let kicked = kick_off(
        &app,
        &format!("/fhir/r4/Group/{}/$export", world.clinic_a),
        staff,
    )
    .await;
    let status = status_path(&kicked);
    let polled = app.get(&status, &staff.access).await;
    assert_eq!(polled.status, StatusCode::ACCEPTED);
    assert_eq!(
        polled.headers["x-progress"].to_str().unwrap(),
        "0 of 6 resource types written"
    );

    app.run_jobs().await;
    let manifest = app
        .get(&status, &staff.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(
        manifest["request"],
        format!("http://localhost/fhir/r4/Group/{}/$export", world.clinic_a)
    );
    assert_eq!(
        output_of(&manifest),
        [
            ("Organization".to_owned(), 1),
            ("Patient".to_owned(), 2),
            ("QuestionnaireResponse".to_owned(), 2),
            ("Observation".to_owned(), 4),
            ("Flag".to_owned(), 1),
            ("Task".to_owned(), 1),
        ]
    );
    for output in manifest["output"].as_array().unwrap() {
        let url = output["url"]
            .as_str()
            .unwrap()
            .strip_prefix("http://localhost")
            .unwrap();
        let file = app.get(url, &staff.access).await.expect(StatusCode::OK);
        assert_eq!(
            file.headers[header::CONTENT_TYPE],
            "application/fhir+ndjson"
        );
        let lines = ndjson(&file.text);
        assert_eq!(lines.len() as u64, output["count"].as_u64().unwrap());
        for line in &lines {
            assert_eq!(line["resourceType"], output["type"]);
            assert!(!file.text.contains(&world.patient_b.id), "only clinic A");
            assert!(!file.text.contains('@'), "no email");
        }
        if let Ok(dir) = std::env::var("COMPANION_FHIR_DUMP_DIR") {
            std::fs::create_dir_all(&dir).unwrap();
            for line in &lines {
                let path =
                    std::path::Path::new(&dir).join(format!("{}.json", uuid::Uuid::new_v4()));
                std::fs::write(path, line.to_string()).unwrap();
            }
        }
    }
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'fhir.export.download'")
            .await,
        6
    );

    // Deleting cancels and removes the files.
    let deleted = app
        .call(Method::DELETE, &status, Some(&staff.access), None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    assert_eq!(
        app.get(&status, &staff.access).await.status,
        StatusCode::NOT_FOUND
    );
    let url = manifest["output"][0]["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://localhost")
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&url, &staff.access).await.status,
        StatusCode::NOT_FOUND
    );
    let id = status.rsplit('/').next().unwrap();
    assert!(!app.app.config.data_dir.join("exports").join(id).exists());

    // Cancelled before it ran: the job writes nothing.
    let kicked = kick_off(&app, "/fhir/r4/Patient/$export", staff).await;
    let status = status_path(&kicked);
    app.call(Method::DELETE, &status, Some(&staff.access), None)
        .await
        .expect(StatusCode::ACCEPTED);
    app.run_jobs().await;
    let id = status.rsplit('/').next().unwrap();
    assert!(!app.app.config.data_dir.join("exports").join(id).exists());
}

async fn type_and_since_narrow_an_export_and_files_expire(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    submit(&app, &world.patient_a, "daily_mood", json!({"mood": 6})).await;
    app.clock.advance(TimeDelta::minutes(10));
    let since = app.app.now().to_rfc3339_opts(SecondsFormat::Secs, true);
    submit(&app, &world.patient_a2, "daily_mood", json!({"mood": 4})).await;
    let staff = &world.clinician_a;

    let kicked = kick_off(
        &app,
        &format!("/fhir/r4/Patient/$export?_type=QuestionnaireResponse,Observation&_since={since}"),
        staff,
    )
    .await;
    let status = status_path(&kicked);
    app.run_jobs().await;
    let manifest = app
        .get(&status, &staff.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        output_of(&manifest),
        [
            ("QuestionnaireResponse".to_owned(), 1),
            ("Observation".to_owned(), 1),
        ]
    );
    let url = manifest["output"][0]["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://localhost")
        .unwrap()
        .to_owned();
    let lines = ndjson(
        &app.get(&url, &staff.access)
            .await
            .expect(StatusCode::OK)
            .text,
    );
    assert_eq!(
        lines[0]["subject"]["reference"],
        format!("Patient/{}", world.patient_a2.id)
    );

    for bad in [
        "/fhir/r4/Patient/$export?_type=Medication",
        "/fhir/r4/Patient/$export?_since=yesterday",
        "/fhir/r4/Patient/$export?_elements=id",
    ] {
        let reply = kick_off(&app, bad, staff).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
        assert_eq!(reply.body["resourceType"], "OperationOutcome");
    }

    // An hour after completion the files are gone.
    app.clock.advance(TimeDelta::minutes(61));
    let mut staff = staff.clone();
    staff.access = app.token(&staff).await;
    let expired = app.get(&status, &staff.access).await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND, "{}", expired.text);
    assert_eq!(
        app.get(&url, &staff.access).await.status,
        StatusCode::NOT_FOUND
    );
    let id = status.rsplit('/').next().unwrap();
    assert!(!app.app.config.data_dir.join("exports").join(id).exists());
}

async fn another_clinic_cannot_start_poll_download_or_cancel_an_export(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    submit(&app, &world.patient_a, "daily_mood", json!({"mood": 6})).await;
    let other = &world.clinician_b;
    let reply = kick_off(
        &app,
        &format!("/fhir/r4/Group/{}/$export", world.clinic_a),
        other,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.body["resourceType"], "OperationOutcome");

    let kicked = kick_off(&app, "/fhir/r4/Patient/$export", &world.clinician_a).await;
    let status = status_path(&kicked);
    app.run_jobs().await;
    let manifest = app
        .get(&status, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK)
        .body;
    let url = manifest["output"][0]["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://localhost")
        .unwrap()
        .to_owned();
    for who in [&world.clinician_b, &world.admin_b] {
        assert_eq!(
            app.get(&status, &who.access).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get(&url, &who.access).await.status,
            StatusCode::NOT_FOUND
        );
        let cancel = app
            .call(Method::DELETE, &status, Some(&who.access), None)
            .await;
        assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    }
    for who in [&world.patient_a, &world.org_admin] {
        assert_eq!(
            app.get(&status, &who.access).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            kick_off(&app, "/fhir/r4/Patient/$export", who).await.status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        app.call(Method::GET, &status, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Still there for its own clinic.
    app.get(&url, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
}
