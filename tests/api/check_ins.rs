//! Instruments, check-in submission, history and trends through HTTP.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, Reply, TestApp, assert_error};

both!(
    the_catalogue_is_complete_enough_to_build_a_form_from,
    every_instrument_is_scored_by_the_server,
    a_replay_returns_the_stored_check_in_with_200_and_the_same_body,
    the_same_id_with_different_content_is_a_conflict,
    each_invalid_submission_is_a_422_naming_the_field,
    item_nine_answer_returns_crisis_resources_in_the_same_response,
    crisis_resources_follow_the_clinics_country,
    history_is_newest_first_filterable_and_paginated,
    staff_read_histories_of_their_own_clinic_only_and_every_read_is_audited,
    trends_give_local_daily_mood_and_instrument_flags,
    only_patients_submit_check_ins,
);

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn phq9(values: [i64; 9]) -> Value {
    let mut answers = serde_json::Map::new();
    for (i, v) in values.iter().enumerate() {
        answers.insert(format!("q{}", i + 1), json!(v));
    }
    Value::Object(answers)
}

async fn submit(
    app: &TestApp,
    patient: &Actor,
    instrument: &str,
    answers: Value,
    at: DateTime<Utc>,
) -> Reply {
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": instrument,
               "answers": answers, "completed_at": ts(at)}),
    )
    .await
}

async fn the_catalogue_is_complete_enough_to_build_a_form_from(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    assert_eq!(
        app.call(Method::GET, "/v1/instruments", None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let reply = app
        .get("/v1/instruments", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    let items = reply.body["items"].as_array().unwrap();
    let keys: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["phq9", "phq2", "gad7", "daily_mood"]);
    let phq9 = &items[0];
    assert_eq!(phq9["version"], 1);
    assert_eq!(phq9["loinc_panel"], "44249-1");
    assert_eq!(phq9["items"].as_array().unwrap().len(), 10);
    let q9 = &phq9["items"][8];
    assert_eq!(
        (q9["id"].as_str(), q9["loinc"].as_str()),
        (Some("q9"), Some("44260-8"))
    );
    assert_eq!(q9["answer"]["type"], "choice");
    assert_eq!(q9["answer"]["options"][3]["value"], 3);
    assert_eq!(q9["answer"]["options"][3]["label"], "Nearly every day");
    assert_eq!(q9["answer"]["options"][0]["loinc"], "LA6568-5");
    assert_eq!(phq9["items"][9]["required"], false);
    assert_eq!(phq9["scoring"]["bands"][3]["key"], "moderately_severe");
    let mood = &items[3];
    assert_eq!(mood["items"][0]["id"], "mood");
    assert_eq!(mood["items"][0]["required"], true);
    assert_eq!(mood["items"][0]["answer"]["max"], 10);
    assert_eq!(mood["scoring"], Value::Null);
}

async fn every_instrument_is_scored_by_the_server(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let now = app.app.now();
    let p = &world.patient_a;
    let reply = submit(&app, p, "phq9", phq9([3, 2, 2, 2, 2, 2, 2, 1, 0]), now).await;
    let reply = reply.expect(StatusCode::CREATED);
    assert_eq!(reply.body["score"]["total"], 16);
    assert_eq!(reply.body["score"]["max"], 27);
    assert_eq!(reply.body["score"]["severity"], "moderately_severe");
    assert_eq!(reply.body["score"]["phq2_total"], 5);
    assert_eq!(reply.body["safety_signal"], false);
    assert_eq!(reply.body["safety"], Value::Null);
    assert_eq!(reply.body["patient_id"], p.id.as_str());
    assert_eq!(reply.body["instrument_version"], 1);

    let reply = submit(&app, p, "phq2", json!({"q1": 2, "q2": 2}), now)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (
            reply.body["score"]["total"].as_i64(),
            reply.body["score"]["severity"].as_str()
        ),
        (Some(4), Some("positive"))
    );

    let gad7 = json!({"q1": 3, "q2": 3, "q3": 2, "q4": 2, "q5": 1, "q6": 1, "q7": 0});
    let reply = submit(&app, p, "gad7", gad7, now)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (
            reply.body["score"]["total"].as_i64(),
            reply.body["score"]["severity"].as_str()
        ),
        (Some(12), Some("moderate"))
    );

    let mood = json!({"mood": 4, "sleep_hours": 6.5, "still_detached": true, "bp_systolic": 131, "bp_diastolic": 84, "note": "tired"});
    let reply = submit(&app, p, "daily_mood", mood.clone(), now)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(reply.body["score"], Value::Null);
    assert_eq!(reply.body["answers"], mood);
}

