//! Treatment sessions through HTTP.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, SubsecRound as _, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, TestApp, assert_error};

both!(
    staff_schedule_move_complete_and_cancel_a_session,
    patients_see_their_sessions_without_staff_observations,
    invalid_session_input_is_a_422_naming_the_field,
    sessions_of_another_clinic_are_invisible,
);

fn at(app: &TestApp, hours: i64) -> String {
    (app.app.now() + TimeDelta::hours(hours)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The instant an answer's timestamp names, which `at` wrote (stored to the microsecond): RFC 3339
/// allows `.326Z` and `.326000Z` for the same instant, so answers are compared as instants.
fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
        .expect("an RFC 3339 timestamp")
        .with_timezone(&Utc)
}

fn at_instant(app: &TestApp, hours: i64) -> DateTime<Utc> {
    (app.app.now() + TimeDelta::hours(hours)).trunc_subsecs(6)
}

async fn staff_schedule_move_complete_and_cancel_a_session(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let staff = &world.clinician_a.access;
    let created = app
        .post(
            &format!("/v1/patients/{}/sessions", world.patient_a.id),
            staff,
            json!({"modality": "iv_infusion", "scheduled_at": at(&app, 48)}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created.body["status"], "scheduled");
    assert_eq!(created.body["modality"], "iv_infusion");
    let path = format!("/v1/sessions/{}", created.body["id"].as_str().unwrap());
    let moved = app
        .call(
            Method::PATCH,
            &path,
            Some(staff),
            Some(json!({"scheduled_at": at(&app, 72)})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(instant(&moved.body["scheduled_at"]), at_instant(&app, 72));
    let observations = json!({"bp_before": {"systolic": 128, "diastolic": 80},
                              "bp_after": {"systolic": 141, "diastolic": 88},
                              "dissociation": 6, "sedation": 4, "notes": "tolerated well"});
    let completed = app
        .call(
            Method::PATCH,
            &path,
            Some(staff),
            Some(json!({"status": "completed", "observations": observations})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(completed.body["status"], "completed");
    assert_eq!(completed.body["observations"]["bp_after"]["systolic"], 141);
    let late_move = app
        .call(
            Method::PATCH,
            &path,
            Some(staff),
            Some(json!({"scheduled_at": at(&app, 96)})),
        )
        .await;
    assert_error(&late_move, StatusCode::CONFLICT, "session_completed");
    let cancel_done = app.call(Method::DELETE, &path, Some(staff), None).await;
    assert_error(&cancel_done, StatusCode::CONFLICT, "session_completed");
    // Observations on a completed session may still be corrected.
    app.call(
        Method::PATCH,
        &path,
        Some(staff),
        Some(json!({"observations": {"sedation": 5}})),
    )
    .await
    .expect(StatusCode::OK);

    let second = app
        .post(
            &format!("/v1/patients/{}/sessions", world.patient_a.id),
            &world.admin_a.access,
            json!({"modality": "intranasal_esketamine", "scheduled_at": at(&app, 120)}),
        )
        .await
        .expect(StatusCode::CREATED);
    let path = format!("/v1/sessions/{}", second.body["id"].as_str().unwrap());
    let cancelled = app
        .call(Method::DELETE, &path, Some(staff), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    app.call(Method::DELETE, &path, Some(staff), None)
        .await
        .expect(StatusCode::OK);
    let revive = app
        .call(
            Method::PATCH,
            &path,
            Some(staff),
            Some(json!({"scheduled_at": at(&app, 130)})),
        )
        .await;
    assert_error(&revive, StatusCode::CONFLICT, "session_cancelled");

    let list = app
        .get(
            &format!("/v1/patients/{}/sessions", world.patient_a.id),
            staff,
        )
        .await
        .expect(StatusCode::OK);
    let statuses: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "cancelled"]);
}

async fn patients_see_their_sessions_without_staff_observations(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let create = |hours: i64| {
        let body = json!({"modality": "oral_lozenge", "scheduled_at": at(&app, hours),
                          "observations": {"notes": "staff only"}});
        let path = format!("/v1/patients/{}/sessions", world.patient_a.id);
        let token = world.clinician_a.access.clone();
        let app = &app;
        async move {
            app.post(&path, &token, body)
                .await
                .expect(StatusCode::CREATED)
        }
    };
    create(-24).await;
    create(24).await;
    create(48).await;
    let mine = app
        .get("/v1/me/sessions", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    let items = mine.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items.iter().all(|s| s["observations"] == Value::Null),
        "{}",
        mine.text
    );
    assert!(!mine.text.contains("staff only"));
    let upcoming = app
        .get(
            "/v1/me/sessions?when=upcoming&limit=1",
            &world.patient_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        instant(&upcoming.body["items"][0]["scheduled_at"]),
        at_instant(&app, 24)
    );
    let cursor = upcoming.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/v1/me/sessions?when=upcoming&limit=1&cursor={cursor}"),
            &world.patient_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        instant(&next.body["items"][0]["scheduled_at"]),
        at_instant(&app, 48)
    );
    assert_eq!(next.body["next_cursor"], Value::Null);
    let past = app
        .get("/v1/me/sessions?when=past", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(past.body["items"].as_array().unwrap().len(), 1);
    let other = app
        .get("/v1/me/sessions", &world.patient_a2.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(other.body["items"], json!([]));
    let bad = app
        .get("/v1/me/sessions?when=tomorrow", &world.patient_a.access)
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn invalid_session_input_is_a_422_naming_the_field(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/patients/{}/sessions", world.patient_a.id);
    let staff = &world.clinician_a.access;
    let cases = [
        (
            json!({"modality": "pill", "scheduled_at": at(&app, 1)}),
            "modality",
        ),
        (json!({"modality": "iv_infusion"}), "scheduled_at"),
        (
            json!({"modality": "iv_infusion", "scheduled_at": at(&app, 24 * 800)}),
            "scheduled_at",
        ),
        (
            json!({"modality": "iv_infusion", "scheduled_at": at(&app, 1), "observations": {"sedation": 9}}),
            "observations.sedation",
        ),
        (
            json!({"modality": "iv_infusion", "scheduled_at": at(&app, 1), "observations": {"bp_before": {"systolic": 70, "diastolic": 90}}}),
            "observations.bp_before",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post(&path, staff, body).await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{field}: {}",
            reply.text
        );
    }
    let created = app
        .post(
            &path,
            staff,
            json!({"modality": "intramuscular", "scheduled_at": at(&app, 1)}),
        )
        .await
        .expect(StatusCode::CREATED);
    let session = format!("/v1/sessions/{}", created.body["id"].as_str().unwrap());
    for (body, field) in [
        (json!({}), "body"),
        (json!({"status": "cancelled"}), "status"),
        (json!({"status": "done"}), "status"),
    ] {
        let reply = app
            .call(Method::PATCH, &session, Some(staff), Some(body))
            .await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{field}: {}",
            reply.text
        );
    }
}

async fn sessions_of_another_clinic_are_invisible(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let created = app
        .post(
            &format!("/v1/patients/{}/sessions", world.patient_a.id),
            &world.clinician_a.access,
            json!({"modality": "iv_infusion", "scheduled_at": at(&app, 5)}),
        )
        .await
        .expect(StatusCode::CREATED);
    let session = format!("/v1/sessions/{}", created.body["id"].as_str().unwrap());
    let foreign = app
        .call(
            Method::PATCH,
            &session,
            Some(&world.clinician_b.access),
            Some(json!({"scheduled_at": at(&app, 6)})),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &app.call(Method::DELETE, &session, Some(&world.admin_b.access), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let other_patient = app
        .post(
            &format!("/v1/patients/{}/sessions", world.patient_b.id),
            &world.clinician_a.access,
            json!({"modality": "iv_infusion", "scheduled_at": at(&app, 5)}),
        )
        .await;
    assert_error(&other_patient, StatusCode::NOT_FOUND, "not_found");
    for token in [&world.patient_a.access, &world.org_admin.access] {
        let reply = app
            .post(
                &format!("/v1/patients/{}/sessions", world.patient_a.id),
                token,
                json!({"modality": "iv_infusion", "scheduled_at": at(&app, 5)}),
            )
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
        assert_error(
            &app.call(Method::DELETE, &session, Some(token), None).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let list = app
        .get(
            &format!("/v1/patients/{}/sessions", world.patient_a.id),
            &world.clinician_b.access,
        )
        .await;
    assert_error(&list, StatusCode::NOT_FOUND, "not_found");
}
