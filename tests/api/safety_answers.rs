//! No safety answer lost at the edges of form, time, concurrency and lifecycle (CLINICAL.md,
//! "Safety path guarantees, part 2"), each through the API on both databases: a safety answer
//! kept whatever else is wrong with it, amendments, identical answers re-sent under a new id,
//! one unresolved alert per patient and rule under concurrency, high signals on late data,
//! erasure, retention and a new consent version, screening follow-up and care-plan checks, and
//! crisis lines that follow the patient. The migration that merges duplicate alerts is tested
//! here too, on a database migrated up to the version before it.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{alert_pushes, alerts_of, app_with_gateway, device, on_call, phq9};
use crate::harness::{Actor, Backend, Reply, TestApp, World, assert_error};

both!(
    a_safety_answer_with_problems_elsewhere_is_stored_incomplete_and_raises_an_urgent_alert,
    the_same_id_resent_with_a_new_safety_answer_is_an_amendment_that_raises_it,
    identical_answers_resent_under_a_new_id_are_the_first_check_in_and_page_nobody_again,
    concurrent_item_nine_check_ins_open_one_alert_and_a_racing_resolve_never_swallows_a_signal,
    a_phone_forty_days_behind_still_alerts_on_item_nine_and_a_dangerous_blood_pressure,
    erasure_keeps_an_unresolved_alert_minimal_and_tells_the_care_team_at_once,
    retention_keeps_the_check_in_behind_an_unresolved_alert_until_a_person_resolves_it,
    a_new_consent_version_keeps_prompts_going_until_the_patient_declines_it,
    a_positive_phq2_schedules_a_phq9_and_care_plans_are_checked_for_item_nine,
    crisis_lines_follow_the_patients_zone_and_ireland_lists_both_emergency_numbers,
    the_migration_merges_duplicate_unresolved_alerts_keeping_every_signal,
);

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn post_check_in(app: &TestApp, patient: &Actor, body: Value) -> Reply {
    app.post("/v1/check-ins", &patient.access, body).await
}

fn check_in(id: &str, instrument: &str, answers: Value, at: DateTime<Utc>) -> Value {
    json!({"id": id, "instrument": instrument, "answers": answers, "completed_at": stamp(at)})
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The patient's unresolved alerts of `rule`.
async fn unresolved(app: &TestApp, staff: &Actor, patient: &Actor, rule: &str) -> Vec<Value> {
    alerts_of(app, staff)
        .await
        .into_iter()
        .filter(|a| {
            a["rule"] == rule && a["patient_id"] == json!(patient.id) && a["status"] != "resolved"
        })
        .collect()
}

async fn detail(app: &TestApp, staff: &Actor, id: &str) -> Value {
    app.get(&format!("/v1/alerts/{id}"), &staff.access)
        .await
        .expect(StatusCode::OK)
        .body
}

/// The check-ins whose signals an alert's history holds.
fn signal_check_ins(detail: &Value) -> BTreeSet<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["check_in_id"].as_str().map(str::to_owned))
        .collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Form