async fn a_replay_returns_the_stored_check_in_with_200_and_the_same_body(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let body = json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9",
                      "answers": phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
                      "completed_at": ts(app.app.now() - TimeDelta::hours(3))});
    let first = app
        .post("/v1/check-ins", &world.patient_a.access, body.clone())
        .await
        .expect(StatusCode::CREATED);
    app.clock.advance(TimeDelta::minutes(10));
    let again = app
        .post("/v1/check-ins", &world.patient_a.access, body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.body, again.body);
    let history = app.get("/v1/me/check-ins", &world.patient_a.access).await;
    assert_eq!(history.body["items"].as_array().unwrap().len(), 1);
}

async fn the_same_id_with_different_content_is_a_conflict(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let id = uuid::Uuid::new_v4().to_string();
    let at = ts(app.app.now());
    app.post(
        "/v1/check-ins",
        &world.patient_a.access,
        json!({"id": id, "instrument": "daily_mood", "answers": {"mood": 5}, "completed_at": at}),
    )
    .await
    .expect(StatusCode::CREATED);
    let changed = app.post("/v1/check-ins", &world.patient_a.access,
        json!({"id": id, "instrument": "daily_mood", "answers": {"mood": 6}, "completed_at": at}))
        .await;
    assert_error(&changed, StatusCode::CONFLICT, "check_in_conflict");
    // Another patient reusing the id learns nothing about the stored check-in.
    let other = app.post("/v1/check-ins", &world.patient_b.access,
        json!({"id": id, "instrument": "daily_mood", "answers": {"mood": 5}, "completed_at": at}))
        .await;
    assert_error(&other, StatusCode::CONFLICT, "check_in_conflict");
    assert!(!other.text.contains("\"mood\""));
    let mine = app.get("/v1/me/check-ins", &world.patient_a.access).await;
    assert_eq!(mine.body["items"][0]["answers"]["mood"], 5);
}

