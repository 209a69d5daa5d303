//! "Get help now" (`POST /v1/me/help-requests`), through the API: the request raises an urgent
//! `patient_help_request` alert on the item-9 path (the clinic's inbox, the on-call clinician's
//! phone), answers with the crisis resources and a `care_team` whose words match it, is never
//! refused for its form, is idempotent by its id, joins the patient's unresolved alert, is for
//! patients only, never puts the patient's note in a push, is in the patient's export, and goes with an erasure.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use companion::push::gateway::MemoryGateway;
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{alert_pushes, alerts_of, device, on_call};
use crate::harness::{Actor, Backend, Reply, TestApp, World, assert_error};

both!(
    a_help_request_raises_an_urgent_alert_and_pages_the_on_call_clinician,
    a_help_request_to_a_clinic_nobody_can_reach_is_told_so_in_the_answer,
    a_replay_with_the_same_id_returns_the_first_answer_and_pages_nobody_again,
    a_second_request_joins_the_unresolved_alert_and_reopens_an_acknowledged_one,
    a_request_is_never_refused_for_its_form,
    staff_and_anonymous_callers_are_refused,
    the_note_reaches_the_care_team_but_never_a_push,
    the_export_holds_help_requests_and_erasure_removes_them_keeping_the_alert_minimal,
);

const PATH: &str = "/v1/me/help-requests";

async fn world_with(
    backend: Backend,
    settings: &[(&str, &str)],
) -> (TestApp, Arc<MemoryGateway>, World) {
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    let mut all = vec![("COMPANION_ACCESS_TOKEN_TTL", "86400")];
    all.extend_from_slice(settings);
    let app = TestApp::build(backend, &all, move |a| a.push.fcm = installed).await;
    let world = app.world().await;
    (app, gateway, world)
}

async fn ask(app: &TestApp, patient: &Actor, body: Value) -> Reply {
    app.post(PATH, &patient.access, body).await
}

/// Sends a raw body (or none) with the given content type.
async fn ask_raw(app: &TestApp, patient: &Actor, body: &str, content_type: Option<&str>) -> Reply {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header(header::AUTHORIZATION, format!("Bearer {}", patient.access));
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    app.send(builder.body(Body::from(body.to_owned())).unwrap())
        .await
}