async fn a_safety_answer_with_problems_elsewhere_is_stored_incomplete_and_raises_an_urgent_alert(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    let now = app.app.now();
    // Item 9 answered 2; item 2 out of range, items 3 to 8 missing, an unknown key.
    let broken = json!({"q1": 1, "q2": 9, "q9": 2, "q12": 0});
    let id = new_id();
    let body = check_in(&id, "phq9", broken.clone(), now);
    let stored = post_check_in(&app, patient, body.clone())
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["status"], "incomplete");
    assert_eq!(stored["score"], Value::Null, "no total");
    assert_eq!(stored["safety_signal"], true);
    assert_eq!(stored["answers"], json!({"q1": 1, "q9": 2}));
    for field in ["answers.q2", "answers.q3", "answers.q8", "answers.q12"] {
        assert!(stored["problems"][field].is_string(), "{field}: {stored}");
    }
    let resources = &stored["safety"]["crisis_resources"];
    assert!(
        !resources["lines"].as_array().unwrap().is_empty(),
        "{stored}"
    );
    assert!(stored["safety"]["message"].is_string());
    // The urgent alert names the check-in and says it was incomplete.
    let alerts = unresolved(&app, &world.clinician_a, patient, "safety_item9").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["severity"], "urgent");
    assert_eq!(alerts[0]["check_in_id"], json!(id));
    assert!(
        alerts[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("incomplete check-in"),
        "{}",
        alerts[0]
    );
    // The history shows it as sent; a replay is the same check-in.
    let history = app
        .get("/v1/me/check-ins", &patient.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(history.body["items"][0]["status"], "incomplete");
    let replay = post_check_in(&app, patient, body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(replay.body["id"], json!(id));
    assert_eq!(replay.body["status"], "incomplete");
    // A malformed id does not refuse a safety answer: the server gives it one.
    let mut no_id = check_in("not-a-uuid", "phq9", json!({"q9": 3}), now);
    no_id["completed_at"] = json!(stamp(now - TimeDelta::hours(1)));
    let kept = post_check_in(&app, patient, no_id)
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert!(uuid::Uuid::parse_str(kept["id"].as_str().unwrap()).is_ok());
    assert!(kept["problems"]["id"].is_string(), "{kept}");
    // Nor does the body around it: a field this API does not name, a missing time.
    let odd = post_check_in(
        &app,
        patient,
        json!({"id": new_id(), "instrument": "phq9", "answers": {"q9": 1, "q1": 2},
               "app_version": "3.1.4"}),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    assert!(odd["problems"]["app_version"].is_string(), "{odd}");
    assert!(odd["problems"]["completed_at"].is_string(), "{odd}");
    assert_eq!(time(&odd["completed_at"]), now, "the time of receipt");
    let refused = post_check_in(
        &app,
        patient,
        json!({"id": new_id(), "instrument": "phq9", "answers": {"q9": 0}, "app_version": "3.1.4"}),
    )
    .await;
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // Without a safety answer the same form is refused, as before.
    let refused = post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq9", json!({"q1": 1, "q2": 9, "q9": 0}), now),
    )
    .await;
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(refused.body["error"]["fields"]["answers.q2"].is_string());
    assert!(refused.body["error"]["fields"]["answers.q3"].is_string());
}

// ---------------------------------------------------------------------------------------------
// 2. Amendments

async fn the_same_id_resent_with_a_new_safety_answer_is_an_amendment_that_raises_it(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    let now = app.app.now();
    let id = new_id();
    let first = check_in(&id, "phq9", phq9([1, 1, 0, 0, 0, 0, 0, 0, 0]), now);
    post_check_in(&app, patient, first.clone())
        .await
        .expect(StatusCode::CREATED);
    assert!(
        unresolved(&app, &world.clinician_a, patient, "safety_item9")
            .await
            .is_empty()
    );
    // The phone re-sends the same check-in with item 9 changed from 0 to 3.
    app.clock.advance(TimeDelta::minutes(2));
    let amended_body = check_in(&id, "phq9", phq9([1, 1, 0, 0, 0, 0, 0, 0, 3]), now);
    let amended = post_check_in(&app, patient, amended_body.clone())
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(amended["id"], json!(id));
    assert_eq!(amended["answers"]["q9"], 3);
    assert_eq!(amended["score"]["total"], 5);
    assert_eq!(amended["safety_signal"], true);
    assert_eq!(time(&amended["amended_at"]), app.app.now());
    assert_eq!(amended["earlier_versions"][0]["answers"]["q9"], 0);
    assert!(amended["safety"]["crisis_resources"]["lines"].is_array());
    let alerts = unresolved(&app, &world.clinician_a, patient, "safety_item9").await;
    assert_eq!(alerts.len(), 1, "the amendment raised the signal");
    assert_eq!(alerts[0]["check_in_id"], json!(id));
    assert_eq!(time(&alerts[0]["received_at"]), app.app.now());
    // A replay of the amendment, and a late retry of the first version, are the stored
    // check-in; neither is a new signal.
    for again in [amended_body, first] {
        let reply = post_check_in(&app, patient, again)
            .await
            .expect(StatusCode::OK);
        assert_eq!(reply.body["answers"]["q9"], 3);
    }
    let alerts = unresolved(&app, &world.clinician_a, patient, "safety_item9").await;
    assert_eq!(alerts[0]["signal_count"], 1);
    let stored = app
        .get("/v1/me/check-ins", &patient.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(stored.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(stored.body["items"][0]["answers"]["q9"], 3);
    // Different answers without a higher safety answer stay a conflict.
    for other in [
        phq9([2, 1, 0, 0, 0, 0, 0, 0, 3]),
        phq9([1, 1, 0, 0, 0, 0, 0, 0, 1]),
    ] {
        let reply = post_check_in(&app, patient, check_in(&id, "phq9", other, now)).await;
        assert_error(&reply, StatusCode::CONFLICT, "check_in_conflict");
    }
    let gad_id = new_id();
    let gad = |q1: i64| {
        check_in(
            &gad_id,
            "gad7",
            json!({"q1": q1, "q2": 0, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 0}),
            now,
        )
    };
    post_check_in(&app, patient, gad(0))
        .await
        .expect(StatusCode::CREATED);
    assert_error(
        &post_check_in(&app, patient, gad(3)).await,
        StatusCode::CONFLICT,
        "check_in_conflict",
    );
    // Another patient cannot amend it.
    let stolen = post_check_in(
        &app,
        &world.patient_a2,
        check_in(&id, "phq9", phq9([3, 3, 3, 3, 3, 3, 3, 3, 3]), now),
    )
    .await;
    assert_error(&stolen, StatusCode::CONFLICT, "check_in_conflict");
}

// ---------------------------------------------------------------------------------------------
// 3. The same answers under a new id

async fn identical_answers_resent_under_a_new_id_are_the_first_check_in_and_page_nobody_again(
    backend: Backend,
) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    on_call(&app, &world.clinician_a).await;
    let phone = device(&app, &world.clinician_a).await;
    let patient = &world.patient_a;
    let answered = app.app.now();
    let answers = phq9([1, 1, 1, 0, 0, 0, 0, 0, 2]);
    let first = post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq9", answers.clone(), answered),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    app.run_jobs().await;
    let alert = unresolved(&app, &world.clinician_a, patient, "safety_item9").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::POST,
        &format!("/v1/alerts/{alert}/acknowledge"),
        Some(&world.clinician_a.access),
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(alert_pushes(&gateway, &phone).len(), 1);
    // Minutes later the app sends the same answers again under a new id.
    app.clock.advance(TimeDelta::minutes(4));
    let again = post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq9", answers.clone(), answered),
    )
    .await
    .expect(StatusCode::OK)
    .body;
    assert_eq!(again["id"], first["id"], "the first check-in");
    assert!(again["safety"]["crisis_resources"].is_object());
    app.run_jobs().await;
    let alerts = unresolved(&app, &world.clinician_a, patient, "safety_item9").await;
    assert_eq!(alerts[0]["status"], "acknowledged", "not re-opened");
    assert_eq!(alerts[0]["signal_count"], 1);
    assert_eq!(
        alert_pushes(&gateway, &phone).len(),
        1,
        "nobody paged again"
    );
    assert_eq!(
        app.get("/v1/me/check-ins", &patient.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // New answers are a new signal: acknowledged is not resolved.
    let newer = post_check_in(
        &app,
        patient,
        check_in(
            &new_id(),
            "phq9",
            phq9([1, 1, 1, 0, 0, 0, 0, 0, 3]),
            app.app.now(),
        ),
    )
    .await
    .expect(StatusCode::CREATED);
    app.run_jobs().await;
    let alerts = unresolved(&app, &world.clinician_a, patient, "safety_item9").await;
    assert_eq!(alerts[0]["status"], "open");
    assert_eq!(alerts[0]["check_in_id"], newer.body["id"]);
    assert_eq!(alert_pushes(&gateway, &phone).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Concurrency

async fn concurrent_item_nine_check_ins_open_one_alert_and_a_racing_resolve_never_swallows_a_signal(
    backend: Backend,
) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    let patient = &world.patient_a;
    let staff = &world.clinician_a;
    let mut counter = 0i64;
    let mut answers = || {
        counter += 1;
        // Distinct answers each time, item 9 always positive.
        phq9([
            counter % 4,
            (counter / 4) % 4,
            0,
            0,
            0,
            0,
            0,
            0,
            1 + counter % 3,
        ])
    };
    let now = app.app.now();
    for round in 0..3 {
        let bodies: Vec<Value> = (0..4)
            .map(|_| check_in(&new_id(), "phq9", answers(), now))
            .collect();
        let (a, b, c, d) = tokio::join!(
            post_check_in(&app, patient, bodies[0].clone()),
            post_check_in(&app, patient, bodies[1].clone()),
            post_check_in(&app, patient, bodies[2].clone()),
            post_check_in(&app, patient, bodies[3].clone()),
        );
        for reply in [&a, &b, &c, &d] {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        }
        let open = unresolved(&app, staff, patient, "safety_item9").await;
        assert_eq!(open.len(), 1, "round {round}: one alert, {open:?}");
        let history = detail(&app, staff, open[0]["id"].as_str().unwrap()).await;
        let named = signal_check_ins(&history);
        for body in &bodies {
            assert!(
                named.contains(body["id"].as_str().unwrap()),
                "round {round}: every signal in the alert's history: {history}"
            );
        }
        assert_eq!(open[0]["signal_count"], json!(4 * (round + 1)));
    }
    // A resolve racing a new signal: the signal ends on an unresolved alert, never closed unseen.
    for round in 0..6 {
        let open = unresolved(&app, staff, patient, "safety_item9").await;
        let id = open[0]["id"].as_str().unwrap().to_owned();
        let seen = open[0]["signal_count"].clone();
        let body = check_in(&new_id(), "phq9", answers(), now);
        let path = format!("/v1/alerts/{id}/resolve");
        let (resolved, signal) = tokio::join!(
            app.post(
                &path,
                &staff.access,
                json!({"note": "Spoke with the patient.", "signal_count": seen}),
            ),
            post_check_in(&app, patient, body.clone()),
        );
        assert_eq!(signal.status, StatusCode::CREATED, "{}", signal.text);
        match resolved.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT => assert_eq!(resolved.code(), "alert_new_signal"),
            other => panic!("round {round}: resolve answered {other}: {}", resolved.text),
        }
        let open = unresolved(&app, staff, patient, "safety_item9").await;
        assert_eq!(open.len(), 1, "round {round}: {open:?}");
        let history = detail(&app, staff, open[0]["id"].as_str().unwrap()).await;
        assert!(
            signal_check_ins(&history).contains(body["id"].as_str().unwrap()),
            "round {round}: the new signal is on the unresolved alert (resolve {}): {history}",
            resolved.status
        );
        assert_eq!(open[0]["status"], "open");
    }
    // The database holds it too: no second unresolved alert for the same patient and rule.
    let total = app
        .count(
            "SELECT COUNT(*) AS n FROM alerts WHERE rule = 'safety_item9' AND status <> 'resolved'",
        )
        .await;
    assert_eq!(total, 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Time

async fn a_phone_forty_days_behind_still_alerts_on_item_nine_and_a_dangerous_blood_pressure(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    let now = app.app.now();
    let behind = now - TimeDelta::days(40);
    let bp = post_check_in(
        &app,
        patient,
        check_in(
            &new_id(),
            "daily_mood",
            json!({"mood": 5, "bp_systolic": 220, "bp_diastolic": 130}),
            behind,
        ),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    assert_eq!(bp["timing"], "late");
    let item9 = post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq9", phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]), behind),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    assert_eq!(item9["timing"], "late");
    for (rule, severity, check_in) in [
        ("blood_pressure", "high", &bp),
        ("safety_item9", "urgent", &item9),
    ] {
        let alerts = unresolved(&app, &world.clinician_a, patient, rule).await;
        assert_eq!(alerts.len(), 1, "{rule}");
        let alert = &alerts[0];
        assert_eq!(alert["severity"], severity);
        assert_eq!(alert["check_in_id"], check_in["id"]);
        assert_eq!(time(&alert["completed_at"]), behind);
        assert_eq!(time(&alert["received_at"]), now);
        assert!(
            alert["explanation"]
                .as_str()
                .unwrap()
                .contains("answered 40 days ago, received now"),
            "{alert}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Erasure

async fn erasure_keeps_an_unresolved_alert_minimal_and_tells_the_care_team_at_once(
    backend: Backend,
) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    let clinician_phone = device(&app, &world.clinician_a).await;
    let admin_phone = device(&app, &world.admin_a).await;
    let patient = &world.patient_a;
    let sent = post_check_in(
        &app,
        patient,
        check_in(
            &new_id(),
            "phq9",
            phq9([2, 2, 1, 0, 0, 0, 0, 0, 2]),
            app.app.now(),
        ),
    )
    .await
    .expect(StatusCode::CREATED);
    app.run_jobs().await;
    let alert = unresolved(&app, &world.clinician_a, patient, "safety_item9").await[0].clone();
    let id = alert["id"].as_str().unwrap().to_owned();
    let before = (
        alert_pushes(&gateway, &clinician_phone).len(),
        alert_pushes(&gateway, &admin_phone).len(),
    );

    app.post("/v1/me/erasure", &patient.access, json!({}))
        .await
        .expect(StatusCode::NO_CONTENT);

    // The alert stays, unresolved, with nothing but severity, rule and times.
    let kept = detail(&app, &world.clinician_a, &id).await;
    let shown = &kept["alert"];
    assert_eq!(shown["status"], "open", "{kept}");
    assert_eq!(shown["patient_erased"], true);
    assert_eq!(shown["severity"], "urgent");
    assert_eq!(shown["rule"], "safety_item9");
    assert_eq!(shown["inputs"], json!({}));
    assert_eq!(shown["check_in_id"], Value::Null);
    assert_eq!(shown["opened_at"], alert["opened_at"]);
    assert_eq!(shown["received_at"], alert["received_at"]);
    assert!(!shown["explanation"].as_str().unwrap().contains("item 9"));
    assert_eq!(kept["recent_check_ins"], json!([]));
    let events = kept["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "patient_erased"));
    assert!(
        events
            .iter()
            .all(|e| e["check_in_id"].is_null()
                && (e["detail"] == "" || e["kind"] == "patient_erased")),
        "{kept}"
    );
    // The console shows it as an erased patient's, without a link to a patient page.
    let (mut console, _) = crate::console::Browser::signed_in(&app, &world.clinician_a).await;
    let inbox = console.get("/console/alerts").await.expect(StatusCode::OK);
    assert!(inbox.text.contains("Erased patient"), "{}", inbox.text);
    assert!(
        !inbox
            .text
            .contains(&format!("/console/patients/{}", patient.id)),
        "{}",
        inbox.text
    );
    // The care team is told at once (a push naming only the alert).
    app.run_jobs().await;
    assert!(alert_pushes(&gateway, &clinician_phone).len() > before.0);
    assert!(alert_pushes(&gateway, &admin_phone).len() > before.1);
    assert!(
        alert_pushes(&gateway, &admin_phone)
            .iter()
            .all(|a| *a == id)
    );
    // Nothing else of the patient is left: their check-in and routes are gone.
    let staff = app.token(&world.admin_a).await;
    let gone = app
        .get(&format!("/v1/patients/{}/check-ins", patient.id), &staff)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let sql = format!(
        "SELECT COUNT(*) AS n FROM check_ins WHERE id = '{}'",
        sent.body["id"].as_str().unwrap()
    );
    assert_eq!(app.count(Box::leak(sql.into_boxed_str())).await, 0);
    // A person resolves it; the housekeeping pass then removes it.
    app.post(
        &format!("/v1/alerts/{id}/resolve"),
        &world.clinician_a.access,
        json!({"note": "Contacted the patient by phone.", "signal_count": shown["signal_count"]}),
    )
    .await
    .expect(StatusCode::OK);
    companion::worker::retention_purge(&app.app, app.app.now())
        .await
        .unwrap();
    let reply = app.get(&format!("/v1/alerts/{id}"), &staff).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

// ---------------------------------------------------------------------------------------------
// 7. Retention

async fn history_ids(app: &TestApp, staff: &Actor, patient: &Actor) -> BTreeSet<String> {
    app.get(
        &format!("/v1/patients/{}/check-ins", patient.id),
        &staff.access,
    )
    .await
    .expect(StatusCode::OK)
    .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn retention_keeps_the_check_in_behind_an_unresolved_alert_until_a_person_resolves_it(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    app.put(
        &format!("/v1/clinics/{}/retention", world.clinic_a),
        &world.admin_a.access,
        json!({"erasure_mode": "delete", "check_in_retention_days": 30}),
    )
    .await
    .expect(StatusCode::OK);
    let now = app.app.now();
    // Two item-9 answers synced late (both on one alert), and a routine answer as old.
    let mut late_ids = Vec::new();
    for (days, q9) in [(45, 1), (44, 2)] {
        let reply = post_check_in(
            &app,
            patient,
            check_in(
                &new_id(),
                "phq9",
                phq9([0, 0, 0, 0, 0, 0, 0, 0, q9]),
                now - TimeDelta::days(days),
            ),
        )
        .await
        .expect(StatusCode::CREATED);
        late_ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    post_check_in(
        &app,
        patient,
        check_in(
            &new_id(),
            "daily_mood",
            json!({"mood": 6}),
            now - TimeDelta::days(45),
        ),
    )
    .await
    .expect(StatusCode::CREATED);
    let purged = companion::worker::retention_purge(&app.app, now)
        .await
        .unwrap();
    assert_eq!(purged.check_ins, 1, "only the routine one");
    let left = history_ids(&app, &world.clinician_a, patient).await;
    assert_eq!(left, late_ids.iter().cloned().collect(), "{left:?}");
    // Once a person resolves the alert, the next pass takes them.
    let alert = unresolved(&app, &world.clinician_a, patient, "safety_item9").await[0].clone();
    app.post(
        &format!("/v1/alerts/{}/resolve", alert["id"].as_str().unwrap()),
        &world.clinician_a.access,
        json!({"note": "Reviewed the late answers with the patient."}),
    )
    .await
    .expect(StatusCode::OK);
    let purged = companion::worker::retention_purge(&app.app, now)
        .await
        .unwrap();
    assert_eq!(purged.check_ins, 2);
    assert!(
        history_ids(&app, &world.clinician_a, patient)
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Consent

async fn open_prompts(app: &TestApp, staff: &Actor, patient: &Actor) -> usize {
    app.get(
        &format!("/v1/patients/{}/prompts", patient.id),
        &app.token(staff).await,
    )
    .await
    .expect(StatusCode::OK)
    .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ["scheduled", "sent", "reminded"].contains(&p["status"].as_str().unwrap()))
        .count()
}

async fn sent_prompts(app: &TestApp, patient: &Actor) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM prompts WHERE patient_id = '{}' AND sent_at IS NOT NULL",
        patient.id
    );
    app.count(Box::leak(sql.into_boxed_str())).await
}

async fn consent_of(app: &TestApp, world: &World, patient: &Actor) -> String {
    let roster = app
        .get(
            &format!("/v1/clinics/{}/patients", world.clinic_a),
            &app.token(&world.clinician_a).await,
        )
        .await
        .expect(StatusCode::OK);
    roster.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(patient.id))
        .unwrap()["consent"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn unanswered(app: &TestApp, world: &World) -> Vec<String> {
    let readiness = app
        .get(
            &format!("/v1/clinics/{}/readiness", world.clinic_a),
            &app.token(&world.clinician_a).await,
        )
        .await
        .expect(StatusCode::OK);
    readiness.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "consent_unanswered")
        .map(|p| {
            p["account_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn a_new_consent_version_keeps_prompts_going_until_the_patient_declines_it(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.clock.set("2026-06-01T06:00:00Z".parse().unwrap());
    let world = app.world().await;
    let patient = &world.patient_a;
    let publish = |title: &'static str| {
        let path = format!("/v1/clinics/{}/consent-documents", world.clinic_a);
        let admin = world.admin_a.clone();
        let app = &app;
        async move {
            app.post(
                &path,
                &app.token(&admin).await,
                json!({"title": title, "body": "I agree that my clinic may send me check-in reminders."}),
            )
            .await
            .expect(StatusCode::CREATED)
        }
    };
    let decide = |action: &'static str, version: i64| {
        let patient = patient.clone();
        let app = &app;
        async move {
            app.post(
                "/v1/me/consent",
                &app.token(&patient).await,
                json!({"version": version, "action": action}),
            )
            .await
        }
    };
    publish("Consent v1").await;
    decide("accept", 1).await.expect(StatusCode::OK);
    let planned = open_prompts(&app, &world.clinician_a, patient).await;
    assert!(planned > 0);
    assert_eq!(consent_of(&app, &world, patient).await, "accepted");

    publish("Consent v2").await;
    // Monitoring goes on under version 1; the patient is asked, and shown as not answered.
    assert_eq!(
        open_prompts(&app, &world.clinician_a, patient).await,
        planned
    );
    let mine = app
        .get("/v1/me/consent", &app.token(patient).await)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(mine["current"]["version"], 2);
    assert_eq!(mine["accepted"], false);
    assert_eq!(mine["prompting"], true);
    assert_eq!(mine["standing"], "earlier_version");
    assert_eq!(consent_of(&app, &world, patient).await, "earlier_version");
    assert_eq!(
        consent_of(&app, &world, &world.patient_a2).await,
        "not_given"
    );
    let waiting = unanswered(&app, &world).await;
    assert!(waiting.contains(&patient.id), "{waiting:?}");
    assert!(waiting.contains(&world.patient_a2.id), "{waiting:?}");
    app.clock.set("2026-06-01T14:05:00Z".parse().unwrap());
    app.run_workers().await;
    assert!(sent_prompts(&app, patient).await > 0, "still prompted");

    // Declining the new version stops them.
    let declined = decide("decline", 2).await.expect(StatusCode::OK).body;
    assert_eq!(declined["prompting"], false);
    assert_eq!(declined["standing"], "declined");
    assert_eq!(declined["history"][1]["action"], "decline");
    assert_eq!(open_prompts(&app, &world.clinician_a, patient).await, 0);
    let sent = sent_prompts(&app, patient).await;
    app.clock.set("2026-06-02T14:05:00Z".parse().unwrap());
    app.run_workers().await;
    assert_eq!(sent_prompts(&app, patient).await, sent);
    assert_eq!(consent_of(&app, &world, patient).await, "declined");
    assert!(!unanswered(&app, &world).await.contains(&patient.id));
    assert_error(
        &decide("decline", 2).await,
        StatusCode::CONFLICT,
        "consent_already_declined",
    );
    // Accepting later starts them again; an accepted version is withdrawn, not declined.
    decide("accept", 2).await.expect(StatusCode::OK);
    assert!(open_prompts(&app, &world.clinician_a, patient).await > 0);
    assert_error(
        &decide("decline", 2).await,
        StatusCode::CONFLICT,
        "consent_already_given",
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Screening and care plans

/// The patient's PHQ-9 prompts still to be answered, as the care team sees them (planned ones
/// included).
async fn open_phq9_prompts(app: &TestApp, staff: &Actor, patient: &Actor) -> Vec<Value> {
    app.get(
        &format!("/v1/patients/{}/prompts", patient.id),
        &staff.access,
    )
    .await
    .expect(StatusCode::OK)
    .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["instrument"] == "phq9"
                && ["scheduled", "sent", "reminded"].contains(&p["status"].as_str().unwrap())
        })
        .cloned()
        .collect()
}

async fn readiness_problems(app: &TestApp, world: &World) -> Vec<Value> {
    app.get(
        &format!("/v1/clinics/{}/readiness", world.clinic_a),
        &world.clinician_a.access,
    )
    .await
    .expect(StatusCode::OK)
    .body["problems"]
        .as_array()
        .unwrap()
        .clone()
}

async fn a_positive_phq2_schedules_a_phq9_and_care_plans_are_checked_for_item_nine(
    backend: Backend,
) {
    let app = TestApp::with_settings(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")]).await;
    // 03:00 in Chicago: inside the default quiet hours (21:00 to 08:00).
    app.clock.set("2026-06-03T08:00:00Z".parse().unwrap());
    let world = app.world().await;
    let patient = &world.patient_a;
    // Nothing asks a PHQ-9 today: no session is scheduled and Wednesday is not Monday.
    let now = app.app.now();
    assert!(
        open_phq9_prompts(&app, &world.clinician_a, patient)
            .await
            .is_empty()
    );
    post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq2", json!({"q1": 1, "q2": 1}), now),
    )
    .await
    .expect(StatusCode::CREATED);
    assert!(
        open_phq9_prompts(&app, &world.clinician_a, patient)
            .await
            .is_empty(),
        "a negative screen"
    );
    let positive = post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq2", json!({"q1": 2, "q2": 1}), now),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(positive.body["score"]["severity"], "positive");
    let asked = open_phq9_prompts(&app, &world.clinician_a, patient).await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["rule"], "positive_screen_follow_up");
    let due = time(&asked[0]["due_at"]);
    assert!(
        due >= now && due <= now + TimeDelta::hours(24),
        "within 24 hours: {due}"
    );
    assert_eq!(
        due,
        "2026-06-03T13:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        "when the quiet hours end (08:00 in Chicago)"
    );
    // A second positive screen while it is open asks nothing more; answering it completes it.
    post_check_in(
        &app,
        patient,
        check_in(&new_id(), "phq2", json!({"q1": 3, "q2": 3}), now),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(
        open_phq9_prompts(&app, &world.clinician_a, patient)
            .await
            .len(),
        1
    );
    app.clock.set(due + TimeDelta::minutes(5));
    app.run_workers().await;
    post_check_in(
        &app,
        patient,
        json!({"id": new_id(), "instrument": "phq9", "prompt_id": asked[0]["id"],
               "answers": phq9([1, 1, 1, 1, 0, 0, 0, 0, 0]), "completed_at": stamp(app.app.now())}),
    )
    .await
    .expect(StatusCode::CREATED);
    assert!(
        open_phq9_prompts(&app, &world.clinician_a, patient)
            .await
            .is_empty()
    );

    // Care plans: a PHQ-9 more often than weekly is refused, naming the rule.
    let admin = app.token(&world.admin_a).await;
    let path = format!("/v1/clinics/{}/care-plan", world.clinic_a);
    for rules in [
        json!([{"id": "daily_phq9", "instrument": "phq9", "anchor": {"kind": "daily"}}]),
        json!([{"id": "post", "instrument": "phq9", "anchor": {"kind": "after_session", "days": [1, 3, 7]}}]),
        json!([
            {"id": "mon", "instrument": "phq9", "anchor": {"kind": "weekly", "weekday": "mon"}},
            {"id": "thu", "instrument": "phq9", "anchor": {"kind": "weekly", "weekday": "thu"}}
        ]),
    ] {
        let reply = app.put(&path, &admin, json!({"rules": rules})).await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let fields = reply.body["error"]["fields"].as_object().unwrap();
        assert!(
            fields.keys().any(|k| k.ends_with(".anchor")),
            "{}",
            reply.text
        );
    }
    // A plan that never asks item 9 is accepted, with a readiness warning; so is a patient's own.
    let codes = readiness_problems(&app, &world).await;
    assert!(
        !codes
            .iter()
            .any(|p| p["code"].as_str().unwrap().contains("without_item9")),
        "{codes:?}"
    );
    let mood_only =
        json!({"rules": [{"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}}]});
    app.put(&path, &admin, mood_only.clone())
        .await
        .expect(StatusCode::OK);
    let weekly = json!({"rules": [{"id": "wk", "instrument": "phq9", "anchor": {"kind": "weekly", "weekday": "mon"}}]});
    app.put(
        &format!("/v1/patients/{}/care-plan", world.patient_a2.id),
        &admin,
        mood_only,
    )
    .await
    .expect(StatusCode::OK);
    let problems = readiness_problems(&app, &world).await;
    assert!(
        problems
            .iter()
            .any(|p| p["code"] == "care_plan_without_item9"),
        "{problems:?}"
    );
    let own = problems
        .iter()
        .find(|p| p["code"] == "patient_plan_without_item9")
        .unwrap();
    assert_eq!(own["account_ids"], json!([world.patient_a2.id]));
    app.put(&path, &admin, weekly).await.expect(StatusCode::OK);
    assert!(
        !readiness_problems(&app, &world)
            .await
            .iter()
            .any(|p| p["code"] == "care_plan_without_item9")
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Crisis lines

async fn crisis_lines_follow_the_patients_zone_and_ireland_lists_both_emergency_numbers(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    // A patient of the Chicago clinic living in Auckland.
    let traveller = &world.patient_a;
    app.put(
        "/v1/me/preferences",
        &traveller.access,
        json!({"timezone": "Pacific/Auckland"}),
    )
    .await
    .expect(StatusCode::OK);
    let nz = app
        .get("/v1/me/crisis-resources", &traveller.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(nz["country"], "NZ", "{nz}");
    assert_eq!(nz["source"], "patient_timezone");
    assert_eq!(nz["emergency_number"], "111");
    assert!(!nz.to_string().contains("988"), "{nz}");
    let answer = post_check_in(
        &app,
        traveller,
        check_in(
            &new_id(),
            "phq9",
            phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
            app.app.now(),
        ),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    assert_eq!(answer["safety"]["crisis_resources"], nz);
    // The clinic's own list replaces the national one for its own country only.
    app.patch(
        &format!("/v1/clinics/{}", world.clinic_a),
        &world.admin_a.access,
        json!({"crisis_resources": {"emergency_number": "911",
               "lines": [{"name": "Clinic crisis line", "call": "312 555 0100"}]}}),
    )
    .await
    .expect(StatusCode::OK);
    let at_home = app
        .get("/v1/me/crisis-resources", &world.patient_a2.access)
        .await
        .body;
    assert_eq!(at_home["source"], "clinic_override", "{at_home}");
    let abroad = app
        .get("/v1/me/crisis-resources", &traveller.access)
        .await
        .body;
    assert_eq!(abroad["country"], "NZ", "{abroad}");
    // Ireland: 112 or 999.
    let dublin = app
        .post(
            "/v1/clinics",
            &world.org_admin.access,
            json!({"name": "Clinic Dublin", "timezone": "Europe/Dublin"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dublin_admin = app.join(&world.org_admin, &dublin, "clinic_admin").await;
    let dubliner = app.join(&dublin_admin, &dublin, "patient").await;
    let ie = app
        .get("/v1/me/crisis-resources", &dubliner.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(ie["country"], "IE", "{ie}");
    assert_eq!(ie["emergency_numbers"], json!(["112", "999"]));
    assert!(
        ie["message"].as_str().unwrap().contains("112 or 999"),
        "{ie}"
    );
}

// ---------------------------------------------------------------------------------------------
// The migration that merges duplicates

/// A database of either backend migrated step by step, with a setup run just before this
/// change's migration.
mod migration {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
    use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

    use crate::harness::{Backend, TestDb};

    /// The migration of this change.
    const MERGE: &str = "2026-12-05-000015_safety_answers";

    /// An open connection, and what keeps its database alive.
    pub enum Migrated {
        Sqlite {
            conn: SqliteConnection,
            _dir: tempfile::TempDir,
        },
        Postgres {
            conn: PgConnection,
            _db: TestDb,
        },
    }

    fn stepwise<DB, C>(conn: &mut C, source: impl Fn() -> EmbeddedMigrations, setup: &str)
    where
        DB: diesel::backend::Backend,
        C: MigrationHarness<DB> + SimpleConnection,
    {
        let pending = conn.pending_migrations(source()).unwrap();
        for migration in &pending {
            if migration.name().to_string().as_str() >= MERGE {
                break;
            }
            conn.run_migration(migration).unwrap();
        }
        conn.batch_execute(setup).unwrap();
        conn.run_pending_migrations(source()).unwrap();
    }

    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }

    impl Migrated {
        /// Migrates a fresh database of `backend`, running `setup` just before this change.
        pub fn with(backend: Backend, setup: &str) -> Self {
            match backend {
                Backend::Sqlite => {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("merge.db").display().to_string();
                    let mut conn = SqliteConnection::establish(&path).unwrap();
                    stepwise(&mut conn, || companion_schema::SQLITE_MIGRATIONS, setup);
                    Migrated::Sqlite { conn, _dir: dir }
                }
                Backend::Postgres => {
                    let (db, url) = TestDb::empty_postgres();
                    let mut conn = PgConnection::establish(&url).unwrap();
                    stepwise(&mut conn, || companion_schema::POSTGRES_MIGRATIONS, setup);
                    Migrated::Postgres { conn, _db: db }
                }
            }
        }

        /// The `v` column of each row.
        pub fn texts(&mut self, sql: &str) -> Vec<String> {
            let rows: Vec<Text> = match self {
                Migrated::Sqlite { conn, .. } => diesel::sql_query(sql).load(conn).unwrap(),
                Migrated::Postgres { conn, .. } => diesel::sql_query(sql).load(conn).unwrap(),
            };
            rows.into_iter().map(|t| t.v).collect()
        }

        /// Runs a statement; whether it succeeded.
        pub fn runs(&mut self, sql: &str) -> bool {
            match self {
                Migrated::Sqlite { conn, .. } => conn.batch_execute(sql).is_ok(),
                Migrated::Postgres { conn, .. } => conn.batch_execute(sql).is_ok(),
            }
        }
    }
}

async fn the_migration_merges_duplicate_unresolved_alerts_keeping_every_signal(backend: Backend) {
    // Before the unique index: two unresolved item-9 alerts of one patient (an acknowledged one
    // opened first, an open one after), a resolved one, and another rule's alert.
    let alert = |id: &str,
                 rule: &str,
                 severity: &str,
                 rank: i32,
                 status: &str,
                 count: i32,
                 opened: &str,
                 check_in: &str| {
        format!(
            "INSERT INTO alerts (id, clinic_id, patient_id, rule, severity, status, explanation, inputs, check_in_id, \
             signal_count, tier, escalations, opened_at, last_signal_at, ack_deadline, round, new_signal_since_ack, \
             severity_rank, signal_completed_at, signal_received_at) VALUES ('{id}', 'c1', 'p1', '{rule}', '{severity}', \
             '{status}', 'why {id}', '{{}}', '{check_in}', {count}, 0, 0, '{opened}', '{opened}', '{opened}', 0, FALSE, \
             {rank}, '{opened}', '{opened}');"
        )
    };
    let event = |id: &str, alert: &str| {
        format!(
            "INSERT INTO alert_events (id, alert_id, at, kind, actor_id, detail) VALUES \
             ('{id}', '{alert}', '2026-01-01 00:00:00', 'opened', NULL, 'signal {id}');"
        )
    };
    let setup = [
        "INSERT INTO clinics (id, name, timezone, created_at) VALUES ('c1', 'C', 'UTC', '2026-01-01 00:00:00');".to_owned(),
        "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('p1', 'p@x.org', 'h', 'patient', 'c1', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00');".to_owned(),
        alert("a-ack", "safety_item9", "high", 3, "acknowledged", 2, "2026-01-01 00:00:00", "ci-1"),
        alert("a-open", "safety_item9", "urgent", 4, "open", 1, "2026-01-02 00:00:00", "ci-3"),
        alert("a-done", "safety_item9", "urgent", 4, "resolved", 1, "2025-12-01 00:00:00", "ci-0"),
        alert("a-bp", "blood_pressure", "high", 3, "open", 1, "2026-01-01 00:00:00", "ci-2"),
        event("e1", "a-ack"),
        event("e2", "a-ack"),
        event("e3", "a-open"),
        event("e4", "a-done"),
    ]
    .join("\n");
    let mut db = migration::Migrated::with(backend, &setup);
    let unresolved = db.texts(
        "SELECT id || ':' || status || ':' || severity || ':' || CAST(signal_count AS TEXT) || ':' || COALESCE(check_in_id, '') AS v \
         FROM alerts WHERE rule = 'safety_item9' AND status <> 'resolved'",
    );
    assert_eq!(
        unresolved,
        ["a-open:open:urgent:3:ci-3"],
        "the open one survives with every signal"
    );
    let mut events = db.texts(
        "SELECT alert_id || ':' || kind || ':' || detail AS v FROM alert_events WHERE alert_id = 'a-open'",
    );
    events.sort();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events.contains(&"a-open:opened:signal e1".to_owned()));
    assert!(events.contains(&"a-open:opened:signal e2".to_owned()));
    assert!(events.contains(&"a-open:opened:signal e3".to_owned()));
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("a-open:merged:") && e.contains("a-ack")),
        "{events:?}"
    );
    assert_eq!(
        db.texts("SELECT id AS v FROM alerts ORDER BY id"),
        ["a-bp", "a-done", "a-open"],
        "the resolved alert and the other rule's are untouched"
    );
    // From now on the database refuses a second unresolved alert of a patient and rule, and
    // takes a new one once the first is resolved.
    let another = |id: &str| {
        alert(
            id,
            "safety_item9",
            "urgent",
            4,
            "open",
            1,
            "2026-01-03 00:00:00",
            "ci-9",
        )
    };
    assert!(!db.runs(&another("a-dup")), "a duplicate is refused");
    assert!(db.runs("UPDATE alerts SET status = 'resolved' WHERE id = 'a-open'"));
    assert!(db.runs(&another("a-next")));
}