async fn each_invalid_submission_is_a_422_naming_the_field(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let now = app.app.now();
    let good = json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood",
                      "answers": {"mood": 5}, "completed_at": ts(now)});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("id", json!("not-a-uuid")), "id"),
        (with("instrument", json!("bdi")), "instrument"),
        (with("instrument_version", json!(7)), "instrument_version"),
        // A time in the future or long ago is stored, never refused (see the safety tests).
        (with("completed_at", json!("yesterday")), "completed_at"),
        (with("prompt_id", json!("prompt-1")), "prompt_id"),
        (with("answers", json!({})), "answers.mood"),
        (with("answers", json!({"mood": 12})), "answers.mood"),
        (with("answers", json!({"mood": "5"})), "answers.mood"),
        (
            with("answers", json!({"mood": 5, "colour": "blue"})),
            "answers.colour",
        ),
        (
            with("answers", json!({"mood": 5, "bp_systolic": 120})),
            "answers.bp_diastolic",
        ),
        (
            with(
                "answers",
                json!({"mood": 5, "bp_systolic": 70, "bp_diastolic": 90}),
            ),
            "answers.bp_systolic",
        ),
        (with("answers", json!([5])), "answers"),
        (with("extra", json!(1)), "extra"),
    ];
    for (body, field) in cases {
        let reply = app
            .post("/v1/check-ins", &world.patient_a.access, body.clone())
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
    // PHQ-9 with a missing item and an out-of-range one: both named.
    let mut answers = phq9([0; 9]);
    answers.as_object_mut().unwrap().remove("q4");
    answers["q9"] = json!(4);
    let reply = app.post("/v1/check-ins", &world.patient_a.access,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9", "answers": answers, "completed_at": ts(now)}))
        .await;
    let fields = reply.body["error"]["fields"].as_object().unwrap();
    assert!(
        fields.contains_key("answers.q4") && fields.contains_key("answers.q9"),
        "{}",
        reply.text
    );
    assert_eq!(
        app.get("/v1/me/check-ins", &world.patient_a.access)
            .await
            .body["items"],
        json!([])
    );
}

async fn item_nine_answer_returns_crisis_resources_in_the_same_response(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let clinic = app
        .post("/v1/clinics", &admin.access,
            json!({"name": "Lakeside", "timezone": "America/Chicago", "country": "us", "crisis_phone": "+1 312 555 0100"}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(clinic.body["country"], "US");
    let clinic_id = clinic.body["id"].as_str().unwrap();
    let patient = app.join(&admin, clinic_id, "patient").await;
    let reply = submit(
        &app,
        &patient,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
        app.app.now(),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(reply.body["safety_signal"], true);
    assert_eq!(reply.body["score"]["total"], 1);
    let safety = &reply.body["safety"];
    // Nobody in this clinic can be reached yet and no worker has run: not "told".
    assert_eq!(safety["care_team"], "trying");
    assert!(
        safety["message"]
            .as_str()
            .unwrap()
            .contains("We are contacting your care team now. If you are in danger, call 911")
    );
    let resources = &safety["crisis_resources"];
    assert_eq!(resources["country"], "US");
    assert_eq!(resources["emergency_number"], "911");
    assert_eq!(resources["lines"][0]["call"], "+1 312 555 0100");
    assert_eq!(resources["lines"][1]["call"], "988");
    assert_eq!(resources["lines"][1]["text"], "988");
    // Staff see the signal in the history.
    let clinic_admin = app.join(&admin, clinic_id, "clinic_admin").await;
    let history = app
        .get(
            &format!("/v1/patients/{}/check-ins", patient.id),
            &clinic_admin.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(history.body["items"][0]["safety_signal"], true);
    // No signal, no resources.
    let calm = submit(
        &app,
        &patient,
        "phq9",
        phq9([3, 3, 3, 3, 3, 3, 3, 3, 0]),
        app.app.now(),
    )
    .await;
    assert_eq!(calm.body["safety"], Value::Null);
}

async fn crisis_resources_follow_the_clinics_country(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    for (country, emergency, line) in [
        (Some("GB"), Some("999"), Some("116 123")),
        (Some("AU"), Some("000"), Some("13 11 14")),
        (None, None, None),
    ] {
        let mut body = json!({"name": "C", "timezone": "UTC"});
        if let Some(country) = country {
            body["country"] = json!(country);
        }
        let clinic = app
            .post("/v1/clinics", &admin.access, body)
            .await
            .expect(StatusCode::CREATED);
        let patient = app
            .join(&admin, clinic.body["id"].as_str().unwrap(), "patient")
            .await;
        let reply = submit(
            &app,
            &patient,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 3]),
            app.app.now(),
        )
        .await;
        let resources = &reply.body["safety"]["crisis_resources"];
        assert_eq!(
            resources["emergency_number"].as_str(),
            emergency,
            "{country:?}"
        );
        assert_eq!(resources["lines"][0]["call"].as_str(), line, "{country:?}");
        if country.is_none() {
            assert!(
                resources["message"]
                    .as_str()
                    .unwrap()
                    .contains("local emergency number")
            );
        }
    }
    let bad = app
        .post(
            "/v1/clinics",
            &admin.access,
            json!({"name": "C", "timezone": "UTC", "country": "USA", "crisis_phone": "call me"}),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(bad.body["error"]["fields"].as_object().unwrap().len(), 2);
}

async fn history_is_newest_first_filterable_and_paginated(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let p = &world.patient_a;
    let now = app.app.now();
    let mut ids = Vec::new();
    for hours in [50, 40, 30, 20, 10] {
        let reply = submit(
            &app,
            p,
            "daily_mood",
            json!({"mood": 5}),
            now - TimeDelta::hours(hours),
        )
        .await;
        ids.push(
            reply.expect(StatusCode::CREATED).body["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    submit(
        &app,
        p,
        "gad7",
        json!({"q1": 0, "q2": 0, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 0}),
        now - TimeDelta::hours(25),
    )
    .await
    .expect(StatusCode::CREATED);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/me/check-ins?instrument=daily_mood&limit=2&cursor={c}"),
            None => "/v1/me/check-ins?instrument=daily_mood&limit=2".to_owned(),
        };
        let page = app.get(&path, &p.access).await.expect(StatusCode::OK);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let from = ts(now - TimeDelta::hours(35));
    let to = ts(now - TimeDelta::hours(15));
    let window = app
        .get(
            &format!("/v1/me/check-ins?from={from}&to={to}").replace('+', "%2B"),
            &p.access,
        )
        .await
        .expect(StatusCode::OK);
    let instruments: Vec<&str> = window.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instrument"].as_str().unwrap())
        .collect();
    assert_eq!(instruments, ["daily_mood", "gad7", "daily_mood"]);
    for bad in [
        "instrument=bdi",
        "from=soon",
        "limit=0",
        "cursor=abc",
        &format!("from={to}&to={from}"),
    ] {
        let reply = app.get(&format!("/v1/me/check-ins?{bad}"), &p.access).await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
}

async fn staff_read_histories_of_their_own_clinic_only_and_every_read_is_audited(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    submit(
        &app,
        &world.patient_a,
        "daily_mood",
        json!({"mood": 3}),
        app.app.now(),
    )
    .await
    .expect(StatusCode::CREATED);
    let history = format!("/v1/patients/{}/check-ins", world.patient_a.id);
    let trends = format!("/v1/patients/{}/trends", world.patient_a.id);
    let count =
        "SELECT COUNT(*) AS n FROM audit_events WHERE action IN ('check_ins.read', 'trends.read')";
    let before = app.count(count).await;
    let reply = app
        .get(&history, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.body["items"][0]["answers"]["mood"], 3);
    app.get(&trends, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.count(count).await - before, 2);
    // Other clinics, other patients, the organisation admin: refused, nothing audited.
    for (token, status) in [
        (&world.clinician_b.access, StatusCode::NOT_FOUND),
        (&world.admin_b.access, StatusCode::NOT_FOUND),
        (&world.patient_a2.access, StatusCode::FORBIDDEN),
        (&world.patient_a.access, StatusCode::FORBIDDEN),
        (&world.org_admin.access, StatusCode::FORBIDDEN),
    ] {
        assert_eq!(app.get(&history, token).await.status, status);
    }
    assert_error(
        &app.get(&trends, &world.patient_a2.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get(&trends, &world.clinician_b.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get(&trends, &world.org_admin.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Staff ids and unknown ids are not patients.
    for id in [
        world.clinician_a.id.clone(),
        uuid::Uuid::now_v7().to_string(),
        "nope".to_owned(),
    ] {
        let reply = app
            .get(
                &format!("/v1/patients/{id}/check-ins"),
                &world.clinician_a.access,
            )
            .await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(app.count(count).await - before, 2);
    // The patient reads their own trends, unaudited.
    app.get(&trends, &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.count(count).await - before, 2);
}

async fn trends_give_local_daily_mood_and_instrument_flags(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    // The world's patients live in America/Chicago (UTC-6 in winter, UTC-5 in summer).
    let p = &world.patient_a;
    let now = app.app.now();
    let day = now.date_naive() - TimeDelta::days(2);
    let at = |h: u32| day.and_hms_opt(h, 0, 0).unwrap().and_utc();
    // 03:00 UTC is the evening before in Chicago; 18:00 and 20:00 UTC are the same Chicago day.
    for (hour, mood) in [(3, 2), (18, 4), (20, 7)] {
        submit(&app, p, "daily_mood", json!({"mood": mood}), at(hour))
            .await
            .expect(StatusCode::CREATED);
    }
    submit(
        &app,
        p,
        "phq9",
        phq9([3, 3, 3, 2, 2, 2, 2, 2, 1]),
        now - TimeDelta::days(20),
    )
    .await
    .expect(StatusCode::CREATED);
    submit(
        &app,
        p,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        now - TimeDelta::days(1),
    )
    .await
    .expect(StatusCode::CREATED);
    let reply = app
        .get(&format!("/v1/patients/{}/trends?days=30", p.id), &p.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.body["timezone"], "America/Chicago");
    let series = reply.body["daily_mood"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{}", reply.text);
    assert_eq!(series[0]["date"], (day - TimeDelta::days(1)).to_string());
    assert_eq!(
        (series[0]["mean"].as_f64(), series[0]["count"].as_u64()),
        (Some(2.0), Some(1))
    );
    assert_eq!(series[1]["date"], day.to_string());
    assert_eq!(
        (series[1]["mean"].as_f64(), series[1]["count"].as_u64()),
        (Some(5.5), Some(2))
    );
    let phq9 = &reply.body["instruments"][0];
    assert_eq!(phq9["instrument"], "phq9");
    assert_eq!(phq9["first"]["total"], 20);
    assert_eq!(phq9["latest"]["total"], 8);
    assert_eq!(phq9["change_from_first"], -12);
    assert_eq!(phq9["response"], true);
    assert_eq!(phq9["remission"], false);
    assert_eq!(phq9["reliable_deterioration"], false);
    for bad in ["days=0", "days=366", "days=x", "weeks=2"] {
        let reply = app
            .get(&format!("/v1/patients/{}/trends?{bad}", p.id), &p.access)
            .await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
}

async fn only_patients_submit_check_ins(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let body = json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood",
                      "answers": {"mood": 5}, "completed_at": ts(app.app.now())});
    for staff in [&world.clinician_a, &world.admin_a, &world.org_admin] {
        let reply = app.post("/v1/check-ins", &staff.access, body.clone()).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
        let reply = app.get("/v1/me/check-ins", &staff.access).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
    let anonymous = app
        .call(Method::POST, "/v1/check-ins", None, Some(body))
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "missing_token");
}