/// The words must match the state (CLINICAL.md, part 2).
#[track_caller]
fn assert_told(safety: &Value, care_team: &str) {
    assert_eq!(safety["care_team"], care_team, "{safety}");
    let message = safety["message"].as_str().unwrap();
    let told = message.contains("Your care team has been told");
    match care_team {
        "reached" => assert!(told, "{message}"),
        "trying" => {
            assert!(!told, "{message}");
            assert!(
                message.contains("We are contacting your care team now"),
                "{message}"
            );
            assert!(message.contains("If you are in danger, call"), "{message}");
        }
        _ => {
            assert!(!told, "{message}");
            assert!(
                message.contains("We could not reach your care team right now"),
                "{message}"
            );
            assert!(message.contains("If you are in danger, call"), "{message}");
        }
    }
    // Crisis resources are never empty; a help request gives no blood-pressure advice.
    assert!(
        !safety["crisis_resources"]["lines"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{safety}"
    );
    assert!(safety["advice"].is_null(), "{safety}");
}

async fn help_alerts(app: &TestApp, staff: &Actor) -> Vec<Value> {
    alerts_of(app, staff)
        .await
        .into_iter()
        .filter(|a| a["rule"] == "patient_help_request")
        .collect()
}

async fn a_help_request_raises_an_urgent_alert_and_pages_the_on_call_clinician(backend: Backend) {
    let (app, gateway, world) = world_with(backend, &[]).await;
    on_call(&app, &world.clinician_a).await;
    let phone = device(&app, &world.clinician_a).await;
    let id = uuid::Uuid::new_v4().to_string();
    let reply = ask(&app, &world.patient_a, json!({"id": id})).await;
    let reply = reply.expect(StatusCode::CREATED);
    assert_eq!(reply.body["id"], id.as_str());
    assert_eq!(reply.body["problems"], json!({}));
    assert!(reply.body["received_at"].is_string(), "{}", reply.text);
    // The workers have not run: nothing has counted yet, and the patient is told so.
    assert_told(&reply.body["safety"], "trying");
    let alert_id = reply.body["alert_id"].as_str().unwrap().to_owned();
    // In the clinic's inbox, urgent, saying why.
    let alerts = help_alerts(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["id"], alert_id.as_str());
    assert_eq!(alerts[0]["severity"], "urgent");
    assert_eq!(alerts[0]["status"], "open");
    assert_eq!(alerts[0]["patient_id"], world.patient_a.id.as_str());
    assert_eq!(alerts[0]["explanation"], "The patient asked for help now");
    // The other clinic sees nothing of it.
    assert!(help_alerts(&app, &world.clinician_b).await.is_empty());
    // The on-call clinician's phone rings.
    app.run_jobs().await;
    assert_eq!(
        alert_pushes(&gateway, &phone),
        std::slice::from_ref(&alert_id)
    );
    let pushed = gateway
        .sent()
        .into_iter()
        .find(|(t, _)| *t == phone)
        .unwrap()
        .1;
    assert!(pushed.is_time_sensitive());
    // Read again, the request says the care team was reached, in words that match.
    let read = app
        .get(&format!("{PATH}/{id}"), &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(read.body["alert_id"], alert_id.as_str());
    assert_eq!(read.body["received_at"], reply.body["received_at"]);
    assert_told(&read.body["safety"], "reached");
    // Another patient's request is not found, nor is a malformed id.
    app.get(&format!("{PATH}/{id}"), &world.patient_a2.access)
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get(&format!("{PATH}/not-an-id"), &world.patient_a.access)
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn a_help_request_to_a_clinic_nobody_can_reach_is_told_so_in_the_answer(backend: Backend) {
    // The server waits for the first outcome; a worker runs beside the requests, as in
    // `companion serve`.
    let (app, _gateway, world) =
        world_with(backend, &[("COMPANION_SAFETY_ANSWER_WAIT_MS", "5000")]).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker =
        tokio::spawn(companion::jobs::runner::Runner::new(app.app.clone()).run(shutdown.clone()));
    // Nobody in clinic A has a device, a webhook or an email server.
    let reply = ask_raw(&app, &world.patient_a, "", None)
        .await
        .expect(StatusCode::CREATED);
    assert_told(&reply.body["safety"], "unreachable");
    // Clinic B's clinician has a phone: that answer says reached, after the same short wait.
    device(&app, &world.clinician_b).await;
    let reply_b = ask(&app, &world.patient_b, json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_told(&reply_b.body["safety"], "reached");
    shutdown.cancel();
    worker.await.unwrap();
    let alert = app
        .get(
            &format!("/v1/alerts/{}", reply.body["alert_id"].as_str().unwrap()),
            &world.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(alert.body["alert"]["unreachable"], true, "{}", alert.text);
}

async fn a_replay_with_the_same_id_returns_the_first_answer_and_pages_nobody_again(
    backend: Backend,
) {
    let (app, gateway, world) = world_with(backend, &[]).await;
    on_call(&app, &world.clinician_a).await;
    let phone = device(&app, &world.clinician_a).await;
    let id = uuid::Uuid::new_v4().to_string();
    let first = ask(&app, &world.patient_a, json!({"id": id, "note": "first"}))
        .await
        .expect(StatusCode::CREATED);
    app.run_jobs().await;
    assert_eq!(alert_pushes(&gateway, &phone).len(), 1);
    app.clock.advance(chrono::TimeDelta::minutes(2));
    // The app sends it again (a lost answer), in capitals, with other words.
    let again = ask(
        &app,
        &world.patient_a,
        json!({"id": id.to_uppercase(), "note": "second"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(again.body["alert_id"], first.body["alert_id"]);
    assert_eq!(again.body["received_at"], first.body["received_at"]);
    assert_told(&again.body["safety"], "reached");
    app.run_jobs().await;
    assert_eq!(alert_pushes(&gateway, &phone).len(), 1, "paged once");
    let alerts = help_alerts(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["signal_count"], 1);
    assert_eq!(alerts[0]["inputs"]["note"], "first");
    // Another patient sending the same id is still a request for help of their own, under a
    // new id.
    let other = ask(&app, &world.patient_a2, json!({"id": id}))
        .await
        .expect(StatusCode::CREATED);
    assert_ne!(other.body["id"], id.as_str());
    assert!(other.body["problems"]["id"].is_string(), "{}", other.text);
    assert_ne!(other.body["alert_id"], first.body["alert_id"]);
    assert_eq!(help_alerts(&app, &world.clinician_a).await.len(), 2);
}

async fn a_second_request_joins_the_unresolved_alert_and_reopens_an_acknowledged_one(
    backend: Backend,
) {
    let (app, gateway, world) = world_with(backend, &[]).await;
    on_call(&app, &world.clinician_a).await;
    let phone = device(&app, &world.clinician_a).await;
    let first = ask(&app, &world.patient_a, json!({}))
        .await
        .expect(StatusCode::CREATED);
    app.clock.advance(chrono::TimeDelta::minutes(1));
    let second = ask(&app, &world.patient_a, json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_ne!(second.body["id"], first.body["id"]);
    assert_eq!(second.body["alert_id"], first.body["alert_id"]);
    let alerts = help_alerts(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1, "one unresolved alert: {alerts:?}");
    assert_eq!(alerts[0]["signal_count"], 2);
    assert_eq!(alerts[0]["status"], "open");
    app.run_jobs().await;
    let alert_id = first.body["alert_id"].as_str().unwrap();
    // Acknowledged is not resolved: a new request re-opens it and pages again.
    app.call(
        Method::POST,
        &format!("/v1/alerts/{alert_id}/acknowledge"),
        Some(&world.clinician_a.access),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let pushes_before = alert_pushes(&gateway, &phone).len();
    app.clock.advance(chrono::TimeDelta::minutes(1));
    let third = ask(&app, &world.patient_a, json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(third.body["alert_id"], alert_id);
    let alerts = help_alerts(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "open");
    assert_eq!(alerts[0]["signal_count"], 3);
    app.run_jobs().await;
    assert!(alert_pushes(&gateway, &phone).len() > pushes_before);
    // A help request and an item-9 answer are different rules: each has its alert.
    crate::escalation::submit(
        &app,
        &world.patient_a,
        "phq9",
        crate::escalation::phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    let all = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(all.len(), 2, "{all:?}");
}

async fn a_request_is_never_refused_for_its_form(backend: Backend) {
    let (app, _gateway, world) = world_with(backend, &[]).await;
    let long = "x".repeat(600);
    let reply = ask(
        &app,
        &world.patient_a,
        json!({"id": "not-a-uuid", "note": long, "mood": 1}),
    )
    .await
    .expect(StatusCode::CREATED);
    let problems = reply.body["problems"].as_object().unwrap();
    assert_eq!(
        problems.keys().collect::<Vec<_>>(),
        ["id", "mood", "note"],
        "{}",
        reply.text
    );
    assert!(reply.body["alert_id"].is_string());
    assert!(uuid::Uuid::try_parse(reply.body["id"].as_str().unwrap()).is_ok());
    assert_told(&reply.body["safety"], "trying");
    // A body that is not JSON, or not an object, still asks for help.
    for (body, content_type) in [
        ("help", Some("text/plain")),
        ("{\"note\": ", Some("application/json")),
        ("[1, 2]", Some("application/json")),
        ("", None),
    ] {
        let reply = ask_raw(&app, &world.patient_a, body, content_type)
            .await
            .expect(StatusCode::CREATED);
        assert_eq!(
            reply.body["problems"]
                .as_object()
                .unwrap()
                .contains_key("body"),
            !body.is_empty(),
            "{body}: {}",
            reply.text
        );
    }
    // All of them on the one unresolved alert, the long note not kept.
    let alerts = help_alerts(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["signal_count"], 5);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM help_requests WHERE note IS NOT NULL")
            .await,
        0
    );
}

async fn staff_and_anonymous_callers_are_refused(backend: Backend) {
    let (app, _gateway, world) = world_with(backend, &[]).await;
    for staff in [&world.clinician_a, &world.admin_a, &world.org_admin] {
        let reply = ask(&app, staff, json!({})).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
    let reply = app.post_anonymous(PATH, json!({})).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "missing_token");
    let reply = app
        .get(
            &format!("{PATH}/{}", uuid::Uuid::new_v4()),
            &world.clinician_a.access,
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    assert!(alerts_of(&app, &world.clinician_a).await.is_empty());
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM help_requests").await,
        0
    );
}

async fn the_note_reaches_the_care_team_but_never_a_push(backend: Backend) {
    let (app, fcm) =
        TestApp::with_fake_fcm(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")]).await;
    let world = app.world().await;
    on_call(&app, &world.clinician_a).await;
    device(&app, &world.clinician_a).await;
    device(&app, &world.admin_a).await;
    let note = "I am scared of what I might do tonight zq7";
    let reply = ask(&app, &world.patient_a, json!({"note": note}))
        .await
        .expect(StatusCode::CREATED);
    assert!(!reply.text.contains("zq7"), "not echoed: {}", reply.text);
    app.run_jobs().await;
    let received = fcm.received();
    assert!(!received.is_empty(), "the care team was pushed");
    for message in &received {
        let body = message.body.to_string();
        assert!(!body.contains("zq7"), "{body}");
        assert!(!body.contains("help"), "{body}");
    }
    // The care team reads it with the alert.
    let alert_id = reply.body["alert_id"].as_str().unwrap();
    let alert = app
        .get(&format!("/v1/alerts/{alert_id}"), &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(alert.body["alert"]["inputs"]["note"], note);
}

async fn the_export_holds_help_requests_and_erasure_removes_them_keeping_the_alert_minimal(
    backend: Backend,
) {
    let (app, _gateway, world) = world_with(backend, &[]).await;
    let patient = &world.patient_a;
    let reply = ask(&app, patient, json!({"note": "please call me"}))
        .await
        .expect(StatusCode::CREATED);
    let alert_id = reply.body["alert_id"].as_str().unwrap().to_owned();
    // Before: the patient's own export holds it, with the note.
    let export = app
        .get("/v1/me/export", &patient.access)
        .await
        .expect(StatusCode::OK);
    let held = &export.body["help_requests"];
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");
    assert_eq!(held[0]["id"], reply.body["id"]);
    assert_eq!(held[0]["note"], "please call me");
    assert_eq!(held[0]["alert_id"], alert_id.as_str());
    app.post("/v1/me/erasure", &patient.access, json!({}))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM help_requests").await,
        0
    );
    // The alert stays, open, its details gone, until staff resolve it.
    let alert = app
        .get(&format!("/v1/alerts/{alert_id}"), &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(alert.body["alert"]["status"], "open");
    assert_eq!(alert.body["alert"]["rule"], "patient_help_request");
    assert_eq!(alert.body["alert"]["inputs"], json!({}));
    assert!(!alert.text.contains("please call me"), "{}", alert.text);
    app.run_jobs().await;
}
